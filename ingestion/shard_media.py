"""The media of one webdataset sample: a member of a tar shard, read in place by its byte range (a local
shard: seek and read; on object storage: a ranged GET through the source's ``MediaStore``). Nothing is
extracted, and only the member's own bytes are ever read.

A ``ShardMember`` is what an ``Entry`` found in a shard carries as its ``media``: it offers what the
kinds read an entry's media with (``read``, ``read_head``, ``digest``, ``local_copy``: see
``object_media.MediaStore``), with the same limit semantics (InputError ``too_large`` above the
limit, judged by the member's size before anything is read). It pickles small (the shard, the
byte range, the shard's version and the MediaStore's root and options), so an entry can be read in
another process or on another machine. A shard rewritten since it was walked is refused (OSError
ESTALE: its byte ranges would be other members' bytes), judged by the local shard's size and mtime,
or by the object's ETag.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pinembed.errors import InputError

from .object_media import MediaStore
from .temp_files import temp_copy

CHUNK = 8 << 20  # bytes per read of a large member (digest, local copy): one ranged GET each on object storage


@dataclass(frozen=True, slots=True)
class ShardMember:
    """One member of a tar shard: the shard's path or object URI, where the member's data starts, its
    size, the shard's version when it was walked, and (object storage) the source's MediaStore. The
    ``uri`` its methods take is the entry's (``shard#member``); the member is known by its range."""

    shard: str
    offset: int
    size: int
    version: str  # a local shard: "size:mtime_ns"; an object: its ETag ("" when the listing gave none)
    store: MediaStore | None = None

    def read(self, uri: str, limit: int) -> bytes:
        """The member's bytes; InputError(too_large) when it is over ``limit`` bytes (nothing is read)."""
        self._check(limit)
        return self._range(0, self.size)

    def read_head(self, uri: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the member (so that a caller sees it is over ``limit``)."""
        return self._range(0, min(self.size, limit + 1))

    def digest(self, uri: str) -> str:
        """The content hash of the member's bytes (blake2b, 16 bytes: ``kinds.base.digest`` of them)."""
        h = hashlib.blake2b(digest_size=16)
        for data in self._chunks():
            h.update(data)
        return h.hexdigest()

    @contextmanager
    def local_copy(self, uri: str, limit: int | None = None) -> Iterator[str]:
        """The member copied to a temporary file (the member's extension), deleted on exit; the video
        decoders need a file. InputError(too_large) above ``limit``, before anything is copied."""
        if limit is not None:
            self._check(limit)
        with temp_copy(os.path.splitext(uri)[1], lambda f: f.writelines(self._chunks())) as path:
            yield path

    def _check(self, limit: int) -> None:
        if self.size > limit:
            raise InputError(f"file is {self.size:,} bytes, over the limit of {limit:,}", error="too_large")

    def _chunks(self) -> Iterator[bytes]:
        for start in range(0, self.size, CHUNK):
            yield self._range(start, min(CHUNK, self.size - start))

    def _range(self, start: int, length: int) -> bytes:
        """``length`` bytes of the member from ``start``; OSError when the shard is gone, changed or
        shorter than the walk found it."""
        if self.store is not None:
            data = self.store.read_range(self.shard, self.offset + start, length, self.version)
        else:
            with open(self.shard, "rb") as f:
                s = os.fstat(f.fileno())
                if f"{s.st_size}:{s.st_mtime_ns}" != self.version:
                    raise OSError(errno.ESTALE, "the shard changed since it was walked; the next run reads it again",
                                  self.shard)
                f.seek(self.offset + start)
                data = f.read(length)
        if len(data) != length:
            raise OSError(errno.EIO, "the shard ends inside this member", self.shard)
        return data
