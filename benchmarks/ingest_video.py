"""Video ingestion throughput on 10 s 640x360 h264 clips, as one JSON object.

For each model: videos/s and frames/s of the whole pipeline, and the split of its time between
decoding (summed over reader threads), embedding and writing; plus decode-only and embed-only rates
measured in the same run, so the numbers compare as ratios.

    python benchmarks/ingest_video.py [--clips 8] [--gop 250] [--models tiny,vit-b-32]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # helpers.write_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--gop", type=int, default=250, help="keyframe interval of the generated clips")
    ap.add_argument("--models", default="tiny,vit-b-32")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    from PIL import Image

    import pinembed
    from pinembed.embedders import get_embedder
    from pinembed.embedders.tiny import make_tiny_checkpoint
    from pinembed.ingestion.options import IngestOptions
    from pinembed.ingestion.video_decode import VideoParams, decode_video

    from helpers import write_video

    out = {"benchmark": "ingest_video", "clips": args.clips, "clip": "10 s 640x360 h264 24 fps",
           "gop": args.gop, "sampling": "1 fps, max 12 frames", "cpus": os.cpu_count(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "clips"
        for i in range(args.clips):
            write_video(src / f"clip{i}.mp4", w=640, h=360, secs=10, fps=24, gop=args.gop)
        ids = {"tiny": make_tiny_checkpoint(tmp / "tiny.pt"),
               "vit-b-32": make_tiny_checkpoint(tmp / "vitb32.pt", arch="ViT-B-32")}
        for name in args.models.split(","):
            emb = get_embedder(ids[name])
            idx = pinembed.open_index(str(tmp / f"{name}.lance"), model=ids[name])
            s = idx.ingest(src, IngestOptions(batch_size=args.batch_size))
            frames = s.embedded_images
            # decode alone, one process, the same sampling
            params = VideoParams(target_side=emb.image_size)
            t = time.perf_counter()
            decoded = [decode_video(str(p), params) for p in sorted(src.iterdir())]
            decode_only = len(decoded) / (time.perf_counter() - t)
            # embed alone, the same frames
            pixels = [emb.preprocess(Image.fromarray(f)) for d in decoded for f in d.frames]
            t = time.perf_counter()
            for i in range(0, len(pixels), args.batch_size):
                emb.embed_pixels(pixels[i : i + args.batch_size])
            embed_only = len(pixels) / (time.perf_counter() - t)
            out["models"][name] = {
                "videos": s.added, "frames": frames, "failed": s.failed,
                "pipeline_videos_per_s": round(s.added / s.elapsed_s, 3),
                "pipeline_frames_per_s": round(frames / s.elapsed_s, 2),
                "elapsed_s_share": {k: round(v / s.elapsed_s, 3) for k, v in s.stage_s.items()},
                "decode_only_videos_per_s_one_process": round(decode_only, 3),
                "embed_only_frames_per_s": round(embed_only, 2),
                "pipeline_over_embed_only": round(frames / s.elapsed_s / embed_only, 3),
            }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
