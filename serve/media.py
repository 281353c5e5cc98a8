"""Which file a request may read: only the stored file of a pin of the database (or of a page of an
idea pin), found by pin id. Nothing from the request becomes a path. The file must lie inside one of
the database's recorded source folders once symlinks are resolved (a symlink out of its source is
refused), and be a regular file. Media on object storage is not served (the page shows no preview)."""

from __future__ import annotations

import errno
import mimetypes
import os
import stat
from dataclasses import dataclass
from typing import Any

from pinembed.ingestion import kinds as kind_registry
from pinembed.ingestion.catalog import is_table

from .errors import ApiError, bad_request

#: Content types mimetypes may not know on every system.
_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".m4v": "video/mp4", ".mov": "video/quicktime",
          ".heic": "image/heic", ".heif": "image/heif", ".avif": "image/avif", ".webp": "image/webp",
          ".jp2": "image/jp2", ".pnm": "image/x-portable-anymap", ".pbm": "image/x-portable-bitmap",
          ".pgm": "image/x-portable-graymap", ".ppm": "image/x-portable-pixmap"}


@dataclass(frozen=True)
class MediaFile:
    """A file that may be served: its resolved path, what it is, and the pin it belongs to."""

    path: str
    media_kind: str  # image | motion | video (the kind of the file itself: an idea page is one of these)
    content_type: str
    pin_id: str
    pin_kind: str
    content_hash: str | None
    page: int | None = None


def resolve(pin: dict[str, Any], sources: list[dict[str, Any]], page: int | None = None) -> MediaFile:
    """The file of ``pin`` (a row of ``PinIndex.pin``), or of its page ``page`` (idea pins; default
    the first), checked against the source roots ``sources`` (``PinIndex.sources()``)."""
    uri, kind = pin.get("uri"), pin["kind"]
    if kind == "idea":
        pages = sorted((s for s in pin.get("segments", []) if s["kind"] == "page" and s.get("page") is not None),
                       key=lambda s: s["page"])
        if not pages:
            raise ApiError(404, "no_media", f"the idea pin {pin['pin_id']!r} has no pages with media")
        page = pages[0]["page"] if page is None else page
        seg = next((s for s in pages if s["page"] == page), None)
        if seg is None:
            raise ApiError(404, "no_such_page", f"the idea pin {pin['pin_id']!r} has no page {page}",
                           f"its pages are {', '.join(str(s['page']) for s in pages)}")
        uri = seg.get("uri")
    elif page is not None:
        raise bad_request("page applies to idea pins only", f"{pin['pin_id']!r} is a {kind} pin")
    if not isinstance(uri, str) or not uri:
        raise ApiError(404, "no_media", f"the pin {pin['pin_id']!r} has no stored file")
    if "://" in uri:
        raise ApiError(404, "no_media", "media on object storage is not served",
                       "the pin is listed, but its file is not read by this server")
    path = _inside_a_source(uri, sources)
    ext = os.path.splitext(uri)[1].lower()  # the pin's own name: a link's target may be named otherwise
    by_ext = kind_registry.for_extension(ext)
    if by_ext is None or by_ext.name == "idea":
        raise ApiError(404, "no_media", f"the pin's file {os.path.basename(path)!r} is not an image or a video")
    media_kind = by_ext.name if kind == "idea" else kind  # an animated .gif is a motion pin, by its content
    ctype = _TYPES.get(ext) or mimetypes.guess_type("x" + ext)[0] or "application/octet-stream"
    return MediaFile(path, media_kind, ctype, pin["pin_id"], kind, pin.get("content_hash"),
                     page if kind == "idea" else None)


def scrub(text: str, media: MediaFile) -> str:
    """``text`` (a decoder's message) naming the pin instead of the server's path of its file."""
    for path in sorted({media.path, os.path.realpath(media.path), os.path.dirname(media.path)}, key=len, reverse=True):
        if path and path != os.sep:
            text = text.replace(path, f"(the file of pin {media.pin_id!r})")
    return text


def _folder_of(root: str) -> str:
    """The folder a source's files are served from: the root, or for a catalog table (a file) its folder
    (media beside the catalog are served; media it names elsewhere are not)."""
    return os.path.dirname(root) if is_table(root) and os.path.isfile(root) else root


def _inside_a_source(uri: str, sources: list[dict[str, Any]]) -> str:
    """``uri`` resolved, when it lies inside a recorded source root (as recorded, or that root's real
    path) and its resolved path lies inside the real path of that same root, and it is a regular file;
    ApiError 404 otherwise. So a symlink (to a file, or a symlinked folder on the way) that stays inside
    its source is served, and one out of it is not: the rule ingestion follows (README, Symlinks)."""
    path = os.path.abspath(uri)
    roots = sorted({_folder_of(os.path.abspath(r["root"])) for r in sources if isinstance(r.get("root"), str)
                    and "://" not in r["root"]}, key=len, reverse=True)
    holders = [r for r in roots if _within(path, r) or _within(path, os.path.realpath(r))]
    if not holders:
        raise ApiError(404, "not_served", "the pin's file is not inside a source folder of the database",
                       "only files under the folders that were ingested are served (pinembed sources lists them)")
    real = os.path.realpath(path)
    if not any(_within(real, os.path.realpath(r)) for r in holders):
        raise ApiError(404, "not_served", "the pin's file is a symlink that points outside its source folder; "
                       "it is not served", "copy the file into the source folder instead of linking to it")
    try:
        st = os.stat(real)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ApiError(404, "not_served", "the pin's file is a symlink loop; it is not served",
                           "the next `pinembed refresh` removes the pin") from None
        raise ApiError(404, "file_missing", "the pin's file is gone from its source folder",
                       "the next `pinembed refresh` removes the pin") from None
    if not stat.S_ISREG(st.st_mode):
        raise ApiError(404, "not_served", "the pin's file is not a regular file")
    return real


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False
