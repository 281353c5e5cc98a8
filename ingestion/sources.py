"""Sources: each ingested root owns the pin ids under its prefix, and the database remembers it.

Cameras name every card ``IMG_0001.JPG``: without this, a second folder ingested into the same
database would take over the first folder's pins of the same name. So:

- the database records each source root with its id prefix (table ``sources``);
- a root already recorded keeps its prefix (``--id-prefix`` may be left out; another one is refused);
- a new root may not take a prefix that another root owns: the run refuses (exit 2) and names
  ``--id-prefix``;
- a pin id that a pin of another source holds (its stored uri lies outside this run's roots) is never
  overwritten: the file becomes a ledger row ``id_taken`` (this catches overlapping prefixes, and
  databases written before sources were recorded).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pinembed.errors import UsageError

from .entry import Entry, Problem
from .object_media import MediaStore
from .walk_rules import TABLE_EXTS


@dataclass(frozen=True)
class Source:
    """One source root and the prefix of its pin ids ("" for none)."""

    root: str
    prefix: str


def source_root(src: str | os.PathLike[str], storage_options: dict[str, str] | None, hint: str) -> str:
    """The absolute path of a source folder, or an object-storage prefix without its trailing slash;
    UsageError (with ``hint``) when it is not a folder, or a prefix holding no objects (for a cron job
    an unmounted share or a mistyped prefix must not read as "everything was deleted")."""
    if "://" in os.fspath(src):
        media = MediaStore(os.fspath(src), storage_options)
        media.check()
        return media.root
    root = os.path.abspath(os.fspath(src))
    if not os.path.isdir(root):
        if root.lower().endswith(TABLE_EXTS) and not os.path.exists(root):
            raise UsageError(f"catalog {root!r} does not exist", "check the path of the catalog file")
        raise UsageError(f"source folder {root!r} does not exist or is not a folder", hint)
    return root


def under(uri: str | None, roots: Sequence[str]) -> bool:
    """Whether ``uri`` (an absolute path, or an object URI) lies inside one of ``roots`` (folders, or
    object-storage prefixes: their separator is "/")."""
    return bool(uri) and any(uri == r or uri.startswith(r.rstrip(_sep(r)) + _sep(r)) for r in roots)


def owned(row: Mapping[str, Any], roots: Sequence[str]) -> bool:
    """Whether a stored pin (its ``source`` and ``uri``) belongs to one of ``roots``: its recorded source,
    or, for a pin written before pins recorded their source, its media lying under one of them."""
    source = row.get("source")
    return source in roots if source else under(row.get("uri"), roots)


def _sep(root: str) -> str:
    return "/" if "://" in root else os.sep


def norm_prefix(prefix: str | None) -> str:
    """A prefix as pin ids use it: no leading or trailing slashes."""
    return (prefix or "").strip("/")


def _describe(prefix: str) -> str:
    return f"under the prefix {prefix!r}" if prefix else "without a prefix"


def resolve(roots: Sequence[str], known: Mapping[str, str], id_prefix: str | None) -> list[Source]:
    """Each root with its prefix: the recorded one for a known root, else ``id_prefix`` (None: not
    given). UsageError when a prefix would be shared by two roots, or a known root asks for another."""
    owners = {p: r for r, p in known.items()}
    out: list[Source] = []
    for root in roots:
        if root in known:
            prefix = known[root]
            if id_prefix is not None and norm_prefix(id_prefix) != prefix:
                raise UsageError(
                    f"the source {root!r} is recorded in this database with pin ids {_describe(prefix)}; "
                    f"--id-prefix {id_prefix!r} would ingest every file again under new ids",
                    "leave out --id-prefix (a known source keeps its prefix), or use another --db",
                )
        else:
            prefix = norm_prefix(id_prefix)
            other = owners.get(prefix)
            if other is not None and other != root:
                name = os.path.basename(root.rstrip("/" if "://" in root else os.sep)) or "src2"
                raise UsageError(
                    f"pin ids {_describe(prefix)} already belong to the source {other!r}; ingesting "
                    f"{root!r} there would take over its pins of the same name (e.g. IMG_0001.JPG)",
                    f"give this source its own namespace: --id-prefix {name} (its pin ids become "
                    f"{name}/...); `pinembed sources --db DB` lists the sources",
                )
        owners[prefix] = root
        out.append(Source(root, prefix))
    return out


def claim_ids(entries: Sequence[Entry], stored: Mapping[str, Mapping[str, Any]], roots: Sequence[str]
              ) -> tuple[list[Entry], list[Problem]]:
    """Entries whose pin id is free or held by a pin of these roots (``owned``), and a problem row for
    each one whose id a pin of another source holds (that pin is never overwritten)."""
    keep: list[Entry] = []
    taken: list[Problem] = []
    for e in entries:
        row = stored.get(e.pin_id)
        if row is not None and (row.get("uri") or row.get("source")) and not owned(row, roots):
            owner = row.get("source") or row.get("uri")
            taken.append(Problem(e.path, e.pin_id, "id_taken",
                                 f"pin id {e.pin_id!r} belongs to {owner} (another source); it is not overwritten",
                                 "discover"))
        else:
            keep.append(e)
    return keep, taken
