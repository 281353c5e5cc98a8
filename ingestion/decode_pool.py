"""Decoding in worker processes, with a time bound per file: videos (``video_decode.decode_video``) and
image files (``picture_decode.read_picture``).

A decode runs in a long-lived child interpreter (``python -m pinembed.ingestion.decode_worker``),
started with the run and living for it. If it takes longer than the bound, the child is killed and
replaced and the file becomes a ledger row ("timeout"); if the decoder crashes the child (a segfault
in FFmpeg or libtiff, an abort), the same happens ("decoder_crashed"). The run itself never hangs or
dies. What a decoder prints or warns while decoding a file comes back with that file's answer
(``notes``), never on the run's stderr. Children are fresh interpreters rather than multiprocessing
forks or spawns: nothing of the parent (torch threads, the user's __main__) is copied.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import warnings
from typing import Any

from pinembed.errors import InputError

from .decode_protocol import recv, send
from .picture_decode import Picture, PictureParams
from .video_decode import Frames, VideoParams

STARTUP_TIMEOUT_S = 120.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; elsewhere the call fails and is skipped


class _Child:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        with warnings.catch_warnings():  # lancedb warns at every fork; the child execs at once
            warnings.filterwarnings("ignore", message="lancedb fork support")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pinembed.ingestion.decode_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            )

        for pipe in (self.proc.stdin, self.proc.stdout):  # a frame of pixels in one write, not sixteen
            try:
                fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass
        self.ready = False

    def ask(self, job: tuple[Any, ...], timeout_s: float) -> Any:
        if not self.ready:  # the time bound starts once the worker has imported its decoders
            ok, _, _ = select.select([self.proc.stdout], [], [], STARTUP_TIMEOUT_S)
            if not ok or recv(self.proc.stdout) != "ready":
                raise EOFError("decode worker did not start")
            self.ready = True
        send(self.proc.stdin, job)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        return recv(self.proc.stdout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        for s in (self.proc.stdin, self.proc.stdout):
            try:
                s.close()
            except OSError:
                pass


_spares: list[_Child] = []  # started by ``warm``, taken by the next pool
_spares_lock = threading.Lock()


def warm(n: int) -> None:
    """Start ``n`` decode processes now, for the next DecodePool of this process to take: they import
    their decoders while the caller does something slow (loads the model). Left over at exit, they stop."""
    with _spares_lock:
        if not _spares and n > 0:
            atexit.register(_stop_spares)
        while len(_spares) < n:
            _spares.append(_Child())


def _stop_spares() -> None:
    with _spares_lock:
        spares, _spares[:] = list(_spares), []
    for c in spares:
        c.kill()


def _spare() -> _Child:
    with _spares_lock:
        return _spares.pop() if _spares else _Child()


class DecodePool:
    """Up to ``workers`` decode processes, started on first use; thread-safe."""

    def __init__(self, workers: int = 2, prestart: bool = True) -> None:
        self._max = max(1, workers)
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._lock = threading.Lock()
        self._all: list[_Child] = []
        self._closed = False
        for _ in range(self._max if prestart else 0):  # interpreters start in parallel, in the background
            child = _spare()
            self._all.append(child)
            self._idle.put(child)

    def _take(self) -> _Child:
        with self._lock:
            if self._idle.empty() and len(self._all) < self._max:
                child = _Child()
                self._all.append(child)
                return child
        return self._idle.get()

    def _drop(self, child: _Child) -> None:
        """Kill a worker and put a fresh one in its place, so threads waiting for a worker wake up."""
        child.kill()
        with self._lock:
            if child in self._all:
                self._all.remove(child)
            if self._closed:
                return
            fresh = _Child()
            self._all.append(fresh)
        self._idle.put(fresh)

    def decode(self, path: str, params: VideoParams) -> Frames:
        """Sampled frames of the video file ``path``; InputError on bad input, a timeout or a crash."""
        return self._run(("video", path, params), params.timeout_s, "video", "--video-timeout")

    def picture(self, data: bytes, name: str, params: PictureParams) -> Picture:
        """Image bytes decoded (``picture_decode.read_picture``), with what the decoder warned about in
        ``notes``; InputError on bad input, a timeout or a decoder crash."""
        return self._run(("picture", data, name, params), params.timeout_s, "image", "--image-timeout")

    def _run(self, job: tuple[Any, ...], timeout_s: float, what: str, flag: str) -> Any:
        child = self._take()
        try:
            msg = child.ask(job, timeout_s)
        except TimeoutError:
            self._drop(child)
            raise InputError(f"decoding took longer than {timeout_s:g} s",
                             f"raise {flag} if such files are expected", error="timeout") from None
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            self._drop(child)
            raise InputError(f"the {what} decoder crashed on this file", error="decoder_crashed") from e
        except BaseException:  # never lose a worker: the pool would hang on the next file
            self._drop(child)
            raise
        self._idle.put(child)
        if msg[0] == "ok":
            return msg[1]
        _, message, hint, error, notes = msg
        if notes:  # what the decoder said is part of why it failed
            message = f"{message} (the decoder said: {'; '.join(notes)})"[:2000]
        raise InputError(message, hint, error=error)

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            self._closed = True
            children, self._all = self._all, []
        for c in children:
            try:
                c.proc.stdin.close()  # the worker exits at EOF
                c.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
            c.kill()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
