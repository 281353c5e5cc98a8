"""``ingest`` and ``refresh`` of a catalog (``catalog.py``): check every file's columns before anything is
written, then stream the rows in batches, plan each batch against the store (``catalog_plan``) and hand
the rows to read and embed to the run's runner (``driver.Run``) in chunks, so memory stays bounded
whatever the catalog's size. Rows whose fields changed but not their media are rewritten with their
stored vectors. A refresh then deletes the pins whose rows are gone; ``ingest`` never deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pinembed.embedders.base import Embedder
from pinembed.errors import PinembedError, UsageError
from pinembed.store import attributes as attr_types
from pinembed.store.db import Store
from pinembed.store.identity import space_identity

from . import catalog_snapshot as snapshots
from .catalog import (
    Batch,
    CatalogOptions,
    Columns,
    attribute_columns,
    catalog_files,
    local_table,
    read_batches,
    schema_of,
)
from .catalog_media import CatalogMedia
from .catalog_plan import CatalogPlanner, Chunk, pin_ids
from .driver import Run
from .entry import Entry, Skip
from .ledger import problem_rows
from .model import ModelSpec
from .options import IngestOptions, Progress, phase
from .sources import Source

log = logging.getLogger(__name__)

CHUNK_ENTRIES = 4096  # rows read and embedded per hand-off to the runner (and their Entry objects held)


@dataclass
class Opened:
    """A catalog with its files' columns checked."""

    files: list[str]
    attributes: dict[str, pa.DataType]
    skips: list[Skip]


def open_catalog(root: str, cols: Columns, storage_options: dict[str, str] | None) -> Opened:
    """Every file of the catalog at ``root`` with its columns checked (UsageError, exit 2, for a missing id
    or media column, or an attribute whose type differs between two files), before anything is written."""
    files = catalog_files(root, storage_options)
    types: dict[str, pa.DataType] = {}
    skips: list[Skip] = []
    for f in files:
        with local_table(f, storage_options) as local:
            found, skipped = attribute_columns(schema_of(f, local), cols, f)
        types.update(attr_types.merged(types, found, f"the catalog file {f!r}"))
        skips += skipped
    return Opened(files, types, skips)


def stored_states(store: Store | None, attributes: dict[str, pa.DataType]) -> pa.Table:
    """What a plan compares rows with: each stored pin's id, kind, owner, signature and fields."""
    cols = ("pin_id", "kind", "uri", "source", "source_sig", "title", "description", *attributes)
    if store is None or store.generation is None:
        return pa.table({c: pa.array([], attributes.get(c, pa.string())) for c in cols})
    return store.pin_states(cols)


@dataclass
class CatalogRun:
    """One run of a catalog source against ``store``."""

    store: Store
    source: Source
    opened: Opened
    opts: IngestOptions
    catalog: CatalogOptions
    run: Run
    planner: CatalogPlanner | None = None  # made when a row needs the store's pins
    matcher: snapshots.Matcher = field(default_factory=lambda: snapshots.Matcher(None))
    writer: snapshots.Writer | None = None
    planned: dict[str, int] = field(default_factory=lambda: {"new": 0, "changed": 0, "unchanged": 0, "updated": 0,
                                                             "given_up": 0})
    given_up: Callable[[str], bool] | None = None  # refresh: ledger uris that failed --max-attempts runs
    reported: set[str] = field(default_factory=set)  # ledger uris this run wrote for catalog rows

    def go(self, storage_options: dict[str, str] | None, dry_run: bool = False) -> None:
        """Plan every batch of every file; unless ``dry_run``, embed and write as it goes. A row equal to
        its settled row in the catalog's snapshot is unchanged; the others are planned against the
        store (``catalog_snapshot``), whose pins are then read once."""
        self._media = CatalogMedia(self.catalog.allow_hosts, storage_options, self.catalog.http)
        cols, attrs = self.catalog.columns, self.opened.attributes
        self._names = snapshots.plan_columns(cols, attrs)
        self._key = snapshots.key_of(self.source.root, self.source.prefix, cols, attrs, self._settings(),
                                     self.opened.files)
        snap = None
        if cols.version:  # (without one, every row's media is looked at: there is nothing to spare)
            snap = snapshots.load(self.store.uri, self.source.root, self._key, self.store.pins_version())
        self.matcher = snapshots.Matcher(snap)
        self.writer = snapshots.Writer(self.store.uri, self.source.root) if not dry_run and cols.version else None
        todo: list[Entry] = []
        phase(self.run.progress, "planning")
        for f in self.opened.files:
            with local_table(f, storage_options) as local:
                for batch in read_batches(f, local):
                    chunk = self._plan(batch)
                    self._count(chunk)
                    if dry_run:
                        continue
                    self._land(chunk)
                    todo += chunk.todo
                    if len(todo) >= CHUNK_ENTRIES:
                        self._embed(todo)
                        todo = []
        if todo and not dry_run:
            self._embed(todo)

    def _settings(self) -> dict[str, str]:
        probe = CatalogPlanner.settings(self.opts)
        return {**probe, "text_weight": str(self.opts.text_weight)}

    def _plan(self, batch: Batch) -> Chunk:
        """One batch: its rows matched with the snapshot, the others planned against the store."""
        t = batch.table
        _, pids = pin_ids(t, self.catalog.columns.id, self.source.prefix)
        rows = snapshots.plan_table(t, self._names, self.opened.attributes)
        was_whole = self.matcher.in_order
        start = self.matcher.cursor
        quiet, again = self.matcher.match(pids, rows)
        loud = np.flatnonzero(~quiet)
        if len(loud) == len(quiet):
            chunk = self._planner().plan(batch, again)
            quiet = chunk.quiet
        elif len(loud):
            part = Batch(batch.file, t.take(pa.array(loud)), [batch.lines[i] for i in loud], batch.bad)
            chunk = self._planner().plan(part, again[loud])
            quiet[loud] = chunk.quiet
            chunk.unchanged += len(quiet) - len(loud)
        else:
            chunk = Chunk(problems=list(batch.bad), unchanged=len(quiet))
        if self.writer is not None and not (self.matcher.in_order and not self.writer.started):
            if was_whole and not self.writer.started and self.matcher.snap is not None:
                self.writer.copy(self.matcher.snap, start)  # the rows so far were the snapshot's own
            self.writer.add(rows, pids, quiet)
        return chunk

    def _planner(self) -> CatalogPlanner:
        """The plan against the store (its pins read at the first row that needs it)."""
        if self.planner is None:
            stored = stored_states(self.store, self.opened.attributes)
            self.planner = CatalogPlanner(self.source.root, self.source.prefix, self.catalog.columns,
                                          self.opened.attributes, stored, self.opts, self._media, self.given_up)
        return self.planner

    def gone(self) -> list[str]:
        """Stored pins of this source that no row named."""
        if self.planner is not None:
            return self.planner.gone(self.matcher.quiet_ids())
        return self.matcher.gone(set())

    def keep_snapshot(self) -> None:
        """After the run (its writes and upkeep done, the lock still held): the snapshot for the next one.
        One that was used and stays true (the catalog was its rows, unchanged, and no pin was written)
        is only tagged with the table's version now; else the one written as the rows were planned."""
        try:
            self._keep_snapshot()
        except PinembedError as e:  # the run's work is done: without a snapshot the next run reads the store
            log.warning("the catalog snapshot of %s is not kept: %s", self.source.root, e)
            if self.writer is not None:
                self.writer.abort()

    def _keep_snapshot(self) -> None:
        w, m = self.writer, self.matcher
        if w is None:
            return
        p = self.planned
        wrote = any(p.get(k, 0) for k in ("new", "changed", "updated", "deleted"))
        if m.snap is not None and m.whole() and not w.started and not wrote:
            snapshots.retag(self.store, self.source.root, m.snap)
            return
        if m.snap is not None and not w.started and m.in_order:
            w.copy(m.snap, m.cursor)  # every row was the snapshot's own, but a pin was deleted
        owned = None
        if self.planner is not None and not wrote:  # the pins it read are the pins there are
            owned = snapshots.owned_ids(self.planner.stored, self.source.root)
        w.commit(self.store, self._key, owned)

    def _count(self, chunk: Chunk) -> None:
        p = self.planned
        p["new"] += chunk.new
        p["changed"] += chunk.changed
        p["unchanged"] += chunk.unchanged
        p["updated"] += len(chunk.updates)
        p["given_up"] += chunk.given_up
        self.reported |= chunk.kept
        self.run.summary.unchanged += chunk.unchanged

    def _land(self, chunk: Chunk) -> None:
        """A chunk's bad rows to the ledger and its field updates to the store (no media read)."""
        if chunk.problems:
            rows = problem_rows(chunk.problems)
            self.reported.update(r["uri"] for r in rows)
            self.run.fail(rows, len(chunk.problems))
        self.run.replacing |= chunk.replacing
        self.run.known.update(dict.fromkeys(chunk.replacing, ""))
        if chunk.updates:
            self.store.copy_pins([(e.pin_id, {"pin_id": e.pin_id, "title": e.title, "description": e.description,
                                              **(e.attrs or {})}) for e in chunk.updates])
            self.run.summary.fields_updated += len(chunk.updates)

    def _embed(self, todo: list[Entry]) -> None:
        if self.store.generation is None or self.store.identity is None:
            self.store.ensure_space(space_identity(self.run.embedder.identity()))
            self.store.add_attributes(self.opened.attributes)
        self.run.prepare(todo)
        self.run.embed(todo)

    def clear_stale_rows(self) -> None:
        """Ledger rows of this catalog's lines that this run did not report again (fixed or gone)."""
        heads = tuple(f"{f}#line=" for f in self.opened.files)
        stale = [u for u in self.store.failures_by_uri() if u.startswith(heads) and u not in self.reported]
        self.store.clear_failures(stale)


def run_catalog(root: str, store: Store, embedder: Embedder | Callable[[], Embedder] | None, opts: IngestOptions,
                catalog: CatalogOptions, source: Source, progress: Progress | None = None,
                model_spec: ModelSpec | None = None, delete: bool = False, dry_run: bool = False,
                model_id: str | None = None, max_attempts: int | None = None, retry_failed: bool = False
                ) -> tuple[Run, dict[str, int], list[str]]:
    """Ingest (``delete`` False) or refresh (``delete``: pins whose rows are gone are deleted) the catalog
    at ``root`` into ``store`` under ``source``'s namespace; the caller holds the write lock and calls
    ``finish`` on the returned Run (unless ``dry_run``). Returns the run, the planned counts (new,
    changed, unchanged, updated, deleted) and the deleted pin ids."""
    opened = open_catalog(root, catalog.columns, store.storage_options)
    if store.generation is not None and store.identity is not None:
        attr_types.merged(store.attributes(), opened.attributes, f"the catalog {root!r}")  # before any write
    run = Run(store, embedder, opts, {}, progress, replacing=set(), model_spec=model_spec)
    run.summary.skipped, run.summary.skipped_files = len(opened.skips), [k.to_dict() for k in opened.skips]
    run.summary.sources = [{"root": source.root, "id_prefix": source.prefix}]
    job = CatalogRun(store, source, opened, opts, catalog, run)
    if max_attempts is not None and not retry_failed:  # a refresh: what failed too often is left alone
        ledger = store.failures_by_uri()
        job.given_up = lambda uri: ledger.get(uri, {}).get("attempts", 0) >= max_attempts
    have = store.identity
    if not dry_run:
        if have is None or (model_id is not None and model_id != have.get("model_id")):
            store.ensure_space(space_identity(run.embedder.identity()))
        store.add_attributes(opened.attributes, f"the catalog {root!r}")
        store.record_sources([source])
    job.go(store.storage_options, dry_run)
    deleted: list[str] = []
    if delete:
        deleted = job.gone()
        job.planned["deleted"] = len(deleted)
        if not dry_run:
            store.delete_pins(deleted)
    if not dry_run:
        job.clear_stale_rows()
        run.finished.append(job.keep_snapshot)
    return run, job.planned, deleted


def usage_for_mixed() -> UsageError:
    """The error for a refresh that names a catalog beside folders."""
    return UsageError("a refresh takes either catalogs or folders, not both in one run",
                      "run one refresh per catalog (and one for the folders), each with the same --db")
