"""The read stage of an ingestion run: an entry -> a read Item, or the ledger rows of its failure
(``read_entry``), and what a runner needs to plan its reads (``entry_cost``, ``needs_decode_pool``).
The embed and write stages are ``embed_stage.py`` and ``write_stage.py``; runners (``runners/``)
compose the three. Items are plain data (tensors, numbers, strings), so a runner may move them
between processes or machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pinembed.errors import FaultError, UsageError

from . import kinds
from .entry import Entry
from .ledger import failure_row
from .read import Item, Reader
from .video_decode import VideoParams


@dataclass
class Unread:
    """What a runner hands back for an input that failed to read: its ledger rows (written with the
    next batch)."""

    rows: list[dict[str, Any]]


def entry_cost(entry: Entry, video: VideoParams) -> int:
    """Images an entry can decode to (its share of a read-ahead window), from its kind."""
    return kinds.get(entry.kind).cost(entry, video)


def needs_decode_pool(entry: Entry) -> bool:
    """Whether reading ``entry`` needs the video decode processes."""
    return kinds.get(entry.kind).uses_decode_pool(entry)


def read_entry(reader: Reader, entry: Entry) -> tuple[Item | None, list[dict[str, Any]]]:
    """The read stage: (the Item, []) or (None, the ledger rows of its failure). Never raises for bad
    input. What is not about this input raises and stops the run: a usage error (an unknown kind, a
    storage option the object store refuses) and an unreachable object store (FaultError, exit 5:
    every later read would fail too, and a ledger row per input would hide the outage)."""
    try:
        return reader(entry), []
    except Exception as e:
        if isinstance(e, UsageError) or (isinstance(e, FaultError) and e.reason == "unreachable"):
            raise
        return None, failure_rows(entry, e)


def failure_rows(entry: Entry, err: BaseException) -> list[dict[str, Any]]:
    """The ledger rows of one input that failed to read: its own, then any reasons behind it (the pages
    behind an idea pin's "no usable pages")."""
    return [failure_row(entry.uri, entry.pin_id, err), *getattr(err, "warnings", [])]
