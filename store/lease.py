"""One writer per database on object storage: a lease object beside the tables.

An flock only keeps writers on one machine apart. For ``s3://``, ``gs://`` and ``az://`` databases
the write lock is a small JSON object, ``<db>/.pinembed.lease`` (holder id, host, pid, command,
started, expires_at), handled only with the object store's conditional requests (through
``obstore``, the same Rust ``object_store`` that LanceDB uses, with the same option names):

- take: create it only if absent (``If-None-Match: *``); a lease that is there and live is a
  LockedError (exit code 4) naming its holder;
- take over: a lease that expired (its holder died) or was released is replaced only if it is still
  the version that was read (``If-Match: <etag>``), so of two takers exactly one wins; a takeover
  is logged;
- renew: a heartbeat thread rewrites it (again ``If-Match``) every ``renew_s`` seconds, moving
  ``expires_at`` ``ttl_s`` seconds ahead (defaults 15 s and 60 s; ``$PINEMBED_LEASE_RENEW_S`` and
  ``$PINEMBED_LEASE_TTL_S`` set them);
- release: at the end of the run it is overwritten, ``If-Match``, with ``released: true``.

A lease whose renewal fails (another writer took it over, or the store was unreachable for longer
than ``ttl_s - renew_s``) is lost: ``check_held`` (called by every Store method that commits)
raises LeaseLostError from then on, so the run stops before its next commit; what it committed
before stays whole. Expiry compares ``expires_at`` with the taker's clock: machines' clocks must
agree to well within ``ttl_s - renew_s`` (NTP does). A run stuck in a store call past a lost lease is
ended by its watchdog (``deadline.Watchdog``). A lease left by a process of this host that is gone
(``holder_gone``) is taken over at once. The lease records no argv (it may hold a secret option).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from pinembed.errors import FaultError, LockedError, PinembedError, StoreError

from . import faults
from .deadline import Watchdog
from .objects import object_store

__all__ = ["Lease", "LeaseLostError", "check_held", "holder_gone"]

log = logging.getLogger(__name__)

LEASE_NAME = ".pinembed.lease"
TAKEN_OVER = "another writer took it over"
WAIT_HINT = "wait for it to finish (queries keep working meanwhile); cron jobs can simply try again next time"

_held: dict[str, Lease] = {}  # uri -> the lease this process holds on it


class LeaseLostError(LockedError):
    """This run's write lease on an object-storage database was lost (taken over, or not renewed in
    time): the run stopped before its next commit."""


def settings() -> tuple[float, float]:
    """(ttl_s, renew_s) from ``$PINEMBED_LEASE_TTL_S`` and ``$PINEMBED_LEASE_RENEW_S`` (60 s and a
    quarter of the TTL by default)."""
    ttl = float(os.environ.get("PINEMBED_LEASE_TTL_S") or 60)
    renew = float(os.environ.get("PINEMBED_LEASE_RENEW_S") or ttl / 4)
    return ttl, renew


def check_held(uri: str) -> None:
    """LeaseLostError when this process took the write lease of ``uri`` and has lost it since (a
    dictionary look-up otherwise: local databases and readers pass at no cost)."""
    lease = _held.get(uri.rstrip("/"))
    if lease is not None:
        lease.check()


def alive(pid: int, started: float | None = None) -> bool:
    """Whether process ``pid`` of this host runs, and is the one that started at ``started`` (a
    process that started more than 2 s later took a dead holder's pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started:
        began = _started_at(pid)
        if began is not None and began > float(started) + 2:
            return False
    return True


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (wall clock, from /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def holder_gone(info: dict[str, Any]) -> bool:
    """Whether the holder recorded in ``info`` (a lease's or a lock file's host, pid, started) ran on
    this host and has died: its lease or lock is taken over at once, without waiting for it to expire."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid() or info.get("host") != socket.gethostname():
        return False
    started = info.get("started")
    return not alive(pid, float(started) if isinstance(started, int | float) else None)


class Lease:
    """The write lease of the object-storage database at ``uri``: ``acquire()`` ... ``release()``."""

    def __init__(self, uri: str, command: str, storage_options: dict[str, str] | None = None, *,
                 ttl_s: float | None = None, renew_s: float | None = None) -> None:
        default_ttl, default_renew = settings()
        self.uri, self.command = uri.rstrip("/"), command
        self.ttl_s = ttl_s if ttl_s is not None else default_ttl
        self.renew_s = renew_s if renew_s is not None else min(default_renew, self.ttl_s / 4)
        self.storage_options = storage_options
        self.holder = str(uuid.uuid4())
        self.took_over: dict[str, Any] | None = None  # the expired lease this one replaced
        self.lost: str | None = None  # why the lease was lost, once it is
        self._store: Any = None
        self._version: dict[str, Any] = {}  # e_tag and version of the object this lease last wrote
        self._valid_until = 0.0  # time.monotonic() after which this process no longer trusts it
        self._renewing_since: float | None = None  # when the renewal under way was sent
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # -- taking and giving back ---------------------------------------------------------------
    def acquire(self) -> Lease:
        """Take the lease (creating it, or taking over an expired or released one); LockedError (exit
        code 4) naming the holder when a live lease is there. Starts the heartbeat."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        self._store = self._call(object_store, self.uri, self.storage_options, self.renew_s)
        self._started = time.time()
        for _ in range(5):
            sent = time.monotonic()
            try:
                result = self._call(obstore.put, self._store, LEASE_NAME, self._body(), mode="create")
                return self._hold(result, sent)
            except (AlreadyExistsError, PreconditionError):
                pass
            try:
                got = self._call(obstore.get, self._store, LEASE_NAME)
                raw = bytes(got.bytes())
            except FileNotFoundError:
                continue  # removed meanwhile: try to create it again
            old = _parse(raw)
            gone = old is not None and holder_gone(old)
            if old is not None and not old.get("released") and not gone and time.time() < float(old.get("expires_at", 0)):
                raise LockedError(self._held_by(old), WAIT_HINT + f"; a holder that died is taken over once its "
                                  f"lease expires (at most {self.ttl_s:g} s)")
            sent = time.monotonic()
            try:
                result = self._call(obstore.put, self._store, LEASE_NAME, self._body(), mode=_version(got.meta))
            except (PreconditionError, AlreadyExistsError, FileNotFoundError):
                continue  # another writer changed it first: look again
            if old is None or not old.get("released"):
                self.took_over = old or {}
                log.warning("took over the write lease of %s %s", self.uri, _expired(old))
            return self._hold(result, sent)
        raise LockedError(f"the database {self.uri!r} is being taken by other pinembed processes right now",
                          WAIT_HINT)

    def release(self) -> None:
        """Stop the heartbeat and mark the lease released (only if it is still ours). Never raises:
        a lease that cannot be released simply expires."""
        import obstore

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _held.pop(self.uri, None)
        with self._mutex:
            if self.lost is not None or not self._version:
                return
            try:
                obstore.put(self._store, LEASE_NAME, self._body(released=True), mode=self._version)  # type: ignore[arg-type]
            except Exception as e:  # taken over or unreachable: it expires on its own
                log.warning("could not release the write lease of %s (%s); it expires by itself within %g s",
                            self.uri, faults.short(e, 200), self.ttl_s)
            self._version = {}

    def check(self) -> None:
        """Raise ``error()`` when the lease is lost, or was not renewed in time (the heartbeat may hang)."""
        if self.expired():
            raise self.error()

    @property
    def stopped(self) -> threading.Event:
        """Set when the lease is released (the run ended)."""
        return self._stop

    def expired(self) -> bool:
        """Whether this lease is lost: taken over, or not renewed for ``ttl_s - renew_s`` (measured here,
        whatever the heartbeat is doing)."""
        if self.lost is None and time.monotonic() >= self._valid_until:
            self.lost = f"it was not renewed for {self.ttl_s - self.renew_s:g} s"
        return self.lost is not None

    def stuck(self) -> bool:
        """Whether the run must stop although it may not be able to: the lease is lost, or a renewal has
        hung for ``renew_s`` past the lease's validity (an unanswering store). A heartbeat that merely ran
        late (the process busy) is not stuck: its conditional renewal still tells whether the lease is ours."""
        since = self._renewing_since
        if since is not None and time.monotonic() >= max(self._valid_until, since + self.renew_s):
            self.expired()
        return self.lost is not None

    def error(self) -> PinembedError:
        """Why the run stops: LeaseLostError (exit code 4) when another writer took the lease over, a
        FaultError (exit code 5) when the store stopped answering; both with the pins committed so far."""
        n = faults.committed(self.uri)
        again = "then run the same command again: it goes on from there"
        if self.lost == TAKEN_OVER:
            kept = "" if n is None else f"; the {n} pin{'' if n == 1 else 's'} committed before it are kept"
            return LeaseLostError(
                f"this run lost its write lease on {self.uri!r} ({self.lost}) and stopped before its next "
                f"commit{kept}", f"make sure only one writer runs at a time, {again}")
        return FaultError(
            f"the object store stopped answering and this run's write lease ran out ({self.lost}); the run "
            "stopped", self.uri, f"check the endpoint and the network (the object store must answer), {again}",
            reason="lease_lost", committed=n)

    # -- the heartbeat ------------------------------------------------------------------------
    def _hold(self, result: dict[str, Any], sent: float) -> Lease:
        self._version = _version(result)
        self._valid_until = sent + self.ttl_s - self.renew_s
        _held[self.uri] = self
        self._thread = threading.Thread(target=self._beat, name="pinembed-lease", daemon=True)
        self._thread.start()
        Watchdog(self).start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_s):
            self.renew()
            if self.lost is not None:
                return

    def renew(self) -> None:
        """Move ``expires_at`` ahead (conditionally on the version this lease wrote last). A lease
        that another writer replaced is lost at once; one that cannot be reached is lost when its
        time runs out."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with self._mutex:
            if self._stop.is_set() or self.lost is not None or not self._version:
                return
            sent = self._renewing_since = time.monotonic()
            try:
                result = obstore.put(self._store, LEASE_NAME, self._body(), mode=self._version)  # type: ignore[arg-type]
            except (PreconditionError, AlreadyExistsError, FileNotFoundError):
                self.lost = TAKEN_OVER
                log.error("lost the write lease of %s: %s; this run stops before its next commit",
                          self.uri, self.lost)
                return
            except Exception as e:
                self._renewing_since = None
                log.warning("could not renew the write lease of %s: %s", self.uri, faults.short(e, 200))
                if time.monotonic() >= self._valid_until:
                    self.lost = f"it could not be renewed: {faults.short(e, 120)}"
                return
            self._renewing_since = None
            self._version = _version(result)
            self._valid_until = sent + self.ttl_s - self.renew_s

    # -- helpers ------------------------------------------------------------------------------
    def _body(self, released: bool = False) -> bytes:
        info = {"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(), "command": self.command,
                "started": self._started, "expires_at": time.time() + self.ttl_s,
                "ttl_s": self.ttl_s}
        if released:
            info["released"] = True
        return json.dumps(info).encode()

    def _held_by(self, old: dict[str, Any]) -> str:
        who = f"pid {old.get('pid', '?')} on {old.get('host', '?')}, {old.get('command', '?')}"
        since = old.get("started")
        if isinstance(since, int | float) and since:
            who += f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        return f"the database {self.uri!r} is being written by another pinembed process ({who})"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; object-store errors leave as PinembedErrors naming the database (the conditional
        outcomes and a missing object pass through for the caller)."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            return fn(*args, **kwargs)
        except (AlreadyExistsError, PreconditionError, PinembedError):
            raise
        except FileNotFoundError as e:
            if "NoSuchBucket" in str(e):
                faults.reraise(e, self.uri)
            raise
        except Exception as e:
            plain = e if isinstance(e, OSError | ValueError | RuntimeError) else RuntimeError(str(e))
            known = faults.translate(plain, self.uri)
            if known is not None:
                raise known from e
            raise StoreError(f"could not take the write lease of {self.uri!r}: {faults.short(e)}",
                             "check the URI and the storage options (credentials, endpoint)") from e


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _version(meta: Any) -> dict[str, Any]:
    """The conditional-update mode (``If-Match``) for the object version in ``meta``."""
    return {k: meta[k] for k in ("e_tag", "version") if meta.get(k) is not None}


def _expired(old: dict[str, Any] | None) -> str:
    if old is None:
        return "(its lease object was unreadable)"
    if holder_gone(old):
        return f"left by pid {old.get('pid', '?')} on this host ({old.get('command', '?')}, no longer running)"
    at = old.get("expires_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at))) if isinstance(at, int | float) else "?"
    return f"left by pid {old.get('pid', '?')} on {old.get('host', '?')} ({old.get('command', '?')}, expired {when})"
