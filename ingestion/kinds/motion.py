"""Motion pins: animated GIF, WebP and APNG files, sampled like videos.

An animation is read with PIL in the read thread (no decode process: these are small files whose
size is already bounded by the byte limit). Frame times come from the frames' own durations; the
sample times are the video kind's (at most ``--fps`` a second, at most ``--max-frames``), each time
showing the frame on screen then. The pin vector pools the non-blank frames and every frame is kept
as a segment with its time, so results carry ``best_t_s`` as videos do. A single-frame file stays an
image (the image kind hands over only when the bytes show several frames).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pinembed.errors import InputError

from ..images import to_rgb
from ..video import is_blank, sample_times
from .base import FramesKind, digest

if TYPE_CHECKING:
    from ..entry import Entry
    from ..read import Item, Reader

MAX_FRAMES_SCANNED = 5_000  # frames whose durations are read; a longer animation is cut there
MIN_FRAME_MS = 20  # browsers show frames of 0-10 ms for 100 ms; so do we
DEFAULT_FRAME_MS = 100


class MotionKind(FramesKind):
    name = "motion"
    extensions = frozenset()  # claimed by content: the image kind hands animated files over

    def read(self, reader: Reader, entry: Entry) -> Item:
        from ..images import open_image

        data = reader.read_bytes(entry.path, entry.size, entry.media)
        return self.read_opened(reader, entry, open_image(data, reader.limits.max_pixels), data)

    def read_opened(self, reader: Reader, entry: Entry, im: Image.Image, data: bytes) -> Item:
        """Sample the frames of an opened animation (``data`` are its bytes, for the content hash)."""
        from ..read import Item, Part

        starts, duration_s = frame_starts(im)
        times = sample_times(duration_s, reader.video.max_fps, reader.video.max_frames)
        wanted = [max(0, bisect.bisect_right(starts, t) - 1) for t in times]
        frames: dict[int, Image.Image] = {}
        try:
            for i in sorted(set(wanted)):
                im.seek(i)
                frames[i] = to_rgb(im.convert("RGBA"))  # seeking in order composes each frame on the last
        except Exception as e:
            raise InputError(f"truncated or corrupt animation (frame {len(frames)}): {e}", error="truncated") from e
        pixels, parts = [], []
        for i in wanted:
            frame = frames[i]
            pixels.append(reader.pre(frame))
            parts.append(Part(entry.uri, None, round(starts[i], 3), is_blank(np.asarray(frame))))
        n = len(starts)
        return Item(entry, pixels, parts, digest(data), im.size[0], im.size[1], round(duration_s, 3),
                    round(n / duration_s, 3) if duration_s > 0 else None, kind=self.name)



def frame_starts(im: Image.Image) -> tuple[list[float], float]:
    """Start time (seconds) of each frame and the animation's duration, from the frames' durations."""
    n = min(int(getattr(im, "n_frames", 1)), MAX_FRAMES_SCANNED)
    starts, t = [], 0.0
    try:
        for i in range(n):
            im.seek(i)
            ms = im.info.get("duration")
            if ms is None:  # WebP sets a frame's duration when the frame loads
                im.load()
                ms = im.info.get("duration", DEFAULT_FRAME_MS)
            ms = float(ms) if isinstance(ms, int | float) and ms == ms else DEFAULT_FRAME_MS
            starts.append(t)
            t += (DEFAULT_FRAME_MS if ms < MIN_FRAME_MS else ms) / 1000.0
        im.seek(0)
    except Exception as e:
        raise InputError(f"truncated or corrupt animation (frame {len(starts)}): {e}", error="truncated") from e
    return starts, t


KIND = MotionKind()
