"""Reading pins, as a part of ``Store``: counts, planning states, one pin, pins by id or path, their
segments, and whole tables streamed in batches (never a vector search: that is ``store.search``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pinembed.errors import PinNotFoundError

from . import deadline, faults, filters
from .rows import rows_of
from .schema import PINS, SEGMENTS
from .tables import Tables

#: Columns returned by queries (never the vector).
RESULT_COLUMNS = ["pin_id", "kind", "uri", "title", "n_segments", "duration_s"]  # each column is a read per result


class PinReads(Tables):
    """Pins and segments read by id, path, column or batch."""

    @deadline.bounded
    def pins_version(self) -> int | None:
        """The pins table's version as committed now (checked, never the cached handle's: another process
        may have written since it was opened); None when there is no pins table."""
        t = self._table(PINS)
        if t is None:
            return None
        t.checkout_latest()
        return int(t.version)

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
        have = set(t.schema.names)
        cols = [c for c in columns if c in have]  # a column newer than the table (``source``) reads as null
        n = t.count_rows()
        if n == 0:
            out = t.schema.empty_table().select(cols)
        else:
            q = t.search().select(cols)
            q = (q.where(where) if where else q).limit(n)
            out = q.to_batches(batch_size=65_536).read_all()  # large batches: 3x to_arrow's speed at 1M pins
        for c in columns:
            if c not in have:
                out = out.append_column(c, pa.nulls(out.num_rows, pa.string()))
        return out.select(list(columns))

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
