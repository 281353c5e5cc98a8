"""Ingest throughput on sample_media/, as one JSON object.

For each model it measures, in the same run: the whole pipeline (discover, decode, preprocess, embed,
write) in items/s, and the model alone (forward passes over already-preprocessed batches). Their
ratio says how close the pipeline runs to what the model allows on this machine.

    python benchmarks/ingest_throughput.py [--models tiny,vit-b-32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _model_ids(tmp: Path, names: list[str]) -> dict[str, str]:
    from pinembed.embedders.tiny import make_tiny_checkpoint

    ids = {}
    for name in names:
        if name == "tiny":
            ids[name] = make_tiny_checkpoint(tmp / "tiny.pt")
        elif name == "vit-b-32":  # the real architecture with random weights (no download here)
            ids[name] = make_tiny_checkpoint(tmp / "vit-b-32-random.pt", arch="ViT-B-32")
        else:
            ids[name] = name  # any model id, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k where cached
    return ids


def _model_only(embedder, src: Path, batch_size: int) -> float:
    from PIL import Image

    paths = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    pixels = [embedder.preprocess(Image.open(p).convert("RGB")) for p in paths]
    embedder.embed_pixels(pixels[:batch_size])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(pixels), batch_size):
        embedder.embed_pixels(pixels[i : i + batch_size])
    return len(pixels) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="tiny,vit-b-32")
    ap.add_argument("--src", type=Path, default=REPO / "sample_media")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    import torch

    import pinembed
    from pinembed.embedders import get_embedder
    from pinembed.ingestion.pipeline import IngestOptions

    out = {"benchmark": "ingest_throughput", "src": str(args.src), "batch_size": args.batch_size,
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "cuda": torch.cuda.is_available(), "python": platform.python_version()},
           "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, model_id in _model_ids(tmp, args.models.split(",")).items():
            embedder = get_embedder(model_id)
            best = None
            for r in range(args.repeat):
                idx = pinembed.open_index(str(tmp / f"{name}-{r}.lance"), model=model_id)
                s = idx.ingest(args.src, IngestOptions(batch_size=args.batch_size))
                best = s if best is None or s.items_per_s > best.items_per_s else best
            model_only = _model_only(embedder, args.src, args.batch_size)
            out["models"][name] = {
                "model_id": model_id if name != "tiny" and name != "vit-b-32" else f"{name} (random weights)",
                "dim": embedder.dim,
                "image_size": embedder.image_size,
                "images": best.added,
                "pipeline_items_per_s": best.items_per_s,
                "model_only_items_per_s": round(model_only, 2),
                "pipeline_over_model_only": round(best.items_per_s / model_only, 3),
            }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
