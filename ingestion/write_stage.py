"""The write stage: one embedded batch -> the store (one commit per table), its failures and warnings
-> the failure ledger."""

from __future__ import annotations

from pinembed import failpoints
from pinembed.store.db import Store

from .embed_stage import Embedded


def write_embedded(store: Store, batch: Embedded, keep: set[str]) -> None:
    """The write stage for one batch: pins and segments (one commit per table, idempotent by pin id, so
    a batch written twice leaves one copy), ledger rows cleared for pins that landed clean (except
    ``keep``: uris that failed in this run) and written for failures and warnings."""
    if batch.pins:
        store.write(batch.pins, batch.segments)
        failpoints.hit("batch")
        keep = keep | {w["uri"] for w in batch.warnings}
        store.clear_failures([u for p in batch.landed for u in p.uris if u not in keep])
    if batch.failures or batch.warnings:
        store.record_failures(batch.failures + batch.warnings)
