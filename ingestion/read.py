"""Read one entry into model-ready pixels plus the metadata a pin row needs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pinembed.errors import InputError

from .discover import Entry
from .images import DEFAULT_MAX_PIXELS, decode_image
from .ledger import failure_row
from .sidecar import read_sidecar

DEFAULT_MAX_BYTES = 256 << 20


@dataclass
class ReadLimits:
    """Guards against hostile input."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class Item:
    """A read entry: one preprocessed tensor per segment (an image has one)."""

    entry: Entry
    pixels: list[Any]
    content_hash: str
    width: int | None = None
    height: int | None = None
    title: str | None = None
    description: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)  # ledger rows that do not stop the pin


def read_entry(entry: Entry, preprocess: Callable[[Any], Any], limits: ReadLimits, draft_size: int | None) -> Item:
    """Decode and preprocess ``entry``; InputError when it cannot become a pin."""
    if entry.kind != "image":
        raise InputError(
            f"{entry.kind} pins are not supported by this version of pinembed yet",
            stage="discover",
            error="unsupported",
        )
    if entry.size > limits.max_bytes:
        raise InputError(f"file is {entry.size:,} bytes, over the limit of {limits.max_bytes:,}", error="too_large")
    try:
        data = entry.path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror}", error="unreadable") from e
    decoded = decode_image(data, limits.max_pixels, draft_size)
    try:
        pixels = preprocess(decoded.image)
    except Exception as e:
        raise InputError(f"preprocessing failed: {e}", stage="preprocess", error=type(e).__name__) from e
    item = Item(entry, [pixels], hashlib.blake2b(data, digest_size=16).hexdigest(), decoded.width, decoded.height)
    if entry.sidecar is not None:
        try:
            item.title, item.description = read_sidecar(entry.sidecar)
        except InputError as e:
            item.warnings.append(failure_row(str(entry.sidecar), entry.pin_id, e))
    return item
