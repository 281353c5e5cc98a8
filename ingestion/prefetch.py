"""Prefetching: the next items of an iterator made on a thread while the caller works on this one.

For readers that spend their time in C++ without the GIL (pyarrow decoding Parquet, parsing CSV): a
catalog's next batch is read while the current one is planned, so a plan costs about the read alone on
two cores. At most ``depth`` items wait (memory stays bounded); an error of the reader is raised to the
caller at the item where it happened; a caller that stops early stops the reader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, each made on a reader thread up to ``depth`` ahead of the caller."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x: object) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(_END)
        except BaseException as e:  # handed to the caller, raised there
            put(e)

    t = threading.Thread(target=work, name="prefetch", daemon=True)
    t.start()
    try:
        while True:
            x = q.get()
            if x is _END:
                return
            if isinstance(x, BaseException):
                raise x
            yield x  # type: ignore[misc]
    finally:
        stop.set()
        t.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()  # (a generator's files are closed now, not when it is collected)
