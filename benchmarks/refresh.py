"""No-change and 1%-change refresh over many small files, as one JSON object.

A tree of small distinct PNGs (100 per folder) is indexed, then ``refresh`` runs with nothing changed
(stat calls only: no file is read, no model loaded) and is compared with a plain os.walk + os.stat of
the same tree (goal: at most 3x), both with a warm page cache, best of --repeat. Then --changed-share
of the files get new content and the refresh that re-embeds them is timed.

The database is seeded directly through Store (one row per discovered file, with its real signature
and content hash, a random unit vector in the model's space): embedding 100k images would take the
run's whole budget, and what a no-change refresh reads (pin id, kind, uri, signature, hash) is the same.

    python benchmarks/refresh.py [--files 100000] [--changed-share 0.01] [--model tiny|ID] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

PER_FOLDER = 100
SEED_CHUNK = 20_000


def _png(rng) -> bytes:
    """A distinct 8x8 PNG of random pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype="uint8")).save(buf, format="PNG")
    return buf.getvalue()


def _walk_stat(root: Path) -> int:
    """The baseline: os.walk and one os.stat per file; returns the files seen."""
    n = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name))
            n += 1
    return n


def _best(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls of ``fn`` and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--changed-share", type=float, default=0.01)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import numpy as np

    from pinembed.embedders import get_embedder
    from pinembed.embedders.tiny import make_tiny_checkpoint
    from pinembed.ingestion.discover import discover
    from pinembed.ingestion.plan import make_refresh_plan
    from pinembed.ingestion.read import content_hash
    from pinembed.ingestion.refresh import refresh
    from pinembed.store import Store, space_identity
    from pinembed.store.rows import now

    n = args.files
    rng = np.random.default_rng(0)
    out: dict = {"benchmark": "refresh", "files": n, "model": args.model, "cpus": os.cpu_count(),
                 "seeded": True, "seeded_why": "the store is written directly (real signatures and content "
                 "hashes, random vectors): embedding every file would not fit the run; a no-change refresh "
                 "reads the same columns either way"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, db = tmp / "media", str(tmp / "pins.lance")
        t = time.perf_counter()
        paths = []
        for i in range(n):
            folder = root / f"d{i // PER_FOLDER:04d}"
            if i % PER_FOLDER == 0:
                folder.mkdir(parents=True)
            p = folder / f"{i:06d}.png"
            p.write_bytes(_png(rng))
            paths.append(p)
        out["generate_s"] = round(time.perf_counter() - t, 1)

        t = time.perf_counter()
        model_id = make_tiny_checkpoint(tmp / "tiny.pt") if args.model == "tiny" else args.model
        emb = get_embedder(model_id, "cpu")
        out["model_load_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        store = Store(db)
        store.ensure_space(space_identity(emb.identity()))
        entries = discover(root).entries
        assert len(entries) == n, (len(entries), n)
        for s in range(0, n, SEED_CHUNK):
            chunk = entries[s : s + SEED_CHUNK]
            vecs = rng.normal(size=(len(chunk), emb.dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            stamp = now()
            store.write([{"pin_id": e.pin_id, "kind": e.kind, "uri": e.uri, "size": e.size, "mtime_ns": e.mtime_ns,
                          "source_sig": e.source_sig, "content_hash": content_hash(e), "n_segments": 0,
                          "model_id": emb.model_id, "vector": v, "embedded_at": stamp}
                         for e, v in zip(chunk, vecs, strict=True)])
        out["seed_index"] = store.ensure_index()
        out["seed_s"] = round(time.perf_counter() - t, 1)
        del store, entries

        _walk_stat(root)  # warm the page cache (dentries and inodes) for both sides
        walk_s, seen = _best(lambda: _walk_stat(root), args.repeat)
        assert seen == n, (seen, n)
        no_change_s, s = _best(lambda: refresh([root], db), args.repeat)
        assert s.planned["unchanged"] == n and not s.model_loaded and not (s.added or s.updated or s.deleted), s
        out.update(walk_stat_s=round(walk_s, 3), no_change_refresh_s=round(no_change_s, 3),
                   ratio_no_change_over_walk_stat=round(no_change_s / walk_s, 2), goal_ratio=3,
                   model_loaded_no_change=s.model_loaded, planned_no_change=s.planned)

        # where a no-change refresh spends its time (each part alone, best of --repeat)
        live = Store(db)
        found_s, found = _best(lambda: discover(root), args.repeat)
        cols = ("pin_id", "kind", "uri", "source_sig", "content_hash")
        read_s, stored = _best(lambda: live.pin_states(cols).to_pylist(), args.repeat)
        plan_s, _ = _best(lambda: make_refresh_plan(found.entries, stored, [str(root)],
                                                    ledger=live.failures_by_uri(), content_hash=content_hash),
                          args.repeat)
        upkeep_s, _ = _best(live.ensure_index, args.repeat)
        out["breakdown_s"] = {"discover": round(found_s, 3), "read_store_state": round(read_s, 3),
                              "plan": round(plan_s, 3), "upkeep": round(upkeep_s, 3)}
        out["breakdown_note"] = "each part timed alone (best of --repeat), so the parts need not sum to the refresh"

        m = max(1, round(n * args.changed_share))
        changed = rng.choice(n, m, replace=False)
        for i in changed:
            paths[i].write_bytes(_png(rng))
        t = time.perf_counter()
        s = refresh([root], db)
        changed_s = time.perf_counter() - t
        assert s.planned["changed"] == m and s.updated == m and not s.failed, s
        out.update(changed_files=m, changed_refresh_s=round(changed_s, 2), changed_planned=s.planned,
                   changed_updated=s.updated, model_loaded_changed=s.model_loaded, changed_index=s.index,
                   changed_files_per_s=round(m / changed_s, 1),
                   changed_files_per_s_beyond_no_change=round(m / max(1e-9, changed_s - no_change_s), 1))
        no_change_after_s, s = _best(lambda: refresh([root], db), args.repeat)
        assert s.planned["unchanged"] == n and not s.model_loaded, s
        out["no_change_refresh_after_change_s"] = round(no_change_after_s, 3)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
