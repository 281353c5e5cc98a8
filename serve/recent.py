"""The start page's listing: the pins newest first (by ``embedded_at``, then by pin id), a page at a time.

The order is read once per index and kinds filter (two columns of every pin, streamed through
``PinIndex.to_arrow``; about a second at 1M pins) and kept until the live index is swapped for a
newer one (a refresh or a model switch makes a new index), so paging through it costs one slice and
one card query a page.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

MAX_ORDERS = 4  # kinds filters whose order is kept per index


class RecentPins:
    """Pin ids newest first, per index (weakly held: a swapped-out index lets its orders go)."""

    def __init__(self) -> None:
        self._orders: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, ...], Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def page(self, idx: Any, page: int, size: int, kinds: list[str] | None) -> tuple[list[str], int]:
        """The pin ids of page ``page`` (from 1) of ``size`` pins, newest first, and how many pins there
        are in all (of ``kinds``, or of every kind)."""
        ids = self._order(idx, tuple(kinds or ()))
        start = (page - 1) * size
        return ids[start : start + size].to_pylist() if start < len(ids) else [], len(ids)

    def _order(self, idx: Any, kinds: tuple[str, ...]) -> Any:
        with self._lock:
            per_index = self._orders.setdefault(idx, OrderedDict())
            ids = per_index.get(kinds)
            if ids is not None:
                per_index.move_to_end(kinds)
                return ids
        ids = newest_first(idx, list(kinds) or None)  # outside the lock: two requests may both read it once
        with self._lock:
            per_index = self._orders.setdefault(idx, OrderedDict())
            per_index[kinds] = ids
            while len(per_index) > MAX_ORDERS:
                per_index.popitem(last=False)
        return ids


def newest_first(idx: Any, kinds: list[str] | None = None) -> Any:
    """Every pin id of ``idx`` (of ``kinds``) as an Arrow string array, the most recently embedded first
    (ties, such as the pins of one batch, by pin id; a pin with no time last)."""
    import pyarrow.compute as pc

    table = idx.to_arrow(columns=["pin_id", "embedded_at"], kinds=kinds)
    if table.num_rows == 0:
        import pyarrow as pa

        return pa.array([], pa.string())
    order = pc.sort_indices(table, sort_keys=[("embedded_at", "descending"), ("pin_id", "ascending")],
                            null_placement="at_end")
    return table["pin_id"].take(order).combine_chunks()
