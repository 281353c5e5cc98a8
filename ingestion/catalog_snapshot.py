"""A catalog's rows as its last run left them, so that the next run compares rows with rows and reads
nothing from the store for a row that did not change.

A snapshot is kept per database and catalog source in ``store.location.side_folder(db, "catalogs")``:
an Arrow IPC file (read by memory map) of every row's pin id and the columns a plan reads, as the
catalog had them, with a flag per row: *settled*, its pin is stored as this row plans it (the row was
unchanged when that run planned it). Beside it: the sorted hashes of its pin ids (``id_lookup``), the
pins of the source that are no settled row (written by that run, or named by no row), and a JSON with
the pins table's version at the end of that run and a key of all a plan depends on (the source, its
columns and attribute types, the settings the vectors depend on, the files).

A snapshot is trusted only while both match. Every write to the pins table holds the write lock and a
catalog run tags its snapshot while it holds it, so any write the run did not see (another source's run,
``pins rm``, a new model) changes the version, and the next run plans against the store and leaves a
new snapshot. A row equal to its settled row is unchanged; any other row is planned against the store
(``catalog_plan``), which is then read once. The snapshot needs ``--version-col``: without one, a row's
signature holds its media's size and time, which only a stat of each media tells.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from pinembed.store import filters
from pinembed.store.db import Store
from pinembed.store.location import side_folder

from .catalog import Columns
from .column_ops import same_rows
from .id_lookup import IdLookup, id_hashes
from .sources import owned

log = logging.getLogger(__name__)

FORMAT = 1
PID, SETTLED = "__pin_id", "__settled"  # the snapshot's own columns beside the catalog's


def plan_columns(cols: Columns, attributes: Mapping[str, pa.DataType]) -> list[str]:
    """The catalog columns a plan reads besides the id, in order, each once."""
    names = [cols.media, cols.kind, cols.version, cols.title, cols.description, cols.page_text, *attributes]
    return list(dict.fromkeys(c for c in names if c and c != cols.id))


def plan_table(t: pa.Table, names: Sequence[str], attributes: Mapping[str, pa.DataType]) -> pa.Table:
    """``t``'s plan columns in one layout whatever the file: an attribute as its catalog-wide type, a
    column the file lacks as nulls."""
    out = {}
    for c in names:
        typ = attributes.get(c)
        if c in t.column_names:
            a = t.column(c).combine_chunks()
            out[c] = a if typ is None or a.type.equals(typ) else pc.cast(a, typ, safe=False)
        else:
            out[c] = pa.nulls(t.num_rows, typ or pa.string())
    return pa.table(out)


def key_of(root: str, prefix: str, cols: Columns, attributes: Mapping[str, pa.DataType],
           settings: Mapping[str, str], files: Sequence[str]) -> str:
    """A digest of all a plan of ``root`` depends on besides its rows and the store."""
    what = {"format": FORMAT, "root": root, "prefix": prefix, "columns": asdict(cols),
            "attributes": {k: str(v) for k, v in attributes.items()}, "settings": dict(settings),
            "files": list(files)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _stem(root: str) -> str:
    return hashlib.sha256(root.encode()).hexdigest()[:24]


@dataclass
class Snapshot:
    """A loaded snapshot: its rows (memory-mapped), their settled flags and id lookup, the source's other
    stored pins."""

    rows: pa.Table
    settled: np.ndarray
    canon: np.ndarray  # each row's first row with the same pin id (a repeated id is one id)
    lookup: IdLookup
    pending: pa.Array
    meta: dict

    @property
    def n(self) -> int:
        """Its number of rows."""
        return self.rows.num_rows


def load(uri: str, root: str, key: str, version: int | None) -> Snapshot | None:
    """The snapshot of ``root`` in the database at ``uri`` when it was left at pins table ``version`` with
    the same ``key``; else (or when its files are not whole) None."""
    if version is None:
        return None
    folder = side_folder(uri, "catalogs")
    try:
        meta = json.loads((folder / f"{_stem(root)}.json").read_text())
        if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("version") != version:
            return None
        base = folder / f"{_stem(root)}-{meta['token']}"
        rows = ipc.open_file(pa.memory_map(str(base) + ".arrow")).read_all()
        hashes = np.load(str(base) + ".npy", mmap_mode="r")
        pending = ipc.open_file(pa.memory_map(str(base) + ".pending.arrow")).read_all().column(PID)
        if rows.num_rows != meta.get("rows") or hashes.shape != (3, rows.num_rows):
            return None
        ids = rows.column(PID).combine_chunks()
        lookup = IdLookup(ids, (np.asarray(hashes[0]).view(np.int64), np.asarray(hashes[1])))
        settled = np.asarray(rows.column(SETTLED).combine_chunks(), dtype=bool)
        canon = np.asarray(hashes[2]).view(np.int64)
        return Snapshot(rows.drop_columns([SETTLED]), settled, canon, lookup, pending.combine_chunks(), meta)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        log.debug("catalog snapshot of %s not used: %s", root, e)
        return None


def _equal(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> bool:
    """Whether two columns hold the same values, row for row (Arrow compares their buffers: a column that
    did not change costs about a memcmp)."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a  # (one chunk: no copy)
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    return len(a) == len(b) and a.type.equals(b.type) and a.equals(b)


class Matcher:
    """Finds each catalog row's snapshot row (in order while the catalog keeps the snapshot's order; by
    id lookup from a row that does not) and says which rows are unchanged."""

    def __init__(self, snap: Snapshot | None) -> None:
        self.snap = snap
        n = snap.n if snap is not None else 0
        self.cursor = 0  # the snapshot row the next catalog row is expected at
        self.claimed = np.zeros(n, bool)  # snapshot rows some catalog row named
        self.quiet = np.zeros(n, bool)  # snapshot rows a catalog row matched unchanged
        self.in_order = snap is not None  # every row so far was the snapshot's next row, unchanged

    def match(self, pids: pa.Array, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """For each row of a batch (its pin ids and plan columns): whether it is unchanged, and whether an
        earlier row named its id (a duplicate)."""
        n = len(pids)
        quiet, again = np.zeros(n, bool), np.zeros(n, bool)
        if self.snap is None or not n:
            self.in_order = self.in_order and not n
            return quiet, again
        start = self.cursor
        pos = self._positions(pids)
        found = pos >= 0
        if found.any():
            p = self.snap.canon[pos[found]]
            first = np.zeros(len(p), bool)
            first[np.unique(p, return_index=True)[1]] = True
            again[found] = ~first | self.claimed[p]
        cand = np.flatnonzero(found & ~again & self.snap.settled[np.maximum(pos, 0)])
        if len(cand):
            if len(cand) == n and pos[0] == start and pos[-1] == start + n - 1:
                theirs, mine = self.snap.rows.slice(start, n), rows  # in order: compared as they lie
            else:
                theirs, mine = self.snap.rows.take(pa.array(pos[cand])), rows.take(pa.array(cand))
            same = np.ones(len(cand), bool)
            for name in rows.column_names:
                if name not in theirs.column_names:
                    same[:] = False
                if not same.any():
                    break
                if not _equal(mine.column(name), theirs.column(name)):
                    same &= same_rows(mine.column(name), theirs.column(name))
            quiet[cand] = same
        self.claimed[self.snap.canon[pos[found & ~again]]] = True
        self.quiet[pos[quiet]] = True
        self.in_order = self.in_order and bool(quiet.all()) and pos[0] == start and self.cursor == start + n
        return quiet, again

    def _positions(self, pids: pa.Array) -> np.ndarray:
        """Each pin id's snapshot row (-1: none): the next rows in order as long as the ids agree, then
        every id of the rest looked up (the cursor goes on after the last one found)."""
        snap, n = self.snap, len(pids)
        pos = np.full(n, -1, np.int64)
        c = self.cursor
        k = min(n, snap.n - c)
        run = 0
        if k > 0:
            mine, theirs = pids.slice(0, k), snap.rows.column(PID).slice(c, k)
            eq = np.ones(k, bool) if _equal(mine, theirs) else same_rows(mine, theirs)
            run = k if eq.all() else int(np.argmin(eq))
            pos[:run] = np.arange(c, c + run)
        self.cursor = c + run
        if run < n:
            rows, hit = snap.lookup.find(pids.slice(run))
            pos[run:] = np.where(hit, rows, -1)
            if hit.any():
                self.cursor = int(rows[np.flatnonzero(hit)[-1]]) + 1
        return pos

    def whole(self) -> bool:
        """Whether the catalog was the snapshot's rows, in order, each unchanged (a new snapshot would be
        the same)."""
        return self.in_order and self.snap is not None and self.cursor == self.snap.n

    def quiet_ids(self) -> pa.Array:
        """The pin ids of the rows found unchanged here."""
        if self.snap is None:
            return pa.array([], pa.string())
        return self.snap.rows.column(PID).filter(pa.array(self.quiet)).combine_chunks()

    def gone(self, named: set[str]) -> list[str]:
        """The source's stored pins that no row named, when every row not found unchanged here is in
        ``named``: settled rows no row claimed, and the source's other pins."""
        snap = self.snap
        if snap is None:
            return []
        ids = snap.rows.column(PID).filter(pa.array(snap.settled & ~self.claimed[snap.canon])).to_pylist()
        return ids + [p for p in snap.pending.to_pylist() if p not in named]


class Writer:
    """The next snapshot, written as the rows are planned (bounded memory) and kept by ``commit``."""

    def __init__(self, uri: str, root: str) -> None:
        self.uri, self.root = uri, root
        self.folder = side_folder(uri, "catalogs")
        self.token = uuid.uuid4().hex[:12]
        self.base = self.folder / f"{_stem(root)}-{self.token}"
        self._w: ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0
        self.broken = False

    @property
    def started(self) -> bool:
        """Whether any row was written."""
        return self._w is not None or self.broken

    def add(self, rows: pa.Table, pids: pa.Array, settled: np.ndarray) -> None:
        """One batch's plan columns, pin ids and settled flags."""
        self.add_table(rows.append_column(PID, pids).append_column(SETTLED, pa.array(settled, pa.bool_())))

    def add_table(self, t: pa.Table) -> None:
        """Rows in the snapshot's own layout (the earlier snapshot's, copied)."""
        if self.broken:
            return
        try:
            if self._w is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._w, self._schema = ipc.new_file(str(self.base) + ".arrow", t.schema), t.schema
            elif not t.schema.equals(self._schema):  # a file of the catalog has another type: no snapshot
                self.abort()
                return
            self._w.write_table(t)
            self.rows += t.num_rows
        except (OSError, pa.ArrowException) as e:
            log.warning("the catalog snapshot of %s is not kept: %s", self.root, e)
            self.abort()

    def copy(self, snap: Snapshot, upto: int) -> None:
        """The earlier snapshot's first ``upto`` rows (equal to the catalog's so far), settled."""
        t = snap.rows.slice(0, upto)
        self.add_table(t.append_column(SETTLED, pa.array(snap.settled[:upto], pa.bool_())))

    def abort(self) -> None:
        """Drop what was written."""
        self.broken = True
        if self._w is not None:
            try:
                self._w.close()
            except (OSError, pa.ArrowException):
                pass
            self._w = None
        for suffix in (".arrow", ".npy", ".pending.arrow"):
            Path(str(self.base) + suffix).unlink(missing_ok=True)

    def commit(self, store: Store, key: str, owned: pa.Array | None = None) -> None:
        """Keep what was written as the snapshot of the pins table as it is now (the caller holds the lock
        and wrote everything it plans to); ``owned``: the source's stored pin ids, when the caller knows
        them (else they are read)."""
        if self.broken or self._w is None:
            return
        try:
            self._w.close()
            self._w = None
            rows = ipc.open_file(pa.memory_map(str(self.base) + ".arrow")).read_all()
            ids = rows.column(PID).combine_chunks()
            settled = rows.column(SETTLED).combine_chunks()
            if owned is None:
                where = f"({filters.eq('source', self.root)}) OR source IS NULL"
                owned = owned_ids(store.pin_states(("pin_id", "source", "uri"), where=where), self.root)
            pending = owned.filter(pc.invert(pc.is_in(owned, value_set=ids.filter(settled))))
            with ipc.new_file(str(self.base) + ".pending.arrow", pa.schema([(PID, pa.string())])) as w:
                w.write_table(pa.table({PID: pc.cast(pending, pa.string())}))
            h = id_hashes(ids)
            order = np.argsort(h, kind="stable")
            canon = first_rows(ids, order, h[order])
            np.save(str(self.base) + ".npy", np.stack([order.view(np.uint64), h[order], canon.view(np.uint64)]))
            write_meta(self.folder, self.root, {"format": FORMAT, "key": key, "version": store.pins_version(),
                                                "rows": rows.num_rows, "token": self.token})
        except (OSError, pa.ArrowException) as e:
            log.warning("the catalog snapshot of %s is not kept: %s", self.root, e)
            self.abort()
            return
        for f in self.folder.glob(f"{_stem(self.root)}-*"):  # earlier snapshots' files
            if not f.name.startswith(self.base.name):
                f.unlink(missing_ok=True)


def owned_ids(pins: pa.Table, root: str) -> pa.Array:
    """The ids of the pins (pin_id, source, uri) that belong to the source ``root`` (``sources.owned``)."""
    src = pins.column("source")
    mine = pins.column("pin_id").filter(pc.fill_null(pc.equal(src, root), False)).combine_chunks()
    legacy = pins.filter(pc.is_null(src))  # written before pins recorded their source: by where they lie
    more = [r["pin_id"] for r in legacy.to_pylist() if owned(r, [root])] if legacy.num_rows else []
    return pa.concat_arrays([pc.cast(mine, pa.string()), pa.array(more, pa.string())])


def first_rows(ids: pa.Array, order: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Each row's first row with the same id (``order``: the rows by hash, ``hashes`` sorted)."""
    canon = np.arange(len(ids), dtype=np.int64)
    pairs = np.flatnonzero(hashes[1:] == hashes[:-1])  # neighbours by hash: the same id, or (rarely) not
    if len(pairs):
        a, b = order[pairs], order[pairs + 1]
        same = same_rows(ids.take(pa.array(a)), ids.take(pa.array(b)))
        for x, y in sorted(zip(a[same].tolist(), b[same].tolist(), strict=True), key=min):
            low = min(canon[x], canon[y])
            canon[x] = canon[y] = low
        while not np.array_equal(canon, canon[canon]):  # (a chain of three or more settles on its first row)
            canon = canon[canon]
    return canon


def retag(store: Store, root: str, snap: Snapshot) -> None:
    """Say the snapshot holds for the pins table as it is now: the run that used it wrote no pin (its
    upkeep may have compacted or indexed the table, which changes no row)."""
    version = store.pins_version()
    if version != snap.meta.get("version"):
        try:
            write_meta(side_folder(store.uri, "catalogs"), root, {**snap.meta, "version": version})
        except OSError as e:
            log.warning("the catalog snapshot of %s is not kept: %s", root, e)


def write_meta(folder: Path, root: str, meta: dict) -> None:
    """The snapshot's JSON, replaced at once (its files are written before it names them)."""
    path = folder / f"{_stem(root)}.json"
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)
