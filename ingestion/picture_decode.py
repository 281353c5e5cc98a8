"""Image bytes -> RGB pixels, still or animated: the job a decode worker runs for every image file and
every image page (``decode_pool.py``), so a decoder that crashes or hangs costs one ledger row.

- A **still** is the upright first image of the file: the composite of a PSD, the largest icon of an
  ICO, the first page of a multi-page TIFF, the first picture of an MPO (a camera's stereo pair or
  its preview), the only frame of a GIF.
- An **animation** (a GIF, APNG, WebP or AVIF sequence with more than one frame) is sampled like a
  video: frame start times from the frames' own durations (0-19 ms counts as 100 ms, as browsers
  do; at most ``MAX_FRAMES_SCANNED`` frames), the video sample times (``video_decode.sample_times``), and
  at each time the frame on screen then, composed in order.

Nothing here knows the model: the caller turns the pixels into model input.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pinembed.errors import InputError

from .image_decode import decode_opened, described, is_animated, open_image, to_rgb
from .video_decode import sample_times

MAX_FRAMES_SCANNED = 5_000  # frames whose durations are read; a longer animation is cut there
MIN_FRAME_MS = 20  # browsers show frames of 0-19 ms for 100 ms; so do we
DEFAULT_FRAME_MS = 100


@dataclass(frozen=True)
class PictureParams:
    """How one image file is decoded (plain data: it travels to a decode worker)."""

    max_pixels: int
    draft_size: int | None = None  # JPEGs decoded at a reduced scale no smaller than this side
    max_fps: float = 1.0  # animations: sampled like videos
    max_frames: int = 12
    still: bool = False  # the first frame only, even of an animation (an idea pin's image page)
    timeout_s: float = 30.0  # the decode worker's bound for this file


@dataclass
class Picture:
    """A decoded image file: one RGB array per sampled frame (one for a still)."""

    frames: list[np.ndarray]  # (h, w, 3) uint8 each
    width: int  # of the original, upright
    height: int
    format: str | None  # what the bytes are (PIL's name: JPEG, PNG, PSD, MPO, ...)
    animated: bool = False
    times: list[float] = field(default_factory=list)  # animations: start time of each sampled frame (s)
    duration_s: float | None = None
    n_frames: int = 1  # frames in the file (animations: those scanned)
    notes: list[str] = field(default_factory=list)  # what the decoder warned about (set by the worker)


def read_picture(data: bytes, name: str, params: PictureParams) -> Picture:
    """Decode image bytes (``name``: the file's name, for messages) into a Picture; InputError for
    anything unusable, naming the format the bytes really are."""
    im = open_image(data, params.max_pixels, name)
    if not params.still and is_animated(im):
        return _animation(im, name, params)
    d = decode_opened(im, params.draft_size, name)
    return Picture([np.asarray(d.image)], d.width, d.height, d.format)


def _animation(im: Image.Image, name: str, params: PictureParams) -> Picture:
    starts, duration_s = frame_starts(im, name)
    times = sample_times(duration_s, params.max_fps, params.max_frames)
    wanted = [max(0, bisect.bisect_right(starts, t) - 1) for t in times]
    frames: dict[int, np.ndarray] = {}
    try:
        for i in sorted(set(wanted)):
            im.seek(i)
            frames[i] = np.asarray(to_rgb(im.convert("RGBA")))  # seeking in order composes each frame on the last
    except Exception as e:
        raise InputError(f"truncated or corrupt {described(im, name)} animation (frame {len(frames)}): {e}",
                         error="truncated") from e
    return Picture([frames[i] for i in wanted], im.size[0], im.size[1], im.format, True,
                   [round(starts[i], 3) for i in wanted], round(duration_s, 3), len(starts))


def frame_starts(im: Image.Image, name: str = "") -> tuple[list[float], float]:
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
        raise InputError(f"truncated or corrupt {described(im, name)} animation (frame {len(starts)}): {e}",
                         error="truncated") from e
    return starts, t
