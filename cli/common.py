"""What the commands share: the --db, --json, -k, --kind and filter options, numbers in ASCII digits,
options whose default is the library's (``library_option``), and opening a database that must exist."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

import pinembed
from pinembed.controls import DEFAULT_K, MAX_K
from pinembed.ingestion.kinds import NAMES as KINDS

if TYPE_CHECKING:
    from pinembed.index import PinIndex

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


class LibraryDefault(click.Option):
    """An option whose default is the library's, read from the options dataclass that owns it.

    ``default`` is ``library()``: read when asked for (introspection, --help), never while the
    module is imported, so ``pinembed --help`` imports no heavy library module. Left out, the command
    gets None and passes nothing (``given``), so the library applies its own default; this keeps a
    command's first steps (a writer's lock) ahead of the library's imports. The help shows the
    default where its text says ``{default}``, or as click shows one with ``show_default=True``
    (``[default: 0.5; 0<=x<=10]``); ``shown`` gives that text when it is not ``str(default)`` (``64,000,000``,
    ``32 on a CPU, 256 on a GPU``). ``library=None``: no single value (it depends, as the help says)."""

    def __init__(self, *decls: Any, library: Callable[[], Any] | None = None,
                 shown: Callable[[], str] | None = None, **attrs: Any) -> None:
        self.library, self.shown, self._built = library, shown, False
        super().__init__(*decls, **attrs)
        self._built = True

    @property
    def default(self) -> Any:
        """The library's default (None while click builds the option)."""
        return self.library() if self._built and self.library is not None else None

    @default.setter
    def default(self, value: Any) -> None:  # click sets its own (unset); the library's is the default
        pass

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        """None: left out, the option passes nothing and the library's default applies."""
        return None

    def _text(self) -> str:
        return self.shown() if self.shown is not None else str(self.default)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """The help row, with the library's default in the text where it says ``{default}``."""
        if self.help and "{default}" in self.help:
            self.help = self.help.replace("{default}", self._text())
        return super().get_help_record(ctx)

    def get_help_extra(self, ctx: click.Context) -> Any:
        """click's extras (range, env var), with the library's default when ``show_default``."""
        extra = super().get_help_extra(ctx)
        if self.show_default is True:
            extra["default"] = self._text()
        return extra


def library_option(*decls: str, library: Callable[[], Any] | None = None, shown: Callable[[], str] | None = None,
                   **attrs: Any) -> Callable[[Any], Any]:
    """``click.option`` whose default is the library's (``LibraryDefault``)."""
    return click.option(*decls, cls=LibraryDefault, library=library, shown=shown, **attrs)


def given(**values: Any) -> dict[str, Any]:
    """``values`` without the ones left out (None): what to pass so the library's defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
k_option = click.option("-k", default=DEFAULT_K, show_default=True, type=IntRange(1, MAX_K), help="How many results.")
kind_option = click.option(
    "--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only pins of this kind (repeatable)."
)
where_option = click.option(
    "--where", "where", multiple=True, metavar="COND",
    help="Filter: COLUMN=VALUE, COLUMN!=VALUE, COLUMN~TEXT (contains, any case), COLUMN>=N, <=, >, <; or "
         "conditions joined by AND: \"category = 'shoes' AND price < 50\" (text in 'quotes', IN ('a', 'b') for "
         "any of). Columns: the pin's and the database's attributes (`pinembed stats`). Repeatable (ANDed; the "
         "same column with = in two --where means either). No raw SQL.",
)
dedupe_option = click.option("--dedupe", type=FloatRange(-1, 1, min_open=True), default=None, metavar="COS",
                             help="Drop results within this cosine of the query pin or of a result above (e.g. 0.95).")
diversity_option = click.option("--diversity", type=FloatRange(0, 1), default=0.0, show_default=True,
                                help="Re-rank by maximal marginal relevance: 0 plain similarity, 1 most diverse.")


def where_filter(terms: tuple[str, ...], source: Any = None) -> dict[str, Any] | None:
    """--where texts as the structured filter of ``store.filters`` (None for none), their columns checked
    against the attributes of ``source`` (a PinIndex, or ``--server``'s ``cli.remote.Server``, whose
    ``attributes()`` give Arrow types or type names), asked only when there is a --where."""
    if not terms:
        return None
    from pinembed.store.attributes import TYPES  # heavy: loads pyarrow
    from pinembed.store.filters import parse_cli_where

    found = source.attributes() if source is not None else {}
    attrs = {n: TYPES[t] if isinstance(t, str) else t for n, t in found.items() if not isinstance(t, str) or t in TYPES}
    return parse_cli_where(terms, attrs)


def open_existing(db: str) -> PinIndex:
    """The index of a database that must exist (read-only commands): "no database at ..." (exit 2)
    otherwise, before any model is loaded and without creating anything (``pinembed.open_index``
    loads the index's modules on first use: they are too heavy for ``pinembed --help``)."""
    idx = pinembed.open_index(db, storage_options=storage_options())
    idx.store.require_database()
    return idx


def is_file(path: str) -> bool:
    """``path`` names an existing file (False for strings that are no path at all, e.g. with a NUL)."""
    try:
        return os.path.isfile(path)
    except (TypeError, ValueError):
        return False
