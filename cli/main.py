"""``pinembed``: ingest media into a LanceDB pin database and query related pins.

The group and its commands, each from the module of its job: ``cli.ingest`` (ingest, refresh),
``cli.query`` (related, search), ``cli.admin`` (models, sources, gc, dupes, failures, stats),
``cli.doctor``, ``cli.export`` (pins, export), ``cli.train`` (train, eval) and ``cli.serve``.

Exit codes: 0 everything ingested, 3 some inputs failed and the rest landed, 4 the database is locked by
another writer, 5 a fault of the disk or the object store (no space, read-only, permission denied,
unreachable; what was committed is kept, run the command again), 2 usage error, 1 fatal.
Heavy imports happen inside the commands, so ``pinembed --help`` is instant.
"""

from __future__ import annotations

import click

from pinembed import __version__
from pinembed.cli.admin import dupes, failures, gc, models, sources, stats
from pinembed.cli.candidates import candidates
from pinembed.cli.doctor import doctor
from pinembed.cli.export import export, pins
from pinembed.cli.ingest import ingest, refresh
from pinembed.cli.query import related, search
from pinembed.cli.serve import serve
from pinembed.cli.train import eval_, train

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pinembed")
def cli() -> None:
    """Embed images, videos and idea pins into one CLIP space in LanceDB, and find related pins."""


for command in (ingest, refresh, models, sources, gc, dupes, failures, stats, train, eval_, serve, pins, export,
                related, doctor, search, candidates):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli()


if __name__ == "__main__":
    main()
