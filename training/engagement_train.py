"""``pinembed train --pairs``: fine-tune an open_clip model on engaged pin pairs.

- Both sides of a pair are pins, embedded with the image tower: an image pin from its pixels, a video
  from its sampled frames, an idea pin from its pages (and their frames) mean-pooled by page, plus its
  texts (title and description, page texts) at ``idea_text_weight``, exactly as ingest pools the stored
  vectors (``pin_media.pooled``), so what is trained is what is searched. The media are read once
  through ingest's read stage, from the sources the database recorded, and kept for every epoch.
- Only the image tower's last ``train_blocks`` blocks and its head learn (None: all of it). The frozen
  trunk (patch embedding and the first blocks) runs once per part up front and its tokens are kept, so a
  step costs the trained blocks only. The text tower and the logit scale are frozen, and text vectors
  (and titles') stay where they were.
- Loss: a symmetric InfoNCE over in-batch negatives (query->engaged and engaged->query, the model's
  own logit scale), each pair weighted by its ``weight``; an in-batch pin that is the row's own engaged
  or query pin is no negative. Each step adds ``negatives`` pins of the database outside the batch (as
  ItemSage and OmniSearchSage add random negatives): drawn from the training pairs' pins and a seeded
  sample of up to ``negative_pool`` pins in no pair, never from pins only held-out pairs name, and a
  pin known engaged with the row's pin is masked. The full ranking puts every pin of the database
  between a pair, not only engaged ones; on benchmarks/engagement.py seed 2 the gain went from +0.122
  (in-batch only) to +0.151, the label precision lost from 0.014 to 0.001 (10 epochs, anchor 20). With
  12 epochs and anchor 30 (the defaults): +0.176 and 0.008 on seed 2, +0.188 and 0.025 on seed 1.
  Plus ``text_weight`` x a CLIP image-text term between the batch's pins and their titles, so text search keeps working and what a pin shows (its title names it) keeps
  counting, and ``anchor_weight`` x a drift term that keeps what the model saw before where it was.
  With ``anchor_data`` (a folder of images: best the media the initial model was trained on) the drift
  is that of a seeded sample of those images per step from their initial vectors (rehearsal), and the
  pins move freely: the pins of one database say nothing of how the model should keep seeing other
  content. Without ``anchor_data`` the drift is the batch's pins' own, from their vectors under the
  initial model (computed once). Measured on benchmarks/engagement.py (seed 0, 8 epochs): half the
  anchor (15) on the pins and half on the rehearsal images gained +0.13 held-out Recall@10 and lost
  0.047 related precision@10 by label; all of it (20) on the rehearsal images +0.17 and 0.066; the same
  with text weight 2 instead of 0.5 +0.14 and 0.034: the title term, not the anchor, is what keeps
  related-by-content (its labels) while the pins learn engagement. With 1.5 at 10 epochs and a
  192-image rehearsal sample, 64 a step: +0.150 and 0.046 on seed 0, +0.160 and 0.116 on seed 1. What
  holds the eval world is the rehearsal sample's size: 2,688 images, 256 a step (the defaults of the
  benchmark): +0.160 and 0.014 on seed 0, +0.173 and 0.031 on seed 1.
- Split: the latest ``holdout`` share of pairs by timestamp is held out. After every epoch the
  held-out Recall@10 is measured with the eval code (``engagement_eval.exact_ranks``; the index is
  every pin of the pairs file and the pins in no pair read for negatives, embedded by the model being
  trained: with the pins in no pair under ``negative_pool``, the eval protocol's own figure); the best
  epoch is kept and training stops after ``patience`` epochs without a gain. Epoch 0 is the initial
  model: a run that never beats it writes the initial weights.
- Deterministic for a seed on a given machine (seeded shuffles, no data-loader threads).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pinembed.errors import UsageError
from pinembed.ingestion.options import DEFAULT_IDEA_TEXT_WEIGHT
from pinembed.metrics import recall_from_ranks

from .engagement_eval import exact_ranks, known_pairs
from .engagement_pairs import EngagementPairs, read_pairs
from .train import Progress, TrainConfig, _model, _seed, save_model


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

    from pinembed.store import Store

    from .pin_media import load_pin_media

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
    _seed(cfg.seed)
    model, preprocess, tokenizer, model_cfg, preprocess_cfg = _model(TrainConfig(data="", out=cfg.out, init=init))
    size = preprocess_cfg.get("size", 224)
    paired = set(pairs.query) | set(pairs.engaged)
    unpaired = sorted(known - paired) if cfg.negatives else []  # extra negatives, in the held-out ranking too
    if len(unpaired) > cfg.negative_pool:
        import random

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
        from .pin_media import load_images

        anchors, left_out["anchor_images_unreadable"], left_out["anchor_images_over_limit"] = load_images(
            cfg.anchor_data, preprocess)
    tuner = _Tuner(model, tokenizer, media, cfg, anchors)
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
    meta = {**{k: v for k, v in asdict(cfg).items() if k != "storage_options"},
            **{k: v for k, v in asdict(result).items() if k not in ("losses", "out")},
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    (out_dir / "training.json").write_text(json.dumps(meta, indent=2))
    return result


class _Tuner:
    """The model, the cached inputs and the frozen text vectors; one optimiser step at a time.

    With ``train_blocks`` set, the frozen trunk of the image tower (patch embedding and the first blocks)
    runs once per part up front and its tokens are kept: a step runs only the trained blocks and the
    head. The pin vectors of the initial model are kept too, for the anchor term."""

    def __init__(self, model: Any, tokenizer: Any, media: Any, cfg: PairTrainConfig, anchors: Any = None) -> None:
        import torch

        self.model, self.media, self.cfg = model, media, cfg
        for p in model.parameters():
            p.requires_grad_(False)
        visual = model.visual
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        self.trunk = 0  # frozen blocks whose output is cached
        if cfg.train_blocks is not None and blocks is not None:
            if not 1 <= cfg.train_blocks <= len(blocks):
                raise UsageError(f"--train-blocks must be between 1 and {len(blocks)} (the image tower's blocks), "
                                 f"got {cfg.train_blocks}")
            for m in (*blocks[len(blocks) - cfg.train_blocks:], getattr(visual, "ln_post", None)):
                for p in m.parameters() if m is not None else ():
                    p.requires_grad_(True)
            if isinstance(getattr(visual, "proj", None), torch.nn.Parameter):
                visual.proj.requires_grad_(True)
            plain = (getattr(visual, "attn_pool", None) is None and hasattr(visual, "_embeds")
                     and isinstance(getattr(visual, "patch_dropout", None), torch.nn.Identity))
            self.trunk = len(blocks) - cfg.train_blocks if plain else 0
        else:
            for p in visual.parameters():
                p.requires_grad_(True)
        self.scale = float(min(model.logit_scale.exp().item(), 100.0))
        self.pins = sorted(media.pixels)
        model.eval()
        with torch.no_grad():
            titles = [media.titles[p] or "" for p in self.pins]
            tv = self._texts(tokenizer, titles)
            self.title_vec = {p: tv[i] for i, p in enumerate(self.pins)}
            first: dict[str, int] = {}
            self.title_id = {p: first.setdefault(t, len(first)) for p, t in zip(self.pins, titles, strict=True)}
            # an idea pin's stored vector mixes in its texts (ingest's idea text weight): train what is searched
            self.text_vec = {p: torch.nn.functional.normalize(self._texts(tokenizer, t).mean(0), dim=-1)
                             for p, t in media.texts.items() if t and cfg.idea_text_weight}
            self.inputs = {p: self._trunk(media.pixels[p]) for p in self.pins}
            self.initial = dict(zip(self.pins, self.all_vectors(), strict=True))
            # anchor images: what the initial model saw elsewhere (its own training media) stays put
            self.anchor_cat = 1 if self.trunk and not model.visual.transformer.batch_first else 0
            parts = [self._trunk(anchors[i:i + 256]) for i in range(0, len(anchors), 256)] if anchors is not None else []
            self.anchor_in = torch.cat(parts, dim=self.anchor_cat) if parts else None
            self.anchor_v0 = torch.cat([self._normalised(x) for x in parts]) if parts else None
            self.anchor_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.neg_pool: list[str] = []
        self.positive: set[tuple[str, str]] = set()
        self.neg_gen = torch.Generator().manual_seed(cfg.seed + 2)
        params = [p for p in visual.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    def use_negatives(self, train: EngagementPairs, unpaired: list[str]) -> None:
        """Draw each step's extra negatives from the training pairs' pins and ``unpaired`` (pins in no pair),
        never from a pin known only from held-out pairs; a pin engaged with the row's pin is no negative."""
        if self.cfg.negatives:
            self.neg_pool = sorted(set(train.query) | set(train.engaged) | set(unpaired))
            self.positive = {(q, e) for q, e in zip(train.query, train.engaged, strict=True)}
            self.positive |= {(e, q) for q, e in self.positive}

    def _negatives(self, batch: set[str]) -> list[str]:
        """Up to ``negatives`` pins of the pool outside ``batch`` (seeded)."""
        import torch

        if not self.neg_pool:
            return []
        draw = torch.randint(len(self.neg_pool), (2 * self.cfg.negatives,), generator=self.neg_gen).tolist()
        return list(dict.fromkeys(p for p in (self.neg_pool[i] for i in draw) if p not in batch))[:self.cfg.negatives]

    def _texts(self, tokenizer: Any, texts: list[str]) -> Any:
        import torch

        return torch.cat([self.model.encode_text(tokenizer(texts[i:i + 256]), normalize=True)
                          for i in range(0, len(texts), 256)])

    def _trunk(self, pixels: Any) -> Any:
        """The frozen part of the image tower on ``pixels`` (the pixels themselves when nothing is cached)."""
        if not self.trunk:
            return pixels
        v = self.model.visual
        x = v._embeds(pixels)
        if not v.transformer.batch_first:
            x = x.transpose(0, 1)
        for block in v.transformer.resblocks[:self.trunk]:
            x = block(x)
        return x

    def _features(self, x: Any) -> Any:
        """Image features from cached trunk outputs (or pixels)."""
        if not self.trunk:
            return self.model.encode_image(x)
        v = self.model.visual
        for block in v.transformer.resblocks[self.trunk:]:
            x = block(x)
        if not v.transformer.batch_first:
            x = x.transpose(0, 1)
        out, _ = v._pool(x)
        return out @ v.proj if v.proj is not None else out

    def _normalised(self, x: Any) -> Any:
        import torch

        return torch.nn.functional.normalize(self._features(x), dim=-1)

    def _anchor_loss(self) -> Any:
        """Mean squared drift of a seeded sample of the anchor images from their initial vectors."""
        import torch

        pick = torch.randperm(len(self.anchor_v0), generator=self.anchor_gen)[:self.cfg.anchor_batch]
        x = self.anchor_in.index_select(self.anchor_cat, pick)
        return ((self._normalised(x) - self.anchor_v0[pick]) ** 2).sum(1).mean()

    def embed(self, pins: list[str]) -> Any:
        """Pooled, normalised vectors of ``pins`` (one forward pass over all their parts)."""
        import torch

        from .pin_media import pooled

        cat = 1 if self.trunk and not self.model.visual.transformer.batch_first else 0
        feats = self._features(torch.cat([self.inputs[p] for p in pins], dim=cat))
        out, i = [], 0
        for p in pins:
            k = len(self.media.groups[p])
            out.append(pooled(feats[i:i + k], self.media.groups[p], self.text_vec.get(p), self.cfg.idea_text_weight))
            i += k
        return torch.stack(out)

    def step(self, train: EngagementPairs, rows: list[int]) -> float:
        """One optimiser step on the pairs at ``rows``; returns the loss."""
        import torch
        import torch.nn.functional as F

        self.model.train()
        q = [train.query[i] for i in rows]
        e = [train.engaged[i] for i in rows]
        pins = sorted(set(q) | set(e))
        neg = self._negatives(set(pins))
        at = {p: i for i, p in enumerate(pins)}
        both = self.embed(pins + neg)
        vec, nvec = both[:len(pins)], both[len(pins):]
        qi, ei = torch.tensor([at[p] for p in q]), torch.tensor([at[p] for p in e])
        w = torch.tensor([train.weight[i] for i in rows])
        w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1 / len(w))
        logits = self.scale * vec[qi] @ vec[ei].T
        eye = torch.eye(len(rows), dtype=torch.bool)
        # a column that is the row's own engaged (or query) pin under another pair is no negative
        same_e = ((ei[None, :] == ei[:, None]) | (ei[None, :] == qi[:, None])) & ~eye
        same_q = ((qi[None, :] == qi[:, None]) | (qi[None, :] == ei[:, None])) & ~eye
        lq, le = logits, logits.T
        if neg:  # the database's pins outside the batch: what the full ranking puts between the pair
            known_q = torch.tensor([[(a, n) in self.positive for n in neg] for a in q])
            known_e = torch.tensor([[(a, n) in self.positive for n in neg] for a in e])
            lq = torch.cat([lq, self.scale * vec[qi] @ nvec.T], 1)
            le = torch.cat([le, self.scale * vec[ei] @ nvec.T], 1)
            same_e, same_q = torch.cat([same_e, known_q], 1), torch.cat([same_q, known_e], 1)
        target = torch.arange(len(rows))
        loss = 0.5 * ((F.cross_entropy(lq.masked_fill(same_e, -math.inf), target, reduction="none") * w).sum()
                      + (F.cross_entropy(le.masked_fill(same_q, -math.inf), target, reduction="none") * w).sum())
        if self.cfg.text_weight:
            tv = torch.stack([self.title_vec[p] for p in pins])
            tid = torch.tensor([self.title_id[p] for p in pins])
            same_t = (tid[None, :] == tid[:, None]) & ~torch.eye(len(pins), dtype=torch.bool)
            lt = self.scale * vec @ tv.T
            target = torch.arange(len(pins))
            loss = loss + self.cfg.text_weight * 0.5 * (F.cross_entropy(lt.masked_fill(same_t, -math.inf), target)
                                                        + F.cross_entropy(lt.T.masked_fill(same_t, -math.inf), target))
        if self.anchor_in is not None and self.cfg.anchor_weight:  # rehearsal: the anchor images hold the model
            loss = loss + self.cfg.anchor_weight * self._anchor_loss()  # and the pins move freely
        elif self.cfg.anchor_weight:  # what the pins meant to the initial model is kept
            v0 = torch.from_numpy(np.stack([self.initial[p] for p in pins]))
            loss = loss + self.cfg.anchor_weight * ((vec - v0) ** 2).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return round(float(loss.detach()), 5)

    def all_vectors(self, batch: int = 256) -> Any:
        """Every cached pin's vector with the current weights, as a float32 array in ``self.pins`` order."""
        import torch

        self.model.eval()
        with torch.no_grad():
            return torch.cat([self.embed(self.pins[i:i + batch]) for i in range(0, len(self.pins), batch)]).numpy()

    def heldout_recall(self, held: EngagementPairs) -> float:
        """Recall@10 of the held-out pairs among every cached pin, with the current weights."""
        vecs = self.all_vectors()
        vectors = dict(zip(self.pins, vecs, strict=True))
        ranked = exact_ranks(held.query, held.engaged, vectors, [(self.pins, vecs)])
        return round(recall_from_ranks(ranked.ranks, 10), 4)

    def visual_state(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.model.visual.state_dict().items()}


def format_result(r: PairTrainResult) -> str:
    """What ``pinembed train --pairs`` prints."""
    curve = " -> ".join(f"{x:.3f}" for x in r.recall_at_10)
    return (f"fine-tuned {r.init} on {r.train_pairs} pairs ({r.pins} pins), {r.steps} steps in {r.seconds:.0f}s "
            f"({r.pairs_per_s} pairs/s)\nheld-out Recall@10 by epoch ({r.heldout_pairs} pairs): {curve}; "
            f"kept epoch {r.best_epoch}\nmodel id: {r.model_id}\n"
            f"switch a database to it: pinembed refresh SRC --db DB --model {r.model_id}")
