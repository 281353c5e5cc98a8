"""``pinembed train``: contrastive training of an open_clip model on image-text pairs from a folder.

Uses open_clip's own model factory and ClipLoss. Deterministic for a seed on a given machine. Writes
an open_clip ``local-dir`` model (``model_io.save_model``), loadable as ``open_clip:local-dir:<out>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pinembed.errors import UsageError

from .model_io import open_model, save_model, save_record, seed_all
from .pairs import load_pairs

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


def train(cfg: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train, save and return where the model is."""
    import torch
    from open_clip.loss import ClipLoss

    if cfg.dtype not in ("fp32", "fp16"):
        raise UsageError(f"--dtype must be fp32 or fp16, got {cfg.dtype!r}")
    t0 = time.perf_counter()
    seed_all(cfg.seed)
    model, preprocess, tokenizer, model_cfg, preprocess_cfg = open_model(cfg)
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
    save_record(out_dir, {**asdict(cfg), "pairs": n, "untexted": pairs.untexted, "failed_inputs": pairs.failed,
                          "steps": step, "first_loss": result.first_loss, "last_loss": result.last_loss,
                          "seconds": result.seconds})
    return result
