"""Faults of the disk and the object store, said plainly: only this module reads lance's error texts.

LanceDB, lance and object_store raise ``ValueError``/``RuntimeError``/``OSError`` whose text is a Rust
debug dump. ``translate`` turns the ones a user can act on into one-line PinembedErrors with a hint:

- the disk: no space left, a read-only file system, permission denied -> FaultError (exit code 5);
- the object store unreachable (connection refused, DNS, timeouts) -> FaultError (exit code 5);
- a damaged table (a data file or manifest missing, truncated or garbled; ``store/damage.py``) ->
  DamagedError (exit code 5), naming the table (``doctor.locate`` finds it when lance does not say);
- an unknown storage scheme, a missing bucket, refused credentials, an http endpoint without
  ``allow_http`` -> StorageConfigError (exit code 2).

Anything else is left as it is (a real bug keeps its traceback). Messages name the place (the
database, a bucket, an endpoint) and an error code, never a storage option's value (secrets).

Write runs count the pins they commit (``note_commit``, between ``start_run`` and ``end_run``, which
the write lock calls) so that a fault can say how many pins were committed before it.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from pinembed.errors import DamagedError, FaultError, PinembedError, StorageConfigError

from . import damage, doctor

F = TypeVar("F", bound=Callable[..., Any])

AGAIN = "then run the same command again: it goes on from there"

#: errno -> (reason, what, hint) of the disk faults.
DISK = {
    errno.ENOSPC: ("no_space", "no space left on device",
                   f"free space on that disk (or give --db a bigger one), {AGAIN}"),
    errno.EDQUOT: ("no_space", "disk quota exceeded",
                   f"free space or raise the quota (or give --db another disk), {AGAIN}"),
    errno.EROFS: ("read_only", "read-only file system",
                  f"remount it read-write (or give --db a writable disk), {AGAIN}"),
    errno.EACCES: ("permission", "permission denied",
                   f"give this user access there (or give --db another folder), {AGAIN}"),
    errno.EPERM: ("permission", "operation not permitted",
                  f"give this user access there (or give --db another folder), {AGAIN}"),
}
_OS_ERROR = re.compile(r"\(os error (\d+)\)|Os \{ code: (\d+)")
_SCHEME = re.compile(r"No object store provider found for scheme: '([^']*)'")
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")
_BUCKET = re.compile(r"<BucketName>([^<]+)</BucketName>")
_ENDPOINT = re.compile(r"uri: Some\((https?://[^/\s)]+)")
_STATUS = re.compile(r"status: (\d{3})")
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
                    "InvalidClientTokenId", "AuthorizationHeaderMalformed", "AuthenticationFailed",
                    "AuthorizationFailure", "Unauthorized", "Forbidden"}
UNREACHABLE = ("connectionrefused", "connection refused", "tcp connect error", "dns error",
               "failed to lookup address", "connection reset", "kind: connect", "kind: timeout", "timed out",
               "error sending request", "network is unreachable", "no route to host")
HTTP_REFUSED = ("badscheme", "url scheme is not allowed", "http scheme is not allowed")

_commits: dict[str, int] = {}


def start_run(uri: str) -> None:
    """A write run on ``uri`` begins: its commit count starts at 0."""
    _commits[uri] = 0


def note_commit(uri: str, pins: int) -> None:
    """``pins`` pins were committed to ``uri`` (counted only while a write run holds it)."""
    if uri in _commits:
        _commits[uri] += pins


def end_run(uri: str) -> int | None:
    """The write run on ``uri`` ends; returns how many pins it committed."""
    return _commits.pop(uri, None)


def committed(uri: str) -> int | None:
    """Pins committed by the write run on ``uri`` so far (None when no run is under way)."""
    return _commits.get(uri)


def translate(exc: BaseException, place: str, committed: int | None = None) -> PinembedError | None:
    """``exc`` as a one-line PinembedError for the database at ``place``, or None when it is no fault
    that this module knows (leave it as it is). A PinembedError is returned as it is."""
    if isinstance(exc, FaultError):
        return exc.with_committed(committed)
    if isinstance(exc, PinembedError):
        return exc
    if not isinstance(exc, OSError | ValueError | RuntimeError):
        return None
    text = str(exc)
    found = damage.what(text)
    if found is not None:
        return _damaged(found, place)
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code not in DISK:
        found = _OS_ERROR.search(text)
        code = int(found.group(1) or found.group(2)) if found else None
    remote = "://" in place and not place.startswith("file")
    if code in DISK and not (remote and code in (errno.EACCES, errno.EPERM)):
        reason, what, hint = DISK[code]
        filename = getattr(exc, "filename", None)
        where = str(filename) if filename and not str(filename).startswith(place) else place
        return FaultError(what, where, hint, reason=reason, committed=committed)
    return _object_store(text, place, committed)


def _damaged(found: tuple[str | None, str], place: str) -> DamagedError | None:
    """A damaged table, named: when the error does not say which (or says a table is gone), a local
    database is probed (``doctor.locate``); a table that is simply not there any more is no damage."""
    table, what = found
    if "://" not in place and (table is None or what.startswith("has no manifest")):
        located = doctor.locate(place)
        if located is None:
            return None
        table, what = located
    return DamagedError(table, what, place)


def _object_store(text: str, place: str, committed: int | None) -> PinembedError | None:
    scheme = _SCHEME.search(text)
    if scheme:
        return StorageConfigError(
            f"unknown storage scheme {scheme.group(1)!r} in {place}",
            "give --db a local folder or an object-storage URI: s3://bucket/path, gs://bucket/path, "
            "az://container/path",
        )
    if 'store: "' not in text and "object_store" not in text and "://" not in place:
        return None
    low = text.lower()
    endpoint = _ENDPOINT.search(text)
    where = endpoint.group(1) if endpoint else place
    s3_code = _S3_CODE.search(text)
    status = _STATUS.search(text)
    if s3_code and s3_code.group(1) == "NoSuchBucket":
        bucket = _BUCKET.search(text)
        name = bucket.group(1) if bucket else urlsplit(place).netloc
        return StorageConfigError(f"the bucket {name!r} does not exist ({place})",
                                  f"create it first (aws s3 mb s3://{name}), or fix the bucket in --db")
    if (s3_code and s3_code.group(1) in CREDENTIAL_CODES) or (status and status.group(1) in ("401", "403")):
        why = s3_code.group(1) if s3_code else f"HTTP {status.group(1)}"  # type: ignore[union-attr]
        return StorageConfigError(
            f"the object store refused the credentials for {place} ({why})",
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --storage-option aws_access_key_id=... "
            "--storage-option aws_secret_access_key=...) and what the key may access",
        )
    if any(s in low for s in HTTP_REFUSED) and where.startswith("http://"):
        return StorageConfigError(
            f"the endpoint {where} is plain http, which object storage refuses unless allowed ({place})",
            "for a local S3-compatible server add --storage-option allow_http=true (or set AWS_ALLOW_HTTP=true)",
        )
    if any(s in low for s in UNREACHABLE):
        return FaultError(
            "the object store is unreachable", f"{where}" + (f" (for {place})" if where != place else ""),
            "check the endpoint (--storage-option aws_endpoint=..., $AWS_ENDPOINT) and the network, "
            + AGAIN, reason="unreachable", committed=committed,
        )
    return None


def reraise(exc: BaseException, place: str, committed: int | None = None) -> NoReturn:
    """Raise ``exc`` translated (from the original) when it is a known fault, else ``exc`` itself."""
    err = translate(exc, place, committed)
    if err is None or err is exc:
        raise exc
    raise err from exc


def translated(method: F) -> F:
    """Decorate a Store method: known faults it raises leave it as PinembedErrors naming the store."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except PinembedError:
            raise
        except Exception as e:
            reraise(e, self.uri)

    return wrapper  # type: ignore[return-value]


def short(exc: BaseException, limit: int = 300) -> str:
    """The first line of an unknown error's text, without a Rust location or backtrace."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.split(r",? location: Location|, backtrace:|,? /(?:root|rustc|home|usr)/\S*\.rs:\d+", text)[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
