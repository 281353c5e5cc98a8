"""The HTTP contract, checked by schemathesis: its CLI (``--checks all``) over the served
/api/openapi.json of a real `pinembed serve` (uvicorn on a free port of 127.0.0.1, a database ingested
with the bundled nano model), every operation, a bounded number of examples. No response is a 5xx,
the document loads as valid OpenAPI 3.0.3, every response conforms to it (status, content type,
headers, body), schema-violating requests are refused and a 405 carries ``Allow``.

``positive_data_acceptance`` runs but may fail: some rules cannot be said in OpenAPI 3.0 (a search
needs one positive term, weights are one per pin and not all zero, ``where`` is JSON or its text form
in a string, an upload must be an image). Hostile values the document cannot express (ranges of where's columns,
non-ASCII digits, extreme weights) are tested directly in tests/test_related_controls.py and
tests/test_typos.py."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")
httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parent.parent
PINS = ("images/star/red-star-on-white.jpg", "images/circle/blue-circle-on-white.jpg",
        "videos/blue-square-moving-on-black.mp4", "ideas/green-circle-ideas")
OPERATIONS = {"GET /api/health", "GET /api/stats", "GET /api/attributes", "GET /api/related", "GET /api/session", "POST /api/session",
              "GET /api/search", "POST /api/search", "GET /api/pin", "GET /api/thumb", "GET /api/media",
              "GET /api/pins", "POST /api/preview"}  # schemathesis leaves out the document's own URL
TOLERATED = {"positive_data_acceptance"}  # see the module docstring


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> str:
    """The base URL of a server over four pins (two images, a video, an idea pin)."""
    import uvicorn

    import pinembed
    from pinembed.serve import create_app

    root = tmp_path_factory.mktemp("contract")
    for rel in PINS:
        src, dst = REPO / "sample_media" / rel, root / "media" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    db = str(root / "pins.lance")
    assert pinembed.open_index(db, model="nano").ingest(root / "media").failed == 0
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(15)


def _run(base: str, tmp_path: Path, examples: int) -> list[dict]:
    """schemathesis run --checks all over the served document; its NDJSON events."""
    config = tmp_path / "schemathesis.toml"
    config.write_text('[dictionaries.pins]\nvalues = [' + ", ".join(json.dumps(p) for p in PINS) + ']\n'
                      '[parameters]\n"query.pin" = { dictionary = "pins", probability = 0.5 }\n'
                      '"body.pins" = { dictionary = "pins", probability = 0.5 }\n')
    cli = Path(sys.executable).with_name("schemathesis")
    cmd = [str(cli) if cli.exists() else "schemathesis", "--config-file", str(config), "run",
           f"{base}/api/openapi.json", "--checks", "all", "--max-examples", str(examples), "--workers", "1",
           "--seed", "1", "--report", "ndjson", "--report-dir", str(tmp_path / "report"), "--no-color"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache there too
    reports = list((tmp_path / "report").glob("*.ndjson"))
    assert reports, out.stdout[-3000:] + out.stderr[-3000:]
    return [json.loads(line) for line in reports[0].read_text().splitlines()]


def _verdict(events: list[dict]) -> tuple[set[str], Counter, list[str], list[str]]:
    """(operations tested, failed checks by name, 5xx responses, schemathesis errors) of a run."""
    tested: set[str] = set()
    failed: Counter = Counter()
    server_errors, errors = [], []
    for event in events:
        (kind, data), = event.items()
        if "Error" in kind or data.get("status") == "error":
            errors.append(json.dumps(event)[:1500])
        if kind != "ScenarioFinished":
            continue
        rec = data["recorder"]
        if rec.get("interactions"):
            tested.add(rec["label"])
        for checks in rec.get("checks", {}).values():
            failed.update(c["name"] for c in checks if c["status"] == "failure")
        for interaction in rec.get("interactions", {}).values():
            response = interaction.get("response") or {}
            if response.get("status_code", 0) >= 500:
                body = base64.b64decode((response.get("content") or {}).get("$base64", "") or b"")[:300]
                server_errors.append(f"{interaction['request']['method']} {interaction['request']['uri'][:300]} "
                                     f"-> {response['status_code']} {body!r}")
    return tested, failed, server_errors, errors


def _check(served: str, tmp_path: Path, examples: int) -> None:
    tested, failed, server_errors, errors = _verdict(_run(served, tmp_path, examples))
    assert not server_errors, server_errors[:10]
    assert not errors, errors[:5]
    assert tested == OPERATIONS, OPERATIONS - tested
    assert not set(failed) - TOLERATED, failed


def test_every_operation_conforms_and_never_5xx(served, tmp_path):
    _check(served, tmp_path, examples=25)


@pytest.mark.slow
def test_every_operation_conforms_and_never_5xx_long(served, tmp_path):
    _check(served, tmp_path, examples=300)


def test_openapi_is_3_0_and_names_the_filter_bounds(served):
    api = httpx.get(f"{served}/api/openapi.json").json()
    assert api["openapi"] == "3.0.3"
    text = json.dumps(api)
    assert '"exclusiveMinimum": -1' not in text and '"exclusiveMinimum": true' in text  # 3.0 spelling
    where = next(p for p in api["paths"]["/api/related"]["get"]["parameters"] if p["name"] == "where")
    assert "At most 64 conditions, 1000 values a list, 1000 characters a value" in where["description"]
    pin = next(p for p in api["paths"]["/api/pin"]["get"]["parameters"] if p["name"] == "pin")
    assert pin["schema"]["minLength"] == 1
    post = api["paths"]["/api/search"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert post["properties"]["k"]["maximum"] == 1000 and post["properties"]["dedupe"]["maximum"] == 1


def test_405_carries_allow(served):
    r = httpx.request("DELETE", f"{served}/api/session")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    r = httpx.post(f"{served}/api/health")
    assert r.status_code == 405 and "GET" in r.headers["allow"]


# -- hostile values the document cannot express: a 400 naming the field, never a 500 ------------------------
def _error(r, status: int = 400) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json") and "Traceback" not in r.text
    return r.json()["error"]


@pytest.mark.parametrize("where, field", [
    ({"width": 3000000000}, "width"), ({"height": 1e20}, "height"), ({"width": {"gte": -3000000000}}, "width"),
    ({"size": 2 ** 63}, "size"), ({"duration_s": {"lt": 1e300}}, "duration_s"), ({"width": "٥"}, "width"),
    ({"fps": "５"}, "fps"), ({"n_segments": "²"}, "n_segments"), ({"width": 1.5}, "width"),
])
def test_where_numbers_out_of_their_column_range_are_400(served, where, field):
    pin = PINS[0]
    err = _error(httpx.get(f"{served}/api/related", params={"pin": pin, "where": json.dumps(where)}))
    assert field in err["message"]
    err = _error(httpx.post(f"{served}/api/session", json={"pins": [pin], "where": where}))
    assert field in err["message"]


def test_where_at_the_column_range_edges_is_answered(served):
    for where in ({"width": 2 ** 31 - 1}, {"size": {"gte": -(2 ** 63 - 1)}}, {"duration_s": {"lt": 3.4e38}},
                  {"fps": {"gt": -3.4e38}}, {"height": {"in": [-(2 ** 31 - 1), 0]}}):
        r = httpx.get(f"{served}/api/related", params={"pin": PINS[0], "where": json.dumps(where)})
        assert r.status_code == 200, (where, r.text[:300])


@pytest.mark.parametrize("path, params", [
    ("/api/related", {"k": "²"}), ("/api/related", {"k": "①"}), ("/api/related", {"k": "٥"}),
    ("/api/related", {"k": "５"}), ("/api/related", {"k": ""}), ("/api/related", {"dedupe": "٠.٥"}),
    ("/api/related", {"dedupe": ""}), ("/api/pins", {"size": "¹"}), ("/api/pins", {"page": "٥"}),
    ("/api/thumb", {"size": "²⁵⁶"}), ("/api/thumb", {"page": "①"}), ("/api/media", {"page": "５"}),
])
def test_numbers_are_ascii_digits(served, path, params):
    err = _error(httpx.get(f"{served}{path}", params={"pin": PINS[0], **params}))
    assert next(iter(params)) in err["message"]


def test_a_huge_where_in_a_json_body_is_refused_before_any_work(served):
    big = {"pins": [PINS[0]], "where": {"pin_id": {"in": [f"id{i}" for i in range(50_000)]}}}  # under 1 MB
    t0 = time.monotonic()
    err = _error(httpx.post(f"{served}/api/session", json=big, timeout=60))
    assert "at most 1000" in err["message"] and time.monotonic() - t0 < 10
    many = {"pins": [PINS[0]], "where": {"width": {"gte": 1}, "title": [str(i) for i in range(1001)]}}
    assert "at most 1000" in _error(httpx.post(f"{served}/api/session", json=many))["message"]
    long = {"pins": [PINS[0]], "where": {"title": {"contains": "x" * 1001}}}
    assert "1000 characters" in _error(httpx.post(f"{served}/api/session", json=long))["message"]


@pytest.mark.parametrize("weights", [[1e308, 1e308], [5e-324, 5e-324], [1e308, 5e-324], [1.7976931348623157e308, 1]])
def test_extreme_finite_session_weights_give_results(served, weights):
    r = httpx.post(f"{served}/api/session", json={"pins": list(PINS[:2]), "weights": weights, "k": 2})
    assert r.status_code == 200 and len(r.json()["results"]) == 2, r.text[:300]
    assert all(isinstance(c["score"], float) for c in r.json()["results"])
