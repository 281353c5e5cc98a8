"""The ingestion run: discover -> plan -> read (threads; videos in decode processes) -> embed (batches)
-> pool -> write.

Each written batch is one LanceDB commit, so a run that is killed leaves whole batches behind and
the next run finishes the job (unchanged pins are skipped by their source signature).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from pinembed import failpoints
from pinembed.embedders.base import Embedder
from pinembed.embedders.device import cpu_count
from pinembed.errors import UsageError
from pinembed.store.db import Store, now
from pinembed.store.identity import space_identity
from pinembed.store.lock import WriteLock

from . import kinds
from .decode_pool import DecodePool
from .discover import discover
from .entry import Entry, Problem
from .ledger import failure_row, problem_rows
from .plan import make_plan
from .read import Item, Reader, ReadLimits
from .sources import claim_ids, resolve
from .video import VideoParams

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]

DEFAULT_IDEA_TEXT_WEIGHT = 0.5
COMPACT_EVERY = 16  # batches between checks for piled-up fragments


@dataclass
class IngestOptions:
    """Knobs of an ingestion run."""

    batch_size: int = 32  # images (frames, pages) per forward pass
    workers: int = field(default_factory=lambda: min(4, cpu_count()))  # read threads, video decode processes
    limits: ReadLimits = field(default_factory=ReadLimits)
    video: VideoParams = field(default_factory=VideoParams)
    text_weight: float = 0.0  # images and videos: weight of the sidecar text in the pin vector
    idea_text_weight: float = DEFAULT_IDEA_TEXT_WEIGHT  # idea pins: weight of title/description/page texts
    id_prefix: str | None = None  # None: a known source keeps its recorded prefix, a new one gets none
    fast_jpeg: bool = True  # decode JPEGs at reduced scale (never below the model's input size)

    def signature(self, e: Entry, kind: str | None = None) -> str:
        """``e``'s stored signature: its source signature plus the settings its vector depends on, so
        changing --fps, --max-frames or a text weight re-embeds exactly the pins it affects. ``kind``:
        the kind the pin was read as, when reading refined it (a stored motion pin of a .gif entry)."""
        parts = kinds.get(kind or e.kind).settings(e, self)
        return e.source_sig + ("#" + ",".join(parts) if parts else "")


class RunSummary:
    """What ingest and refresh summaries share: the exit code and the JSON form."""

    failed: int

    @property
    def exit_code(self) -> int:
        """0 when everything landed, 3 when inputs failed in this run."""
        return 3 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class IngestSummary(RunSummary):
    """What a run did. Every input found is counted once: added, updated, unchanged or failed (a pin
    that landed with a warning is added or updated, and counted in ``warnings`` too); files that are
    not read at all are ``skipped`` and named in ``skipped_files``."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0  # inputs that failed in this run (their ledger rows are in ``failures``)
    warnings: int = 0  # pins that landed with a warning (a bad sidecar, a dropped page; ``warning_rows``)
    skipped: int = 0  # files not read: not media, camera RAW, hidden, not a page of an idea pin
    model_loaded: bool = False
    embedded_images: int = 0  # images + video frames + page images through the image encoder
    elapsed_s: float = 0.0  # the whole run, model loading included
    items_per_s: float = 0.0  # pins written per second of the run
    stage_s: dict[str, float] = field(default_factory=dict)  # model, read (summed over threads), embed, write, index
    index: str = "exact"  # the ANN index after the run: exact, built, rebuilt or current
    sources: list[dict[str, str]] = field(default_factory=list)  # root and id prefix of each source
    failures: list[dict[str, Any]] = field(default_factory=list)
    warning_rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # path, reason, message


def read_ahead(items: Iterable[T], fn: Callable[[T], R], workers: int, window: int,
               cost: Callable[[T], int] = lambda _: 1) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Apply ``fn`` in worker threads, yielding in input order. Items in flight (submitted, not yet
    yielded) cost at most ``window`` in all (an item's ``cost`` is the images it can decode to), and
    at least one item is always in flight, however costly."""
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinembed-read") as ex:
        pending: deque[tuple[T, int, Any]] = deque()  # (item, cost, future), in input order
        held = 0
        waiting: Any = _END  # the next item, when it did not fit in the window yet

        def fill() -> None:
            nonlocal held, waiting
            while True:
                nxt, waiting = (waiting if waiting is not _END else next(it, _END)), _END
                if nxt is _END:
                    return
                c = max(1, cost(nxt))
                if pending and held + c > window:
                    waiting = nxt
                    return
                pending.append((nxt, c, ex.submit(fn, nxt)))
                held += c

        fill()
        while pending:
            x, c, fut = pending.popleft()
            try:
                yield x, fut.result(), None
            except Exception as e:  # each input's failure is reported, never raised
                yield x, None, e
            held -= c
            fill()


_END: Any = object()


def entry_cost(entry: Entry, video: VideoParams) -> int:
    """Images an entry can decode to (its share of the read-ahead window), from its kind."""
    return kinds.get(entry.kind).cost(entry, video)


def needs_decode_pool(entry: Entry) -> bool:
    """Whether reading ``entry`` needs the video decode processes."""
    return kinds.get(entry.kind).uses_decode_pool(entry)


class _Run:
    """State of one ingestion run. The embedder is loaded on first need (``load_model``): a run with
    nothing to embed never loads it."""

    def __init__(self, store: Store, embedder: Embedder | Callable[[], Embedder] | None, opts: IngestOptions,
                 known: dict[str, str], progress: Progress | None = None) -> None:
        self.store, self.opts, self.known = store, opts, known
        self._embedder = embedder
        self.progress = progress
        self.summary = IngestSummary()
        self.failures: list[dict[str, Any]] = []  # ledger rows to record: failed inputs
        self.warned: list[dict[str, Any]] = []  # ledger rows to record: warnings of landed pins
        self.keep: set[str] = set()  # uris that failed in this run: never cleared by a landing pin
        self.stage = {"model": 0.0, "read": 0.0, "embed": 0.0, "write": 0.0, "index": 0.0}
        self.writes = 0

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded now if it was given as a loader (the progress display says so)."""
        if not isinstance(self._embedder, Embedder):
            if self._embedder is None:
                raise UsageError("this run needs a model and none was given")
            phase(self.progress, "loading model")
            t = time.perf_counter()
            self._embedder = self._embedder()
            self.stage["model"] += time.perf_counter() - t
            self.summary.model_loaded = True
        return self._embedder

    def fail(self, rows: list[dict[str, Any]], inputs: int = 1) -> None:
        """Ledger rows of ``inputs`` inputs that failed in this run."""
        self.failures.extend(rows)
        self.keep.update(r["uri"] for r in rows)
        self.summary.failed += inputs

    def problems(self, problems: list[Problem]) -> None:
        """What a walk found but could not use: one failed input per file or folder."""
        rows = problem_rows(problems)
        self.fail(rows, len({r["uri"].split("#", 1)[0] for r in rows}))

    def record(self) -> None:
        rows = self.failures + self.warned
        if rows:
            t = time.perf_counter()
            self.store.record_failures(rows)
            self.stage["write"] += time.perf_counter() - t
            self.summary.failures.extend(self.failures)
            self.summary.warning_rows.extend(self.warned)
            self.failures, self.warned = [], []

    def flush(self, batch: list[Item]) -> None:
        """Embed, pool and write one batch (one commit per table); record the batch's failures."""
        if not batch:
            self.record()
            return
        t = time.perf_counter()
        vectors = self._embed_images(batch)
        texts = self._embed_texts([it for it in batch if it.entry.pin_id in vectors])
        self.stage["embed"] += time.perf_counter() - t
        stamp, pins, segments, landed = now(), [], [], []
        for item in batch:
            vecs = vectors.get(item.entry.pin_id)
            if vecs is None:
                continue
            kind = kinds.get(item.kind)
            pin_vec, segs = kind.pool(item, vecs, texts.get(item.entry.pin_id, []), self.opts)
            e = item.entry
            pins.append({
                "pin_id": e.pin_id, "kind": kind.name, "uri": e.uri, "content_hash": item.content_hash,
                "size": e.size, "mtime_ns": e.mtime_ns, "source_sig": self.opts.signature(e, kind.name),
                "title": item.title, "description": item.description, "width": item.width, "height": item.height,
                "duration_s": item.duration_s, "fps": item.fps, "n_segments": len(segs),
                "model_id": self.embedder.model_id, "vector": pin_vec, "embedded_at": stamp,
            })
            segments.extend(segs)
            landed.append(item)
            self.warned.extend(item.warnings)
            self.keep.update(w["uri"] for w in item.warnings)
        t = time.perf_counter()
        self.store.write(pins, segments)
        failpoints.hit("batch")
        self.writes += 1
        if self.writes % COMPACT_EVERY == 0:  # one fragment per commit: merge them on the way
            self.store.compact()
        self.store.clear_failures([u for it in landed for u in kinds.get(it.kind).uris(it.entry) if u not in self.keep])
        self.stage["write"] += time.perf_counter() - t
        for it in landed:
            if it.entry.pin_id in self.known:
                self.summary.updated += 1
            else:
                self.summary.added += 1
            self.summary.warnings += bool(it.warnings)
            self.summary.embedded_images += len(it.pixels)
        self.record()

    def _embed_images(self, batch: list[Item]) -> dict[str, np.ndarray]:
        """Vectors of every part, per pin id, in forward passes of at most batch_size images. A pass
        that fails is retried pin by pin, so one bad input cannot sink the others."""
        flat = [p for it in batch for p in it.pixels]
        bs = self.opts.batch_size
        try:
            out_flat = np.concatenate([self.embedder.embed_pixels(flat[i : i + bs]) for i in range(0, len(flat), bs)])
        except Exception:
            out = {}
            for it in batch:
                try:
                    out[it.entry.pin_id] = np.concatenate(
                        [self.embedder.embed_pixels(it.pixels[i : i + bs]) for i in range(0, len(it.pixels), bs)])
                except Exception as e:
                    self.fail([failure_row(it.entry.uri, it.entry.pin_id, e, stage="embed"), *it.warnings])
            return out
        out, i = {}, 0
        for it in batch:
            out[it.entry.pin_id] = out_flat[i : i + len(it.pixels)]
            i += len(it.pixels)
        return out

    def _embed_texts(self, batch: list[Item]) -> dict[str, list[tuple[int | None, str, np.ndarray]]]:
        """Text vectors per pin, of the texts its kind embeds (idea pins' texts always: they are kept as
        segments; sidecar text of images and videos only when it is fused)."""
        jobs: list[tuple[str, int | None, str]] = []
        for it in batch:
            jobs += [(it.entry.pin_id, page, text) for page, text in kinds.get(it.kind).texts(it, self.opts)]
        if not jobs:
            return {}
        vecs = self.embedder.embed_texts([j[2] for j in jobs])
        out: dict[str, list] = {}
        for (pin_id, page, text), v in zip(jobs, vecs, strict=True):
            out.setdefault(pin_id, []).append((page, text, v))
        return out


def phase(progress: Progress | None, label: str) -> None:
    """Tell a progress display what the run is doing (``progress.phase(label)``, when it has one)."""
    fn = getattr(progress, "phase", None)
    if fn is not None:
        fn(label)


def source_root(src: str | os.PathLike[str]) -> str:
    """The absolute path of a source folder; UsageError (before anything is created) when it is not one."""
    root = os.path.abspath(os.fspath(src))
    if not os.path.isdir(root):
        raise UsageError(
            f"source folder {root!r} does not exist or is not a folder",
            "pass the folder that holds your media, e.g. pinembed ingest ./media; nothing was created",
        )
    return root


def ingest(src: str | os.PathLike[str], store: Store, embedder: Embedder | Callable[[], Embedder],
           opts: IngestOptions | None = None, progress: Progress | None = None, model_id: str | None = None
           ) -> IngestSummary:
    """Ingest every image, video and idea pin under ``src`` into ``store`` (new and changed ones;
    nothing is deleted: ``refresh`` does that). Holds the database's write lock from the start.

    ``embedder`` may be a loader (a function returning the Embedder): it is called only when there is
    something to embed, a new database to create, or ``model_id`` names another model than the
    database's (to report the mismatch)."""
    opts = opts or IngestOptions()
    t0 = time.perf_counter()
    root = source_root(src)  # before the lock: a typo creates nothing
    with WriteLock(store.uri, "ingest", store.storage_options):
        (source,) = resolve([root], store.sources(), opts.id_prefix)
        found = discover(root, source.prefix)
        stored = {r["pin_id"]: r for r in store.pin_states(("pin_id", "kind", "uri", "source_sig")).to_pylist()}
        entries, taken = claim_ids(found.entries, stored, [root])
        run = _Run(store, embedder, opts, {p: r["source_sig"] for p, r in stored.items()}, progress)
        run.summary.skipped, run.summary.skipped_files = found.skipped, [k.to_dict() for k in found.skips]
        run.summary.sources = [{"root": source.root, "id_prefix": source.prefix}]
        run.problems(found.problems + taken)
        plan = make_plan(entries, stored, opts.signature)
        run.summary.unchanged = len(plan.unchanged)
        have = store.identity
        if plan.todo or have is None or (model_id is not None and model_id != have.get("model_id")):
            store.ensure_space(space_identity(run.embedder.identity()))
        if store.generation is not None:
            store.record_sources([source])
        embed_entries(run, plan.todo, progress)
        return finish(run, t0)


def embed_entries(run: _Run, todo: list[Entry], progress: Progress | None = None) -> None:
    """Read, embed, pool and write ``todo`` in batches (one commit per batch and table)."""
    opts, total, done = run.opts, len(todo), 0
    if not todo:
        return
    embedder = run.embedder
    phase(progress, "embedding")
    if progress:
        progress(0, total)
    video = replace(opts.video, target_side=embedder.image_size)  # frames decoded at the model's input side
    with ExitStack() as stack:
        pool_ = stack.enter_context(DecodePool(opts.workers)) if any(map(needs_decode_pool, todo)) else None
        reader = Reader(embedder.preprocess, opts.limits, video, embedder.image_size if opts.fast_jpeg else None, pool_)
        batch: list[Item] = []
        n_images = 0
        window = max(2 * opts.batch_size, 8)  # images decoded ahead of the model (bounds memory)
        for entry, item, err in read_ahead(todo, reader, opts.workers, window, lambda e: entry_cost(e, video)):
            if err is not None:
                run.fail([failure_row(entry.uri, entry.pin_id, err), *getattr(err, "warnings", [])])
            else:
                failpoints.hit("read")
                batch.append(item)
                n_images += len(item.pixels)
                run.stage["read"] += item.read_s
            if n_images >= opts.batch_size:
                run.flush(batch)
                batch, n_images = [], 0
            done += 1
            if progress:
                progress(done, total)
        run.flush(batch)


def finish(run: _Run, t0: float) -> IngestSummary:
    """Upkeep (the store's index policy and compaction) and the run's summary."""
    run.record()
    t = time.perf_counter()
    run.summary.index = run.store.ensure_index()
    run.stage["index"] = time.perf_counter() - t
    s = run.summary
    s.elapsed_s = round(time.perf_counter() - t0, 3)
    s.items_per_s = round((s.added + s.updated) / s.elapsed_s, 2) if s.elapsed_s > 0 else 0.0
    s.stage_s = {k: round(v, 3) for k, v in run.stage.items()}
    return s
