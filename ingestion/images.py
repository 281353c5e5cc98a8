"""Decoding images with PIL: EXIF orientation, every mode to RGB, a decompression-bomb guard."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pinembed.errors import InputError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image


@dataclass
class Decoded:
    """An RGB image and the size of the original (after orientation)."""

    image: Image.Image
    width: int
    height: int


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None) -> Decoded:
    """Decode image bytes to an upright RGB PIL image.

    ``draft_size`` lets JPEG decoding run at a reduced scale (no smaller than that side), which is
    several times faster for camera-sized photos that the model shrinks anyway. Raises InputError.
    """
    if not data:
        raise InputError("empty file (0 bytes)", error="empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise InputError(f"image too large to decode safely: {e}", error="too_large") from e
    except UnidentifiedImageError as e:
        raise InputError("not an image: the format is not recognised", error="not_an_image") from e
    except Exception as e:
        raise InputError(f"corrupt image header: {e}", error="corrupt") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InputError(f"image has no pixels ({w}x{h})", error="corrupt")
    if w * h > max_pixels:
        raise InputError(
            f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}",
            "raise --max-pixels if such images are expected",
            error="too_large",
        )
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    if orientation in _SWAPS_AXES:
        w, h = h, w
    try:
        if draft_size and im.format == "JPEG":
            im.draft("RGB", (draft_size, draft_size))
        im.load()
    except Exception as e:
        raise InputError(f"truncated or corrupt image data: {e}", error="truncated") from e
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:
        pass  # a broken EXIF block leaves the image as stored
    return Decoded(to_rgb(im), w, h)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: transparency over white, 16-bit and float scaled to 8 bits."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
            arr, top = arr - lo, max(hi - lo, 1e-12)
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
