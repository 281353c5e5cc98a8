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
from pinembed.embedders.base import Embedder, l2_normalise
from pinembed.embedders.device import cpu_count
from pinembed.store.db import Store, now
from pinembed.store.identity import space_identity
from pinembed.store.lock import WriteLock

from .decode_pool import DecodePool
from .discover import Entry, discover
from .idea import MAX_PAGES
from .ledger import failure_row, problem_rows
from .plan import make_plan
from .pooling import pool, pool_frames
from .read import Item, Reader, ReadLimits
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
    id_prefix: str = ""
    fast_jpeg: bool = True  # decode JPEGs at reduced scale (never below the model's input size)

    def signature(self, e: Entry) -> str:
        """``e``'s stored signature: its source signature plus the settings its vector depends on, so
        changing --fps, --max-frames or a text weight re-embeds exactly the pins it affects."""
        v = self.video
        parts = [f"fps={v.max_fps:g},mf={v.max_frames}"] if _needs_video(e) else []
        if e.kind == "idea":
            parts.append(f"itw={self.idea_text_weight:g}")
        elif e.sidecar is not None and self.text_weight:
            parts.append(f"tw={self.text_weight:g}")
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
    """What a run did. ``failed`` counts ledger rows written by this run."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    embedded_images: int = 0  # images + video frames + page images through the image encoder
    elapsed_s: float = 0.0
    items_per_s: float = 0.0  # pins written per second of the run
    stage_s: dict[str, float] = field(default_factory=dict)  # read (summed over threads), embed, write, index
    index: str = "exact"  # the ANN index after the run: exact, built, rebuilt or current
    failures: list[dict[str, Any]] = field(default_factory=list)


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
    """Images an entry can decode to (its share of the read-ahead window): 1 for an image, the frame
    cap for a video, the sum over pages for an idea pin."""
    if entry.kind == "video":
        return video.max_frames
    if entry.kind == "idea":
        return sum(video.max_frames if p.kind == "video" else 1 for p in entry.pages) or 1
    return 1


def _needs_video(e: Entry) -> bool:
    return e.kind == "video" or any(p.kind == "video" for p in e.pages)


class _Run:
    """State of one ingestion run."""

    def __init__(self, store: Store, embedder: Embedder, opts: IngestOptions, known: dict[str, str]) -> None:
        self.store, self.embedder, self.opts, self.known = store, embedder, opts, known
        self.summary = IngestSummary()
        self.failures: list[dict[str, Any]] = []
        self.keep: set[str] = set()  # uris that failed in this run: never cleared by a landing pin
        self.stage = {"read": 0.0, "embed": 0.0, "write": 0.0, "index": 0.0}
        self.writes = 0

    def record(self) -> None:
        if self.failures:
            t = time.perf_counter()
            self.store.record_failures(self.failures)
            self.stage["write"] += time.perf_counter() - t
            self.summary.failed += len(self.failures)
            self.summary.failures.extend(self.failures)
            self.failures = []

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
            pin_vec, segs = self._pool(item, vecs, texts.get(item.entry.pin_id, []))
            e = item.entry
            pins.append({
                "pin_id": e.pin_id, "kind": e.kind, "uri": e.uri, "content_hash": item.content_hash,
                "size": e.size, "mtime_ns": e.mtime_ns, "source_sig": self.opts.signature(e), "title": item.title,
                "description": item.description, "width": item.width, "height": item.height,
                "duration_s": item.duration_s, "fps": item.fps, "n_segments": len(segs),
                "model_id": self.embedder.model_id, "vector": pin_vec, "embedded_at": stamp,
            })
            segments.extend(segs)
            landed.append(item)
            self.failures.extend(item.warnings)
            self.keep.update(w["uri"] for w in item.warnings)
        t = time.perf_counter()
        self.store.write(pins, segments)
        failpoints.hit("batch")
        self.writes += 1
        if self.writes % COMPACT_EVERY == 0:  # one fragment per commit: merge them on the way
            self.store.compact()
        self.store.clear_failures([u for it in landed for u in _uris(it) if u not in self.keep])
        self.stage["write"] += time.perf_counter() - t
        for it in landed:
            if it.entry.pin_id in self.known:
                self.summary.updated += 1
            else:
                self.summary.added += 1
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
                    self.failures.append(failure_row(it.entry.uri, it.entry.pin_id, e, stage="embed"))
            return out
        out, i = {}, 0
        for it in batch:
            out[it.entry.pin_id] = out_flat[i : i + len(it.pixels)]
            i += len(it.pixels)
        return out

    def _embed_texts(self, batch: list[Item]) -> dict[str, list[tuple[int | None, str, np.ndarray]]]:
        """Text vectors per pin: idea pins' texts always (they are kept as segments); sidecar text of
        images and videos only when it is fused (text_weight > 0)."""
        jobs: list[tuple[str, int | None, str]] = []
        for it in batch:
            if it.entry.kind == "idea":
                jobs += [(it.entry.pin_id, page, text) for page, text in it.texts]
            elif self.opts.text_weight and (it.title or it.description):
                jobs.append((it.entry.pin_id, None, ". ".join(filter(None, (it.title, it.description)))))
        if not jobs:
            return {}
        vecs = self.embedder.embed_texts([j[2] for j in jobs])
        out: dict[str, list] = {}
        for (pin_id, page, text), v in zip(jobs, vecs, strict=True):
            out.setdefault(pin_id, []).append((page, text, v))
        return out

    def _pool(self, item: Item, vecs: np.ndarray, texts: list) -> tuple[np.ndarray, list[dict[str, Any]]]:
        e, parts = item.entry, item.parts
        blank = [p.blank for p in parts]
        text_vec = l2_normalise(np.mean([v for _, _, v in texts], axis=0)[None])[0] if texts else None
        if e.kind == "image":
            return pool(vecs, text_vec, self.opts.text_weight), []
        if e.kind == "video":
            segs = [_segment(e.pin_id, i, "frame", p.uri, v, t_s=p.t_s, weight=0.0 if p.blank else 1.0)
                    for i, (p, v) in enumerate(zip(parts, vecs, strict=True))]
            return pool(pool_frames(vecs, blank), text_vec, self.opts.text_weight), segs
        pages: dict[int, list[int]] = {}
        for i, p in enumerate(parts):
            pages.setdefault(p.page, []).append(i)
        page_vecs, segs = [], []
        for seq, (page, idx) in enumerate(sorted(pages.items())):
            v = pool_frames(vecs[idx], [blank[i] for i in idx])
            page_vecs.append(v)
            segs.append(_segment(e.pin_id, seq, "page", parts[idx[0]].uri, v, page=page))
        for page, _text, v in texts:
            segs.append(_segment(e.pin_id, len(segs), "text", None, v, page=page))
        return pool(np.stack(page_vecs), text_vec, self.opts.idea_text_weight), segs


def _uris(item: Item) -> list[str]:
    """Every ledger uri that a landed pin answers for: its media, sidecar, manifest and pages."""
    e = item.entry
    uris = [e.uri] + ([str(e.sidecar)] if e.sidecar else [])
    if e.kind == "idea":
        manifest = str(e.path / "pin.json")
        uris += [manifest] + [f"{manifest}#page={i}" for i in range(MAX_PAGES)] + [str(p.path) for p in e.pages]
    return uris


def _segment(pin_id: str, seq: int, kind: str, uri: str | None, vector: np.ndarray, *, t_s: float | None = None,
             page: int | None = None, weight: float = 1.0) -> dict[str, Any]:
    return {"pin_id": pin_id, "seq": seq, "kind": kind, "t_s": t_s, "uri": uri, "page": page,
            "weight": weight, "vector": vector}


def ingest(src: str | os.PathLike[str], store: Store, embedder: Embedder, opts: IngestOptions | None = None,
           progress: Progress | None = None) -> IngestSummary:
    """Ingest every image, video and idea pin under ``src`` into ``store`` with ``embedder`` (new and
    changed ones; nothing is deleted: ``refresh`` does that). Holds the database's write lock."""
    opts = opts or IngestOptions()
    t0 = time.perf_counter()
    with WriteLock(store.uri, "ingest"):
        store.ensure_space(space_identity(embedder.identity()))
        found = discover(src, opts.id_prefix)
        known = store.signatures()
        run = _Run(store, embedder, opts, known)
        run.summary.skipped = found.skipped
        run.failures = problem_rows(found.problems)
        run.keep = {f["uri"] for f in run.failures}
        plan = make_plan(found.entries, known, opts.signature)
        run.summary.unchanged = len(plan.unchanged)
        embed_entries(run, plan.todo, progress)
        return finish(run, t0)


def embed_entries(run: _Run, todo: list[Entry], progress: Progress | None = None) -> None:
    """Read, embed, pool and write ``todo`` in batches (one commit per batch and table)."""
    opts, total, done = run.opts, len(todo), 0
    if progress:
        progress(0, total)
    video = replace(opts.video, target_side=run.embedder.image_size)  # frames decoded at the model's input side
    with ExitStack() as stack:
        pool_ = stack.enter_context(DecodePool(opts.workers)) if any(map(_needs_video, todo)) else None
        reader = Reader(run.embedder.preprocess, opts.limits, video,
                        run.embedder.image_size if opts.fast_jpeg else None, pool_)
        batch: list[Item] = []
        n_images = 0
        window = max(2 * opts.batch_size, 8)  # images decoded ahead of the model (bounds memory)
        for entry, item, err in read_ahead(todo, reader, opts.workers, window, lambda e: entry_cost(e, video)):
            if err is not None:
                run.failures.append(failure_row(entry.uri, entry.pin_id, err))
                run.failures.extend(getattr(err, "warnings", []))  # e.g. the pages behind "no usable pages"
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
