"""The ray runner: the same stages on a Ray cluster (Ray Data, streaming).

- read: Ray tasks, a few entries each (``read_stage.read_entry`` with the model's preprocessing, shipped
  without the model); videos decode in a decode process inside the task, as locally;
- embed: an actor pool (``ActorPoolStrategy``), each actor loading the model once (``get_embedder``),
  on a GPU when the cluster has them (``--gpus-per-worker``), with torch threads = its CPUs;
- write: on the driver, one ``merge_insert`` by pin id per embedded batch this runner yields back
  (the driver lands it: ``driver.Run.land``).

Why the driver writes (and not lance-ray's fragment writer + committer): a batch of rows is a few
hundred kB (vectors of 512 floats) against seconds of model time, so one writer keeps up with many
embedding actors; and a merge by pin id is idempotent, so a job killed anywhere (driver or worker)
and run again ends with every pin exactly once: the re-run plans only what is not stored yet. Bad
inputs are ledger rows made inside the stages, so no block ever fails (``max_errored_blocks`` stays 0).
"""

from __future__ import annotations

import atexit
import logging
import pickle
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pinembed.embedders import get_embedder
from pinembed.embedders.device import cpu_count
from pinembed.errors import UsageError

from ..decode_pool import DecodePool
from ..embed_stage import Embedded, embed_items
from ..entry import Entry
from ..model import ModelSpec
from ..options import IngestOptions, RayOptions, phase
from ..read import Reader, ReadLimits
from ..read_stage import needs_decode_pool, read_entry
from ..video_decode import VideoParams
from . import Work

READ_BATCH = 8  # entries per read task
INSTALL_HINT = "install the ray extra: pip install 'pinembed[ray]'"


def require_ray() -> Any:
    """The ray module; UsageError saying how to install it when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise UsageError(f"--runner ray needs Ray, which is not installed ({e.name or 'ray'})", INSTALL_HINT) from e
    return ray


@dataclass
class ReadSpec:
    """What a read task needs: the model's preprocessing (without the model) and the limits."""

    preprocess: Any
    limits: ReadLimits
    video: VideoParams
    draft_size: int | None
    workers: int = 1
    device_decode: bool = False  # leave still JPEGs encoded for the actors' device decoder (GPU actors)
    isolate_images: bool = True  # image files decode in a decode process (IngestOptions.isolate_images)


def _read_batch(batch: dict[str, np.ndarray], spec: ReadSpec) -> dict[str, np.ndarray]:
    """A read task: entries -> pickled (item or None, failure rows)."""
    entries: list[Entry] = [pickle.loads(b) for b in batch["entry"]]
    out = []
    with ExitStack() as stack:
        if spec.isolate_images:  # one decode process per Ray worker, kept for the worker's life
            pool: DecodePool | None = _task_pool()
        else:
            pool = stack.enter_context(DecodePool(1)) if any(map(needs_decode_pool, entries)) else None
        reader = Reader(spec.preprocess, spec.limits, spec.video, spec.draft_size, pool, spec.device_decode,
                        spec.isolate_images)
        for e in entries:
            out.append(pickle.dumps(read_entry(reader, e), protocol=pickle.HIGHEST_PROTOCOL))
    return {"read": np.array(out, dtype=object)}


_POOL: Any = None


def _task_pool() -> Any:
    """This Ray worker process's decode pool (one decode process), started on first use and stopped
    when the worker exits: read tasks come many to a worker, and a process per task would cost more
    than the decoding."""
    global _POOL
    if _POOL is None:
        _POOL = DecodePool(1)
        atexit.register(_POOL.close)
    return _POOL


class _Embed:
    """An embedding actor: loads the model once, embeds batches of read items."""

    def __init__(self, model_spec: ModelSpec, opts: IngestOptions, threads: int) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        model_id, device, precision = model_spec
        self.embedder = get_embedder(model_id, device, precision)
        torch.set_num_threads(max(1, threads))  # get_embedder sets threads from the machine's CPUs
        self.opts = opts
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items, failures, failed = [], [], 0
        for raw in batch["read"]:
            item, rows = pickle.loads(raw)
            if item is None:
                failures += rows
                failed += 1
            else:
                items.append(item)
        t = time.perf_counter()
        done = embed_items(items, self.embedder, self.opts) if items else Embedded()
        done.failures = failures + done.failures
        done.failed += failed
        done.node = self.node
        done.embed_s, done.read_s = time.perf_counter() - t, sum(i.read_s for i in items)
        return {"embedded": np.array([pickle.dumps(done)], dtype=object)}


def init_ray(ray: Any, cfg: RayOptions) -> None:
    """Connect to ``cfg.address``, or start a local Ray instance for this run whose logical CPUs are
    the usable CPUs + 1, so that read tasks overlap the model as the local runner's threads do."""
    if ray.is_initialized():
        return
    try:
        where = {"address": cfg.address} if cfg.address else {"address": "local", "num_cpus": cpu_count() + 1}
        with warnings.catch_warnings():  # lancedb warns at every fork; Ray's processes exec at once
            warnings.filterwarnings("ignore", message="lancedb fork support")
            ray.init(**where, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     logging_level=logging.WARNING)
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UsageError(f"could not reach the Ray cluster at {cfg.address!r}: {str(e).splitlines()[0][:200]}",
                         "start one with `ray start --head`, or leave out --ray-address for a local one") from e


def plan_workers(resources: dict[str, float], cfg: RayOptions) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) for a cluster with ``resources`` (ray.cluster_resources())."""
    gpus = float(resources.get("GPU", 0))
    per_gpu = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    per_cpu = cfg.cpus_per_worker
    if cfg.workers:
        return cfg.workers, per_cpu, per_gpu
    if per_gpu > 0:
        return max(1, int(gpus / per_gpu)), per_cpu, per_gpu
    cpus = float(resources.get("CPU", 1))
    spare = 1.0 if cpus >= 2 else 0.0  # a CPU for the read tasks (actors holding every CPU starve them)
    return max(1, int((cpus - spare) / max(per_cpu, 0.01))), per_cpu, per_gpu


def run(work: Work) -> Iterator[Embedded]:
    """Read and embed ``work.todo`` on a Ray cluster, yielding each embedded batch for the driver to write."""
    todo, progress = work.todo, work.progress
    if not todo:
        return
    ray = require_ray()
    if work.model_spec is None:
        raise UsageError("the ray runner needs the model id to load in its workers")
    embedder = work.embedder()  # the driver's copy: the database's space, the preprocessing, the input size
    phase(progress, "starting ray")
    init_ray(ray, work.opts.ray)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.max_errored_blocks = 0  # the stages turn bad inputs into ledger rows; a failing block is a bug
    actors, cpus, gpus = plan_workers(ray.cluster_resources(), work.opts.ray)
    actor_device = "cuda" if gpus else "cpu"
    opts = work.opts.settled(actor_device)
    spec = ReadSpec(embedder.preprocessor(), opts.limits, replace(opts.video, target_side=embedder.image_size),
                    embedder.image_size if opts.fast_jpeg else None,
                    device_decode=opts.decodes_on_device(actor_device) and embedder.device_preprocessor() is not None,
                    isolate_images=opts.isolate_images)
    rows = [{"entry": pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)} for e in todo]
    blocks = max(-(-len(rows) // READ_BATCH), min(len(rows), 2 * actors))  # enough blocks for every actor
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(_read_batch, fn_kwargs={"spec": spec}, batch_size=READ_BATCH, num_cpus=0.5)
    ds = ds.map_batches(_Embed, fn_constructor_kwargs={"model_spec": work.model_spec, "opts": opts,
                                                       "threads": max(1, int(cpus))},
                        batch_size=opts.batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                        num_cpus=cpus, num_gpus=gpus or None, **({"resources": opts.ray.resources}
                                                                   if opts.ray.resources else {}))
    phase(progress, "embedding")
    done, total = 0, len(todo)
    if progress:
        progress(0, total)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        for raw in batch["embedded"]:
            embedded: Embedded = pickle.loads(raw)
            yield embedded
            done += len(embedded.landed) + embedded.failed
            if progress:
                progress(done, total)
