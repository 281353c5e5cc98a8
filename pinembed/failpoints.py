"""Failpoints: named places where a test can kill the process for real (SIGKILL), to prove that a
crash at that point leaves the store consistent and that the next run finishes the job.

Off unless ``$PINEMBED_FAILPOINT`` is set to ``NAME`` or ``NAME:N`` (die at the N-th hit of NAME;
``NAME:N:MS`` dies MS milliseconds after that hit, e.g. in the middle of an index build). Names:
``read`` (an input decoded), ``commit`` (segments written, pins not yet), ``batch`` (a batch
committed), ``index`` (an index build starting), ``switch`` (a model generation about to go live).

Decoder failpoints act in a decode worker on one file, named by the end of its path or name:
``decode_abort=NAME`` aborts the worker (SIGABRT, as a crashing C decoder would),
``decode_hang=NAME`` makes it hang and ``decode_print=NAME`` writes a line to its fd 2 (as a chatty C
library does), when it starts decoding a file whose name ends with NAME.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_hits: dict[str, int] = {}
_lock = threading.Lock()


def hit(name: str) -> None:
    """Kill this process here when the failpoint ``name`` is armed and its count is reached."""
    spec = os.environ.get("PINEMBED_FAILPOINT")
    if not spec:
        return
    want, _, rest = spec.partition(":")
    if want != name:
        return
    n_s, _, ms_s = rest.partition(":")
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] != int(n_s or 1):
            return
    if ms_s:
        threading.Timer(int(ms_s) / 1000, _die).start()
    else:
        _die()


def hit_file(place: str, name: str) -> None:
    """Abort, hang or print at ``place`` (``decode``) when ``$PINEMBED_FAILPOINT`` is
    ``decode_abort=NAME``, ``decode_hang=NAME`` or ``decode_print=NAME`` and the file ``name`` ends
    with NAME."""
    spec = os.environ.get("PINEMBED_FAILPOINT")
    if not spec or "=" not in spec:
        return
    want, _, suffix = spec.partition("=")
    if not suffix or not name.endswith(suffix):
        return
    if want == f"{place}_abort":
        os.abort()
    if want == f"{place}_hang":
        while True:
            time.sleep(3600)
    if want == f"{place}_print":
        os.write(2, b"libfake: Warning, an odd field in this file (a failpoint)\n")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
