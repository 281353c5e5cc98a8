"""Sidecar text next to a media file: ``photo.json`` ({"title", "description"}) or ``photo.txt``
(first line the title, the rest the description)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pinembed.errors import InputError

from .object_media import read_head

MAX_SIDECAR_BYTES = 1 << 20
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 10_000


def read_small(path: Path | str, limit: int, stage: str, what: str, media: Any = None) -> bytes:
    """The bytes of a small text file (an object URI when ``media``, its MediaStore, is given), never
    reading more than ``limit`` + 1 bytes of a huge one."""
    try:
        raw = read_head(path, media, limit)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", stage=stage, error="unreadable") from e
    if len(raw) > limit:
        raise InputError(f"{what} is over {limit} bytes", stage=stage, error="too_large")
    return raw


def clean_text(s: str | None, limit: int) -> str | None:
    """Control characters dropped, whitespace trimmed, length capped; None when nothing is left."""
    if s is None:
        return None
    s = s.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from JSON escapes become "?"
    s = "".join(ch for ch in s if ch >= " " or ch in "\n\t").strip()
    return s[:limit] or None


def read_sidecar(path: Path | str, media: Any = None) -> tuple[str | None, str | None]:
    """(title, description) from a sidecar file (or object: ``media``); InputError(stage="sidecar")
    when it is unusable."""
    raw = read_small(path, MAX_SIDECAR_BYTES, "sidecar", "sidecar", media)
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if os.path.splitext(str(path))[1].lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"sidecar is not valid JSON: {e}", stage="sidecar", error="bad_json") from e
        if not isinstance(doc, dict):
            raise InputError("sidecar JSON must be an object with title/description",
                             stage="sidecar", error="bad_json")
        title, desc = doc.get("title"), doc.get("description")
        if not isinstance(title, str | None) or not isinstance(desc, str | None):
            raise InputError("sidecar title and description must be strings", stage="sidecar", error="bad_json")
    else:
        first, _, rest = text.strip().partition("\n")
        title, desc = first, rest
    return clean_text(title, MAX_TITLE_CHARS), clean_text(desc, MAX_DESCRIPTION_CHARS)
