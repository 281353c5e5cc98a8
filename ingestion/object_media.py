"""Media on object storage: a source prefix such as ``s3://bucket/pins/`` (``gs://``, ``az://`` alike),
listed and read through ``obstore`` (the Rust ``object_store`` that LanceDB uses, configured with the
same storage options and ``AWS_*`` environment variables as the database; see ``store/lease.py``).

- ``MediaStore.list`` lists every object under the prefix with its key relative to the prefix, size,
  ETag and mtime: what the incremental plan judges a change by, so an unchanged object costs no read.
- ``read`` checks the object's size against a limit before its body is read and never reads more.
- ``local_copy`` downloads an object to a temporary file (the video decoders need a file) and
  deletes it afterwards.

A MediaStore pickles as its root and options (the live client is made again on first use), so an
Entry carrying one can be read in another process or on another machine (the ray runner).

The helpers at the bottom (``read_head``, ``file_digest``, ``local_file``, ``join``) take a local
Path (``media`` None) or an object URI with its MediaStore, so each kind reads both the same way.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pinembed.errors import InputError, PinembedError, UsageError
from pinembed.store import faults
from pinembed.store.objects import is_object_store, object_store

from .temp_files import temp_copy

CHUNK = 1 << 20
RETRY_S = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Objects whose bytes were fetched in this process (listing costs none): what tests and benchmarks read.
reads = 0
_reads_lock = threading.Lock()


def is_uri(src: str | os.PathLike[str]) -> bool:
    """Whether ``src`` names an object-storage prefix (``s3://``, ``gs://``, ``az://`` ...)."""
    return isinstance(src, str) and is_object_store(src)


def norm_root(src: str) -> str:
    """An object-storage prefix as a source root: no trailing slash (``s3://bucket/media``)."""
    return src.rstrip("/")


@dataclass(frozen=True, slots=True)
class Listed:
    """One object under a prefix."""

    rel: str  # the key relative to the prefix
    size: int
    etag: str
    mtime_ns: int


class MediaStore:
    """The objects under one source prefix, read with the given storage options."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self.root = norm_root(root)
        self.options = dict(storage_options) if storage_options else None
        self._store: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"MediaStore({self.root!r})"

    @property
    def store(self) -> Any:
        """The obstore store rooted at the prefix (made on first use)."""
        with self._lock:
            if self._store is None:
                self._store = self._call(object_store, self.root, self.options, RETRY_S)
            return self._store

    def uri(self, rel: str) -> str:
        """The URI of the object at ``rel`` (a key relative to the prefix)."""
        return f"{self.root}/{rel}" if rel else self.root

    def rel(self, uri: str) -> str:
        """The key of ``uri`` relative to the prefix; ValueError for a URI outside it."""
        if not uri.startswith(self.root + "/"):
            raise ValueError(f"{uri!r} is not under {self.root!r}")
        return uri[len(self.root) + 1:]

    def list(self) -> list[Listed]:
        """Every object under the prefix (recursively), with size, ETag and mtime; one listing, no reads.
        A missing bucket, refused credentials or an unreachable endpoint raise a PinembedError."""
        import obstore

        out: list[Listed] = []
        for chunk in self._call(lambda: list(obstore.list(self.store, chunk_size=1000))):
            for m in chunk:
                out.append(Listed(m["path"], int(m["size"]), str(m.get("e_tag") or "").strip('"'),
                                  _ns(m["last_modified"])))
        return out

    def check(self) -> None:
        """UsageError when the prefix holds no objects (a typo, or an emptied prefix): for a cron job
        that must not read as "everything was deleted". One listing request."""
        import obstore

        first = self._call(lambda: next(iter(obstore.list(self.store, chunk_size=1)), []))
        if not first:
            raise empty_prefix(self.root)

    def head(self, uri: str) -> tuple[int, str, int]:
        """(size, ETag, mtime_ns) of the object at ``uri``, from one HEAD request (nothing is read);
        OSError(ENOENT) when it is gone."""
        import obstore

        m = self._call(obstore.head, self.store, self.rel(uri), missing=uri)
        return int(m["size"]), str(m.get("e_tag") or "").strip('"'), _ns(m["last_modified"])

    def read(self, uri: str, limit: int) -> bytes:
        """The bytes of the object at ``uri``; InputError(too_large) when it is over ``limit`` bytes (from
        its size, before the body is read), OSError(ENOENT) when it is gone."""
        data = bytearray()
        for chunk in self._chunks(uri, limit):
            data += chunk
        return bytes(data)

    def read_head(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the object (so that a caller sees it is over ``limit``)."""
        data = bytearray()
        for chunk in self._chunks(uri, None):
            data += chunk
            if len(data) > limit:
                break
        return bytes(data[: limit + 1])

    def digest(self, uri: str) -> str:
        """The content hash of the object (the same as ``kinds.base.file_digest`` of its bytes)."""
        h = hashlib.blake2b(digest_size=16)
        for chunk in self._chunks(uri, None):
            h.update(chunk)
        return h.hexdigest()

    def stream(self, uri: str) -> Iterator[bytes]:
        """The object's bytes in chunks of about CHUNK, from one streaming GET (a webdataset shard is
        walked this way); OSError(ENOENT) when it is gone, a PinembedError for other failures."""
        return self._chunks(uri, None)

    def read_range(self, uri: str, start: int, length: int, etag: str = "") -> bytes:
        """``length`` bytes of the object at ``uri`` from byte ``start``, one ranged GET (a member of a
        webdataset shard). With ``etag`` (the listed one) it is asked for that version only: OSError
        (ESTALE) when the object changed since it was listed, as the range would be another member's."""
        import obstore
        from obstore.exceptions import PreconditionError

        global reads
        if length <= 0:
            return b""
        rel, options = self.rel(uri), {"range": (start, start + length)}
        if etag:
            options["if_match"] = f'"{etag}"'

        def get() -> bytes | None:
            try:
                return bytes(obstore.get(self.store, rel, options=options).bytes())  # type: ignore[arg-type]
            except PreconditionError:
                return None

        data = self._call(get, missing=uri)
        if data is None:
            raise OSError(errno.ESTALE, "the object changed since it was listed; the next run reads it again", uri)
        with _reads_lock:
            reads += 1
        return data

    @contextmanager
    def local_copy(self, uri: str, limit: int | None = None) -> Iterator[str]:
        """The object downloaded to a temporary file (same extension), deleted on exit."""
        with temp_copy(os.path.splitext(uri)[1], lambda f: f.writelines(self._chunks(uri, limit))) as path:
            yield path

    def _chunks(self, uri: str, limit: int | None) -> Iterator[bytes]:
        import obstore

        global reads
        rel = self.rel(uri)
        result = self._call(obstore.get, self.store, rel, missing=uri)
        size = int(result.meta["size"])
        if limit is not None and size > limit:
            raise InputError(f"file is {size:,} bytes, over the limit of {limit:,}", error="too_large")
        with _reads_lock:
            reads += 1
        stream = result.stream(min_chunk_size=CHUNK)
        got = 0
        while True:
            try:
                chunk = self._call(next, stream, None, missing=uri)
            except StopIteration:
                return
            if chunk is None:
                return
            got += len(chunk)
            if limit is not None and got > limit:  # it grew since it was listed
                raise InputError(f"file is over the limit of {limit:,} bytes", error="too_large")
            yield bytes(chunk)

    def _call(self, fn: Any, *args: Any, missing: str | None = None) -> Any:
        """``fn(*args)``; a missing object is OSError(ENOENT) (an input gone since the listing), other
        object-store errors leave as one-line PinembedErrors naming the prefix."""
        try:
            return fn(*args)
        except (PinembedError, StopIteration):
            raise
        except FileNotFoundError as e:
            if missing is not None and "NoSuchBucket" not in str(e):
                raise OSError(errno.ENOENT, "the object is gone", missing) from e
            raise _translated(e, self.root) from e
        except Exception as e:
            raise _translated(e, self.root) from e


def empty_prefix(root: str) -> UsageError:
    """The error for a source prefix that holds no objects."""
    return UsageError(
        f"source prefix {root + '/'!r} holds no objects (a typo, or an emptied prefix?)",
        "pass the prefix that holds your media, e.g. pinembed ingest s3://bucket/media/ ; nothing was changed",
    )


def _translated(e: BaseException, place: str) -> PinembedError:
    plain = e if isinstance(e, OSError | ValueError | RuntimeError) else RuntimeError(str(e))
    known = faults.translate(plain, place)
    if known is not None:
        return known
    return UsageError(f"cannot read the media under {place!r}: {faults.short(e)}",
                      "check the URI and the storage options (--storage-option, AWS_* variables)")


def _ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


# -- one way to read both a local path and an object URI -----------------------------------------

def read_file(where: Path | str, media: MediaStore | None, limit: int) -> bytes:
    """A media file's bytes (a local path when ``media`` is None, else an object URI), over ``limit``
    refused by InputError(too_large); OSError when it cannot be read."""
    if media is None:
        return Path(where).read_bytes()
    return media.read(str(where), limit)


def read_head(where: Path | str, media: MediaStore | None, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of a file or object; OSError when it cannot be read."""
    if media is None:
        with open(where, "rb") as f:
            return f.read(limit + 1)
    return media.read_head(str(where), limit)


def file_digest(where: Path | str, media: MediaStore | None = None) -> str:
    """The content hash of a file or object, read in chunks (the same as ``digest`` of its bytes)."""
    if media is not None:
        return media.digest(str(where))
    h = hashlib.blake2b(digest_size=16)
    with open(where, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def local_file(where: Path | str, media: MediaStore | None, limit: int | None = None) -> Iterator[str]:
    """A local path to read the file or object from: the path itself, or a temporary copy."""
    if media is None:
        yield os.fspath(where)
    else:
        with media.local_copy(str(where), limit) as tmp:
            yield tmp


def join(where: Path | str, name: str) -> Path | str:
    """``name`` inside the folder ``where`` (a Path, or an object URI prefix)."""
    return where / name if isinstance(where, Path) else f"{where}/{name}"
