"""Retrieval metrics, one definition each: recall@k, precision@k and hub figures.

Every evaluation (``pinembed eval --labels``, ``pinembed eval --pairs``, training's held-out figure),
the precision ``auto`` check and the benchmarks compute these here.

- Recall@k: the share of a query's relevant items that its ranking puts in the top k. The relevant
  items are a set (an exact top k, judged against an approximate ranking) or one item (a label: 1.0
  when a result in the top k carries it). Over many queries it is the mean; when each query has one
  relevant item whose rank is known, the share of ranks within k (``recall_from_ranks``).
- Hubs: how often each pin shows up in the queries' top-k lists (0 for a pin in none). Reported: the
  share of pins in more than 1% of the lists, the 90th percentile of the per-pin counts
  (``numpy.percentile(counts, 90)``, numpy's default linear interpolation, every pin counted once) and
  the largest count.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet

import numpy as np


def recall_at(ranked: Sequence[Hashable | None], relevant: Hashable | AbstractSet[Hashable], k: int) -> float:
    """Recall@``k`` of one ranking: the share of ``relevant`` found in the top ``k`` of ``ranked``.

    ``relevant`` is a set of items (e.g. the exact top k of a query, against an approximate ranking) or
    one item (e.g. a label, with ``ranked`` holding each result's label: 1.0 when a result in the top
    ``k`` carries it, else 0.0). NaN when the set is empty."""
    want = relevant if isinstance(relevant, AbstractSet) else {relevant}
    if not want:
        return float("nan")
    return len(want.intersection(ranked[:k])) / len(want)


def recall_from_ranks(ranks: np.ndarray | Sequence[int], k: int) -> float:
    """Recall@``k`` over queries that each have one relevant item, given that item's rank (1 = first):
    the share of ranks within ``k``, which is the mean of ``recall_at`` over the queries, for rankings
    too long to list (every pin of a database). NaN when there are no ranks."""
    r = np.asarray(ranks)
    return float(np.mean(r <= k)) if r.size else float("nan")


def precision_at(ranked: Sequence[Hashable | None], label: Hashable, k: int) -> float:
    """Share of the top ``k`` slots of ``ranked`` holding ``label`` (missing results count as misses)."""
    return sum(1 for x in ranked[:k] if x == label) / k


def hub_stats(counts: Mapping[Hashable, int], n_pins: int, n_queries: int) -> dict[str, float]:
    """Hub figures of top-k lists: ``counts`` maps a pin to the number of the ``n_queries`` lists it is
    in; the ``n_pins`` pins of the index not in ``counts`` count 0. Returns ``share_over_1pct`` (the
    share of pins in more than 1% of the lists), ``p90`` (``numpy.percentile`` of the per-pin counts at
    90) and ``max``."""
    values = np.array(list(counts.values()) + [0] * max(0, n_pins - len(counts)), dtype=float)
    if not len(values):
        return {"share_over_1pct": 0.0, "p90": 0.0, "max": 0.0}
    return {"share_over_1pct": round(float((values > 0.01 * n_queries).mean()), 4),
            "p90": float(np.percentile(values, 90)), "max": float(values.max())}
