"""Idea pins: a folder holding ``pin.json``.

    {"id": "optional-id", "title": "...", "description": "...",
     "pages": [{"media": "relative/path.jpg or .mp4", "text": "..."}]}    (1 to 20 pages)

Manifests are hostile input: a page's media must stay inside the pin's folder (absolute paths, ``..``
and symlinks that point out are refused), and every string is checked for type and length.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
    path: Path
    kind: str  # image | video
    text: str | None
    size: int
    mtime_ns: int


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
    root = folder.resolve()
    good: list[Page] = []
    problems: list[PageProblem] = []
    for i, page in enumerate(pages):
        try:
            good.append(_page(i, page, folder, root, image_exts, video_exts))
        except InputError as e:
            problems.append(PageProblem(i, e.error, e.message))
    return Manifest(pin_id, _text(doc, "title", 500), _text(doc, "description"), tuple(good), tuple(problems))


def _page(i: int, page: object, folder: Path, root: Path, image_exts: frozenset[str],
          video_exts: frozenset[str]) -> Page:
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
    target = folder.joinpath(*rel.parts)
    try:
        real = target.resolve(strict=True)
    except (OSError, RuntimeError):
        raise bad("missing_page", f"media {media!r} does not exist") from None
    if not real.is_relative_to(root):
        raise bad("path_escape", f"media {media!r} points outside the pin's folder")
    ext = os.path.splitext(real.name)[1].lower()
    kind = "image" if ext in image_exts else "video" if ext in video_exts else None
    if kind is None:
        raise bad("unsupported_page", f"media {media!r} is not a supported image or video")
    st = real.stat()
    if not real.is_file():
        raise bad("bad_page", f"media {media!r} is not a file")
    return Page(i, real, kind, text, st.st_size, st.st_mtime_ns)
