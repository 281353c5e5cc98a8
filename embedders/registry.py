"""Embedders by id: ``open_clip:...``, ``hf:...``, and any prefix that a package registers under the
entry-point group ``pinembed.embedders`` (name = the prefix, value = a factory ``(spec, device) -> Embedder``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points

from pinembed.errors import ModelNotFoundError

from .base import Embedder

Factory = Callable[[str, "str | None"], Embedder]
ENTRY_POINT_GROUP = "pinembed.embedders"


def _open_clip(spec: str, device: str | None) -> Embedder:
    from .open_clip_embedder import OpenClipEmbedder

    return OpenClipEmbedder(spec, device=device)


def _hf(spec: str, device: str | None) -> Embedder:
    from .hf_embedder import HFEmbedder

    return HFEmbedder(spec, device=device)


BUILTIN: dict[str, Factory] = {"open_clip": _open_clip, "hf": _hf}
_cache: dict[tuple[str, str | None], Embedder] = {}
_lock = threading.Lock()


def factories() -> dict[str, Factory]:
    """Built-in factories plus those that installed packages register through entry points."""
    found: dict[str, Factory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep  # loaded on use, so a broken plugin cannot break the others
    found.update(BUILTIN)
    return found


def get_embedder(model_id: str, device: str | None = None) -> Embedder:
    """The embedder for ``model_id`` (``prefix:spec``), loaded once per process and device."""
    key = (model_id, device)
    with _lock:
        if key in _cache:
            return _cache[key]
        prefix, sep, spec = model_id.partition(":")
        known = factories()
        if not sep or prefix not in known:
            raise ModelNotFoundError(
                f"unknown model id {model_id!r}",
                "model ids look like open_clip:ViT-B-32/laion2b_s34b_b79k, open_clip:<arch>//path/to/ckpt.pt "
                f"or hf:openai/clip-vit-base-patch32; known prefixes: {', '.join(sorted(known))}",
            )
        factory = known[prefix]
        if hasattr(factory, "load"):  # an entry point, imported only now
            factory = factory.load()
        embedder = factory(spec, device)
        _cache[key] = embedder
        return embedder
