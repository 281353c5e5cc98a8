"""The deadline of one http fetch, kept even against a server that sends its headers or body a few bytes at
a time (each read then finishes within the socket timeout, so timeouts alone would not end it): a timer
shuts the socket of the request in flight at the deadline, and the blocked read returns.

``pool_manager`` makes a urllib3 PoolManager whose connections tell the fetch in their thread that they
carry its request (``Deadline.watching``); a connection back in the pool belongs to no fetch, so a timer
never shuts a socket another fetch has taken up since.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()  # the Deadline of the fetch this thread is making
_owners = threading.Lock()  # guards which deadline owns which connection


class Deadline:
    """The deadline of one fetch (started by ``arm``); ``fired`` once it has passed."""

    def __init__(self) -> None:
        self.at = math.inf
        self.fired = False
        self._conn: Any = None
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float) -> None:
        """Start the clock (once: later calls keep the first deadline)."""
        if self._timer is None:
            self.at = time.monotonic() + seconds
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def left(self) -> float:
        """Seconds to the deadline (inf before ``arm``)."""
        return self.at - time.monotonic()

    def cancel(self) -> None:
        """Stop the timer (the fetch is over)."""
        if self._timer is not None:
            self._timer.cancel()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Requests made in this thread meanwhile are the ones shut at the deadline."""
        _local.deadline = self
        try:
            yield
        finally:
            _local.deadline = None

    def claim(self, conn: Any) -> None:
        """``conn`` carries this fetch's request now."""
        with _owners:
            conn._pinembed_deadline = self
            self._conn = conn

    def drop(self) -> None:
        """The request is over: its connection is no longer this fetch's."""
        with _owners:
            if self._conn is not None and getattr(self._conn, "_pinembed_deadline", None) is self:
                self._conn._pinembed_deadline = None
            self._conn = None

    def _fire(self) -> None:
        with _owners:
            self.fired = True
            conn = self._conn
            if conn is None or getattr(conn, "_pinembed_deadline", None) is not self or conn.sock is None:
                return
            try:
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)  # the plain socket's, TLS or not
            except Exception:  # closed meanwhile
                pass


def pool_manager(maxsize: int) -> urllib3.PoolManager:
    """A PoolManager keeping ``maxsize`` connections a host, with no retries of its own, whose requests
    a Deadline can cut short."""
    pool = urllib3.PoolManager(num_pools=32, maxsize=maxsize, block=False, retries=False)
    pool.pool_classes_by_scheme = {"http": _Pool, "https": _SPool}
    return pool


class _Claims:
    """A connection that tells the fetch in its thread that it carries its request."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.claim(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _Frees:
    """A pool whose connections, once back in it, belong to no fetch."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            with _owners:
                conn._pinembed_deadline = None
        super()._put_conn(conn)  # type: ignore[misc]


class _Conn(_Claims, HTTPConnection):
    pass


class _SConn(_Claims, HTTPSConnection):
    pass


class _Pool(_Frees, HTTPConnectionPool):
    ConnectionCls = _Conn


class _SPool(_Frees, HTTPSConnectionPool):
    ConnectionCls = _SConn
