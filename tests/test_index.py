"""The Python API: ingest, related, search, model identity, and recovering from a killed run."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import pinembed
from pinembed.errors import ModelMismatchError, PinNotFoundError, UsageError
from pinembed.ingestion.options import IngestOptions

from helpers import save_image, write_sidecar

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "black": (5, 5, 5)}


@pytest.fixture()
def folder(tmp_path):
    src = tmp_path / "src"
    for name, rgb in COLOURS.items():
        for i in range(3):
            save_image(src / name / f"{name}-{i}.png", colour=rgb, size=(40 + i * 4, 40))
    return src


def test_related_search_and_stats(folder, db, tiny_model_id):
    idx = pinembed.open_index(db, model=tiny_model_id)
    summary = idx.ingest(folder)
    assert (summary.added, summary.failed, summary.exit_code) == (12, 0, 0)
    res = idx.related("red/red-0.png", k=5)
    assert len(res) == 5 and "red/red-0.png" not in [r.pin_id for r in res]
    assert [r.score for r in res] == sorted((r.score for r in res), reverse=True)
    assert {r.pin_id for r in res[:2]} == {"red/red-1.png", "red/red-2.png"}  # same colour first
    assert res[0].kind == "image" and res[0].uri.startswith(str(folder))
    hit = idx.search_image(folder / "blue" / "blue-1.png", k=1)[0]
    assert hit.pin_id == "blue/blue-1.png" and hit.score > 0.999
    assert len(idx.search_text("a red square", k=4)) == 4
    assert idx.related("red/red-0.png", k=3, kinds={"video"}) == []
    stats = pinembed.open_index(db).stats()
    assert stats["pins"] == 12 and stats["by_kind"] == {"image": 12} and stats["space"]["dim"] == 64


def test_query_errors(folder, db, tiny_model_id):
    idx = pinembed.open_index(db, model=tiny_model_id)
    idx.ingest(folder)
    with pytest.raises(PinNotFoundError):
        idx.related("nope.jpg")
    with pytest.raises(UsageError):
        idx.related("red/red-0.png", k=0)
    with pytest.raises(UsageError):
        idx.search_text("   ")
    with pytest.raises(UsageError):
        idx.search_image(folder / "missing.png")
    with pytest.raises(UsageError):
        idx.related("red/red-0.png", kinds=["gif"])


def test_reopening_with_another_model_is_refused(folder, db, tiny_model_id, other_tiny_model_id):
    pinembed.open_index(db, model=tiny_model_id).ingest(folder)
    with pytest.raises(ModelMismatchError) as e:
        pinembed.open_index(db, model=other_tiny_model_id).ingest(folder)
    assert "another embedding space" in str(e.value)
    assert pinembed.open_index(db).model_id == tiny_model_id  # its own model by default
    assert pinembed.open_index(db).stats()["pins"] == 12


def test_changed_files_and_sidecars_are_updated(folder, db, tiny_model_id):
    idx = pinembed.open_index(db, model=tiny_model_id)
    idx.ingest(folder)
    target = folder / "red" / "red-0.png"
    write_sidecar(target, "Crimson tile", "a red square")
    s = idx.ingest(folder)
    assert (s.added, s.updated, s.unchanged) == (0, 1, 11)
    assert idx.store.get_pin("red/red-0.png", with_vector=False)["title"] == "Crimson tile"
    save_image(target, colour=(20, 200, 20), size=(44, 40))
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert idx.ingest(folder).updated == 1
    assert idx.related("red/red-0.png", k=1)[0].pin_id.startswith("green/")


def test_text_weight_moves_the_vector(folder, db, tiny_model_id, tmp_path):
    write_sidecar(folder / "red" / "red-0.png", "a blue whale")
    plain = pinembed.open_index(db, model=tiny_model_id)
    plain.ingest(folder)
    fused = pinembed.open_index(str(tmp_path / "fused.lance"), model=tiny_model_id)
    fused.ingest(folder, IngestOptions(text_weight=1.0))
    a = plain.store.get_pin("red/red-0.png")["vector"]
    b = fused.store.get_pin("red/red-0.png")["vector"]
    c = fused.store.get_pin("red/red-1.png")["vector"]
    assert np.dot(a, b) < 0.999 and abs(np.linalg.norm(b) - 1) < 1e-5
    np.testing.assert_allclose(plain.store.get_pin("red/red-1.png")["vector"], c, atol=1e-6)  # no text: same


def test_a_killed_run_is_finished_by_the_next(folder, db, tiny_model_id):
    idx = pinembed.open_index(db, model=tiny_model_id)

    def kill_after_six(done, total):
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        idx.ingest(folder, IngestOptions(batch_size=4), progress=kill_after_six)
    landed = idx.stats()["pins"]
    assert landed == 4  # one whole batch committed, nothing half-written
    s = idx.ingest(folder, IngestOptions(batch_size=4))
    assert (s.added, s.unchanged) == (12 - landed, landed)
    ids = idx.store.pin_states(("pin_id",)).column("pin_id").to_pylist()
    assert len(ids) == len(set(ids)) == 12


def test_ingest_speed_is_reported(folder, db, tiny_model_id):
    t = time.perf_counter()
    s = pinembed.open_index(db, model=tiny_model_id).ingest(folder)
    assert 0 < s.elapsed_s <= time.perf_counter() - t + 0.01 and s.items_per_s > 0


def test_search_vector_takes_a_raw_vector_and_refuses_a_wrong_one(tmp_path):
    from pinembed.store import Store, space_identity
    from pinembed.store.rows import now

    store = Store(str(tmp_path / "v.lance"))
    store.ensure_space(space_identity({"model_id": "m", "dim": 4, "weights_digest": "d", "preprocess": {}}))
    vecs = np.eye(4, dtype=np.float32)
    store.write([{"pin_id": f"p{i}", "kind": "image", "uri": "u", "n_segments": 0, "model_id": "m",
                  "vector": v, "embedded_at": now()} for i, v in enumerate(vecs)])
    idx = pinembed.open_index(str(tmp_path / "v.lance"))
    got = idx.search_vector([0, 0, 3.0, 0.1], k=2)
    assert [r.pin_id for r in got] == ["p2", "p3"] and got[0].score > 0.99
    for bad in ([1, 2, 3], [0, 0, 0, 0], [float("nan"), 0, 0, 1]):
        with pytest.raises(UsageError):
            idx.search_vector(bad)
