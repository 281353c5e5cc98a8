"""Where a catalog row's media lie, and one reader for all of them: a path relative to the catalog file,
an absolute path, an object URI (``s3://``, ``gs://``, ``az://``: the object-storage layer) or an
``http(s)://`` URL (``http_media``: an allow-list, bounded concurrency, timeouts, size limits, retries).

``resolve`` turns what a row says into an absolute path or a URI, refusing what no reader takes (other
schemes, control characters). ``CatalogMedia`` is the ``media`` of every catalog entry: it reads each
URI with the reader of its scheme, with the same methods as ``object_media.MediaStore`` (``read``,
``read_head``, ``digest``, ``local_copy``), and ``stat`` gives a media signature without reading.
It pickles as its settings (the Ray runner ships entries to other processes).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pinembed.errors import InputError

from .http_media import HttpMedia
from .object_media import MediaStore, file_digest, is_uri

SCHEMES = ("s3://", "gs://", "az://", "abfs://", "abfss://", "http://", "https://")
MAX_URI_CHARS = 4096


def is_http(uri: str) -> bool:
    """Whether ``uri`` is an http(s) URL."""
    return uri[:8].lower().startswith(("http://", "https://"))


def resolve(raw: object, base: str) -> str:
    """An absolute path or URI for a media value of a row of the catalog file ``base`` (a path or a URI):
    relative paths are relative to the catalog file's folder. InputError(bad_uri) for what no reader
    takes."""
    if not isinstance(raw, str) or not raw.strip():
        raise InputError("the media value is empty", stage="catalog", error="no_media")
    v = raw.strip()
    if len(v) > MAX_URI_CHARS or any(ch < " " or ch == "\x7f" for ch in v):
        raise InputError(f"media {v[:80]!r} holds control characters or is over {MAX_URI_CHARS} characters",
                         stage="catalog", error="bad_uri")
    if "://" in v:
        if not v.lower().startswith(SCHEMES):
            raise InputError(f"media {v[:120]!r}: the scheme {v.split('://', 1)[0]!r} is not read",
                             "media are paths, s3:// gs:// az:// objects or http(s):// URLs",
                             stage="catalog", error="bad_uri")
        return v
    if ":" in v.split("/", 1)[0] and not os.path.isabs(v):  # mailto:, javascript:, C:
        raise InputError(f"media {v[:120]!r} is not a path or a URL", stage="catalog", error="bad_uri")
    if os.path.isabs(v):
        return os.path.normpath(v)
    if is_uri(base):
        return f"{base.rsplit('/', 1)[0]}/{v.lstrip('/')}"
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), v))


class CatalogMedia:
    """Reads a catalog's media wherever each lies (the ``media`` of its entries)."""

    def __init__(self, allow_hosts: Sequence[str] = (), storage_options: dict[str, str] | None = None,
                 http: dict[str, Any] | None = None) -> None:
        self.allow_hosts = tuple(allow_hosts)
        self.storage_options = dict(storage_options) if storage_options else None
        self.http_settings = dict(http or {})
        self._http: HttpMedia | None = None
        self._stores: dict[str, MediaStore] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"allow_hosts": self.allow_hosts, "storage_options": self.storage_options, "http": self.http_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["allow_hosts"], state["storage_options"], state["http"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"CatalogMedia(allow_hosts={list(self.allow_hosts)!r})"

    @property
    def http(self) -> HttpMedia:
        """The http(s) reader (made on first use)."""
        with self._lock:
            if self._http is None:
                self._http = HttpMedia(self.allow_hosts, **self.http_settings)
            return self._http

    def _store(self, uri: str) -> MediaStore:
        """The object store of ``uri``'s bucket (one per bucket)."""
        scheme, rest = uri.split("://", 1)
        root = f"{scheme}://{rest.split('/', 1)[0]}"
        with self._lock:
            if root not in self._stores:
                self._stores[root] = MediaStore(root, self.storage_options)
            return self._stores[root]

    def check(self, uri: str) -> None:
        """InputError when ``uri`` may not be read at all (an http host not on the allow-list): no request."""
        if is_http(uri):
            self.http.check(uri)

    def stat(self, uri: str) -> str:
        """A signature of the media at ``uri`` without reading it: size and mtime (and ETag) from the file
        system, the object store or an http HEAD. InputError when it is not there."""
        if is_http(uri):
            size, etag, mtime = self.http.stat(uri)
            return f"{size}:{mtime}:{etag}"
        if "://" in uri:
            size, etag, mtime = self._store(uri).head(uri)
            return f"{size}:{mtime}:{etag}"
        try:
            st = os.stat(uri)
        except OSError as e:
            raise InputError(f"media {uri!r} cannot be read: {e.strerror}", "check the path in the catalog row",
                             stage="catalog", error="not_found" if e.errno == errno.ENOENT else "unreadable") from e
        if not os.path.isfile(uri):
            raise InputError(f"media {uri!r} is not a file", stage="catalog", error="not_a_file")
        return f"{st.st_size}:{st.st_mtime_ns}"

    def read(self, uri: str, limit: int) -> bytes:
        """The bytes of the media at ``uri`` (InputError too_large above ``limit``)."""
        if is_http(uri):
            return self.http.read(uri, limit)
        if "://" in uri:
            return self._store(uri).read(uri, limit)
        with open(uri, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InputError(f"file is over the limit of {limit:,} bytes", error="too_large")
        return data

    def read_head(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the media."""
        if is_http(uri):
            return self.http.read_head(uri, limit)
        if "://" in uri:
            return self._store(uri).read_head(uri, limit)
        with open(uri, "rb") as f:
            return f.read(limit + 1)

    def digest(self, uri: str) -> str:
        """The content hash of the media (the same as ``object_media.file_digest`` of its bytes)."""
        if is_http(uri):
            return self.http.digest(uri)
        if "://" in uri:
            return self._store(uri).digest(uri)
        return file_digest(uri)

    @contextmanager
    def local_copy(self, uri: str, limit: int | None = None) -> Iterator[str]:
        """A local file holding the media (a temporary copy of a remote one, deleted on exit)."""
        if is_http(uri):
            with self.http.local_copy(uri, limit) as tmp:
                yield tmp
        elif "://" in uri:
            with self._store(uri).local_copy(uri, limit) as tmp:
                yield tmp
        else:
            yield uri
