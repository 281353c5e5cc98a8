"""Image decoding: every mode to RGB, EXIF orientation, guards against bad and hostile files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pinembed.errors import InputError
from pinembed.ingestion.image_decode import decode_image

from helpers import huge_png, save_image, truncated_jpeg, write


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode, fmt", [("P", "PNG"), ("L", "PNG"), ("1", "PNG"), ("CMYK", "JPEG"), ("RGB", "WEBP"),
                                        ("RGB", "BMP"), ("RGB", "TIFF"), ("L", "JPEG")])
def test_modes_become_rgb(mode, fmt):
    im = Image.new("RGB", (20, 10), (200, 20, 20)).convert(mode)
    d = decode_image(_bytes(im, fmt))
    assert d.image.mode == "RGB" and (d.width, d.height) == (20, 10)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(mode):
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0)).convert(mode)
    d = decode_image(_bytes(im, "PNG"))
    assert d.image.mode == "RGB" and d.image.getpixel((4, 4)) == (255, 255, 255)


def test_palette_transparency_is_composited_on_white():
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    d = decode_image(_bytes(im, "PNG", transparency=0))
    assert d.image.getpixel((4, 4)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    arr = np.full((6, 6), 32768, dtype=np.uint16)
    d = decode_image(_bytes(Image.fromarray(arr), "PNG"))
    r, g, b = d.image.getpixel((0, 0))
    assert r == g == b and 120 <= r <= 135  # mid-grey, not white


def test_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = decode_image(buf.getvalue()).image.getpixel((5, 5))
    assert r > 200 and b < 50


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 255, 255), (0, 0, 10, 10))  # white in the top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    d = decode_image(_bytes(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert (d.width, d.height) == (20, 40) and d.image.size == (20, 40)
    assert d.image.getpixel((16, 3))[0] > 200 and d.image.getpixel((3, 3))[0] < 60  # white corner: top-right


def test_draft_decodes_big_jpegs_smaller_but_reports_full_size():
    data = _bytes(Image.new("RGB", (2000, 1600), (9, 99, 199)), "JPEG")
    d = decode_image(data, draft_size=224)
    assert (d.width, d.height) == (2000, 1600) and 224 <= min(d.image.size) < 1600


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: write(p, b""), "empty"),
        (lambda p: write(p, "hello, I am text"), "not_an_image"),
        (truncated_jpeg, "truncated"),
        (lambda p: huge_png(p, 9000), "too_large"),
    ],
)
def test_bad_files_raise_input_error(tmp_path, make, error):
    path = make(tmp_path / "bad.png")
    with pytest.raises(InputError) as e:
        decode_image(path.read_bytes(), max_pixels=50_000_000)
    assert e.value.error == error and e.value.message


def test_pixel_limit_is_configurable(tmp_path):
    data = save_image(tmp_path / "a.png", size=(100, 100)).read_bytes()
    with pytest.raises(InputError, match="over the limit"):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).width == 100
