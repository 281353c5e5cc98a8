"""Video pins: frames sampled in the decode processes (see ``video_decode.py`` and ``decode_pool.py``), pooled
into one vector; every frame is kept as a segment with its time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..read import Item, decoder_warning
from .base import FramesKind

if TYPE_CHECKING:
    from ..entry import Entry
    from ..read import Reader

EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


class VideoKind(FramesKind):
    name = "video"
    extensions = EXTENSIONS

    def uses_decode_pool(self, entry: Entry) -> bool:
        return True

    def read(self, reader: Reader, entry: Entry) -> Item:
        frames, pixels, parts, digest = reader.frames(entry.path, entry.size, entry.uri, media=entry.media)
        item = Item(entry, pixels, parts, digest, frames.width, frames.height, frames.duration_s, frames.fps)
        item.warnings += decoder_warning(entry.uri, entry.pin_id, frames)
        return item


KIND = VideoKind()
