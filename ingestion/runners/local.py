"""The local runner: read in threads (videos in decode processes), embed in this process, write from
this process, one batch at a time. Memory is bounded by a read-ahead window counted in images."""

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

from ..decode_pool import DecodePool
from ..entry import Entry
from ..options import Progress, phase
from ..read import Item, Reader
from ..run import Run
from ..stages import embed_items, entry_cost, needs_decode_pool, read_entry

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


def run(run: Run, todo: list[Entry], progress: Progress | None = None) -> None:
    """Read, embed and land ``todo`` in batches of ``batch_size`` images (one commit per batch)."""
    opts, total, done = run.opts, len(todo), 0
    if not todo:
        return
    embedder = run.embedder
    phase(progress, "embedding")
    if progress:
        progress(0, total)
    video = replace(opts.video, target_side=embedder.image_size)  # frames decoded at the model's input side
    with ExitStack() as stack:
        pool = stack.enter_context(DecodePool(opts.workers)) if any(map(needs_decode_pool, todo)) else None
        reader = Reader(embedder.preprocess, opts.limits, video, embedder.image_size if opts.fast_jpeg else None, pool)
        batch: list[Item] = []
        n_images = 0
        window = max(2 * opts.batch_size, 8)  # images decoded ahead of the model (bounds memory)

        def flush() -> None:
            t = time.perf_counter()
            embedded = embed_items(batch, embedder, opts)
            run.stage["embed"] += time.perf_counter() - t
            run.land(embedded)

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
