"""What the commands share: the --db, --json, -k, --kind and filter options, opening a database that
must exist, and printing a PinembedError as ``error:`` + ``hint:`` lines with its exit code."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from typing import Any

import click

from pinembed.controls import MAX_K
from pinembed.errors import PinembedError
from pinembed.ingestion.kinds import NAMES as KINDS

_db = click.option(
    "--db", default="pins.lance", show_default=True, envvar="PINEMBED_DB",
    help="Database: a local folder or any LanceDB URI (env PINEMBED_DB).",
)


def _parse_storage_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """``KEY=VALUE`` pairs as a dict in ``ctx.meta`` (read by ``storage_options``); a malformed pair is
    a usage error (exit 2) that never echoes a value: it may be a secret."""
    opts: dict[str, str] = {}
    for i, pair in enumerate(values, 1):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise click.BadParameter(f"option {i} is not KEY=VALUE (e.g. aws_region=us-east-1)", ctx, param)
        if key in opts:
            raise click.BadParameter(f"{key} is given twice", ctx, param)
        opts[key] = value
    ctx.meta["pinembed.storage_options"] = opts or None


_storage = click.option(
    "--storage-option", multiple=True, metavar="KEY=VALUE", expose_value=False, callback=_parse_storage_options,
    help="An object-storage option for LanceDB (repeatable), e.g. aws_endpoint=http://127.0.0.1:9000, "
         "allow_http=true, aws_region=us-east-1. AWS_* environment variables work too.",
)


def db_option(fn: Any) -> Any:
    """--db and --storage-option (repeatable KEY=VALUE) of every command that opens a database."""
    return _db(_storage(fn))


def storage_options() -> dict[str, str] | None:
    """The --storage-option pairs of the running command (None when none were given)."""
    return click.get_current_context().meta.get("pinembed.storage_options")


def db_given() -> bool:
    """Whether the running command's --db was given (on the command line or as $PINEMBED_DB)."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source("db") not in (None, click.core.ParameterSource.DEFAULT)


_ASCII_INT = re.compile(r"[+-]?[0-9]+")
_ASCII_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class IntRange(click.IntRange):
    """``click.IntRange`` of ASCII digits only (``int()`` reads "٥" and "５" as 5)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _ASCII_INT.fullmatch(value.strip()):
            self.fail(f"{value[:40]!r} is not an integer in ASCII digits", param, ctx)
        return super().convert(value, param, ctx)


class FloatRange(click.FloatRange):
    """``click.FloatRange`` of ASCII numbers only (no "inf", "nan" or non-ASCII digits)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _ASCII_FLOAT.fullmatch(value.strip()):
            self.fail(f"{value[:40]!r} is not a number in ASCII digits", param, ctx)
        return super().convert(value, param, ctx)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
k_option = click.option("-k", default=10, show_default=True, type=IntRange(1, MAX_K), help="How many results.")
kind_option = click.option(
    "--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only pins of this kind (repeatable)."
)
where_option = click.option(
    "--where", "where", multiple=True, metavar="COND",
    help="Filter: COLUMN=VALUE, COLUMN!=VALUE, COLUMN~TEXT (contains, any case), COLUMN>=N, <=, >, <. "
         "Repeatable (ANDed; the same column with = twice means either). No raw SQL.",
)
dedupe_option = click.option("--dedupe", type=FloatRange(-1, 1, min_open=True), default=None, metavar="COS",
                             help="Drop results within this cosine of the query pin or of a result above (e.g. 0.95).")
diversity_option = click.option("--diversity", type=FloatRange(0, 1), default=0.0, show_default=True,
                                help="Re-rank by maximal marginal relevance: 0 plain similarity, 1 most diverse.")


def where_filter(terms: tuple[str, ...]) -> dict[str, Any] | None:
    """--where terms as the structured filter of ``store.filters`` (None for none)."""
    from pinembed.store.filters import parse_cli_where

    return parse_cli_where(terms) if terms else None


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
    from pinembed.store.faults import short

    click.echo(f"error: unexpected {type(e).__name__}: {short(e, 500)}", err=True)
    click.echo("hint: set PINEMBED_DEBUG=1 for the traceback, and please report it", err=True)
    sys.exit(1)


def open_existing(db: str) -> Any:
    """The index of a database that must exist (read-only commands): "no database at ..." (exit 2)
    otherwise, before any model is loaded and without creating anything."""
    import pinembed

    idx = pinembed.open_index(db, storage_options=storage_options())
    idx.store.require_database()
    return idx


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
    from pinembed.store import faults

    place = db or getattr(e, "filename", None) or "the database"
    return faults.translate(e, str(place), faults.committed(str(place)) if db else None)


def is_file(path: str) -> bool:
    """``path`` names an existing file (False for strings that are no path at all, e.g. with a NUL)."""
    try:
        return os.path.isfile(path)
    except (TypeError, ValueError):
        return False
