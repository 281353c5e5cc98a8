"""Videos: uniform frame sampling (at most ``max_fps`` frames a second, capped at ``max_frames``),
decoded with decord at reduced size, and near-blank frame detection.

``decode_video`` runs inside a decode worker process (see ``decode_pool.py``), so a decoder that hangs
or crashes costs one ledger row, never the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinembed.errors import InputError

DEFAULT_MAX_VIDEO_PIXELS = 7680 * 4320  # 8K UHD per frame
BLANK_STD = 4.0  # luminance standard deviation (0-255) under which a frame counts as blank


@dataclass(frozen=True)
class VideoParams:
    """How videos are sampled and guarded."""

    max_fps: float = 1.0
    max_frames: int = 12
    target_side: int = 224  # decode so the shorter side is about this (never upscaled)
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS
    timeout_s: float = 60.0


@dataclass
class Frames:
    """Sampled frames of one video."""

    frames: np.ndarray  # (n, h, w, 3) uint8
    times: list[float]  # seconds
    width: int  # of the original
    height: int
    duration_s: float
    fps: float
    notes: list[str] = field(default_factory=list)  # what the decoder warned about (set by the decode worker)


def sample_times(duration_s: float, max_fps: float = 1.0, max_frames: int = 12) -> list[float]:
    """Uniform sample times: n = clamp(floor(duration * max_fps), 1, max_frames) frames at the middle of
    n equal spans of the clip (0.5 s -> [0.25]; 10 s -> 0.5, 1.5, ..., 9.5; 5 min -> 12 frames)."""
    if not duration_s or duration_s <= 0 or not math.isfinite(duration_s):
        return [0.0]
    n = max(1, min(max_frames, math.floor(duration_s * max_fps + 1e-9)))
    span = duration_s / n
    return [round((i + 0.5) * span, 6) for i in range(n)]


def frame_indices(times: list[float], fps: float, n_frames: int) -> list[int]:
    """The frame shown at each time (clamped to the clip)."""
    return [min(max(0, int(t * fps)), n_frames - 1) for t in times]


def reduced_size(width: int, height: int, target_side: int) -> tuple[int, int]:
    """Decode size with the shorter side at ``target_side`` (even numbers, aspect kept, never upscaled)."""
    short = min(width, height)
    if short <= target_side:
        return width, height
    scale = target_side / short
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def is_blank(frame: np.ndarray, threshold: float = BLANK_STD) -> bool:
    """True for an almost uniform frame (black openings, fades, a flat colour card)."""
    small = frame[:: max(1, frame.shape[0] // 64), :: max(1, frame.shape[1] // 64)].astype(np.float32)
    luma = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(luma.std()) < threshold


def probe(path: str) -> tuple[int, int, str]:
    """(width, height, codec) of the first video stream, from the container headers (no decoding)."""
    import av

    try:
        with av.open(path) as c:
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams}) or ["none"]
                raise InputError(f"no video stream (streams: {', '.join(kinds)})", error="no_video_stream")
            stream = c.streams.video[0]
            ctx = stream.codec_context
            if ctx is None:  # the container names a codec that no decoder here knows
                tag = getattr(stream, "codec_tag", None) or "unknown"
                raise InputError(f"no decoder for this video's codec ({tag})", error="undecodable")
            return int(ctx.width or 0), int(ctx.height or 0), str(ctx.name or "unknown")
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"not a readable video: {_first_line(e)}", error="corrupt") from e


#: Set by the decode worker, a process that never loads torch.
IN_DECODE_WORKER = False


def _decord():
    """decord, imported safely: decord2 bundles NVBLAS, and when it loads before torch in one process
    torch's matrix products go to NVBLAS and crash ("[NVBLAS] CPU Blas library need to be provided").
    Outside the decode worker, torch is therefore loaded first."""
    if not IN_DECODE_WORKER:
        import torch  # noqa: F401
    import decord

    return decord


@dataclass
class _Opened:
    """A video opened for reading: decord's reader at the reduced size, and what the probe found."""

    reader: Any
    n_frames: int
    fps: float
    width: int
    height: int
    w: int
    h: int
    codec: str


def _open(path: str, max_pixels: int, target_side: int) -> _Opened:
    """Probe and check a video (size, pixel limit) and open decord's reader with the shorter side at
    most ``target_side``; InputError on anything unusable."""
    decord = _decord()

    width, height, codec = probe(path)
    if width <= 0 or height <= 0:
        raise InputError(f"video stream has no size ({width}x{height}, codec {codec})", error="corrupt")
    if width * height > max_pixels:
        raise InputError(
            f"video frames are {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
            "raise --max-video-pixels if such videos are expected",
            error="too_large",
        )
    w, h = reduced_size(width, height, target_side)
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), width=w, height=h, num_threads=1)
        n_frames, fps = len(vr), float(vr.get_avg_fps() or 0.0)
    except Exception as e:
        raise InputError(f"cannot decode {codec} video: {_first_line(e)}", error="undecodable") from e
    if n_frames <= 0:
        raise InputError("video has no frames", error="empty")
    fps = fps if fps > 0 and math.isfinite(fps) else 25.0
    return _Opened(vr, n_frames, fps, width, height, w, h, codec)


def decode_video(path: str, params: VideoParams) -> Frames:
    """Probe, check and sample one video; InputError on anything unusable."""
    v = _open(path, params.max_pixels, params.target_side)
    vr, n_frames, fps, width, height, w, h, codec = v.reader, v.n_frames, v.fps, v.width, v.height, v.w, v.h, v.codec
    duration = n_frames / fps
    times = sample_times(duration, params.max_fps, params.max_frames)
    idx = frame_indices(times, fps, n_frames)
    try:
        frames = vr.get_batch(idx).asnumpy()
    except Exception as e:
        # decord fails on some streams that FFmpeg itself reads (e.g. frames narrower than 64 px):
        # sample the same frame indices with PyAV before calling the file broken.
        frames = _decode_pyav(path, idx, fps, w, h)
        if frames is None:
            raise InputError(f"cannot decode frames of {codec} video (truncated or corrupt): {_first_line(e)}",
                             error="truncated") from e
    if frames.ndim != 4 or frames.shape[0] != len(idx):
        raise InputError(f"decoder returned {frames.shape[0] if frames.ndim == 4 else 0} of {len(idx)} frames",
                         error="truncated")
    return Frames(np.ascontiguousarray(frames), [round(i / fps, 3) for i in idx], width, height,
                  round(duration, 3), round(fps, 3))


def frame_at(path: str, t_s: float | None, target_side: int = 512,
             max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> tuple[np.ndarray, float]:
    """One RGB frame (h, w, 3) of a video at ``t_s`` seconds (None: the middle), decoded with the
    shorter side at most ``target_side``, and the time it was shown (clamped to the clip). The same
    probe and pixel guard as ``decode_video``; InputError on anything unusable."""
    v = _open(path, max_pixels, target_side)
    vr, n_frames, fps, w, h, codec = v.reader, v.n_frames, v.fps, v.w, v.h, v.codec
    t = n_frames / fps / 2 if t_s is None or not math.isfinite(t_s) else t_s
    [i] = frame_indices([t], fps, n_frames)
    try:
        frame = vr[i].asnumpy()
    except Exception as e:
        frames = _decode_pyav(path, [i], fps, w, h)
        if frames is None:
            raise InputError(f"cannot decode a frame of {codec} video: {_first_line(e)}", error="truncated") from e
        frame = frames[0]
    return np.ascontiguousarray(frame), round(i / fps, 3)


def _decode_pyav(path: str, indices: list[int], fps: float, w: int, h: int) -> np.ndarray | None:
    """The frames at ``indices`` decoded in one pass with PyAV, or None when it fails too."""
    import av

    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(c.decode(stream)):
                if i in wanted:
                    got[i] = frame.to_ndarray(width=w, height=h, format="rgb24")
                    if len(got) == len(wanted):
                        break
    except Exception:
        return None
    if len(got) != len(wanted):
        return None
    return np.stack([got[i] for i in indices])


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = next((ln for ln in reversed(text) if "ERROR" in ln or "rror" in ln), text[0] if text else "")
    return (msg or type(e).__name__)[:300]
