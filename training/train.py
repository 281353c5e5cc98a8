"""``pinembed train``: contrastive training of an open_clip model on image-text pairs from a folder.

Uses open_clip's own model factory and ClipLoss. Deterministic for a seed on a given machine. Writes
an open_clip ``local-dir`` model: ``open_clip_config.json`` (architecture and preprocessing) beside
``open_clip_model.safetensors``, loadable as ``open_clip:local-dir:<out>``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pinembed.errors import UsageError

Progress = Callable[[int, int, float], None]


@dataclass
class TrainConfig:
    """Knobs of a training run."""

    data: str
    out: str
    arch: str = "pinembed-nano"  # an open_clip config name or a JSON config file
    init: str | None = None  # an open_clip model id to fine-tune (else random init)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0
    dtype: str = "fp32"  # of the saved weights: fp32, or fp16 (half the size)


@dataclass
class TrainResult:
    """What a run did."""

    model_id: str
    out: str
    pairs: int
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    losses: list[float] = field(default_factory=list)


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _arch(arch: str) -> str:
    import open_clip

    from pinembed.embedders.open_clip_embedder import CONFIG_DIR

    if CONFIG_DIR not in open_clip.factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(CONFIG_DIR)
    if arch.endswith(".json"):
        path = Path(arch)
        if not path.is_file():
            raise UsageError(f"architecture file {arch!r} does not exist")
        open_clip.add_model_config(path)
        arch = path.stem
    if arch not in open_clip.list_models():
        raise UsageError(f"unknown open_clip architecture {arch!r}", "give a name from open_clip.list_models() "
                         "or a JSON config file (see embedders/model_configs/)")
    return arch


def _model(cfg: TrainConfig) -> tuple[Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """(model, preprocess, tokenizer, model_cfg, preprocess_cfg), fp32 on the CPU."""
    import open_clip

    from pinembed.embedders import get_embedder
    from pinembed.embedders.open_clip_embedder import OpenClipEmbedder

    if cfg.init:
        emb = get_embedder(cfg.init, "cpu", "fp32")  # training needs the fp32 weights, never int8
        if not isinstance(emb, OpenClipEmbedder):
            raise UsageError(f"--init {cfg.init!r} is not an open_clip model", "fine-tuning takes open_clip models")
        model = copy.deepcopy(emb.model).float()  # never train the cached embedder in place
        model_cfg = {**(emb.model_cfg or {}), "quick_gelu": emb.quick_gelu}
        return model, emb.preprocess, emb.tokenizer, model_cfg, dict(emb.preprocess_cfg)
    arch = _arch(cfg.arch)
    logging.disable(logging.WARNING)  # open_clip warns that a new model starts random: that is the point
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch)
    finally:
        logging.disable(logging.NOTSET)
    return (model, preprocess, open_clip.get_tokenizer(arch), open_clip.get_model_config(arch),
            dict(open_clip.get_model_preprocess_cfg(model)))


def train(cfg: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train, save and return where the model is."""
    import torch
    from open_clip.loss import ClipLoss

    from .pairs import load_pairs

    if cfg.dtype not in ("fp32", "fp16"):
        raise UsageError(f"--dtype must be fp32 or fp16, got {cfg.dtype!r}")
    t0 = time.perf_counter()
    _seed(cfg.seed)
    model, preprocess, tokenizer, model_cfg, preprocess_cfg = _model(cfg)
    size = preprocess_cfg.get("size", 224)
    pairs = load_pairs(cfg.data, image_size=int(size if isinstance(size, int) else max(size)))
    n = len(pairs.texts)
    if n < 2:
        raise UsageError(f"found {n} image-text pairs under {cfg.data!r}; training needs at least 2",
                         "images need a sidecar title (photo.txt or photo.json); idea-pin pages need text")
    images = torch.stack([preprocess(im) for im in pairs.images])
    tokens = tokenizer(pairs.texts)
    del pairs.images
    model.train()
    model.output_dict = True
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in name]
    no_decay = [p for name, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in name)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs
    total = steps_per_epoch * cfg.epochs
    warmup = min(cfg.warmup_steps, max(1, total // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    loss_fn = ClipLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * bs : (b + 1) * bs]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = model(images[idx], tokens[idx])
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(round(float(loss.detach()), 5))
            step += 1
            if progress:
                progress(step, total, losses[-1])
    model.eval()
    out_dir = save_model(model.state_dict(), cfg.out, model_cfg, preprocess_cfg, cfg.dtype)
    result = TrainResult(f"open_clip:local-dir:{out_dir.resolve()}", str(out_dir), n, step,
                         losses[0] if losses else math.nan, losses[-1] if losses else math.nan,
                         round(time.perf_counter() - t0, 1), losses)
    meta = {**asdict(cfg), "pairs": n, "untexted": pairs.untexted, "failed_inputs": pairs.failed,
            "steps": step, "first_loss": result.first_loss, "last_loss": result.last_loss,
            "seconds": result.seconds, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    (out_dir / "training.json").write_text(json.dumps(meta, indent=2))
    return result


def save_model(state: dict[str, Any], out: str | os.PathLike[str], model_cfg: dict[str, Any],
               preprocess_cfg: dict[str, Any], dtype: str = "fp32") -> Path:
    """Write an open_clip local-dir model (``open_clip_config.json`` + ``open_clip_model.safetensors``)
    from a state dict; returns the folder."""
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    to = torch.float16 if dtype == "fp16" else torch.float32
    tensors = {k: v.detach().to(to).contiguous().clone() for k, v in state.items()}
    tmp = out_dir / "open_clip_model.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out_dir / "open_clip_model.safetensors")  # only our own file is replaced
    (out_dir / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": _jsonable(preprocess_cfg)}, indent=2))
    return out_dir


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
