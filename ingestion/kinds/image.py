"""Still images: one file, one forward pass, one vector. An animated file (GIF, WebP, APNG, AVIF
sequence) found here is handed to the motion kind once its decoded bytes show more than one frame;
a multi-page TIFF, an MPO, a layered PSD or an ICO of several sizes is a still (see ``picture_decode.py``).
Decoding runs in the run's decode workers (``Reader.picture``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pinembed.embedders.device_preprocess import Encoded
from pinembed.errors import InputError

from ..image_decode import device_decodable, open_image, upright_size
from ..ledger import failure_row
from ..pooling import pool
from ..read import Item, Part, decoder_warning
from .base import Kind, digest, text_vector
from .motion import KIND as MOTION

if TYPE_CHECKING:
    from ..entry import Entry
    from ..options import IngestOptions
    from ..read import Reader
    from ..video_decode import VideoParams

#: What PIL (with pillow-heif) reads. HEIC/HEIF from phones, AVIF (and AVIF sequences), JPEG 2000, PNM,
#: MPO (what many cameras write), TGA, PSD (the composite), ICO (the largest size), DDS, PCX, SGI, QOI,
#: ICNS, CUR, DIB and BLP.
EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".tif", ".tiff",
    ".heic", ".heif", ".hif", ".avif", ".avifs", ".jp2", ".j2k", ".jpf", ".jpx", ".j2c", ".jpc",
    ".pnm", ".pbm", ".pgm", ".ppm", ".mpo", ".tga", ".icb", ".vda", ".vst", ".psd", ".ico", ".dds",
    ".pcx", ".sgi", ".bw", ".rgb", ".rgba", ".qoi", ".icns", ".cur", ".dib", ".blp",
})
#: Extensions whose files are usually animated: they take the motion kind's share of the read-ahead.
USUALLY_ANIMATED = frozenset({".gif", ".apng", ".avifs"})
#: Formats whose files are often misnamed by the tools that export them (an iPhone photo saved as .jpg).
_PHONE_FORMATS = {"HEIF": frozenset({".heic", ".heif", ".hif"}), "AVIF": frozenset({".avif", ".avifs"})}


class ImageKind(Kind):
    name = "image"
    extensions = EXTENSIONS

    def cost(self, entry: Entry, video: VideoParams) -> int:
        return video.max_frames if os.path.splitext(entry.file)[1].lower() in USUALLY_ANIMATED else 1

    def read(self, reader: Reader, entry: Entry) -> Item:
        data = reader.read_bytes(entry.path, entry.size, entry.media)
        if reader.device_decode:  # a still JPEG is decoded with its batch on the model's device
            im = open_image(data, reader.limits.max_pixels, entry.file)
            if device_decodable(im):
                w, h = upright_size(im)
                return Item(entry, [Encoded(data, reader.limits.max_pixels)], [Part(entry.uri)], digest(data), w, h)
        pic = reader.picture(data, entry.file)
        if pic.animated:
            return MOTION.item(reader, entry, pic, data)
        item = Item(entry, [reader.pre(Image.fromarray(pic.frames[0]))], [Part(entry.uri)], digest(data),
                    pic.width, pic.height)
        item.warnings += decoder_warning(entry.uri, entry.pin_id, pic)
        misnamed = misnamed_warning(entry, pic.format)
        if misnamed is not None:
            item.warnings.append(misnamed)
        return item

    def pool(self, item: Item, vectors: np.ndarray, texts: Any, opts: IngestOptions):
        return pool(vectors, text_vector(texts), opts.text_weight), []


def misnamed_warning(entry: Entry, fmt: str | None) -> dict[str, Any] | None:
    """A ledger warning for phone formats under another extension (HEIC data named .jpg): the pin
    lands, but other tools will fail on the file, so the user hears what it really is."""
    ext = os.path.splitext(entry.file)[1].lower()
    exts = _PHONE_FORMATS.get(fmt or "")
    if exts is None or ext in exts:
        return None
    right = sorted(exts)[0]
    err = InputError(f"the file is {'HEIC/HEIF' if fmt == 'HEIF' else fmt} data named {ext}; it was read as "
                     f"{fmt}, but other tools will go by the name", f"rename it to {right}", error="misnamed")
    return failure_row(entry.uri, entry.pin_id, err)


KIND = ImageKind()
