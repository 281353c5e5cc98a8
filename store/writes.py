"""Writing pins, as a part of ``Store``: upserts of pins with their segments, copies of stored pins
under new ids, and deletes; each checks the write lease first and resets the search's slice counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pinembed import failpoints

from . import faults, filters, lease
from .reads import PinReads
from .rows import to_arrow
from .schema import SEGMENTS


class Writes(PinReads):
    """Upserts, copies and deletes of pins and their segments."""

    @faults.translated
    def write(self, pins: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]] = ()) -> None:
        """Upsert pins (by pin id) and replace their segments; one LanceDB commit per table.

        Segments are written first: a crash between the two leaves the pin absent or old, so the
        next run sees it as new or changed and writes both again.
        """
        if not pins:
            return
        lease.check_held(self.uri)  # a run that lost its object-storage write lease stops here
        pins_t = self._pins()
        ids = [p["pin_id"] for p in pins]
        seg_t = self._table(SEGMENTS)
        data = to_arrow(pins, pins_t.schema)  # both tables are built before either commit
        seg_data = to_arrow(segments, seg_t.schema) if seg_t is not None and segments else None
        if seg_data is not None:
            (
                seg_t.merge_insert(["pin_id", "seq"])
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(filters.is_in("pin_id", ids))
                .execute(seg_data)
            )
            failpoints.hit("commit")
        elif seg_t is not None and seg_t.count_rows():
            seg_t.delete(filters.is_in("pin_id", ids))
        self._selected.clear()
        pins_t.merge_insert("pin_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        faults.note_commit(self.uri, len(pins))

    def copy_pins(self, copies: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Write pins that reuse stored vectors: (source pin id, fields of the new pin, pin_id among
        them). Segments are copied too. Returns how many landed (a source may have vanished)."""
        sources = self.pins_by_id(sorted({src for src, _ in copies}))
        segs: dict[str, list[dict[str, Any]]] = {}
        for seg in self.segments_of(list(sources)):
            segs.setdefault(seg["pin_id"], []).append(seg)
        pins, segments = [], []
        for src, fields in copies:
            row = sources.get(src)
            if row is None:
                continue
            pins.append({**row, **fields})
            segments += [{**seg, "pin_id": fields["pin_id"]} for seg in segs.get(src, [])]
        for i in range(0, len(pins), 256):
            chunk = pins[i : i + 256]
            ids = {p["pin_id"] for p in chunk}
            self.write(chunk, [s for s in segments if s["pin_id"] in ids])
        return len(pins)

    @faults.translated
    def delete_pins(self, pin_ids: Sequence[str]) -> None:
        """Remove pins and their segments (segments first: a crash between leaves a pin that the next
        refresh deletes again, never segments without a pin)."""
        if not pin_ids:
            return
        lease.check_held(self.uri)
        seg = self._table(SEGMENTS)
        pins_t = self._pins()
        for i in range(0, len(pin_ids), 1000):
            where = filters.is_in("pin_id", pin_ids[i : i + 1000])
            if seg is not None:
                seg.delete(where)
            pins_t.delete(where)
        self._selected.clear()
