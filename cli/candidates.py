"""``pinembed candidates``: the candidate table of a database (``pinembed.candidates``), for ranking
pipelines: every query pin's top-k related pins, written as Parquet."""

from __future__ import annotations

import json
import sys

import click
from click import FloatRange, IntRange

from pinembed.cli.common import db_option, json_option, kind_option, open_existing, where_filter, where_option
from pinembed.cli.errors import handle_errors
from pinembed.cli.output import ProgressBar
from pinembed.controls import MAX_K
from pinembed.errors import UsageError


@click.command()
@db_option
@click.option("--out", required=True, metavar="OUT",
              help="Where the table goes: a .parquet file, a folder of parts, or table:NAME (a table inside the "
                   "database; `pinembed stats` lists them). Columns pin_id, rank, candidate_id, score. It appears at "
                   "once when the job ends; a job run again after a kill finishes the missing parts.")
@click.option("-k", default=100, show_default=True, type=IntRange(1, MAX_K), help="Candidates per query pin.")
@kind_option
@where_option
@click.option("--query-where", "query_where", multiple=True, metavar="COND",
              help="Only pins that pass this filter are queries (the --where syntax; repeatable). Default: every pin.")
@click.option("--pins", "pins_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Only the pins whose ids this file lists (one a line) are queries.")
@click.option("--exact", is_flag=True, help="Exact products over every pin (the ground truth; slow at scale).")
@click.option("--memory-mb", type=IntRange(64), default=2048, show_default=True,
              help="Memory for score blocks, besides the vectors (4 bytes x dimensions a pin).")
@click.option("--target-recall", type=FloatRange(0.5, 1.0), default=0.97, show_default=True,
              help="The inverted lists' probes are chosen so that a sample of 256 queries reaches this recall@10 "
                   "against exact.")
@click.option("--runner", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: the parts are searched by Ray tasks (--ray-address, or a local cluster).")
@click.option("--ray-address", default=None, envvar="RAY_ADDRESS", help="With --runner ray: the cluster to use.")
@click.option("--cpus-per-worker", type=FloatRange(0.1), default=1.0, show_default=True,
              help="With --runner ray: CPUs (and torch threads) per task.")
@json_option
@handle_errors
def candidates(db: str, out: str, k: int, kinds: tuple[str, ...], where: tuple[str, ...],
               query_where: tuple[str, ...], pins_file: str | None, exact: bool, memory_mb: int,
               target_recall: float, runner: str, ray_address: str | None, cpus_per_worker: float,
               as_json: bool) -> None:
    """Write every pin's top-k related pins (the candidate table) to OUT, as `related` would rank them: the
    pin itself left out, --kind and --where choosing the candidates, scores as cosines."""
    from pinembed.candidates import CandidateOptions, build  # heavy: numpy, pyarrow, torch
    from pinembed.ingestion.options import RayOptions

    idx = open_existing(db)
    pins = None
    if pins_file is not None:
        with open(pins_file, encoding="utf-8") as f:
            pins = [line.strip() for line in f if line.strip()]
        if not pins:
            raise UsageError(f"{pins_file!r} lists no pin ids", "one pin id a line")
    opts = CandidateOptions(k=k, kinds=list(kinds) or None, where=where_filter(where, idx),
                            query_where=where_filter(query_where, idx), pins=pins, exact=exact,
                            memory_mb=memory_mb, target_recall=target_recall, runner=runner,
                            ray=RayOptions(address=ray_address, cpus_per_worker=cpus_per_worker))
    with ProgressBar(enabled=not as_json and sys.stderr.isatty(), label="candidates") as bar:
        s = build(idx, out, opts, progress=bar)
    if as_json:
        click.echo(json.dumps(s.to_dict()))
        return
    how = "exact" if s.method == "exact" else (f"{s.nlist} lists, {s.nprobe} probed (recall@10 of a sample "
                                               f"{s.sample_recall_at_10})")
    click.echo(f"{s.rows} candidates for {s.queries} pins (k={s.k}, {how}) in {s.elapsed_s:.1f} s -> {s.out}")
    if s.parts_reused:
        click.echo(f"  {s.parts_reused} of {s.parts} parts were already done (a resumed job)")
    if s.missing_pins:
        click.echo(f"  {s.missing_pins} pin id(s) of --pins are not in the database, e.g. "
                   f"{', '.join(s.missing_examples[:3])}", err=True)
