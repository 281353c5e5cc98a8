"""The walk rules that folders (``discover.py``) and object-storage prefixes (``discover_prefix.py``)
share: pin ids from relative paths, which names are sidecars, what is skipped and why, and what an
idea pin's folder turns into (an entry, or problem rows).

Pin ids are the path relative to the source root with POSIX separators (optionally under a prefix):
stable across runs and readable. Names starting with a dot are skipped as hidden.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pinembed.errors import InputError

from . import kinds
from .entry import Discovery, Problem, Skip
from .idea import MANIFEST as IDEA_MANIFEST
from .idea import Manifest

SIDECAR_EXTS = (".json", ".txt")
#: A webdataset tar shard (``shards.py``): not a kind, a container whose samples are pins.
SHARD_EXT = ".tar"
TABLE_EXTS = (".parquet", ".csv", ".jsonl", ".ndjson")  # a catalog's files
#: Camera RAW files: not decoded (their embedded previews vary by maker); named as skipped.
RAW_EXTS = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                      ".raf", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".iiq", ".rwl"})


def pin_id(rel: str, prefix: str) -> str:
    """The pin id of a path relative to the source root (under the source's id ``prefix``)."""
    rel = rel.replace(os.sep, "/")
    return f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel


MAX_ID_CHARS = 512  # a pin id a catalog, a shard or a manifest gives


def checked_id(raw: object, what: str = "pin id") -> str:
    """A pin id given by a catalog row, a shard sample or a manifest, checked (ids are hostile input): a
    string (an integer is taken as its digits), not empty or only spaces, at most MAX_ID_CHARS
    characters, no control characters and valid UTF-8; InputError(error="bad_id") naming the problem."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise InputError(f"{what} must be a string, not {type(raw).__name__}", stage="discover", error="bad_id")
    if not raw.strip():
        raise InputError(f"{what} is empty", stage="discover", error="bad_id")
    if len(raw) > MAX_ID_CHARS:
        raise InputError(f"{what} is {len(raw)} characters; at most {MAX_ID_CHARS}", stage="discover", error="bad_id")
    if any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in raw):
        raise InputError(f"{what} {raw[:80]!r} holds a control character", stage="discover", error="bad_id")
    if not is_utf8(raw):
        raise InputError(f"{what} {raw[:80]!r} is not valid UTF-8", stage="discover", error="bad_id")
    return raw


def is_utf8(s: str) -> bool:
    """Whether ``s`` encodes as UTF-8 (a file name of undecodable bytes does not)."""
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def sidecar_names(names: Iterable[str]) -> set[str]:
    """The names in one folder that are sidecars: a ``.json`` or ``.txt`` beside media of the same stem."""
    split = {n: os.path.splitext(n) for n in names}
    media = kinds.media_extensions()
    media_stems = {stem for stem, ext in split.values() if ext.lower() in media}
    return {n for n, (stem, ext) in split.items() if ext.lower() in SIDECAR_EXTS and stem in media_stems}


def hidden_skip(path: str) -> Skip:
    """The skip of a name starting with a dot."""
    return Skip(path, "hidden", "hidden file or folder")


def unread_skip(path: str, ext: str) -> Skip:
    """The skip of a file no kind reads (``ext``: its extension, lower case): camera RAW or not media."""
    if ext in RAW_EXTS:
        return Skip(path, "camera_raw", f"camera RAW ({ext}) is not decoded; export a JPEG or HEIC of it "
                                        "into the folder to ingest it")
    return Skip(path, "not_media", f"not a media file ({ext or 'no extension'}): no kind reads it")


def database_skip(path: str) -> Skip:
    """The skip of a pin database found inside the source."""
    return Skip(path, "database", "the pin database itself (--db) lies inside the source; its files are not media")


def idea_pin_id(m: Manifest, folder_id: str, prefix: str) -> str:
    """An idea pin's id: the manifest's own ``id`` (under the prefix), else its folder's."""
    return pin_id(m.id, prefix) if m.id else folder_id


def idea_leftovers(found: Discovery, folder_uri: str, names: Iterable[str], used: set[str], pin: str,
                   sep: str) -> None:
    """Name as skipped the files in an idea pin's folder that are not its pages (hidden ones aside)."""
    for name in sorted(set(names) - used - {IDEA_MANIFEST}):
        if not name.startswith("."):
            found.skips.append(Skip(f"{folder_uri}{sep}{name}", "not_a_page",
                                    f"in idea pin {pin!r} but not one of its pages"))


def idea_notes(m: Manifest, uri: str, pin: str, found: Discovery) -> tuple[Problem, ...] | None:
    """The problems of an idea pin's unusable pages (noted on its entry), or None when it has no usable
    page at all: then they, and a ``no_usable_pages`` row for the pin, go to ``found.problems``."""
    notes = tuple(Problem(f"{uri}#page={p.index}", pin, p.error, p.message, "manifest") for p in m.problems)
    if not m.pages:
        found.problems.extend(notes)
        found.problems.append(Problem(uri, pin, "no_usable_pages", "idea pin has no usable pages", "manifest"))
        return None
    return notes
