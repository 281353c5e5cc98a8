"""Embedders by id: ``open_clip:...``, ``hf:...``, and any prefix that a package registers under the
entry-point group ``pinembed.embedders`` (name = the prefix, value = a factory ``(spec, device) -> Embedder``:
a plugin chooses its own precision).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from pinembed.errors import ModelNotFoundError

from . import hub
from .base import Embedder
from .device import set_cpu_threads
from .hf_embedder import HFEmbedder
from .open_clip_embedder import OpenClipEmbedder

#: A built-in factory: (spec, device, precision) -> Embedder.
Factory = Callable[[str, "str | None", "str | None"], Embedder]
#: A plugin's factory, named by an entry point: (spec, device) -> Embedder.
PluginFactory = Callable[[str, "str | None"], Embedder]
ENTRY_POINT_GROUP = "pinembed.embedders"
#: The model a new database is built with when none is named.
DEFAULT_MODEL = "open_clip:ViT-B-32/laion2b_s34b_b79k"


def _open_clip(spec: str, device: str | None, precision: str | None = None) -> Embedder:
    arch, _, tag = spec.partition("/")
    checkpoint = tag.lower().endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt")) or os.path.exists(tag)
    if spec.startswith("hf-hub:") or (tag and "/" not in tag and not checkpoint):  # a pretrained tag: the hub
        hub.precheck(f"open_clip:{spec}", f"open_clip:{arch}//path/to/weights.pt")
    return OpenClipEmbedder(spec, device=device, precision=precision)


def _hf(spec: str, device: str | None, precision: str | None = None) -> Embedder:
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not os.path.exists(spec):  # a hub id
        hub.precheck(f"hf:{spec}", "hf:/path/to/folder (saved with save_pretrained)")
    return HFEmbedder(spec, device=device, precision=precision)


def nano_dir() -> Path:
    """Where the bundled ``nano`` model lives: $PINEMBED_NANO_DIR, else the repo's sample_media/nano."""
    env = os.environ.get("PINEMBED_NANO_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "sample_media" / "nano"


def _nano(spec: str, device: str | None, precision: str | None = None) -> Embedder:
    where = nano_dir()
    if not (where / "open_clip_config.json").is_file():
        raise ModelNotFoundError(
            f"the bundled nano model is not at {str(where)!r}",
            "it ships in the pinembed repository (sample_media/nano); from a source checkout run "
            "`make nano-model` to rebuild it, or set PINEMBED_NANO_DIR to a folder that holds it",
        )
    emb = OpenClipEmbedder(f"local-dir:{where}", device=device, precision=precision)
    emb.model_id = "nano"
    return emb


BUILTIN: dict[str, Factory] = {"open_clip": _open_clip, "hf": _hf}
ALIASES: dict[str, Factory] = {"nano": _nano}  # ids without a prefix
_cache: dict[tuple[str, str | None, str | None], Embedder] = {}
_lock = threading.Lock()


def factories() -> dict[str, Factory | EntryPoint]:
    """Built-in factories plus the entry points (each loads a ``PluginFactory``) that installed packages
    register."""
    found: dict[str, Factory | EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep  # loaded on use, so a broken plugin cannot break the others
    found.update(BUILTIN)
    return found


def get_embedder(model_id: str, device: str | None = None, precision: str | None = None) -> Embedder:
    """The embedder for ``model_id`` (``prefix:spec``), loaded once per process, device and precision.

    ``precision`` (auto, fp32, fp16, int8) applies to the built-in embedders; plugins choose their own."""
    key = (model_id, device, precision)
    with _lock:
        if key in _cache:
            return _cache[key]
        if model_id in ALIASES:
            embedder = ALIASES[model_id]("", device, precision)
        else:
            embedder = _load(model_id, device, precision)
        if str(embedder.device).startswith("cpu"):
            set_cpu_threads()
        _cache[key] = embedder
        return embedder


def _load(model_id: str, device: str | None, precision: str | None) -> Embedder:
    """A new embedder from its factory (a built-in one or an entry point)."""
    prefix, sep, spec = model_id.partition(":")
    known = factories()
    if not sep or prefix not in known:
        raise ModelNotFoundError(
            f"unknown model id {model_id!r}",
            "model ids look like open_clip:ViT-B-32/laion2b_s34b_b79k, open_clip:<arch>//path/to/ckpt.pt "
            "or hf:openai/clip-vit-base-patch32, or nano (the bundled model); "
            f"known prefixes: {', '.join(sorted(known))}",
        )
    factory = known[prefix]
    if hasattr(factory, "load"):  # an entry point, imported only now: (spec, device)
        return factory.load()(spec, device)
    return factory(spec, device, precision)
