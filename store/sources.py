"""The sources of a database, as a part of ``Store``: each source root ingest and refresh have read,
the prefix of its pin ids, and when it was first and last seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import deadline
from .rows import now, to_arrow
from .schema import SOURCES, sources_schema
from .tables import Tables


class Sources(Tables):
    """The ``sources`` table: read and record source roots."""

    @deadline.bounded
    def sources(self) -> dict[str, str]:
        """Source root -> the prefix of its pin ids, as recorded by ingest and refresh."""
        t = self._table(SOURCES)
        if t is None:
            return {}
        n = t.count_rows()
        rows = t.search().select(["root", "id_prefix"]).limit(n).to_list() if n else []
        return {r["root"]: r["id_prefix"] for r in rows}

    @deadline.bounded
    def source_rows(self) -> list[dict[str, Any]]:
        """Every recorded source: root, id_prefix, first_seen, last_seen."""
        t = self._table(SOURCES)
        n = t.count_rows() if t is not None else 0
        return sorted(t.search().limit(n).to_list(), key=lambda r: r["root"]) if n else []

    def record_sources(self, sources: Sequence[Any]) -> None:
        """Record sources (``root`` and ``prefix`` attributes) as seen now; one commit."""
        if not sources:
            return
        t = self._table(SOURCES) or self._create(SOURCES, sources_schema())
        known = {r["root"]: r for r in self.source_rows()}
        stamp = now()
        rows = [{"root": s.root, "id_prefix": s.prefix, "first_seen": known.get(s.root, {}).get("first_seen") or stamp,
                 "last_seen": stamp} for s in sources]
        t.merge_insert("root").when_matched_update_all().when_not_matched_insert_all().execute(to_arrow(rows, t.schema))
