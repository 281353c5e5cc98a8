"""The base of ``Store``: its connection to one LanceDB database (a local folder or any LanceDB URI),
the model generation it reads and writes, and the handles of that generation's tables.

Every other part of ``Store`` (``store.space``, ``store.reads``, ``store.search``, ``store.writes``,
``store.upkeep``, ``store.sources``, ``store.ledger``, ``store.lifecycle``) builds on this class."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pyarrow as pa

from pinembed.errors import StoreError, UsageError

from . import deadline, doctor, faults
from . import generations as gens
from .index import IndexPolicy
from .location import check_location, is_local, missing
from .objects import is_object_store
from .schema import FAILURES, PINS, SEGMENTS, SPACE_KEY, failures_schema

#: How stale a long-lived reader may be: a query checks for commits of other processes (a refresh)
#: when this much time has passed since its last check (LanceDB's default is never).
READ_CONSISTENCY = timedelta(seconds=5)


class Tables:
    """One database's connection, its generation, and the tables of that generation by logical name."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None,
                 index_policy: IndexPolicy | None = None, generation: int | None = None) -> None:
        """``generation``: the model generation to read and write (default: the live one, resolved
        once, so this Store never mixes two models even if another process switches meanwhile)."""
        self.uri = str(uri)
        check_location(self.uri)
        self._want_gen = generation
        self._gen: gens.Generation | None = None
        self.index_policy = index_policy or IndexPolicy.from_env()
        self._indexed: bool | None = None  # whether pins has a vector index (looked up once)
        self._selected: dict[str, int] = {}  # rows a filter ("" = all) selects, for tuning (reset on writes)
        self._tables: dict[str, Any] = {}
        self._pin_columns: frozenset[str] | None = None
        self._dim: int | None = None
        self._storage_options = storage_options
        self.remote = is_object_store(self.uri)  # reads on object storage get a deadline (deadline.bounded)
        self.db: Any = None
        self._names: set[str] = set()
        if not is_local(self.uri) or os.path.exists(self.uri):  # a missing local folder is created by the first write only
            self._connect()

    @deadline.bounded
    def _connect(self) -> Any:
        if self.db is None:
            import lancedb

            try:
                options = deadline.with_deadlines(self._storage_options) if is_object_store(self.uri) else \
                    self._storage_options  # every object-store request has a deadline
                self.db = lancedb.connect(self.uri, storage_options=options,
                                          read_consistency_interval=READ_CONSISTENCY)
                self._names = set(self.db.list_tables().tables)
            except Exception as e:
                known = faults.translate(e, self.uri)
                if known is not None:
                    raise known from e
                raise StoreError(
                    f"could not open the database at {self.uri!r}: {faults.short(e)}",
                    "check the path or URI, and credentials (storage options) for object storage",
                ) from e
        return self.db

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The storage options this Store was opened with (the write lock's lease takes the same)."""
        return self._storage_options

    def exists(self) -> bool:
        """Whether a database is there: its folder (or URI) holds at least one pinembed table."""
        return self.db is not None and bool(self._names)

    def health(self) -> list[str]:
        """What is wrong with the database's tables, one line each ("pins: lacks its data file ..."),
        empty when every table reads: each opened and its first and last rows read (a health probe)."""
        return doctor.readable(self.uri, self._storage_options)

    def require_database(self) -> None:
        """UsageError "no database at ..." (exit 2) unless the database exists; read-only commands and
        gc call this first, so a typo in --db never creates a folder or prints an empty answer."""
        if not self.exists():
            raise missing(self.uri)

    # -- the generation ----------------------------------------------------------------------
    @faults.translated
    @deadline.bounded
    def generations(self) -> list[gens.Generation]:
        """Every model generation of the database, oldest first (read fresh)."""
        if self.db is None:
            return []
        self._names = set(self.db.list_tables().tables)
        implicit = None
        if PINS in self._names and gens.GENERATIONS not in self._names:
            raw = (self.db.open_table(PINS).schema.metadata or {}).get(SPACE_KEY)
            implicit = json.loads(raw) if raw else {}
        return gens.read_all(self.db, self._names, implicit)

    @property
    def generation(self) -> gens.Generation | None:
        """The generation this Store reads and writes (None for a new database)."""
        if self._gen is None and self.db is not None:
            all_ = self.generations()
            if self._want_gen is None:
                self._gen = gens.live(all_)
            else:
                self._gen = next((g for g in all_ if g.generation == self._want_gen), None)
                if self._gen is None:
                    raise StoreError(f"the database {self.uri!r} has no model generation {self._want_gen}",
                                     f"pinembed models --db {self.uri} lists them")
        return self._gen

    # -- tables ------------------------------------------------------------------------------
    @deadline.bounded
    def table_rows(self, name: str) -> int:
        """Rows of a table by its physical name (0 when missing)."""
        return self.db.open_table(name).count_rows() if self.db is not None and name in self._names else 0

    def _physical(self, name: str) -> str:
        if name in (PINS, SEGMENTS):
            g = self.generation
            if g is not None:
                return g.pins if name == PINS else g.segments
        return name

    def _table(self, name: str) -> Any | None:
        if name not in self._tables:
            physical = self._physical(name)
            if physical not in self._names:
                return None
            self._tables[name] = self.db.open_table(physical)
        return self._tables[name]

    def _create(self, name: str, schema: pa.Schema) -> Any:
        self._connect()
        physical = self._physical(name)
        t = self.db.create_table(physical, schema=schema, exist_ok=True)
        self._names.add(physical)
        self._tables[name] = t
        return t

    def _ensure_failures(self) -> Any:
        return self._table(FAILURES) or self._create(FAILURES, failures_schema())

    def _pins(self) -> Any:
        t = self._table(PINS)
        if t is None:
            raise UsageError(
                f"the database {self.uri!r} holds no pins" + ("" if self.db is not None else " (it does not exist)"),
                "check --db (or $PINEMBED_DB), or ingest a folder first: pinembed ingest SRC --db " + self.uri,
            )
        return t

    def require_pins(self) -> None:
        """UsageError unless the database holds a pins table (checked before loading any model)."""
        self._pins()
