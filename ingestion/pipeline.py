"""``ingest``: plan on the driver (discover, claim ids, diff against the store), then a runner reads,
embeds and writes (see ``stages.py`` and ``runners/``), then upkeep.

Each written batch is one LanceDB commit, so a run that is killed leaves whole batches behind and
the next run finishes the job (unchanged pins are skipped by their source signature).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pinembed.embedders.base import Embedder
from pinembed.errors import UsageError
from pinembed.store.db import Store
from pinembed.store.identity import space_identity
from pinembed.store.lock import WriteLock

from . import runners
from .discover import discover
from .options import DEFAULT_IDEA_TEXT_WEIGHT, IngestOptions, Progress, phase
from .plan import make_plan
from .run import IngestSummary, Run, RunSummary
from .runners.local import read_ahead
from .sources import claim_ids, resolve
from .stages import entry_cost, needs_decode_pool

__all__ = ["DEFAULT_IDEA_TEXT_WEIGHT", "IngestOptions", "IngestSummary", "Progress", "Run", "RunSummary",
           "entry_cost", "ingest", "needs_decode_pool", "phase", "read_ahead", "source_root"]


def source_root(src: str | os.PathLike[str], storage_options: dict[str, str] | None = None) -> str:
    """The absolute path of a source folder, or an object-storage prefix without its trailing slash;
    UsageError (before anything is created) when it is not a folder, or a prefix holding no objects."""
    if isinstance(src, str) and "://" in src:
        from .media_store import MediaStore

        media = MediaStore(src, storage_options)
        media.check()
        return media.root
    root = os.path.abspath(os.fspath(src))
    if not os.path.isdir(root):
        raise UsageError(
            f"source folder {root!r} does not exist or is not a folder",
            "pass the folder that holds your media, e.g. pinembed ingest ./media; nothing was created",
        )
    return root


def ingest(src: str | os.PathLike[str], store: Store, embedder: Embedder | Callable[[], Embedder],
           opts: IngestOptions | None = None, progress: Progress | None = None, model_id: str | None = None,
           model_spec: tuple[str, str | None, str | None] | None = None) -> IngestSummary:
    """Ingest every image, video and idea pin under ``src`` into ``store`` (new and changed ones;
    nothing is deleted: ``refresh`` does that). Holds the database's write lock from the start.

    ``embedder`` may be a loader (a function returning the Embedder): it is called only when there is
    something to embed, a new database to create, or ``model_id`` names another model than the
    database's (to report the mismatch). ``opts.runner`` picks who reads and embeds: ``local`` (this
    process) or ``ray`` (which loads ``model_spec``, (model id, device, precision), in its workers)."""
    opts = opts or IngestOptions()
    t0 = time.perf_counter()
    run_entries = runners.get(opts.runner)
    root = source_root(src, store.storage_options)  # before the lock: a typo creates nothing
    with WriteLock(store.uri, "ingest", store.storage_options):
        (source,) = resolve([root], store.sources(), opts.id_prefix)
        found = discover(root, source.prefix, store.storage_options, database=store.uri)
        stored = {r["pin_id"]: r for r in store.pin_states(("pin_id", "kind", "uri", "source_sig")).to_pylist()}
        entries, taken = claim_ids(found.entries, stored, [root])
        plan = make_plan(entries, stored, opts.signature)
        run = Run(store, embedder, opts, {p: r["source_sig"] for p, r in stored.items()}, progress,
                  replacing={e.pin_id for e in plan.changed})
        run.summary.runner = opts.runner
        run.model_spec = model_spec
        run.summary.skipped, run.summary.skipped_files = found.skipped, [k.to_dict() for k in found.skips]
        run.summary.sources = [{"root": source.root, "id_prefix": source.prefix}]
        run.problems(found.problems + taken)
        run.summary.unchanged = len(plan.unchanged)
        runners.prepare(opts.runner, opts, plan.todo)  # decode processes start while the model loads
        have = store.identity
        if plan.todo or have is None or (model_id is not None and model_id != have.get("model_id")):
            store.ensure_space(space_identity(run.embedder.identity()))
        if store.generation is not None:
            store.record_sources([source])
        run_entries(run, plan.todo, progress)
        return run.finish(t0)
