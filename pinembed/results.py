"""What queries return."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Related:
    """One query result. ``score`` is the cosine similarity to the query (1 = same direction)."""

    pin_id: str
    kind: str
    score: float
    uri: str | None
    title: str | None = None
    best_t_s: float | None = None  # videos: time of the best-matching frame (text queries)
    best_page: int | None = None  # idea pins: the best-matching page (text queries)
    duration_s: float | None = None  # videos and motion pins
    pages: int | None = None  # idea pins: how many pages
    fused: float | None = None  # sessions: the reciprocal-rank-fusion score the list is ordered by

    @classmethod
    def from_row(cls, row: dict[str, Any], best_t_s: float | None = None, best_page: int | None = None,
                 pages: int | None = None) -> Related:
        """From a store result row."""
        t = round(float(best_t_s), 3) if best_t_s is not None else None
        d = row.get("duration_s")
        return cls(row["pin_id"], row["kind"], round(float(row["score"]), 6), row.get("uri"), row.get("title"),
                   t, best_page, round(float(d), 3) if d is not None else None, pages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
