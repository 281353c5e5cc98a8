"""The ANN index policy on a small table with a low threshold: built, queried with recall, kept current."""

from __future__ import annotations

import numpy as np

from pinembed.store import Store, space_identity
from pinembed.store.index import IndexPolicy, small_fragments, vector_index
from pinembed.store.rows import now


def _rows(vecs, start=0):
    return [{"pin_id": f"p{start + i:05d}", "kind": "video" if i % 5 == 0 else "image", "uri": "u",
             "source_sig": "1:1", "n_segments": 0, "model_id": "m", "vector": v, "embedded_at": now()}
            for i, v in enumerate(vecs)]


def _clustered(n, dim, rng, centers=40):
    c = rng.normal(size=(centers, dim)).astype(np.float32)
    v = c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_policy_parameters():
    assert IndexPolicy.partitions(1_000_000) == 1000 and IndexPolicy.partitions(100) == 16
    assert IndexPolicy().refine_factor(10) == 4 and IndexPolicy().refine_factor(1000) == 2
    assert IndexPolicy.index_name(1000) == "vector_idx_sq_p1000"


def test_index_built_above_threshold_keeps_recall_and_finds_new_rows(db):
    rng = np.random.default_rng(0)
    dim, n = 64, 3000
    store = Store(db, index_policy=IndexPolicy(exact_below=2000))
    store.ensure_space(space_identity({"model_id": "m", "dim": dim, "weights_digest": "d", "preprocess": {}}))
    vecs = _clustered(n, dim, rng)
    store.write(_rows(vecs[:1500]))
    assert store.ensure_index() == "exact"
    store.write(_rows(vecs[1500:], 1500))
    assert store.ensure_index() == "built" and vector_index(store._pins()) is not None
    assert store.ensure_index() == "current"
    recalls = []
    for q in rng.choice(n, 40, replace=False):
        exact = [f"p{i:05d}" for i in np.argsort(-(vecs @ vecs[q]))[1:11]]
        got = [r["pin_id"] for r in store.search(vecs[q], 10, exclude=f"p{q:05d}")]
        recalls.append(len(set(exact) & set(got)) / 10)
    assert np.mean(recalls) >= 0.95
    videos = store.search(vecs[0], 10, kinds=["video"])
    assert len(videos) == 10 and all(r["kind"] == "video" for r in videos)
    fresh = _clustered(5, dim, rng)  # added after the build: still found (flat search over unindexed rows)
    store.write(_rows(fresh, 90_000))
    assert store.search(fresh[2], 1)[0]["pin_id"] == "p90002"


def test_upkeep_rebuilds_after_many_new_rows_compacts_and_adds_scalar_indexes(db):
    rng = np.random.default_rng(1)
    dim = 32
    policy = IndexPolicy(exact_below=1000, scalar_index_above=500, compact_fragments=8, reindex_unindexed=0.05)
    store = Store(db, index_policy=policy)
    store.ensure_space(space_identity({"model_id": "m", "dim": dim, "weights_digest": "d", "preprocess": {}}))
    vecs = _clustered(1600, dim, rng)
    store.write(_rows(vecs[:1200]))
    assert store.ensure_index() == "built"
    store.write(_rows(vecs[1200:1250], 1200))  # 4% new rows: searched flat, index kept
    assert store.ensure_index() == "current"
    assert store.search(vecs[1234], 1)[0]["pin_id"] == "p01234"
    for s in range(1250, 1600, 35):  # ten more small commits: 25% new rows in ten fragments
        store.write(_rows(vecs[s : s + 35], s))
    pins = store._pins()
    assert small_fragments(pins) >= 10
    assert store.ensure_index() == "rebuilt"
    pins = store._pins()
    assert pins.index_stats(vector_index(pins).name).num_unindexed_rows == 0
    assert small_fragments(pins) <= 2  # compacted before the rebuild
    indexed = {c for i in pins.list_indices() for c in i.columns}
    assert {"vector", "pin_id", "kind"} <= indexed
    assert store.count() == 1600 and store.get_pin("p01555")["pin_id"] == "p01555"
    assert store.search(vecs[1555], 1)[0]["pin_id"] == "p01555"


def test_an_outgrown_index_is_rebuilt_and_replaces_the_old_one(db):
    rng = np.random.default_rng(2)
    store = Store(db, index_policy=IndexPolicy(exact_below=1000))
    store.ensure_space(space_identity({"model_id": "m", "dim": 16, "weights_digest": "d", "preprocess": {}}))
    vecs = _clustered(5000, 16, rng)
    store.write(_rows(vecs[:1100]))
    assert store.ensure_index() == "built"
    store.write(_rows(vecs[1100:3000], 1100))
    store.index_policy = IndexPolicy(exact_below=1000, reindex_unindexed=1.0)  # only outgrowing counts here
    assert store.ensure_index() == "current"  # 33 -> 55 partitions asked: not yet outgrown
    store.write(_rows(vecs[3000:], 3000))
    assert store.ensure_index() == "rebuilt"  # 71 partitions asked: twice the 33 it was built with
    names = [i.name for i in store._pins().list_indices() if "vector" in i.columns]
    assert names == ["vector_idx_sq_p71"]
    assert store.search(vecs[4321], 1)[0]["pin_id"] == "p04321"


def test_an_ivf_pq_index_of_an_older_pinembed_is_rebuilt_as_ivf_sq(db):
    from lancedb.index import IvfPq

    rng = np.random.default_rng(3)
    store = Store(db, index_policy=IndexPolicy(exact_below=1000))
    store.ensure_space(space_identity({"model_id": "m", "dim": 16, "weights_digest": "d", "preprocess": {}}))
    vecs = _clustered(1500, 16, rng)
    store.write(_rows(vecs))
    store._pins().create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=39, num_sub_vectors=2),
                               name="vector_idx_p39")
    assert store.ensure_index() == "rebuilt"
    names = [i.name for i in store._pins().list_indices() if "vector" in i.columns]
    assert names == ["vector_idx_sq_p39"]
    assert store.ensure_index() == "current"
    assert store.search(vecs[1234], 1)[0]["pin_id"] == "p01234"
