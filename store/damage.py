"""What a damaged table looks like in lance's errors (this module and ``faults`` alone read them).

A table whose data file was deleted reads as ``Not found: <db>/<table>.lance/data/<file>``; a
truncated data file as ``Invalid range a..b for object of size n``; a garbled manifest as ``file size
is too small``; a table whose manifests (``_versions/``) were removed is ``Table '<name>' was not
found`` although it is listed. ``what`` turns those into (table or None, what is wrong).
"""

from __future__ import annotations

import re

_MISSING = re.compile(r"Not found: (?:Wrapped error: Not found: )*(\S*?)([^/\s]+)\.lance/"
                      r"((?:data|_deletions|_indices|_versions|_transactions)/[^\s,]+?)(?=,|\s|$)")
_TABLE_GONE = re.compile(r"Table '([^']+)' was not found")
_TRUNCATED = re.compile(r"Invalid range \d+\.\.\d+ for object of size \d+|failed to fill whole buffer")
_GARBLED = ("file size is too small", "invalid protobuf", "failed to decode", "not a lance file",
            "corrupt file", "buffer is too small")


def what(text: str) -> tuple[str | None, str] | None:
    """(the table if the text names it, what is wrong) when ``text`` is a lance error about a damaged
    table; None otherwise."""
    missing = _MISSING.search(text)
    if missing:
        part = missing.group(3)
        kind = "manifest" if part.startswith("_versions/") else "data file" if part.startswith("data/") else "file"
        return missing.group(2), f"lacks its {kind} {part}"
    gone = _TABLE_GONE.search(text)
    if gone:
        return gone.group(1), "has no manifest left (its _versions/ folder is empty or gone)"
    low = text.lower()
    if "lance" not in low:  # the signatures below are lance's own errors, never a media decoder's
        return None
    if _TRUNCATED.search(text):
        return None, "has a truncated data file (shorter than its manifest says)"
    if any(s in low for s in _GARBLED):
        return None, "has an unreadable manifest or data file (truncated or garbled)"
    return None


def is_damage(text: str) -> bool:
    """Whether ``text`` is a lance error about a damaged table."""
    return what(text) is not None
