"""``pinembed doctor``: check every table of a database; ``--restore`` the damaged ones."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pinembed.cli.common import db_option, json_option, storage_options
from pinembed.cli.errors import handle_errors
from pinembed.errors import DamagedError


@click.command()
@db_option
@click.option("--restore", is_flag=True,
              help="Bring each damaged table back to its newest readable version (takes the write lock; "
                   "unreadable manifests are renamed *.damaged-TIME, never deleted).")
@json_option
@handle_errors
def doctor(db: str, restore: bool, as_json: bool) -> None:
    """Read every row of every table, and name the damaged ones (a data file or manifest missing,
    truncated or garbled).

    Exit codes: 0 every table reads (after --restore: again), 5 a table is damaged (or could not be
    restored), 4 another writer holds the database (--restore), 2 no database there.
    """
    # heavy: the store package loads pyarrow
    from pinembed.store import doctor as checks
    from pinembed.store.db import Store
    from pinembed.store.lock import WriteLock

    opts = storage_options()
    Store(db, storage_options=opts).require_database()
    if restore:
        with WriteLock(db, "doctor", opts):
            reports = checks.restore(db, opts)
    else:
        reports = checks.check(db, opts)
    bad = [r for r in reports if not r.ok]
    if as_json:
        click.echo(json.dumps({"db": db, "ok": not bad, "tables": [r.to_dict() for r in reports]}, default=str))
        sys.exit(5 if bad else 0)
    for r in reports:
        click.echo(_line(r))
    if bad:
        err = DamagedError(bad[0].table, bad[0].problem or "", db)
        if restore:
            err.hint = ("no readable version of it is left: move the table's folder aside and run "
                        "`pinembed refresh SRC` to embed its pins again")
        raise err


def _line(r: Any) -> str:
    from pinembed.store.doctor import is_pins  # heavy: the store package loads pyarrow

    if r.restored_to is not None:
        unit = "pins" if is_pins(r.table) else "rows"
        lost = "an unknown number of" if r.lost is None else str(r.lost)
        again = "; `pinembed refresh SRC` embeds them again" if is_pins(r.table) and r.lost != 0 else ""
        return f"{r.table}\trestored to version {r.restored_to} ({r.rows_after} rows; {lost} {unit} lost{again})"
    if r.ok:
        return f"{r.table}\tok ({r.rows} rows, version {r.version})"
    return f"{r.table}\tDAMAGED: {r.problem}"
