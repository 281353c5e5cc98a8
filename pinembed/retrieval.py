"""Retrieval for one database: a query vector and its checked controls in, ``Related`` results out.

The candidates come from the store (its vector index, or one row-id query when the pins are held in
memory), are re-ranked here (near-duplicates dropped, then MMR; ``related.py`` holds the math) and
become results with their best video frame and idea-pin page. A session is several such retrievals,
one per interest, fused by reciprocal rank."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pinembed.ingestion import kinds as kind_registry
from pinembed.store.resident import CARD_COLUMNS

from . import related as rel
from .controls import Controls
from .results import Related


def ranked(store: Any, resident: Any, query: np.ndarray, c: Controls, exclude: Sequence[str],
           results: bool = True) -> Any:
    """Retrieve and re-rank: a candidate pool (larger when deduping or diversifying), near-duplicates
    dropped, then MMR; Related results, or the rows themselves (with vectors) when not ``results``."""
    exclude = list(exclude)
    with_vector = c.reranks or not results
    if resident is not None:  # one query for the candidates; vectors and cards from memory
        hits = store.candidates(query, c.pool + len(exclude), c.kinds, where=c.where)
        rows = resident.rank(query, hits, c.pool, exclude,
                             lambda ids: store.pins_by_row(ids, [*CARD_COLUMNS, "vector"]), with_vector=with_vector)
    else:
        rows = store.search(query, c.pool, c.kinds, exclude=exclude, where=c.where, with_vector=with_vector)
    if c.reranks and rows:
        vecs = np.stack([r["vector"] for r in rows])
        idx = list(range(len(rows)))
        q = np.asarray(query, np.float32)
        if c.dedupe is not None:
            idx = rel.dedupe(q, vecs, c.dedupe)
        if c.diversity > 0:
            idx = [idx[i] for i in rel.mmr(q, vecs[idx], c.k, c.diversity)]
        rows = [rows[i] for i in idx]
    rows = rows[: c.k]
    return as_results(store, query, rows) if results else rows


def session(store: Any, resident: Any, found: Sequence[tuple[str, dict[str, Any]]], weights: np.ndarray,
            c: Controls, threshold: float, step: Callable[[], None]) -> list[Related]:
    """Related pins for a session's pins ``found`` ((id, row with vector), oldest first) as a whole: the
    pins grouped into interests, each interest retrieved on its own (``step`` called before each), the
    lists fused by reciprocal rank weighted by the interests' weights. The session's pins are left out."""
    ids = [pid for pid, _ in found]
    vecs = np.stack([pin["vector"] for _, pin in found])
    groups = rel.interests(vecs[weights > 0], weights[weights > 0], threshold)
    lists, rows_by_id = [], {}
    # each interest could fill the list alone (a pool of k); deeper lists would let every pin collect votes
    for centroid, _weight, _members in groups:
        step()
        rows = ranked(store, resident, centroid, c, exclude=ids, results=False)
        lists.append([r["pin_id"] for r in rows])
        for r in rows:
            best = rows_by_id.get(r["pin_id"])
            if best is None or r["score"] > best["score"]:
                rows_by_id[r["pin_id"]] = r
    fused = rel.rrf(lists, [g[1] for g in groups])[: c.k]
    rows = [rows_by_id[pid] for pid, _ in fused]
    if c.dedupe is not None and rows:  # interests may each bring the same near-duplicate
        keep = rel.dedupe(None, np.stack([r["vector"] for r in rows]), c.dedupe)
        rows = [rows[i] for i in keep]
    by_id = dict(fused)  # the list is in fused order, not by score (each result's best cosine)
    return [replace(r, fused=round(by_id[r.pin_id], 6)) for r in as_results(store, groups[0][0], rows)]


def as_results(store: Any, query: np.ndarray, rows: list[dict[str, Any]]) -> list[Related]:
    """Results, with the best-matching frame time of videos and best page of idea pins."""
    timed = {k.name for k in kind_registry.all_kinds() if k.timed}
    paged = {k.name for k in kind_registry.all_kinds() if k.paged}
    multi = [r["pin_id"] for r in rows if r["kind"] in timed | paged and r.get("n_segments")]
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    pages: dict[str, set[int]] = {}
    for seg in store.segments_of(multi):
        if seg["kind"] == "page" and seg.get("page") is not None:
            pages.setdefault(seg["pin_id"], set()).add(seg["page"])
        if seg["kind"] == "frame" or (seg["kind"] in ("page", "text") and seg.get("page") is not None):
            score = float(np.dot(np.asarray(seg["vector"], np.float32), query))
            if seg["pin_id"] not in best or score > best[seg["pin_id"]][0]:
                best[seg["pin_id"]] = (score, seg)
    out = []
    for r in rows:
        seg = best.get(r["pin_id"], (0.0, {}))[1]
        out.append(Related.from_row(r, best_t_s=seg.get("t_s") if r["kind"] in timed else None,
                                    best_page=seg.get("page") if r["kind"] in paged else None,
                                    pages=len(pages.get(r["pin_id"], ())) if r["kind"] in paged else None))
    return out
