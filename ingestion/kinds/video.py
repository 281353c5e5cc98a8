"""Video pins: frames sampled in the decode processes (see ``video.py`` and ``decode_pool.py``), pooled
into one vector; every frame is kept as a segment with its time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..pooling import pool, pool_frames
from .base import Kind, frame_segments, text_vector

if TYPE_CHECKING:
    from ..entry import Entry
    from ..pipeline import IngestOptions
    from ..read import Item, Reader
    from ..video import VideoParams

EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


class VideoKind(Kind):
    name = "video"
    extensions = EXTENSIONS
    timed = True

    def cost(self, entry: Entry, video: VideoParams) -> int:
        return video.max_frames

    def uses_decode_pool(self, entry: Entry) -> bool:
        return True

    def settings(self, entry: Entry, opts: IngestOptions) -> list[str]:
        v = opts.video
        return [f"fps={v.max_fps:g},mf={v.max_frames}", *super().settings(entry, opts)]

    def read(self, reader: Reader, entry: Entry) -> Item:
        from ..read import Item

        frames, pixels, parts, digest = reader.frames(entry.path, entry.size, entry.uri, media=entry.media)
        return Item(entry, pixels, parts, digest, frames.width, frames.height,
                    frames.duration_s, frames.fps)

    def pool(self, item: Item, vectors: np.ndarray, texts: Any, opts: IngestOptions):
        blank = [p.blank for p in item.parts]
        return pool(pool_frames(vectors, blank), text_vector(texts), opts.text_weight), frame_segments(item, vectors)


KIND = VideoKind()
