"""pinembed: unified CLIP-style embeddings for images, videos and idea pins, in LanceDB.

    import pinembed
    idx = pinembed.open_index("pins.lance")
    idx.related("shoes/red.jpg", k=20)

Heavy modules (torch, open_clip, lancedb) load on first use, so ``import pinembed`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PinembedError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .index import PinIndex, open_index
    from .results import Related

_LAZY = {
    "open_index": "pinembed.index",
    "PinIndex": "pinembed.index",
    "Related": "pinembed.results",
    "IngestOptions": "pinembed.ingestion.options",
    "IngestSummary": "pinembed.ingestion.ingest",
}

__all__ = ["IngestOptions", "IngestSummary", "PinIndex", "PinembedError", "Related", "__version__", "open_index"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pinembed' has no attribute {name!r}")
