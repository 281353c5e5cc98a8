"""The read-ahead window: order kept, failures reported, and images in flight bounded."""

import threading
import time

from pinembed.ingestion.runners.local import read_ahead


def test_order_and_failures_are_kept():
    def fn(x):
        time.sleep(0.002 * (5 - x % 5))
        if x == 3:
            raise ValueError("bad input")
        return x * 10

    out = list(read_ahead(range(10), fn, workers=4, window=4))
    assert [x for x, _, _ in out] == list(range(10))
    assert [r for x, r, _ in out if x != 3] == [x * 10 for x in range(10) if x != 3]
    assert isinstance(out[3][2], ValueError)


def test_window_bounds_the_images_in_flight():
    lock = threading.Lock()
    state = {"in_flight": 0, "peak": 0}
    costs = {i: (12 if i % 3 == 0 else 1) for i in range(30)}  # a video every third entry

    def fn(x):
        with lock:
            state["in_flight"] += costs[x]
            state["peak"] = max(state["peak"], state["in_flight"])
        time.sleep(0.001)
        return x

    seen = []
    for x, _, _ in read_ahead(range(30), fn, workers=4, window=16, cost=costs.__getitem__):
        with lock:
            state["in_flight"] -= costs[x]  # the consumer holds it until it is yielded
        seen.append(x)
    assert seen == list(range(30))
    assert state["peak"] <= 16


def test_an_item_costlier_than_the_window_still_goes_through():
    out = list(read_ahead([1, 2, 3], lambda x: x, workers=2, window=4, cost=lambda x: 100))
    assert [r for _, r, _ in out] == [1, 2, 3]
