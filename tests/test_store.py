"""The LanceDB store: identity in table metadata, upserts, hostile ids, the failure ledger."""

from __future__ import annotations

import numpy as np
import pytest

from pinembed.errors import ModelMismatchError, PinNotFoundError, UsageError
from pinembed.store import Store, space_identity
from pinembed.store.filters import check_kinds, is_in, sql_str
from pinembed.store.rows import now

HOSTILE = ["it's.jpg", "x' OR '1'='1", 'quote".jpg', "back\\slash.jpg", "semi; DROP TABLE pins; --.jpg",
           "üñí 🎨.jpg", "%_wild*.jpg"]


def _pin(pin_id, vec, kind="image"):
    return {"pin_id": pin_id, "kind": kind, "uri": "/x/" + pin_id, "source_sig": "1:1", "n_segments": 0,
            "model_id": "m", "vector": vec, "embedded_at": now()}


def _ident(dim=4, digest="abc"):
    return space_identity({"model_id": "m", "dim": dim, "weights_digest": digest, "preprocess": {"size": 4}})


def test_identity_lives_in_table_metadata(db):
    s = Store(db)
    assert s.identity is None
    s.ensure_space(_ident())
    again = Store(db)
    assert again.identity["weights_digest"] == "abc" and again.identity["pinembed_version"]
    again.ensure_space(_ident())  # same space: fine
    with pytest.raises(ModelMismatchError) as e:
        Store(db).ensure_space(_ident(digest="other"))
    assert "another embedding space" in e.value.message and e.value.hint


def test_upsert_by_pin_id_and_hostile_ids(db):
    s = Store(db)
    s.ensure_space(_ident())
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(HOSTILE), 4)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    s.write([_pin(p, v) for p, v in zip(HOSTILE, vecs, strict=True)])
    s.write([_pin(p, v) for p, v in zip(HOSTILE, vecs, strict=True)])
    assert s.count() == len(HOSTILE)
    for pid, v in zip(HOSTILE, vecs, strict=True):
        got = s.get_pin(pid)
        assert got["pin_id"] == pid
        np.testing.assert_allclose(got["vector"], v, atol=1e-6)
        hits = s.search(v, k=3, exclude=pid)
        assert pid not in [h["pin_id"] for h in hits] and len(hits) == 3
    with pytest.raises(PinNotFoundError):
        s.get_pin("x' OR 'a'='a")
    with pytest.raises(UsageError):
        s.get_pin("nul\x00byte")


def test_failure_ledger_counts_attempts(db):
    s = Store(db)
    row = {"uri": "/m/it's bad.jpg", "pin_id": "it's bad.jpg", "stage": "read", "error": "truncated", "message": "m"}
    s.record_failures([row])
    s.record_failures([row])
    (got,) = s.failures()
    assert got["attempts"] == 2 and got["first_seen"] <= got["last_seen"]
    s.clear_failures([row["uri"]])
    assert s.failures() == []


def test_filter_quoting():
    assert sql_str("a'b") == "'a''b'"
    assert is_in("pin_id", ["x", "y'z"]) == "pin_id IN ('x', 'y''z')"
    assert is_in("pin_id", []) == "false"
    assert check_kinds("video") == ["video"]
    with pytest.raises(UsageError):
        check_kinds(["image", "kind' OR 1=1"])


def test_older_databases_gain_new_columns(db):
    import lancedb
    import pyarrow as pa

    from pinembed.store.schema import SPACE_KEY, pins_schema

    ident = _ident()
    old = pins_schema(4, ident)
    old = pa.schema([f for f in old if f.name != "fps"], metadata={SPACE_KEY: old.metadata[SPACE_KEY]})
    lancedb.connect(db).create_table("pins", schema=old)
    s = Store(db)
    s.ensure_space(ident)
    s.write([{**_pin("a.jpg", np.array([1, 0, 0, 0], np.float32)), "fps": 24.0}])
    row = s._pins().search().select(["pin_id", "fps"]).to_list()[0]
    assert row["fps"] == 24.0 and Store(db).identity["weights_digest"] == "abc"
