"""The pinembed database: ``Store``, the one object the rest of pinembed reads and writes through.

``Store`` is made of parts of one job each, on the base ``store.tables.Tables`` (the connection,
the generation, the table handles): ``store.lifecycle`` (model generations), ``store.space`` (the
embedding space and its tables), ``store.reads`` (pins by id, path or batch), ``store.search``
(vector search and its tuning), ``store.writes`` (upserts, copies, deletes), ``store.upkeep``
(indexes and compaction), ``store.sources`` (source roots) and ``store.ledger`` (failed inputs).
"""

from __future__ import annotations

from typing import Any

from . import deadline
from .attributes import type_name
from .candidate_tables import CandidateTables
from .ledger import Ledger
from .lifecycle import Lifecycle
from .schema import FAILURES, PINS, SEGMENTS
from .search import Search
from .sources import Sources
from .space import Space
from .upkeep import Upkeep
from .writes import Writes


class Store(Lifecycle, Space, Search, Writes, Upkeep, Sources, Ledger, CandidateTables):
    """Tables ``pins``, ``segments`` and ``failures`` of one database, and the space they belong to."""

    @deadline.bounded
    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, failures, the attributes (name -> type name) and the space's identity."""
        by_kind: dict[str, int] = {}
        t = self._table(PINS)
        if t is not None and t.count_rows():
            kinds = self.pin_states(("kind",)).column("kind").to_pylist()
            for k in kinds:
                by_kind[k] = by_kind.get(k, 0) + 1
        seg = self._table(SEGMENTS)
        fail = self._table(FAILURES)
        return {
            "db": self.uri,
            "pins": sum(by_kind.values()),
            "by_kind": by_kind,
            "segments": seg.count_rows() if seg is not None else 0,
            "failures": fail.count_rows() if fail is not None else 0,
            "sources": [{"root": r, "id_prefix": p} for r, p in sorted(self.sources().items())],
            "attributes": {name: type_name(t) or str(t) for name, t in self.attributes().items()},
            "candidate_tables": self.candidate_table_states(),
            "space": self.identity,
        }
