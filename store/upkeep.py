"""Upkeep after writing, as a part of ``Store``: ``store.index``'s policy (the ANN index, scalar
indexes, compaction) applied to the generation's pins and segments."""

from __future__ import annotations

from . import faults
from .attributes import is_attribute
from .index import attribute_index_kinds, compact, maintain
from .schema import PINS, SEGMENTS
from .tables import Tables

#: Scalar indexes kept by upkeep: pin lookups and merge_insert by pin_id, kind filters.
PINS_SCALAR = {"pin_id": "btree", "kind": "bitmap", "width": "btree", "height": "btree", "duration_s": "btree"}
SEGMENTS_SCALAR = {"pin_id": "btree"}


class Upkeep(Tables):
    """The indexes and compaction of pins and segments."""

    @faults.translated
    def ensure_index(self) -> str:
        """Upkeep after writing: the ANN index policy on pins (returns exact, built, rebuilt or current),
        scalar indexes on pins (attributes too) and segments, and compaction of both."""
        t = self._table(PINS)
        if t is None:
            return "exact"
        scalar = dict(PINS_SCALAR)
        if t.count_rows() >= self.index_policy.scalar_index_above:  # attributes a filter names: indexed too
            scalar.update(attribute_index_kinds(t, {f.name: f.type for f in t.schema if is_attribute(f.name)}))
        state = maintain(t, t.schema.field("vector").type.list_size, self.index_policy, scalar)
        seg = self._table(SEGMENTS)
        if seg is not None:
            maintain(seg, None, self.index_policy, SEGMENTS_SCALAR)
        self._indexed = None
        return state

    def compact(self) -> None:
        """Compact pins and segments when small fragments have piled up (called during long runs)."""
        for name in (PINS, SEGMENTS):
            t = self._table(name)
            if t is not None:
                compact(t, self.index_policy)
