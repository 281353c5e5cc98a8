"""What a search term that is not an existing file looks like: a path or URL typed wrong, or words.

A term counts as a path or URL when it has a URL scheme (``https://``), ends in a media extension
(``.jpg``, ``.mp4``, ...), starts like a path (``/``, ``./``, ``../``, ``~``), or holds a ``/`` or ``\\``
and no space. Anything else is words; ``--text`` always is.
"""

from __future__ import annotations

import re

from pinembed.ingestion import kinds

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(term: str) -> bool:
    """True for ``scheme://...`` (http, https, s3, gs, file, ...)."""
    return bool(_SCHEME.match(term))


def looks_like_path(term: str) -> bool:
    """True when ``term`` reads as a file path or URL rather than words (see the module doc)."""
    t = term.strip()
    if is_url(t) or t.lower().endswith(tuple(kinds.media_extensions())):
        return True
    if t.startswith(("/", "./", "../", "~", ".\\", "..\\")):
        return True
    return ("/" in t or "\\" in t) and not any(c.isspace() for c in t)
