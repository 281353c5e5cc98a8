"""The failure ledger, as a part of ``Store``: inputs that could not be ingested, with their reason,
attempts and when they were first and last seen; cleared once an input is ingested."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import deadline, faults, filters
from .rows import now, to_arrow
from .schema import FAILURES
from .tables import Tables


class Ledger(Tables):
    """The ``failures`` table: record, read and clear failed inputs."""

    def failures_by_uri(self) -> dict[str, dict[str, Any]]:
        """The failure ledger keyed by uri."""
        return {r["uri"]: r for r in self.failures()}

    @faults.translated
    def record_failures(self, failures: Sequence[dict[str, Any]]) -> None:
        """Add failures to the ledger, or bump ``attempts`` and ``last_seen`` of known ones."""
        if not failures:
            return
        t = self._ensure_failures()
        failures = list({f["uri"]: f for f in failures}.values())  # one row per uri (the last reason)
        uris = [f["uri"] for f in failures]
        known = {r["uri"]: r for r in t.search().where(filters.is_in("uri", uris)).limit(len(uris)).to_list()}
        stamp = now()
        rows = []
        for f in failures:
            old = known.get(f["uri"])
            rows.append(
                {
                    **f,
                    "attempts": (old["attempts"] if old else 0) + 1,
                    "first_seen": old["first_seen"] if old else stamp,
                    "last_seen": stamp,
                }
            )
        t.merge_insert("uri").when_matched_update_all().when_not_matched_insert_all().execute(
            to_arrow(rows, t.schema)
        )

    def clear_failures(self, uris: Sequence[str]) -> None:
        """Remove ledger rows of inputs that have now been ingested."""
        t = self._table(FAILURES)
        if t is not None and uris and t.count_rows():
            t.delete(filters.is_in("uri", uris))

    @deadline.bounded
    def failures(self) -> list[dict[str, Any]]:
        """The whole failure ledger, newest first."""
        t = self._table(FAILURES)
        if t is None:
            return []
        n = t.count_rows()
        rows = t.search().limit(n).to_list() if n else []
        return sorted(rows, key=lambda r: (r["last_seen"], r["uri"]), reverse=True)
