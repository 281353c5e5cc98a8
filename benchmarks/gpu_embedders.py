"""GPU check of the embedders (needs CUDA), as one JSON object.

- fp16 on the GPU against fp32 on the CPU: the lowest cosine over images and texts;
- the space identity on both devices (must be equal, or a GPU-built database would not open on a CPU);
- ViT-B-32 (random weights) forward throughput, fp16 against fp32, and one thread's preprocessing rate.

    python benchmarks/gpu_embedders.py        # writes $OUT/gpu.json too when $OUT is set
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # hf_models: a tiny HF CLIP


def _min_cosine(a, b) -> float:
    import numpy as np

    return round(float(np.min(np.sum(a * b, axis=1))), 7)


def _throughput(emb, pixels, batch: int, n: int = 4096) -> float:
    import torch

    data = (pixels * (batch // len(pixels) + 1))[:batch]
    emb.embed_pixels(data)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n // batch):
        emb.embed_pixels(data)
    torch.cuda.synchronize()
    return round(n / (time.perf_counter() - t), 1)


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    import numpy as np
    import torch
    from PIL import Image

    from pinembed.embedders.hf_embedder import HFEmbedder
    from pinembed.embedders.open_clip_embedder import OpenClipEmbedder
    from pinembed.embedders.tiny import make_tiny_checkpoint
    from pinembed.store.identity import same_space

    from hf_models import save_tiny_clip

    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_embedders", "skipped": "no CUDA device"}))
        return
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (180 + i, 240, 3), dtype=np.uint8)) for i in range(16)]
    texts = ["a red circle", "pasta night recipe", "blue sneakers on white", "x" * 300]
    spec = make_tiny_checkpoint(tmp / "vitb32.pt", arch="ViT-B-32").split(":", 1)[1]
    cpu, gpu = OpenClipEmbedder(spec, device="cpu"), OpenClipEmbedder(spec, device="cuda")
    out = {"benchmark": "gpu_embedders", "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "gpu_dtype": str(gpu.dtype)}
    out["vitb32_fp16_vs_cpu_fp32_min_cosine"] = {
        "images": _min_cosine(cpu.embed_images(images), gpu.embed_images(images)),
        "texts": _min_cosine(cpu.embed_texts(texts), gpu.embed_texts(texts)),
    }
    out["identity_equal_cpu_gpu"] = same_space(cpu.identity(), gpu.identity())  # precision differs
    t = time.perf_counter()
    pixels = [gpu.preprocess(images[i % len(images)]) for i in range(256)]
    out["cpu_preprocess_images_per_s_one_thread"] = round(256 / (time.perf_counter() - t), 1)
    out["vitb32_fp16_images_per_s"] = {f"batch_{b}": _throughput(gpu, pixels, b) for b in (64, 256)}
    fp32 = OpenClipEmbedder(spec, device="cuda")
    fp32.model, fp32.dtype = fp32.model.float(), torch.float32
    out["vitb32_fp32_images_per_s_batch_256"] = _throughput(fp32, pixels, 256)
    out["fp16_over_fp32"] = round(out["vitb32_fp16_images_per_s"]["batch_256"] / out["vitb32_fp32_images_per_s_batch_256"], 2)
    hf_dir = save_tiny_clip(tmp / "hfclip")
    hc, hg = HFEmbedder(str(hf_dir), device="cpu"), HFEmbedder(str(hf_dir), device="cuda")
    out["hf_clip_fp16_vs_cpu_min_cosine"] = {
        "images": _min_cosine(hc.embed_images(images), hg.embed_images(images)),
        "texts": _min_cosine(hc.embed_texts(texts), hg.embed_texts(texts)),
    }
    out["hf_identity_equal_cpu_gpu"] = same_space(hc.identity(), hg.identity())
    text = json.dumps(out, indent=1)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu.json").write_text(text)


if __name__ == "__main__":
    main()
