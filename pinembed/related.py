"""Re-ranking controls for related pins, on vectors already retrieved: near-duplicate collapsing,
maximal marginal relevance, reciprocal rank fusion, and a session's distinct interests. Pure numpy
on L2-normalised vectors; the store does the retrieval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009)


def dedupe(query: np.ndarray | None, vecs: np.ndarray, threshold: float) -> list[int]:
    """Indices of ``vecs`` (best first) to keep: a candidate is dropped when its cosine to the query or
    to a candidate already kept is at least ``threshold``."""
    keep: list[int] = []
    for i, v in enumerate(vecs):
        if query is not None and float(v @ query) >= threshold:
            continue
        if keep and float(np.max(vecs[keep] @ v)) >= threshold:
            continue
        keep.append(i)
    return keep


def mmr(query: np.ndarray, vecs: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: pick ``k`` of ``vecs`` one at a time, maximising
    ``(1 - diversity) * cos(query, d) - diversity * max cos(d, picked)``. 0 is plain similarity order."""
    n = len(vecs)
    if n == 0:
        return []
    rel = vecs @ query
    if diversity <= 0:
        return list(np.argsort(-rel, kind="stable")[:k])
    picked: list[int] = []
    max_sim = np.full(n, -np.inf)
    left = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = np.where(left, (1 - diversity) * rel - diversity * penalty, -np.inf)
        j = int(np.argmax(score))
        picked.append(j)
        left[j] = False
        max_sim = np.maximum(max_sim, vecs @ vecs[j])
    return picked


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None,
        k0: int = RRF_K) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion, best first: ``score(d) = sum_r 1 / (k0 + rank_r(d) / w_r)``,
    ranks from 1, weights scaled so the heaviest list has 1. Scaling the rank (not the score) interleaves
    the lists in proportion to their weights: a list of half the weight places its 2nd item level with
    the heaviest list's 4th. With equal weights it is the plain RRF of Cormack et al. (2009)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    top = max(weights, default=1.0) or 1.0
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        if w <= 0:
            continue
        for rank, pid in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k0 + rank * top / w)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def recency_weights(n: int, half_life: float = 5.0) -> np.ndarray:
    """Weights of a session's pins, oldest first: the newest weighs 1, one ``half_life`` pins back 0.5."""
    return 0.5 ** (np.arange(n - 1, -1, -1, dtype=np.float64) / half_life)


def interests(vecs: np.ndarray, weights: np.ndarray, threshold: float = 0.8,
              max_interests: int = 5) -> list[tuple[np.ndarray, float, list[int]]]:
    """A session's distinct interests: pins grouped greedily (heaviest first) into clusters whose
    centroid they are within ``threshold`` cosine of; the ``max_interests`` heaviest clusters are kept.
    Returns (normalised weighted centroid, total weight, member indices), heaviest first."""
    order = np.argsort(-weights, kind="stable")
    clusters: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i in order:
        if sums:
            cents = np.stack([s / np.linalg.norm(s) for s in sums])
            sims = cents @ vecs[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                clusters[j].append(int(i))
                sums[j] = sums[j] + weights[i] * vecs[i]
                continue
        clusters.append([int(i)])
        sums.append(weights[i] * vecs[i])
    out = [(s / np.linalg.norm(s), float(weights[c].sum()), c) for s, c in zip(sums, clusters, strict=True)]
    out.sort(key=lambda t: -t[1])
    return out[:max_interests]


def near_duplicate_clusters(store: Any, threshold: float, neighbours: int = 10,
                            batch_size: int = 512) -> list[list[str]]:
    """Near-duplicate clusters of a whole pins table, biggest first (ids sorted within a cluster).

    Streams vectors in batches; each batch is one multi-vector query for its ``neighbours`` nearest
    pins (through the ANN index on big tables), and pairs at ``threshold`` or more are joined with
    union-find. Memory holds one batch and the pins that have a near-duplicate."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for ids, vecs in store.iter_vectors(batch_size):
        for pid, hits in zip(ids, store.search_many(vecs, neighbours + 1), strict=True):
            for other, sim in hits:
                if other != pid and sim >= threshold:
                    a, b = find(pid), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                    parent.setdefault(pid, pid)
                    parent.setdefault(other, other)
    groups: dict[str, list[str]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    clusters = [sorted(g) for g in groups.values() if len(g) > 1]
    return sorted(clusters, key=lambda c: (-len(c), c[0]))
