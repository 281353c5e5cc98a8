"""Pins held in memory (store/resident.py, ``PinIndex.hold_in_memory``): the same answers as the table
gives, through the ANN index and exactly, and following another process's writes."""

from __future__ import annotations

import numpy as np
import pytest

import pinembed
from pinembed.errors import PinNotFoundError
from pinembed.store import Store, space_identity
from pinembed.store.rows import now

DIM = 16
KINDS = ("image", "video", "idea")


def _rows(rng, n, prefix="p", centres=None):
    centres = centres if centres is not None else rng.normal(size=(12, DIM))
    out = []
    for i in range(n):
        v = centres[i % len(centres)] + 0.35 * rng.normal(size=DIM)
        out.append({"pin_id": f"{prefix}{i:04d}", "kind": KINDS[i % 3], "uri": f"/media/{prefix}{i:04d}",
                    "title": f"pin {i} of {prefix}", "width": 100 + i % 50, "n_segments": 0, "model_id": "m",
                    "vector": (v / np.linalg.norm(v)).astype(np.float32), "embedded_at": now()})
    return out


def _store(path, rows) -> Store:
    store = Store(str(path))
    store.ensure_space(space_identity({"model_id": "m", "dim": DIM, "weights_digest": "d", "preprocess": {}}))
    store.write(rows)
    return store


def _same(a, b):
    assert [r.pin_id for r in a] == [r.pin_id for r in b]
    assert [r.kind for r in a] == [r.kind for r in b] and [r.title for r in a] == [r.title for r in b]
    assert np.allclose([r.score for r in a], [r.score for r in b], atol=1e-5)


CONTROLS = [{}, {"kinds": ["video"]}, {"where": {"width": {"gte": 130}}}, {"dedupe": 0.97},
            {"diversity": 0.4}, {"kinds": ["image", "idea"], "dedupe": 0.99, "diversity": 0.2}]


@pytest.mark.parametrize("indexed", [False, True], ids=["exact", "ann-index"])
def test_held_pins_answer_as_the_table_does(tmp_path, monkeypatch, indexed):
    if indexed:
        monkeypatch.setenv("PINEMBED_EXACT_BELOW", "100")
    rng = np.random.default_rng(0)
    store = _store(tmp_path / "db", _rows(rng, 600))
    assert store.ensure_index() == ("built" if indexed else "exact")
    plain = pinembed.open_index(str(tmp_path / "db"))
    held = pinembed.open_index(str(tmp_path / "db"))
    assert held.hold_in_memory() and len(held.resident) == 600
    for pid in [f"p{i:04d}" for i in range(0, 600, 37)]:
        for c in CONTROLS:
            _same(held.related(pid, k=10, **c), plain.related(pid, k=10, **c))
    q = rng.normal(size=DIM)
    _same(held.search_vector(q, k=25, exclude=["p0001", "p0002"]), plain.search_vector(q, k=25, exclude=["p0001", "p0002"]))
    _same(held.related_to_session(["p0003", "p0100"], k=10), plain.related_to_session(["p0003", "p0100"], k=10))
    extras = held.pin_extras(["p0005", "nope"], vectors=True)
    assert set(extras) == {"p0005"} and extras["p0005"]["title"] == "pin 5 of p"


def test_held_pins_follow_another_writer(tmp_path, monkeypatch):
    monkeypatch.setenv("PINEMBED_EXACT_BELOW", "100")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(12, DIM))
    writer = _store(tmp_path / "db", _rows(rng, 400, centres=centres))
    writer.ensure_index()
    held = pinembed.open_index(str(tmp_path / "db"))
    assert held.hold_in_memory()

    # another process: one new pin, one pin changed (a new vector and title), one pin deleted
    target = centres[0] / np.linalg.norm(centres[0])
    new = {**_rows(rng, 1, prefix="new")[0], "vector": target.astype(np.float32), "title": "new"}
    changed = {**_rows(rng, 1)[0], "pin_id": "p0013", "vector": -target.astype(np.float32), "title": "changed"}
    writer.write([new, changed])
    writer.delete_pins(["p0024"])

    # not synced yet: a new pin is read from the table, as a query and as a result
    fresh = pinembed.open_index(str(tmp_path / "db"))
    fresh.resident = held.resident
    assert [r.pin_id for r in fresh.related("new0000", k=3)]
    assert "new0000" in [r.pin_id for r in fresh.search_vector(target, k=5)]

    assert fresh.sync_memory() == {"read": 2, "updated": 2, "deleted": 1}
    assert "p0024" not in fresh.resident and len(fresh.resident) == 400
    with pytest.raises(PinNotFoundError):
        fresh.related("p0024")
    row = fresh.resident.rows(["p0013"], with_vector=True)["p0013"]
    assert row["title"] == "changed" and np.allclose(row["vector"], -target, atol=1e-6)
    assert fresh.sync_memory() == {"read": 0, "updated": 0, "deleted": 0}  # nothing new: nothing read

    # compaction rewrites rows into new fragments: looked at, nothing fetched, answers unchanged
    writer.write(_rows(rng, 30, prefix="late", centres=centres))
    writer._pins().optimize()
    after = pinembed.open_index(str(tmp_path / "db"))
    after.resident = fresh.resident
    counts = after.sync_memory()
    assert counts["updated"] == 30 and counts["deleted"] == 0 and len(after.resident) == 430
    plain = pinembed.open_index(str(tmp_path / "db"))
    for pid in ("p0000", "p0013", "late0003", "new0000"):
        _same(after.related(pid, k=10), plain.related(pid, k=10))


def test_hold_in_memory_keeps_to_its_budget(tmp_path):
    _store(tmp_path / "db", _rows(np.random.default_rng(2), 50))
    idx = pinembed.open_index(str(tmp_path / "db"))
    assert idx.hold_in_memory(max_mb=0.001) is False and idx.resident is None
    assert idx.hold_in_memory(max_mb=10) is True and idx.resident.mb > 0
    idx.reload()
    assert idx.resident is None  # another generation may be live now: nothing stale is kept
