"""related() latency and recall against exact search, as one JSON object.

Clustered synthetic 512-d vectors (generated), written as pins, then the store's index policy is
applied (exact below its threshold, IVF_SQ above). For sampled query pins: p50/p95 latency of
related() at k=10 and k=1000, with and without filters (kind, a metadata column, both; the store's
scalar indexes on), recall@10 against exact
(numpy brute force over all vectors, the query pin left out).

    python benchmarks/query.py [--rows 100000] [--queries 100]      # --rows 1000000 for the 1M figures
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pinembed.metrics import recall_at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--centers", type=int, default=1000)
    ap.add_argument("--nprobes", type=int, default=None, help="override the policy's nprobes")
    ap.add_argument("--refine", type=int, default=None, help="override the policy's re-ranked candidates")
    ap.add_argument("--exact-slice-below", type=int, default=None, help="override the policy's exact-slice threshold")
    args = ap.parse_args()

    import pinembed

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synthetic

    rng = np.random.default_rng(1)
    n, dim = args.rows, args.dim
    out = {"benchmark": "query", "rows": n, "dim": dim, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        idx = pinembed.open_index(os.path.join(tmp, "q.lance"))
        store = idx.store
        if args.nprobes or args.refine or args.exact_slice_below is not None:
            from dataclasses import replace

            p = store.index_policy
            store.index_policy = replace(p, nprobes=args.nprobes or p.nprobes,
                                         refine_candidates=args.refine or p.refine_candidates,
                                         exact_slice_below=p.exact_slice_below if args.exact_slice_below is None
                                         else args.exact_slice_below)
        world = synthetic.build(store, n, dim, args.centers)
        vecs, kinds, widths, centers = world.vecs, world.kinds, world.widths, world.centers
        table = store._pins()
        out["write_s"], out["index"], out["index_build_s"] = world.write_s, world.index_state, world.index_s
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        out["disk_bytes_per_pin"] = round(disk / n)  # pins (vector, metadata), segments, indexes
        out["policy"] = {"exact_below": store.index_policy.exact_below, "nprobes": store.index_policy.nprobes,
                         "refine_factor_k10": store.index_policy.refine_factor(10),
                         "refine_factor_k1000": store.index_policy.refine_factor(1000),
                         "partitions": store.index_policy.partitions(n)}
        qs = rng.choice(n, args.queries, replace=False)

        def run(k, kinds_filter=None, where=None, mask=None):
            lat, rec = [], []
            for q in qs:
                pid = f"pin{q:07d}"
                t0 = time.perf_counter()
                res = idx.related(pid, k=k, kinds=kinds_filter, where=where)
                lat.append(time.perf_counter() - t0)
                sims = vecs @ vecs[q]
                sims[q] = -2
                if kinds_filter:
                    sims[~np.isin(kinds, list(kinds_filter))] = -2
                if mask is not None:
                    sims[~mask] = -2
                exact = {f"pin{i:07d}" for i in np.argpartition(-sims, 10)[:10]}
                rec.append(recall_at([r.pin_id for r in res], exact, 10))
            return {"p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
                    "p95_ms": round(1000 * float(np.percentile(lat, 95)), 2), "recall@10": round(float(np.mean(rec)), 4)}

        run(10)  # warm caches
        out["related"] = {"k10": run(10), "k1000": run(1000), "k10_kind_video": run(10, {"video"}),
                          "k10_kind_idea": run(10, {"idea"}),
                          "k10_width_1080_1920": run(10, where={"width": (1080, 1920)},
                                                     mask=(widths >= 1080) & (widths <= 1920)),
                          "k10_kind_video_width_3840": run(10, {"video"}, where={"width": 3840}, mask=widths == 3840)}
        out["scalar_indexes"] = sorted(c for i in table.list_indices() for c in i.columns if c != "vector")

        # rows added after the build: found before upkeep (unindexed rows are searched flat) and after it
        m = max(1, n // 1000)
        fresh = centers[rng.integers(0, args.centers, m)] + 0.5 * rng.normal(size=(m, dim)).astype(np.float32)
        fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
        synthetic.write(store, synthetic.World(fresh, np.array(["image"] * m), np.zeros(m, np.int32), centers),
                        prefix="new")
        all_vecs = np.concatenate([vecs, fresh])

        def found_fresh():
            lat, hit, rec = [], [], []
            for i in range(min(m, args.queries)):
                t0 = time.perf_counter()
                res = [r.pin_id for r in idx.search_vector(fresh[i], k=10)]
                lat.append(time.perf_counter() - t0)
                hit.append(res[:1] == [f"new{i:07d}"])
                exact = np.argpartition(-(all_vecs @ fresh[i]), 10)[:10]
                ids = {f"pin{j:07d}" if j < n else f"new{j - n:07d}" for j in exact}
                rec.append(recall_at(res, ids, 10))
            return {"found_itself": round(float(np.mean(hit)), 4), "recall@10": round(float(np.mean(rec)), 4),
                    "p50_ms": round(1000 * float(np.percentile(lat, 50)), 2)}

        out["new_rows_after_build"] = {"rows": m, "before_upkeep": found_fresh()}
        t = time.perf_counter()
        out["new_rows_after_build"]["upkeep"] = store.ensure_index()
        out["new_rows_after_build"]["upkeep_s"] = round(time.perf_counter() - t, 1)
        out["new_rows_after_build"]["after_upkeep"] = found_fresh()
        t = time.perf_counter()
        for q in qs[:20]:
            np.argpartition(-(vecs @ vecs[q]), 10)[:10]
        out["numpy_exact_ms_per_query"] = round(1000 * (time.perf_counter() - t) / 20, 2)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
