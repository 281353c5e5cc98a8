"""``pinembed serve``: the database over HTTP, with the limits of ``ServeSettings`` (its defaults are
the library's: read from there)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import click

from pinembed.cli.common import (
    FloatRange,
    IntRange,
    db_option,
    given,
    library_option,
    open_existing,
    storage_options,
)
from pinembed.cli.errors import handle_errors

if TYPE_CHECKING:
    from pinembed.serve.settings import ServeSettings

MB = 1024 * 1024


def _library() -> ServeSettings:
    """The library's serve settings, all defaults (imported when needed: the serve modules load PIL
    and numpy, too slow for ``pinembed --help``)."""
    from pinembed.serve.settings import ServeSettings

    return ServeSettings()


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. Anything but 127.0.0.1/localhost/::1 needs --token (or --insecure).")
@click.option("--port", default=8000, show_default=True, type=IntRange(0, 65535), help="0: any free port.")
@click.option("--token", default=None, envvar="PINEMBED_TOKEN",
              help="Every /api request must carry it (Authorization: Bearer T). Prefer the environment: "
                   "a --token on the command line is visible to every user in `ps`.  [env PINEMBED_TOKEN]")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without a token.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Allow cross-origin requests from ORIGIN (repeatable); CORS is off by default.")
@library_option("--max-upload-mb", library=lambda: _library().max_upload_bytes // MB, show_default=True,
                type=IntRange(1, 1024), help="Largest request body (search by image).")
@library_option("--time-limit", library=lambda: _library().time_limit_s, show_default=True,
                type=FloatRange(0.1, 3600), help="Seconds a request may take before it is answered 504.")
@click.option("--memory-mb", default=None, type=FloatRange(0), metavar="MB",
              help="Hold the pins' vectors and cards in memory when they fit in MB (default: a quarter of the "
                   "machine's memory; 0: never). Related pins then take one database query (1M x 512-d: ~2.6 GB).")
@library_option("--workers", "serve_workers", library=lambda: _library().workers, type=IntRange(1, 256),
                help="Threads for requests' blocking work [default: {default}].")
@library_option("--max-abandoned", library=lambda: _library().max_abandoned, type=IntRange(0, 1024),
                help="Requests answered 504 whose work still runs; past this, new ones are 503 at once "
                     "[default: {default}].")
@library_option("--max-request-mpx", library=lambda: _library().max_request_pixels / 1e6,
                shown=lambda: f"{_library().max_request_pixels / 1e6:g}",
                type=FloatRange(0.001),
                help="Megapixels of all the images of one request together (read from their headers) "
                     "[default: {default}].")
@library_option("--header-timeout", library=lambda: _library().header_timeout_s,
                shown=lambda: f"{_library().header_timeout_s:g}", type=FloatRange(0.1, 3600),
                help="Seconds a connection may take to send a request's headers before it is closed "
                     "[default: {default}].")
@click.option("--device", default=None, help="torch device for text and image search (default: cuda when present).")
@handle_errors
def serve(db: str, host: str, port: int, token: str | None, insecure: bool, cors_origins: tuple[str, ...],
          max_upload_mb: int | None, time_limit: float | None, memory_mb: float | None, serve_workers: int | None,
          max_abandoned: int | None, max_request_mpx: float | None, header_timeout: float | None,
          device: str | None) -> None:
    """Serve the database over HTTP: JSON endpoints (related, session, search, pin, thumb, media,
    health, stats; /api/openapi.json describes them) and a page to browse it.

    A refresh or a model switch by the cron job is picked up within about a second, without a restart.
    `pinembed search|related --server URL` ask it from the command line (no model load there).
    Stop with Ctrl-C. See docs/serve.md.
    """
    # heavy: the serve modules load PIL and numpy (uvicorn and starlette when it runs)
    from pinembed.serve.security import LOOPBACK, check_bind
    from pinembed.serve.server import run

    check_bind(host, token, insecure)
    open_existing(db)
    settings = replace(_library(), token=token or None, cors_origins=cors_origins, loopback_only=host in LOOPBACK,
                       device=device, memory_mb=memory_mb, storage_options=storage_options(),
                       **given(max_upload_bytes=max_upload_mb * MB if max_upload_mb else None,
                               time_limit_s=time_limit, workers=serve_workers, max_abandoned=max_abandoned,
                               header_timeout_s=header_timeout,
                               max_request_pixels=int(max_request_mpx * 1e6) if max_request_mpx else None))
    run(db, host, port, settings, on_ready=lambda url: click.echo(f"serving {db} at {url}", nl=True))
    click.echo("stopped", err=True)
