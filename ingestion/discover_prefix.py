"""Discover the media under an object-storage prefix (``s3://bucket/pins/``): the walk rules folders
and prefixes share (``walk_rules.py``) applied to one listing of the prefix.

Keys relative to the prefix play the part of paths relative to the folder: the pin id of
``s3://bucket/pins/shoes/red.jpg`` is ``shoes/red.jpg`` (under the source's id prefix), as for a
folder. "Folders" are the key prefixes between slashes; a folder holding ``pin.json`` is an idea pin;
names starting with a dot are skipped as hidden, sidecars go with their media, other files are
skipped with a reason. Every entry carries its size, ETag and mtime from the listing (its source
signature: an unchanged object costs no read) and the source's MediaStore (to be read later, in
this process or another).

A prefix that lists nothing is a UsageError, like a missing folder: for a cron job a mistyped or
emptied prefix must not read as "everything was deleted".
"""

from __future__ import annotations

import os

from pinembed.errors import InputError

from . import kinds
from .entry import Discovery, Entry, Problem
from .idea import MANIFEST as IDEA_MANIFEST
from .idea import read_listed_manifest
from .object_media import Listed, MediaStore, empty_prefix, norm_root
from .sample_fields import add_found
from .shards import discover_shard
from .walk_rules import (
    SHARD_EXT,
    SIDECAR_EXTS,
    database_skip,
    hidden_skip,
    idea_leftovers,
    idea_notes,
    idea_pin_id,
    pin_id,
    sidecar_names,
    unread_skip,
)

FOLDER_MARKER = "/"  # a zero-byte key ending in "/" (what consoles make for "Create folder"): no file


def discover_prefix(src: str, id_prefix: str = "", storage_options: dict[str, str] | None = None,
                    database: str | None = None) -> Discovery:
    """List ``src`` (an object-storage prefix) and return its entries (sorted by pin id), problems,
    skipped objects and the URI of every object and folder listed (``Discovery.listed``). A pin
    ``database`` under the prefix is one skip (``database``); its objects are not looked at."""
    media = MediaStore(norm_root(src), storage_options)
    objects = {o.rel: o for o in media.list() if o.rel and not o.rel.endswith(FOLDER_MARKER)}
    if not objects:
        raise empty_prefix(media.root)
    db_rel = _inside(media.root, database)
    if db_rel:
        objects = {r: o for r, o in objects.items() if r != db_rel and not r.startswith(db_rel + "/")}
        if not objects:  # only the database: for a cron job that reads as "all deleted", so refuse
            raise empty_prefix(media.root)
    files: dict[str, dict[str, Listed]] = {}
    dirs: dict[str, set[str]] = {}
    for rel, o in objects.items():
        folder, _, name = rel.rpartition("/")
        files.setdefault(folder, {})[name] = o
        parts = folder.split("/") if folder else []
        for i, part in enumerate(parts):
            dirs.setdefault("/".join(parts[:i]), set()).add(part)
    found = Discovery([], [])
    if db_rel:
        found.skips.append(database_skip(media.uri(db_rel)))
    found.listed = {media.uri(r) for r in objects} | {
        media.uri(f"{d}/{n}" if d else n) for d, names in dirs.items() for n in names}
    stack = [""]
    while stack:
        rel = stack.pop()
        _scan(media, rel, id_prefix, files.get(rel, {}), dirs.get(rel, set()), objects, stack, found)
    found.keep_unique_ids()
    return found


def _inside(root: str, database: str | None) -> str | None:
    """The database's key relative to ``root`` when it lies under it (same scheme and bucket)."""
    if not database or "://" not in database:
        return None
    db, base = database.rstrip("/"), root.rstrip("/") + "/"
    return db[len(base):] if db.startswith(base) and len(db) > len(base) else None


def _scan(media: MediaStore, rel: str, prefix: str, here: dict[str, Listed], subdirs: set[str],
          objects: dict[str, Listed], stack: list[str], found: Discovery) -> None:
    if rel and IDEA_MANIFEST in here:
        _idea_entry(media, rel, prefix, here, subdirs, objects, found)
        return
    split = {n: os.path.splitext(n) for n in here}
    sidecars = sidecar_names(here)
    for name in sorted(subdirs | set(here)):
        child = f"{rel}/{name}" if rel else name
        if name.startswith("."):
            found.skips.append(hidden_skip(media.uri(child)))
            continue
        if name in subdirs and name not in here:
            stack.append(child)
            continue
        if name in subdirs:  # "a" is both an object and a folder: walk the folder, read the object too
            stack.append(child)
        stem, ext = split[name]
        kind = kinds.for_extension(ext.lower())
        if kind is None and ext.lower() == SHARD_EXT:  # a webdataset shard: its samples are pins
            add_found(found, discover_shard(media.uri(child), prefix, media, shard_id=pin_id(child, prefix),
                                            etag=here[name].etag))
            continue
        if kind is None:
            if name not in sidecars:
                found.skips.append(unread_skip(media.uri(child), ext.lower()))
            continue
        o = here[name]
        sidecar, sig = _sidecar(media, rel, stem, here) if sidecars else (None, "")
        found.entries.append(Entry(pin_id(child, prefix), kind.name, media.uri(child), o.size, o.mtime_ns,
                                   sidecar, sig, etag=o.etag, media=media))


def _sidecar(media: MediaStore, rel: str, stem: str, here: dict[str, Listed]) -> tuple[str | None, str]:
    for ext in SIDECAR_EXTS:
        o = here.get(stem + ext)
        if o is not None:
            return media.uri(f"{rel}/{stem}{ext}" if rel else f"{stem}{ext}"), _sig(o)
    return None, ""


def _sig(o: Listed) -> str:
    return f"{o.size}:{o.mtime_ns}:{o.etag}"


def _idea_entry(media: MediaStore, rel: str, prefix: str, here: dict[str, Listed], subdirs: set[str],
                objects: dict[str, Listed], found: Discovery) -> None:
    """An idea pin's entry (its unusable pages noted on it), or a problem row for the whole pin.
    Objects in its folder that are not pages are named as skipped."""
    folder_uri = media.uri(rel)
    uri = f"{folder_uri}/{IDEA_MANIFEST}"
    folder_id = pin_id(rel, prefix)
    try:
        m = read_listed_manifest(folder_uri, rel, objects, media, kinds.get("image").extensions,
                                 kinds.get("video").extensions)
    except InputError as e:
        found.problems.append(Problem(uri, folder_id, e.error, e.message, "manifest"))
        return
    pid = idea_pin_id(m, folder_id, prefix)
    used = {str(p.path)[len(folder_uri) + 1:].split("/", 1)[0] for p in m.pages}
    idea_leftovers(found, folder_uri, set(here) | subdirs, used, pid, "/")
    notes = idea_notes(m, uri, pid, found)
    if notes is None:
        return
    manifest = here[IDEA_MANIFEST]
    pages_sig = ";".join(f"{p.index}={p.size}:{p.mtime_ns}:{p.etag}" for p in m.pages)
    found.entries.append(Entry(pid, "idea", folder_uri, manifest.size, manifest.mtime_ns, None, pages_sig,
                               m.title, m.description, m.pages, notes, etag=manifest.etag, media=media))
