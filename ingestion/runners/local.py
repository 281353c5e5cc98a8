"""The local runner: read in threads (image files and videos decode in decode processes), embed in this
process, write from this process, one batch at a time. Memory is bounded by a read-ahead window counted in images."""

from __future__ import annotations

import functools
import threading
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
from ..entry import Entry
from ..options import IngestOptions, Progress, phase
from ..read import Item, Reader
from ..run import Run
from ..stages import Prepared, embed_items, entry_cost, needs_decode_pool, prepare_items, read_entry

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
_STAGE_LOCK = threading.Lock()


def prepare(opts: IngestOptions, todo: list[Entry]) -> None:
    """Start the decode processes of a CPU run now (they import their decoders while the model loads;
    the run's pool takes them)."""
    if opts.isolate_images or any(map(needs_decode_pool, todo)):
        warm(opts.workers or min(4, cpu_count()))


def run(run: Run, todo: list[Entry], progress: Progress | None = None) -> None:
    """Read, embed and land ``todo`` in batches of ``batch_size`` images (one commit per batch). With
    the device decoder, a batch's JPEGs are decoded in a thread while the model runs on the batch
    before it."""
    if not todo:
        return
    embedder = run.embedder
    opts = run.opts = run.opts.settled(str(getattr(embedder, "device", "cpu")))
    total, done = len(todo), 0
    phase(progress, "embedding")
    if progress:
        progress(0, total)
    video = replace(opts.video, target_side=embedder.image_size)  # frames decoded at the model's input side
    on_device = opts.decodes_on_device(str(getattr(embedder, "device", "cpu"))) and \
        embedder.device_preprocessor() is not None
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

        def embed_and_land(items: list[Item] | Prepared) -> None:
            t = time.perf_counter()
            embedded = embed_items(items, embedder, opts)
            run.stage["embed"] += time.perf_counter() - t
            run.land(embedded)

        def flush() -> None:
            if prep is None:
                embed_and_land(batch)
                return
            ahead.append(prep.submit(_timed_prepare, run, list(batch), embedder))
            if len(ahead) > DECODE_THREADS:
                embed_and_land(ahead.pop(0).result())

        read = functools.partial(read_entry, reader)
        for _, (item, rows), err in read_ahead(todo, read, opts.workers, window, lambda e: entry_cost(e, video)):
            if err is not None:  # read_entry raises only for what is no bad input (see its docstring)
                raise err
            if item is None:
                run.fail(rows)
            else:
                failpoints.hit("read")
                batch.append(item)
                n_images += len(item.pixels)
                run.stage["read"] += item.read_s
            if n_images >= opts.batch_size:
                flush()
                batch, n_images = [], 0
            done += 1
            if progress:
                progress(done, total)
        if batch:
            flush()
        while ahead:
            embed_and_land(ahead.pop(0).result())


def _timed_prepare(run: Run, items: list[Item], embedder: Any) -> Prepared:
    """``prepare_items`` with its time counted as the run's "decode" stage (summed over threads)."""
    t = time.perf_counter()
    out = prepare_items(items, embedder)
    with _STAGE_LOCK:
        run.stage["decode"] = run.stage.get("decode", 0.0) + time.perf_counter() - t
    return out
