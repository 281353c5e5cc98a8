"""Which videos a browser can play, read from the file's container and codec headers (PyAV, as
ingestion's ``video_decode.probe`` reads them; nothing is decoded, about a millisecond a file).

Browsers play H.264, HEVC (some), VP8, VP9 and AV1 in MP4/QuickTime, WebM or Matroska. MPEG-4 Part 2,
MPEG-2, WMV, ProRes, MJPEG and others, and AVI and other containers, do not: such a card shows its
best frame and says so. A playable verdict also carries the MIME type with its RFC 6381 ``codecs``
(``video/mp4; codecs="avc1.64001f"``) so that the page can ask the browser itself (``canPlayType``):
HEVC, for one, plays only where the browser has a decoder for it. Verdicts are cached by file
(path, size, modification time), so a file replaced in place is probed again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

#: H.264 profile name (as FFmpeg names it) -> profile_idc and constraint flags, two hex bytes each.
_AVC_PROFILES = {"Baseline": "4200", "Constrained Baseline": "42e0", "Main": "4d00", "Extended": "5800",
                 "High": "6400", "High 10": "6e00", "High 4:2:2": "7a00", "High 4:4:4 Predictive": "f400"}
_BROWSER_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
_WEBM_CODECS = frozenset({"vp8", "vp9", "av1"})


@dataclass(frozen=True)
class Playability:
    """Whether a browser may play a video file: ``playable``, the ``media_type`` to ask the browser
    about (None when not playable), the video ``codec`` and, when not playable, why."""

    playable: bool
    media_type: str | None
    codec: str | None
    reason: str | None = None

    def fields(self) -> dict[str, Any]:
        """The card fields: ``playable``, ``media_type`` and, when not playable, ``unplayable_reason``."""
        out: dict[str, Any] = {"playable": self.playable, "media_type": self.media_type}
        if not self.playable:
            out["unplayable_reason"] = self.reason
        return out


def probe(path: str) -> Playability:
    """The verdict for the video file ``path`` (from its headers)."""
    import av

    try:
        with av.open(path, metadata_errors="ignore") as c:
            if not c.streams.video:
                return Playability(False, None, None, "the file holds no video stream")
            ctx = c.streams.video[0].codec_context
            container = c.format.name or ""
            codec = str(ctx.name or "unknown") if ctx is not None else "unknown"
            return _verdict(container, codec, ctx, os.path.splitext(path)[1].lower())
    except Exception as e:  # an unreadable file: the browser cannot play it either
        return Playability(False, None, None, f"not a readable video ({type(e).__name__})")


def _verdict(container: str, codec: str, ctx: Any, ext: str) -> Playability:
    names = set(container.split(","))
    mime = None
    if "mp4" in names or "mov" in names:
        mime = "video/mp4"
    elif "webm" in names or "matroska" in names:
        mime = "video/webm" if codec in _WEBM_CODECS and ext != ".mkv" else "video/x-matroska"
    if mime is None or codec not in _BROWSER_CODECS:
        what = f"{_codec_name(codec)} video" if codec not in _BROWSER_CODECS else "video"
        where = f" in {_container_name(container)} files" if mime is None else ""
        return Playability(False, None, codec, f"browsers do not play {what}{where}")
    return Playability(True, f'{mime}; codecs="{_codecs_param(codec, ctx)}"', codec)


def _codecs_param(codec: str, ctx: Any) -> str:
    """The RFC 6381 codecs string of the video stream (profile, level and bit depth where known)."""
    profile = str(getattr(ctx, "profile", None) or "")
    level = getattr(ctx, "level", None)
    deep = "10" in str(getattr(ctx, "pix_fmt", None) or "")
    if codec == "h264":
        lv = level if isinstance(level, int) and 0 < level < 256 else 31
        return f"avc1.{_AVC_PROFILES.get(profile, '6400')}{lv:02x}"
    if codec == "hevc":
        return "hvc1.2.4.L123.B0" if "10" in profile or deep else "hvc1.1.6.L123.B0"
    if codec == "vp9":
        p = profile[-1] if profile[-1:].isdigit() else "0"
        return f"vp09.0{p}.10.{'10' if deep else '08'}"
    if codec == "av1":
        return f"av01.0.08M.{'10' if deep else '08'}"
    return codec  # vp8


def _codec_name(codec: str) -> str:
    return {"mpeg4": "MPEG-4 Part 2", "msmpeg4v2": "MS MPEG-4 v2", "msmpeg4v3": "MS MPEG-4 v3 (DivX 3)",
            "mpeg2video": "MPEG-2", "mpeg1video": "MPEG-1", "wmv1": "WMV", "wmv2": "WMV", "wmv3": "WMV",
            "prores": "ProRes", "mjpeg": "Motion JPEG", "h263": "H.263"}.get(codec, codec)


def _container_name(container: str) -> str:
    return {"avi": "AVI", "asf": "ASF/WMV", "flv": "Flash video", "mpeg": "MPEG-PS", "mpegts": "MPEG-TS"}.get(
        container, container or "these")


class PlayCache:
    """Verdicts of video files by (path, size, mtime), least recently used first out."""

    def __init__(self, max_items: int = 16384) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int, int], Playability] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Playability:
        """The verdict for ``path`` (a file the media rule allows), probed when not cached."""
        try:
            st = os.stat(path)
        except OSError:
            return Playability(False, None, None, "the file is gone")
        key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        verdict = probe(path)
        with self._lock:
            self._items[key] = verdict
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return verdict
