"""A temporary file for media that a decoder needs on disk (a download, a tar member): made with the
media's extension, deleted on exit whatever happens."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO


@contextmanager
def temp_copy(ext: str, fill: Callable[[BinaryIO], object]) -> Iterator[str]:
    """The path of a temporary file that ``fill`` wrote (and that is closed), deleted at the end. ``ext``
    is kept when it looks like an extension (a dot and up to 15 word characters)."""
    ext = ext if re.fullmatch(r"\.\w{1,15}", ext) else ""
    fd, path = tempfile.mkstemp(prefix="pinembed-", suffix=ext)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
