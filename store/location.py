"""Where a database lives, checked before LanceDB or the write lock touch it.

A local ``--db`` that names a plain file is refused here (LanceDB and the lock would otherwise fail
with ``[Errno 17] File exists``), and a read-only command asks ``exists`` so that it never creates a
folder for a database that is not there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pinembed.errors import UsageError


def is_local(uri: str) -> bool:
    """True for a local folder, False for an object-storage or other LanceDB URI (``scheme://``)."""
    return "://" not in uri


def check_location(uri: str) -> None:
    """UsageError when a local database path names a plain file (or a file stands where a parent
    folder should be)."""
    if not is_local(uri):
        return
    path = os.path.abspath(os.path.expanduser(uri))
    if os.path.isfile(path):
        raise UsageError(
            f"{uri!r} is a file, not a database",
            "--db (or $PINEMBED_DB) names a database folder, e.g. --db pins.lance; "
            "a new one is created by `pinembed ingest SRC --db NEW.lance`",
        )
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return
        parent = up
    if not os.path.isdir(parent):
        raise UsageError(f"{uri!r} is under {parent!r}, which is a file, not a folder",
                         "--db names a database folder, e.g. --db pins.lance")


def missing(uri: str) -> UsageError:
    """The error of a read-only command run against a database that does not exist."""
    return UsageError(
        f"no database at {uri!r}",
        "check --db (or $PINEMBED_DB, default pins.lance in the current folder); "
        f"create one with `pinembed ingest SRC --db {uri}`",
    )


def side_folder(uri: str, name: str) -> Path:
    """A folder of the files pinembed keeps beside a database (``name``: what they are): inside a local
    database's folder (``<db>/.pinembed/<name>``), else under ``~/.cache/pinembed/<name>/<digest of uri>``
    (a database in object storage: those files are this machine's, and each says which version of the
    database it describes)."""
    if is_local(uri):
        return Path(os.path.abspath(os.path.expanduser(uri))) / ".pinembed" / name
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:24]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pinembed" / name / digest
