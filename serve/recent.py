"""The start page's listing: the pins newest first (by ``embedded_at``, then by pin id), a page at a time.

The order is read once per index, kinds and where filter (two columns of every pin, streamed through
``PinIndex.to_arrow``; about a second at 1M pins) and kept until the live index is swapped for a
newer one (a refresh or a model switch makes a new index), so paging through it costs one slice and
one card query a page.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

MAX_ORDERS = 4  # kinds and where filters whose order is kept per index


class RecentPins:
    """Pin ids newest first, per index (weakly held: a swapped-out index lets its orders go)."""

    def __init__(self) -> None:
        self._orders: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def page(self, idx: Any, page: int, size: int, kinds: list[str] | None, where: Any = None) -> tuple[list[str], int]:
        """The pin ids of page ``page`` (from 1) of ``size`` pins, newest first, and how many pins there
        are in all (of ``kinds``, or of every kind; matching ``where``, a ``store.filters.Compiled``)."""
        ids = self._order(idx, (tuple(kinds or ()), str(where) if where else None), where)
        start = (page - 1) * size
        return ids[start : start + size].to_pylist() if start < len(ids) else [], len(ids)

    def _order(self, idx: Any, key: tuple[Any, ...], where: Any) -> Any:
        with self._lock:
            per_index = self._orders.setdefault(idx, OrderedDict())
            ids = per_index.get(key)
            if ids is not None:
                per_index.move_to_end(key)
                return ids
        ids = newest_first(idx, list(key[0]) or None, where)  # outside the lock: two requests may both read it once
        with self._lock:
            per_index = self._orders.setdefault(idx, OrderedDict())
            per_index[key] = ids
            while len(per_index) > MAX_ORDERS:
                per_index.popitem(last=False)
        return ids


def newest_first(idx: Any, kinds: list[str] | None = None, where: Any = None) -> Any:
    """Every pin id of ``idx`` (of ``kinds``, matching ``where``) as an Arrow string array, the most
    recently embedded first (ties, such as the pins of one batch, by pin id; a pin with no time last)."""
    import pyarrow.compute as pc

    table = idx.to_arrow(columns=["pin_id", "embedded_at"], kinds=kinds, where=where)
    if table.num_rows == 0:
        import pyarrow as pa

        return pa.array([], pa.string())
    order = pc.sort_indices(table, sort_keys=[("embedded_at", "descending"), ("pin_id", "ascending")],
                            null_placement="at_end")
    return table["pin_id"].take(order).combine_chunks()
