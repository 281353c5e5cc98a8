"""JPEG thumbnails made on demand: an image, an animation's or a video's frame at a time, an idea
pin's page, and the preview of an uploaded image (HEIC, TIFF and other formats a browser cannot show).
Decoded with the project's own readers (``ingestion.image_decode``, ``ingestion.video_decode``), under the same
pixel limits as ingestion, and kept in memory by a least-recently-used cache bounded in bytes. The
cache key holds the pin's content hash, so a refreshed pin gets a new thumbnail."""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from pinembed.errors import InputError
from pinembed.ingestion.image_decode import open_image, to_rgb
from pinembed.ingestion.picture_decode import frame_starts
from pinembed.ingestion.video_decode import frame_at

from .media import MediaFile
from .uploads import decode, opened
from .work import Stopped, check

DEFAULT_SIZE = 256
MAX_SIZE = 512
MIN_SIZE = 16
MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024  # an image file larger than this is not read for a thumbnail


class ThumbCache:
    """Least-recently-used bytes, at most ``max_bytes`` in all (an entry larger than that is not kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The cached value of ``key``, or ``make()`` (called outside the lock), cached."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return data
            self.misses += 1
        data = make()
        if len(data) <= self.max_bytes:
            with self._lock:
                if key not in self._items:
                    self._items[key] = data
                    self._bytes += len(data)
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old)
        return data

    @property
    def size_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes


def make_thumb(media: MediaFile, t_s: float | None, size: int, max_pixels: int) -> bytes:
    """A JPEG of ``media`` with its longest side at most ``size`` (a frame at ``t_s`` for videos and
    animations: the middle when None). InputError when the file cannot be decoded."""
    from PIL import Image

    if media.media_kind == "video":
        frame, _ = frame_at(media.path, t_s, target_side=size)
        im = Image.fromarray(frame)
    else:
        im = _image(media, t_s, max_pixels, size)
    return _jpeg(im, size)


def preview_jpeg(data: bytes, size: int, max_pixels: int) -> bytes:
    """A JPEG of the uploaded image ``data`` (upright, its first frame), longest side at most ``size``:
    any format ingestion reads. InputError (415; 413 over ``max_pixels``) when it is not an image."""
    return _jpeg(decode(opened([data], max_pixels, max_pixels)[0], size), size)


def _jpeg(im, size: int) -> bytes:
    from PIL import Image

    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, optimize=True)
    return buf.getvalue()


def _image(media: MediaFile, t_s: float | None, max_pixels: int, size: int):
    """An image file's (upright, RGB) picture; for an animation the frame shown at ``t_s``."""
    if os.path.getsize(media.path) > MAX_IMAGE_FILE_BYTES:
        raise InputError(f"the image file is over {MAX_IMAGE_FILE_BYTES // (1 << 20)} MB", error="too_large")
    with open(media.path, "rb") as f:
        data = f.read()
    im = open_image(data, max_pixels)
    if media.media_kind == "motion" and t_s is not None:
        starts, _ = frame_starts(im)
        n = max(i for i, s in enumerate(starts) if s <= t_s) if starts and starts[0] <= t_s else 0
        try:
            for i in range(n + 1):  # in order: each frame is composed on the last
                check()  # a long animation stops here once its request is answered
                im.seek(i)
                frame = im.convert("RGBA")
        except Stopped:
            raise
        except Exception as e:
            raise InputError(f"cannot decode the animation's frame {n}: {e}", error="truncated") from e
        return to_rgb(frame)
    return decode(im, size)
