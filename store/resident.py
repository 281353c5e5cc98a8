"""A long-lived reader's copy of the pins table in memory: every pin's vector and card columns.

With it a related-pins request makes one LanceDB query: the ANN index's candidates, as row ids only.
The query pin's vector, the exact re-ranking of the candidates (what LanceDB's refine step does by
reading their vectors) and the result cards come from here. Without it a request reads the query
pin's row, then the candidates' vectors and card columns from the data files: at 1M pins about
25 ms against 6 (docs/performance.md).

It follows the table: ``sync`` reads the ids and stamps of the rows in fragments newer than the last
look (LanceDB writes inserted and upserted rows, and compacted ones, to new fragments; a row address
is fragment << 32 | offset), then the whole rows of new pins and of pins whose ``embedded_at``
changed, by row id (a compaction's rewrites cost only the first read). When the count of pins then disagrees with the table's, it reads every pin
id, to drop deleted pins and pick up any row missed. Candidates it does not hold (written since the
last look) are read from the table by row id, so a new pin is answered as soon as it is committed; a
pin changed or deleted since the last ``sync`` is seen as it was until the next (``pinembed serve``
syncs within about a second of a commit).

Memory: 4 bytes per dimension per pin plus the card columns and maps (1M pins x 512-d: about 2.6 GB).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import filters

#: The columns held besides the vector: what a result card and the query pin's lookup need.
CARD_COLUMNS = ("pin_id", "kind", "uri", "title", "n_segments", "duration_s", "content_hash")
_READ = [*CARD_COLUMNS, "embedded_at", "_rowid", "_rowaddr", "vector"]
_BYTES_PER_PIN = 350  # card columns, the two maps and the stamp (about 330 B at 1M synthetic pins)
_FETCH = 1000  # ids per IN (...) query
BLOCK = 1 << 16  # slots per block of vectors


def pins_table(store: Any) -> str:
    """The physical pins table ``store`` reads: a copy of another (a model switch) is no copy of it."""
    g = store.generation
    return g.pins if g is not None else "pins"


def estimate_mb(rows: int, dim: int) -> float:
    """Memory a copy of ``rows`` pins of ``dim`` dimensions takes, in MB."""
    return rows * (4 * dim + _BYTES_PER_PIN) / 1e6


class ResidentPins:
    """Vectors (float32, as stored) and card columns of one pins table, by pin id and by row id.

    Request threads read while one ``sync`` writes: a slot is filled before an id points at it and
    is never rewritten, so a reader sees a pin's old row or its new one, whole."""

    def __init__(self, table: str, dim: int) -> None:
        self.table = table  # the physical pins table this copies (a model switch makes another)
        self.dim = dim
        # slots in blocks of BLOCK rows: growing never copies what is held (first touches of a big new
        # array cost seconds per GB on a VM)
        self._vec_blocks: list[np.ndarray] = []
        self._stamp_blocks: list[np.ndarray] = []  # embedded_at in microseconds
        self._used = 0
        self._slot: dict[str, int] = {}  # pin id -> slot
        self._by_row: dict[int, int] = {}  # row id -> slot
        self._chunks: list[Any] = []  # Arrow record batches of the card columns, slots in order
        self._starts: list[int] = []  # the first slot of each chunk
        self._next_fragment = 0  # rows in fragments from this one on were written after the last look
        self._lock = threading.Lock()  # one writer at a time
        self.loaded_s = 0.0

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, pin_id: object) -> bool:
        return pin_id in self._slot

    @property
    def garbage(self) -> int:
        """Slots holding old rows of changed or deleted pins (a fresh ``load`` frees them)."""
        return self._used - len(self._slot)

    @property
    def mb(self) -> float:
        """Memory held, in MB: vectors, stamps, card columns, and the maps (estimated)."""
        cards = sum(c.nbytes for c in self._chunks)
        held = sum(b.nbytes for b in self._vec_blocks) + sum(b.nbytes for b in self._stamp_blocks)
        return (held + cards + 200 * (len(self._slot) + len(self._by_row))) / 1e6

    def vector(self, slot: int) -> np.ndarray:
        """The vector in ``slot`` (a view)."""
        return self._vec_blocks[slot // BLOCK][slot % BLOCK]

    def _stamp(self, slot: int) -> int:
        return int(self._stamp_blocks[slot // BLOCK][slot % BLOCK])

    # -- reading ---------------------------------------------------------------------------
    def _card(self, slot: int) -> dict[str, Any]:
        i = bisect.bisect_right(self._starts, slot) - 1
        chunk, r = self._chunks[i], slot - self._starts[i]
        return {c: chunk.column(j)[r].as_py() for j, c in enumerate(CARD_COLUMNS)}

    def rows(self, pin_ids: Sequence[str], with_vector: bool = False) -> dict[str, dict[str, Any]]:
        """Card columns (and vectors) of the pins among ``pin_ids`` held here."""
        out: dict[str, dict[str, Any]] = {}
        for pid in pin_ids:
            s = self._slot.get(pid)
            if s is not None:
                row = self._card(s)
                if with_vector:
                    row["vector"] = self.vector(s)
                out[pid] = row
        return out

    def rank(self, query: np.ndarray, row_ids: Sequence[int], limit: int, exclude: Sequence[str] = (),
             fetch: Callable[[list[int]], list[dict[str, Any]]] | None = None,
             with_vector: bool = False) -> list[dict[str, Any]]:
        """The best ``limit`` of the rows ``row_ids`` (an ANN index's candidates) re-ranked exactly:
        result rows (card columns and ``score``, the cosine to ``query``), best first, ties in the
        given order, the pins ``exclude`` left out. ``fetch`` reads rows not held here (card columns,
        ``_rowid`` and ``vector``); ids found nowhere are left out (deleted meanwhile)."""
        skip = {self._slot.get(p, -1) for p in exclude}
        slots = [self._by_row.get(int(r)) for r in row_ids]
        extra: dict[int, dict[str, Any]] = {}
        if fetch is not None and None in slots:
            extra = {int(r["_rowid"]): r for r in fetch([int(r) for r, s in zip(row_ids, slots, strict=True) if s is None])}
        found: list[tuple[int | None, int]] = []
        vecs = []
        for r, s in zip(row_ids, slots, strict=True):
            if s is not None and s not in skip:
                found.append((s, int(r)))
                vecs.append(self.vector(s))
            elif s is None and int(r) in extra and extra[int(r)]["pin_id"] not in exclude:
                found.append((None, int(r)))
                vecs.append(np.asarray(extra[int(r)]["vector"], np.float32))
        if not found:
            return []
        m = np.stack(vecs)
        q = np.asarray(query, np.float32)
        scores = (m @ q) / np.maximum(np.linalg.norm(m, axis=1) * np.linalg.norm(q), 1e-12)
        out = []
        for i in np.argsort(-scores, kind="stable")[:limit]:
            s, r = found[i]
            row = self._card(s) if s is not None else {c: extra[r].get(c) for c in CARD_COLUMNS}
            row["score"] = float(scores[i])
            if with_vector:
                row["vector"] = m[i]
            out.append(row)
        return out

    # -- following the table -----------------------------------------------------------------
    @classmethod
    def load(cls, store: Any, batch: int = 65_536, stop: threading.Event | None = None) -> ResidentPins | None:
        """A copy of ``store``'s live pins table, read in batches; None when ``stop`` is set before the
        last batch (a server shutting down)."""
        t0 = time.perf_counter()
        res = cls(pins_table(store), store.dim)
        with res._lock:
            for b in store.iter_batches("pins", _READ, batch_size=batch):
                if stop is not None and stop.is_set():
                    return None
                res._put(b)
                res._next_fragment = max(res._next_fragment, _fragment_after(b))
        res.loaded_s = time.perf_counter() - t0
        return res

    def sync(self, store: Any) -> dict[str, int]:
        """Bring the copy in line with ``store``'s pins table (see the module's docstring); returns
        counts: ``read`` (rows looked at), ``updated`` (new or changed pins), ``deleted``."""
        with self._lock:
            fresh = _stamps(store, f"_rowaddr >= {self._next_fragment << 32}")
            changed = []
            for pid, st, rid in zip(fresh.column("pin_id").to_pylist(), _micros(fresh.column("embedded_at")).tolist(),
                                    fresh.column("_rowid").to_pylist(), strict=True):
                s = self._slot.get(pid)
                if s is not None and self._stamp(s) == st:
                    self._by_row[rid] = s  # the same row, moved (compaction): nothing to read
                else:
                    changed.append(rid)
            updated = 0
            for i in range(0, len(changed), _FETCH):  # a row upserted again meanwhile is in a newer fragment
                ids = ", ".join(str(r) for r in changed[i:i + _FETCH])
                for b in store.iter_batches("pins", _READ, where=f"_rowid IN ({ids})"):
                    updated += self._put(b)
            self._next_fragment = max(self._next_fragment, _fragment_after(fresh))
            deleted = 0
            if len(self._slot) != store.count():  # pins deleted (or written in an older fragment)
                ids = store.pin_states(("pin_id",)).column("pin_id").combine_chunks()
                held = pa.array(list(self._slot), pa.string())
                gone = held.filter(pc.invert(pc.is_in(held, value_set=ids))).to_pylist()
                for pid in gone:
                    self._slot.pop(pid, None)
                deleted = len(gone)
                if len(self._slot) != len(ids):  # rows missed too (written in an older fragment)
                    updated += self._fetch(store, ids.filter(pc.invert(pc.is_in(ids, value_set=held))).to_pylist())
            return {"read": fresh.num_rows, "updated": updated, "deleted": deleted}

    def _fetch(self, store: Any, pin_ids: list[str]) -> int:
        n = 0
        for i in range(0, len(pin_ids), _FETCH):
            for b in store.iter_batches("pins", _READ, where=filters.is_in("pin_id", pin_ids[i:i + _FETCH])):
                n += self._put(b)
        return n

    def _put(self, b: Any) -> int:
        n = b.num_rows
        if not n:
            return 0
        vecs = b.column("vector").values.to_numpy(zero_copy_only=False).reshape(n, -1)
        stamps = _micros(b.column("embedded_at"))
        base, done = self._used, 0
        while done < n:  # fill the last block, then new ones
            if self._used + done >= len(self._vec_blocks) * BLOCK:
                self._vec_blocks.append(np.empty((BLOCK, self.dim), np.float32))
                self._stamp_blocks.append(np.zeros(BLOCK, np.int64))
            at = (base + done) % BLOCK
            take = min(n - done, BLOCK - at)
            self._vec_blocks[-1][at:at + take] = vecs[done:done + take]
            self._stamp_blocks[-1][at:at + take] = stamps[done:done + take]
            done += take
        self._chunks.append(b.select(list(CARD_COLUMNS)))
        self._starts.append(base)
        self._used += n
        # only now that the slots are filled do the ids point at them
        slots = range(base, base + n)
        self._by_row.update(zip(b.column("_rowid").to_pylist(), slots, strict=True))
        self._slot.update(zip(b.column("pin_id").to_pylist(), slots, strict=True))
        return n


def _stamps(store: Any, where: str) -> pa.Table:
    """Pin ids, stamps, row ids and row addresses of the pins ``where`` selects (row ids and addresses
    are virtual columns: read with the rows, not planning states)."""
    cols = ["pin_id", "embedded_at", "_rowid", "_rowaddr"]
    batches = list(store.iter_batches("pins", cols, where=where, batch_size=65_536))
    if batches:
        return pa.Table.from_batches(batches).select(cols)
    return pa.table({"pin_id": pa.array([], pa.string()), "embedded_at": pa.array([], pa.timestamp("us", tz="UTC")),
                     "_rowid": pa.array([], pa.uint64()), "_rowaddr": pa.array([], pa.uint64())})


def _fragment_after(b: Any) -> int:
    """The fragment after the newest one the rows of ``b`` (with ``_rowaddr``) come from."""
    return (int(pc.max(b.column("_rowaddr")).as_py()) >> 32) + 1 if b.num_rows else 0


def _micros(col: Any) -> np.ndarray:
    """A timestamp column as integers, missing ones 0 (datetime objects are slow to make by the million)."""
    return np.asarray(pc.fill_null(col.cast(pa.int64()), 0), np.int64)
