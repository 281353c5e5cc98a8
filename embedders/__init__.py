"""Pixels and text -> vectors. No LanceDB and no file walking here."""

from .base import Embedder, l2_normalise
from .registry import ENTRY_POINT_GROUP, get_embedder

__all__ = ["ENTRY_POINT_GROUP", "Embedder", "get_embedder", "l2_normalise"]
