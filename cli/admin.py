"""The commands that look after a database: ``models`` (its generations), ``sources``, ``gc``,
``dupes``, ``failures`` (the ledger) and ``stats``."""

from __future__ import annotations

import json

import click

import pinembed
from pinembed.cli.common import FloatRange, IntRange, db_option, json_option, open_existing, storage_options
from pinembed.cli.errors import handle_errors
from pinembed.cli.shown import shown
from pinembed.errors import DamagedError


@click.command()
@db_option
@json_option
@handle_errors
def models(db: str, as_json: bool) -> None:
    """The model generations of the database: the live one, one being built, retired ones."""
    from pinembed.store.doctor import locate  # heavy: the store package loads pyarrow

    rows = open_existing(db).models()
    damaged = locate(db, storage_options())  # the generations table may read while the pins do not
    if damaged is not None:
        raise DamagedError(*damaged, db)
    if as_json:
        click.echo(json.dumps({"generations": rows}, default=str))
        return
    if not rows:
        click.echo("no generations (an empty database)")
    for g in rows:
        click.echo(f"{g['generation']:>3}  {g['state']:<8}  {g['pins']:>9} pins  dim {g['dim']}  {g['model_id']}")


@click.command()
@db_option
@json_option
@handle_errors
def sources(db: str, as_json: bool) -> None:
    """The source folders of the database, each with the prefix of its pin ids."""
    rows = open_existing(db).sources()
    if as_json:
        click.echo(json.dumps({"sources": rows}, default=str))
        return
    if not rows:
        click.echo("no sources recorded")
    for r in rows:
        click.echo(f"{r['id_prefix'] or '(no prefix)'}\t{r['root']}\t(last ingested {r['last_seen']:%Y-%m-%d %H:%M})")


@click.command()
@db_option
@json_option
@handle_errors
def gc(db: str, as_json: bool) -> None:
    """Drop retired model generations (their tables) and compact the live one."""
    from pinembed.store.deadline import exit_when_stuck  # heavy: the store package loads pyarrow

    exit_when_stuck(as_json)

    dropped = pinembed.open_index(db, storage_options=storage_options()).gc()
    if as_json:
        click.echo(json.dumps({"dropped": dropped}))
    else:
        click.echo(f"dropped generation(s) {', '.join(map(str, dropped))}" if dropped else "nothing to drop")


@click.command()
@db_option
@click.option("--threshold", default=0.95, show_default=True, type=FloatRange(-1, 1, min_open=True),
              help="Cosine at or above which two pins are near-duplicates.")
@click.option("--neighbours", default=10, show_default=True, type=IntRange(1, 1000),
              help="Nearest pins checked per pin (a cluster can still grow larger through links).")
@json_option
@handle_errors
def dupes(db: str, threshold: float, neighbours: int, as_json: bool) -> None:
    """Clusters of near-duplicate pins in the whole database (streamed, never loaded at once)."""

    clusters = open_existing(db).dupes(threshold, neighbours)
    if as_json:
        click.echo(json.dumps({"threshold": threshold, "clusters": clusters}))
        return
    if not clusters:
        click.echo(f"no near-duplicates at cosine >= {threshold}")
    for c in clusters:
        click.echo(f"{len(c)}: " + "  ".join(map(shown, c)))


@click.command()
@db_option
@json_option
@handle_errors
def failures(db: str, as_json: bool) -> None:
    """The failure ledger: inputs that could not be ingested, with the reason."""

    rows = open_existing(db).failures()
    if as_json:
        click.echo(json.dumps({"failures": rows}, default=str))
        return
    if not rows:
        click.echo("no failures")
    for r in rows:
        click.echo(f"{shown(r['pin_id'] or r['uri'])}\t{r['stage']}/{r['error']}\t{r['message']}\t(attempts {r['attempts']})")


@click.command()
@db_option
@json_option
@handle_errors
def stats(db: str, as_json: bool) -> None:
    """Counts by kind, segments, failures, the attributes (with their types), and the model that built
    the database."""

    s = open_existing(db).stats()
    if as_json:
        click.echo(json.dumps(s, default=str))
        return
    space = s["space"] or {}
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items())) or "none"
    click.echo(f"db: {s['db']}\npins: {s['pins']} ({kinds})\nsegments: {s['segments']}\nfailures: {s['failures']}")
    click.echo(f"model: {space.get('model_id', '-')} (dim {space.get('dim', '-')})")
    attrs = s.get("attributes") or {}
    if attrs:
        click.echo("attributes: " + ", ".join(f"{shown(n)} ({t})" for n, t in attrs.items()))
    for c in s.get("candidate_tables") or []:
        fresh = f"stale: {c['why_stale']}" if c["stale"] else "fresh"
        click.echo(f"candidate table {c['name']}: k={c['k']}, {c['queries']} queries, {c['method']}, built "
                   f"{c['built_at']} ({fresh})")
