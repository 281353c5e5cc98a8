"""``pinembed candidates``: a candidate table, every query pin's top-k related pins, for ranking pipelines.

The same semantics as ``related``: the pin itself left out, ``kinds`` and ``where`` choose which pins
can be candidates (``controls.check``, the one home of those rules), scores are cosines. Which pins are
queries: all, or those of ``query_where``, or the ids of a list. The search is ``candidate_search``'s
(IVF groups with probes chosen so that a sample of queries reaches ``target_recall`` against exact; or
exact blocks with ``exact``, and for small bases).

The job writes parts (one per range of lists) into ``OUT.partial/``, each atomically, with a manifest
of what it is built from (the model generation, the pins table version, the controls, the layout). A
job killed and run again with the same settings finishes only the missing parts; any other settings
start over. At the end the parts become OUT at once: a folder of parts, or one Parquet file.
Columns: ``pin_id, rank, candidate_id, score``; the file's metadata says what it was built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinembed import failpoints
from pinembed.errors import UsageError
from pinembed.store.candidate_tables import check_name
from pinembed.store.location import side_folder
from pinembed.store.lock import WriteLock
from pinembed.store.schema import PINS

from . import candidate_search as cs
from .controls import check, check_where
from .metrics import recall_at

TABLE_PREFIX = "table:"  # --out table:NAME: a candidate table inside the database
EXACT_BELOW = 20_000  # base vectors: below this the exact products are about as fast as the lists
CALIBRATION_QUERIES = 256
ROW_GROUP = 1 << 20  # rows written to a part at a time
PART_QUERIES = 16_384  # queries a part holds (about): a killed job loses at most the part it was writing
SCHEMA = pa.schema([("pin_id", pa.string()), ("rank", pa.int16()), ("candidate_id", pa.string()),
                    ("score", pa.float32())])


@dataclass
class CandidateOptions:
    """What a candidate job computes (the rules of k, kinds and where are ``controls``')."""

    k: int = 100
    kinds: Sequence[str] | None = None
    where: Any = None
    query_where: Any = None
    pins: Sequence[str] | None = None  # the query pins (default: every pin, or those of query_where)
    exact: bool = False
    memory_mb: int = 2048
    target_recall: float = 0.97  # recall@10 of a sample of queries against exact, for choosing nprobe
    nprobe: int | None = None  # set: no calibration
    device: str = "cpu"
    seed: int = 0
    runner: str = "local"  # "ray": the parts are searched by Ray tasks (``candidate_ray``)
    ray: Any = None  # RayOptions (address, workers, CPUs per worker)


@dataclass
class CandidateSummary:
    """What a job did."""

    out: str
    queries: int = 0
    base: int = 0
    k: int = 0
    rows: int = 0
    method: str = ""
    nlist: int = 0
    nprobe: int = 0
    sample_recall_at_10: float | None = None
    parts: int = 0
    parts_reused: int = 0
    missing_pins: int = 0
    missing_examples: list[str] = field(default_factory=list)
    generation: int | None = None
    pins_version: int | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return asdict(self)


def build(index: Any, out: str, opts: CandidateOptions, progress: Any = None) -> CandidateSummary:
    """Write the candidate table of ``index`` to ``out`` (a folder, or a ``.parquet`` file)."""
    t0 = time.perf_counter()
    attrs = index.attributes()
    c = check(opts.k, opts.kinds, opts.where, attributes=attrs)
    qwhere = check_where(opts.query_where, attrs)
    store = index.store
    store.require_database()
    summary = CandidateSummary(out=out, k=c.k, generation=store.generation.generation if store.generation else None,
                               pins_version=store.pins_version())
    ids, kinds, vecs = _all_pins(store)
    base_mask = _matching(store, ids, c.where, c.kinds)
    query_mask = _matching(store, ids, qwhere, None) if qwhere is not None else np.ones(len(ids), bool)
    if opts.pins is not None:
        wanted = pa.array(list(dict.fromkeys(opts.pins)), pa.string())
        query_mask &= np.asarray(pc.is_in(ids, value_set=wanted))
        known = pc.is_in(wanted, value_set=ids)
        missing = wanted.filter(pc.invert(known)).to_pylist()
        summary.missing_pins, summary.missing_examples = len(missing), missing[:10]
    base_rows, query_rows = np.flatnonzero(base_mask), np.flatnonzero(query_mask)
    summary.queries, summary.base = len(query_rows), len(base_rows)
    inv = np.full(len(ids), -1, np.int64)
    inv[base_rows] = np.arange(len(base_rows))
    base = vecs[base_rows]
    queries, self_rows = vecs[query_rows], inv[query_rows]
    del vecs
    key = _key(summary, c, opts, qwhere)
    table = out[len(TABLE_PREFIX):] if out.startswith(TABLE_PREFIX) else None
    if table is not None:
        check_name(table)
        job = _Job(str(side_folder(store.uri, "candidates") / table), key, table=table)
    else:
        job = _Job(out, key)
    searcher = cs.Searcher(base, c.k, opts.memory_mb, opts.device)
    if opts.exact or len(base_rows) < EXACT_BELOW:
        summary.method, lay, qlists = "exact", None, None
        specs = [(s, min(len(query_rows), s + PART_QUERIES)) for s in range(0, len(query_rows), PART_QUERIES)]
        sizes = [e - s for s, e in specs]
    else:
        summary.method = "ivf"
        lay, qlists = job.layout(base, queries, opts, searcher, self_rows, summary)
        specs = [(g.start, g.stop) for g in _part_ranges(len(lay.centroids), qlists)]
        counts = np.bincount(qlists, minlength=len(lay.centroids))
        sizes = [int(counts[s:e].sum()) for s, e in specs]
    todo = job.missing(len(specs))
    summary.parts, summary.parts_reused = len(specs), len(specs) - len(todo)
    work = Work(queries, self_rows, lay, qlists)
    if opts.runner == "ray":
        from .candidate_ray import run_parts  # heavy: ray

        results = run_parts(base, work, specs, todo, c.k, opts)
    else:
        results = ((i, work.part(searcher, specs[i])) for i in todo)
    job.write_parts(results, ids, query_rows, base_rows, progress, sizes, todo)
    job.finish(summary, store)
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    return summary


def _all_pins(store: Any) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Every pin's id, kind and vector (float32, one row each), read in large batches."""
    n, dim = store.count(), store.dim
    vecs = np.empty((n, dim), np.float32)
    ids, kinds, at = [], [], 0
    for b in store.iter_batches(PINS, ["pin_id", "kind", "vector"], batch_size=65_536):
        m = b.num_rows
        vecs[at:at + m] = b.column("vector").values.to_numpy(zero_copy_only=False).reshape(m, -1)
        ids.append(b.column("pin_id"))
        kinds.append(b.column("kind"))
        at += m
    ids_a = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    kinds_a = pa.concat_arrays(kinds).to_numpy(zero_copy_only=False) if kinds else np.array([], object)
    return ids_a, kinds_a, vecs[:at]


def _matching(store: Any, ids: pa.Array, where: Any, kinds: Sequence[str] | None) -> np.ndarray:
    """Which pins pass a checked filter and kinds (``store.filters`` writes the SQL)."""
    from pinembed.store import filters

    sql = filters.compile_where(where, store.attributes()) if where is not None else None
    parts = [p for p in (sql, filters.is_in("kind", kinds) if kinds else None) if p]
    if not parts:
        return np.ones(len(ids), bool)
    cond = " AND ".join(f"({p})" for p in parts)
    found = [b.column("pin_id") for b in store.iter_batches(PINS, ["pin_id"], where=cond, batch_size=65_536)]
    if not found:
        return np.zeros(len(ids), bool)
    return np.asarray(pc.is_in(ids, value_set=pa.concat_arrays(found)))


def _key(s: CandidateSummary, c: Any, opts: CandidateOptions, qwhere: Any) -> str:
    what = {"generation": s.generation, "version": s.pins_version, "k": c.k, "kinds": c.kinds, "where": str(c.where),
            "query_where": str(qwhere), "pins": hashlib.sha256("\n".join(opts.pins or []).encode()).hexdigest(),
            "exact": opts.exact, "target": opts.target_recall, "nprobe": opts.nprobe, "seed": opts.seed}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _part_ranges(nlist: int, qlists: np.ndarray, per_part: int = PART_QUERIES) -> list[range]:
    """Consecutive list ranges holding about ``per_part`` queries each."""
    counts = np.bincount(qlists, minlength=nlist)
    out, start, acc = [], 0, 0
    for g in range(nlist):
        acc += int(counts[g])
        if acc >= per_part or g == nlist - 1:
            out.append(range(start, g + 1))
            start, acc = g + 1, 0
    return out


class _Job:
    """The parts of one job in ``OUT.partial/`` and its manifest."""

    def __init__(self, out: str, key: str, table: str | None = None) -> None:
        self.table = table  # a candidate table of the database (``--out table:NAME``), built in ``out``
        self.out = os.path.abspath(out)
        single = self.out.lower().endswith(".parquet")
        if os.path.isdir(self.out) and (single or not os.path.exists(os.path.join(self.out, "_manifest.json"))):
            raise UsageError(f"{out!r} is a folder that no candidate job wrote", "give --out a new path")
        if os.path.lexists(self.out) and not os.path.isdir(self.out) and not single:
            raise UsageError(f"{out!r} is a file, not a folder of parts",
                             "give --out a .parquet file name, a new folder, or table:NAME")
        self.dir = self.out + ".partial"
        meta = os.path.join(self.dir, "_manifest.json")
        old = None
        if os.path.exists(meta):
            try:
                old = json.loads(open(meta).read()).get("key")
            except (OSError, ValueError):
                old = None
        if old != key:
            shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)
        self.key = key
        with open(meta + ".tmp", "w") as f:
            json.dump({"key": key}, f)
        os.replace(meta + ".tmp", meta)

    def layout(self, base: np.ndarray, queries: np.ndarray, opts: CandidateOptions, searcher: cs.Searcher,
               self_rows: np.ndarray, summary: CandidateSummary) -> tuple[cs.Layout, np.ndarray]:
        """The lists (kept in the job folder: a resumed job groups the same way) and each query's list."""
        path = os.path.join(self.dir, "_layout.npz")
        nlist = cs.lists_for(len(base))
        if os.path.exists(path):
            z = np.load(path)
            centroids, nprobe, recall = z["centroids"], int(z["nprobe"]), float(z["recall"])
            lists, qlists = _lists(base, queries, centroids, self_rows)
        else:
            centroids = cs.train(base, nlist, opts.seed)
            lists, qlists = _lists(base, queries, centroids, self_rows)
            nprobe, recall = _calibrate(lists, queries, qlists, centroids, opts, searcher, self_rows)
            np.savez(path + ".tmp.npz", centroids=centroids, nprobe=nprobe, recall=recall)
            os.replace(path + ".tmp.npz", path)
        lay = cs.layout(lists, centroids, nprobe, opts.k + 1)
        summary.nlist, summary.nprobe, summary.sample_recall_at_10 = len(centroids), nprobe, round(recall, 4)
        return lay, qlists

    def missing(self, n: int) -> list[int]:
        """The parts of ``n`` that no earlier run of this job wrote."""
        return [i for i in range(n) if not os.path.exists(self._part(i))]

    def _part(self, i: int) -> str:
        return os.path.join(self.dir, f"part-{i:05d}.parquet")

    def write_parts(self, results: Iterable[tuple[int, Iterable[cs.Found]]], ids: pa.Array, query_rows: np.ndarray,
                    base_rows: np.ndarray, progress: Any, sizes: list[int], todo: list[int]) -> None:
        """Each part's rows to its own file, atomically, as the parts come (in any order)."""
        total = sum(sizes)
        done = total - sum(sizes[i] for i in todo)
        for i, founds in results:
            path = self._part(i)
            tmp = path + ".tmp"
            with pq.ParquetWriter(tmp, SCHEMA) as w:
                held: list[pa.Table] = []
                for found in founds:
                    held.append(_rows(found, ids, query_rows, base_rows))
                    if sum(t.num_rows for t in held) >= ROW_GROUP:
                        w.write_table(pa.concat_tables(held))
                        held = []
                    done += len(found.queries)
                    if progress is not None:
                        progress(done, total)
                if held:
                    w.write_table(pa.concat_tables(held))
            os.replace(tmp, path)
            failpoints.hit("candidates_part")

    def finish(self, summary: CandidateSummary, store: Any) -> None:
        """The parts become OUT at once (a folder, one file for a ``.parquet`` OUT, or a table of the
        database switched in one commit)."""
        parts = sorted(f for f in os.listdir(self.dir) if f.startswith("part-") and f.endswith(".parquet"))
        info = {k: v for k, v in summary.to_dict().items()
                if k in ("k", "method", "nlist", "nprobe", "generation", "pins_version", "queries", "base")}
        meta = {"pinembed": json.dumps(info)}
        summary.rows = sum(pq.ParquetFile(os.path.join(self.dir, f)).metadata.num_rows for f in parts)
        if self.table is not None:
            def batches() -> Any:
                for f in parts:
                    yield from pq.ParquetFile(os.path.join(self.dir, f)).iter_batches(batch_size=1 << 20)

            with WriteLock(store.uri, "candidates", store.storage_options):
                store.write_candidates(self.table, batches(), SCHEMA, info)
            shutil.rmtree(self.dir, ignore_errors=True)
            summary.out = TABLE_PREFIX + self.table
            return
        if self.out.lower().endswith(".parquet"):
            tmp = self.out + ".tmp"
            with pq.ParquetWriter(tmp, SCHEMA.with_metadata(meta)) as w:
                for f in parts:
                    for b in pq.ParquetFile(os.path.join(self.dir, f)).iter_batches(batch_size=1 << 20):
                        w.write_batch(b)
            os.replace(tmp, self.out)
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        with open(os.path.join(self.dir, "_manifest.json"), "w") as f:
            json.dump({"key": self.key, **json.loads(meta["pinembed"]), "parts": parts}, f)
        layout = os.path.join(self.dir, "_layout.npz")
        if os.path.exists(layout):
            os.remove(layout)
        if os.path.exists(self.out):
            shutil.rmtree(self.out)
        os.replace(self.dir, self.out)


@dataclass
class Work:
    """What each part searches: the query vectors, their own base rows, and the lists (None: exact)."""

    queries: np.ndarray
    self_rows: np.ndarray
    layout: cs.Layout | None
    qlists: np.ndarray | None

    def part(self, searcher: cs.Searcher, spec: tuple[int, int]) -> Iterator[cs.Found]:
        """The results of one part: queries ``spec`` (exact), or the queries of lists ``spec`` (IVF)."""
        s, e = spec
        if self.layout is None:
            return searcher.exact(self.queries[s:e], np.arange(s, e), self.self_rows[s:e])
        return searcher.grouped(self.layout, self.queries, np.arange(len(self.queries)), self.self_rows,
                                self.qlists, range(s, e))


def _rows(found: cs.Found, ids: pa.Array, query_rows: np.ndarray, base_rows: np.ndarray) -> pa.Table:
    """A block's results as table rows (a missing candidate, when fewer pins than k, is left out)."""
    q, k = found.rows.shape
    ok = found.rows >= 0
    qi = np.repeat(query_rows[found.queries], k).reshape(q, k)[ok]
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int16), (q, 1))[ok]
    cand = base_rows[found.rows[ok]]
    return pa.table({"pin_id": ids.take(pa.array(qi)), "rank": pa.array(ranks, pa.int16()),
                     "candidate_id": ids.take(pa.array(cand)), "score": pa.array(found.scores[ok], pa.float32())},
                    schema=SCHEMA)


def _lists(base: np.ndarray, queries: np.ndarray, centroids: np.ndarray,
           self_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each base row's list and each query's (a query that is a base row has its row's)."""
    lists = cs.assign(base, centroids)
    qlists = np.empty(len(queries), np.int32)
    own = self_rows >= 0
    qlists[own] = lists[self_rows[own]]
    if not own.all():
        qlists[~own] = cs.assign(queries[~own], centroids)
    return lists, qlists


def _calibrate(lists: np.ndarray, queries: np.ndarray, qlists_all: np.ndarray, centroids: np.ndarray,
               opts: CandidateOptions, searcher: cs.Searcher, self_rows: np.ndarray) -> tuple[int, float]:
    """The smallest nprobe (doubling from 1) whose recall@10 (@k for a k under 10) on a sample of queries
    against exact reaches ``target_recall`` (or ``opts.nprobe``, measured the same way)."""
    m = min(10, opts.k)
    rng = np.random.default_rng(opts.seed)
    pick = np.sort(rng.choice(len(queries), min(len(queries), CALIBRATION_QUERIES), replace=False))
    sq, srows = queries[pick], self_rows[pick]
    truth = [f.rows for f in searcher.exact(sq, pick, srows)]
    truth_rows = np.concatenate(truth)[:, :m]
    qlists = qlists_all[pick]
    trials = [opts.nprobe] if opts.nprobe else [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p < len(centroids)]
    trials = trials or [len(centroids)]
    best = (trials[-1], 0.0)
    for p in trials:
        lay = cs.layout(lists, centroids, p, opts.k + 1)
        got = np.full((len(sq), m), -1)
        for f in searcher.grouped(lay, sq, np.arange(len(sq)), srows, qlists, range(len(centroids))):
            got[f.queries] = f.rows[:, :m]
        recall = float(np.mean([recall_at(list(g), set(t[t >= 0]), m) if (t >= 0).any() else 1.0
                                for g, t in zip(got, truth_rows, strict=True)]))
        best = (p, recall)
        if recall >= opts.target_recall:
            break
    return best
