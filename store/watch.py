"""Seeing another process's commits cheaply: a long-lived reader (``pinembed serve``) asks every second
whether what its queries read has changed, without reopening the database.

A ``Watcher`` keeps its own LanceDB connection with strong read consistency, so a table's ``version``
is the latest committed one (about 0.4 ms a table on a local disk). The fingerprint covers the
``generations`` table (a model switch commits there) and the live generation's pins, segments and the
``sources`` table (a refresh commits there).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from . import generations as gens
from .schema import SOURCES


class Watcher:
    """Versions of a database's tables, read fresh on every call."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self._storage_options = storage_options
        self._db: Any = None
        self._tables: dict[str, Any] = {}

    def _connect(self) -> Any:
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(self.uri, storage_options=self._storage_options,
                                       read_consistency_interval=timedelta(0))
        return self._db

    def _version(self, name: str) -> int | None:
        t = self._tables.get(name)
        if t is None:
            try:
                t = self._connect().open_table(name)
            except ValueError:  # not there (yet)
                return None
            self._tables[name] = t
        try:
            return int(t.version)
        except (RuntimeError, ValueError, OSError):  # dropped meanwhile (gc)
            self._tables.pop(name, None)
            return None

    def fingerprint(self, pins: str | None, segments: str | None) -> tuple[int | None, ...]:
        """A tuple that changes when a commit changes what queries of the tables ``pins`` and
        ``segments`` (physical names; None for a database without them) or the live generation see."""
        names = [gens.GENERATIONS, SOURCES, *(n for n in (pins, segments) if n)]
        return tuple(self._version(n) for n in names)
