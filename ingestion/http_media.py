"""Media fetched over http(s): the URLs of a catalog's media column (``https://cdn.example.com/p/1.jpg``),
read with the calls of ``object_media.MediaStore`` (``read``, ``read_head``, ``digest``, ``local_copy``),
so an Entry whose ``media`` is an HttpMedia reads through the same code.

- Nothing is fetched from a host off the allow-list (the user's ``--allow-host``: ``cdn.example.com``,
  ``cdn.example.com:8443`` for one port, ``*.example.com`` for its subdomains); ``check`` refuses a URL
  without a request. Schemes http and https only, no ``user:password@``.
- Redirects are followed here, at most ``max_redirects``: every hop's host is checked against the
  allow-list, and https -> http is refused.
- Bounds: at most ``max_concurrency`` requests in flight; one deadline of ``timeout_s`` for the whole
  fetch (every try, redirect and wait), kept by a timer that shuts the socket of the request in flight,
  so a server that answers or drips its body slowly holds a thread no longer than that; the size limit
  is checked against Content-Length before the body, and no more than limit + 1 bytes are ever read.
- Connection errors, timeouts, 429 and 5xx are tried again (exponential backoff with jitter, or the
  server's Retry-After up to a few seconds) while the deadline allows; other answers are not.
- Every failure is an InputError (a ledger row for the pin) whose ``error`` is one of: not_found,
  http_error, timeout, too_large, not_media, host_not_allowed, redirect_not_allowed, unreachable.

An HttpMedia pickles as its settings (the connection pool is made again on first use), like MediaStore.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from pinembed.errors import InputError, UsageError

from .http_allow import AllowList, shown
from .http_deadline import Deadline, pool_manager
from .temp_files import temp_copy

CHUNK = 1 << 20
RETRY_AFTER_CAP_S = 5.0  # the longest Retry-After honoured
REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410})
RETRIED = frozenset({408, 425, 429})  # and 5xx but 501 and 505
HEAD_REFUSED = frozenset({403, 405, 501})  # 403: a URL signed for GET refuses HEAD
USER_AGENT = "pinembed"
_TEXT_APPS = frozenset({"json", "xml", "javascript", "x-javascript", "ecmascript", "xhtml+xml",
                        "x-www-form-urlencoded", "x-httpd-php", "html"})

#: Bodies fetched in this process (a ``stat`` costs none): what tests and benchmarks read.
reads = 0
_reads_lock = threading.Lock()


class HttpMedia:
    """Media URLs on the allowed hosts, fetched within bounds (see the module's docstring)."""

    def __init__(self, allow_hosts: Sequence[str], *, timeout_s: float = 30.0, connect_timeout_s: float = 10.0,
                 max_concurrency: int = 16, retries: int = 2, backoff_s: float = 0.5, max_redirects: int = 5) -> None:
        if not (timeout_s > 0 and connect_timeout_s > 0 and max_concurrency >= 1 and retries >= 0
                and backoff_s >= 0 and max_redirects >= 0):
            raise UsageError("HttpMedia settings out of range", "timeouts must be over 0 s, max_concurrency at "
                             "least 1, retries, backoff_s and max_redirects at least 0")
        self.allow = AllowList(allow_hosts)
        self.allow_hosts = self.allow.entries
        self.timeout_s, self.connect_timeout_s = float(timeout_s), float(connect_timeout_s)
        self.max_concurrency, self.retries = int(max_concurrency), int(retries)
        self.backoff_s, self.max_redirects = float(backoff_s), int(max_redirects)
        self._pool: urllib3.PoolManager | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    def __getstate__(self) -> dict[str, Any]:
        return {"allow_hosts": list(self.allow_hosts), "timeout_s": self.timeout_s,
                "connect_timeout_s": self.connect_timeout_s, "max_concurrency": self.max_concurrency,
                "retries": self.retries, "backoff_s": self.backoff_s, "max_redirects": self.max_redirects}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.__init__(state.pop("allow_hosts"), **state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"HttpMedia(allow_hosts={list(self.allow_hosts)!r})"

    # -- the allow-list ---------------------------------------------------------------------------

    def allowed(self, url: str) -> bool:
        """Whether ``url`` may be fetched: http(s), no credentials, a host on the allow-list."""
        return self.allow.refusal(url) is None

    def check(self, url: str) -> None:
        """InputError(host_not_allowed) for a URL that may not be fetched; no request is made."""
        refusal = self.allow.refusal(url)
        if refusal is not None:
            why, hint = refusal
            raise InputError(f"not fetched: {shown(url)}: {why}", hint, error="host_not_allowed")

    # -- what the read stage calls ----------------------------------------------------------------

    def read(self, uri: str, limit: int) -> bytes:
        """The bytes at ``uri``; InputError(too_large) when over ``limit`` (from Content-Length before the
        body, else while it streams)."""
        data = bytearray()

        def start() -> Callable[[bytes], Any]:
            data.clear()
            return data.extend

        self._get(uri, start, limit=limit)
        return bytes(data)

    def read_head(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes from the start of the body (so that a caller sees it is over); any
        Content-Type (a sidecar is JSON)."""
        data = bytearray()

        def start() -> Callable[[bytes], Any]:
            data.clear()
            return data.extend

        self._get(uri, start, stop=limit + 1, media_only=False)
        return bytes(data[: limit + 1])

    def digest(self, uri: str) -> str:
        """The content hash of the body (blake2b, 16 bytes, hex: the same as ``object_media.file_digest``)."""
        box: list[Any] = []

        def start() -> Callable[[bytes], Any]:
            box[:] = [hashlib.blake2b(digest_size=16)]
            return box[0].update

        self._get(uri, start)
        return box[0].hexdigest()

    @contextmanager
    def local_copy(self, uri: str, limit: int | None = None) -> Iterator[str]:
        """The body downloaded to a temporary file (with the URL path's extension), deleted on exit."""
        def fill(f: BinaryIO) -> None:
            def start() -> Callable[[bytes], Any]:
                f.seek(0)
                f.truncate()
                return f.write

            self._get(uri, start, limit=limit)

        with temp_copy(os.path.splitext(urlsplit(uri).path)[1], fill) as path:
            yield path

    def stat(self, url: str) -> tuple[int, str, int]:
        """(size, etag, mtime_ns) from a HEAD (Content-Length, ETag, Last-Modified; missing: -1, "", 0), a
        media signature; a server that refuses HEAD is asked for ``Range: bytes=0-0`` instead."""
        try:
            return self._fetch("HEAD", url, {}, _signature)
        except InputError as e:
            if getattr(e, "status", None) not in HEAD_REFUSED:
                raise
        return self._fetch("GET", url, {"Range": "bytes=0-0"}, _signature)

    # -- fetching -----------------------------------------------------------------------------------

    @property
    def pool(self) -> urllib3.PoolManager:
        """The connection pool (made on first use): no retries or redirects of urllib3's own."""
        with self._lock:
            if self._pool is None:
                self._pool = pool_manager(self.max_concurrency)
            return self._pool

    def _get(self, url: str, start: Callable[[], Callable[[bytes], Any]], *, limit: int | None = None,
             stop: int | None = None, media_only: bool = True) -> None:
        """GET ``url``'s body into the writer ``start()`` returns (called again for each try); stop after
        ``stop`` bytes, or refuse a body over ``limit``; ``media_only``: refuse a page or data (not_media)."""

        def body(resp: Any, here: str) -> None:
            global reads
            ctype = resp.headers.get("Content-Type") or ""
            if media_only and _not_media(ctype):
                raise InputError(f"{here} is {ctype.split(';')[0].strip()}, not media",
                                 "the URL serves a page or data, not the media file (an error page?): "
                                 "check the URL in the catalog", error="not_media")
            length = _content_length(resp)
            if limit is not None and length is not None and length > limit:
                raise InputError(f"{here} is {length:,} bytes, over the limit of {limit:,}",
                                 "the file is over the size limit for its kind: serve a smaller one",
                                 error="too_large")
            with _reads_lock:
                reads += 1
            write, got = start(), 0
            cap = stop if stop is not None else (limit + 1 if limit is not None else None)
            while cap is None or got < cap:
                chunk = resp.read(CHUNK if cap is None else min(CHUNK, cap - got))
                if not chunk:
                    break
                got += len(chunk)
                write(chunk)
            if limit is not None and got > limit:
                raise InputError(f"{here} is over the limit of {limit:,} bytes",
                                 "the file is over the size limit for its kind: serve a smaller one",
                                 error="too_large")

        self._fetch("GET", url, {}, body)

    def _fetch(self, method: str, url: str, headers: dict[str, str], handle: Callable[[Any, str], Any]) -> Any:
        """``handle(response, final_url)`` of a 2xx answer to ``method url``, with the retries, redirects and
        deadline of the module's docstring."""
        self.check(url)
        deadline, tries = Deadline(), 0
        try:
            while True:
                with self._slots:
                    deadline.arm(self.timeout_s)
                    try:
                        return self._hops(method, url, {"User-Agent": USER_AGENT, **headers}, handle, deadline)
                    except _Again as again:
                        error, wait = again.error, again.wait
                tries += 1
                if wait is None:
                    wait = self.backoff_s * 2 ** (tries - 1) * random.uniform(0.5, 1.5)
                if tries > self.retries or deadline.fired or time.monotonic() + wait >= deadline.at:
                    if tries > 1:
                        error.message = f"{error.message} (after {tries} tries)"
                        error.args = (error.message,)
                    raise error
                time.sleep(wait)
        finally:
            deadline.cancel()

    def _hops(self, method: str, url: str, headers: dict[str, str], handle: Callable[[Any, str], Any],
              deadline: Deadline) -> Any:
        """One try: the request and the redirects it leads to."""
        here = url
        for _ in range(self.max_redirects + 1):
            resp = self._open(method, here, headers, deadline)
            try:
                status = resp.status
                if status in REDIRECTS and resp.headers.get("Location"):
                    here = self._redirect(url, here, resp.headers["Location"])
                    continue
                if not 200 <= status < 300:
                    raise _status_error(resp, here)
                out = handle(resp, here)
                if deadline.fired:
                    raise _Again(self._timeout(url))
                return out
            except (InputError, _Again):
                raise
            except Exception as e:
                raise self._broken(e, url, deadline) from e
            finally:
                deadline.drop()
                if not resp.closed:
                    resp.close()  # a body left unread: the connection is not reused
                resp.release_conn()
        raise InputError(f"{url} redirects more than {self.max_redirects} times", "check the URL in the catalog "
                         "(a redirect loop?), or put the final address there", error="http_error")

    def _open(self, method: str, url: str, headers: dict[str, str], deadline: Deadline) -> Any:
        left = deadline.left()
        if left <= 0:
            raise _Again(self._timeout(url))
        timeout = urllib3.Timeout(connect=min(self.connect_timeout_s, left), read=left)
        try:
            with deadline.watching():
                return self.pool.urlopen(method, url, headers=headers, retries=False, redirect=False,
                                         preload_content=False, timeout=timeout)
        except Exception as e:
            raise self._broken(e, url, deadline) from e

    def _redirect(self, first: str, here: str, location: str) -> str:
        """The target of a redirect from ``here``; InputError(redirect_not_allowed) when it may not be followed."""
        target = urljoin(here, location.strip())
        if urlsplit(here).scheme.lower() == "https" and urlsplit(target).scheme.lower() == "http":
            raise InputError(f"{first} redirects from https to plain http ({shown(target)}): refused",
                             "a redirect may not drop TLS: put the https address of the media in the catalog, "
                             "or fix the server's redirect", error="redirect_not_allowed")
        refusal = self.allow.refusal(target)
        if refusal is not None:
            why, hint = refusal
            raise InputError(f"{first} redirects to {shown(target)}: {why}",
                             f"{hint} if you trust it, or put the final address in the catalog",
                             error="redirect_not_allowed")
        return target

    def _broken(self, e: BaseException, url: str, deadline: Deadline) -> Exception:
        """What a failed request or body read is: a timeout, an unreachable server, a broken answer."""
        if isinstance(e, InputError | _Again):
            return e
        if deadline.fired or isinstance(e, Urllib3Timeout) and not isinstance(e, NewConnectionError):
            return _Again(self._timeout(url))
        if isinstance(e, SSLError):
            return InputError(f"cannot reach {url}: TLS failed ({_short(e)})", "the server's certificate is not "
                              "trusted here or its TLS is broken; trust its CA (SSL_CERT_FILE) or fix the server",
                              error="unreachable")
        if isinstance(e, HTTPError | OSError):
            return _Again(InputError(f"cannot reach {url}: {_short(e)}", "check the host name and that the "
                                     "server is up; it was tried again before giving up", error="unreachable"))
        return e

    def _timeout(self, url: str) -> InputError:
        return InputError(f"{url} did not answer in full within {self.timeout_s:g} s",
                          "the server is slow or stalled: try again later, or raise --http-timeout",
                          error="timeout")


class _Again(Exception):
    """A try that may be made again: ``error`` if not, ``wait`` the seconds the server asked for (or None)."""

    def __init__(self, error: InputError, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.error, self.wait = error, wait


def _status_error(resp: Any, url: str) -> Exception:
    status, reason = resp.status, (resp.reason or "").strip()
    said = f"HTTP {status} {reason}".strip()
    if status in GONE:
        return InputError(f"{url} is not on the server ({said})", "check the URL in the catalog: the media was "
                          "removed or moved", error="not_found")
    if status in (401, 403):
        hint = "the server refused access: make the media readable without a login (or renew signed URLs)"
    elif status in RETRIED or status >= 500:
        hint = "the server failed or is overloaded; try again later"
    else:
        hint = "check the URL in the catalog"
    error = InputError(f"{url} answered {said}", hint, error="http_error")
    error.status = status  # type: ignore[attr-defined]
    retried = status in RETRIED or (status >= 500 and status not in (501, 505))
    return _Again(error, _retry_after(resp)) if retried else error


def _retry_after(resp: Any) -> float | None:
    raw = (resp.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        wait = float(raw)
    except ValueError:
        try:
            wait = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(wait, 0.0), RETRY_AFTER_CAP_S) if math.isfinite(wait) else None


def _content_length(resp: Any) -> int | None:
    raw = resp.headers.get("Content-Length")
    try:
        return int(raw.split(",")[0]) if raw else None
    except ValueError:
        return None


def _signature(resp: Any, url: str) -> tuple[int, str, int]:
    """(size, etag, mtime_ns) of an answer to HEAD or to a GET of ``bytes=0-0``."""
    size = _content_length(resp)
    if resp.status == 206:
        total = (resp.headers.get("Content-Range") or "").rpartition("/")[2].strip()
        size = int(total) if total.isdigit() else None
    etag = (resp.headers.get("ETag") or "").strip()
    weak = etag.startswith("W/")
    etag = ("W/" if weak else "") + etag[2 if weak else 0:].strip('"')
    mtime_ns = 0
    if modified := resp.headers.get("Last-Modified"):
        try:
            mtime_ns = int(parsedate_to_datetime(modified).timestamp()) * 1_000_000_000
        except (TypeError, ValueError, IndexError):
            pass
    return (-1 if size is None else size), etag, mtime_ns


def _not_media(content_type: str) -> bool:
    """Whether a Content-Type names a page or data (text/*, JSON, XML, scripts ...) rather than media."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith(("text/", "multipart/", "message/")):
        return True
    if kind.startswith("application/"):
        sub = kind[len("application/"):]
        return sub in _TEXT_APPS or sub.endswith(("+json", "+xml"))
    return False


def _short(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e) or type(e).__name__
    return text.splitlines()[0][:200]
