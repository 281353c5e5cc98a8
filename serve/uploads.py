"""Uploaded images of one request (and the form they come in), decoded under a budget: every image's size is read from its header
first, and the request is refused (413) when their pixels together pass ``max_request_pixels``, before
any is decoded. Then each is decoded in turn at a reduced size, as ingestion does: JPEGs in draft mode
at the model's input side, other formats shrunk by an integer factor right after decoding, so the
pictures held until the model runs are small (16 camera photos do not take gigabytes). One picture
is decoded at a time in the whole server (uploads, previews and image thumbnails alike): the memory
of decoding is that of the largest picture allowed, whatever the number of requests."""

from __future__ import annotations

import threading
from typing import Any

from pinembed.ingestion.image_decode import decode_opened, open_image

from .errors import ApiError, bad_request
from .work import acquire, check

_decoding = threading.Lock()  # one picture decoded at a time (waited for no longer than a request's time)


async def read_form(request: Any, max_files: int) -> Any:
    """The request's multipart form (at most ``max_files`` files, 200 fields of 64 kB); 400 when it is
    malformed."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    try:
        return await request.form(max_files=max_files, max_fields=200, max_part_size=64 * 1024)
    except MultiPartException as e:
        raise bad_request(f"cannot read the form: {e.message}") from None
    except HTTPException as e:  # starlette's own wrapping of a multipart error
        raise bad_request(f"cannot read the form: {e.detail}") from None
    except (ValueError, AssertionError, KeyError) as e:  # malformed multipart framing
        raise bad_request(f"cannot read the form: {str(e)[:200] or type(e).__name__}") from None


def opened(images: list[bytes], max_pixels: int, max_request_pixels: int) -> list[Any]:
    """The images opened (headers only; InputError 415/413 for one that is not an image or too large),
    ApiError 413 when their pixels together are over ``max_request_pixels``."""
    ims = [open_image(data, max_pixels) for data in images]
    total = sum(im.size[0] * im.size[1] for im in ims)
    if total > max_request_pixels:
        raise ApiError(413, "images_too_large",
                       f"the {len(ims)} uploaded images have {total:,} pixels in all, over the limit of "
                       f"{max_request_pixels:,} a request", "send fewer or smaller images")
    return ims


def decoded(ims: list[Any], side: int) -> list[Any]:
    """RGB pictures of images from ``opened``, one at a time (the request's deadline is checked between
    them), each no smaller than ``side`` on its short side unless it was smaller already."""
    out = []
    for i, im in enumerate(ims):
        check()
        out.append(decode(im, side))
        ims[i] = None  # the decoded file is let go at once
    return out


def decode(im: Any, side: int) -> Any:
    """One opened image decoded (upright, RGB) at a reduced size: no smaller than ``side`` on its short
    side unless it was smaller already. InputError when it is corrupt."""
    acquire(_decoding)
    try:
        pic = decode_opened(im, draft_size=side).image
        factor = min(pic.size) // (2 * side)
        return pic.reduce(factor) if factor >= 2 else pic
    finally:
        _decoding.release()
