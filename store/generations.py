"""Model generations: each embedding space lives in its own pins/segments tables, and one row of the
``generations`` table says which generation queries read.

A model upgrade builds generation N+1 beside the live one (resumable: its tables keep what is done)
and goes live with one commit to ``generations``, which retires the old one in the same commit; so
a reader, which resolves the live generation once when it opens the database, never sees two
models. Retired tables stay until ``gc``. A database without a ``generations`` table (written by
pinembed 0.1) is generation 1 in the tables ``pins`` and ``segments``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from . import filters
from .identity import same_space
from .schema import PINS, SEGMENTS

GENERATIONS = "generations"
LIVE, BUILDING, RETIRED = "live", "building", "retired"


@dataclass(frozen=True)
class Generation:
    """One embedding space of the database and the tables that hold it."""

    generation: int
    model_id: str
    identity: dict[str, Any]
    pins: str
    segments: str
    state: str  # live | building | retired
    created_at: datetime | None = None
    switched_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        """As a row of the generations table."""
        return {"generation": self.generation, "model_id": self.model_id, "identity": json.dumps(self.identity, sort_keys=True),
                "pins": self.pins, "segments": self.segments, "state": self.state,
                "created_at": self.created_at, "switched_at": self.switched_at}


def generations_schema() -> pa.Schema:
    """The generations table: one row per embedding space."""
    return pa.schema([
        pa.field("generation", pa.int32(), nullable=False),
        pa.field("model_id", pa.string()),
        pa.field("identity", pa.string()),
        pa.field("pins", pa.string()),
        pa.field("segments", pa.string()),
        pa.field("state", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("switched_at", pa.timestamp("us", tz="UTC")),
    ])


def table_names(generation: int) -> tuple[str, str]:
    """The pins and segments tables of a generation (1: ``pins``, ``segments``)."""
    return (PINS, SEGMENTS) if generation == 1 else (f"{PINS}_g{generation}", f"{SEGMENTS}_g{generation}")


def read_all(db: Any, names: set[str], implicit: dict[str, Any] | None) -> list[Generation]:
    """Every generation, oldest first. ``implicit``: the identity of a ``pins`` table in a database
    that has no generations table yet (it is generation 1, live)."""
    if GENERATIONS not in names:
        if implicit is None:
            return []
        return [Generation(1, implicit.get("model_id", "?"), implicit, PINS, SEGMENTS, LIVE)]
    t = db.open_table(GENERATIONS)
    rows = t.search().limit(max(1, t.count_rows())).to_list()
    gens = [Generation(int(r["generation"]), r["model_id"], json.loads(r["identity"] or "{}"), r["pins"],
                       r["segments"], r["state"], r["created_at"], r["switched_at"]) for r in rows]
    return sorted(gens, key=lambda g: g.generation)


def live(gens: list[Generation]) -> Generation | None:
    """The generation queries read."""
    return next((g for g in gens if g.state == LIVE), None)


def building_for(gens: list[Generation], identity: dict[str, Any]) -> Generation | None:
    """An unfinished generation of the same space (a model upgrade to resume)."""
    return next((g for g in gens if g.state == BUILDING and same_space(g.identity, identity)), None)


def write(db: Any, names: set[str], rows: list[Generation]) -> None:
    """Upsert generation rows in one commit (creating the table with them when missing)."""
    data = pa.Table.from_pylist([g.row() for g in rows], schema=generations_schema())
    if GENERATIONS not in names:
        db.create_table(GENERATIONS, data, exist_ok=False)
        names.add(GENERATIONS)
        return
    t = db.open_table(GENERATIONS)
    t.merge_insert("generation").when_matched_update_all().when_not_matched_insert_all().execute(data)


def forget(db: Any, generations: list[int]) -> None:
    """Remove generation rows (after their tables were dropped)."""
    if generations:
        db.open_table(GENERATIONS).delete(filters.int_in("generation", generations))
