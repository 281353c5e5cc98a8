"""Vector search over pins, as a part of ``Store``: the nearest pins to a vector (with kinds and a
``where``), the index's candidates for a caller that holds the vectors, and the index query
parameters tuned to how much of the table a filter selects (``store.index`` holds the policy)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import deadline, faults, filters
from .index import vector_index
from .reads import RESULT_COLUMNS, PinReads
from .rows import arrow_of, rows_of
from .schema import PINS


def _and_kinds(where: str | None, kinds: Iterable[str] | None) -> str | None:
    """``where`` (SQL from ``filters``) ANDed with a filter on the checked ``kinds``; None for neither."""
    kinds = filters.check_kinds(kinds)
    conds = [c for c in (filters.is_in("kind", kinds) if kinds is not None else None, where) if c]
    return " AND ".join(f"({c})" for c in conds) if conds else None


class Search(PinReads):
    """Nearest pins by cosine similarity, through the ANN index when there is one."""

    @faults.translated
    @deadline.bounded
    def search(
        self, vector: np.ndarray, k: int, kinds: Iterable[str] | None = None, exclude: Iterable[str] | str | None = None,
        where: str | None = None, with_vector: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest pins to ``vector`` by cosine similarity, best first, as rows with ``score``.

        ``where``: SQL from ``filters`` (never user text); ``exclude``: pin ids left out of the results."""
        skip = {exclude} if isinstance(exclude, str) else set(exclude or ())
        q = self._pins().search(np.asarray(vector, np.float32), vector_column_name="vector")
        q = q.distance_type("cosine").select([*RESULT_COLUMNS, *(["vector"] if with_vector else []), "_distance"])
        where_sql = _and_kinds(where, kinds)
        if self._has_index():
            q = self._tune(q, where_sql, k + len(skip))
        if where_sql is not None:
            q = q.where(where_sql, prefilter=True)
        rows = rows_of(q.limit(k + len(skip)))
        out = []
        for r in rows:
            if r["pin_id"] in skip:
                continue
            r["score"] = float(1.0 - r.pop("_distance"))
            if with_vector:
                r["vector"] = np.asarray(r["vector"], np.float32)
            out.append(r)
        return out[:k]

    @faults.translated
    @deadline.bounded
    def candidates(self, vector: np.ndarray, k: int, kinds: Iterable[str] | None = None,
                   where: str | None = None) -> list[int]:
        """What ``search`` re-ranks, for a caller that holds the vectors (``store.resident``): the row
        ids of the index's candidates for ``k`` results, in its order, ``k`` x the refine factor of
        them (``k`` when the search is exact). Reads no column: about 5 ms at 1M pins against 9 for
        the pin ids and 19 with ``search``'s re-ranking and result columns."""
        q = self._pins().search(np.asarray(vector, np.float32), vector_column_name="vector")
        q = q.distance_type("cosine").select(["_distance"]).with_row_id(True)
        where_sql = _and_kinds(where, kinds)
        n = k
        if self._has_index():
            probes, refine = self._tuning(where_sql, k)
            q = q.bypass_vector_index() if probes is None else q.nprobes(probes)
            n *= refine  # 1 when exact
        if where_sql is not None:
            q = q.where(where_sql, prefilter=True)
        return arrow_of(q.limit(n)).column("_rowid").to_pylist()

    @faults.translated
    @deadline.bounded
    def pins_by_row(self, row_ids: Sequence[int], columns: Sequence[str]) -> list[dict[str, Any]]:
        """The ``columns`` and ``_rowid`` of the pins at ``row_ids`` (as ``candidates`` gives them)."""
        t = self._table(PINS)
        if t is None or not row_ids:
            return []
        ids = ", ".join(str(int(r)) for r in row_ids)
        cols = [*columns, "_rowid"]
        return rows_of(t.search().where(f"_rowid IN ({ids})").select(cols).limit(len(row_ids)))

    @faults.translated
    @deadline.bounded
    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """(pin id, cosine) of the ``k`` nearest pins to each of ``vectors``, in one LanceDB query."""
        if len(vectors) == 0:
            return []
        q = self._pins().search(list(np.asarray(vectors, np.float32)), vector_column_name="vector")
        q = q.distance_type("cosine").select(["pin_id", "_distance"])
        if self._has_index():
            q = self._tune(q, None, k)
        t = q.limit(k).to_arrow()
        out: list[list[tuple[str, float]]] = [[] for _ in range(len(vectors))]
        qi = t.column("query_index").to_pylist() if "query_index" in t.column_names else [0] * t.num_rows
        for i, pid, d in zip(qi, t.column("pin_id").to_pylist(), t.column("_distance").to_pylist(), strict=True):
            out[i].append((pid, 1.0 - d))
        return out

    def _tune(self, q: Any, where: str | None, k: int) -> Any:
        """Index query parameters (see ``_tuning``) applied to the query ``q``."""
        probes, refine = self._tuning(where, k)
        return q.bypass_vector_index() if probes is None else q.nprobes(probes).refine_factor(refine)

    def _tuning(self, where: str | None, k: int) -> tuple[int | None, int]:
        """(partitions to probe, refine factor) for ``k`` results; probes None: search exactly. A
        selective filter leaves few candidates in the probed partitions: a small slice is searched
        exactly; otherwise the query probes proportionally more partitions."""
        p = self.index_policy
        if where is None:
            return p.probes(k), p.refine_factor(k)
        if where not in self._selected:
            self._selected[where] = self._pins().count_rows(where)
        if "" not in self._selected:
            self._selected[""] = self.count()
        n_sel, n = self._selected[where], self._selected[""]
        if n_sel < p.exact_slice_below:
            return None, 1
        probes = min(p.partitions(n), p.probes(k) * math.ceil(n / max(1, n_sel)))
        # a sparse slice has flatter distances, where PQ errors reorder more: re-rank twice as many
        # (a 5% slice at 100k: recall@10 0.98 -> 0.995 for 26 -> 36 ms; benchmarks/query.py)
        return probes, p.refine_factor(k) * (2 if n_sel < 0.1 * n else 1)

    def _has_index(self) -> bool:
        if self._indexed is None:
            self._indexed = vector_index(self._pins()) is not None
        return self._indexed
