"""The pins out of a database: ``pins`` lists them (tab-separated, or JSON), ``export`` writes them to a
Parquet or JSON Lines file."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from pinembed.cli.common import db_option, json_option, kind_option, open_existing, where_filter, where_option
from pinembed.cli.errors import handle_errors
from pinembed.cli.shown import flat, shown


@click.command()
@db_option
@kind_option
@where_option
@json_option
@handle_errors
def pins(db: str, kinds: tuple[str, ...], where: tuple[str, ...], as_json: bool) -> None:
    """List pin ids with their kind, uri and title (tab-separated; streamed in batches).

    These are the ids that `pinembed related` takes, as printed: a line break, tab, other control
    character or backslash in an id or uri is escaped (a\\nb.png, \\t, \\x1b, \\\\), titles are
    flattened to one line. --json prints {"pins": [{pin_id, kind, uri, title, and the database's
    attributes}, ...]} with the ids as they are (dates as ISO 8601 text).
    """
    idx = open_existing(db)
    cols = ("pin_id", "kind", "uri", "title", *(idx.attributes() if as_json else ()))
    batches = idx.iter_pins(1024, cols, kinds or None, where_filter(where, idx))
    try:
        _print_pins(batches, as_json)
    except BrokenPipeError:  # `pinembed pins | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_pins(batches: Iterator[Any], as_json: bool) -> None:
    from pinembed.export import json_value  # heavy: loads the store (pyarrow), loaded by now anyway

    first = next(batches, None)  # errors (a bad --where) surface before any output
    if as_json:
        sep = ""
        click.echo('{"pins": [', nl=False)
        for batch in _chain(first, batches):
            for row in batch.to_pylist():
                click.echo(sep + json.dumps(row, default=json_value), nl=False)
                sep = ", "
        click.echo("]}")
        return
    if first is None:
        click.echo("no pins", err=True)
    for batch in _chain(first, batches):
        lines = ["\t".join((shown(row["pin_id"]), shown(row["kind"]), shown(row["uri"]), flat(row["title"])))
                 for row in batch.to_pylist()]
        click.echo("\n".join(lines))


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
        yield from rest


@click.command()
@click.argument("out", metavar="OUT.parquet|OUT.jsonl")
@db_option
@click.option("--segments", is_flag=True,
              help="Also write the frame, page and text vectors of those pins to OUT.segments.parquet (or .jsonl).")
@kind_option
@where_option
@json_option
@handle_errors
def export(out: str, db: str, segments: bool, kinds: tuple[str, ...], where: tuple[str, ...], as_json: bool) -> None:
    """Write the pins (pin_id, kind, uri, title, description, width, height, duration_s, model_id, vector,
    and the database's attributes, each of its type) to OUT: Parquet or JSON Lines by its extension, streamed, renamed into place when complete (a
    missing folder of OUT is created).

    The stable way to get pins out: the tables inside the database change name after a model switch.
    """
    # heavy: pinembed.export loads the store (pyarrow)
    from pinembed.export import export as run_export
    from pinembed.export import format_of

    format_of(out)  # refuse another extension before opening anything
    idx = open_existing(db)
    s = run_export(idx, out, segments=segments, kinds=kinds or None, where=where_filter(where, idx))
    if as_json:
        click.echo(json.dumps(s.to_dict()))
        return
    click.echo(f"exported {s.pins} pins to {s.out}"
               + (f", {s.segments} segments to {s.segments_out}" if s.segments_out else ""))
