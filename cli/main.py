"""``pinembed``: ingest media into a LanceDB pin database and query related pins.

Exit codes: 0 everything ingested, 3 some inputs failed and the rest landed, 4 the database is locked by
another writer, 5 a fault of the disk or the object store (no space, read-only, permission denied,
unreachable; what was committed is kept, run the command again), 2 usage error, 1 fatal.
Heavy imports happen inside the commands, so ``pinembed --help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from pinembed import __version__
from pinembed.cli.common import (
    FloatRange,
    IntRange,
    db_option,
    handle_errors,
    json_option,
    kind_option,
    open_existing,
    storage_options,
    where_filter,
    where_option,
)
from pinembed.cli.doctor import doctor
from pinembed.cli.query import parse_terms, related, search
from pinembed.cli.shown import flat, shown

__all__ = ["cli", "main", "parse_terms"]

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pinembed")
def cli() -> None:
    """Embed images, videos and idea pins into one CLIP space in LanceDB, and find related pins."""


def ingest_options(fn):
    """The options that ingest and refresh share: model, batching, limits, video sampling, text weights."""
    opts = [
        click.option("--model", envvar="PINEMBED_MODEL", default=None,
                     help="Model id for a new database, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k, "
                          "open_clip:ViT-B-32//path/ckpt.pt, hf:openai/clip-vit-base-patch32. "
                          "An existing database uses its own model.  [env PINEMBED_MODEL]"),
        click.option("--batch-size", default=None, type=IntRange(1, 4096),
                     help="Images (frames, pages) per forward pass [default: 32 on a CPU, 256 on a GPU]."),
        click.option("--workers", default=None, type=IntRange(1, 4096),
                     help="local: decoding threads (and video decode processes) [default: min(4, usable CPUs) "
                          "with the model on the CPU, every usable CPU up to 32 with it on a GPU]; "
                          "ray: embedding actors [default: the cluster's GPUs, else its CPUs / --cpus-per-worker]."),
        click.option("--image-decode", default="auto", show_default=True, type=click.Choice(["auto", "pil", "device"]),
                     help="Still JPEGs: device decodes them in batches on the model's device (nvJPEG on a GPU) and "
                          "preprocesses them there; pil decodes them on CPU threads; auto is device on a GPU, "
                          "else pil. Files the device decoder refuses take the PIL path one by one."),
        click.option("--runner", default="local", show_default=True, type=click.Choice(["local", "ray"]),
                     help="Who reads and embeds: local (threads in this process) or ray (a Ray cluster; "
                          "pip install 'pinembed[ray]')."),
        click.option("--ray-address", default=None, envvar="RAY_ADDRESS",
                     help="ray: the cluster to use (auto, ray://host:10001) [default: a local one].  [env RAY_ADDRESS]"),
        click.option("--cpus-per-worker", default=1.0, show_default=True, type=FloatRange(0.1, 256),
                     help="ray: CPUs per embedding actor (and its torch threads)."),
        click.option("--gpus-per-worker", default=None, type=FloatRange(0, 16),
                     help="ray: GPUs per embedding actor [default: 1 when the cluster has GPUs, else 0]."),
        click.option("--max-pixels", default=None, type=IntRange(1),
                     help="Images larger than this are refused into the failure ledger [default: 64,000,000]."),
        click.option("--text-weight", default=0.0, show_default=True, type=FloatRange(0, 10),
                     help="Fuse the sidecar title/description of images and videos into the pin vector with this weight."),
        click.option("--idea-text-weight", default=0.5, show_default=True, type=FloatRange(0, 10),
                     help="Weight of an idea pin's title, description and page texts in its pin vector."),
        click.option("--fps", "max_fps", default=1.0, show_default=True, type=FloatRange(0.01, 60),
                     help="Sample videos and animations at most this many frames per second."),
        click.option("--max-frames", default=12, show_default=True, type=IntRange(1, 1000),
                     help="At most this many frames per video or animation."),
        click.option("--video-timeout", default=60.0, show_default=True, type=FloatRange(0.001),
                     help="Seconds one video may take to decode before it is recorded as a failure."),
        click.option("--image-timeout", default=None, type=FloatRange(0.001),
                     help="Seconds one image file may take to decode (in a decode process) before it is "
                          "recorded as a failure [default: 30]."),
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
    return fn


def _ingest_opts(batch_size: int | None, workers: int | None, image_decode: str, max_pixels: int | None, text_weight: float,
                 idea_text_weight: float, max_fps: float, max_frames: int, video_timeout: float,
                 image_timeout: float | None, max_video_pixels: int | None, id_prefix: str | None, runner: str, ray_address: str | None,
                 cpus_per_worker: float, gpus_per_worker: float | None) -> Any:
    from pinembed.ingestion.options import RayOptions
    from pinembed.ingestion.pipeline import IngestOptions
    from pinembed.ingestion.read import ReadLimits
    from pinembed.ingestion.video import VideoParams

    opts = IngestOptions(batch_size=batch_size, text_weight=text_weight, idea_text_weight=idea_text_weight,
                         id_prefix=id_prefix, image_decode=image_decode)
    guard = {"max_pixels": max_video_pixels} if max_video_pixels else {}
    opts.video = VideoParams(max_fps=max_fps, max_frames=max_frames, timeout_s=video_timeout, **guard)
    opts.runner = runner
    opts.ray = RayOptions(ray_address, workers if runner == "ray" else None, cpus_per_worker, gpus_per_worker)
    if workers and runner == "local":
        opts.workers = min(workers, 64)
    limits = {"max_pixels": max_pixels} if max_pixels else {}
    if image_timeout:
        limits["image_timeout_s"] = image_timeout
    if limits:
        opts.limits = ReadLimits(**limits)
    return opts


def _print_failures(failures: list[dict[str, Any]], n_failed: int, db: str, label: str = "failed") -> None:
    for f in failures[:20]:
        click.echo(f"  {label}: {shown(f['pin_id'] or f['uri'])}: [{f['stage']}/{f['error']}] {f['message']}", err=True)
    if len(failures) > 20:
        click.echo(f"  ... and {len(failures) - 20} more: pinembed failures --db {db}", err=True)


def _print_skipped(skipped: list[dict[str, str]], list_all: bool, command: str) -> None:
    """One summary line for skipped files (by reason), or each of them with --list-skipped."""
    if not skipped:
        return
    if list_all:
        for f in skipped:
            click.echo(f"  skipped: {f['path']}: [{f['reason']}] {f['message']}", err=True)
        return
    by: dict[str, int] = {}
    for f in skipped:
        by[f["reason"]] = by.get(f["reason"], 0) + 1
    reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(by.items(), key=lambda x: -x[1]))
    click.echo(f"  skipped {len(skipped)} file(s) ({reasons}): `{command} --list-skipped` names them", err=True)


@cli.command()
@click.argument("src", type=click.Path(file_okay=False, path_type=str))
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
    Nothing is deleted; `pinembed refresh` also follows moves and deletions.

    Exit codes: 0 clean, 3 some inputs failed, 4 another writer holds the database, 5 a fault of the
    disk or object store (no space, read-only, unreachable; what was committed is kept: run it again),
    2 usage error, 1 fatal.
    """
    from contextlib import nullcontext

    from pinembed.store.deadline import exit_when_stuck
    from pinembed.store.lease import is_object_store
    from pinembed.store.lock import WriteLock

    exit_when_stuck(as_json)  # a run stuck in a store call past its lease ends the process (exit 5)
    # the lock first, so a second writer hears it at once; on object storage the database is opened first
    # (its errors name the endpoint) and PinIndex.ingest takes the lease
    first = nullcontext() if is_object_store(db) else WriteLock(db, "ingest", storage_options(), reentrant=True)
    with first:
        import pinembed

        opts = _ingest_opts(**kw)
        idx = pinembed.open_index(db, model=model, device=device, precision=precision,
                                  storage_options=storage_options())
        with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
            summary = idx.ingest(src, opts, progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), default=str))
    else:
        s = summary
        click.echo(
            f"added {s.added}, updated {s.updated}, unchanged {s.unchanged}, failed {s.failed}"
            + (f" (withdrawn {s.withdrawn}: changed and now broken)" if s.withdrawn else "")
            + f", warnings {s.warnings}, skipped {s.skipped} in {s.elapsed_s:.1f}s ({s.items_per_s:.1f} items/s) -> {db}"
        )
        _print_failures(s.failures, s.failed, db)
        _print_failures(s.warning_rows, s.warnings, db, "warning")
        _print_skipped(s.skipped_files, list_skipped, f"pinembed ingest {src} --db {db}")
    sys.exit(summary.exit_code)


@cli.command()
@click.argument("src", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@db_option
@ingest_options
@click.option("--dry-run", is_flag=True, help="Print the plan (what would be added, changed, moved, deleted) and write nothing.")
@click.option("--max-attempts", default=3, show_default=True, type=IntRange(1),
              help="Give up on an input that failed this many runs, until it changes.")
@click.option("--retry-failed", is_flag=True, help="Retry inputs given up on, too.")
@json_option
@handle_errors
def refresh(src: tuple[str, ...], db: str, model: str | None, device: str | None, precision: str | None,
            dry_run: bool, max_attempts: int, retry_failed: bool, as_json: bool, list_skipped: bool, **kw: Any) -> None:
    """Bring the database in line with SRC folders: the cron job.

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

    Logs go to stderr; --json prints one summary line. Exit codes: 0 clean, 3 some inputs failed,
    4 another ingest/refresh holds the database, 5 a fault of the disk or object store (what was
    committed is kept: run it again), 2 usage error, 1 fatal.
    """
    import logging

    from pinembed.ingestion.refresh import RefreshOptions
    from pinembed.ingestion.refresh import refresh as run_refresh
    from pinembed.store.deadline import exit_when_stuck

    exit_when_stuck(as_json)  # a run stuck in a store call past its lease ends the process (exit 5)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("pinembed").setLevel(logging.INFO)
    opts = RefreshOptions(ingest=_ingest_opts(**kw), max_attempts=max_attempts, retry_failed=retry_failed,
                          dry_run=dry_run)
    with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
        s = run_refresh(list(src), db, model, opts, device=device, precision=precision,
                        storage_options=storage_options(), progress=progress)
    if as_json:
        click.echo(json.dumps(s.to_dict(), default=str))
        sys.exit(s.exit_code)
    p = s.planned
    head = "plan (dry run, nothing written)" if s.dry_run else "refreshed"
    click.echo(f"{head}: new {p['new']}, changed {p['changed']}, unchanged {p['unchanged']}, moved {p['moved']}, "
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
    _print_failures(s.failures, s.failed, db)
    _print_failures(s.warning_rows, s.warnings, db, "warning")
    _print_skipped(s.skipped_files, list_skipped, f"pinembed refresh {' '.join(src)} --db {db}")
    sys.exit(s.exit_code)


@cli.command()
@db_option
@json_option
@handle_errors
def models(db: str, as_json: bool) -> None:
    """The model generations of the database: the live one, one being built, retired ones."""

    from pinembed.errors import DamagedError
    from pinembed.store.doctor import locate

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


@cli.command()
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


@cli.command()
@db_option
@json_option
@handle_errors
def gc(db: str, as_json: bool) -> None:
    """Drop retired model generations (their tables) and compact the live one."""
    import pinembed
    from pinembed.store.deadline import exit_when_stuck

    exit_when_stuck(as_json)

    dropped = pinembed.open_index(db, storage_options=storage_options()).gc()
    if as_json:
        click.echo(json.dumps({"dropped": dropped}))
    else:
        click.echo(f"dropped generation(s) {', '.join(map(str, dropped))}" if dropped else "nothing to drop")


@cli.command()
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


@cli.command()
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


@cli.command()
@db_option
@json_option
@handle_errors
def stats(db: str, as_json: bool) -> None:
    """Counts by kind, segments, failures, and the model that built the database."""

    s = open_existing(db).stats()
    if as_json:
        click.echo(json.dumps(s, default=str))
        return
    space = s["space"] or {}
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items())) or "none"
    click.echo(f"db: {s['db']}\npins: {s['pins']} ({kinds})\nsegments: {s['segments']}\nfailures: {s['failures']}")
    click.echo(f"model: {space.get('model_id', '-')} (dim {space.get('dim', '-')})")


@cli.command()
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Folder of images with sidecar titles, videos with titles, idea pins with page texts.")
@click.option("--pairs", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Engagement pairs (CSV or Parquet, see `pinembed eval --help`) of pins in --db: fine-tune on "
                   "them instead of on --data.")
@db_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder to write the model to (open_clip_config.json + open_clip_model.safetensors).")
@click.option("--arch", default="pinembed-nano", show_default=True,
              help="open_clip architecture name or JSON config file.")
@click.option("--init", default=None, help="An open_clip model id to fine-tune instead of starting from random "
                                           "(with --pairs: the database's model when not given).")
@click.option("--epochs", default=None, type=IntRange(1), help="[default: 10; 12 with --pairs]")
@click.option("--batch-size", default=None, type=IntRange(2), help="[default: 128; 64 pairs with --pairs]")
@click.option("--lr", default=None, type=FloatRange(0, min_open=True), help="[default: 1e-3]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--dtype", default="fp32", show_default=True, type=click.Choice(["fp32", "fp16"]),
              help="Precision of the saved weights (fp16 halves the file).")
@click.option("--holdout", default=0.2, show_default=True, type=FloatRange(0, 1, min_open=True, max_open=True),
              help="--pairs: the latest share of pairs (by timestamp) held out for early stopping.")
@click.option("--patience", default=2, show_default=True, type=IntRange(1),
              help="--pairs: epochs without a held-out Recall@10 gain before stopping.")
@click.option("--text-weight", default=1.5, show_default=True, type=FloatRange(0),
              help="--pairs: weight of the image-text term on the pins' titles (keeps text search and what "
                   "pins show: related by content).")
@click.option("--train-blocks", default=2, show_default=True, type=IntRange(0),
              help="--pairs: train only the image tower's last N blocks and its head (the frozen rest runs once "
                   "per pin); 0: the whole tower.")
@click.option("--anchor-weight", default=30.0, show_default=True, type=FloatRange(0),
              help="--pairs: weight of the drift term that keeps what the model saw before in place (no "
                   "forgetting): the --anchor-data images' vectors when given, else the pins'; 0: none.")
@click.option("--anchor-data", default=None, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="--pairs: a folder of images (best: a few thousand of what the initial model was trained on; "
                   "256 a step, up to 5,000) whose vectors the anchor holds instead of the pins' (rehearsal), so "
                   "content elsewhere keeps its neighbours.")
@click.option("--negatives", default=64, show_default=True, type=IntRange(0),
              help="--pairs: pins of the database outside the batch added as negatives each step (from the "
                   "training pairs' pins and up to 2,000 pins in no pair, which the held-out ranking includes "
                   "too); 0: in-batch negatives only.")
@click.option("--idea-text-weight", default=0.5, show_default=True, type=FloatRange(0),
              help="--pairs: how idea pins mix their texts into their vectors; give what ingest used.")
@json_option
@handle_errors
def train(data: str | None, pairs: str | None, db: str, out: str, arch: str, init: str | None, epochs: int | None,
          batch_size: int | None, lr: float | None, seed: int, dtype: str, holdout: float, patience: int,
          text_weight: float, train_blocks: int, anchor_weight: float, anchor_data: str | None,
          negatives: int, idea_text_weight: float, as_json: bool) -> None:
    """Train (or fine-tune) a CLIP model: on image-text pairs from a folder (--data, open_clip's ClipLoss),
    or on engaged pin pairs of a database (--pairs --db: a symmetric InfoNCE over in-batch negatives and
    --negatives pins of the database on the image tower, early stopping on the held-out latest pairs'
    Recall@10)."""
    if (data is None) == (pairs is None):
        raise click.UsageError("give --data (image-text training) or --pairs with --db (engagement fine-tuning)")
    if pairs is not None:
        from pinembed.training.engagement_train import PairTrainConfig, format_result, train_on_pairs

        pcfg = PairTrainConfig(pairs=pairs, db=db, out=out, init=init, epochs=epochs or PairTrainConfig.epochs,
                               batch_size=batch_size or 64,
                               lr=lr or 1e-3, seed=seed, dtype=dtype, holdout=holdout, patience=patience,
                               text_weight=text_weight, train_blocks=train_blocks or None,
                               anchor_weight=anchor_weight, anchor_data=anchor_data, negatives=negatives,
                               idea_text_weight=idea_text_weight,
                               storage_options=storage_options())
        with _progress(enabled=not as_json and sys.stderr.isatty(), label="fine-tuning") as progress:
            res = train_on_pairs(pcfg, (lambda step, total, loss: progress(step, total)) if progress else None)
        click.echo(json.dumps({k: v for k, v in vars(res).items() if k != "losses"}) if as_json else format_result(res))
        return
    from pinembed.training.train import TrainConfig
    from pinembed.training.train import train as run_train

    cfg = TrainConfig(data=data, out=out, arch=arch, init=init, epochs=epochs or TrainConfig.epochs,
                      batch_size=batch_size or 128,
                      lr=lr or 1e-3, seed=seed, dtype=dtype)
    with _progress(enabled=not as_json and sys.stderr.isatty(), label="training") as progress:
        result = run_train(cfg, (lambda step, total, loss: progress(step, total)) if progress else None)
    if as_json:
        click.echo(json.dumps({k: v for k, v in vars(result).items() if k != "losses"}))
    else:
        click.echo(f"trained on {result.pairs} pairs, {result.steps} steps in {result.seconds:.0f}s: "
                   f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}\nmodel id: {result.model_id}")


@cli.command(name="eval")
@db_option
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="CSV with columns pin_id, label and optionally text (a text query for the label).")
@click.option("--pairs", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Engagement pairs (CSV or Parquet): query_pin_id, engaged_pin_id, optional weight, timestamp, "
                   "action (save, click, closeup).")
@json_option
@handle_errors
def eval_(db: str, labels: str | None, pairs: str | None, as_json: bool) -> None:
    """Retrieval quality against labels or engagement pairs.

    --labels: text->pin and pin->pin recall@1/5/10, related precision@10, cross-kind precision@5
    (image->video, video->idea, idea->image) and hub metrics. A hit is a result with the query's label.
    Labels file: CSV with a header row and the columns pin_id and label, and optionally text (the text
    query for that label; the label when absent).

    --pairs: Pinterest's offline protocol. For each (query, engaged) pair, rank = 1 + the pins (all of
    them, exactly; the pair's own two left out) whose cosine to the query is at least the engaged pin's;
    Recall@1/10/100 and MRR, overall, by query kind -> engaged kind and by action; hubs. Pairs whose pins
    are not in the database are counted and left out.
    """
    if (labels is None) == (pairs is None):
        raise click.UsageError("give --labels or --pairs (one of them)")
    if pairs is not None:
        from pinembed.training.engagement_eval import evaluate_pairs, format_report
        from pinembed.training.engagement_pairs import read_pairs

        report = evaluate_pairs(open_existing(db).store, read_pairs(pairs))
        click.echo(json.dumps(report) if as_json else format_report(report))
        return
    from pinembed.training.evaluate import evaluate

    report = evaluate(open_existing(db), labels)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"pins {report['pins']}, labelled {report['labelled']} ({report['labels']} labels), "
               f"missing {report['missing']}")
    for name in ("text_to_pin", "pin_to_pin"):
        click.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in report[name].items()))
    for name, v in report["cross_kind"].items():
        click.echo(f"{name}: precision@5 {v['precision@5']} ({v['queries']} queries)")
    h = report["hubs"]
    click.echo(f"hubs: {h['share_over_1pct']:.1%} of pins in >1% of top-10 lists; p90 {h['p90']:.0f}, max {h['max']:.0f}")


@cli.command()
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
@click.option("--max-upload-mb", default=20, show_default=True, type=IntRange(1, 1024),
              help="Largest request body (search by image).")
@click.option("--time-limit", default=30.0, show_default=True, type=FloatRange(0.1, 3600),
              help="Seconds a request may take before it is answered 504.")
@click.option("--memory-mb", default=None, type=FloatRange(0), metavar="MB",
              help="Hold the pins' vectors and cards in memory when they fit in MB (default: a quarter of the "
                   "machine's memory; 0: never). Related pins then take one database query (1M x 512-d: ~2.6 GB).")
@click.option("--workers", "serve_workers", default=None, type=IntRange(1, 256),
              help="Threads for requests' blocking work [default: 8].")
@click.option("--max-abandoned", default=None, type=IntRange(0, 1024),
              help="Requests answered 504 whose work still runs; past this, new ones are 503 at once [default: 4].")
@click.option("--max-request-mpx", default=None, type=FloatRange(0.001),
              help="Megapixels of all the images of one request together (read from their headers) [default: 64].")
@click.option("--header-timeout", default=None, type=FloatRange(0.1, 3600),
              help="Seconds a connection may take to send a request's headers before it is closed [default: 10].")
@click.option("--device", default=None, help="torch device for text and image search (default: cuda when present).")
@handle_errors
def serve(db: str, host: str, port: int, token: str | None, insecure: bool, cors_origins: tuple[str, ...],
          max_upload_mb: int, time_limit: float, memory_mb: float | None, serve_workers: int | None,
          max_abandoned: int | None, max_request_mpx: float | None, header_timeout: float | None,
          device: str | None) -> None:
    """Serve the database over HTTP: JSON endpoints (related, session, search, pin, thumb, media,
    health, stats; /api/openapi.json describes them) and a page to browse it.

    A refresh or a model switch by the cron job is picked up within about a second, without a restart.
    `pinembed search|related --server URL` ask it from the command line (no model load there).
    Stop with Ctrl-C. See docs/serve.md.
    """
    from pinembed.serve.security import LOOPBACK, check_bind
    from pinembed.serve.server import run
    from pinembed.serve.settings import ServeSettings

    check_bind(host, token, insecure)
    open_existing(db)
    given = {"workers": serve_workers, "max_abandoned": max_abandoned, "header_timeout_s": header_timeout,
             "max_request_pixels": int(max_request_mpx * 1e6) if max_request_mpx else None}
    settings = ServeSettings(token=token or None, cors_origins=cors_origins, loopback_only=host in LOOPBACK,
                             max_upload_bytes=max_upload_mb * 1024 * 1024, time_limit_s=time_limit, device=device,
                             memory_mb=memory_mb, storage_options=storage_options(),
                             **{k: v for k, v in given.items() if v is not None})
    run(db, host, port, settings, on_ready=lambda url: click.echo(f"serving {db} at {url}", nl=True))
    click.echo("stopped", err=True)


@cli.command()
@db_option
@kind_option
@where_option
@json_option
@handle_errors
def pins(db: str, kinds: tuple[str, ...], where: tuple[str, ...], as_json: bool) -> None:
    """List pin ids with their kind, uri and title (tab-separated; streamed in batches).

    These are the ids that `pinembed related` takes, as printed: a line break, tab, other control
    character or backslash in an id or uri is escaped (a\\nb.png, \\t, \\x1b, \\\\), titles are
    flattened to one line. --json prints {"pins": [{pin_id, kind, uri, title}, ...]} with the ids as they are.
    """
    batches = open_existing(db).iter_pins(1024, ("pin_id", "kind", "uri", "title"), kinds or None, where_filter(where))
    try:
        _print_pins(batches, as_json)
    except BrokenPipeError:  # `pinembed pins | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_pins(batches: Any, as_json: bool) -> None:
    first = next(batches, None)  # errors (a bad --where) surface before any output
    if as_json:
        sep = ""
        click.echo('{"pins": [', nl=False)
        for batch in _chain(first, batches):
            for row in batch.to_pylist():
                click.echo(sep + json.dumps(row, default=str), nl=False)
                sep = ", "
        click.echo("]}")
        return
    if first is None:
        click.echo("no pins", err=True)
    for batch in _chain(first, batches):
        lines = ["\t".join((shown(row["pin_id"]), shown(row["kind"]), shown(row["uri"]), flat(row["title"])))
                 for row in batch.to_pylist()]
        click.echo("\n".join(lines))


def _chain(first: Any, rest: Any) -> Any:
    if first is not None:
        yield first
        yield from rest


@cli.command()
@click.argument("out", metavar="OUT.parquet|OUT.jsonl")
@db_option
@click.option("--segments", is_flag=True,
              help="Also write the frame, page and text vectors of those pins to OUT.segments.parquet (or .jsonl).")
@kind_option
@where_option
@json_option
@handle_errors
def export(out: str, db: str, segments: bool, kinds: tuple[str, ...], where: tuple[str, ...], as_json: bool) -> None:
    """Write the pins (pin_id, kind, uri, title, description, width, height, duration_s, model_id, vector)
    to OUT: Parquet or JSON Lines by its extension, streamed, renamed into place when complete (a
    missing folder of OUT is created).

    The stable way to get pins out: the tables inside the database change name after a model switch.
    """
    from pinembed.export import export as run_export
    from pinembed.export import format_of

    format_of(out)  # refuse another extension before opening anything
    s = run_export(open_existing(db), out, segments=segments, kinds=kinds or None, where=where_filter(where))
    if as_json:
        click.echo(json.dumps(s.to_dict()))
        return
    click.echo(f"exported {s.pins} pins to {s.out}"
               + (f", {s.segments} segments to {s.segments_out}" if s.segments_out else ""))


class _progress:
    """A rich progress bar on a terminal; nothing otherwise. The object it yields is called with
    (done, total) and told the phase with ``.phase(label)``."""

    def __init__(self, enabled: bool, label: str = "embedding") -> None:
        self.enabled = enabled
        self.label = label
        self._bar = None
        self._task = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=None)
        return self

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def phase(self, label: str) -> None:
        """What the run is doing now ("loading model", "embedding")."""
        self._bar.update(self._task, description=label, completed=0, total=None)

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


cli.add_command(related)
cli.add_command(doctor)
cli.add_command(search)


def main() -> None:
    """Console entry point."""
    cli()


if __name__ == "__main__":
    main()
