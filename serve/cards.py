"""The JSON shapes of pins: ``PIN_CARD`` (and ``RESULT``, a card with a score) with relative,
percent-encoded URLs of the pin's thumbnail and media; a pin's details with its attributes."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from pinembed.store.attributes import type_name

TIMED = ("video", "motion")


def url(path: str, **params: Any) -> str:
    """``path?a=b`` with the parameters that are not None, percent-encoded (pin ids hold / and &)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{path}?{query}" if query else path


def card(pin_id: str, kind: str, uri: str | None, title: str | None, extras: dict[str, Any] | None = None,
         best_t_s: float | None = None, best_page: int | None = None, score: float | None = None) -> dict[str, Any]:
    """A pin card; ``extras`` from ``PinIndex.pin_extras`` (duration, pages, content hash)."""
    extras = extras or {}
    t = best_t_s if kind in TIMED else None
    out: dict[str, Any] = {"pin_id": pin_id, "kind": kind}
    if score is not None:
        out["score"] = score
    out |= {
        "title": title, "uri": uri, "best_t_s": best_t_s, "best_page": best_page,
        "thumb": url("/api/thumb", pin=pin_id, t=t, page=best_page if kind == "idea" else None),
        "media": url("/api/media", pin=pin_id),
        "pages": extras.get("pages"), "duration_s": _round(extras.get("duration_s")),
    }
    return out


def results(rows: list[Any], fused: bool = False) -> list[dict[str, Any]]:
    """RESULT cards of ``Related`` results (which carry their duration and page count), with their
    ``rank`` (from 1, the order of the list). ``fused``: a session's results, ranked by the fusion of
    its interests' lists, not by ``score`` (their best cosine): each card also gets ``fused``, the
    fused score of the ranking, when the results carry one."""
    out = []
    for rank, r in enumerate(rows, start=1):
        c = card(r.pin_id, r.kind, r.uri, r.title, {"pages": r.pages, "duration_s": r.duration_s}, r.best_t_s,
                 r.best_page, r.score)
        c["rank"] = rank
        if fused and getattr(r, "fused", None) is not None:
            c["fused"] = round(float(r.fused), 6)
        out.append(c)
    return out


def details(pin: dict[str, Any]) -> dict[str, Any]:
    """The card of ``PinIndex.pin`` plus description, size, duration, ``attributes`` (name -> JSON value:
    dates as ISO 8601 text, lists as lists, null when the pin has none) and segments (each with its
    thumbnail: frames at their time, pages by number; text segments have none)."""
    out = card(pin["pin_id"], pin["kind"], pin.get("uri"), pin.get("title"), pin)
    segs = []
    for s in pin.get("segments", []):
        thumb = None
        if s["kind"] == "frame":
            thumb = url("/api/thumb", pin=pin["pin_id"], t=_round(s.get("t_s")))
        elif s["kind"] == "page" and s.get("page") is not None:
            thumb = url("/api/thumb", pin=pin["pin_id"], page=s["page"])
        segs.append({"seq": s["seq"], "kind": s["kind"], "t_s": _round(s.get("t_s")), "page": s.get("page"),
                     "thumb": thumb})
    out |= {"description": pin.get("description"), "width": pin.get("width"), "height": pin.get("height"),
            "attributes": {n: attribute_value(v) for n, v in (pin.get("attributes") or {}).items()},
            "segments": segs}
    return out


def attribute_types(attrs: Mapping[str, Any]) -> dict[str, str]:
    """Attributes (name -> Arrow type) as name -> type name (string, int, float, bool, timestamp,
    list<string>), in the table's order."""
    return {n: type_name(t) or str(t) for n, t in attrs.items()}


def attribute_value(v: Any) -> Any:
    """An attribute's value as JSON: a date and time as ISO 8601 text, a non-finite number as null."""
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [attribute_value(x) for x in v]
    return v


def _round(v: Any) -> float | None:
    return None if v is None else round(float(v), 3)
