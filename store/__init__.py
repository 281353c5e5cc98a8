"""LanceDB: schemas, tables, model identity, upserts and queries."""

from .db import Store
from .identity import same_space, space_identity

__all__ = ["Store", "same_space", "space_identity"]
