"""Device and precision choice: CUDA with fp16 when present; on a CPU, int8 when the model holds its
quality in int8 (``auto_precision``), else fp32."""

from __future__ import annotations

import os
import warnings
from typing import Any

from pinembed.errors import UsageError

PRECISIONS = ("auto", "fp32", "fp16", "int8")


def pick_device(requested: str | None = None) -> str:
    """The torch device to run on: ``requested``, ``$PINEMBED_DEVICE``, else cuda when present, else cpu."""
    choice = requested or os.environ.get("PINEMBED_DEVICE")
    if choice:
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_precision(device: str, requested: str | None = None) -> str:
    """The precision asked for (``requested`` or ``$PINEMBED_PRECISION``, default auto), checked against
    the device: fp16 for auto on CUDA; on a CPU auto stays "auto", which the embedder settles once its
    fp32 weights are loaded (int8 when the model holds its quality in int8 and is faster, else fp32:
    see ``auto_precision``).

    int8 is dynamic quantization of Linear layers, a CPU speed-up; bf16 is never chosen (about 10x
    slower than fp32 on CPUs without bf16 units)."""
    choice = (requested or os.environ.get("PINEMBED_PRECISION") or "auto").lower()
    if choice not in PRECISIONS:
        raise UsageError(f"unknown precision {choice!r}", f"choose one of {', '.join(PRECISIONS)}")
    cuda = device.startswith("cuda")
    if choice == "auto":
        return "fp16" if cuda else "auto"
    if choice == "int8" and cuda:
        raise UsageError("int8 is a CPU option (dynamic quantization)", "use fp16 on CUDA")
    if choice == "fp16" and not cuda:
        raise UsageError("fp16 is a CUDA option; on a CPU it is slower than fp32", "use fp32 or int8 on a CPU")
    return choice


def apply_precision(model: Any, precision: str) -> tuple[Any, Any]:
    """(model, input dtype) for ``precision``. Take the weights digest before calling this."""
    import torch

    if precision == "fp16":
        return model.half(), torch.float16
    if precision == "int8":
        with warnings.catch_warnings():  # torch 2.14 deprecates the quantized tensor factories it uses here
            warnings.simplefilter("ignore", UserWarning)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        for m in model.modules():  # open_clip asks a block's c_fc for the dtype to cast inputs to
            if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
                m.int8_original_dtype = torch.float32
    return model, torch.float32


def cpu_count() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota (containers).
    ``os.cpu_count()`` and torch's default both see the host's cores, which oversubscribes a container."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def set_cpu_threads(threads: int | None = None) -> int:
    """Give torch ``threads`` intra-op threads (default ``$PINEMBED_THREADS``, else every usable CPU).

    One thread per usable core measured best here: the read threads spend their time in PIL's C code
    with the GIL released and mostly overlap the forward pass (benchmarks/ingest_images.py)."""
    import torch

    n = threads or int(os.environ.get("PINEMBED_THREADS") or 0) or cpu_count()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
