"""The identity of an embedding space, and the rule for when two are the same."""

from __future__ import annotations

from typing import Any

from pinembed import __version__

# What must match for vectors to be comparable. The model id may differ (the same checkpoint at
# another path); the weights, the dim and the preprocessing may not.
_SAME = ("dim", "weights_digest", "preprocess", "quick_gelu")


def space_identity(embedder_identity: dict[str, Any]) -> dict[str, Any]:
    """The embedder's identity plus the pinembed version that wrote it."""
    return {**embedder_identity, "pinembed_version": __version__}


def same_space(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when vectors made under ``a`` and ``b`` can share one table."""
    return all(a.get(k) == b.get(k) for k in _SAME)


def describe(identity: dict[str, Any]) -> str:
    """A one-line description for messages."""
    return f"{identity.get('model_id')} (dim {identity.get('dim')}, weights {identity.get('weights_digest')})"
