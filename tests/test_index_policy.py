"""The ANN index policy on a small table with a low threshold: built, queried with recall, kept current."""

from __future__ import annotations

import numpy as np

from pinembed.store import Store, space_identity
from pinembed.store.db import now
from pinembed.store.index import IndexPolicy, vector_index


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
    assert IndexPolicy.sub_vectors(512) == 64 and IndexPolicy.sub_vectors(64) == 8 and IndexPolicy.sub_vectors(100) == 10
    assert IndexPolicy().refine_factor(10) == 40 and IndexPolicy().refine_factor(1000) == 2


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
