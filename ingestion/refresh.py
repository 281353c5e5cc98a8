"""``pinembed refresh``: bring a database in line with its sources, for cron.

Diff (see plan.make_refresh_plan) -> reuse vectors of moved and copied pins -> embed new, changed,
stale and retried entries -> delete pins whose media is gone -> upkeep -> go live (model upgrades).
A no-change refresh stats the sources and reads the store's (pin id, signature) columns: no file is
read or hashed and no model is loaded. The database's write lock is held throughout (LockedError,
exit code 4, for a second writer); a refresh killed at any point is finished by the next one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pinembed import failpoints
from pinembed.embedders import get_embedder
from pinembed.errors import InputError, UsageError
from pinembed.store.db import Store
from pinembed.store.generations import building_for
from pinembed.store.identity import same_space, space_identity
from pinembed.store.lock import WriteLock
from pinembed.store.schema import PinPlace

from . import runners
from .catalog import catalog_root, is_catalog
from .catalog_run import run_catalog, usage_for_mixed
from .discover import gc_paused
from .driver import Run, RunSummary
from .entry import Discovery, Entry
from .model import model_for
from .options import IngestOptions, Progress, phase
from .plan import Move, RefreshPlan, make_refresh_plan, survey
from .read import content_hash
from .sample_fields import record as record_attributes
from .sidecar import read_sidecar
from .sources import resolve, source_root, under

log = logging.getLogger(__name__)
EXAMPLES = 20  # ids per category in a summary
HINT = "check the path (and that its disk is mounted); nothing was changed"
COLUMNS = ("pin_id", "kind", "uri", "source", "source_sig", "content_hash")  # what the plan reads of each stored pin


@dataclass
class RefreshOptions:
    """Knobs of a refresh: the ingest options, plus the failure policy and dry run."""

    ingest: IngestOptions = field(default_factory=IngestOptions)
    max_attempts: int = 3  # give up on an input after this many failed runs (unless it changes)
    retry_failed: bool = False  # retry given-up inputs too
    dry_run: bool = False  # plan only; write nothing, load no model


@dataclass
class RefreshSummary(RunSummary):
    """What a refresh found and did. ``planned`` counts entries per category; the rest is what landed."""

    dry_run: bool = False
    planned: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few pin ids per category
    added: int = 0
    updated: int = 0
    reused: int = 0  # moved and copied pins written from stored vectors
    deleted: int = 0  # pins whose media is gone (a moved pin is counted in planned["moved"] only)
    failed: int = 0  # inputs that failed in this run (their ledger rows are in ``failures``)
    warnings: int = 0  # pins that landed with a warning (``warning_rows``)
    skipped: int = 0  # files not read (named in ``skipped_files``)
    given_up: int = 0  # inputs that failed --max-attempts runs and did not change since: not read
    withdrawn: int = 0  # stored pins whose changed file failed: taken out of results (the ledger says why)
    model_loaded: bool = False
    model_id: str | None = None
    generation: int | None = None  # the generation written
    switched: bool = False  # a model upgrade went live in this run
    index: str = "exact"
    elapsed_s: float = 0.0
    sources: list[dict[str, str]] = field(default_factory=list)  # root and id prefix of each source
    failures: list[dict[str, Any]] = field(default_factory=list)
    warning_rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    # exit_code: 3 when inputs failed in this run; given-up ones are not retried, so not counted


def refresh(sources: list[str | os.PathLike[str]], uri: str, model: str | None = None,
            opts: RefreshOptions | None = None, *, device: str | None = None, precision: str | None = None,
            storage_options: dict[str, str] | None = None, progress: Progress | None = None) -> RefreshSummary:
    """Refresh the database at ``uri`` from ``sources``; with ``model`` another embedding space than
    the live one, build that model's generation beside it and switch when complete."""
    opts = opts or RefreshOptions()
    t0 = time.perf_counter()
    runners.get(opts.ingest.runner)  # an unknown runner, or ray not installed: said before anything
    tables = [is_catalog(s, storage_options) for s in sources]
    if any(tables):
        if not all(tables):
            raise usage_for_mixed()
        return _refresh_catalogs([catalog_root(s) for s in sources], uri, model, opts, device, precision,
                                 storage_options, progress, t0)
    roots = _roots(sources, storage_options)
    if opts.dry_run:
        return _refresh(roots, uri, model, opts, device, precision, storage_options, progress, t0)
    with WriteLock(uri, "refresh", storage_options):
        return _refresh(roots, uri, model, opts, device, precision, storage_options, progress, t0)


def _roots(sources: list[str | os.PathLike[str]], storage_options: dict[str, str] | None = None) -> list[str]:
    if not sources:
        raise UsageError("refresh needs at least one source folder", "pinembed refresh ./media --db pins.lance")
    return [source_root(s, storage_options, HINT) for s in sources]


def _refresh(roots: list[str], uri: str, model: str | None, opts: RefreshOptions, device: str | None,
             precision: str | None, storage_options: dict[str, str] | None, progress: Progress | None,
             t0: float) -> RefreshSummary:

    summary = RefreshSummary(dry_run=opts.dry_run)
    live_store = Store(uri, storage_options=storage_options)
    live = live_store.generation
    sources = resolve(roots, live_store.sources(), opts.ingest.id_prefix)
    summary.sources = [{"root": s.root, "id_prefix": s.prefix} for s in sources]
    target, embedder = live_store, None
    if model is not None and live is not None:
        phase(progress, "loading model")
        embedder = get_embedder(model, device, precision)
        summary.model_loaded = True
        identity = space_identity(embedder.identity())
        if not same_space(live.identity, identity):  # a model upgrade: write the new generation
            building = building_for(live_store.generations(), identity)
            gen = live_store.begin_generation(identity) if not opts.dry_run else building and building.generation
            target = Store(uri, storage_options=storage_options, generation=gen) if gen else None
    model_id = model_for(model, live.model_id if live is not None else None)
    summary.model_id = model_id
    found, by_id = survey(sources, target, COLUMNS, storage_options, database=uri)
    stored = list(by_id.values())
    summary.skipped, summary.skipped_files = found.skipped, [k.to_dict() for k in found.skips]
    live_rows = None
    if target is not live_store:
        live_rows = {r["pin_id"]: r for r in live_store.pin_states(("pin_id", "kind", "source_sig", "uri", "source")).to_pylist()}
    ledger = live_store.failures_by_uri()
    with gc_paused():
        plan = make_refresh_plan(found.entries, stored, roots, ledger=ledger, live=live_rows,
                                 content_hash=content_hash, max_attempts=opts.max_attempts,
                                 retry_failed=opts.retry_failed, sig_of=opts.ingest.signature)
    summary.planned = plan.counts()
    summary.examples = _examples(plan)
    summary.given_up = len(plan.given_up)
    summary.generation = target.generation.generation if target is not None and target.generation else None
    if opts.dry_run:
        summary.elapsed_s = round(time.perf_counter() - t0, 3)
        return summary

    assert target is not None
    todo = list(plan.todo)
    if live is not None:
        live_store.record_sources(sources)
    if plan.moved:
        todo += _reuse(target, plan.moved, opts.ingest, summary)
    loader = embedder if embedder is not None else (lambda: get_embedder(model_id, device, precision))
    run = Run(target, loader, opts.ingest, {r["pin_id"]: r["source_sig"] for r in stored}, progress,
              replacing={e.pin_id for e in plan.changed}, model_spec=(model_id, device, precision))
    run.problems(found.problems)
    run.prepare(todo)  # decode processes start while the model loads
    if todo or target.generation is None:
        target.ensure_space(space_identity(run.embedder.identity()))
        summary.model_loaded = summary.model_loaded or run.summary.model_loaded
        if live is None:
            live_store.record_sources(sources)
    if todo:
        record_attributes(target, found)  # shards' JSON fields, before their pins are written
    run.embed(todo)
    target.delete_pins(plan.deleted + plan.moved_from)
    summary.deleted = len(plan.deleted)
    gone = [u for u in ledger if under(u.split("#", 1)[0], roots) and not _exists(u.split("#", 1)[0], found)]
    target.clear_failures(gone)
    r = run.finish(t0)
    summary.added, summary.updated, summary.failed, summary.warnings = r.added, r.updated, r.failed, r.warnings
    summary.withdrawn = r.withdrawn
    summary.failures, summary.warning_rows = r.failures, r.warning_rows
    summary.index = r.index
    summary.generation = target.generation.generation if target.generation else None
    if target is not live_store and summary.generation is not None:
        failpoints.hit("switch")
        live_store.switch_to(summary.generation)
        summary.switched = True
        log.info("generation %s (%s) is live", summary.generation, model_id)
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    return summary


def _refresh_catalogs(roots: list[str], uri: str, model: str | None, opts: RefreshOptions, device: str | None,
                      precision: str | None, storage_options: dict[str, str] | None, progress: Progress | None,
                      t0: float) -> RefreshSummary:
    """Refresh from catalogs: each one's rows planned in batches, changed rows embedded, field changes
    rewritten, pins whose rows are gone deleted (``catalog_run``)."""
    summary = RefreshSummary(dry_run=opts.dry_run)
    summary.planned = dict.fromkeys(("new", "changed", "updated", "unchanged", "moved", "copied", "deleted", "retry",
                                     "given_up", "stale"), 0)  # (rows are not moved: an id is the row's own)
    store = Store(uri, storage_options=storage_options)
    live = store.generation
    if model is not None and live is not None and model != live.model_id:
        raise UsageError(f"refresh of a catalog with another model ({model}) is not supported yet",
                         f"leave out --model (the database's {live.model_id} is used), or ingest into another --db")
    model_id = model_for(model, live.model_id if live is not None else None)
    summary.model_id = model_id
    lock = WriteLock(uri, "refresh", storage_options) if not opts.dry_run else None
    with lock if lock is not None else _no_lock():
        sources = resolve(roots, store.sources(), opts.ingest.id_prefix)
        summary.sources = [{"root": s.root, "id_prefix": s.prefix} for s in sources]
        for src in sources:
            run, planned, deleted = run_catalog(src.root, store, lambda: get_embedder(model_id, device, precision),
                                                opts.ingest, opts.ingest.catalog, src, progress,
                                                (model_id, device, precision), delete=True, dry_run=opts.dry_run,
                                                model_id=model_id, max_attempts=opts.max_attempts,
                                                retry_failed=opts.retry_failed)
            for k, v in planned.items():
                summary.planned[k] = summary.planned.get(k, 0) + v
            summary.examples.setdefault("deleted", []).extend(deleted[:EXAMPLES])
            summary.deleted += len(deleted)
            summary.given_up += planned.get("given_up", 0)
            summary.skipped += run.summary.skipped
            summary.skipped_files += run.summary.skipped_files
            if opts.dry_run:
                continue
            r = run.finish(t0)
            summary.added += r.added
            summary.updated += r.updated + r.fields_updated
            summary.failed += r.failed
            summary.warnings += r.warnings
            summary.withdrawn += r.withdrawn
            summary.failures += r.failures
            summary.warning_rows += r.warning_rows
            summary.index = r.index
            summary.model_loaded = summary.model_loaded or r.model_loaded
    if not summary.examples.get("deleted"):
        summary.examples.pop("deleted", None)
    summary.generation = store.generation.generation if store.generation else None
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    return summary


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _exists(path: str, found: Discovery) -> bool:
    """Whether a ledger uri's file is still there: an object URI is looked up in the listing (never
    os.path.exists, which would call every object gone)."""
    if "://" in path:
        return path in (found.listed or ())
    return os.path.exists(path)


def _reuse(store: Store, moves: list[Move], opts: IngestOptions, summary: RefreshSummary) -> list[Entry]:
    """Write moved and copied pins from their sources' stored vectors; returns the entries that must be
    embedded after all (their sidecar text changed while text is fused into the vector)."""
    sources = store.pins_by_id(sorted({m.source_id for m in moves}))
    copies, embed = [], []
    for m in moves:
        e, src = m.entry, sources.get(m.source_id)
        if src is None:
            embed.append(e)
            continue
        title, desc = e.title, e.description  # an idea pin's manifest, a shard sample's own text (or none)
        if e.sidecar is not None:
            try:
                title, desc = read_sidecar(e.sidecar, e.media)
            except InputError:
                title, desc = None, None
        if e.kind != "idea" and opts.text_weight and (title, desc) != (src.get("title"), src.get("description")):
            embed.append(e)
            continue
        place = PinPlace(pin_id=e.pin_id, uri=e.uri, size=e.size, mtime_ns=e.mtime_ns, source_sig=opts.signature(e),
                         source=e.source or None, title=title, description=desc)
        copies.append((m.source_id, {**place, **(e.attrs or {})}))  # its own attributes, not its source's
    summary.reused = store.copy_pins(copies)
    return embed


def _examples(plan: RefreshPlan) -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {
        "new": [e.pin_id for e in plan.new], "changed": [e.pin_id for e in plan.changed],
        "moved": [f"{m.source_id} -> {m.entry.pin_id}" for m in plan.moved if not m.copied],
        "copied": [f"{m.source_id} -> {m.entry.pin_id}" for m in plan.moved if m.copied],
        "deleted": plan.deleted, "retry": [e.pin_id for e in plan.retry],
        "given_up": [e.pin_id for e in plan.given_up], "stale": [e.pin_id for e in plan.stale],
    }
    return {k: v[:EXAMPLES] for k, v in cats.items() if v}
