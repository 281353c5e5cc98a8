"""Candidate tables on a Ray cluster: the parts a job still lacks, searched by Ray tasks.

The base vectors and the work (query vectors, lists) go into the object store once; each task
searches one part (``candidates.Work.part``) with a ``Searcher`` of its own and hands back the part's
results (row numbers and scores, about 12 bytes a candidate), which the driver writes as the local runner
does. So the output is the local runner's, and a job killed anywhere is finished by a re-run (the
parts already written are kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pinembed.errors import UsageError
from pinembed.ingestion.options import RayOptions

from . import candidate_search as cs


def _search(base: np.ndarray, work: Any, spec: tuple[int, int], k: int, memory_mb: int,
            threads: int) -> list[cs.Found]:
    import warnings

    import torch

    torch.set_num_threads(max(1, threads))
    with warnings.catch_warnings():  # the object store's arrays are read-only: torch is only told so
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return list(work.part(cs.Searcher(base, k, memory_mb), spec))


def run_parts(base: np.ndarray, work: Any, specs: Sequence[tuple[int, int]], todo: Sequence[int], k: int,
              opts: Any) -> Iterator[tuple[int, list[cs.Found]]]:
    """(part, its results) for each part of ``todo``, as the tasks end."""
    try:
        import ray
    except ImportError as e:
        raise UsageError("the ray runner needs Ray", "pip install 'pinembed[ray]'") from e
    from pinembed.ingestion.runners.ray import init_ray

    cfg = opts.ray or RayOptions()
    init_ray(ray, cfg)
    cpus = max(1.0, float(cfg.cpus_per_worker))
    task = ray.remote(num_cpus=cpus)(_search)
    base_ref, work_ref = ray.put(base), ray.put(work)
    pending = {task.remote(base_ref, work_ref, specs[i], k, opts.memory_mb, int(cpus)): i for i in todo}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            yield pending.pop(ref), ray.get(ref)
