"""Sidecar text next to a media file: ``photo.json`` ({"title", "description"}) or ``photo.txt``
(first line the title, the rest the description)."""

from __future__ import annotations

import json
from pathlib import Path

from pinembed.errors import InputError

MAX_SIDECAR_BYTES = 1 << 20
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 10_000


def read_sidecar(path: Path) -> tuple[str | None, str | None]:
    """(title, description) from a sidecar file; InputError(stage="sidecar") when it is unusable."""
    try:
        raw = path.read_bytes()[: MAX_SIDECAR_BYTES + 1]
    except OSError as e:
        raise InputError(f"cannot read sidecar: {e.strerror}", stage="sidecar", error="unreadable") from e
    if len(raw) > MAX_SIDECAR_BYTES:
        raise InputError(f"sidecar is over {MAX_SIDECAR_BYTES} bytes", stage="sidecar", error="too_large")
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if path.suffix.lower() == ".json":
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
    return _clean(title, MAX_TITLE_CHARS), _clean(desc, MAX_DESCRIPTION_CHARS)


def _clean(s: str | None, limit: int) -> str | None:
    if s is None:
        return None
    s = "".join(ch for ch in s if ch >= " " or ch in "\n\t").strip()
    return s[:limit] or None
