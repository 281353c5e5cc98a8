"""Real media files for tests, written with PIL and the standard library."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image


def save_image(path: Path, colour=(200, 30, 30), size=(48, 40), fmt: str | None = None, mode: str = "RGB", **kw) -> Path:
    """Write a solid-colour image with a white square in one corner (so orientation is visible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, colour)
    im.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, format=fmt, **kw)
    return path


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half."""
    import numpy as np

    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def huge_png(path: Path, side: int = 9000) -> Path:
    """A small file that decodes to side*side pixels (1-bit, compresses to almost nothing)."""
    Image.new("1", (side, side)).save(path, "PNG")
    return path


def write_sidecar(path: Path, title: str, description: str = "") -> Path:
    """A JSON sidecar next to ``path`` (photo.jpg -> photo.json)."""
    side = path.with_suffix(".json")
    side.write_text(json.dumps({"title": title, "description": description}))
    return side


def write(path: Path, data: bytes | str) -> Path:
    """Write bytes or text and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def frame_at(i: int, fps: int, w: int, h: int, blank_until_s: float = 0.0):
    """The RGB frame ``i`` of a test video: a background whose hue turns with time and a moving bar."""
    import colorsys

    import numpy as np

    t = i / fps
    if t < blank_until_s:
        return np.zeros((h, w, 3), np.uint8)
    r, g, b = colorsys.hsv_to_rgb((t / 10.0) % 1.0, 0.9, 0.9)
    a = np.empty((h, w, 3), np.uint8)
    a[:] = (int(r * 255), int(g * 255), int(b * 255))
    x = int((t * 37) % max(1, w - w // 6))
    a[h // 4 : h // 2, x : x + w // 6] = 255
    return a


def write_video(path: Path, codec: str = "libx264", w: int = 160, h: int = 96, secs: float = 3.0, fps: int = 12,
                gop: int = 12, blank_until_s: float = 0.0) -> Path:
    """Encode a test video with PyAV (h264 .mp4, vp9 .webm, ...)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.thread_count = 1
        if codec == "libx264":
            s.options = {"preset": "ultrafast"}
        elif codec == "libvpx-vp9":
            s.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(max(1, int(secs * fps))):
            frame = av.VideoFrame.from_ndarray(frame_at(i, fps, w, h, blank_until_s), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path: Path) -> Path:
    """An .mp4 holding one AAC audio stream and no video."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        for _ in range(10):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate = 44100
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_idea(folder: Path, pages: list[dict], title: str = "An idea", description: str = "", **extra) -> Path:
    """An idea-pin folder with its pin.json (page media must be written by the caller)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pin.json").write_text(json.dumps({"title": title, "description": description, "pages": pages, **extra}))
    return folder


def write_psd(path: Path, colour=(200, 30, 30), size=(48, 40), layers: int = 0) -> Path:
    """A Photoshop document: an RGB composite (raw), and ``layers`` layer records (each a flat colour),
    written by hand (PIL reads PSD but does not write it)."""
    import struct

    w, h = size
    layer_block = b""
    if layers:
        recs, data = b"", b""
        for i in range(layers):
            recs += struct.pack(">iiiiH", 0, 0, h, w, 3)  # bounds, channels
            for ch in range(3):
                recs += struct.pack(">hI", ch, 2 + w * h)
            recs += b"8BIM" + b"norm" + bytes([255, 0, 0, 0])  # blend, opacity, clipping, flags, filler
            name = f"layer {i}".encode()
            pascal = bytes([len(name)]) + name
            pascal += b"\x00" * (-len(pascal) % 4)
            extra = struct.pack(">I", 0) + struct.pack(">I", 0) + pascal  # no mask, no blending ranges
            recs += struct.pack(">I", len(extra)) + extra
            for ch in range(3):
                data += struct.pack(">H", 0) + bytes([(colour[ch] + 40 * (i + 1)) % 256]) * (w * h)
        info = struct.pack(">h", layers) + recs + data
        info += b"\x00" * (len(info) % 2)
        layer_info = struct.pack(">I", len(info)) + info
        layer_block = layer_info + struct.pack(">I", 0)  # no global mask
    out = b"8BPS" + struct.pack(">H", 1) + b"\x00" * 6 + struct.pack(">HIIHH", 3, h, w, 8, 3)
    out += struct.pack(">I", 0) + struct.pack(">I", 0)  # no colour-mode data, no image resources
    out += struct.pack(">I", len(layer_block)) + layer_block
    out += struct.pack(">H", 0) + b"".join(bytes([c]) * (w * h) for c in colour)  # the composite, raw planes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path
