"""Arrow schemas of the tables in a pinembed database, and the pin row (``PinRow``) every writer builds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict

import pyarrow as pa

from pinembed.ingestion.kinds import NAMES as KINDS  # noqa: F401  (the kind registry's names)

PINS = "pins"
SEGMENTS = "segments"
FAILURES = "failures"
SOURCES = "sources"
SPACE_KEY = b"pinembed.space"

if TYPE_CHECKING:
    from datetime import datetime

    import numpy as np


def _meta(identity: dict[str, Any]) -> dict[bytes, bytes]:
    return {SPACE_KEY: json.dumps(identity, sort_keys=True).encode()}


class PinPlace(TypedDict, total=False):
    """Where a pin's media lies and what its sidecar says: what a moved or copied pin takes from its new
    place while it keeps its stored vectors (``Store.copy_pins``)."""

    pin_id: str
    uri: str
    size: int
    mtime_ns: int
    source_sig: str  # size:mtime of the media and of its sidecar text, so an edited title is seen as a change
    source: str | None  # the root of the source that owns the pin
    title: str | None
    description: str | None


class PinRow(TypedDict):
    """One row of the pins table: the one definition every writer builds (the embed stage; a moved or
    copied pin is a stored PinRow updated with its PinPlace). Its keys are the table's columns, in
    order (``pins_schema`` gives their Arrow types)."""

    pin_id: str
    kind: str
    uri: str
    content_hash: str | None
    size: int
    mtime_ns: int
    source_sig: str
    source: str | None  # the root of the source that owns the pin (None: written before sources owned pins)
    title: str | None
    description: str | None
    width: int | None
    height: int | None
    duration_s: float | None
    fps: float | None
    n_segments: int
    model_id: str
    vector: np.ndarray  # the pooled, L2-normalised pin vector
    embedded_at: datetime


def _pin_types(dim: int) -> dict[str, tuple[pa.DataType, bool]]:
    """The Arrow type of each PinRow column, and whether it may be null."""
    return {
        "pin_id": (pa.string(), False), "kind": (pa.string(), False), "uri": (pa.string(), True),
        "content_hash": (pa.string(), True), "size": (pa.int64(), True), "mtime_ns": (pa.int64(), True),
        "source_sig": (pa.string(), True), "source": (pa.string(), True), "title": (pa.string(), True), "description": (pa.string(), True),
        "width": (pa.int32(), True), "height": (pa.int32(), True), "duration_s": (pa.float32(), True),
        "fps": (pa.float32(), True), "n_segments": (pa.int32(), True), "model_id": (pa.string(), True),
        "vector": (pa.list_(pa.float32(), dim), True), "embedded_at": (pa.timestamp("us", tz="UTC"), True),
    }


def pins_schema(dim: int, identity: dict[str, Any]) -> pa.Schema:
    """One row per pin (``PinRow``, its columns in its order); ``vector`` is the pooled, L2-normalised
    pin vector."""
    types = _pin_types(dim)
    return pa.schema([pa.field(name, *types[name]) for name in PinRow.__annotations__], metadata=_meta(identity))


def segments_schema(dim: int, identity: dict[str, Any]) -> pa.Schema:
    """Per-frame, per-page and per-text vectors of multi-part pins."""
    return pa.schema(
        [
            pa.field("pin_id", pa.string(), nullable=False),
            pa.field("seq", pa.int32(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("t_s", pa.float32()),  # frames: time in the video
            pa.field("uri", pa.string()),
            pa.field("page", pa.int32()),  # idea pins: the page a page or text segment belongs to
            pa.field("weight", pa.float32()),  # weight in the pooled vector (0 for blank frames)
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ],
        metadata=_meta(identity),
    )


def failures_schema() -> pa.Schema:
    """The failure ledger: one row per input that could not be ingested, keyed by uri."""
    return pa.schema(
        [
            pa.field("uri", pa.string(), nullable=False),
            pa.field("pin_id", pa.string()),
            pa.field("stage", pa.string()),
            pa.field("error", pa.string()),
            pa.field("message", pa.string()),
            pa.field("attempts", pa.int32()),
            pa.field("first_seen", pa.timestamp("us", tz="UTC")),
            pa.field("last_seen", pa.timestamp("us", tz="UTC")),
        ]
    )


def sources_schema() -> pa.Schema:
    """The sources of a database: each root (a folder's absolute path) owns the pin ids under its prefix."""
    return pa.schema(
        [
            pa.field("root", pa.string(), nullable=False),
            pa.field("id_prefix", pa.string(), nullable=False),
            pa.field("first_seen", pa.timestamp("us", tz="UTC")),
            pa.field("last_seen", pa.timestamp("us", tz="UTC")),
        ]
    )
