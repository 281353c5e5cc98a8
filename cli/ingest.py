"""``pinembed ingest`` and ``pinembed refresh``: their shared options (model, batching, limits, video
sampling, text weights, the runner), read over the library's ``IngestOptions``, and their summaries."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

import pinembed
from pinembed.cli.catalog_options import catalog_options, catalog_opts
from pinembed.cli.common import (
    FloatRange,
    IntRange,
    db_option,
    given,
    json_option,
    library_option,
    storage_options,
)
from pinembed.cli.errors import handle_errors
from pinembed.cli.output import ProgressBar, print_failures, print_skipped
from pinembed.cli.shown import shown

if TYPE_CHECKING:
    from pinembed.ingestion.options import IngestOptions
    from pinembed.ingestion.refresh import RefreshOptions


def _library() -> IngestOptions:
    """The library's ingest options, all defaults (imported when needed: the ingestion modules load
    PIL and numpy, too slow for ``pinembed --help`` and for a run's lock, which comes first)."""
    from pinembed.ingestion.options import IngestOptions

    return IngestOptions()


def _refresh_library() -> type[RefreshOptions]:
    """The library's refresh options (imported when needed, as ``_library``)."""
    from pinembed.ingestion.refresh import RefreshOptions

    return RefreshOptions


def _batch_sizes() -> str:
    cpu, gpu = _library().settled("cpu").batch_size, _library().settled("cuda").batch_size
    return f"{cpu} on a CPU, {gpu} on a GPU"


def ingest_options(fn: Any) -> Any:
    """The options that ingest and refresh share: model, batching, limits, video sampling, text weights."""
    opts = [
        click.option("--model", envvar="PINEMBED_MODEL", default=None,
                     help="Model id for a new database, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k, "
                          "open_clip:ViT-B-32//path/ckpt.pt, hf:openai/clip-vit-base-patch32. "
                          "An existing database uses its own model.  [env PINEMBED_MODEL]"),
        library_option("--batch-size", library=lambda: _library().batch_size, shown=_batch_sizes, type=IntRange(1, 4096),
                       help="Images (frames, pages) per forward pass [default: {default}]."),
        click.option("--workers", default=None, type=IntRange(1, 4096),
                     help="local: decoding threads (and video decode processes) [default: min(4, usable CPUs) "
                          "with the model on the CPU, every usable CPU up to 32 with it on a GPU]; "
                          "ray: embedding actors [default: the cluster's GPUs, else its CPUs / --cpus-per-worker]."),
        library_option("--image-decode", library=lambda: _library().image_decode, show_default=True,
                       type=click.Choice(["auto", "pil", "device"]),
                       help="Still JPEGs: device decodes them in batches on the model's device (nvJPEG on a GPU) "
                            "and preprocesses them there; pil decodes them on CPU threads; auto is device on a GPU, "
                            "else pil. Files the device decoder refuses take the PIL path one by one."),
        library_option("--runner", library=lambda: _library().runner, show_default=True,
                       type=click.Choice(["local", "ray"]),
                       help="Who reads and embeds: local (threads in this process) or ray (a Ray cluster; "
                            "pip install 'pinembed[ray]')."),
        click.option("--ray-address", default=None, envvar="RAY_ADDRESS",
                     help="ray: the cluster to use (auto, ray://host:10001) [default: a local one].  [env RAY_ADDRESS]"),
        library_option("--cpus-per-worker", library=lambda: _library().ray.cpus_per_worker, show_default=True,
                       type=FloatRange(0.1, 256), help="ray: CPUs per embedding actor (and its torch threads)."),
        click.option("--gpus-per-worker", default=None, type=FloatRange(0, 16),
                     help="ray: GPUs per embedding actor [default: 1 when the cluster has GPUs, else 0]."),
        library_option("--max-pixels", library=lambda: _library().limits.max_pixels,
                       shown=lambda: f"{_library().limits.max_pixels:,}", type=IntRange(1),
                       help="Images larger than this are refused into the failure ledger [default: {default}]."),
        library_option("--text-weight", library=lambda: _library().text_weight, show_default=True,
                       type=FloatRange(0, 10),
                       help="Fuse the sidecar title/description of images and videos into the pin vector with this "
                            "weight."),
        library_option("--idea-text-weight", library=lambda: _library().idea_text_weight, show_default=True,
                       type=FloatRange(0, 10),
                       help="Weight of an idea pin's title, description and page texts in its pin vector."),
        library_option("--fps", "max_fps", library=lambda: _library().video.max_fps, show_default=True,
                       type=FloatRange(0.01, 60), help="Sample videos and animations at most this many frames per second."),
        library_option("--max-frames", library=lambda: _library().video.max_frames, show_default=True,
                       type=IntRange(1, 1000), help="At most this many frames per video or animation."),
        library_option("--video-timeout", library=lambda: _library().video.timeout_s, show_default=True,
                       type=FloatRange(0.001),
                       help="Seconds one video may take to decode before it is recorded as a failure."),
        library_option("--image-timeout", library=lambda: _library().limits.image_timeout_s,
                       shown=lambda: f"{_library().limits.image_timeout_s:g}",
                       type=FloatRange(0.001),
                       help="Seconds one image file may take to decode (in a decode process) before it is "
                            "recorded as a failure [default: {default}]."),
        click.option("--max-video-pixels", default=None, type=IntRange(1),
                     help="Videos with larger frames are refused into the failure ledger [default: 7680x4320]."),
        click.option("--id-prefix", default=None,
                     help="Prefix for this source's pin ids (PREFIX/rel/path.jpg). Each source folder owns its "
                          "prefix: a second folder needs its own. A known source keeps its recorded prefix."),
        click.option("--list-skipped", is_flag=True, help="Name every skipped file (not media, camera RAW, ...)."),
        click.option("--device", default=None, help="torch device (default: cuda when present, else cpu)."),
        click.option("--precision", default=None, envvar="PINEMBED_PRECISION",
                     type=click.Choice(["auto", "fp32", "fp16", "int8"]),
                     help="auto: fp16 on CUDA; on a CPU int8 when the model's int8 vectors agree with fp32 "
                          "(cosine >= 0.999, neighbours' recall@10 >= 0.99; checked once per model and machine), "
                          "else fp32. int8: dynamic quantization on CPU (faster).  [env PINEMBED_PRECISION]"),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return catalog_options(fn)


def _ingest_opts(batch_size: int | None, workers: int | None, image_decode: str | None, max_pixels: int | None,
                 text_weight: float | None, idea_text_weight: float | None, max_fps: float | None,
                 max_frames: int | None, video_timeout: float | None, image_timeout: float | None,
                 max_video_pixels: int | None, id_prefix: str | None, runner: str | None, ray_address: str | None,
                 cpus_per_worker: float | None, gpus_per_worker: float | None, **catalog: Any) -> IngestOptions:
    """The library's ingest options with what the command line gave (None: left out) put in."""
    base = replace(_library(), catalog=catalog_opts(catalog))
    runner = runner or base.runner
    ray = replace(base.ray, **given(address=ray_address, workers=workers if runner == "ray" else None,
                                    cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker))
    video = replace(base.video, **given(max_fps=max_fps, max_frames=max_frames, timeout_s=video_timeout,
                                        max_pixels=max_video_pixels))
    limits = replace(base.limits, **given(max_pixels=max_pixels, image_timeout_s=image_timeout))
    local_workers = min(workers, 64) if workers and runner == "local" else None
    return replace(base, runner=runner, ray=ray, video=video, limits=limits,
                   **given(batch_size=batch_size, text_weight=text_weight, idea_text_weight=idea_text_weight,
                           id_prefix=id_prefix, image_decode=image_decode, workers=local_workers))


def _progress(as_json: bool) -> ProgressBar:
    return ProgressBar(enabled=not as_json and sys.stderr.isatty())


@click.command()
@click.argument("src", type=click.Path(path_type=str))
@db_option
@ingest_options
@json_option
@handle_errors
def ingest(src: str, db: str, model: str | None, device: str | None, precision: str | None, as_json: bool,
           list_skipped: bool, **kw: Any) -> None:
    """Embed every image, video and idea pin under SRC into the database (new and changed ones only).

    \b
    Images: jpg, png, webp, gif, bmp, tif (the first page), heic/heif, avif, jp2, pnm/pbm/pgm/ppm,
    mpo (the first picture), tga, psd (the composite), ico (the largest), dds, pcx, sgi, qoi, icns, cur, dib, blp.
    Motion: animated gif, webp, png and avif/avifs (sampled like videos).
    Videos: mp4, m4v, mov, webm, mkv, avi.
    Idea pins: folders holding a pin.json.
    A sidecar photo.json ({"title", "description"}) or photo.txt gives a title. Other files
    (camera RAW, documents) are skipped and named: --list-skipped or --json. Symlinks inside SRC
    are followed; links out of SRC and folder loops are skipped and named.
    Image and video decoders run in decode processes: a file that crashes or hangs one
    (--image-timeout, --video-timeout) is a failure of that file only. A changed file that now
    fails is withdrawn: its pin leaves results at once (the ledger says why).
    Each source folder owns its pin ids (the path under it); a second folder needs --id-prefix.
    SRC may be an object-storage prefix (s3://bucket/media/, gs://, az://; --storage-option applies).
    A .tar in SRC is a webdataset shard: each sample (key.jpg + key.json + key.txt) is a pin, its
    JSON fields attributes. SRC may also be a catalog: a .parquet, .csv or .jsonl table of pins (or a
    folder or prefix holding only such tables), one row a pin with its id, media and attributes
    (--id-col, --media-col, ...; http(s) media only from --allow-host hosts).
    Nothing is deleted; `pinembed refresh` also follows moves and deletions.

    Exit codes: 0 clean, 3 some inputs failed, 4 another writer holds the database, 5 a fault of the
    disk or object store (no space, read-only, unreachable; what was committed is kept: run it again),
    2 usage error, 1 fatal.
    """
    # heavy: the store package loads pyarrow
    from pinembed.store.deadline import exit_when_stuck
    from pinembed.store.lock import WriteLock
    from pinembed.store.objects import is_object_store

    exit_when_stuck(as_json)  # a run stuck in a store call past its lease ends the process (exit 5)
    # the lock first, so a second writer hears it at once; on object storage the database is opened first
    # (its errors name the endpoint) and PinIndex.ingest takes the lease
    first = nullcontext() if is_object_store(db) else WriteLock(db, "ingest", storage_options(), reentrant=True)
    with first:
        opts = _ingest_opts(**kw)
        idx = pinembed.open_index(db, model=model, device=device, precision=precision, storage_options=storage_options())
        with _progress(as_json) as progress:
            summary = idx.ingest(src, opts, progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), default=str))
    else:
        s = summary
        click.echo(
            f"added {s.added}, updated {s.updated}"
            + (f", fields updated {s.fields_updated}" if s.fields_updated else "")
            + f", unchanged {s.unchanged}, failed {s.failed}"
            + (f" (withdrawn {s.withdrawn}: changed and now broken)" if s.withdrawn else "")
            + f", warnings {s.warnings}, skipped {s.skipped} in {s.elapsed_s:.1f}s ({s.items_per_s:.1f} items/s) -> {db}"
        )
        print_failures(s.failures, s.failed, db)
        print_failures(s.warning_rows, s.warnings, db, "warning")
        print_skipped(s.skipped_files, list_skipped, f"pinembed ingest {src} --db {db}")
    sys.exit(summary.exit_code)


@click.command()
@click.argument("src", nargs=-1, required=True, type=click.Path(path_type=str))
@db_option
@ingest_options
@click.option("--dry-run", is_flag=True, help="Print the plan (what would be added, changed, moved, deleted) and write nothing.")
@library_option("--max-attempts", library=lambda: _refresh_library().max_attempts, show_default=True,
                type=IntRange(1), help="Give up on an input that failed this many runs, until it changes.")
@click.option("--retry-failed", is_flag=True, help="Retry inputs given up on, too.")
@json_option
@handle_errors
def refresh(src: tuple[str, ...], db: str, model: str | None, device: str | None, precision: str | None,
            dry_run: bool, max_attempts: int | None, retry_failed: bool, as_json: bool, list_skipped: bool,
            **kw: Any) -> None:
    """Bring the database in line with SRC folders (or catalogs): the cron job.

    \b
    unchanged  same size and mtime: one stat, nothing read, no model loaded
    changed    re-embedded (a changed sidecar title or pin.json text counts)
    moved      same content hash under a new path (moved, renamed): vectors reused
    copied     the same, with the original still there
    deleted    media gone (not moved): removed from pins and segments
    failed     a changed file that now fails is withdrawn (its pin leaves results at once);
               retried; given up after --max-attempts runs unless it changes or --retry-failed
               (a given-up input is not read and loads no model: exit 0)
    stale      with --model NEW: a new generation is built beside the live one and goes live
               when complete (resumable); `pinembed models` lists generations, `pinembed gc` drops old ones

    SRC may be catalogs instead (tables of pins, see `pinembed ingest --help`): a row is unchanged when
    its version (--version-col) or its media's size/mtime/ETag, its media value and its fields are;
    a changed title, description or attribute rewrites the pin without embedding (fields updated);
    pins whose rows are gone are deleted. Catalogs and folders go in separate runs.

    Logs go to stderr; --json prints one summary line. Exit codes: 0 clean, 3 some inputs failed,
    4 another ingest/refresh holds the database, 5 a fault of the disk or object store (what was
    committed is kept: run it again), 2 usage error, 1 fatal.
    """
    import logging  # only refresh logs to stderr

    # heavy: the ingestion modules load PIL and numpy, the store package pyarrow
    from pinembed.ingestion.refresh import refresh as run_refresh
    from pinembed.store.deadline import exit_when_stuck

    exit_when_stuck(as_json)  # a run stuck in a store call past its lease ends the process (exit 5)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("pinembed").setLevel(logging.INFO)
    opts = _refresh_library()(ingest=_ingest_opts(**kw), retry_failed=retry_failed, dry_run=dry_run,
                              **given(max_attempts=max_attempts))
    with _progress(as_json) as progress:
        s = run_refresh(list(src), db, model, opts, device=device, precision=precision,
                        storage_options=storage_options(), progress=progress)
    if as_json:
        click.echo(json.dumps(s.to_dict(), default=str))
        sys.exit(s.exit_code)
    p = s.planned
    head = "plan (dry run, nothing written)" if s.dry_run else "refreshed"
    fields = f", fields updated {p['updated']}" if "updated" in p else ""  # catalog rows
    click.echo(f"{head}: new {p['new']}, changed {p['changed']}{fields}, unchanged {p['unchanged']}, moved {p['moved']}, "
               f"copied {p['copied']}, deleted {p['deleted']}, retried {p['retry']}, given up {p['given_up']}, "
               f"stale {p['stale']}" + ("" if s.dry_run else f"; failed {s.failed}"
                                         + (f" (withdrawn {s.withdrawn})" if s.withdrawn else "")
                                         + f", warnings {s.warnings}")
               + f", skipped {s.skipped} in {s.elapsed_s:.1f}s -> {db}")
    if s.dry_run:
        for cat, ids in s.examples.items():
            click.echo(f"  {cat}: " + ", ".join(map(shown, ids[:10])) + (" ..." if p.get(cat, 0) > 10 else ""))
    if s.switched:
        click.echo(f"generation {s.generation} ({s.model_id}) is live; `pinembed gc --db {db}` drops the old one")
    print_failures(s.failures, s.failed, db)
    print_failures(s.warning_rows, s.warnings, db, "warning")
    print_skipped(s.skipped_files, list_skipped, f"pinembed refresh {' '.join(src)} --db {db}")
    sys.exit(s.exit_code)
