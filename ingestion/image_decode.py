"""Decoding images with PIL: EXIF orientation, every mode to RGB, a decompression-bomb guard.

Formats: whatever PIL reads (JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, JPEG 2000, PNM, MPO, TGA, PSD, ICO,
DDS, PCX, SGI) plus HEIC/HEIF through pillow-heif. The format is taken from the bytes, never from the
file name; messages name it (and the name, when the two disagree).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pinembed.errors import InputError

try:  # HEIC/HEIF (the phone default) through libheif
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - a core dependency; kept importable without it
    pillow_heif = None

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000
#: Formats whose extra frames are an animation; in every other format (multi-page TIFF, MPO, PSD layers,
#: ICO sizes) a file is a still image: its first (or composite) picture.
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
#: JPEG-coded formats that take a reduced-scale draft decode.
_DRAFTABLE = frozenset({"JPEG", "MPO"})
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image

#: Leading bytes of formats that are not images (or not ones we read), for messages that say what a file is.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "a PDF document"), (b"PK\x03\x04", 0, "a ZIP archive (or an Office document)"),
    (b"<!DOCTYPE html", 0, "an HTML page"), (b"<html", 0, "an HTML page"), (b"<?xml", 0, "XML (an SVG?)"),
    (b"<svg", 0, "an SVG drawing (vector graphics are not read)"), (b"\x1f\x8b", 0, "a gzip archive"),
    (b"RIFF", 0, "a RIFF file (WAV or AVI?)"), (b"ID3", 0, "an MP3 audio file"), (b"OggS", 0, "an Ogg file"),
    (b"\x1aE\xdf\xa3", 0, "a Matroska/WebM video"), (b"8BPS", 0, "a Photoshop document"),
)
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF",
                b"avif": "AVIF", b"avis": "AVIF", b"isom": "an MP4 video", b"mp41": "an MP4 video",
                b"mp42": "an MP4 video", b"qt  ": "a QuickTime video", b"M4V ": "an MP4 video"}


@dataclass
class Decoded:
    """An RGB image and the size of the original (after orientation)."""

    image: Image.Image
    width: int
    height: int
    format: str | None = None  # what the bytes are (PIL's name: JPEG, PNG, HEIF, AVIF, ...)


def sniff(data: bytes) -> str | None:
    """What ``data`` looks like, from its first bytes ("HEIC", "a PDF document", ...), or None."""
    head = data[:64]
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "an ISO media file (MP4/HEIF family)")
    low = head.lstrip().lower()
    for magic, at, what in _SIGNATURES:
        if head[at:].startswith(magic) or low.startswith(magic.lower()):
            return what
    return None


def described(im: Image.Image, name: str = "") -> str:
    """What an opened image is, for messages: its format ("PSD"), and the file's extension when that
    names another format ("PSD data named .png")."""
    fmt = im.format or "image"
    ext = os.path.splitext(name)[1].lower()
    named = Image.registered_extensions().get(ext) if ext else None
    if named is None or named == fmt or {named, fmt} <= _DRAFTABLE:
        return fmt
    return f"{fmt} data named {ext}"


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "") -> Image.Image:
    """Open image bytes (headers only) and check their size; InputError for anything unusable
    (``name``, the file's name, makes messages say what the file is called as well as what it is)."""
    if not data:
        raise InputError("empty file (0 bytes)", error="empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise InputError(f"image too large to decode safely: {e}", error="too_large") from e
    except UnidentifiedImageError as e:
        what = sniff(data)
        raise InputError("not an image: " + (f"the data is {what}" if what else "the format is not recognised"),
                         error="not_an_image") from e
    except Exception as e:
        raise InputError(f"corrupt image header: {e}", error="corrupt") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InputError(f"{described(im, name)} image has no pixels ({w}x{h})", error="corrupt")
    if w * h > max_pixels:
        raise InputError(
            f"{described(im, name)} image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}",
            "raise --max-pixels if such images are expected",
            error="too_large",
        )
    return im


def is_animated(im: Image.Image) -> bool:
    """Whether an opened image is an animation: a GIF, APNG, WebP or AVIF sequence of more than one
    frame (the pages of a TIFF, the pictures of an MPO, the layers of a PSD are no animation)."""
    if im.format not in ANIMATED_FORMATS:
        return False
    try:
        return bool(getattr(im, "is_animated", False)) and int(getattr(im, "n_frames", 1)) > 1
    except Exception:
        return False


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None) -> Decoded:
    """Decode image bytes to an upright RGB PIL image (the first frame of an animation).

    ``draft_size`` lets JPEG decoding run at a reduced scale (no smaller than that side), which is
    several times faster for camera-sized photos that the model shrinks anyway. Raises InputError.
    """
    return decode_opened(open_image(data, max_pixels), draft_size)


def upright_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image once turned upright by its EXIF orientation (no decoding)."""
    w, h = im.size
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    return (h, w) if orientation in _SWAPS_AXES else (w, h)


def device_decodable(im: Image.Image) -> bool:
    """Whether the batch JPEG decoder takes this opened image: a baseline or progressive JPEG in RGB
    (YCbCr) or greyscale. CMYK/YCCK and other formats take the PIL path."""
    return im.format == "JPEG" and im.mode in ("RGB", "L")


def decode_opened(im: Image.Image, draft_size: int | None = None, name: str = "") -> Decoded:
    """Finish decoding an image from ``open_image``: orientation, pixels (of the first frame), RGB."""
    fmt = im.format
    w, h = upright_size(im)
    try:
        if draft_size and im.format in _DRAFTABLE:
            im.draft("RGB", (draft_size, draft_size))
        im.load()
    except Exception as e:
        raise InputError(f"truncated or corrupt {described(im, name)} data: {e}", error="truncated") from e
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:
        pass  # a broken EXIF block leaves the image as stored
    return Decoded(to_rgb(im), w, h, fmt)


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
