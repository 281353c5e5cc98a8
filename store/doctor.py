"""``pinembed doctor``: read every table of a database, name the damaged ones, and restore each to its
newest readable version.

A table is damaged when its newest manifest cannot be read (garbled, or every manifest removed) or
when a data file that manifest names is missing or truncated. ``check`` reads every row of every
table (``deep``) or, as a health probe, opens each table and reads its first and last row (the newest
data file is the one a crash or a full disk leaves short). ``restore`` moves unreadable newest
manifests aside (renamed ``*.damaged-<time>``, never deleted) until one opens, then goes back to the
newest version whose every row reads, with lance's restore (a new version equal to that one: the
history stays). Pins of the newest version that the restored one lacks are counted as lost; the next
refresh embeds them again. This module never imports ``faults`` (which asks it where damage is).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from . import damage
from .deadline import with_deadlines
from .objects import is_object_store, object_store

U64 = 2**64 - 1


@dataclass
class TableReport:
    """One table as ``check`` found it (and ``restore`` left it)."""

    table: str
    rows: int | None  # rows of its newest version (None when that cannot be read)
    version: int | None  # its newest version (None when no manifest can be read)
    problem: str | None = None  # what is wrong; None when every row reads
    restored_to: int | None = None  # the version it went back to
    rows_after: int | None = None
    lost: int | None = None  # pins (or rows) the restore dropped (None: unknown or nothing restored)

    @property
    def ok(self) -> bool:
        """Whether the table reads (now)."""
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def connect(uri: str, storage_options: dict[str, str] | None = None) -> Any:
    """A LanceDB connection to ``uri`` (object stores with a deadline on every request)."""
    import lancedb

    opts = with_deadlines(storage_options) if is_object_store(uri) else storage_options
    return lancedb.connect(uri, storage_options=opts)


def check(uri: str, storage_options: dict[str, str] | None = None, deep: bool = True) -> list[TableReport]:
    """Every table of the database at ``uri``, by name (``deep``: every row read; else the probe)."""
    db = connect(uri, storage_options)
    return [_check(db, name, deep) for name in sorted(db.list_tables().tables)]


def readable(uri: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the database's tables, one line each (empty when all read): a health probe
    (each table opened, its first and last row read: milliseconds for a local database)."""
    try:
        return [f"{r.table}: {r.problem}" for r in check(uri, storage_options, deep=False) if not r.ok]
    except Exception as e:
        return [f"the database cannot be listed: {_short(e)}"]


def locate(uri: str, storage_options: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(table, what is wrong) of the first damaged table found by the probe, or None."""
    try:
        for r in check(uri, storage_options, deep=False):
            if r.problem is not None:
                return r.table, r.problem
    except Exception:
        return None
    return None


def restore(uri: str, storage_options: dict[str, str] | None = None) -> list[TableReport]:
    """``check`` every table, and bring each damaged one back to its newest readable version."""
    db = connect(uri, storage_options)
    reports = check(uri, storage_options)
    for r in reports:
        if not r.ok:
            _restore(db, uri, storage_options, r)
    return reports


def is_pins(table: str) -> bool:
    """Whether ``table`` is a generation's pins table (``pins``, ``pins_g2``, ...)."""
    return table == "pins" or re.fullmatch(r"pins_g\d+", table) is not None


# -- one table ------------------------------------------------------------------------------------
def _check(db: Any, name: str, deep: bool) -> TableReport:
    try:
        t = db.open_table(name)
        rows, version = t.count_rows(), t.version
    except Exception as e:
        return TableReport(name, None, None, _problem(e))
    try:
        _read(t, rows, deep)
    except Exception as e:
        return TableReport(name, rows, version, _problem(e))
    return TableReport(name, rows, version)


def _read(t: Any, rows: int, deep: bool) -> None:
    if not rows:
        return
    if deep:
        for _ in t.search().limit(rows).to_batches(8192):
            pass
        return
    first = t.schema.names[0]
    t.search().select([first]).limit(1).to_arrow()
    t.search().select([first]).limit(1).offset(rows - 1).to_arrow()


def _restore(db: Any, uri: str, options: dict[str, str] | None, r: TableReport) -> None:
    t = None
    while t is None:  # an unreadable newest manifest: move it aside, the one before becomes the newest
        try:
            t = db.open_table(r.table)
            t.count_rows()
        except Exception:
            t = None
            if not _move_newest_manifest(uri, options, r.table):
                return  # no manifest left: nothing to go back to
    versions = sorted((v["version"] for v in t.list_versions()), reverse=True)
    for v in versions:
        try:
            t.checkout(v)
            rows = t.count_rows()
            _read(t, rows, deep=True)
        except Exception:
            continue
        if v != versions[0]:
            t.restore(v)
        else:
            t.checkout_latest()
        r.problem, r.restored_to, r.rows_after = None, v, rows
        r.lost = max(0, r.rows - rows) if r.rows is not None else None
        return
    t.checkout_latest()


def _move_newest_manifest(uri: str, options: dict[str, str] | None, table: str) -> bool:
    """Rename the newest manifest of ``table`` to ``*.damaged-<time>``; False when none is left."""
    folder = f"{uri.rstrip('/')}/{table}.lance/_versions"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if is_object_store(uri):
        import obstore

        store = object_store(folder, options, 5.0)
        names = [o["path"].rsplit("/", 1)[-1] for batch in obstore.list(store) for o in batch]
        newest = _newest(names)
        if newest is None:
            return False
        obstore.rename(store, newest, f"{newest}.damaged-{stamp}")
        if "latest_version_hint.json" in names:
            obstore.delete(store, "latest_version_hint.json")  # it names the version moved aside
        return True
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return False
    newest = _newest(names)
    if newest is None:
        return False
    os.rename(os.path.join(folder, newest), os.path.join(folder, f"{newest}.damaged-{stamp}"))
    hint = os.path.join(folder, "latest_version_hint.json")
    if os.path.exists(hint):
        os.remove(hint)  # a hint at the moved version: lance lists the folder instead
    return True


def _newest(names: list[str]) -> str | None:
    """The newest manifest among file names (lance's V2 naming counts down from 2**64 - 1)."""
    versions = {}
    for n in names:
        stem, dot, ext = n.partition(".")
        if ext == "manifest" and stem.isdigit():
            v = int(stem)
            versions[n] = U64 - v if v > 2**63 else v
    return max(versions, key=versions.__getitem__) if versions else None


def _problem(e: BaseException) -> str:
    found = damage.what(str(e))
    return found[1] if found is not None else f"cannot be read: {_short(e)}"


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return re.split(r",? /(?:root|rustc|home)/|,? location: Location|, backtrace:", text)[0][:300]
