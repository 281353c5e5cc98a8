"""Which model a run embeds with: the default for a new database, and the spec a runner loads in
its workers. Light on purpose (no embedder is imported here): ``pinembed.index`` reads the default."""

from __future__ import annotations

#: The model a new database is built with when none is named.
DEFAULT_MODEL = "open_clip:ViT-B-32/laion2b_s34b_b79k"

#: (model id, device, precision): what a runner's workers load with ``get_embedder``.
ModelSpec = tuple[str, "str | None", "str | None"]


def model_for(asked: str | None, live: str | None) -> str:
    """The model id of a run: the one asked for, else the live generation's, else the default."""
    return asked or live or DEFAULT_MODEL
