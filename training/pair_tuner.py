"""The model being tuned on engagement pairs: what learns, the cached inputs, one optimiser step.

Only the image tower's last ``train_blocks`` blocks and its head learn (None: all of it). The frozen
trunk (patch embedding and the first blocks) runs once per part up front and its tokens are kept, so a
step costs the trained blocks only. The text tower and the logit scale are frozen. A pin is embedded as
ingest pools its stored vector (``pin_media.pooled``), so what is trained is what is searched. The loss
terms are ``pair_losses``'s; docs/engagement.md says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pinembed.errors import UsageError
from pinembed.metrics import recall_from_ranks

from .engagement_eval import exact_ranks
from .engagement_pairs import EngagementPairs
from .pair_losses import drift_loss, engagement_loss, title_loss
from .pin_media import pooled

if TYPE_CHECKING:
    from .engagement_train import PairTrainConfig


class PairTuner:
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
        return drift_loss(self._normalised(x), self.anchor_v0[pick])

    def embed(self, pins: list[str]) -> Any:
        """Pooled, normalised vectors of ``pins`` (one forward pass over all their parts)."""
        import torch

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
        known_q = known_e = None
        if neg:  # a pin known engaged with the row's pin is no negative
            known_q = torch.tensor([[(a, n) in self.positive for n in neg] for a in q])
            known_e = torch.tensor([[(a, n) in self.positive for n in neg] for a in e])
        loss = engagement_loss(vec, qi, ei, w, self.scale, nvec if neg else None, known_q, known_e)
        if self.cfg.text_weight:
            tv = torch.stack([self.title_vec[p] for p in pins])
            tid = torch.tensor([self.title_id[p] for p in pins])
            loss = loss + self.cfg.text_weight * title_loss(vec, tv, tid, self.scale)
        if self.anchor_in is not None and self.cfg.anchor_weight:  # rehearsal: the anchor images hold the model
            loss = loss + self.cfg.anchor_weight * self._anchor_loss()  # and the pins move freely
        elif self.cfg.anchor_weight:  # what the pins meant to the initial model is kept
            v0 = torch.from_numpy(np.stack([self.initial[p] for p in pins]))
            loss = loss + self.cfg.anchor_weight * drift_loss(vec, v0)
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
        """A copy of the image tower's weights as they are now (the best epoch's, to load back)."""
        return {k: v.detach().clone() for k, v in self.model.visual.state_dict().items()}
