"""The ingestion run: discover -> plan -> read (threads) -> embed (batches) -> pool -> write.

Each written batch is one LanceDB commit, so a run that is killed leaves whole batches behind and
the next run finishes the job (unchanged pins are skipped by their source signature).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from pinembed.embedders.base import Embedder
from pinembed.store.db import Store, now
from pinembed.store.identity import space_identity

from .discover import discover
from .ledger import failure_row
from .plan import make_plan
from .pooling import pool
from .read import Item, ReadLimits, read_entry

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]


@dataclass
class IngestOptions:
    """Knobs of an ingestion run."""

    batch_size: int = 32
    workers: int = max(1, min(4, os.cpu_count() or 1))
    limits: ReadLimits = field(default_factory=ReadLimits)
    text_weight: float = 0.0
    id_prefix: str = ""
    fast_jpeg: bool = True  # decode JPEGs at reduced scale (never below the model's input size)


@dataclass
class IngestSummary:
    """What a run did. ``failed`` counts ledger rows written by this run."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    items_per_s: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when everything landed, 3 when some inputs failed."""
        return 3 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def read_ahead(items: Iterable[T], fn: Callable[[T], R], workers: int, window: int) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Apply ``fn`` in worker threads, at most ``window`` items ahead, yielding in input order."""
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinembed-read") as pool_:
        pending = deque((x, pool_.submit(fn, x)) for x in islice(it, window))
        while pending:
            x, fut = pending.popleft()
            try:
                yield x, fut.result(), None
            except Exception as e:  # each input's failure is reported, never raised
                yield x, None, e
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool_.submit(fn, nxt)))


def ingest(src: str | os.PathLike[str], store: Store, embedder: Embedder, opts: IngestOptions | None = None,
           progress: Progress | None = None) -> IngestSummary:
    """Ingest every media file under ``src`` into ``store`` with ``embedder``."""
    opts = opts or IngestOptions()
    t0 = time.perf_counter()
    store.ensure_space(space_identity(embedder.identity()))
    found = discover(src, opts.id_prefix)
    summary = IngestSummary(skipped=found.skipped)
    problems = [failure_row(str(p.path), p.pin_id, _problem_error(p), "discover") for p in found.problems]
    states = store.pin_states(("pin_id", "source_sig"))
    known = dict(zip(states.column("pin_id").to_pylist(), states.column("source_sig").to_pylist(), strict=True))
    plan = make_plan(found.entries, known)
    summary.unchanged = len(plan.unchanged)
    todo = plan.todo
    total, done = len(todo), 0
    if progress:
        progress(0, total)
    draft = embedder.image_size if opts.fast_jpeg else None

    def read(entry):
        return read_entry(entry, embedder.preprocess, opts.limits, draft)

    batch: list[Item] = []
    failures: list[dict[str, Any]] = list(problems)
    embedded = 0
    for entry, item, err in read_ahead(todo, read, opts.workers, window=max(2 * opts.batch_size, 8)):
        if err is not None:
            failures.append(failure_row(entry.uri, entry.pin_id, err))
        else:
            batch.append(item)
        if len(batch) >= opts.batch_size:
            embedded += _flush(batch, store, embedder, opts, summary, failures, known)
            batch = []
        done += 1
        if progress:
            progress(done, total)
    embedded += _flush(batch, store, embedder, opts, summary, failures, known)
    if failures:  # tail failures (and those of a run with nothing to embed)
        _record(store, failures, summary)
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    summary.items_per_s = round(embedded / summary.elapsed_s, 2) if summary.elapsed_s > 0 else 0.0
    return summary


def _problem_error(p):
    from pinembed.errors import InputError

    return InputError(p.message, stage="discover", error=p.error)


def _record(store: Store, failures: list[dict[str, Any]], summary: IngestSummary) -> None:
    store.record_failures(failures)
    summary.failed += len(failures)
    summary.failures.extend(failures)
    failures.clear()


def _flush(batch: list[Item], store: Store, embedder: Embedder, opts: IngestOptions, summary: IngestSummary,
           failures: list[dict[str, Any]], known: dict[str, str]) -> int:
    """Embed, pool and write one batch (one commit); record the batch's failures. Returns items embedded."""
    if not batch:
        if failures:
            _record(store, failures, summary)
        return 0
    vectors = _embed_batch(batch, embedder, failures)
    texts = {}
    if opts.text_weight:
        with_text = [it for it in batch if it.title or it.description]
        if with_text:
            tv = embedder.embed_texts([". ".join(filter(None, (it.title, it.description))) for it in with_text])
            texts = {it.entry.pin_id: v for it, v in zip(with_text, tv, strict=True)}
    stamp, rows, landed = now(), [], []
    for item in batch:
        vec = vectors.get(item.entry.pin_id)
        if vec is None:
            continue
        e = item.entry
        rows.append({
            "pin_id": e.pin_id, "kind": e.kind, "uri": e.uri, "content_hash": item.content_hash,
            "size": e.size, "mtime_ns": e.mtime_ns, "source_sig": e.source_sig, "title": item.title,
            "description": item.description, "width": item.width, "height": item.height, "duration_s": None,
            "n_segments": 0, "model_id": embedder.model_id,
            "vector": pool(vec, texts.get(e.pin_id), opts.text_weight), "embedded_at": stamp,
        })
        landed.append(item)
        failures.extend(item.warnings)
    store.write(rows)
    ok_uris = [it.entry.uri for it in landed] + [str(it.entry.sidecar) for it in landed if it.entry.sidecar and not it.warnings]
    store.clear_failures(ok_uris)
    for it in landed:
        if it.entry.pin_id in known:
            summary.updated += 1
        else:
            summary.added += 1
    if failures:
        _record(store, failures, summary)
    return len(landed)


def _embed_batch(batch: list[Item], embedder: Embedder, failures: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Segment vectors per pin id. A batch that fails is retried item by item, so one bad input
    cannot sink the others."""
    pixels = [p for it in batch for p in it.pixels]
    try:
        flat = embedder.embed_pixels(pixels)
    except Exception:
        out = {}
        for it in batch:
            try:
                out[it.entry.pin_id] = embedder.embed_pixels(it.pixels)
            except Exception as e:
                failures.append(failure_row(it.entry.uri, it.entry.pin_id, e, stage="embed"))
        return out
    out, i = {}, 0
    for it in batch:
        out[it.entry.pin_id] = flat[i : i + len(it.pixels)]
        i += len(it.pixels)
    return out
