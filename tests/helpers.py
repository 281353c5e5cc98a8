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
