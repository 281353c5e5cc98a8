"""The loss terms of ``pinembed train --pairs``, on the batch's vectors (torch tensors).

- ``engagement_loss``: a symmetric InfoNCE over in-batch negatives (query->engaged and engaged->query)
  plus extra negatives, each pair weighted; a column that is the row's own engaged (or query) pin under
  another pair, or an extra negative known engaged with it, is masked (no negative).
- ``title_loss``: a CLIP image-text term between the batch's pins and their titles (pins sharing a
  title are no negatives of each other), so text search keeps working.
- ``drift_loss``: the mean squared drift of vectors from where the initial model put them.

Why these terms and their weights: docs/engagement.md.
"""

from __future__ import annotations

import math
from typing import Any


def engagement_loss(vec: Any, qi: Any, ei: Any, weight: Any, scale: float, negatives: Any = None,
                    known_q: Any = None, known_e: Any = None) -> Any:
    """Weighted symmetric InfoNCE of the pairs (``vec[qi[i]]``, ``vec[ei[i]]``) at logit scale ``scale``.
    ``weight``: the pairs' weights summing to 1. ``negatives``: vectors of extra negatives (or None),
    with ``known_q`` / ``known_e`` (pairs x negatives, bool) marking those known engaged with the row's
    query / engaged pin."""
    import torch
    import torch.nn.functional as F

    n = len(qi)
    logits = scale * vec[qi] @ vec[ei].T
    eye = torch.eye(n, dtype=torch.bool)
    # a column that is the row's own engaged (or query) pin under another pair is no negative
    same_e = ((ei[None, :] == ei[:, None]) | (ei[None, :] == qi[:, None])) & ~eye
    same_q = ((qi[None, :] == qi[:, None]) | (qi[None, :] == ei[:, None])) & ~eye
    lq, le = logits, logits.T
    if negatives is not None:  # the database's pins outside the batch: what the full ranking puts between the pair
        lq = torch.cat([lq, scale * vec[qi] @ negatives.T], 1)
        le = torch.cat([le, scale * vec[ei] @ negatives.T], 1)
        same_e, same_q = torch.cat([same_e, known_q], 1), torch.cat([same_q, known_e], 1)
    target = torch.arange(n)
    return 0.5 * ((F.cross_entropy(lq.masked_fill(same_e, -math.inf), target, reduction="none") * weight).sum()
                  + (F.cross_entropy(le.masked_fill(same_q, -math.inf), target, reduction="none") * weight).sum())


def title_loss(vec: Any, title_vecs: Any, title_ids: Any, scale: float) -> Any:
    """Symmetric CLIP loss between pin vectors ``vec`` and their titles' text vectors ``title_vecs``;
    pins with the same ``title_ids`` value are no negatives of each other."""
    import torch
    import torch.nn.functional as F

    n = len(vec)
    same_t = (title_ids[None, :] == title_ids[:, None]) & ~torch.eye(n, dtype=torch.bool)
    lt = scale * vec @ title_vecs.T
    target = torch.arange(n)
    return 0.5 * (F.cross_entropy(lt.masked_fill(same_t, -math.inf), target)
                  + F.cross_entropy(lt.T.masked_fill(same_t, -math.inf), target))


def drift_loss(vec: Any, initial: Any) -> Any:
    """Mean over rows of the squared distance between ``vec`` and ``initial``."""
    return ((vec - initial) ** 2).sum(1).mean()
