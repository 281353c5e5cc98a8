"""``pinembed train --pairs``: fine-tune an open_clip model on engaged pin pairs.

The run: read the pairs, keep those whose two pins are in the database, read the pins' media once
(``pin_media``), hold out the latest ``holdout`` share of pairs by timestamp, then train epoch by epoch
(``pair_tuner.PairTuner``, its loss terms in ``pair_losses``), measuring the held-out Recall@10 after
each epoch with the eval code over every pin read (epoch 0: the initial model). The best epoch is kept
(a run that never beats the initial model writes the initial weights) and training stops after
``patience`` epochs without a gain; the model is saved by ``model_io``. Deterministic for a seed on a
given machine (seeded shuffles, no data-loader threads).

What each term does and how the defaults were chosen (measured on benchmarks/engagement.py):
docs/engagement.md.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field

from pinembed.errors import UsageError
from pinembed.ingestion.options import DEFAULT_IDEA_TEXT_WEIGHT
from pinembed.store import Store

from .engagement_eval import known_pairs
from .engagement_pairs import read_pairs
from .model_io import open_model, save_model, save_record, seed_all
from .pair_tuner import PairTuner
from .pin_media import load_images, load_pin_media
from .train import Progress, TrainConfig


@dataclass
class PairTrainConfig:
    """Knobs of a fine-tuning run on engagement pairs."""

    pairs: str
    db: str
    out: str
    init: str | None = None  # an open_clip model id; None: the database's model
    epochs: int = 12  # seed 2 of the benchmark still gained at epoch 10 (+0.151), at 12 +0.166
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    holdout: float = 0.2
    patience: int = 2
    text_weight: float = 1.5
    seed: int = 0
    dtype: str = "fp32"
    max_frames: int = 4
    train_blocks: int | None = 2  # train only the image tower's last N blocks (+ its head); None: all of it
    anchor_weight: float = 30.0  # x mean squared drift of the anchor images' (else the pins') vectors
    idea_text_weight: float = DEFAULT_IDEA_TEXT_WEIGHT  # idea pins pool their texts as ingest does
    anchor_data: str | None = None  # a folder of images (e.g. the initial model's own training media) anchored too
    anchor_batch: int = 256  # anchor images per step (64 -> 256, 40 stills a label: seed 1 lost 0.031, not 0.116)
    negatives: int = 64  # pins of the database (outside the batch, no known positive) added as negatives a step
    negative_pool: int = 2000  # pins in no pair read for that (a seeded sample); also in the held-out ranking
    storage_options: dict[str, str] | None = None


@dataclass
class PairTrainResult:
    """What a run did. ``recall_at_10[e]``: held-out Recall@10 after epoch ``e`` (0: the initial model)."""

    model_id: str
    out: str
    init: str
    train_pairs: int
    heldout_pairs: int
    pins: int
    steps: int
    best_epoch: int
    recall_at_10: list[float]
    seconds: float
    train_seconds: float
    pairs_per_s: float
    left_out: dict[str, int] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def train_on_pairs(cfg: PairTrainConfig, progress: Progress | None = None) -> PairTrainResult:
    """Fine-tune, save the best epoch's model and return where it is."""
    import torch

    if cfg.dtype not in ("fp32", "fp16"):
        raise UsageError(f"--dtype must be fp32 or fp16, got {cfg.dtype!r}")
    t0 = time.perf_counter()
    pairs = read_pairs(cfg.pairs)
    store = Store(cfg.db, storage_options=cfg.storage_options)
    store.require_database()
    init = cfg.init or (store.identity or {}).get("model_id")
    known = set(store.pin_states(("pin_id",)).column("pin_id").to_pylist())
    keep, left_out = known_pairs(pairs, known)
    left_out["self_pairs"] = pairs.self_pairs
    pairs = pairs.subset(keep)
    if len(pairs) < 3:
        raise UsageError(f"{len(pairs)} pairs have both pins in the database; training needs at least 3",
                         "pin ids must be the ids ingest gave: `pinembed pins --db DB` lists them")
    seed_all(cfg.seed)
    model, preprocess, tokenizer, model_cfg, preprocess_cfg = open_model(TrainConfig(data="", out=cfg.out, init=init))
    size = preprocess_cfg.get("size", 224)
    paired = set(pairs.query) | set(pairs.engaged)
    unpaired = sorted(known - paired) if cfg.negatives else []  # extra negatives, in the held-out ranking too
    if len(unpaired) > cfg.negative_pool:
        unpaired = sorted(random.Random(cfg.seed).sample(unpaired, cfg.negative_pool))
    media = load_pin_media(store, paired | set(unpaired), preprocess,
                           int(size if isinstance(size, int) else max(size)), cfg.max_frames)
    left_out |= {"pins_missing": media.missing, "pins_failed": media.failed}
    keep = [i for i in range(len(pairs)) if pairs.query[i] in media.pixels and pairs.engaged[i] in media.pixels]
    left_out["pairs_unreadable"] = len(pairs) - len(keep)
    train, held = pairs.subset(keep).split_by_time(cfg.holdout)
    if len(train) < 2 or not len(held):
        raise UsageError(f"{len(train)} training and {len(held)} held-out pairs; training needs at least 2 and 1")

    anchors = None
    if cfg.anchor_data:
        anchors, left_out["anchor_images_unreadable"], left_out["anchor_images_over_limit"] = load_images(
            cfg.anchor_data, preprocess)
    tuner = PairTuner(model, tokenizer, media, cfg, anchors)
    tuner.use_negatives(train, [p for p in unpaired if p in media.pixels])
    recalls = [tuner.heldout_recall(held)]
    best, best_state, bad, losses, step = recalls[0], tuner.visual_state(), 0, [], 0
    n, bs = len(train), min(cfg.batch_size, len(train))
    steps_per_epoch = max(1, n // bs)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_s = 0.0
    total = steps_per_epoch * cfg.epochs
    for _epoch in range(cfg.epochs):
        t = time.perf_counter()
        order = torch.randperm(n, generator=gen).tolist()
        for b in range(steps_per_epoch):
            losses.append(tuner.step(train, order[b * bs:(b + 1) * bs]))
            step += 1
            if progress:
                progress(step, total, losses[-1])
        train_s += time.perf_counter() - t
        recalls.append(tuner.heldout_recall(held))
        if recalls[-1] > best:
            best, best_state, bad = recalls[-1], tuner.visual_state(), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.visual.load_state_dict(best_state)
    model.eval()
    out_dir = save_model(model.state_dict(), cfg.out, model_cfg, preprocess_cfg, cfg.dtype)
    best_epoch = recalls.index(best)
    result = PairTrainResult(
        f"open_clip:local-dir:{out_dir.resolve()}", str(out_dir), init, len(train), len(held), len(media.pixels),
        step, best_epoch, recalls, round(time.perf_counter() - t0, 1), round(train_s, 1),
        round(step * bs / train_s, 1) if train_s else 0.0, left_out, losses)
    save_record(out_dir, {**{k: v for k, v in asdict(cfg).items() if k != "storage_options"},
                          **{k: v for k, v in asdict(result).items() if k not in ("losses", "out")}})
    return result


def format_result(r: PairTrainResult) -> str:
    """What ``pinembed train --pairs`` prints."""
    curve = " -> ".join(f"{x:.3f}" for x in r.recall_at_10)
    return (f"fine-tuned {r.init} on {r.train_pairs} pairs ({r.pins} pins), {r.steps} steps in {r.seconds:.0f}s "
            f"({r.pairs_per_s} pairs/s)\nheld-out Recall@10 by epoch ({r.heldout_pairs} pairs): {curve}; "
            f"kept epoch {r.best_epoch}\nmodel id: {r.model_id}\n"
            f"switch a database to it: pinembed refresh SRC --db DB --model {r.model_id}")
