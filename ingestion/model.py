"""Which model a run embeds with, and the spec a runner loads in its workers."""

from __future__ import annotations

from pinembed.embedders.registry import DEFAULT_MODEL

#: (model id, device, precision): what a runner's workers load with ``get_embedder``.
ModelSpec = tuple[str, "str | None", "str | None"]


def model_for(asked: str | None, live: str | None) -> str:
    """The model id of a run: the one asked for, else the live generation's, else the default."""
    return asked or live or DEFAULT_MODEL
