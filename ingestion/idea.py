"""Idea pins: a folder holding ``pin.json``.

    {"id": "optional-id", "title": "...", "description": "...",
     "pages": [{"media": "relative/path.jpg or .mp4", "text": "..."}]}    (1 to 20 pages)

Manifests are hostile input: a page's media must stay inside the pin's folder (absolute paths, ``..``
and symlinks that point out are refused), and every string is checked for type and length. On object
storage (``read_listed_manifest``) the pin's folder is its key prefix, and pages are looked up in the
listing: the same rules, no symlinks to follow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pinembed.errors import InputError

from .sidecar import clean_text, read_small

MANIFEST = "pin.json"
MAX_PAGES = 20
MAX_MANIFEST_BYTES = 1 << 20
MAX_ID_CHARS = 512
MAX_TEXT_CHARS = 10_000


@dataclass(frozen=True)
class Page:
    """One page of an idea pin."""

    index: int
    path: Path | str  # an object URI on object storage
    kind: str  # image | video
    text: str | None
    size: int
    mtime_ns: int
    etag: str = ""  # object storage: the object's ETag


@dataclass(frozen=True)
class PageProblem:
    """A page that cannot be used (the pin may still land with its other pages)."""

    index: int
    error: str
    message: str


@dataclass(frozen=True)
class Manifest:
    """A validated idea-pin manifest."""

    id: str | None
    title: str | None
    description: str | None
    pages: tuple[Page, ...]
    problems: tuple[PageProblem, ...]


def _text(doc: dict, key: str, limit: int = MAX_TEXT_CHARS) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InputError(f"pin.json: {key!r} must be a string", stage="manifest", error="bad_manifest")
    return clean_text(v, limit)


def read_manifest(folder: Path, image_exts: frozenset[str], video_exts: frozenset[str]) -> Manifest:
    """Parse and validate ``folder/pin.json``; InputError(stage="manifest") when the pin is unusable."""
    raw = read_small(folder / MANIFEST, MAX_MANIFEST_BYTES, "manifest", "pin.json")
    root = folder.resolve()
    return _parse(raw, lambda i, page: _page(i, page, _local(folder, root), image_exts, video_exts))


def read_listed_manifest(folder_uri: str, folder_rel: str, objects: Mapping[str, Any], media: Any,
                         image_exts: frozenset[str], video_exts: frozenset[str]) -> Manifest:
    """Parse and validate the ``pin.json`` of an idea pin on object storage: ``folder_uri`` is its key
    prefix (``folder_rel`` relative to the source prefix), ``objects`` the listing (relative key ->
    ``object_media.Listed``), ``media`` the source's MediaStore. Pages are looked up in the listing."""
    raw = read_small(f"{folder_uri}/{MANIFEST}", MAX_MANIFEST_BYTES, "manifest", "pin.json", media)

    def resolve(media_path: str, rel: PurePosixPath) -> tuple[str, str, int, int, str, bool]:
        key = f"{folder_rel}/{rel.as_posix()}"
        found = objects.get(key)
        if found is None:
            raise InputError(f"media {media_path!r} does not exist", error="missing_page")
        return f"{folder_uri}/{rel.as_posix()}", rel.name, found.size, found.mtime_ns, found.etag, True

    return _parse(raw, lambda i, page: _page(i, page, resolve, image_exts, video_exts))


#: (media as written, its relative path) -> (path or URI, file name, size, mtime_ns, etag, is a file)
Resolve = Callable[[str, PurePosixPath], tuple[Any, str, int, int, str, bool]]


def _parse(raw: bytes, page_of: Callable[[int, object], Page]) -> Manifest:
    try:
        doc = json.loads(raw.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"pin.json is not valid JSON: {e}", stage="manifest", error="bad_json") from e
    if not isinstance(doc, dict):
        raise InputError("pin.json must be a JSON object", stage="manifest", error="bad_manifest")
    pin_id = _text(doc, "id", MAX_ID_CHARS) if "id" in doc else None
    if pin_id is not None and (len(doc["id"]) > MAX_ID_CHARS or any(ord(c) < 32 for c in doc["id"])):
        raise InputError("pin.json: 'id' must be printable and at most 512 characters",
                         stage="manifest", error="bad_manifest")
    pages = doc.get("pages")
    if not isinstance(pages, list) or not pages:
        raise InputError("pin.json: 'pages' must be a non-empty list", stage="manifest", error="no_pages")
    if len(pages) > MAX_PAGES:
        raise InputError(f"pin.json has {len(pages)} pages; at most {MAX_PAGES} are allowed",
                         stage="manifest", error="too_many_pages")
    good: list[Page] = []
    problems: list[PageProblem] = []
    for i, page in enumerate(pages):
        try:
            good.append(page_of(i, page))
        except InputError as e:
            problems.append(PageProblem(i, e.error, e.message))
    return Manifest(pin_id, _text(doc, "title", 500), _text(doc, "description"), tuple(good), tuple(problems))


def _page(i: int, page: object, resolve: Resolve, image_exts: frozenset[str], video_exts: frozenset[str]) -> Page:
    def bad(error: str, message: str) -> InputError:
        return InputError(f"page {i}: {message}", stage="manifest", error=error)

    if not isinstance(page, dict):
        raise bad("bad_page", "each page must be an object with 'media'")
    media = page.get("media")
    if not isinstance(media, str) or not media.strip() or "\x00" in media or len(media) > 4096:
        raise bad("bad_page", "'media' must be a relative path")
    text = _text(page, "text")
    rel = PurePosixPath(media.replace("\\", "/"))
    if rel.is_absolute() or media.startswith(("/", "\\")) or (len(media) > 1 and media[1] == ":"):
        raise bad("path_escape", f"absolute media path {media!r} is refused")
    if ".." in rel.parts:
        raise bad("path_escape", f"media path {media!r} leaves the pin's folder")
    try:
        path, name, size, mtime_ns, etag, is_file = resolve(media, rel)
    except InputError as e:
        raise bad(e.error, e.message) from None
    ext = os.path.splitext(name)[1].lower()
    kind = "image" if ext in image_exts else "video" if ext in video_exts else None
    if kind is None:
        raise bad("unsupported_page", f"media {media!r} is not a supported image or video")
    if not is_file:
        raise bad("bad_page", f"media {media!r} is not a file")
    return Page(i, path, kind, text, size, mtime_ns, etag)


def _local(folder: Path, root: Path) -> Resolve:
    """Page resolution in a local folder: symlinks followed, and refused when they point out of it."""

    def resolve(media: str, rel: PurePosixPath) -> tuple[Path, str, int, int, str, bool]:
        target = folder.joinpath(*rel.parts)
        try:
            real = target.resolve(strict=True)
        except (OSError, RuntimeError):
            raise InputError(f"media {media!r} does not exist", error="missing_page") from None
        if not real.is_relative_to(root):
            raise InputError(f"media {media!r} points outside the pin's folder", error="path_escape")
        st = real.stat()
        return real, real.name, st.st_size, st.st_mtime_ns, "", real.is_file()

    return resolve
