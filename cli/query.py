"""The query commands ``related`` and ``search``: here, over the database, or with ``--server URL`` asked
of a running ``pinembed serve`` (``cli.remote``), which answers without loading a model in this process.

``related`` never loads the model (stored vectors only). A local ``search`` must load it; when that
took over SLOW_LOAD_S seconds it says so on stderr, and that ``--server`` avoids it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click

from pinembed.cli.common import (
    db_given,
    db_option,
    dedupe_option,
    diversity_option,
    is_file,
    json_option,
    k_option,
    kind_option,
    open_existing,
    storage_options,
    where_filter,
    where_option,
)
from pinembed.cli.errors import handle_errors
from pinembed.cli.remote import Server
from pinembed.cli.shown import flat, shown, unescape
from pinembed.cli.terms import is_url, looks_like_path
from pinembed.errors import UsageError

#: A model load over this many seconds gets a note on stderr ($PINEMBED_SLOW_LOAD_S overrides it).
SLOW_LOAD_S = 2.0

server_option = click.option(
    "--server", default=None, envvar="PINEMBED_SERVER", metavar="URL",
    help="Ask a running `pinembed serve` at URL (e.g. http://127.0.0.1:8000, or the URL it printed) instead: "
         "no model is loaded and no database opened here. With --db (or PINEMBED_DB) too, the server must "
         "serve that database. An unreachable server is an error (exit 1).  [env PINEMBED_SERVER]",
)
token_option = click.option("--token", default=None, envvar="PINEMBED_TOKEN",
                            help="With --server: the server's token (or the URL's #token=...).  [env PINEMBED_TOKEN]")


def query_options(fn: Any) -> Any:
    """The options of every query (related, search): the database, -k, the filters and re-ranking
    controls, --server and its token, --json."""
    for o in reversed((db_option, k_option, kind_option, where_option, dedupe_option, diversity_option,
                       server_option, token_option, json_option)):
        fn = o(fn)
    return fn


def _server(url: str, token: str | None, db: str) -> Any:
    """The server of --server, checked to serve --db when --db was given."""
    server = Server(url, token)
    if db_given():
        server.check_database(db, storage_options())
    return server


@click.command()
@click.argument("pin_ids", nargs=-1, required=True, metavar="PIN [PIN ...]")
@query_options
@handle_errors
def related(pin_ids: tuple[str, ...], db: str, k: int, kinds: tuple[str, ...], where: tuple[str, ...],
            dedupe: float | None, diversity: float, server: str | None, token: str | None, as_json: bool) -> None:
    """Pins related to PIN (nearest stored vectors, the pin itself left out). No model is loaded.

    Several PINs are a session, oldest first: its distinct interests each retrieve, the lists are
    fused (reciprocal rank fusion, recent pins weigh more) and the session's pins are left out.
    A PIN is a pin id as `pinembed pins` prints it (a\\nb.png for a name with a line break), or
    the path of an ingested file (not with --server).
    """
    controls = {"k": k, "kinds": kinds or None, "dedupe": dedupe, "diversity": diversity}
    if server:
        remote = _server(server, token, db)
        results = remote.related(list(pin_ids), where=where_filter(where, remote), **controls)
    else:
        idx = open_existing(db)
        controls["where"] = where_filter(where, idx)
        ids = stored_ids(idx, list(pin_ids))
        if len(ids) == 1:
            results = idx.related(ids[0], **controls)
        else:
            results = idx.related_to_session(ids, **controls)
    print_results(results, as_json)


def stored_ids(idx: Any, refs: list[str]) -> list[str]:
    """``refs`` with each one that is neither a stored id nor an existing path, but is the printed form
    of a stored id (``cli.shown``: ``a\\nb.png``), replaced by that id."""
    odd = [r for r in refs if "\\" in r]
    if not odd:
        return refs
    known = set(idx.pin_extras(odd))
    back = {r: unescape(r) for r in odd if r not in known and not _exists(r)}
    back = {r: b for r, b in back.items() if b is not None and b != r}
    found = set(idx.pin_extras(list(back.values()))) if back else set()
    return [back[r] if back.get(r) in found else r for r in refs]


def _exists(path: str) -> bool:
    try:
        return os.path.exists(path)
    except (TypeError, ValueError):
        return False


_WEIGHT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def parse_terms(tokens: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """``"red dress" + ./img.jpg - 0.5:logo`` as (positive, negative) terms: an existing file is an image,
    a term that looks like a path or URL but is no file is a UsageError (``cli.terms``), anything else a
    text; a ``WEIGHT:`` prefix weighs a term."""
    positive: list[Any] = []
    negative: list[Any] = []
    sign = 1
    for tok in tokens:
        if tok in ("+", "-"):
            sign = 1 if tok == "+" else -1
            continue
        weight = 1.0
        head, sep, rest = tok.partition(":")
        if sep and rest and _WEIGHT.fullmatch(head):  # ASCII digits only: "٥:red" and "1_0:red" are texts
            weight = float(head)
            tok = rest
        item: Any = Path(tok) if is_file(tok) else tok
        if isinstance(item, str) and looks_like_path(tok):
            if is_url(tok):
                raise UsageError(f"image URLs are not supported: {tok}",
                                 "download the image first and search with the file; to search for these "
                                 "words instead, pass them with --text")
            raise UsageError(f"no such file: {tok}",
                             "check the path; to search for these words instead, pass them with --text")
        (positive if sign > 0 else negative).append((item, weight))
        sign = 1
    return positive, negative


@click.command()
@click.argument("terms", nargs=-1, metavar="[TERM] [+|- TERM ...]")
@click.option("--text", default=None, help="A text query.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=str), default=None, help="An image file as the query.")
@query_options
@handle_errors
def search(terms: tuple[str, ...], text: str | None, image: str | None, db: str, k: int, kinds: tuple[str, ...],
           where: tuple[str, ...], dedupe: float | None, diversity: float, server: str | None, token: str | None,
           as_json: bool) -> None:
    """Pins nearest to texts and images, added and subtracted.

    \b
    pinembed search "red dress"
    pinembed search "red dress" + ./look.jpg - "logo"
    pinembed search 2:"red dress" - 0.5:./logo.png     (WEIGHT: weighs a term)
    pinembed search "red dress" --server http://127.0.0.1:8000   (a running `pinembed serve`)

    A TERM that names an existing file is an image; one that looks like a path or URL (a / or \\ without
    spaces, an image or video extension, scheme://) but is no file is an error; anything else a text.
    --text and --image add one positive term each (--text is always words; URLs are not supported).
    The model loads here for each search (the time is noted when slow); --server asks a running
    `pinembed serve`, whose model is loaded already (it takes no WEIGHT: and no negative image).
    """
    positive, negative = parse_terms(terms)
    if text is not None:
        positive.append((text, 1.0))
    if image is not None:
        if is_url(image):
            raise UsageError(f"--image takes a local file; image URLs are not supported: {image}",
                             "download the image first, e.g. curl -o query.jpg 'URL', then --image query.jpg")
        if not is_file(image):
            raise UsageError(f"--image: no such file: {image}", "give the path of an image file")
        positive.append((Path(image), 1.0))
    if not positive:
        raise click.UsageError("give a query: search \"some words\", search ./image.jpg, --text or --image")
    controls = {"k": k, "kinds": kinds or None, "dedupe": dedupe, "diversity": diversity}
    if server:
        texts, negatives, images = _server_terms(positive, negative)
        remote = _server(server, token, db)
        results = remote.search(texts, negatives, images, where=where_filter(where, remote), **controls)
        print_results(results, as_json)
        return
    idx = open_existing(db)
    results = idx.search(positive, negative, where=where_filter(where, idx), **controls)
    print_results(results, as_json)
    _note_slow_load(idx, db)


def _server_terms(positive: list[Any], negative: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """(texts, negative texts, image paths) for the server, which weighs every term 1 and subtracts texts
    only: a UsageError for what it cannot do."""
    if any(w != 1.0 for _, w in positive + negative):
        raise UsageError("--server takes no WEIGHT: on a term (the server weighs every term 1)",
                         "leave out the weights, or leave out --server to search here (loads the model)")
    if any(not isinstance(t, str) for t, _ in negative):
        raise UsageError("--server subtracts texts only, not images",
                         "leave out the negative image, or leave out --server to search here (loads the model)")
    return ([t for t, _ in positive if isinstance(t, str)], [t for t, _ in negative],
            [os.fspath(t) for t, _ in positive if not isinstance(t, str)])


def _note_slow_load(idx: Any, db: str) -> None:
    """One line on stderr when this search loaded the model slowly (never on stdout: --json stays one object)."""
    took = idx.model_load_s
    try:
        limit = float(os.environ.get("PINEMBED_SLOW_LOAD_S", SLOW_LOAD_S))
    except ValueError:
        limit = SLOW_LOAD_S
    if took is not None and took > limit:
        click.echo(f"note: loaded model {shown(idx.model_id)} in {took:.1f} s; `--server URL` (a running "
                   f"`pinembed serve --db {shown(db)}`) avoids this", err=True)


def print_results(results: list[Any], as_json: bool) -> None:
    """Results as lines (score, kind, pin id as `pins` prints it, best frame or page, title), or one JSON object."""
    if as_json:
        click.echo(json.dumps({"results": [r.to_dict() for r in results]}))
        return
    if not results:
        click.echo("no results")
    for r in results:
        extra = f"  t={r.best_t_s:.1f}s" if r.best_t_s is not None else ""
        extra += f"  page {r.best_page}" if r.best_page is not None else ""
        title = f"  \u2014 {flat(r.title)}" if r.title else ""
        click.echo(f"{r.score:7.4f}  {shown(r.kind):<5}  {shown(r.pin_id)}{extra}{title}")
