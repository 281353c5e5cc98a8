"""The knobs of an ingestion run, and how a run reports progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pinembed.embedders.device import cpu_count
from pinembed.errors import UsageError

from . import kinds
from .catalog import CatalogOptions
from .entry import Entry
from .read import ReadLimits
from .video_decode import VideoParams

Progress = Callable[[int, int], None]  # (done, total); an object with .phase(label) is told the phase too
DEFAULT_IDEA_TEXT_WEIGHT = 0.5
IMAGE_DECODERS = ("auto", "pil", "device")
#: Batch sizes by device: a GPU wants big batches; on a CPU 32 is as fast as larger and keeps memory low.
BATCH_CPU, BATCH_CUDA = 32, 256


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

    batch_size: int | None = None  # images (frames, pages) per forward pass; None: 32 on a CPU, 256 on CUDA
    workers: int | None = None  # read threads and video decode processes; None: min(4, usable CPUs) when the
    # model runs on the CPU (it needs the cores too), every usable CPU (up to 32) when it runs on a GPU
    image_decode: str = "auto"  # still JPEGs: "device" decodes them in batches on the model's device (nvJPEG
    # on CUDA); "pil" on CPU threads; "auto": device on CUDA, else pil
    limits: ReadLimits = field(default_factory=ReadLimits)
    video: VideoParams = field(default_factory=VideoParams)
    text_weight: float = 0.0  # images and videos: weight of the sidecar text in the pin vector
    idea_text_weight: float = DEFAULT_IDEA_TEXT_WEIGHT  # idea pins: weight of title/description/page texts
    id_prefix: str | None = None  # None: a known source keeps its recorded prefix, a new one gets none
    fast_jpeg: bool = True  # decode JPEGs at reduced scale (never below the model's input size)
    isolate_images: bool = True  # image files decode in worker processes that live for the run, so a decoder
    # that crashes or hangs costs that file only (False: in the read threads, as the --image-timeout cannot)
    runner: str = "local"  # who reads and embeds: local (threads in this process) or ray
    ray: RayOptions = field(default_factory=RayOptions)
    catalog: CatalogOptions = field(default_factory=CatalogOptions)  # a catalog source's columns and http hosts

    def settled(self, device: str) -> IngestOptions:
        """A copy with the defaults that depend on the model's device filled in (batch size, workers)."""
        cuda = str(device).startswith("cuda")
        return replace(self, batch_size=self.batch_size or (BATCH_CUDA if cuda else BATCH_CPU),
                       workers=self.workers or (min(32, cpu_count()) if cuda else min(4, cpu_count())))

    def decodes_on_device(self, device: str) -> bool:
        """Whether still JPEGs are left for the batch decoder on the model's ``device``."""
        if self.image_decode not in IMAGE_DECODERS:
            raise UsageError(f"unknown image decoder {self.image_decode!r}", f"choose one of {', '.join(IMAGE_DECODERS)}")
        return self.image_decode == "device" or (self.image_decode == "auto" and str(device).startswith("cuda"))

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
