"""Candidate tables against faiss-cpu and exact search, as one JSON object.

Clustered synthetic 512-d unit vectors (``synthetic.py``, as ``benchmarks/query.py``) written as pins.
In the same run, on the same vectors:

- pinembed: ``PinIndex.candidates(out=folder, k)``: IVF groups, probes calibrated to --target-recall on
  256 queries (``pinembed/candidates.py``); wall time of the whole job (reading the vectors, k-means,
  calibration, products, Parquet parts).
- faiss-cpu: ``IndexIVFFlat`` (inner product) with the same number of lists, trained on the same number
  of vectors, every base vector added, every pin searched (k + 1, the pin itself dropped); its nprobe is
  the smallest power of two whose recall@10 on the sample reaches pinembed's. Wall time of train + add +
  search (the vectors already in memory: reading them is not counted for faiss).
- exact: numpy brute force for --sample random query pins: the recall@10 of both.

Goals (issue 25): 1M pins, k=100, <= 15 minutes, recall@10 >= 0.95, no slower than faiss at equal recall.

    python benchmarks/candidates.py [--rows 1000000] [--k 100] [--sample 1000]     # pip install faiss-cpu
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _exact_top(vecs: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The exact top-k rows of each query row ``q`` among ``vecs`` (itself left out)."""
    out = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), 256):
        rows = q[s:s + 256]
        sims = vecs[rows] @ vecs.T
        sims[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
        out[s:s + 256] = np.take_along_axis(top, order, 1)
    return out


def _recall(got: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--centers", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--target-recall", type=float, default=0.97)
    ap.add_argument("--skip-faiss", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pyarrow.parquet as pq
    import synthetic

    import pinembed
    from pinembed import candidate_search as cs
    from pinembed.store import Store
    from pinembed.store.identity import space_identity

    out: dict = {"benchmark": "candidates", "rows": args.rows, "k": args.k, "dim": args.dim, "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="candbench-"))
    try:
        t = time.perf_counter()
        world = synthetic.generate(args.rows, args.dim, args.centers, seed=0)
        store = Store(str(work / "pins.lance"))
        store.ensure_space(space_identity({"model_id": "synthetic", "dim": args.dim, "weights_digest": "-",
                                           "preprocess": {}}))
        synthetic.write(store, world)
        out["write_s"] = round(time.perf_counter() - t, 1)
        vecs = world.vecs
        rng = np.random.default_rng(1)
        sample = np.sort(rng.choice(args.rows, min(args.sample, args.rows), replace=False))
        t = time.perf_counter()
        truth = _exact_top(vecs, sample, 10)
        out["exact_sample_s"] = round(time.perf_counter() - t, 1)
        out["exact_estimated_full_s"] = round(out["exact_sample_s"] * args.rows / len(sample), 0)

        idx = pinembed.open_index(str(work / "pins.lance"))
        t = time.perf_counter()
        s = idx.candidates(out=work / "cands", k=args.k, target_recall=args.target_recall)
        out["wall_s"] = round(time.perf_counter() - t, 1)
        out["pinembed"] = s.to_dict()
        t = time.perf_counter()
        table = pq.read_table(work / "cands", columns=["pin_id", "rank", "candidate_id"],
                              filters=[("rank", "<=", 10)])
        want = {synthetic.pin_id(int(i)) for i in sample}
        rows: dict[str, list[str]] = {}
        for r in table.to_pylist():
            if r["pin_id"] in want:
                rows.setdefault(r["pin_id"], []).append((r["rank"], r["candidate_id"]))
        got = np.array([[int(c[3:]) for _, c in sorted(rows[synthetic.pin_id(int(i))])] for i in sample])
        out["recall_at_10"] = round(_recall(got, truth), 4)
        out["read_back_s"] = round(time.perf_counter() - t, 1)
        out["goal"] = {"wall_s": 900, "recall_at_10": 0.95, "over_faiss": 1.0}

        if not args.skip_faiss:
            try:
                import faiss
            except ImportError:
                out["faiss_error"] = "faiss-cpu is not installed (pip install faiss-cpu)"
            else:
                nlist = s.nlist or cs.lists_for(args.rows)
                t = time.perf_counter()
                quant = faiss.IndexFlatIP(args.dim)
                index = faiss.IndexIVFFlat(quant, args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
                train_rows = rng.choice(args.rows, min(args.rows, nlist * cs.SAMPLE_PER_LIST), replace=False)
                index.train(vecs[np.sort(train_rows)])
                index.add(vecs)
                build_s = time.perf_counter() - t
                nprobe, frec = 1, 0.0
                while True:
                    index.nprobe = nprobe
                    _, found = index.search(vecs[sample], 11)
                    fgot = np.array([[j for j in row if j != q][:10] for row, q in zip(found, sample, strict=True)])
                    frec = _recall(fgot, truth)
                    if frec >= out["recall_at_10"] or nprobe >= nlist:
                        break
                    nprobe *= 2
                t = time.perf_counter()
                for st in range(0, args.rows, 65_536):
                    index.search(vecs[st:st + 65_536], args.k + 1)
                out.update(faiss_wall_s=round(build_s + time.perf_counter() - t, 1), faiss_recall_at_10=round(frec, 4),
                           faiss_nprobe=nprobe, faiss_nlist=nlist, faiss_threads=faiss.omp_get_max_threads())
                out["over_faiss"] = round(out["faiss_wall_s"] / out["wall_s"], 2)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
