"""GPU ingestion against the hardware's ceilings, as one JSON object (issue 15). Runs with no network.

In one run, on the same 800x600 photo-like JPEGs (60-170 KB) and ViT-B-32 (random weights, saved locally):
- e2e: `pinembed ingest` (a subprocess, as a user runs it) from local disk into a local database, with its
  defaults on this device; wall time, the run's own rate, the steady rate and start-up (imports, CUDA,
  model load) reported apart;
- decode ceiling: JPEG bytes already in memory -> the device decoder and the model's transform in batches
  (no model), the path's own upper bound;
- model ceiling: the model alone on preprocessed batches at the ingest's precision;
- parity: the device path against the CPU pipeline (PIL, the model's transform), per-image cosine of the
  vectors, the minimum reported;
- text: query-time text encoding (one text) eager and through the captured CUDA graph, and search_text
  latency on the built database;
- video: a folder of short clips through `pinembed ingest` (frames decoded by the CPU worker processes),
  frames per second.

    python benchmarks/gpu_ingest.py                      # CUDA: 4,096 images, about 3-5 minutes
    python benchmarks/gpu_ingest.py --images 64 --videos 4   # a CPU smoke run (the same keys)

Goal on one H100: e2e_images_per_s >= 10,000 and >= 0.8 x min(decode ceiling, model ceiling).
Writes $OUT/gpu_ingest.json too when $OUT is set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _photo(args: tuple[int, str]) -> int:
    """One 800x600 photo-like JPEG (smooth fields, shapes and grain: 60-170 KB at quality 90)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    i, path = args
    rng = np.random.default_rng(i)
    w, h = (800, 600) if i % 4 else (600, 800)
    im = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        box = (x0, y0, x0 + int(rng.integers(40, w // 2)), y0 + int(rng.integers(40, h // 2)))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    grain = rng.normal(0, float(rng.uniform(3, 7)), (h, w, 3))
    Image.fromarray(np.clip(np.asarray(im, np.float32) + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
    return os.path.getsize(path)


def _clip(args: tuple[int, str]) -> None:
    """A 4 s, 24 fps 320x240 clip written with PyAV."""
    import av
    import numpy as np

    i, path = args
    rng = np.random.default_rng(1000 + i)
    with av.open(path, "w") as out:
        s = out.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        base = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        for t in range(96):
            frame = np.roll(base, 3 * t, axis=1)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _cli(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pinembed.cli.main", *args, "--json"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode not in (0, 3):
        raise SystemExit(f"pinembed {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout), wall


def _ms(fn, n: int) -> float:
    import statistics

    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--parity-images", type=int, default=256)
    ap.add_argument("--device", default=None, help="cuda when present, else cpu")
    ap.add_argument("--work", default=None, help="folder for the media and databases (default: a temp folder)")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import numpy as np
    import torch

    from pinembed.embedders import get_embedder
    from pinembed.embedders.device import cpu_count
    from pinembed.embedders.device_preprocess import backend_in_use
    from pinembed.embedders.tiny import make_tiny_checkpoint
    from pinembed.ingestion.image_decode import decode_image

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    work = Path(args.work or tempfile.mkdtemp(prefix="pinembed-gpu-"))
    src, vids = work / "photos", work / "videos"
    src.mkdir(parents=True, exist_ok=True)
    vids.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with ProcessPoolExecutor(cpu_count()) as ex:
        sizes = list(ex.map(_photo, [(i, str(src / f"p{i:05d}.jpg")) for i in range(args.images)], chunksize=16))
        list(ex.map(_clip, [(i, str(vids / f"v{i:03d}.mp4")) for i in range(args.videos)]))
    made_s = time.perf_counter() - t
    model_id = make_tiny_checkpoint(work / "vitb32.pt", arch="ViT-B-32")
    env = {**os.environ, "PINEMBED_DEVICE": device, "PINEMBED_CACHE_DIR": str(work / "cache")}

    # end to end, as a user runs it (defaults for this device), then the same media again for video
    summary, wall = _cli(["ingest", str(src), "--db", str(work / "photos.lance"), "--model", model_id], env)
    vsum, vwall = _cli(["ingest", str(vids), "--db", str(work / "videos.lance"), "--model", model_id], env)

    emb = get_embedder(model_id, device)
    dev = emb.device_preprocessor()
    blobs = [p.read_bytes() for p in sorted(src.iterdir())]
    bs = 256 if cuda else 32

    def decode_all() -> None:
        for i in range(0, len(blobs), bs):
            dev(blobs[i : i + bs])
        sync()

    decode_all()  # warm-up (nvJPEG handles, kernels)
    t = time.perf_counter()
    decode_all()
    decode_ceiling = len(blobs) / (time.perf_counter() - t)

    batch = torch.randn(bs, 3, emb.image_size, emb.image_size)
    pixels = list(batch.to(device, emb.dtype))
    emb.embed_pixels(pixels)
    n_model = max(len(blobs), 8 * bs)
    sync()
    t = time.perf_counter()
    for _ in range(n_model // bs):
        emb.embed_pixels(pixels)
    sync()
    model_ceiling = (n_model // bs) * bs / (time.perf_counter() - t)

    sample = blobs[: args.parity_images]
    on_device, failed = dev(sample)
    keep = [i for i in range(len(sample)) if i not in set(failed)]
    cpu_pixels = [emb.preprocess(decode_image(sample[i]).image) for i in keep]
    a = emb.embed_pixels([on_device[i] for i in keep])
    b = np.concatenate([emb.embed_pixels(cpu_pixels[i : i + bs]) for i in range(0, len(cpu_pixels), bs)])
    parity = np.sum(a * b, axis=1)

    import pinembed

    text = "a red circle on a white table"
    emb.embed_texts([text])
    graph_ms = _ms(lambda: emb.embed_texts([text]), 50)

    def eager() -> None:
        with torch.inference_mode():
            emb.model.encode_text(emb.tokenizer([text]).to(device)).float().cpu()

    eager()
    eager_ms = _ms(eager, 50)
    idx = pinembed.open_index(str(work / "photos.lance"), device=device)
    idx.search_text(text, k=10)
    search_ms = _ms(lambda: idx.search_text(text, k=10), 30)

    e2e = summary["added"] / wall
    ceiling = min(decode_ceiling, model_ceiling)
    out = {
        "benchmark": "gpu_ingest", "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cpus": cpu_count(), "torch": torch.__version__, "images": args.images,
        "jpeg_kb": {"min": round(min(sizes) / 1024, 1), "max": round(max(sizes) / 1024, 1)},
        "precision": summary.get("precision"), "decoder": backend_in_use(dev.backend),
        "e2e_images_per_s": round(e2e, 1),
        "decode_ceiling_images_per_s": round(decode_ceiling, 1),
        "model_ceiling_images_per_s": round(model_ceiling, 1),
        "parity_min_cosine": round(float(parity.min()), 5),
        "e2e_over_lower_ceiling": round(e2e / ceiling, 3),
        "run": {"wall_s": round(wall, 2), "elapsed_s": summary["elapsed_s"], "items_per_s": summary["items_per_s"],
                "steady_images_per_s": summary.get("steady_items_per_s"), "stage_s": summary["stage_s"],
                "startup_s": round(wall - summary["elapsed_s"] + summary["stage_s"].get("model", 0.0), 2),
                "failed": summary["failed"], "cpu_fallbacks": summary.get("cpu_fallbacks")},
        "parity": {"images": len(keep), "device_refused": len(failed), "mean_cosine": round(float(parity.mean()), 6)},
        "video": {"clips": args.videos, "frames": vsum.get("embedded_images"), "wall_s": round(vwall, 2),
                  "frames_per_s": round(vsum.get("embedded_images", 0) / max(vsum["elapsed_s"], 1e-9), 1),
                  "stage_s": vsum["stage_s"]},
        "text": {"encode_one_eager_ms": eager_ms, "encode_one_ms": graph_ms, "search_text_p50_ms": search_ms,
                 "cuda_graph": bool(getattr(emb, "_text_graphs", None) is not None and not emb._text_graphs.broken)},
        "media_made_s": round(made_s, 1),
    }
    text_out = json.dumps(out, indent=2)
    print(text_out)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_ingest.json").write_text(text_out)


if __name__ == "__main__":
    main()
