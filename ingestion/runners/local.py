"""The local runner: read in threads (image files and videos decode in decode processes), embed in this
process, and hand each embedded batch back to the driver, which writes it before the next one is
embedded. Memory is bounded by a read-ahead window counted in images."""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, TypeVar

from pinembed import failpoints
from pinembed.embedders.device import cpu_count

from ..decode_pool import DecodePool, warm
from ..embed_stage import Embedded, Prepared, embed_items, prepare_items
from ..entry import Entry
from ..options import IngestOptions, phase
from ..read import Item, Reader
from ..read_stage import Unread, entry_cost, needs_decode_pool, read_entry
from . import Work

T = TypeVar("T")
R = TypeVar("R")


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
#: Batches decoded on the device at once (each its own thread and CUDA stream), ahead of the model: the
#: CPU side of nvJPEG (Huffman decoding of small images) then runs on two cores.
DECODE_THREADS = 2


def prepare(opts: IngestOptions, todo: list[Entry]) -> None:
    """Start the decode processes of a CPU run now (they import their decoders while the model loads;
    the run's pool takes them)."""
    if opts.isolate_images or any(map(needs_decode_pool, todo)):
        warm(opts.workers or min(4, cpu_count()))


def run(work: Work) -> Iterator[Embedded | Unread]:
    """Read and embed ``work.todo`` in batches of ``batch_size`` images, yielding each embedded batch
    (one commit each, by the driver) and each input that failed to read. With the device decoder, a
    batch's JPEGs are decoded in a thread while the model runs on the batch before it."""
    todo, progress = work.todo, work.progress
    if not todo:
        return
    embedder = work.embedder()
    opts = work.opts.settled(str(embedder.device))
    total, done = len(todo), 0
    phase(progress, "embedding")
    if progress:
        progress(0, total)
    video = replace(opts.video, target_side=embedder.image_size)  # frames decoded at the model's input side
    on_device = opts.decodes_on_device(str(embedder.device)) and embedder.device_preprocessor() is not None
    with ExitStack() as stack:
        # decode workers live for the run: every image file and video decodes there (with the device decoder,
        # most JPEGs never need one, so they start on first use)
        pool = stack.enter_context(DecodePool(opts.workers, prestart=not on_device)) \
            if opts.isolate_images or any(map(needs_decode_pool, todo)) else None
        reader = Reader(embedder.preprocess, opts.limits, video, embedder.image_size if opts.fast_jpeg else None,
                        pool, device_decode=on_device, isolate_images=opts.isolate_images)
        prep = stack.enter_context(ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="pinembed-decode")) \
            if on_device else None
        batch: list[Item] = []
        n_images = 0
        window = max(2 * opts.batch_size, 8)  # images decoded ahead of the model (bounds memory)
        ahead: list[Any] = []  # batches being decoded on the device (futures, in order), with the device decoder

        def embed(items: list[Item] | Prepared, read_s: float, decode_s: float | None = None) -> Embedded:
            t = time.perf_counter()
            embedded = embed_items(items, embedder, opts)
            embedded.embed_s, embedded.read_s, embedded.decode_s = time.perf_counter() - t, read_s, decode_s
            return embedded

        def flush() -> Iterator[Embedded]:
            read_s = sum(it.read_s for it in batch)
            if prep is None:
                yield embed(batch, read_s)
                return
            ahead.append(prep.submit(_timed_prepare, list(batch), embedder, read_s))
            if len(ahead) > DECODE_THREADS:
                yield embed(*ahead.pop(0).result())

        read = functools.partial(read_entry, reader)
        for _, (item, rows), err in read_ahead(todo, read, opts.workers, window, lambda e: entry_cost(e, video)):
            if err is not None:  # read_entry raises only for what is no bad input (see its docstring)
                raise err
            if item is None:
                yield Unread(rows)
            else:
                failpoints.hit("read")
                batch.append(item)
                n_images += len(item.pixels)
            if n_images >= opts.batch_size:
                yield from flush()
                batch, n_images = [], 0
            done += 1
            if progress:
                progress(done, total)
        if batch:
            yield from flush()
        while ahead:
            yield embed(*ahead.pop(0).result())


def _timed_prepare(items: list[Item], embedder: Any, read_s: float) -> tuple[Prepared, float, float]:
    """``prepare_items`` with its time (the run's "decode" stage, summed over threads), and the batch's
    read time passed through."""
    t = time.perf_counter()
    out = prepare_items(items, embedder)
    return out, read_s, time.perf_counter() - t
