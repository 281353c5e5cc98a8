"""The media-kind registry: one module per kind owns its extensions, reading, read-ahead cost,
signature settings, pooling and segment rows, and ledger uris (see ``base.Kind``).

Discover, read, the pipeline, the store's schema helpers, query results and the CLI all dispatch
through this registry; a name that is not registered is an error, never a guess. Adding a kind is one
module in this package plus its name in ``NAMES`` (``motion.py`` is the example: animated images).

Importing this package is light (the CLI reads ``NAMES`` for ``--kind``): kind modules load on use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pinembed.errors import UsageError

if TYPE_CHECKING:
    from .base import Kind

#: Every kind, in the order extensions are claimed (the first kind claiming an extension wins).
NAMES: tuple[str, ...] = ("image", "motion", "video", "idea")

_loaded: dict[str, Kind] = {}


def get(name: str) -> Kind:
    """The kind called ``name``; UsageError for a name that is not registered."""
    kind = _loaded.get(name)
    if kind is None:
        if name not in NAMES:
            raise UsageError(f"unknown media kind {name!r}", f"the kinds are {', '.join(NAMES)}")
        kind = importlib.import_module(f"{__name__}.{name}").KIND
        _loaded[name] = kind
    return kind


def all_kinds() -> list[Kind]:
    """Every registered kind, in ``NAMES`` order."""
    return [get(n) for n in NAMES]


_by_ext: dict[str, Kind] = {}


def for_extension(ext: str) -> Kind | None:
    """The kind that a file with extension ``ext`` (lower case, with the dot) is read as, or None."""
    if not _by_ext:
        for k in reversed(all_kinds()):
            for e in k.extensions:
                _by_ext[e] = k
    return _by_ext.get(ext)


def media_extensions() -> frozenset[str]:
    """Every extension some kind reads."""
    for_extension("")
    return frozenset(_by_ext)
