"""Attributes are filterable everywhere and shown everywhere: a real LanceDB with a few dozen pins whose
attributes (a catalog's category, price, stock, language, shoppable, created_at, tags, board) were
recorded with ``Store.add_attributes`` and written with the pins. The same filter, as the text users type
(``category = 'shoes' AND price < 50``), as ``--where`` terms and as a structured mapping, narrows
``pinembed related`` (CLI), ``PinIndex`` (Python) and ``pinembed serve`` (HTTP, query strings and JSON
bodies) to exactly the pins it names; hostile filters are exit 2 / HTTP 400 naming the problem, never a
500 and never SQL of the user's. ``pins --json``, ``export``, ``stats``, ``/api/pin`` and
``/api/attributes`` show the attributes with their types. At 1.5k pins the IVF index and the pins held
in memory filter the same way."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pinembed
from pinembed.cli.main import cli
from pinembed.errors import UsageError
from pinembed.store import Store, space_identity
from pinembed.store.attributes import TYPES
from pinembed.store.filters import Compiled, compile_where
from pinembed.store.index import IndexPolicy
from pinembed.store.rows import now

httpx = pytest.importorskip("httpx")

DIM = 16
N = 40
UTC = dt.UTC
ATTRS = {"category": "string", "price": "float", "stock": "int", "language": "string", "shoppable": "bool",
         "created_at": "timestamp", "tags": "list<string>", "board": "string"}


def _pins(n: int, seed: int = 0) -> list[dict]:
    """``n`` pins with unit vectors and attributes that vary independently of each other."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    out = []
    for i in range(n):
        out.append({
            "pin_id": f"p{i:04d}", "kind": "image", "uri": f"/media/p{i:04d}.jpg", "title": f"pin {i}",
            "n_segments": 0, "model_id": "m", "vector": vecs[i], "embedded_at": now(),
            "category": ("shoes", "hats", "bags")[i % 3], "price": float(10 + (i * 7) % 90),
            "stock": i % 5, "language": ("en", "fr")[(i // 3) % 2], "shoppable": i % 4 != 0,
            "created_at": dt.datetime(2023, 1, 1, tzinfo=UTC) + dt.timedelta(days=5 * i),
            "tags": [("red", "blue", "green")[i % 3], *(["sale"] if i % 2 else [])],
            "board": None if i % 7 == 0 else f"board {i % 4}",
        })
    return out


def _database(path, n: int = N, policy: IndexPolicy | None = None) -> tuple[str, list[dict]]:
    db = str(path)
    store = Store(db, index_policy=policy)
    store.ensure_space(space_identity({"model_id": "m", "dim": DIM, "weights_digest": "d", "preprocess": {}}))
    store.add_attributes({name: TYPES[t] for name, t in ATTRS.items()})
    pins = _pins(n)
    for i in range(0, n, 500):
        store.write(pins[i:i + 500])
    if policy is not None:
        assert store.ensure_index() == "built"
    return db, pins


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _database(tmp_path_factory.mktemp("attrs") / "pins.lance")


@pytest.fixture(scope="module")
def idx(built):
    return pinembed.open_index(built[0])


def _matching(pins, test, but: str = "p0000") -> set[str]:
    return {p["pin_id"] for p in pins if test(p) and p["pin_id"] != but}


def _related(idx, where, **kw) -> set[str]:
    return {r.pin_id for r in idx.related("p0000", k=N, where=where, **kw)}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# -- the filter, in each of its forms ------------------------------------------------------------
def test_cli_related_with_the_issues_example_and_the_old_terms(built):
    db, pins = built
    want = _matching(pins, lambda p: p["category"] == "shoes" and p["price"] < 50)
    r = run("related", "p0000", "--db", db, "-k", N, "--where", "category = 'shoes' AND price < 50", "--json")
    assert r.exit_code == 0, r.output
    assert {x["pin_id"] for x in json.loads(r.stdout)["results"]} == want and want
    r = run("related", "p0000", "--db", db, "-k", N, "--where", "category=shoes", "--where", "price<50", "--json")
    assert r.exit_code == 0 and {x["pin_id"] for x in json.loads(r.stdout)["results"]} == want
    # "related pins in the same language, shoppable, under $50"
    want = _matching(pins, lambda p: p["language"] == "en" and p["shoppable"] and p["price"] < 50)
    r = run("related", "p0000", "--db", db, "-k", N, "--where", "language = 'en' and shoppable = true and price < 50",
            "--json")
    assert r.exit_code == 0 and {x["pin_id"] for x in json.loads(r.stdout)["results"]} == want and want
    r = run("related", "p0000", "--db", db, "-k", N, "--where", "kind=image", "--where", "stock IN (1, 2)", "--json")
    assert {x["pin_id"] for x in json.loads(r.stdout)["results"]} == _matching(pins, lambda p: p["stock"] in (1, 2))


def test_python_mapping_text_and_every_attribute_type(idx, built):
    _, pins = built
    shoes = _matching(pins, lambda p: p["category"] == "shoes" and p["price"] < 50)
    assert _related(idx, {"category": "shoes", "price": {"lt": 50}}) == shoes
    assert _related(idx, "category = 'shoes' AND price < 50") == shoes
    assert _related(idx, {"tags": "sale"}) == _matching(pins, lambda p: "sale" in p["tags"])  # holds
    assert _related(idx, "tags IN ('red', 'green')") == _matching(pins, lambda p: {"red", "green"} & set(p["tags"]))
    assert _related(idx, "tags != 'sale'") == _matching(pins, lambda p: "sale" not in p["tags"])
    assert _related(idx, {"shoppable": False}) == _matching(pins, lambda p: not p["shoppable"])
    assert _related(idx, "shoppable != true") == _matching(pins, lambda p: not p["shoppable"])
    march = dt.datetime(2023, 3, 1, tzinfo=UTC)
    after = _matching(pins, lambda p: p["created_at"] >= march)
    assert _related(idx, "created_at >= '2023-03-01'") == after
    assert _related(idx, "created_at >= '2023-03-01T01:00:00+01:00'") == after  # the same instant
    spring = (dt.datetime(2023, 3, 1), dt.date(2023, 6, 1))  # naive is UTC; a date is its midnight
    assert _related(idx, {"created_at": spring}) == _matching(
        pins, lambda p: march <= p["created_at"] <= dt.datetime(2023, 6, 1, tzinfo=UTC))
    assert _related(idx, "stock >= 3 AND board ~ 'BOARD 1'") == _matching(
        pins, lambda p: p["stock"] >= 3 and p["board"] == "board 1")
    assert _related(idx, "title = 'O''Brien'") == set()  # '' is a quote inside a text
    # sessions, searches by vector and the pins as data take the same filter
    got = idx.related_to_session(["p0000", "p0001"], k=N, where="language = 'fr'")
    assert got and all(pins[int(r.pin_id[1:])]["language"] == "fr" for r in got)
    got = idx.search_vector(pins[5]["vector"], k=N, where={"category": ["hats", "bags"], "stock": (1, 3)})
    assert {r.pin_id for r in got} == {p["pin_id"] for p in pins if p["category"] != "shoes" and 1 <= p["stock"] <= 3}
    table = idx.to_arrow(where="price > 80")
    assert set(table.column("pin_id").to_pylist()) == {p["pin_id"] for p in pins if p["price"] > 80}
    assert table.schema.field("tags").type == pa.list_(pa.string()) and "created_at" in table.column_names


def test_a_compiled_filter_is_not_reused_for_other_attributes(idx, built):
    have = idx.attributes()
    assert {n: str(t) for n, t in have.items()}["created_at"] == "timestamp[us, tz=UTC]"
    c = compile_where("price < 50", have)
    assert isinstance(c, Compiled) and compile_where(c, have) is c
    assert "`price`" in c and "50" in c
    with pytest.raises(UsageError, match="cannot filter on 'price'"):
        compile_where(c, {})  # a database without it: compiled again, from its source
    as_int = compile_where(c, {**have, "price": pa.int64()})
    assert as_int is not c and as_int == "(`price` < 50)"  # another type: compiled again for it
    built_in = compile_where({"kind": "image"}, have)
    assert compile_where(built_in, {}) is built_in  # names no attribute: fits every database


def test_attributes_are_read_once_per_table_handle_and_again_when_one_is_added(tmp_path):
    db, pins = _database(tmp_path / "few.lance", n=6)
    idx = pinembed.open_index(db)
    assert list(idx.attributes()) == list(ATTRS)
    assert idx.attributes() is not idx.attributes()  # a copy each time: callers cannot change the cached one
    idx.store.add_attributes({"colour": TYPES["string"]})  # a new column, through this index's store
    assert list(idx.attributes()) == [*ATTRS, "colour"]
    idx.store.write([{**pins[1], "colour": "teal"}])
    assert [r.pin_id for r in idx.related("p0000", where="colour = 'teal'")] == ["p0001"]
    other = pinembed.open_index(db)
    other.store.add_attributes({"size_label": TYPES["string"]})  # another process's store
    assert "size_label" not in idx.attributes()  # this handle's schema, until the index reloads
    idx.reload()
    assert "size_label" in idx.attributes()


# -- hostile input ---------------------------------------------------------------------------------
HOSTILE = [
    ("cat`egory = 'x'", "cannot filter on 'cat`egory'"),
    ("category' = 'x'", "cannot filter on"),
    ("price; DROP TABLE pins = 1", "cannot filter on 'price; DROP TABLE pins'"),
    ("\"price\" < 5", "cannot filter on '\"price\"'"),
    ("1=1 OR category = 'x'", "cannot filter on '1'"),
    ("category = 'x' OR 1=1", "OR is not supported"),
    ("(category = 'x') AND price < 5", "parentheses"),
    ("NOT shoppable = true", "NOT is not supported"),
    ("colour = 'red'", "cannot filter on 'colour'"),
    ("price < 'abc'", "price takes a number"),
    ("stock = 1.5", "stock takes an integer"),
    ("shoppable = 'maybe'", "shoppable takes true or false"),
    ("created_at > 'last tuesday'", "created_at takes a date in ISO 8601"),
    ("created_at > '2023-02-30'", "created_at takes a date in ISO 8601"),
    ("tags < 'red'", "tags is a list of text"),
    ("category = shoes AND price < 5", "text values are quoted"),
    ("price IN (" + ", ".join(map(str, range(1001))) + ")", "at most 1000"),
    (" AND ".join(f"stock != {i}" for i in range(65)), "over 64 conditions"),
    ("category = '" + "x" * 1001 + "'", "over 1000 characters"),
]


@pytest.mark.parametrize("where, message", HOSTILE)
def test_hostile_filters_are_usage_errors_naming_the_problem(built, where, message):
    r = run("related", "p0000", "--db", built[0], "--where", where)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output and "hint:" in r.stderr


def test_an_unknown_columns_hint_lists_the_attributes(built):
    r = run("related", "p0000", "--db", built[0], "--where", "colour = 'red'")
    assert r.exit_code == 2 and "price (float)" in r.stderr and "tags (list<string>)" in r.stderr
    assert "width" in r.stderr  # the pin columns too


# -- shown everywhere ------------------------------------------------------------------------------
def test_pins_json_export_and_stats_show_the_attributes(built, tmp_path):
    db, pins = built
    r = run("pins", "--db", db, "--where", "category = 'bags' AND stock = 2", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["pins"]
    want = [p for p in pins if p["category"] == "bags" and p["stock"] == 2]
    assert sorted(x["pin_id"] for x in rows) == sorted(p["pin_id"] for p in want) and rows
    row, pin = rows[0], next(p for p in want if p["pin_id"] == rows[0]["pin_id"])
    assert row["price"] == pin["price"] and row["tags"] == pin["tags"] and row["shoppable"] is pin["shoppable"]
    assert dt.datetime.fromisoformat(row["created_at"]) == pin["created_at"]

    out = tmp_path / "pins.parquet"
    assert run("export", out, "--db", db, "--where", "shoppable = false").exit_code == 0
    table = pq.read_table(out)
    assert table.num_rows == sum(not p["shoppable"] for p in pins)
    for name, t in ATTRS.items():
        assert table.schema.field(name).type.equals(TYPES[t]), name
    assert "vector" in table.column_names
    out = tmp_path / "pins.jsonl"
    assert run("export", out, "--db", db, "--where", "price >= 95").exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(x["price"] >= 95 and isinstance(x["tags"], list) for x in lines)
    assert dt.datetime.fromisoformat(lines[0]["created_at"]).tzinfo is not None

    s = json.loads(run("stats", "--db", db, "--json").stdout)
    assert s["attributes"] == ATTRS
    text = run("stats", "--db", db).stdout
    assert "attributes: category (string), price (float)" in text and "tags (list<string>)" in text


# -- HTTP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(built):
    import uvicorn

    from pinembed.serve import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(built[0]), host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}",
                      timeout=60) as client:
        yield client
    server.should_exit = True
    thread.join(15)


def _ids(r) -> set[str]:
    assert r.status_code == 200, r.text[:500]
    return {c["pin_id"] for c in r.json()["results"]}


def test_http_filters_as_text_and_as_json(api, built):
    _, pins = built
    want = _matching(pins, lambda p: p["category"] == "shoes" and p["price"] < 50)
    text = "category = 'shoes' AND price < 50"
    assert _ids(api.get("/api/related", params={"pin": "p0000", "k": N, "where": text})) == want
    as_json = json.dumps({"category": "shoes", "price": {"lt": 50}})
    assert _ids(api.get("/api/related", params={"pin": "p0000", "k": N, "where": as_json})) == want
    for where in (text, {"category": "shoes", "price": {"lt": 50}}):
        got = _ids(api.post("/api/session", json={"pins": ["p0000"], "k": N, "where": where}))
        assert got == want
    got = _ids(api.get("/api/search", params={"pin": "p0003", "k": N, "where": "tags = 'sale' AND shoppable = true"}))
    assert got == {p["pin_id"] for p in pins if "sale" in p["tags"] and p["shoppable"]}
    got = _ids(api.post("/api/session", json={"pins": ["p0000"], "k": N, "where": {"shoppable": True,
                                                                                    "created_at": {"lt": "2023-02-01"}}}))
    assert got == _matching(pins, lambda p: p["shoppable"] and p["created_at"] < dt.datetime(2023, 2, 1, tzinfo=UTC))
    listing = api.get("/api/pins", params={"size": 100, "where": "language = 'fr' AND stock = 0"}).json()
    assert {c["pin_id"] for c in listing["pins"]} == {p["pin_id"] for p in pins if p["language"] == "fr"
                                                      and p["stock"] == 0} and listing["total"] == len(listing["pins"])


@pytest.mark.parametrize("where, message", [*HOSTILE, ("{\"price\": {\"lt\": \"abc\"}}", "price takes a number"),
                                            ("{\"ca`t\": 1}", "cannot filter on 'ca`t'")])
def test_hostile_filters_over_http_are_400_naming_the_problem(api, where, message):
    for r in (api.get("/api/related", params={"pin": "p0000", "where": where}),
              api.post("/api/session", json={"pins": ["p0000"], "where": where}),
              api.get("/api/pins", params={"where": where})):
        assert r.status_code == 400, (r.status_code, r.text[:300])
        err = r.json()["error"]
        assert message in err["message"] and "Traceback" not in r.text and "SELECT" not in r.text


def test_an_oversize_filter_over_http_is_400(api):
    many = {"pins": ["p0000"], "where": {"price": {"in": list(range(1001))}}}
    assert "at most 1000" in api.post("/api/session", json=many).json()["error"]["message"]
    long = api.get("/api/related", params={"pin": "p0000", "where": "category = '" + "x" * 10_001 + "'"})
    assert long.status_code == 400 and "over 10000 characters" in long.json()["error"]["message"]


def test_http_shows_the_attributes(api, built):
    _, pins = built
    assert api.get("/api/attributes").json() == {"attributes": ATTRS}
    doc = api.get("/api/pin", params={"pin": "p0007"}).json()
    p = pins[7]
    assert doc["attributes"] == {**{n: p[n] for n in ATTRS}, "created_at": p["created_at"].isoformat(), "board": None}
    assert api.get("/api/stats").json()["attributes"] == ATTRS
    spec = api.get("/api/openapi.json").json()
    assert "/api/attributes" in spec["paths"]
    where = next(q for q in spec["paths"]["/api/related"]["get"]["parameters"] if q["name"] == "where")
    assert "category = 'shoes' AND price < 50" in where["description"]


# -- the index and the pins in memory --------------------------------------------------------------
def test_the_ivf_index_and_the_resident_copy_filter_the_same(tmp_path):
    policy = IndexPolicy(exact_below=1000, exact_slice_below=100)  # an index, and the filtered slices through it
    db, pins = _database(tmp_path / "big.lance", n=1500, policy=policy)
    idx = pinembed.open_index(db)
    idx.store.index_policy = policy
    where = "shoppable = true AND price < 60 AND tags = 'sale'"
    keep = [p for p in pins if p["shoppable"] and p["price"] < 60 and "sale" in p["tags"]]
    assert len(keep) >= 100  # the index path, not the exact slice
    q = pins[0]["vector"]
    exact = [keep[i]["pin_id"] for i in np.argsort(-np.stack([p["vector"] for p in keep]) @ q)[:10]]
    ok = {p["pin_id"] for p in keep}
    through_index = [r.pin_id for r in idx.search_vector(q, k=10, where=where)]
    assert len(through_index) == 10 and set(through_index) <= ok
    assert len(set(through_index) & set(exact)) >= 8
    assert idx.hold_in_memory()
    held = [r.pin_id for r in idx.search_vector(q, k=10, where=where)]
    assert len(held) == 10 and set(held) <= ok and len(set(held) & set(exact)) >= 8
    dated = [r.pin_id for r in idx.related("p0000", k=50, where={"created_at": {"gte": "2030-01-01"}, "stock": 4})]
    assert dated and all(pins[int(i[1:])]["stock"] == 4 and pins[int(i[1:])]["created_at"].year >= 2030 for i in dated)


def test_cli_with_server_checks_the_attributes_the_server_has(api, built):
    _, pins = built
    url = str(api.base_url)
    want = _matching(pins, lambda p: p["category"] == "shoes" and p["price"] < 50)
    r = run("related", "p0000", "--server", url, "-k", N, "--where", "category = 'shoes' AND price < 50", "--json")
    assert r.exit_code == 0, r.output
    assert {x["pin_id"] for x in json.loads(r.stdout)["results"]} == want
    r = run("related", "p0000", "--server", url, "--where", "colour = 'red'")
    assert r.exit_code == 2 and "cannot filter on 'colour'" in r.stderr and "price (float)" in r.stderr
