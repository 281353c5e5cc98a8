"""Deadlines for the object store: every request LanceDB and the lease make has one, and a run that
is stuck anyway (a call that retries inside lance past its deadline) is ended by its watchdog.

- ``with_deadlines`` adds object_store's per-request ``timeout`` and ``connect_timeout`` and lance's
  ``client_max_retries``/``client_retry_timeout`` to the storage options of an object-storage
  database, unless the user gave them (``$PINEMBED_STORE_TIMEOUT_S`` sets the request timeout).
  lance still retries some calls on its own (opening a table lists its versions up to ~6 times), so
  one LanceDB call may take several timeouts: measured 39 s for an open with a 3 s timeout.
- ``bounded`` gives each Store read on object storage ``$PINEMBED_STORE_DEADLINE_S`` (60 s): it runs
  in a daemon worker thread, and past the deadline the caller gets a FaultError (exit code 5) while
  the stuck worker is left behind (a frozen store made ``stats`` take 185 s with the timeouts alone).
- ``Watchdog`` guards a write run that holds a lease: once the lease is lost (taken over, or not
  renewed for ``ttl_s - renew_s`` because the store stopped answering) the run stops before its next
  commit (``check_held``); once the lease is lost, or its renewal hangs past its validity, and the
  run does not end within ``renew_s`` more (stuck in native code, which Python cannot
  interrupt), a process that asked for it (the CLI: ``exit_when_stuck``) prints the error line with
  the pins committed so far and leaves with ``os._exit`` (exit code 5, or 4 when another writer took
  the lease). Library callers get a logged error instead: ``os._exit`` is not a library's to call.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pinembed.errors import FaultError, PinembedError

log = logging.getLogger(__name__)

#: Storage options that bound each request, as object_store and lance spell them.
TIMEOUT_KEYS = ("timeout", "connect_timeout", "client_max_retries", "client_retry_timeout")

_exit: dict[str, bool] = {}  # "on": whether a stuck run leaves the process; "json": print a JSON object too


def request_timeout_s() -> float:
    """The per-request timeout for object stores (``$PINEMBED_STORE_TIMEOUT_S``, default 15 s)."""
    return float(os.environ.get("PINEMBED_STORE_TIMEOUT_S") or 15)


def with_deadlines(options: dict[str, str] | None) -> dict[str, str]:
    """``options`` plus a deadline for each request (keys the user gave are kept as given, with or
    without an ``aws_``/``google_``/``azure_`` prefix)."""
    out = dict(options or {})
    given = {k.lower().split("_", 1)[1] if k.lower().startswith(("aws_", "google_", "azure_")) else k.lower()
             for k in out}
    t = request_timeout_s()
    defaults = {"timeout": f"{t:g}s", "connect_timeout": f"{min(5.0, t):g}s", "client_max_retries": "2",
                "client_retry_timeout": f"{max(1, round(2 * t))}"}
    for key, value in defaults.items():
        if key not in given:
            out[key] = value
    return out


def exit_when_stuck(as_json: bool = False) -> None:
    """Let a write run stuck past its lease leave the process (the CLI calls this; see the module)."""
    _exit.update(on=True, json=as_json)


class Watchdog:
    """Watches one lease (``lease.stopped``, ``lease.stuck()``, ``lease.error()``, ``lease.renew_s``)
    from its own thread, which no request blocks."""

    def __init__(self, lease: Any) -> None:
        self.lease = lease
        self._thread = threading.Thread(target=self._watch, name="pinembed-watchdog", daemon=True)

    def start(self) -> Watchdog:
        """Start watching (until the lease is released)."""
        self._thread.start()
        return self

    def _watch(self) -> None:
        lease = self.lease
        poll = max(0.05, min(1.0, lease.renew_s / 4))
        while not lease.stopped.wait(poll):
            if lease.stuck():
                break
        else:
            return
        if lease.stopped.wait(lease.renew_s):  # the run saw it and stopped by itself
            return
        err = lease.error()
        if not _exit.get("on"):
            log.error("%s (the run is stuck in a store call and cannot be stopped from here)", err.message)
            return
        _leave(err)


def _leave(err: PinembedError) -> None:
    """Print ``err`` as the CLI does and end the process now (a thread stuck in native code stays stuck)."""
    try:
        sys.stdout.flush()
        sys.stderr.write(f"error: {err.message}\n" + (f"hint: {err.hint}\n" if err.hint else ""))
        sys.stderr.flush()
        if _exit.get("json"):
            sys.stdout.write(json.dumps({"error": err.message, "hint": err.hint, "exit_code": err.exit_code}) + "\n")
            sys.stdout.flush()
    finally:
        time.sleep(0)
        os._exit(err.exit_code)


_inside = threading.local()  # set in a bounded call's worker thread: calls it makes run directly


def call_limit_s() -> float:
    """How long one Store read may take on object storage (``$PINEMBED_STORE_DEADLINE_S``, default 60 s:
    the lease's TTL, so readers and writers give up alike)."""
    return float(os.environ.get("PINEMBED_STORE_DEADLINE_S") or 60)


def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], limit_s: float, place: str) -> Any:
    """``fn(*args, **kwargs)`` in a daemon worker thread, waited for ``limit_s``: past that a FaultError
    (exit code 5; the worker, stuck in native code, is left behind and dies with the process)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        _inside.on = True
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="pinembed-store-call", daemon=True).start()
    if not done.wait(limit_s):
        raise FaultError(f"the object store did not answer within {limit_s:g} s", place,
                         "check the endpoint and the network (the object store must answer), then run the "
                         "same command again", reason="unreachable")
    if "error" in box:
        raise box["error"]
    return box["value"]


F = TypeVar("F", bound=Callable[..., Any])


def bounded(method: F) -> F:
    """Decorate a Store read: on object storage (``self.remote``) it gets ``call_limit_s()`` seconds.
    Writes are never bounded this way (a commit left running must not outlive the lease): the
    watchdog guards them."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "remote", False) or getattr(_inside, "on", False):
            return method(self, *args, **kwargs)
        return call(method, (self, *args), kwargs, call_limit_s(), self.uri)

    return wrapper  # type: ignore[return-value]
