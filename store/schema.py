"""Arrow schemas of the tables in a pinembed database (see ARCHITECTURE.md, "Data model")."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from pinembed.ingestion.kinds import NAMES as KINDS  # noqa: F401  (the kind registry's names)

PINS = "pins"
SEGMENTS = "segments"
FAILURES = "failures"
SOURCES = "sources"
SPACE_KEY = b"pinembed.space"


def _meta(identity: dict[str, Any]) -> dict[bytes, bytes]:
    return {SPACE_KEY: json.dumps(identity, sort_keys=True).encode()}


def pins_schema(dim: int, identity: dict[str, Any]) -> pa.Schema:
    """One row per pin; ``vector`` is the pooled, L2-normalised pin vector."""
    return pa.schema(
        [
            pa.field("pin_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("uri", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            # size:mtime of the media and of its sidecar text, so an edited title is seen as a change
            pa.field("source_sig", pa.string()),
            pa.field("title", pa.string()),
            pa.field("description", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("duration_s", pa.float32()),
            pa.field("fps", pa.float32()),
            pa.field("n_segments", pa.int32()),
            pa.field("model_id", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("embedded_at", pa.timestamp("us", tz="UTC")),
        ],
        metadata=_meta(identity),
    )


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
