"""The knobs of an ingestion run, and how a run reports progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pinembed.embedders.device import cpu_count

from . import kinds
from .entry import Entry
from .read import ReadLimits
from .video import VideoParams

Progress = Callable[[int, int], None]  # (done, total); an object with .phase(label) is told the phase too
DEFAULT_IDEA_TEXT_WEIGHT = 0.5


@dataclass
class RayOptions:
    """Where and how the ray runner runs (``--ray-address``, ``--workers``, ``--cpus-per-worker``,
    ``--gpus-per-worker``)."""

    address: str | None = None  # a running cluster ("auto", "ray://host:10001"); None: the one this process
    # is connected to, or a local one started for the run
    workers: int | None = None  # embedding actors; None: the cluster's CPUs (or GPUs) / per-worker share
    cpus_per_worker: float = 1.0  # CPUs per embedding actor (also its torch threads)
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs, else 0
    resources: dict[str, float] | None = None  # custom Ray resources per embedding actor (e.g. a node type)


@dataclass
class IngestOptions:
    """Knobs of an ingestion run."""

    batch_size: int = 32  # images (frames, pages) per forward pass
    workers: int = field(default_factory=lambda: min(4, cpu_count()))  # read threads, video decode processes
    limits: ReadLimits = field(default_factory=ReadLimits)
    video: VideoParams = field(default_factory=VideoParams)
    text_weight: float = 0.0  # images and videos: weight of the sidecar text in the pin vector
    idea_text_weight: float = DEFAULT_IDEA_TEXT_WEIGHT  # idea pins: weight of title/description/page texts
    id_prefix: str | None = None  # None: a known source keeps its recorded prefix, a new one gets none
    fast_jpeg: bool = True  # decode JPEGs at reduced scale (never below the model's input size)
    runner: str = "local"  # who reads and embeds: local (threads in this process) or ray
    ray: RayOptions = field(default_factory=RayOptions)

    def signature(self, e: Entry, kind: str | None = None) -> str:
        """``e``'s stored signature: its source signature plus the settings its vector depends on, so
        changing --fps, --max-frames or a text weight re-embeds exactly the pins it affects. ``kind``:
        the kind the pin was read as, when reading refined it (a stored motion pin of a .gif entry)."""
        parts = kinds.get(kind or e.kind).settings(e, self)
        return e.source_sig + ("#" + ",".join(parts) if parts else "")


def phase(progress: Progress | None, label: str) -> None:
    """Tell a progress display what the run is doing (``progress.phase(label)``, when it has one)."""
    fn = getattr(progress, "phase", None)
    if fn is not None:
        fn(label)
