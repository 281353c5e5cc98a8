"""``ingest``: plan on the driver (survey the source: discover, claim ids; diff against the store),
then the run's runner reads and embeds and the driver writes (``driver.py``, ``runners/``), then upkeep.

Each written batch is one LanceDB commit, so a run that is killed leaves whole batches behind and
the next run finishes the job (unchanged pins are skipped by their source signature).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pinembed.embedders.base import Embedder
from pinembed.store.db import Store
from pinembed.store.identity import space_identity
from pinembed.store.lock import WriteLock

from . import runners
from .catalog import catalog_root, is_catalog
from .catalog_run import run_catalog
from .driver import IngestSummary, Run
from .model import ModelSpec
from .options import IngestOptions, Progress
from .plan import make_plan, survey
from .sample_fields import record as record_attributes
from .sources import resolve, source_root

HINT = "pass the folder that holds your media, e.g. pinembed ingest ./media; nothing was created"
COLUMNS = ("pin_id", "kind", "uri", "source", "source_sig")  # what the plan reads of each stored pin

__all__ = ["IngestSummary", "ingest"]


def ingest(src: str | os.PathLike[str], store: Store, embedder: Embedder | Callable[[], Embedder],
           opts: IngestOptions | None = None, progress: Progress | None = None, model_id: str | None = None,
           model_spec: ModelSpec | None = None) -> IngestSummary:
    """Ingest every image, video and idea pin under ``src`` into ``store`` (new and changed ones;
    nothing is deleted: ``refresh`` does that). Holds the database's write lock from the start.

    ``embedder`` may be a loader (a function returning the Embedder): it is called only when there is
    something to embed, a new database to create, or ``model_id`` names another model than the
    database's (to report the mismatch). ``opts.runner`` picks who reads and embeds: ``local`` (this
    process) or ``ray`` (which loads ``model_spec``, (model id, device, precision), in its workers)."""
    opts = opts or IngestOptions()
    t0 = time.perf_counter()
    runners.get(opts.runner)  # an unknown runner, or ray not installed: said before anything
    if is_catalog(src, store.storage_options):
        root = catalog_root(src)
        with WriteLock(store.uri, "ingest", store.storage_options):
            (source,) = resolve([root], store.sources(), opts.id_prefix)
            run, _, _ = run_catalog(root, store, embedder, opts, opts.catalog, source, progress, model_spec,
                                    model_id=model_id)
            return run.finish(t0)
    root = source_root(src, store.storage_options, HINT)  # before the lock: a typo creates nothing
    with WriteLock(store.uri, "ingest", store.storage_options):
        (source,) = resolve([root], store.sources(), opts.id_prefix)
        found, stored = survey([source], store, COLUMNS, store.storage_options, database=store.uri)
        plan = make_plan(found.entries, stored, opts.signature)
        run = Run(store, embedder, opts, {p: r["source_sig"] for p, r in stored.items()}, progress,
                  replacing={e.pin_id for e in plan.changed}, model_spec=model_spec)
        run.summary.skipped, run.summary.skipped_files = found.skipped, [k.to_dict() for k in found.skips]
        run.summary.sources = [{"root": source.root, "id_prefix": source.prefix}]
        run.problems(found.problems)
        run.summary.unchanged = len(plan.unchanged)
        run.prepare(plan.todo)  # decode processes start while the model loads
        have = store.identity
        if plan.todo or have is None or (model_id is not None and model_id != have.get("model_id")):
            store.ensure_space(space_identity(run.embedder.identity()))
        if plan.todo:
            record_attributes(store, found)  # shards' JSON fields, before their pins are written
        if store.generation is not None:
            store.record_sources([source])
        run.embed(plan.todo)
        return run.finish(t0)
