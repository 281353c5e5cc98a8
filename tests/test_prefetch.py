"""prefetched: items made on a thread ahead of the caller, errors raised where they happened, an early
stop stops the reader."""

from __future__ import annotations

import threading

import pytest

from pinembed.ingestion.prefetch import prefetched


def test_items_come_in_order_and_an_error_comes_where_it_happened():
    def items():
        yield from range(5)
        raise ValueError("line 6 is bad")

    got = []
    with pytest.raises(ValueError, match="line 6"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_a_caller_that_stops_early_stops_the_reader_and_closes_its_items():
    made, closed = [], threading.Event()

    def items():
        try:
            for i in range(10_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    for x in prefetched(items(), depth=2):
        if x == 3:
            break
    assert closed.is_set() and len(made) <= 3 + 1 + 2 + 1  # at most depth ahead (and one in hand)
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
