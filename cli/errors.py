"""How a command ends on an error: a PinembedError printed as ``error:`` + ``hint:`` lines (and one
JSON object with --json) and its exit code; a fault of the disk or the object store named as one; anything
unexpected as one line and exit 1 (the traceback with PINEMBED_DEBUG=1); Ctrl-C as exit 130."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any

import click

from pinembed.errors import PinembedError


def handle_errors(fn: Any) -> Any:
    """Print PinembedErrors as message + hint (no traceback) and exit with their code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PinembedError as e:
            report(e, kwargs.get("as_json", False))
        except (click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; every finished batch is saved, run the command again to finish", err=True)
            sys.exit(130)
        except Exception as e:
            _unexpected(e, kwargs)
        except BaseException as e:  # pyo3's PanicException (a panic in lance's Rust: a garbled manifest can
            if type(e).__name__ != "PanicException":  # cause one) is no Exception; SystemExit and the like pass
                raise
            _unexpected(e, kwargs)

    return wrapper


def _unexpected(e: BaseException, kwargs: dict[str, Any]) -> None:
    """An error no code path expected: a fault of the disk or the object store (a damaged table
    included) when it is one, else one line and exit 1 (the traceback with PINEMBED_DEBUG=1)."""
    if os.environ.get("PINEMBED_DEBUG"):
        raise e
    known = _fault(e, kwargs.get("db"))
    if known is not None:  # a fault of the disk or the object store, wherever it was raised
        report(known, kwargs.get("as_json", False))
    from pinembed.store.faults import short  # heavy: the store package loads pyarrow

    click.echo(f"error: unexpected {type(e).__name__}: {short(e, 500)}", err=True)
    click.echo("hint: set PINEMBED_DEBUG=1 for the traceback, and please report it", err=True)
    sys.exit(1)


def report(e: PinembedError, as_json: bool) -> None:
    """Print ``error:`` and ``hint:`` lines (and one JSON object with --json) and exit with e's code."""
    click.echo(f"error: {e.message}", err=True)
    if e.hint:
        click.echo(f"hint: {e.hint}", err=True)
    if as_json:  # --json always prints one object, errors included
        click.echo(json.dumps({"error": e.message, "hint": e.hint, "exit_code": e.exit_code}))
    sys.exit(e.exit_code)


def _fault(e: BaseException, db: str | None) -> PinembedError | None:
    """``e`` as a known fault of the disk or object store under ``db``, or None."""
    from pinembed.store import faults  # heavy: the store package loads pyarrow

    place = db or getattr(e, "filename", None) or "the database"
    return faults.translate(e, str(place), faults.committed(str(place)) if db else None)
