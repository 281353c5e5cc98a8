"""The pinembed database: one LanceDB database (a local folder or any LanceDB URI)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from pinembed import failpoints
from pinembed.errors import ModelMismatchError, PinNotFoundError, StoreError, UsageError

from . import deadline, doctor, faults, filters, lease
from . import generations as gens
from .identity import describe, same_space
from .index import IndexPolicy, compact, maintain, vector_index
from .location import check_location, is_local, missing
from .schema import (
    FAILURES,
    PINS,
    SEGMENTS,
    SOURCES,
    SPACE_KEY,
    failures_schema,
    pins_schema,
    segments_schema,
    sources_schema,
)

#: How stale a long-lived reader may be: a query checks for commits of other processes (a refresh)
#: when this much time has passed since its last check (LanceDB's default is never).
READ_CONSISTENCY = timedelta(seconds=5)

#: Scalar indexes kept by upkeep: pin lookups and merge_insert by pin_id, kind filters.
PINS_SCALAR = {"pin_id": "btree", "kind": "bitmap", "width": "btree", "height": "btree", "duration_s": "btree"}
SEGMENTS_SCALAR = {"pin_id": "btree"}

#: Columns returned by queries (never the vector).
RESULT_COLUMNS = ["pin_id", "kind", "uri", "title", "n_segments", "duration_s"]  # each column is a read per result


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def to_arrow(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts; ``vector`` a float32 array) as an Arrow table of ``schema``."""
    cols = {}
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if pa.types.is_fixed_size_list(field.type):
            dim = field.type.list_size
            flat = np.asarray(values, dtype=np.float32).reshape(-1) if values else np.zeros(0, np.float32)
            cols[field.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
        else:
            cols[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(cols, schema=schema)


def arrow_of(query: Any) -> pa.Table:
    """A LanceDB query's result as an Arrow table, run without the synchronous builder's checks for
    blob columns: they read the table's schema two to three times per query (~0.6 ms each, the
    largest fixed cost of a related() at 1M pins, docs/performance.md), and our tables have no blob
    columns. Falls back to the builder where its internals differ."""
    table = getattr(query, "_table", None)
    execute = getattr(table, "_execute_query", None)
    if execute is None or not hasattr(query, "to_query_object"):
        return query.to_arrow()
    return execute(query.to_query_object()).read_all()


def rows_of(query: Any) -> list[dict[str, Any]]:
    """A LanceDB query's result rows as dicts (see ``arrow_of``)."""
    return arrow_of(query).to_pylist()


def _and_kinds(where: str | None, kinds: Iterable[str] | None) -> str | None:
    """``where`` (SQL from ``filters``) ANDed with a filter on the checked ``kinds``; None for neither."""
    kinds = filters.check_kinds(kinds)
    conds = [c for c in (filters.is_in("kind", kinds) if kinds is not None else None, where) if c]
    return " AND ".join(f"({c})" for c in conds) if conds else None


class Store:
    """Tables ``pins``, ``segments`` and ``failures`` of one database, and the space they belong to."""

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
        self.remote = lease.is_object_store(self.uri)  # reads on object storage get a deadline (deadline.bounded)
        self.db: Any = None
        self._names: set[str] = set()
        if not is_local(self.uri) or os.path.exists(self.uri):  # a missing local folder is created by the first write only
            self._connect()

    @deadline.bounded
    def _connect(self) -> Any:
        if self.db is None:
            import lancedb

            try:
                options = deadline.with_deadlines(self._storage_options) if lease.is_object_store(self.uri) else \
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

    # -- generations -------------------------------------------------------------------------
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

    def begin_generation(self, identity: dict[str, Any]) -> int:
        """A generation for ``identity`` built beside the live one: an unfinished one of the same space
        is resumed, else a new one is recorded as building. Its tables are made by ``ensure_space``."""
        self._connect()
        all_ = self.generations()
        g = gens.building_for(all_, identity)
        if g is not None:
            return g.generation
        n = max((g.generation for g in all_), default=0) + 1
        new = gens.Generation(n, identity.get("model_id", "?"), identity, *gens.table_names(n), gens.BUILDING, now())
        rows = [new]
        if gens.GENERATIONS not in self._names:  # a database from before generations: record generation 1
            rows += [replace(g, created_at=None) for g in all_]
        gens.write(self.db, self._names, rows)
        return n

    def switch_to(self, generation: int) -> None:
        """Make ``generation`` live and retire the live one, in one commit (readers see one or the other)."""
        lease.check_held(self.uri)
        all_ = self.generations()
        new = next((g for g in all_ if g.generation == generation), None)
        if new is None:
            raise StoreError(f"no model generation {generation} in {self.uri!r}")
        stamp = now()
        rows = [replace(new, state=gens.LIVE, switched_at=stamp)]
        rows += [replace(g, state=gens.RETIRED, switched_at=stamp) for g in all_ if g.state == gens.LIVE and g is not new]
        gens.write(self.db, self._names, rows)

    def drop_generations(self, generations: Sequence[int]) -> list[int]:
        """Drop the tables of the given generations (never the live one) and forget them."""
        lease.check_held(self.uri)
        all_ = {g.generation: g for g in self.generations()}
        dropped = []
        for n in generations:
            g = all_.get(n)
            if g is None or g.state == gens.LIVE:
                continue
            for name in (g.pins, g.segments):
                if name in self._names:
                    self.db.drop_table(name)
                    self._names.discard(name)
            dropped.append(n)
        gens.forget(self.db, dropped)
        return dropped

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

    # -- tables ------------------------------------------------------------------------------
    def _table(self, name: str) -> Any | None:
        if name not in self._tables:
            physical = self._physical(name)
            if physical not in self._names:
                return None
            self._tables[name] = self.db.open_table(physical)
        return self._tables[name]

    @property
    def identity(self) -> dict[str, Any] | None:
        """The embedding space this database was built in, or None for a new database."""
        t = self._table(PINS)
        if t is None:
            return None
        raw = (t.schema.metadata or {}).get(SPACE_KEY)
        return json.loads(raw) if raw else None

    @property
    def dim(self) -> int:
        """The vector dimension of pins (read once: a generation's space never changes)."""
        if self._dim is None:
            self._dim = int(self._pins().schema.field("vector").type.list_size)
        return self._dim

    def check_space(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """The database's space; ModelMismatchError when ``identity`` is another one."""
        have = self.identity
        if have is not None and not same_space(have, identity):
            raise ModelMismatchError(
                f"the database {self.uri!r} holds vectors of {describe(have)}; "
                f"{describe(identity)} is another embedding space",
                "leave out --model (the database's own model is used), or use another --db; to change "
                f"the database's model run `pinembed refresh SRC --db {self.uri} --model NEW` (it builds "
                "the new model's generation beside the live one and switches when complete); "
                "vectors of two models are never mixed in one table",
            )
        return have

    @faults.translated
    def ensure_space(self, identity: dict[str, Any]) -> None:
        """Create the tables for ``identity``, or check that the database already holds that space."""
        have = self.check_space(identity)
        if have is not None:
            self._add_missing_columns(have)
            return
        dim = int(identity["dim"])
        new = self.generation is None
        self._create(PINS, pins_schema(dim, identity))
        self._create(SEGMENTS, segments_schema(dim, identity))
        self._ensure_failures()
        if new:  # a new database: generation 1 goes live with its (empty) tables
            g = gens.Generation(1, identity.get("model_id", "?"), identity, *gens.table_names(1), gens.LIVE, now(), now())
            gens.write(self.db, self._names, [g])
            self._gen = g

    def _add_missing_columns(self, identity: dict[str, Any]) -> None:
        """Bring a database written by an older pinembed up to the current columns (all nullable, so
        old rows read as null); done before writing, never on a read-only query."""
        dim = int(identity["dim"])
        for name, schema in ((PINS, pins_schema(dim, identity)), (SEGMENTS, segments_schema(dim, identity))):
            t = self._table(name)
            if t is None:
                if name == SEGMENTS:
                    self._create(SEGMENTS, schema)
                continue
            have = set(t.schema.names)
            missing = [f for f in schema if f.name not in have]
            if missing:
                t.add_columns(missing)
                self._pin_columns = None

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

    # -- reading -----------------------------------------------------------------------------
    @deadline.bounded
    def count(self) -> int:
        """Number of pins."""
        t = self._table(PINS)
        return 0 if t is None else t.count_rows()

    @deadline.bounded
    def pin_states(self, columns: Sequence[str] = ("pin_id", "source_sig", "content_hash"),
                   where: str | None = None) -> pa.Table:
        """Selected columns of every pin (no vectors), for planning a run; ``where``: SQL from
        ``filters`` or ``store.resident`` (never user text)."""
        t = self._table(PINS)
        if t is None:
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        n = t.count_rows()
        if n == 0:
            return t.schema.empty_table().select(list(columns))
        q = t.search().select(list(columns))
        return (q.where(where) if where else q).limit(n).to_arrow()

    def signatures(self) -> dict[str, str]:
        """Pin id -> stored signature, for planning a run."""
        states = self.pin_states(("pin_id", "source_sig"))
        return dict(zip(states.column("pin_id").to_pylist(), states.column("source_sig").to_pylist(), strict=True))

    @faults.translated
    def get_pin(self, pin_id: str, with_vector: bool = True, columns: Sequence[str] | None = None) -> dict[str, Any]:
        """One pin's row (``columns``, default the result columns and description); PinNotFoundError
        when there is none. Related-pin queries ask for the vector alone: each column is a read."""
        cols = [*(columns if columns is not None else [*RESULT_COLUMNS, "description"])]
        cols += ["vector"] if with_vector else []
        rows = rows_of(self._pins().search().where(filters.eq("pin_id", pin_id)).select(cols).limit(1))
        if not rows:
            raise PinNotFoundError(
                f"no pin with id {pin_id!r} in {self.uri!r}",
                "pin ids are paths relative to the ingested folder, e.g. 'shoes/red.jpg' (the path of an "
                f"ingested file works too); `pinembed pins --db {self.uri}` lists them",
            )
        row = rows[0]
        if with_vector:
            row["vector"] = np.asarray(row["vector"], dtype=np.float32)
        return row

    def pin_id_for_path(self, path: str | os.PathLike[str]) -> str | None:
        """The pin whose media is the local file or folder ``path`` (its ``uri``), or that holds it (an
        idea pin's folder holds its manifest and pages); None when no pin does. One exact-match query."""
        candidates: list[str] = []
        for p in {os.path.abspath(os.fspath(path)), os.path.realpath(path)}:
            while p not in candidates:
                candidates.append(p)
                p = os.path.dirname(p)
        t = self._table(PINS)
        if t is None:
            return None
        rows = t.search().where(filters.is_in("uri", candidates)).select(["pin_id", "uri"]).limit(8).to_list()
        rows.sort(key=lambda r: len(r["uri"] or ""), reverse=True)  # the deepest: the file before a folder
        return rows[0]["pin_id"] if rows else None

    def iter_batches(self, name: str, columns: Sequence[str] | None = None, where: str | None = None,
                     batch_size: int = 1024) -> Iterator[pa.RecordBatch]:
        """Rows of the live generation's ``pins`` or ``segments`` (or ``failures``) as Arrow record
        batches, streamed. ``where``: SQL from ``filters`` (never user text)."""
        t = self._table(name)
        if t is None:
            return
        n = t.count_rows()
        if not n:
            return
        q = t.search()
        if where:
            q = q.where(where)
        if columns is not None:
            q = q.select(list(columns))
        for b in q.limit(n).to_batches(batch_size):
            if b.num_rows:
                yield b

    def schema(self, name: str) -> pa.Schema | None:
        """The Arrow schema of the live generation's table ``name`` (None when it is missing)."""
        t = self._table(name)
        return None if t is None else t.schema

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

    def iter_vectors(self, batch_size: int = 1024) -> Iterable[tuple[list[str], np.ndarray]]:
        """Every pin's (ids, vectors) in batches, streamed (never the whole table in memory)."""
        t = self._table(PINS)
        if t is None or not t.count_rows():
            return
        reader = t.search().select(["pin_id", "vector"]).limit(t.count_rows()).to_batches(batch_size)
        for b in reader:
            if b.num_rows:
                vecs = b.column("vector").values.to_numpy(zero_copy_only=False).reshape(b.num_rows, -1)
                yield b.column("pin_id").to_pylist(), vecs.astype(np.float32, copy=False)

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

    @faults.translated
    def ensure_index(self) -> str:
        """Upkeep after writing: the ANN index policy on pins (returns exact, built, rebuilt or current),
        scalar indexes on pins and segments, and compaction of both."""
        t = self._table(PINS)
        if t is None:
            return "exact"
        state = maintain(t, t.schema.field("vector").type.list_size, self.index_policy, PINS_SCALAR)
        seg = self._table(SEGMENTS)
        if seg is not None:
            maintain(seg, None, self.index_policy, SEGMENTS_SCALAR)
        self._indexed = None
        return state

    def compact(self) -> None:
        """Compact pins and segments when small fragments have piled up (called during long runs)."""
        for name in (PINS, SEGMENTS):
            t = self._table(name)
            if t is not None:
                compact(t, self.index_policy)

    def segments_of(self, pin_ids: Sequence[str], columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Segment rows (``columns``, default all, vectors included) of the given pins."""
        t = self._table(SEGMENTS)
        if t is None or not pin_ids:
            return []
        q = t.search().where(filters.is_in("pin_id", pin_ids))
        if columns is not None:
            q = q.select(list(columns))
        return rows_of(q.limit(t.count_rows() or 1))

    @faults.translated
    @deadline.bounded
    def pins_with(self, pin_ids: Sequence[str], columns: Sequence[str], with_vector: bool = False) -> list[dict[str, Any]]:
        """The ``columns`` (and the vector) of the pins among ``pin_ids`` (at most 1000), in one query."""
        t = self._table(PINS)
        if t is None or not pin_ids:
            return []
        ids = list(pin_ids)[:1000]
        if self._pin_columns is None:  # read once: a reader's Store never sees columns added under it
            self._pin_columns = frozenset(t.schema.names)
        cols = [c for c in columns if c in self._pin_columns] + (["vector"] if with_vector else [])
        rows = rows_of(t.search().where(filters.is_in("pin_id", ids)).select(cols).limit(len(ids)))
        if with_vector:
            for r in rows:
                r["vector"] = np.asarray(r["vector"], dtype=np.float32)
        return rows

    # -- writing -----------------------------------------------------------------------------
    @faults.translated
    def write(self, pins: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]] = ()) -> None:
        """Upsert pins (by pin id) and replace their segments; one LanceDB commit per table.

        Segments are written first: a crash between the two leaves the pin absent or old, so the
        next run sees it as new or changed and writes both again.
        """
        if not pins:
            return
        lease.check_held(self.uri)  # a run that lost its object-storage write lease stops here
        pins_t = self._pins()
        ids = [p["pin_id"] for p in pins]
        seg_t = self._table(SEGMENTS)
        data = to_arrow(pins, pins_t.schema)  # both tables are built before either commit
        seg_data = to_arrow(segments, seg_t.schema) if seg_t is not None and segments else None
        if seg_data is not None:
            (
                seg_t.merge_insert(["pin_id", "seq"])
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(filters.is_in("pin_id", ids))
                .execute(seg_data)
            )
            failpoints.hit("commit")
        elif seg_t is not None and seg_t.count_rows():
            seg_t.delete(filters.is_in("pin_id", ids))
        self._selected.clear()
        pins_t.merge_insert("pin_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        faults.note_commit(self.uri, len(pins))

    def pins_by_id(self, pin_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Whole pin rows (vectors included) of the given ids."""
        t = self._table(PINS)
        if t is None or not pin_ids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(pin_ids), 1000):
            chunk = list(pin_ids[i : i + 1000])
            for r in t.search().where(filters.is_in("pin_id", chunk)).limit(len(chunk)).to_list():
                out[r["pin_id"]] = r
        return out

    def copy_pins(self, copies: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Write pins that reuse stored vectors: (source pin id, fields of the new pin, pin_id among
        them). Segments are copied too. Returns how many landed (a source may have vanished)."""
        sources = self.pins_by_id(sorted({src for src, _ in copies}))
        segs: dict[str, list[dict[str, Any]]] = {}
        for seg in self.segments_of(list(sources)):
            segs.setdefault(seg["pin_id"], []).append(seg)
        pins, segments = [], []
        for src, fields in copies:
            row = sources.get(src)
            if row is None:
                continue
            pins.append({**row, **fields})
            segments += [{**seg, "pin_id": fields["pin_id"]} for seg in segs.get(src, [])]
        for i in range(0, len(pins), 256):
            chunk = pins[i : i + 256]
            ids = {p["pin_id"] for p in chunk}
            self.write(chunk, [s for s in segments if s["pin_id"] in ids])
        return len(pins)

    @faults.translated
    def delete_pins(self, pin_ids: Sequence[str]) -> None:
        """Remove pins and their segments (segments first: a crash between leaves a pin that the next
        refresh deletes again, never segments without a pin)."""
        if not pin_ids:
            return
        lease.check_held(self.uri)
        seg = self._table(SEGMENTS)
        pins_t = self._pins()
        for i in range(0, len(pin_ids), 1000):
            where = filters.is_in("pin_id", pin_ids[i : i + 1000])
            if seg is not None:
                seg.delete(where)
            pins_t.delete(where)
        self._selected.clear()

    # -- sources -----------------------------------------------------------------------------
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

    def failures_by_uri(self) -> dict[str, dict[str, Any]]:
        """The failure ledger keyed by uri."""
        return {r["uri"]: r for r in self.failures()}

    @faults.translated
    def record_failures(self, failures: Sequence[dict[str, Any]]) -> None:
        """Add failures to the ledger, or bump ``attempts`` and ``last_seen`` of known ones."""
        if not failures:
            return
        t = self._ensure_failures()
        failures = list({f["uri"]: f for f in failures}.values())  # one row per uri (the last reason)
        uris = [f["uri"] for f in failures]
        known = {r["uri"]: r for r in t.search().where(filters.is_in("uri", uris)).limit(len(uris)).to_list()}
        stamp = now()
        rows = []
        for f in failures:
            old = known.get(f["uri"])
            rows.append(
                {
                    **f,
                    "attempts": (old["attempts"] if old else 0) + 1,
                    "first_seen": old["first_seen"] if old else stamp,
                    "last_seen": stamp,
                }
            )
        t.merge_insert("uri").when_matched_update_all().when_not_matched_insert_all().execute(
            to_arrow(rows, t.schema)
        )

    def clear_failures(self, uris: Sequence[str]) -> None:
        """Remove ledger rows of inputs that have now been ingested."""
        t = self._table(FAILURES)
        if t is not None and uris and t.count_rows():
            t.delete(filters.is_in("uri", uris))

    @deadline.bounded
    def failures(self) -> list[dict[str, Any]]:
        """The whole failure ledger, newest first."""
        t = self._table(FAILURES)
        if t is None:
            return []
        n = t.count_rows()
        rows = t.search().limit(n).to_list() if n else []
        return sorted(rows, key=lambda r: (r["last_seen"], r["uri"]), reverse=True)

    @deadline.bounded
    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, failures and the space's identity."""
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
            "space": self.identity,
        }
