"""Walk a source folder and classify what it holds: images, videos, idea pins (folders with pin.json),
by the walk rules folders and prefixes share (``walk_rules.py``); an object-storage prefix is listed
instead (``discover_prefix.py``).

Symlinks (one policy with ``pinembed serve``, which serves what lies inside a source): a link whose
target lies inside the source root (both resolved) is followed, a file link as a pin under the link's
own path, a folder link as a folder; a link out of the source is a named skip (``symlink_outside``),
and so is a folder link back to a folder on the way to it (``symlink_loop``). A link to nothing is a
ledger row (``unreadable``), as any file that cannot be stat'ed.
"""

from __future__ import annotations

import gc
import os
import stat as st
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pinembed.errors import InputError, UsageError

from . import kinds
from .discover_prefix import discover_prefix
from .entry import Discovery, Entry, Problem, Skip
from .idea import MANIFEST as IDEA_MANIFEST
from .idea import read_manifest
from .sample_fields import add_found, merge_attributes
from .shards import discover_shard
from .walk_rules import (
    SHARD_EXT,
    SIDECAR_EXTS,
    database_skip,
    hidden_skip,
    idea_leftovers,
    idea_notes,
    idea_pin_id,
    is_utf8,
    pin_id,
    sidecar_names,
    unread_skip,
)

if TYPE_CHECKING:
    from .sources import Source


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (the walk creates no reference cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def discover(root: str | os.PathLike[str], id_prefix: str = "",
             storage_options: dict[str, str] | None = None, database: str | None = None) -> Discovery:
    """Walk ``root`` recursively and return its entries (sorted by pin id), problems and skipped files.
    An object-storage prefix (``s3://bucket/media/``) is listed instead (see ``discover_prefix``).
    ``database``: the pin database's location; when it lies inside ``root`` it is one skip
    (``database``), never walked (``pinembed ingest . --db pins.lance`` is a common call)."""
    if isinstance(root, str) and "://" in root:
        return discover_prefix(root, id_prefix, storage_options, database)
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise UsageError(
            f"source folder {str(root)!r} does not exist or is not a folder",
            "pass the folder that holds your media, e.g. pinembed ingest ./media",
        )
    found = Discovery([], [])
    db = _identity(database) if database is not None and "://" not in database else None
    real_root = os.path.realpath(root)
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [(root, "", frozenset())]
    with gc_paused():  # ~100k small objects per 100k files: the cyclic GC would re-scan them many times
        while stack:
            folder, rel, above = stack.pop()
            _scan_folder(folder, rel, id_prefix, above, stack, found, db, real_root)
    found.keep_unique_ids()
    return found


def _scan_folder(
    folder: Path, rel: str, prefix: str, above: frozenset[tuple[int, int]], stack: list, found: Discovery,
    db: tuple[int, int] | None, real_root: str,
) -> None:
    """One folder's entries, skips and problems; its sub-folders go on ``stack`` with the folders on
    the way to them (``above``, by device and inode: a folder met again on its own path is a loop)."""
    here = pin_id(rel, prefix)
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in above:  # a loop not made by a symlink (a bind mount)
            found.skips.append(Skip(os.fspath(folder), "symlink_loop", "this folder contains itself; not walked again"))
            return
        path_here = above | {(info.st_dev, info.st_ino)}
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda d: d.name)
    except OSError as e:
        found.problems.append(Problem(folder, here, "unreadable", f"cannot read folder: {e.strerror}"))
        return
    names = {d.name for d in children}
    split = {n: os.path.splitext(n) for n in names}
    sidecars = sidecar_names(names)
    if rel and IDEA_MANIFEST in names:
        _idea_entry(folder, rel, prefix, found, names)
        return
    base = os.fspath(folder)
    for d in children:
        name = d.name
        if name.startswith("."):
            found.skips.append(hidden_skip(f"{base}{os.sep}{name}"))
            continue
        child_rel = f"{rel}/{name}" if rel else name
        try:
            is_dir = d.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if d.is_symlink():
            skip = _symlink_skip(f"{base}{os.sep}{name}", real_root, is_dir, path_here)
            if skip is not None:
                found.skips.append(skip)
                continue
        if is_dir:
            if db is not None and _identity(d) == db:
                found.skips.append(database_skip(f"{base}{os.sep}{name}"))
                continue
            stack.append((folder / name, child_rel, path_here))
            continue
        stem, ext = split[name]
        ext = ext.lower()
        kind = kinds.for_extension(ext)
        if kind is None and ext != SHARD_EXT:
            if name not in sidecars:
                found.skips.append(unread_skip(f"{base}{os.sep}{name}", ext))
            continue
        pid = pin_id(child_rel, prefix) if prefix else child_rel.replace(os.sep, "/")
        if not is_utf8(pid):
            safe = pid.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            found.problems.append(Problem(folder / name, safe, "bad_name", "file name is not valid UTF-8; rename the file"))
            continue
        try:
            s = d.stat(follow_symlinks=True)
        except OSError as e:
            found.problems.append(Problem(folder / name, pid, "unreadable", f"cannot stat file: {e.strerror}"))
            continue
        if not st.S_ISREG(s.st_mode):
            found.problems.append(Problem(folder / name, pid, "not_a_file", "not a regular file"))
            continue
        if kind is None:  # a webdataset shard: its samples are pins
            add_found(found, discover_shard(f"{base}{os.sep}{name}", prefix, shard_id=pid))
            continue
        sidecar, sig = _sidecar(folder, stem, names) if sidecars else (None, "")
        found.entries.append(Entry(pid, kind.name, f"{base}{os.sep}{name}", s.st_size, s.st_mtime_ns, sidecar, sig))


def _symlink_skip(path: str, real_root: str, is_dir: bool, above: frozenset[tuple[int, int]]) -> Skip | None:
    """The skip of a symlink that is not followed (None for one that is): one out of the source, or a
    folder link to a folder on the way to it. A link to nothing is left to the stat (a ledger row)."""
    if not os.path.exists(path):
        return None
    target = os.path.realpath(path)
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        return Skip(path, "symlink_outside", f"a symlink to {target}, outside the source folder {real_root}: not "
                                             "followed (pinembed reads and serves only what lies inside a source); "
                                             "copy the media in, or ingest its folder as a source of its own")
    if is_dir and _identity(path) in above:
        return Skip(path, "symlink_loop", f"a symlink to {target}, a folder on the way to it: not walked again")
    return None


def _identity(path: str | os.DirEntry) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it cannot be stat'ed."""
    try:
        info = path.stat(follow_symlinks=True) if isinstance(path, os.DirEntry) else os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _sidecar(folder: Path, stem: str, names: set[str]) -> tuple[Path | None, str]:
    for ext in SIDECAR_EXTS:
        if stem + ext in names:
            p = folder / (stem + ext)
            try:
                s = p.stat()
            except OSError:
                return None, ""
            return p, f"{s.st_size}:{s.st_mtime_ns}"
    return None, ""


def _idea_entry(folder: Path, rel: str, prefix: str, found: Discovery, names: set[str]) -> None:
    """An idea pin's entry (its unusable pages noted on it), or a problem row for the whole pin. Files
    in the folder that are not pages are named as skipped."""
    manifest_path = folder / IDEA_MANIFEST
    uri = str(manifest_path)
    folder_id = pin_id(rel, prefix)
    if not is_utf8(folder_id):
        safe = folder_id.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        found.problems.append(Problem(folder, safe, "bad_name", "folder name is not valid UTF-8; rename it", "manifest"))
        return
    try:
        m = read_manifest(folder, kinds.get("image").extensions, kinds.get("video").extensions)
        s = manifest_path.stat()
    except InputError as e:
        found.problems.append(Problem(uri, folder_id, e.error, e.message, "manifest"))
        return
    pid = idea_pin_id(m, folder_id, prefix)
    used = {p.path.relative_to(folder.resolve()).parts[0] for p in m.pages if p.path.is_relative_to(folder.resolve())}
    idea_leftovers(found, str(folder), names, used, pid, os.sep)
    notes = idea_notes(m, uri, pid, found)
    if notes is None:
        return
    pages_sig = ";".join(f"{p.index}={p.size}:{p.mtime_ns}" for p in m.pages)
    found.entries.append(Entry(pid, "idea", os.fspath(folder), s.st_size, s.st_mtime_ns, None, pages_sig,
                               m.title, m.description, m.pages, notes))


def discover_sources(sources: list[Source], storage_options: dict[str, str] | None = None,
                     database: str | None = None) -> Discovery:
    """Every source's entries; a pin id found under two roots is a problem (the first root keeps it)."""
    out = Discovery([], [])
    seen: dict[str, str] = {}
    for src in sources:
        found = discover(src.root, src.prefix, storage_options, database)
        merge_attributes(out, found)  # shards' JSON fields: one type per attribute across the sources
        out.problems += found.problems
        out.skips += found.skips
        if found.listed is not None:
            out.listed = (out.listed or set()) | found.listed
        for e in found.entries:
            if e.pin_id in seen:
                out.problems.append(Problem(e.path, e.pin_id, "duplicate_id",
                                            f"pin id {e.pin_id!r} is already taken by {seen[e.pin_id]}; "
                                            "give each source its own --id-prefix", "discover"))
                continue
            seen[e.pin_id] = e.uri
            e.source = src.root
            out.entries.append(e)
    return out
