"""``pinembed eval --pairs``: how well a pin database ranks engaged pins, as Pinterest measures it.

The protocol of Pinterest's released OmniSearchSage evaluation (``omnisearchsage/common/eval_utils/
utils.py``, ``calculate_ranks`` and ``recall_at_k``), over every pin in the database:

- for each (query, engaged) pair, rank = 1 + the number of index pins whose cosine to the query is at
  least the engaged pin's (``>=``: ties count against the query; cosines within ``TIE`` of each other
  are ties, so float rounding never decides one). The index is every pin but the query and the engaged
  pin themselves (in Pinterest's code the index is a separate set of negatives, so neither is in it);
  other pins the query was engaged with stay in the index, as they do there.
- Recall@K = mean(rank <= K) for K = 1, 10, 100; MRR = mean(1 / rank); overall, by query kind ->
  engaged kind, and by action.
- hubs: how often each pin shows up in the top 10 of the queries' lists (each distinct query pin once,
  itself left out; 0 for a pin in none): the p90 and max of those counts and the share of pins in more
  than 1% of the lists, as ``pinembed eval --labels`` reports them (``pinembed.metrics.hub_stats``).

Ranks are exact: batched matrix products over the stored vectors, streamed (never the ANN index).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pinembed.errors import UsageError
from pinembed.metrics import hub_stats, recall_from_ranks
from pinembed.store.schema import PINS

from .engagement_pairs import EngagementPairs

KS = (1, 10, 100)
TOPK = 10  # hub cut-off, as Pinterest's
TIE = 1e-5  # cosines this close to the engaged pin's count as ties (float32 products differ by ~1e-7)


@dataclass
class Ranked:
    """Exact ranks of the pairs, and how often each pin showed up in a top-10 list."""

    ranks: np.ndarray  # int64 (n_pairs,)
    hub_counts: Counter  # pin id -> number of top-10 lists it is in
    n_pins: int
    n_queries: int  # distinct query pins


def exact_ranks(query_ids: Sequence[str], engaged_ids: Sequence[str], vectors: dict[str, np.ndarray],
                batches: Iterable[tuple[list[str], np.ndarray]], topk: int = TOPK,
                query_chunk: int = 2048) -> Ranked:
    """Ranks of ``engaged_ids[i]`` for ``query_ids[i]`` among the pins of ``batches`` (an iterable of
    (ids, vectors) batches: the whole index, streamed), each pair's own two pins left out. ``vectors``
    holds every query's and engaged pin's vector (L2-normalised, as stored)."""
    import torch

    n = len(query_ids)
    uq = sorted(set(query_ids))
    u_of = {p: i for i, p in enumerate(uq)}
    order = np.argsort(np.fromiter((u_of[q] for q in query_ids), np.int64, n), kind="stable")
    pair_u = np.fromiter((u_of[query_ids[i]] for i in order), np.int64, n)  # pairs sorted by their query
    qv = torch.from_numpy(np.stack([vectors[p] for p in uq]).astype(np.float32)) if uq else torch.zeros((0, 1))
    ev = torch.from_numpy(np.stack([vectors[engaged_ids[i]] for i in order]).astype(np.float32)) if n \
        else torch.zeros((0, 1))
    thr = (qv[torch.from_numpy(pair_u)] * ev).sum(1) - TIE if n else torch.zeros(0)
    engaged_sorted = [engaged_ids[i] for i in order]
    chunks = []  # (u0, u1, p0, p1, rows): distinct queries u0:u1 own sorted pairs p0:p1 (their rows in s)
    for u0 in range(0, len(uq), query_chunk):
        u1 = min(len(uq), u0 + query_chunk)
        p0, p1 = int(np.searchsorted(pair_u, u0)), int(np.searchsorted(pair_u, u1))
        rows = pair_u[p0:p1] - u0
        chunks.append((u0, u1, p0, p1, None if p1 - p0 == u1 - u0 else torch.from_numpy(rows)))
    counts = torch.zeros(n, dtype=torch.int64)
    top_s = torch.full((len(uq), topk), -np.inf)
    top_i = torch.full((len(uq), topk), -1, dtype=torch.int64)
    all_ids: list[str] = []
    for ids, vecs in batches:
        base = len(all_ids)
        all_ids.extend(ids)
        col = {p: j for j, p in enumerate(ids)}
        b = torch.from_numpy(np.array(vecs, np.float32))  # a copy: Arrow's buffers are read-only
        own_u = [(u_of[p], j) for p, j in col.items() if p in u_of]  # queries that sit in this batch
        own_e = [(k, col[e]) for k, e in enumerate(engaged_sorted) if e in col]  # engaged pins in it
        for u0, u1, p0, p1, rows in chunks:
            s = qv[u0:u1] @ b.T
            for u, j in own_u:
                if u0 <= u < u1:
                    s[u - u0, j] = -np.inf  # a pin is not its own neighbour
            k_here = min(topk, s.shape[1])
            v, i = torch.topk(s, k_here, dim=1)
            merged_s = torch.cat([top_s[u0:u1], v], 1)
            merged_i = torch.cat([top_i[u0:u1], i + base], 1)
            best = torch.topk(merged_s, topk, dim=1)
            top_s[u0:u1] = best.values
            top_i[u0:u1] = torch.gather(merged_i, 1, best.indices)
            g = s if rows is None else s[rows]  # one row per pair (s itself when each query has one pair)
            for k, j in own_e:
                if p0 <= k < p1:
                    g[k - p0, j] = -np.inf  # the engaged pin is not in its own pair's index
            counts[p0:p1] += (g >= thr[p0:p1, None]).sum(1, dtype=torch.int32)
    ranks = np.empty(n, np.int64)
    ranks[order] = counts.numpy() + 1
    hubs: Counter = Counter()
    for row, vals in zip(top_i.tolist(), top_s.tolist(), strict=True):
        hubs.update(all_ids[i] for i, v in zip(row, vals, strict=True) if i >= 0 and v > -np.inf)
    return Ranked(ranks, hubs, len(all_ids), len(uq))


def summary(ranks: np.ndarray) -> dict[str, Any]:
    """Recall@1/10/100, MRR and the number of pairs."""
    if not len(ranks):
        return {**{f"recall@{k}": None for k in KS}, "mrr": None, "pairs": 0}
    return {**{f"recall@{k}": round(recall_from_ranks(ranks, k), 4) for k in KS},
            "mrr": round(float(np.mean(1.0 / ranks)), 4), "pairs": int(len(ranks))}


def known_pairs(pairs: EngagementPairs, known: set[str] | dict[str, Any]) -> tuple[list[int], dict[str, int]]:
    """(rows of the pairs whose two pins are both in ``known``, counts of what was left out)."""
    keep = [i for i in range(len(pairs)) if pairs.query[i] in known and pairs.engaged[i] in known]
    unknown_ids = {p for p in (*pairs.query, *pairs.engaged) if p not in known}
    return keep, {"unknown_pairs": len(pairs) - len(keep), "unknown_pins": len(unknown_ids)}


def pair_vectors(store: Any, pairs: EngagementPairs,
                 batch_size: int = 8192) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The vectors and kinds of the pins ``pairs`` name (those in the database), streamed."""
    needed = set(pairs.query) | set(pairs.engaged)
    vectors: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for b in store.iter_batches(PINS, ("pin_id", "kind", "vector"), batch_size=batch_size):
        ids = b.column("pin_id").to_pylist()
        hit = [j for j, p in enumerate(ids) if p in needed]
        if hit:
            vecs = b.column("vector").values.to_numpy(zero_copy_only=False).reshape(b.num_rows, -1)
            ks = b.column("kind").to_pylist()
            for j in hit:
                vectors[ids[j]] = vecs[j].astype(np.float32)
                kinds[ids[j]] = ks[j]
    return vectors, kinds


def evaluate_pairs(store: Any, pairs: EngagementPairs, batch_size: int = 8192) -> dict[str, Any]:
    """The engagement report of ``store`` (a Store with a live generation) for ``pairs``."""
    vectors, kinds = pair_vectors(store, pairs, batch_size)
    keep, left_out = known_pairs(pairs, vectors)
    if not keep:
        raise UsageError(f"none of the {len(pairs)} pairs has both pins in the database "
                         f"({left_out['unknown_pins']} unknown pin ids)",
                         "pin ids must be the ids ingest gave: `pinembed pins --db DB` lists them")
    self_pairs, pairs = pairs.self_pairs, pairs.subset(keep)
    ranked = exact_ranks(pairs.query, pairs.engaged, vectors, store.iter_vectors(batch_size))
    return report(pairs, ranked, kinds) | left_out | {"self_pairs": self_pairs}


def report(pairs: EngagementPairs, ranked: Ranked, kinds: dict[str, str]) -> dict[str, Any]:
    """Overall, per kind -> kind and per action figures, and hubs."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    by_action: dict[str, list[int]] = defaultdict(list)
    for i, (q, e) in enumerate(zip(pairs.query, pairs.engaged, strict=True)):
        by_kind[f"{kinds.get(q, '?')}->{kinds.get(e, '?')}"].append(i)
        if pairs.action[i]:
            by_action[pairs.action[i]].append(i)
    r = ranked.ranks
    return {"pins": ranked.n_pins, **summary(r),
            "by_kind": {k: summary(r[v]) for k, v in sorted(by_kind.items())},
            "by_action": {k: summary(r[v]) for k, v in sorted(by_action.items())},
            "hubs": hub_report(ranked)}


def hub_report(ranked: Ranked) -> dict[str, Any]:
    """The hub figures of ``pinembed.metrics.hub_stats`` under this report's keys."""
    h = hub_stats(ranked.hub_counts, ranked.n_pins, ranked.n_queries)
    return {"queries": ranked.n_queries, f"p90_freq_{TOPK}": h["p90"], f"max_freq_{TOPK}": h["max"],
            "share_over_1pct": h["share_over_1pct"]}


def format_report(rep: dict[str, Any]) -> str:
    """The report as the lines ``pinembed eval --pairs`` prints."""
    def line(name: str, s: dict[str, Any]) -> str:
        return f"{name}: " + ", ".join(f"{k} {s[k]}" for k in (*(f"recall@{k}" for k in KS), "mrr", "pairs"))

    out = [f"pins {rep['pins']}", line("all", rep)]
    out += [line(f"  {k}", v) for k, v in rep["by_kind"].items()]
    out += [line(f"  action {k}", v) for k, v in rep["by_action"].items()]
    h = rep["hubs"]
    out.append(f"hubs: p90 frequency in top-{TOPK} lists {h[f'p90_freq_{TOPK}']:.0f}, max {h[f'max_freq_{TOPK}']:.0f}, "
               f"{h['share_over_1pct']:.1%} of pins in >1% of {h['queries']} lists")
    if rep.get("unknown_pairs"):
        out.append(f"left out: {rep['unknown_pairs']} pair(s) with a pin not in the database "
                   f"({rep['unknown_pins']} unknown pin ids)")
    if rep.get("self_pairs"):
        out.append(f"left out: {rep['self_pairs']} pair(s) of a pin with itself")
    return "\n".join(out)
