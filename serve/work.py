"""Where a request's blocking work runs: worker threads, under the request's deadline, with a bound on
the work that outlives its request.

A thread cannot be killed, so time is bounded in two ways. The work checks its deadline between
steps (``check()``, ``acquire()``: a query, a card, an image decoded, the embedder's lock), and stops
there once its request has been answered 504. A step that cannot be interrupted (one LanceDB query,
one forward pass of the model) runs to its end; until then its request is *abandoned*: answered, but
its thread still busy. At most ``max_abandoned`` of them exist at once; past that, new requests are
answered 503 with ``Retry-After`` at once, without starting any work, so abandoned work cannot pile up.
``/api/health`` never waits here.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError

_local = threading.local()


class Stopped(ApiError):
    """The work of a request stopped between two steps: its time is up (a 504)."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(504, "timeout", f"the request took over {limit_s:g} s",
                         "ask for fewer results (k), fewer terms or a simpler filter, or try again")


class Busy(ApiError):
    """Too much abandoned work: a 503 answered at once, with the seconds to wait in ``retry_after_s``."""

    def __init__(self, abandoned: int, retry_after_s: int) -> None:
        super().__init__(503, "busy", f"the server is still finishing {abandoned} requests that ran over their "
                         "time limit", f"try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Deadline:
    """One request's time: ``limit_s`` from its start, and a flag set once it was answered."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.at = time.monotonic() + limit_s
        self.cancelled = threading.Event()

    def left(self) -> float:
        """Seconds left (0 once answered or past)."""
        return 0.0 if self.cancelled.is_set() else max(0.0, self.at - time.monotonic())

    def check(self) -> None:
        """Stopped when the time is up."""
        if self.left() <= 0:
            raise Stopped(self.limit_s)


def check() -> None:
    """Stop the current request's work here when its time is up (a no-op outside a request's thread)."""
    d: Deadline | None = getattr(_local, "deadline", None)
    if d is not None:
        d.check()


def acquire(lock: Any) -> None:
    """Take ``lock``, waiting no longer than the current request's time (Stopped after that)."""
    d: Deadline | None = getattr(_local, "deadline", None)
    if d is None:
        lock.acquire()
        return
    if not lock.acquire(timeout=max(d.left(), 0.001)):
        raise Stopped(d.limit_s)
    if d.left() <= 0:  # answered while it waited
        lock.release()
        raise Stopped(d.limit_s)


class Pool:
    """Runs requests' blocking work in at most ``workers`` threads at a time; counts the abandoned."""

    def __init__(self, workers: int, max_abandoned: int, retry_after_s: int) -> None:
        import anyio

        self.workers = workers
        self.max_abandoned = max_abandoned
        self.retry_after_s = retry_after_s
        self._limiter = anyio.CapacityLimiter(workers)
        self._lock = threading.Lock()
        self._abandoned = 0
        self.stopped_early = 0  # abandoned work that stopped at a check (not at the end of its steps)

    @property
    def abandoned(self) -> int:
        """Requests answered (504) whose work is still running."""
        return self._abandoned

    def admit(self) -> None:
        """Busy (503) when the abandoned work is at its cap."""
        if self._abandoned >= self.max_abandoned:
            raise Busy(self._abandoned, self.retry_after_s)

    async def run(self, deadline: Deadline, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)`` in a worker thread under ``deadline``; when the request is cancelled (its time
        limit) the thread is told to stop at its next check and counted as abandoned until it ends."""
        import anyio

        self.admit()
        job = {"started": False, "done": False, "abandoned": False}

        def body() -> Any:
            with self._lock:
                if deadline.cancelled.is_set():
                    job["done"] = True
                    raise Stopped(deadline.limit_s)
                job["started"] = True
            _local.deadline = deadline
            try:
                return fn(*args, **kw)
            except Stopped:
                if job["abandoned"]:
                    self.stopped_early += 1
                raise
            finally:
                _local.deadline = None
                with self._lock:
                    job["done"] = True
                    if job["abandoned"]:
                        self._abandoned -= 1

        try:
            return await anyio.to_thread.run_sync(functools.partial(body), abandon_on_cancel=True,
                                                  limiter=self._limiter)
        except anyio.get_cancelled_exc_class():
            with self._lock:
                deadline.cancelled.set()
                if job["started"] and not job["done"]:
                    job["abandoned"] = True
                    self._abandoned += 1
            raise


def retry_after(limit_s: float) -> int:
    """The seconds a client told 503 should wait: half the time limit, 1 to 30."""
    return max(1, min(30, math.ceil(limit_s / 2)))
