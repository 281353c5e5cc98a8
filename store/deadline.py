"""Deadlines for the object store: every request LanceDB and the lease make has one, and a run that
is stuck anyway (a call that retries inside lance past its deadline) is ended by its watchdog.

- ``with_deadlines`` adds object_store's per-request ``timeout`` and ``connect_timeout`` and lance's
  ``client_max_retries``/``client_retry_timeout`` to the storage options of an object-storage
  database, unless the user gave them (``$PINEMBED_STORE_TIMEOUT_S`` sets the request timeout).
  lance still retries some calls on its own (opening a table lists its versions up to ~6 times), so
  one LanceDB call may take several timeouts: measured 39 s for an open with a 3 s timeout.
- ``Watchdog`` guards a write run that holds a lease: once the lease is lost (taken over, or not
  renewed for ``ttl_s - renew_s`` because the store stopped answering) the run stops before its next
  commit (``check_held``); once the lease is lost, or its renewal hangs past its validity, and the
  run does not end within ``renew_s`` more (stuck in native code, which Python cannot
  interrupt), a process that asked for it (the CLI: ``exit_when_stuck``) prints the error line with
  the pins committed so far and leaves with ``os._exit`` (exit code 5, or 4 when another writer took
  the lease). Library callers get a logged error instead: ``os._exit`` is not a library's to call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from pinembed.errors import PinembedError

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
    import json

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
