"""One writer per database: an exclusive lock held for the whole of an ingest, refresh or gc.

For a local database the lock is an ``flock`` on a file beside the tables (``<db>/.pinembed.lock``;
for other ``scheme://`` URIs that are no object storage, e.g. ``memory://``, a file under
``~/.cache/pinembed/locks``). The kernel drops an flock when its process dies, so a lock left by a
killed run is simply taken over; the file's contents (pid, host, start time, command) only serve the
messages. A database on object storage (``s3://``, ``gs://``, ``az://``) takes a lease object instead,
which keeps writers on different machines apart (``store/lease.py``). Readers never take the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from pinembed.errors import LockedError

from . import faults
from .lease import Lease, holder_gone
from .location import check_location
from .objects import is_object_store

log = logging.getLogger(__name__)


def lock_path(uri: str) -> Path:
    """Where the lock file of the database at ``uri`` lives."""
    if "://" not in uri:
        return Path(uri) / ".pinembed.lock"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:24]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pinembed" / "locks" / f"{digest}.lock"


#: Re-entrant locks this process holds, by where they live: a WriteLock taken under one by the same
#: thread nests in it (the CLI takes the lock before its slow imports; the ingest under it takes it again).
_held: dict[str, WriteLock] = {}


def _key(uri: str) -> str:
    return uri.rstrip("/") if "://" in uri else os.path.realpath(lock_path(uri))


class WriteLock:
    """``with WriteLock(uri, "refresh"):`` ... ; LockedError (exit code 4) when another process holds it
    (or another lock of this process that is not ``reentrant``)."""

    def __init__(self, uri: str, command: str, storage_options: dict[str, str] | None = None,
                 reentrant: bool = False) -> None:
        """``storage_options``: those of the database (an object-storage lease is taken with them).
        ``reentrant``: WriteLocks of the same database taken by the same thread while this one is held
        nest in it (they hold nothing; this one releases)."""
        self.uri, self.command, self.storage_options = uri, command, storage_options
        self.reentrant = reentrant
        self.path = lock_path(uri)
        self._fd: int | None = None
        self._lease: Lease | None = None
        self.took_over: dict[str, Any] | None = None  # the dead holder whose lock was taken over
        self._made: list[Path] = []  # the folders this lock created, deepest first
        self._outer: WriteLock | None = None  # the lock this one nests in
        self._owner: tuple[int, int] | None = None  # (pid, thread) holding it
        self._key = ""

    def __enter__(self) -> WriteLock:
        key = _key(self.uri)
        outer = _held.get(key)
        if outer is not None and outer._owner == (os.getpid(), threading.get_ident()):
            self._outer, self.took_over = outer, outer.took_over
            return self
        check_location(self.uri)  # a --db that names a plain file: a clear error, not [Errno 17]
        if is_object_store(self.uri):  # writers on other machines: a lease object beside the tables
            self._lease = Lease(self.uri, self.command, self.storage_options).acquire()
            self.took_over = self._lease.took_over
            faults.start_run(self.uri)
            self._hold(key)
            return self
        self._made = _missing_folders(self.path.parent)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only or full disk, no permission: nothing was committed
            faults.reraise(e, self.uri, 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, {holder.get('command', '?')}"
            since = holder.get("started")
            raise LockedError(
                f"the database {self.uri!r} is being written by another pinembed process ({who}"
                + (f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))})" if since else ")"),
                "wait for it to finish (queries keep working meanwhile); cron jobs can simply try again next time",
            ) from None
        old = _read(fd)
        if holder_gone(old):
            self.took_over = old
            log.warning("took over the lock of %s left by pid %s (no longer running)", self.uri, old["pid"])
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": self.command}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as e:  # a full disk: the lock is held all the same, but the run cannot write
            os.close(fd)
            faults.reraise(e, self.uri, 0)
        self._fd = fd
        faults.start_run(self.uri)
        self._hold(key)
        return self

    def _hold(self, key: str) -> None:
        if self.reentrant:
            self._owner, self._key = (os.getpid(), threading.get_ident()), key
            _held[key] = self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """Release the lock; a known fault that ends the run leaves as a FaultError (exit code 5)
        that says how many pins the run committed before it. A nested lock leaves all that to the
        outermost one."""
        if self._outer is not None:
            self._outer = None
            return
        if _held.get(self._key) is self:
            del _held[self._key]
        self._owner = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:  # a full or read-only disk: the contents only serve messages
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            self._forget_unused_folder()
        n = faults.end_run(self.uri)
        err = faults.translate(exc, self.uri, n) if isinstance(exc, Exception) else None
        if err is not None and err is not exc:  # (a FaultError took the count in place)
            raise err from exc

    def _forget_unused_folder(self) -> None:
        """The folders that this lock created and that the run left empty (a model that failed to load,
        say) are removed, parents too (``--db out/db/pins.lance``), so a failed first run leaves nothing
        behind."""
        if not self._made or "://" in self.uri:
            return
        try:
            if os.listdir(self.path.parent) != [self.path.name]:
                return
            self.path.unlink()
            for folder in self._made:
                folder.rmdir()  # OSError when something else was written there meanwhile: kept
        except OSError:
            pass


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder.parent != folder:
        out.append(folder)
        folder = folder.parent
    return out


def _read(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
