"""``pinembed eval --pairs P --candidates OUT``: how much engagement a candidate table recalls.

For each (query, engaged) pair whose query pin the table holds: the engaged pin's rank among the query's
candidates (none when it is not there). Recall@K = the share of pairs whose engaged pin is within the
query's first K candidates, for K = 10, 50 and 100 (a K above the table's k is not measured: None),
overall and by query kind -> engaged kind. Beside it, the same pairs' exact figure (``engagement_eval``'s
ranks over every pin: what an exact table of that k would recall), so that two candidate generators (two
models, IVF and exact) compare on the same pairs.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pinembed.errors import UsageError
from pinembed.metrics import recall_from_ranks

from .engagement_eval import exact_ranks, known_pairs, pair_vectors
from .engagement_pairs import EngagementPairs

KS = (10, 50, 100)


def read_table(path: str, queries: set[str], store: Any = None) -> tuple[dict[str, dict[str, int]], int, dict[str, Any]]:
    """The candidates of ``queries`` in the table at ``path`` (a .parquet file, a folder of parts, or
    ``table:NAME`` of the database of ``store``): query -> {candidate: rank}, the table's k, and what it
    says it was built from."""
    if path.startswith("table:"):
        row = store.candidate_table(path[len("table:"):])
        t = store.read_candidates(path[len("table:"):], ["pin_id", "rank", "candidate_id"])
        t = t.filter(pc.is_in(t.column("pin_id"), value_set=pa.array(sorted(queries), pa.string())))
        return _by_query(t), int(row["k"] or 0), dict(row)
    if not os.path.exists(path):
        raise UsageError(f"no candidate table at {path!r}", "write one with `pinembed candidates --out PATH`")
    try:
        data = ds.dataset(path, format="parquet")
        t = data.to_table(columns=["pin_id", "rank", "candidate_id"],
                          filter=pc.field("pin_id").isin(pa.array(sorted(queries), pa.string())))
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"{path!r} is not a candidate table: {str(e)[:200]}",
                         "give the OUT of `pinembed candidates`") from e
    meta: dict[str, Any] = {}
    raw = (data.schema.metadata or {}).get(b"pinembed")
    manifest = os.path.join(path, "_manifest.json")
    if raw:
        meta = json.loads(raw)
    elif os.path.isdir(path) and os.path.exists(manifest):
        with open(manifest) as f:
            meta = json.load(f)
    k = int(meta.get("k") or (pc.max(t.column("rank")).as_py() if t.num_rows else 0))
    return _by_query(t), k, meta


def _by_query(t: pa.Table) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for q, r, c in zip(t.column("pin_id").to_pylist(), t.column("rank").to_pylist(),
                       t.column("candidate_id").to_pylist(), strict=True):
        out[q][c] = r
    return out


def _figures(ranks: np.ndarray, k: int | None) -> dict[str, Any]:
    return {**{f"recall@{K}": (round(recall_from_ranks(ranks, K), 4) if len(ranks) and (k is None or K <= k)
                               else None) for K in KS}, "pairs": int(len(ranks))}


def evaluate_candidates(store: Any, pairs: EngagementPairs, path: str) -> dict[str, Any]:
    """The candidate table's recall of ``pairs``, beside exact ranks of the same pairs."""
    table, k, meta = read_table(path, set(pairs.query), store)
    vectors, kinds = pair_vectors(store, pairs)
    keep, left_out = known_pairs(pairs, vectors)
    in_table = [i for i in keep if pairs.query[i] in table]
    left_out["not_in_table"] = len(keep) - len(in_table)
    if not in_table:
        raise UsageError(f"none of the {len(pairs)} pairs has its query pin in the candidate table "
                         "(and both pins in the database)",
                         "build the table for those pins: `pinembed candidates --pins FILE` or without --pins")
    sub = pairs.subset(in_table)
    cand = np.array([table[q].get(e, np.iinfo(np.int32).max) for q, e in zip(sub.query, sub.engaged, strict=True)],
                    np.int64)
    exact = exact_ranks(sub.query, sub.engaged, vectors, store.iter_vectors(8192)).ranks
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, (q, e) in enumerate(zip(sub.query, sub.engaged, strict=True)):
        by_kind[f"{kinds.get(q, '?')}->{kinds.get(e, '?')}"].append(i)
    return {"table": {"path": path, "k": k, **{x: meta.get(x) for x in ("method", "generation", "pins_version")}},
            "candidates": _figures(cand, k), "exact": _figures(exact, None),
            "by_kind": {name: {"candidates": _figures(cand[v], k), "exact": _figures(exact[v], None)}
                        for name, v in sorted(by_kind.items())},
            **left_out, "self_pairs": pairs.self_pairs}


def format_report(rep: dict[str, Any]) -> str:
    """The report as the lines ``pinembed eval --candidates`` prints."""
    def line(name: str, c: dict[str, Any], e: dict[str, Any]) -> str:
        parts = [f"recall@{K} {c[f'recall@{K}']} (exact {e[f'recall@{K}']})" for K in KS]
        return f"{name}: " + ", ".join(parts) + f", pairs {c['pairs']}"

    t = rep["table"]
    out = [f"candidate table {t['path']} (k={t['k']}, {t.get('method') or '?'})",
           line("all", rep["candidates"], rep["exact"])]
    out += [line(f"  {k}", v["candidates"], v["exact"]) for k, v in rep["by_kind"].items()]
    for key, what in (("unknown_pairs", "pair(s) with a pin not in the database"),
                      ("not_in_table", "pair(s) whose query pin the table does not hold"),
                      ("self_pairs", "pair(s) of a pin with itself")):
        if rep.get(key):
            out.append(f"left out: {rep[key]} {what}")
    return "\n".join(out)
