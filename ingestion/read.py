"""Read one entry (image, video or idea pin) into model-ready pixels plus what its pin row needs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pinembed.errors import InputError

from .decode_pool import DecodePool
from .discover import Entry
from .idea import MANIFEST, MAX_MANIFEST_BYTES
from .images import DEFAULT_MAX_PIXELS, decode_image
from .ledger import failure_row
from .sidecar import read_sidecar, read_small
from .video import VideoParams, is_blank

DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_MAX_VIDEO_BYTES = 4 << 30


@dataclass
class ReadLimits:
    """Guards against hostile input."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES


@dataclass(frozen=True)
class Part:
    """What one preprocessed tensor is: a whole image, a video frame, or (part of) an idea-pin page."""

    uri: str
    page: int | None = None
    t_s: float | None = None
    blank: bool = False


@dataclass
class Item:
    """A read entry: one preprocessed tensor per part, in order."""

    entry: Entry
    pixels: list[Any]
    parts: list[Part]
    content_hash: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    title: str | None = None
    description: str | None = None
    texts: list[tuple[int | None, str]] = field(default_factory=list)  # idea pins: (page or None, text)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # ledger rows that do not stop the pin
    read_s: float = 0.0


@dataclass
class Reader:
    """Reads entries with one model's preprocessing; thread-safe."""

    preprocess: Callable[[Any], Any]
    limits: ReadLimits
    video: VideoParams
    draft_size: int | None
    pool: DecodePool | None = None

    def __call__(self, entry: Entry) -> Item:
        t0 = time.perf_counter()
        if entry.kind == "image":
            item = self._image(entry)
        elif entry.kind == "video":
            item = self._video(entry)
        else:
            item = self._idea(entry)
        if entry.sidecar is not None:
            try:
                item.title, item.description = read_sidecar(entry.sidecar)
            except InputError as e:
                item.warnings.append(failure_row(str(entry.sidecar), entry.pin_id, e))
        item.read_s = time.perf_counter() - t0
        return item

    def _image_pixels(self, path: Path, size: int) -> tuple[Any, bytes, int, int]:
        if size > self.limits.max_bytes:
            raise InputError(f"file is {size:,} bytes, over the limit of {self.limits.max_bytes:,}", error="too_large")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read file: {e.strerror}", error="unreadable") from e
        decoded = decode_image(data, self.limits.max_pixels, self.draft_size)
        return self._pre(decoded.image), data, decoded.width, decoded.height

    def _pre(self, image: Image.Image) -> Any:
        try:
            return self.preprocess(image)
        except Exception as e:
            raise InputError(f"preprocessing failed: {e}", stage="preprocess", error=type(e).__name__) from e

    def _image(self, entry: Entry) -> Item:
        pixels, data, w, h = self._image_pixels(entry.path, entry.size)
        return Item(entry, [pixels], [Part(entry.uri)], _digest(data), w, h)

    def _frames(self, path: Path, size: int, uri: str, page: int | None = None):
        if self.pool is None:
            raise InputError("video decoding is not available in this run", error="unsupported")
        if size > self.limits.max_video_bytes:
            raise InputError(f"video is {size:,} bytes, over the limit of {self.limits.max_video_bytes:,}",
                             error="too_large")
        if size == 0:
            raise InputError("empty file (0 bytes)", error="empty")
        frames = self.pool.decode(str(path), self.video)
        pixels, parts = [], []
        for f, t in zip(frames.frames, frames.times, strict=True):
            pixels.append(self._pre(Image.fromarray(f)))
            parts.append(Part(uri, page, t, is_blank(f)))
        return frames, pixels, parts

    def _video(self, entry: Entry) -> Item:
        frames, pixels, parts = self._frames(entry.path, entry.size, entry.uri)
        return Item(entry, pixels, parts, _file_digest(entry.path), frames.width, frames.height,
                    frames.duration_s, frames.fps)

    def _idea(self, entry: Entry) -> Item:
        h = hashlib.blake2b(digest_size=16)
        h.update(read_small(entry.path / MANIFEST, MAX_MANIFEST_BYTES, "manifest", "pin.json"))
        item = Item(entry, [], [], "", title=entry.title, description=entry.description)
        for page in entry.pages:
            uri = str(page.path)
            try:
                if page.kind == "image":
                    pixels, data, w, hh = self._image_pixels(page.path, page.size)
                    item.pixels.append(pixels)
                    item.parts.append(Part(uri, page.index))
                    h.update(data)
                else:
                    _, pixels, parts = self._frames(page.path, page.size, uri, page.index)
                    item.pixels.extend(pixels)
                    item.parts.extend(parts)
                    h.update(_file_digest(page.path).encode())
            except InputError as e:
                item.warnings.append(failure_row(uri, entry.pin_id, e))
                continue
            if page.text:
                item.texts.append((page.index, page.text))
        if not item.pixels:
            err = InputError("idea pin has no usable pages (see the page rows in the ledger)",
                             error="no_usable_pages", stage="read")
            err.warnings = item.warnings  # the pages' own reasons go to the ledger too
            raise err
        head = ". ".join(filter(None, (entry.title, entry.description)))
        if head:
            item.texts.insert(0, (None, head))
        item.content_hash = h.hexdigest()
        return item


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def content_hash(entry: Entry) -> str | None:
    """The content hash a read of ``entry`` would record, computed without decoding anything (for
    finding moved and copied pins); None when a file cannot be read."""
    try:
        if entry.kind != "idea":
            return _file_digest(entry.path)
        h = hashlib.blake2b(digest_size=16)
        h.update(read_small(entry.path / MANIFEST, MAX_MANIFEST_BYTES, "manifest", "pin.json"))
        for page in entry.pages:
            h.update(page.path.read_bytes() if page.kind == "image" else _file_digest(page.path).encode())
        return h.hexdigest()
    except (OSError, InputError):
        return None
