"""Peak memory while ingesting many images, as one JSON object: RSS is sampled through the run and
compared between the first and the last quarter, so growth with the corpus shows as a ratio.

    python benchmarks/memory.py [--images 20000] [--model tiny|vit-b-32|ID]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import numpy as np
    from PIL import Image

    import pinembed
    from pinembed.embedders.tiny import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "imgs"
        rng = np.random.default_rng(0)
        for i in range(args.images):
            d = src / f"d{i // 1000:03d}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(d / f"{i:06d}.jpg", quality=80)
        model_id = (make_tiny_checkpoint(tmp / "m.pt", arch="ViT-B-32") if args.model == "vit-b-32"
                    else make_tiny_checkpoint(tmp / "m.pt") if args.model == "tiny" else args.model)
        idx = pinembed.open_index(str(tmp / "mem.lance"), model=model_id)
        _ = idx.embedder
        before = _rss_mb()
        samples: list[tuple[float, float]] = []  # (progress, rss)
        state = {"done": 0, "total": 1, "stop": False}

        def sampler():
            while not state["stop"]:
                samples.append((state["done"] / max(1, state["total"]), _rss_mb()))
                time.sleep(0.2)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        t = time.perf_counter()
        s = idx.ingest(src, progress=lambda d, n: state.update(done=d, total=n))
        state["stop"] = True
        th.join()
        elapsed = time.perf_counter() - t

    def quarter(lo, hi):
        vals = [r for p, r in samples if lo <= p < hi] or [0.0]
        return round(max(vals), 1)

    first, last = quarter(0.0, 0.25), quarter(0.75, 1.01)
    out = {"benchmark": "memory", "images": args.images, "model": args.model, "added": s.added,
           "elapsed_s": round(elapsed, 1), "rss_mb": {"after_model_load": round(before, 1),
                                                    "peak_first_quarter": first, "peak_last_quarter": last,
                                                    "peak": round(max(r for _, r in samples), 1)},
           "last_over_first_quarter": round(last / first, 3) if first else None, "cpus": os.cpu_count()}
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
