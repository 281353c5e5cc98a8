"""The math of candidate tables: every query vector's top-k base vectors by cosine, in one batch job.

The recipe of faiss's ``contrib/big_batch_search.py``, turned around so that each step is one matrix
product: the base vectors are grouped into inverted lists (spherical k-means on a sample), the queries
are grouped by their nearest list, and each group is multiplied at once with the lists its list probes
(its ``nprobe`` nearest centroids, itself first), then one top-k per query. A group's products are
chunked so that its score matrix stays within the memory budget. ``exact`` multiplies query blocks
with every base vector (the ground truth).

Vectors are L2-normalised float32 (the store's); scores are cosines. A query that is also a base vector
(the same row) never gets itself. On CUDA the products run in fp16 and the top candidates are scored
again in fp32 (``RERANK`` times k of them), so scores are exact either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

RERANK = 2  # on fp16 products: candidates scored again in fp32, as a multiple of k
TIES = 4  # extra candidates taken so that ties at the k-th place are broken by row, not by chance
SAMPLE_PER_LIST = 64  # k-means trains on this many base vectors per list (at most)


@dataclass
class Layout:
    """The inverted lists: centroids, each list's probed lists, and the base rows in list order."""

    centroids: np.ndarray  # (nlist, d) unit vectors
    probes: list[np.ndarray]  # each list's probed lists, its own first
    order: np.ndarray  # base rows sorted by list
    starts: np.ndarray  # (nlist + 1,) where each list's rows begin in ``order``


def lists_for(n: int) -> int:
    """The number of inverted lists for ``n`` base vectors: about sqrt(n) (lists of ~sqrt(n) rows)."""
    return max(1, int(round(math.sqrt(n))))


def train(base: np.ndarray, nlist: int, seed: int = 0, iters: int = 10) -> np.ndarray:
    """Spherical k-means centroids of ``base`` (a sample of SAMPLE_PER_LIST rows per list)."""
    rng = np.random.default_rng(seed)
    n = len(base)
    sample = base[np.sort(rng.choice(n, min(n, nlist * SAMPLE_PER_LIST), replace=False))]
    c = sample[rng.choice(len(sample), nlist, replace=False)].copy()
    for _ in range(iters):
        a = assign(sample, c)
        by = np.argsort(a, kind="stable")
        starts = np.searchsorted(a[by], np.arange(nlist))
        sums = np.zeros_like(c)
        nonempty = np.flatnonzero(np.diff(np.append(starts, len(a))) > 0)
        sums[nonempty] = np.add.reduceat(sample[by], starts[nonempty], axis=0)
        empty = ~np.any(sums, axis=1)
        if empty.any():  # an empty list takes a random sample row
            sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
        c = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return c.astype(np.float32)


def assign(x: np.ndarray, centroids: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Each row's nearest centroid (by cosine)."""
    out = np.empty(len(x), np.int32)
    for s in range(0, len(x), block):
        out[s:s + block] = np.argmax(x[s:s + block] @ centroids.T, axis=1)
    return out


def layout(lists: np.ndarray, centroids: np.ndarray, nprobe: int, least: int = 0) -> Layout:
    """The base rows grouped by list (``lists``: each row's, from ``assign``), and each list's probed
    lists: its ``nprobe`` nearest (itself first), and more, nearest first, until they hold at least
    ``least`` base rows (so that every query can get its k)."""
    nlist = len(centroids)
    order = np.argsort(lists, kind="stable")
    starts = np.searchsorted(lists[order], np.arange(nlist + 1))
    sizes = np.diff(starts)
    near = np.argsort(-(centroids @ centroids.T), axis=1, kind="stable")
    own = np.arange(nlist)
    near = np.concatenate([own[:, None], near[near != own[:, None]].reshape(nlist, nlist - 1)], axis=1)
    held = np.cumsum(sizes[near], axis=1)
    width = np.maximum(min(nprobe, nlist), np.minimum(nlist, (held < least).sum(axis=1) + 1))
    probes = [near[g, :width[g]] for g in range(nlist)]
    return Layout(centroids, probes, order, starts)


@dataclass
class Found:
    """The top-k of some queries: their rows, and per query the base rows (-1: none) and scores."""

    queries: np.ndarray  # (q,) query rows
    rows: np.ndarray  # (q, k) base rows, best first
    scores: np.ndarray  # (q, k) float32


class Searcher:
    """Top-k of query vectors among base vectors, by list groups or exact blocks, in torch."""

    def __init__(self, base: np.ndarray, k: int, memory_mb: int = 2048, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.k, self.device = k, device
        self.budget = max(16, memory_mb) * 2**20
        self.half = device.startswith("cuda")
        self.base32 = torch.from_numpy(base)
        self.base = self.base32.to(device, torch.float16 if self.half else torch.float32)
        if self.half:
            self.base32 = self.base32.to(device)
        self._inv = np.full(len(base), -1, np.int64)  # a base row's column in a group's products

    def exact(self, queries: np.ndarray, qrows: np.ndarray, self_rows: np.ndarray) -> Iterator[Found]:
        """Every query against every base vector, in blocks. ``self_rows``: each query's own base row
        (-1: none), left out."""
        n = self.base.shape[0]
        block = max(1, min(len(queries), self.budget // (4 * max(n, 1) * 2)))
        for s in range(0, len(queries), block):
            e = min(len(queries), s + block)
            yield self._top(queries[s:e], qrows[s:e], self_rows[s:e], None)

    def grouped(self, lay: Layout, queries: np.ndarray, qrows: np.ndarray, self_rows: np.ndarray,
                qlists: np.ndarray, groups: range, done: Callable[[int], None] | None = None) -> Iterator[Found]:
        """The queries of each list in ``groups`` against the base rows of the lists it probes."""
        by = np.argsort(qlists, kind="stable")
        qstarts = np.searchsorted(qlists[by], np.arange(len(lay.centroids) + 1))
        for g in groups:
            mine = by[qstarts[g]:qstarts[g + 1]]
            if len(mine):
                cols = np.concatenate([lay.order[lay.starts[p]:lay.starts[p + 1]] for p in lay.probes[g]])
                step = max(1, self.budget // (4 * max(len(cols), 1) * 2))
                for s in range(0, len(mine), step):
                    part = mine[s:s + step]
                    yield self._top(queries[part], qrows[part], self_rows[part], cols)
            if done is not None:
                done(g)

    def _top(self, q: np.ndarray, qrows: np.ndarray, self_rows: np.ndarray, cols: np.ndarray | None) -> Found:
        """The top-k of the queries ``q`` among the base rows ``cols`` (all when None)."""
        torch = self.torch
        k = self.k
        qt = torch.from_numpy(np.ascontiguousarray(q)).to(self.device, self.base.dtype)
        colt = None if cols is None else torch.from_numpy(cols).to(self.device)
        b = self.base if colt is None else self.base.index_select(0, colt)
        scores = qt @ b.T
        m = scores.shape[1]
        if colt is None:
            own = torch.from_numpy(self_rows).to(self.device)
        else:  # each query's own row among the columns
            self._inv[cols] = np.arange(len(cols))
            own_np = np.where(self_rows >= 0, self._inv[np.maximum(self_rows, 0)], -1)
            self._inv[cols] = -1
            own = torch.from_numpy(own_np).to(self.device)
        hit = own >= 0
        if bool(hit.any()):
            scores[hit.nonzero()[:, 0], own[hit]] = -math.inf
        want = min(m, k * RERANK if self.half else k + TIES)
        vals, idx = torch.topk(scores, want, dim=1)
        rows = idx if colt is None else colt[idx]
        if self.half:  # scored again in fp32, then the best k
            exact = torch.einsum("qd,qkd->qk", torch.from_numpy(q).to(self.device), self.base32[rows])
            exact[~torch.isfinite(vals)] = -math.inf
            vals, j = torch.topk(exact, min(k + TIES, want), dim=1)
            rows = torch.gather(rows, 1, j)
        rows, vals = rows.cpu().numpy().astype(np.int64), vals.float().cpu().numpy()
        rows[~np.isfinite(vals)] = -1
        if rows.shape[1] > k:  # (ties beyond the k-th are ordered by row, so the result is the same each run)
            o = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -vals), axis=1)[:, :k]
            rows, vals = np.take_along_axis(rows, o, 1), np.take_along_axis(vals, o, 1)
        if rows.shape[1] < k:  # fewer base vectors than k
            pad = k - rows.shape[1]
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
            vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
        return Found(qrows, rows, vals.astype(np.float32))
