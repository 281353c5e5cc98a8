"""Motion pins: animated GIF, WebP, APNG and AVIF files, sampled like videos.

An animation is decoded in the run's decode workers like any image file (``picture_decode.read_picture``:
frame times from the frames' own durations, the video kind's sample times, at most ``--fps`` a
second and ``--max-frames``, each time showing the frame on screen then). The pin vector pools the
non-blank frames and every frame is kept as a segment with its time, so results carry ``best_t_s`` as
videos do. A single-frame file stays an image (the image kind hands over only animations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from pinembed.errors import InputError

from ..read import Item, Part, decoder_warning
from ..video_decode import is_blank
from .base import FramesKind, digest

if TYPE_CHECKING:
    from ..entry import Entry
    from ..picture_decode import Picture
    from ..read import Reader


class MotionKind(FramesKind):
    name = "motion"
    extensions = frozenset()  # claimed by content: the image kind hands animated files over

    def read(self, reader: Reader, entry: Entry) -> Item:
        data = reader.read_bytes(entry.path, entry.size, entry.media)
        pic = reader.picture(data, entry.file)
        if not pic.animated:
            raise InputError(f"not an animation: {pic.format or 'the file'} has a single frame", error="not_animated")
        return self.item(reader, entry, pic, data)

    def item(self, reader: Reader, entry: Entry, pic: Picture, data: bytes) -> Item:
        """The Item of a decoded animation (``data`` are its bytes, for the content hash)."""
        pixels = [reader.pre(Image.fromarray(f)) for f in pic.frames]
        parts = [Part(entry.uri, None, t, is_blank(f)) for f, t in zip(pic.frames, pic.times, strict=True)]
        d = pic.duration_s or 0.0
        item = Item(entry, pixels, parts, digest(data), pic.width, pic.height, d,
                    round(pic.n_frames / d, 3) if d > 0 else None, kind=self.name)
        item.warnings += decoder_warning(entry.uri, entry.pin_id, pic)
        return item


KIND = MotionKind()
