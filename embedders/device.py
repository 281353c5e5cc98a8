"""Device and precision choice: CUDA with fp16 when present, CPU fp32 otherwise."""

from __future__ import annotations

import os


def pick_device(requested: str | None = None) -> str:
    """The torch device to run on: ``requested``, ``$PINEMBED_DEVICE``, else cuda when present, else cpu."""
    choice = requested or os.environ.get("PINEMBED_DEVICE")
    if choice:
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str):
    """fp16 on CUDA; fp32 on CPU (bf16 autocast is ~10x slower on CPUs without bf16 units)."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32
