"""Read one entry into model-ready pixels plus what its pin row needs. The kind of the entry does the
reading (see ``kinds``); the Reader holds what every kind shares: limits, preprocessing, decoders."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pinembed.errors import InputError

from . import kinds
from .decode_pool import DecodePool
from .entry import Entry
from .image_decode import DEFAULT_MAX_PIXELS
from .ledger import failure_row, problem_rows
from .object_media import MediaStore, file_digest, local_file, read_file
from .picture_decode import Picture, PictureParams, read_picture
from .sidecar import read_sidecar
from .video_decode import VideoParams, is_blank

DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_MAX_VIDEO_BYTES = 4 << 30
DEFAULT_IMAGE_TIMEOUT_S = 30.0


@dataclass
class ReadLimits:
    """Guards against hostile input."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    image_timeout_s: float = DEFAULT_IMAGE_TIMEOUT_S  # one image file's decode, in a decode worker


@dataclass(frozen=True)
class Part:
    """What one preprocessed tensor is: a whole image, a frame, or (part of) an idea-pin page."""

    uri: str
    page: int | None = None
    t_s: float | None = None
    blank: bool = False


@dataclass
class Item:
    """A read entry: one preprocessed tensor per part, in order. ``kind`` is the kind it was read as
    (the entry's, or the one reading refined it to: an animated GIF is a motion pin)."""

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
    kind: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or self.entry.kind


@dataclass
class Reader:
    """Reads entries with one model's preprocessing; thread-safe."""

    preprocess: Callable[[Any], Any]
    limits: ReadLimits
    video: VideoParams
    draft_size: int | None
    pool: DecodePool | None = None  # decode workers: videos always, images too when given (else in this thread)
    device_decode: bool = False  # still JPEGs are left encoded, for the embed stage's batch decoder
    isolate_images: bool = True  # image files decode in ``pool`` (when there is one)

    def __call__(self, entry: Entry) -> Item:
        t0 = time.perf_counter()
        item = kinds.get(entry.kind).read(self, entry)
        if entry.sidecar is not None:
            try:
                item.title, item.description = read_sidecar(entry.sidecar, entry.media)
            except InputError as e:
                item.warnings.append(failure_row(str(entry.sidecar), entry.pin_id, e))
        elif entry.title is not None or entry.description is not None:  # a catalog row's or a shard's own text
            item.title, item.description = entry.title, entry.description
        if entry.notes and entry.kind != "idea":  # (the idea kind lands its pages' notes itself)
            item.warnings.extend(problem_rows(entry.notes))
        item.read_s = time.perf_counter() - t0
        return item

    def read_bytes(self, path: Path | str, size: int, media: MediaStore | None = None) -> bytes:
        """A media file's bytes (an object's, given its ``media`` store), refused above the byte limit
        (judged by the listed size, before anything is read)."""
        if size > self.limits.max_bytes:
            raise InputError(f"file is {size:,} bytes, over the limit of {self.limits.max_bytes:,}", error="too_large")
        try:
            return read_file(path, media, self.limits.max_bytes)
        except OSError as e:
            raise InputError(f"cannot read file: {e.strerror}", error="unreadable") from e

    def picture(self, data: bytes, name: str, still: bool = False) -> Picture:
        """Image bytes decoded, in a decode worker when the run has them (a crash or a hang there is
        an InputError for this file), else here; ``still``: the first frame even of an animation."""
        params = PictureParams(self.limits.max_pixels, self.draft_size, self.video.max_fps, self.video.max_frames,
                               still, self.limits.image_timeout_s)
        if self.pool is not None and self.isolate_images:
            return self.pool.picture(data, name, params)
        return read_picture(data, name, params)

    def image_pixels(self, path: Path | str, size: int, media: MediaStore | None = None
                     ) -> tuple[Any, bytes, Picture]:
        """(preprocessed pixels, the file's bytes, the decoded Picture) of a still image (the first
        frame of an animation)."""
        data = self.read_bytes(path, size, media)
        pic = self.picture(data, str(path), still=True)
        return self.pre(Image.fromarray(pic.frames[0])), data, pic

    def pre(self, image: Image.Image) -> Any:
        """The model's preprocessing of one RGB image."""
        return preprocess_image(self.preprocess, image)

    def frames(self, path: Path | str, size: int, uri: str, page: int | None = None, media: MediaStore | None = None):
        """Sampled frames of a video file (in a decode process) as (Frames, pixels, parts, content hash).
        An object (``media`` given) is downloaded to a temporary file first and deleted after."""
        if self.pool is None:
            raise InputError("video decoding is not available in this run", error="unsupported")
        if size > self.limits.max_video_bytes:
            raise InputError(f"video is {size:,} bytes, over the limit of {self.limits.max_video_bytes:,}",
                             error="too_large")
        if size == 0:
            raise InputError("empty file (0 bytes)", error="empty")
        try:
            with local_file(path, media, self.limits.max_video_bytes) as local:
                try:
                    frames = self.pool.decode(local, self.video)
                except InputError as e:
                    if media is not None:  # name the object, not its temporary copy
                        e.message = e.message.replace(local, uri)
                        e.args = (e.message,)
                    raise
                digest = file_digest(local)
        except OSError as e:
            raise InputError(f"cannot read file: {e.strerror}", error="unreadable") from e
        pixels, parts = [], []
        for f, t in zip(frames.frames, frames.times, strict=True):
            pixels.append(self.pre(Image.fromarray(f)))
            parts.append(Part(uri, page, t, is_blank(f)))
        return frames, pixels, parts, digest


def decoder_warning(uri: str, pin_id: str, decoded: Any) -> list[dict[str, Any]]:
    """The ledger warning of what the decoder said while decoding ``uri`` into ``decoded`` (a Picture or
    video Frames: their ``notes``); [] if nothing."""
    notes = getattr(decoded, "notes", None)
    if not notes:
        return []
    what = getattr(decoded, "format", None) or ("image" if isinstance(decoded, Picture) else "video")
    err = InputError(f"the {what} decoder warned: {'; '.join(notes)}", error="decoder_warning")
    return [failure_row(uri, pin_id, err)]


def preprocess_image(preprocess: Callable[[Any], Any], image: Image.Image) -> Any:
    """``preprocess(image)``; InputError (stage preprocess) when the model's transform fails on it."""
    try:
        return preprocess(image)
    except Exception as e:
        raise InputError(f"preprocessing failed: {e}", stage="preprocess", error=type(e).__name__) from e


def content_hash(entry: Entry) -> str | None:
    """The content hash a read of ``entry`` would record, computed without decoding anything (for
    finding moved and copied pins); None when a file cannot be read."""
    return kinds.get(entry.kind).content_hash(entry)
