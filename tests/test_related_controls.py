"""Related-pin controls on small constructed vector sets where the right answer is known: near-duplicate
collapsing, diversity (MMR), sessions (interests + RRF), query arithmetic, structured filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pinembed
from pinembed import related as rel
from pinembed.cli.query import parse_terms
from pinembed.errors import UsageError
from pinembed.store import Store, space_identity
from pinembed.store.filters import compile_where, parse_cli_where
from pinembed.store.rows import now

DIM = 16


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _axis(i, noise=0.0, rng=None, other=None, mix=0.0):
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    if other is not None:
        v[other] = mix
    if noise:
        v = v + noise * rng.normal(size=DIM).astype(np.float32)
    return _unit(v)


def _db(path, pins):
    """pins: list of (pin_id, vector, extra fields)."""
    store = Store(str(path))
    store.ensure_space(space_identity({"model_id": "m", "dim": DIM, "weights_digest": "d", "preprocess": {}}))
    store.write([{"pin_id": pid, "kind": extra.get("kind", "image"), "uri": f"/m/{pid}", "n_segments": 0,
                  "model_id": "m", "vector": v, "embedded_at": now(), **extra} for pid, v, extra in pins])
    return pinembed.open_index(str(path))


def test_dedupe_drops_reuploads_of_the_query_and_of_results(tmp_path):
    rng = np.random.default_rng(0)
    q = _axis(0)
    pins = [("query", q, {}), ("query-reupload", _unit(q + 0.01 * rng.normal(size=DIM)), {})]
    a = _axis(0, other=1, mix=0.6)  # cos(q, a) ~ 0.86
    pins += [(f"a{i}", _unit(a + 0.01 * rng.normal(size=DIM)), {}) for i in range(3)]  # one photo, three uploads
    pins += [(f"b{i}", _axis(0, other=2 + i, mix=0.9), {}) for i in range(3)]  # distinct, cos ~ 0.74
    idx = _db(tmp_path / "d.lance", pins)
    plain = [r.pin_id for r in idx.related("query", k=5)]
    assert plain[0] == "query-reupload" and set(plain[1:4]) == {"a0", "a1", "a2"}
    got = [r.pin_id for r in idx.related("query", k=5, dedupe=0.95)]
    assert "query-reupload" not in got and sum(p.startswith("a") for p in got) == 1
    assert {"b0", "b1", "b2"} <= set(got) and len(got) == 4  # only 4 distinct pins exist
    assert idx.dupes(0.95, batch_size=3) == [["a0", "a1", "a2"], ["query", "query-reupload"]]
    assert idx.dupes(0.9999) == []


def test_diversity_mixes_directions_and_zero_is_plain_similarity(tmp_path):
    rng = np.random.default_rng(1)
    q = _axis(0)
    near = [(f"near{i}", _unit(_axis(0, other=1, mix=0.5) + 0.05 * rng.normal(size=DIM)), {}) for i in range(6)]
    far = [(f"far{i}", _unit(_axis(0, other=2 + i, mix=0.8)), {}) for i in range(6)]
    idx = _db(tmp_path / "m.lance", [("q", q, {}), *near, *far])
    plain = [r.pin_id for r in idx.related("q", k=6)]
    assert all(p.startswith("near") for p in plain)
    assert [r.pin_id for r in idx.related("q", k=6, diversity=0.0)] == plain
    diverse = [r.pin_id for r in idx.related("q", k=6, diversity=0.5)]
    assert sum(p.startswith("far") for p in diverse) >= 3 and diverse[0] == plain[0]


def test_mmr_and_rrf_units():
    vecs = np.stack([_axis(0, other=1, mix=0.1), _axis(0, other=1, mix=0.12), _axis(0, other=2, mix=0.3)])
    assert rel.mmr(_axis(0), vecs, 2, 0.0) == [0, 1]
    assert rel.mmr(_axis(0), vecs, 2, 0.7) == [0, 2]
    fused = rel.rrf([["a", "b", "c"], ["c", "d"]], [1.0, 2.0])
    assert [p for p, _ in fused] == ["c", "a", "d", "b"]  # c is in both lists; a (1st of half weight) ties d (2nd)
    assert np.isclose(dict(fused)["c"], 1 / 66 + 1 / 61) and np.isclose(dict(fused)["a"], 1 / 62)


def test_session_retrieves_for_each_interest_fuses_and_leaves_the_session_out(tmp_path):
    rng = np.random.default_rng(2)
    shoes = [(f"shoe{i}", _unit(_axis(0) + 0.1 * rng.normal(size=DIM)), {}) for i in range(14)]
    lamps = [(f"lamp{i}", _unit(_axis(5) + 0.1 * rng.normal(size=DIM)), {}) for i in range(14)]
    other = [(f"other{i}", _axis(9 + i % 5), {}) for i in range(5)]
    idx = _db(tmp_path / "s.lance", shoes + lamps + other)
    session = ["shoe0", "shoe1", "lamp0"]  # oldest first: two shoes, then a lamp
    got = [r.pin_id for r in idx.related_to_session(session, k=8)]
    assert not set(session) & set(got)
    assert sum(p.startswith("shoe") for p in got) >= 3 and sum(p.startswith("lamp") for p in got) >= 3
    assert not any(p.startswith("other") for p in got)
    # the plain mean of the session would sit between the interests and find neither well
    groups = rel.interests(np.stack([idx.store.get_pin(p)["vector"] for p in session]), rel.recency_weights(3))
    assert sorted(len(g[2]) for g in groups) == [1, 2]
    # a deadline's check runs between the steps (3 pins read, 2 interests queried) and stops the work there
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 4:
            raise TimeoutError("the time is up")

    with pytest.raises(TimeoutError):
        idx.related_to_session(session, k=8, check=check)
    assert len(calls) == 5  # stopped before the second interest's query
    # weights decide which interest leads
    lamp_first = [r.pin_id for r in idx.related_to_session(session, weights=[0.1, 0.1, 1.0], k=4)]
    shoe_first = [r.pin_id for r in idx.related_to_session(session, weights=[1.0, 1.0, 0.1], k=4)]
    assert lamp_first[0].startswith("lamp") and shoe_first[0].startswith("shoe")
    with pytest.raises(UsageError):
        idx.related_to_session(session, weights=[1, 2])


def test_structured_filters_compile_safely_and_hostile_values_match_exactly(tmp_path):
    titles = ["Pasta night", "pasta salad", "' OR 1=1 --", "back\\slash", "Über pasta", "50% off"]
    pins = [(f"p{i}", _axis(i), {"title": t, "kind": "video" if i % 2 else "image", "width": 100 * i})
            for i, t in enumerate(titles)]
    idx = _db(tmp_path / "f.lance", pins)
    q = _axis(0)

    def ids(where, **kw):
        return sorted(r.pin_id for r in idx.search_vector(q, k=10, where=where, **kw))

    assert ids({"title": {"contains": "PASTA"}}) == ["p0", "p1", "p4"]
    assert ids({"kind": "video", "title": {"contains": "pasta"}}) == ["p1"]
    assert ids({"width": (200, 400)}) == ["p2", "p3", "p4"]
    assert ids({"kind": ["video", "image"], "width": {"gt": 400}}) == ["p5"]
    for hostile in ("' OR 1=1 --", "back\\slash", "50% off"):
        assert len(ids({"title": hostile})) == 1  # an exact match, never a wider set
    assert ids({"title": "x' OR 'a'='a"}) == [] and ids({"title": {"contains": "%"}}) == ["p5"]
    assert ids({"title": {"contains": "_"}}) == [] and ids({"title": "über pasta"}) == []
    for bad in ({"vector": 1}, {"title; DROP TABLE pins": "x"}, {"width": "1 OR 1=1"}, {"width": (1, 2, 3)},
                {"width": {"contains": "1"}}, {"kind": {"like": "%"}}):
        with pytest.raises(UsageError):
            compile_where(bad)
    assert parse_cli_where(["kind=video", "kind=idea", "title~pasta", "width>=640"]) == {
        "kind": {"in": ["video", "idea"]}, "title": {"contains": "pasta"}, "width": {"gte": "640"}}
    assert parse_cli_where(["title=a=b"]) == {"title": {"eq": "a=b"}}
    for bad in (["kind"], ["=video"], ["secret=1"], ["width>=1", "width>=2"]):
        with pytest.raises(UsageError):
            parse_cli_where(bad)
    got = [r.pin_id for r in idx.related("p0", k=10, where={"kind": "video"})]
    assert sorted(got) == ["p1", "p3", "p5"]


def test_query_arithmetic_is_a_weighted_sum(tmp_path, tiny_model_id):
    from helpers import save_image

    img = save_image(tmp_path / "src" / "red.png", colour=(220, 20, 20))
    save_image(tmp_path / "src" / "blue.png", colour=(20, 20, 220))
    idx = pinembed.open_index(str(tmp_path / "q.lance"), model=tiny_model_id)
    idx.ingest(tmp_path / "src")
    emb = idx.embedder
    t = emb.embed_texts(["red dress", "logo"])
    from PIL import Image

    iv = emb.embed_images([Image.open(img).convert("RGB")])[0]
    want = _unit(2 * t[0] + 0.5 * iv - t[1])
    got = idx.query_vector([("red dress", 2), (Path(img), 0.5)], ["logo"])
    assert np.allclose(got, want, atol=1e-5)
    res = idx.search(["red dress", (Path(img), 0.5)], ["logo"], k=2)
    assert len(res) == 2 and res[0].score >= res[1].score
    with pytest.raises(UsageError):
        idx.query_vector(["red"], ["red"])  # cancels out
    with pytest.raises(UsageError):
        idx.query_vector([], ["logo"])
    pos, neg = parse_terms(("red dress", "+", str(img), "-", "0.5:logo", "2:blue"))
    assert pos == [("red dress", 1.0), (Path(img), 1.0), ("blue", 2.0)] and neg == [("logo", 0.5)]
    assert parse_terms(("3:10 to Yuma",)) == ([("10 to Yuma", 3.0)], [])
    assert parse_terms(("1:3:10 to Yuma",)) == ([("3:10 to Yuma", 1.0)], [])


def test_where_is_bounded_and_numbers_fit_their_column(tmp_path):
    from pinembed.store.filters import MAX_VALUE_CHARS, MAX_WHERE_TERMS, MAX_WHERE_VALUES, RANGES

    assert RANGES["width"] == (-(2 ** 31 - 1), 2 ** 31 - 1) and RANGES["size"] == (-(2 ** 63 - 1), 2 ** 63 - 1)
    too_big = [
        {"pin_id": {"in": [str(i) for i in range(MAX_WHERE_VALUES + 1)]}},
        {"title": [str(i) for i in range(MAX_WHERE_VALUES + 1)]},
        {"title": {"contains": "x" * (MAX_VALUE_CHARS + 1)}},
        {"title": ["x" * (MAX_VALUE_CHARS + 1)]},
        {f"c{i}": 1 for i in range(MAX_WHERE_TERMS + 1)},
        {"width": {op: 1 for op in ("gt", "gte", "lt", "lte", "ne", "eq")}, **{c: (0, 1) for c in (
            "height", "size", "n_segments", "duration_s", "fps")}, **{c: {o: "a" for o in ("gt", "gte", "lt", "lte",
            "ne", "eq", "contains")} for c in ("pin_id", "kind", "uri", "title", "description", "model_id", "content_hash")}},
    ]
    for where in too_big:
        with pytest.raises(UsageError, match="at most|over"):
            compile_where(where)
    for where, column in [({"width": 3_000_000_000}, "width"), ({"height": 1e20}, "height"), ({"size": -(2 ** 63)}, "size"),
                          ({"duration_s": {"lt": 1e300}}, "duration_s"), ({"width": "٥"}, "width"), ({"fps": "５"}, "fps"),
                          ({"n_segments": "²"}, "n_segments"), ({"width": {"in": [1, "①"]}}, "width"),
                          ({"width": 2.5}, "width"), ({"fps": float("nan")}, "fps"), ({"width": True}, "width")]:
        with pytest.raises(UsageError, match=column):
            compile_where(where)
    idx = _db(tmp_path / "r.lance", [("a", _axis(0), {"width": 640, "size": 10, "duration_s": 1.5})])
    q = _axis(0)
    for where, n in (({"width": 2 ** 31 - 1}, 0), ({"width": {"gte": -(2 ** 31 - 1)}}, 1), ({"width": " 640 "}, 1),
                     ({"size": {"in": [-(2 ** 63 - 1), 2 ** 63 - 1]}}, 0), ({"duration_s": {"lt": 3.4e38}}, 1),
                     ({"duration_s": {"gt": 5e-324}}, 1), ({"width": 640.0}, 1)):
        assert len(idx.search_vector(q, k=5, where=where)) == n, where
    for call in (lambda w: idx.related("no such pin", where=w), lambda w: idx.related_to_session(["nope"], where=w),
                 lambda w: idx.search_vector(q, where=w)):  # the filter is checked before anything is read
        with pytest.raises(UsageError, match="width takes"):
            call({"width": 3e9})


def test_extreme_finite_weights_keep_the_query_finite(tmp_path):
    from pinembed.controls import check_weights, scaled

    assert scaled([1e308, 1e308, 5e-324]) == [1.0, 1.0, 0.0] and scaled([5e-324, 5e-324]) == [1.0, 1.0]
    assert check_weights([2, 0, 1], 3) == [1.0, 0.0, 0.5]
    for bad in ([1, float("inf")], [-1, 1], [0, 0], [1], "ab", [1, "2"], [True, 1]):
        with pytest.raises(UsageError):
            check_weights(bad, 2)
    idx = _db(tmp_path / "w.lance", [(f"p{i}", _axis(i), {}) for i in range(6)])
    want = [r.pin_id for r in idx.related_to_session(["p0", "p1"], weights=[1, 1], k=4)]
    for weights in ([1e308, 1e308], [5e-324, 5e-324], [1.7976931348623157e308, 1.7976931348623157e308]):
        got = idx.related_to_session(["p0", "p1"], weights=weights, k=4)
        assert [r.pin_id for r in got] == want and all(np.isfinite(r.score) for r in got)
    only_p0 = idx.related_to_session(["p0", "p1"], weights=[1e308, 5e-324], k=4)  # p1's weight is 0 beside p0's
    assert len(only_p0) == 4 and all(np.isfinite(r.score) for r in only_p0)
