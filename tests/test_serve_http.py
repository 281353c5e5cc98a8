"""`pinembed serve` over HTTP: a real uvicorn server on a free port of 127.0.0.1 over a database ingested
from sample_media/ with the bundled nano model, hit with httpx. Hostile input gets a 4xx JSON error
with a message; the pins list newest first, a page at a time; uploads preview as JPEG; a refresh and
a model switch made by another writer are picked up while a client keeps querying, with no failed
request. (Which files are served, symlinks, and which videos play: tests/test_serve_media_files.py.)"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import huge_png, save_image

httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parent.parent
IMAGE = "images/star/red-star-on-white.jpg"
VIDEO = "videos/blue-square-moving-on-black.mp4"
WEBM = "videos/blue-circle-moving-on-stripes.webm"
IDEA = "ideas/green-circle-ideas"
ANIMATED = "images/blink.gif"


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A small copy of sample_media/ (images, two videos, an idea pin) and an animation: 8 pins."""
    from PIL import Image

    root = tmp_path_factory.mktemp("serve") / "media"
    for rel in ("images/star/red-star-on-white.jpg", "images/star/red-star-on-black.jpg",
                "images/star/yellow-star-on-white.jpg", "images/circle/blue-circle-on-white.jpg", VIDEO, WEBM):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "sample_media" / rel, root / rel)
    shutil.copytree(REPO / "sample_media" / IDEA, root / IDEA)
    frames = [Image.new("RGB", (40, 30), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(root / ANIMATED, save_all=True, append_images=frames[1:], duration=500, loop=0)
    return root


@pytest.fixture(scope="module")
def base_db(source, tmp_path_factory) -> str:
    """The source ingested with nano (once); tests that change it work on a copy."""
    import pinembed

    db = str(tmp_path_factory.mktemp("serve-db") / "pins.lance")
    summary = pinembed.open_index(db, model="nano").ingest(source)
    assert summary.failed == 0, summary.failures
    return db


def _copy(db: str, tmp_path: Path) -> str:
    out = tmp_path / "pins.lance"
    shutil.copytree(db, out)
    return str(out)


class Server:
    """The app under uvicorn in a background thread, on a free port of 127.0.0.1."""

    def __init__(self, db: str, **settings) -> None:
        import uvicorn

        from pinembed.serve import create_app
        from pinembed.serve.settings import ServeSettings

        self.settings = ServeSettings(**settings)
        self.app = create_app(db, self.settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=60)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def api(base_db):
    """A client of a server over the sample database (upload limit 1 MB, for the 413 tests)."""
    with Server(base_db, max_upload_bytes=1 << 20) as client:
        yield client


def error_of(r, status: int) -> dict:
    """The JSON error of a response that must have ``status``."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] and err["message"], err
    assert "Traceback" not in r.text
    return err


# -- the endpoints -----------------------------------------------------------------------------
def test_health_stats_and_openapi(api):
    h = api.get("/api/health").json()
    assert h.pop("memory")["state"] in {"waiting", "loading", "held"}
    assert h == {"status": "ok", "pins": 8, "model_id": "nano", "generation": 1}
    deadline = time.monotonic() + 30
    while (m := api.get("/api/health").json()["memory"])["state"] != "held" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert m["state"] == "held" and m["pins"] == 8 and m["mb"] >= 0
    s = api.get("/api/stats").json()
    assert s["pins"] == 8 and s["by_kind"]["motion"] == 1 and s["by_kind"]["video"] == 2 and s["by_kind"]["idea"] == 1
    doc = api.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/health", "/api/stats", "/api/related", "/api/session", "/api/search", "/api/pin",
                 "/api/thumb", "/api/media", "/api/pins", "/api/preview", "/api/openapi.json"):
        assert path in doc["paths"], path
    related = {p["name"] for p in doc["paths"]["/api/related"]["get"]["parameters"]}
    assert {"pin", "k", "kinds", "dedupe", "diversity", "where"} <= related
    assert {"text", "negative", "pin"} <= {p["name"] for p in doc["paths"]["/api/search"]["get"]["parameters"]}
    assert {"page", "size", "kinds"} <= {p["name"] for p in doc["paths"]["/api/pins"]["get"]["parameters"]}
    assert "post" in doc["paths"]["/api/preview"]
    assert "post" in doc["paths"]["/api/session"] and "post" in doc["paths"]["/api/search"]


def test_related_gives_cards_with_urls(api):
    r = api.get("/api/related", params={"pin": IMAGE, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["pin_id"] == IMAGE and body["took_ms"] >= 0
    results = body["results"]
    assert len(results) == 5 and IMAGE not in [c["pin_id"] for c in results]
    assert results[0]["score"] >= results[-1]["score"]
    for c in results:
        assert c["thumb"].startswith("/api/thumb?pin=") and "/" not in c["thumb"].split("pin=")[1].split("&")[0]
        assert api.get(c["thumb"]).status_code == 200 and api.get(c["media"]).status_code == 200
    videos = api.get("/api/related", params={"pin": IMAGE, "kinds": "video", "k": 10}).json()["results"]
    assert {c["kind"] for c in videos} == {"video"} and len(videos) == 2
    assert all(c["duration_s"] and c["best_t_s"] is not None and "&t=" in c["thumb"] for c in videos)
    ideas = api.get("/api/related", params={"pin": IMAGE, "kinds": "idea"}).json()["results"]
    assert ideas[0]["pages"] == 3 and ideas[0]["best_page"] is not None
    where = api.get("/api/related", params={"pin": IMAGE, "where": json.dumps({"title": {"contains": "star"}})})
    assert where.status_code == 200 and all("star" in c["title"].lower() for c in where.json()["results"])
    plain = api.get("/api/related", params={"pin": IMAGE, "k": 4, "diversity": 0.5, "dedupe": 0.99})
    assert plain.status_code == 200 and len(plain.json()["results"]) == 4


def test_session_post_and_get(api):
    body = {"pins": [IMAGE, VIDEO], "weights": [1, 2], "k": 3, "kinds": ["image", "video", "idea"]}
    r = api.post("/api/session", json=body)
    assert r.status_code == 200, r.text
    ids = [c["pin_id"] for c in r.json()["results"]]
    assert len(ids) == 3 and IMAGE not in ids and VIDEO not in ids
    # in the order of the fused ranking, which the response names; with fused scores, they never rise
    doc = api.post("/api/session", json={"pins": [IMAGE, VIDEO, IDEA], "k": 5}).json()  # 5 pins are left
    assert [c["rank"] for c in doc["results"]] == [1, 2, 3, 4, 5]
    assert doc["order"] == "fused"
    fused = [c["fused"] for c in doc["results"]]
    assert fused == sorted(fused, reverse=True), fused
    g = api.get("/api/session", params=[("pin", IMAGE), ("pin", VIDEO), ("k", "3")])
    assert g.status_code == 200 and len(g.json()["results"]) == 3


def test_search_text_image_and_arithmetic(api, source):
    r = api.get("/api/search", params={"text": "a yellow star", "k": 3})
    assert r.status_code == 200, r.text
    assert "yellow" in r.json()["results"][0]["pin_id"]
    both = api.get("/api/search", params=[("text", "a star"), ("negative", "red"), ("pin", IMAGE), ("k", "5")])
    assert both.status_code == 200 and len(both.json()["results"]) == 5
    with open(source / "images/star/yellow-star-on-white.jpg", "rb") as f:
        up = api.post("/api/search", files={"image": ("q.jpg", f, "image/jpeg")}, data={"k": "2", "negative": "red"})
    assert up.status_code == 200, up.text
    assert up.json()["results"][0]["pin_id"] == "images/star/yellow-star-on-white.jpg"


def test_pin_details_with_segments(api):
    v = api.get("/api/pin", params={"pin": VIDEO}).json()
    assert v["kind"] == "video" and v["duration_s"] == 3.0 and v["width"] == 128
    frames = [s for s in v["segments"] if s["kind"] == "frame"]
    assert [s["t_s"] for s in frames] == [0.5, 1.5, 2.5] and all("&t=" in s["thumb"] for s in frames)
    i = api.get("/api/pin", params={"pin": IDEA}).json()
    assert i["pages"] == 3 and [s["page"] for s in i["segments"] if s["kind"] == "page"] == [0, 1, 2]
    assert i["description"]


def test_thumbnails_are_small_jpegs_and_cached(api):
    from PIL import Image

    for params, kind in (({"pin": IMAGE}, "image"), ({"pin": VIDEO, "t": "1.5"}, "video"),
                         ({"pin": IDEA, "page": "2", "size": "64"}, "idea video page"), ({"pin": IDEA}, "idea"),
                         ({"pin": ANIMATED, "t": "0.7"}, "animation")):
        r = api.get("/api/thumb", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (kind, r.text[:300])
        im = Image.open(io.BytesIO(r.content))
        assert im.format == "JPEG" and max(im.size) <= int(params.get("size", 256)), kind
    green = Image.open(io.BytesIO(api.get("/api/thumb", params={"pin": ANIMATED, "t": "0.7"}).content)).getpixel((5, 5))
    assert green[1] > 200 and green[0] < 60, green  # the second frame (0.5-1.0 s) is green
    r1 = api.get("/api/thumb", params={"pin": VIDEO, "t": "2.5"})
    t0 = time.perf_counter()
    r2 = api.get("/api/thumb", params={"pin": VIDEO, "t": "2.5"})
    assert r1.content == r2.content and time.perf_counter() - t0 < 1.0
    error_of(api.get("/api/thumb", params={"pin": IMAGE, "size": "4096"}), 400)
    error_of(api.get("/api/thumb", params={"pin": IDEA, "page": "9"}), 404)


def test_thumbnail_cache_is_bounded_in_bytes():
    from pinembed.serve.thumbs import ThumbCache

    cache = ThumbCache(max_bytes=250)
    for i in range(10):
        assert cache.get_or_make(("pin", f"hash{i}"), lambda i=i: bytes([i]) * 100) == bytes([i]) * 100
    assert cache.size_bytes == 200 and cache.misses == 10
    assert cache.get_or_make(("pin", "hash9"), lambda: b"never made") == bytes([9]) * 100  # kept: the newest
    assert cache.get_or_make(("pin", "hash0"), lambda: b"made again") == b"made again"  # evicted: the oldest
    assert cache.get_or_make(("big",), lambda: b"x" * 1000) == b"x" * 1000 and cache.size_bytes <= 250


def test_media_is_served_with_ranges(api, source):
    whole = api.get("/api/media", params={"pin": VIDEO})
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content == (source / VIDEO).read_bytes()
    part = api.get("/api/media", params={"pin": VIDEO}, headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"
    assert part.content == whole.content[10:110]
    error_of(api.get("/api/media", params={"pin": VIDEO}, headers={"Range": f"bytes={len(whole.content) + 10}-"}), 416)
    error_of(api.get("/api/media", params={"pin": VIDEO}, headers={"Range": "bytes=x-y"}), 400)
    assert api.get("/api/media", params={"pin": WEBM}).headers["content-type"] == "video/webm"
    page = api.get("/api/media", params={"pin": IDEA, "page": "1"})
    assert page.status_code == 200 and page.content == (source / IDEA / "page2.jpg").read_bytes()
    assert whole.headers["x-content-type-options"] == "nosniff"


def test_pins_list_newest_first_a_page_at_a_time(api, base_db):
    import pinembed

    t = pinembed.open_index(base_db).to_arrow(columns=["pin_id", "embedded_at"]).to_pylist()
    by_id = sorted(t, key=lambda r: r["pin_id"])  # ties (one batch) by pin id
    newest = [r["pin_id"] for r in sorted(by_id, key=lambda r: r["embedded_at"], reverse=True)]
    pages = [api.get("/api/pins", params={"page": n, "size": 3}).json() for n in (1, 2, 3, 4)]
    assert [(p["page"], p["size"], p["total"], p["pages"]) for p in pages] == [(n, 3, 8, 3) for n in (1, 2, 3, 4)]
    assert [len(p["pins"]) for p in pages] == [3, 3, 2, 0]
    assert [c["pin_id"] for p in pages for c in p["pins"]] == newest
    card = pages[0]["pins"][0]
    assert {"pin_id", "kind", "title", "thumb", "media"} <= set(card) and "score" not in card
    assert api.get(card["thumb"]).status_code == 200
    videos = api.get("/api/pins", params={"kinds": "video"}).json()
    assert videos["total"] == 2 and {c["kind"] for c in videos["pins"]} == {"video"}
    assert all(c["playable"] is True for c in videos["pins"])  # H.264 .mp4 and VP9 .webm
    whole = api.get("/api/pins").json()
    assert whole["size"] == 20 and whole["page"] == 1 and len(whole["pins"]) == 8
    for bad in ({"page": "0"}, {"page": "x"}, {"size": "0"}, {"size": "1001"}, {"kinds": "gif"},
                {"page": "99999999999"}):
        error_of(api.get("/api/pins", params=bad), 400)


def test_uploads_preview_as_jpeg(api, tmp_path):
    from PIL import Image

    for name, fmt in (("phone.heic", "HEIF"), ("scan.tif", "TIFF"), ("art.tga", "TGA"), ("photo.jp2", "JPEG2000")):
        data = save_image(tmp_path / name, colour=(30, 60, 220), size=(600, 400), fmt=fmt).read_bytes()
        r = api.post("/api/preview", files={"image": (name, data, "application/octet-stream")})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (name, r.text[:300])
        im = Image.open(io.BytesIO(r.content))
        assert im.format == "JPEG" and im.size == (512, 341), (name, im.size)
        assert im.getpixel((400, 300))[2] > 180  # the blue of the image (its white corner is top left)
    small = api.post("/api/preview", files={"image": ("a.png", save_image(tmp_path / "a.png", fmt="PNG").read_bytes())},
                     data={"size": "32"})
    assert max(Image.open(io.BytesIO(small.content)).size) == 32
    assert "PDF" in error_of(api.post("/api/preview", files={"image": ("a.jpg", b"%PDF-1.4 x")}), 415)["message"]
    bomb = huge_png(tmp_path / "bomb.png", side=9000)
    error_of(api.post("/api/preview", files={"image": ("bomb.png", bomb.read_bytes())}), 413)
    error_of(api.post("/api/preview", files={"image": ("big.jpg", os.urandom(2 << 20))}), 413)  # the body limit
    two = [("image", ("a.png", b"x")), ("image", ("b.png", b"y"))]
    error_of(api.post("/api/preview", files=two), 400)
    error_of(api.post("/api/preview", data={"image": "not a file"}, files={"other": ("x", b"1")}), 400)
    error_of(api.post("/api/preview", content=b"raw", headers={"content-type": "image/png"}), 415)
    error_of(api.get("/api/preview"), 405)


# -- hostile input -----------------------------------------------------------------------------
HOSTILE_GETS = [
    ("/api/related", {"pin": "no/such/pin.jpg"}, 404),
    ("/api/related", {"pin": "../../../../etc/passwd"}, 404),
    ("/api/related", {"pin": "/etc/passwd"}, 404),
    ("/api/related", {"pin": "images/star/red\x00star.jpg"}, 400),
    ("/api/related", {}, 400),
    ("/api/related", {"pin": IMAGE, "k": "1000000"}, 400),
    ("/api/related", {"pin": IMAGE, "k": "0"}, 400),
    ("/api/related", {"pin": IMAGE, "k": "ten"}, 400),
    ("/api/related", {"pin": IMAGE, "kinds": "image,gif"}, 400),
    ("/api/related", {"pin": IMAGE, "dedupe": "NaN"}, 400),
    ("/api/related", {"pin": IMAGE, "diversity": "2"}, 400),
    ("/api/related", {"pin": IMAGE, "where": "{not json"}, 400),
    ("/api/related", {"pin": IMAGE, "where": "[1, 2]"}, 422),
    ("/api/related", {"pin": IMAGE, "where": json.dumps({"kind = 'x' OR 1=1 --": "image"})}, 400),
    ("/api/related", {"pin": IMAGE, "where": json.dumps({"width": {"gte": "1; DROP TABLE pins"}})}, 400),
    ("/api/related", {"pin": IMAGE, "where": json.dumps({"width": {"in": 5}})}, 422),
    ("/api/related", {"pin": IMAGE, "where": json.dumps({"title": {"like": "%"}})}, 400),
    ("/api/related", {"pin": IMAGE, "where": json.dumps({"title": {"eq": {"nested": 1}}})}, 422),
    ("/api/search", {}, 400),
    ("/api/search", {"text": "   "}, 400),
    ("/api/search", {"text": "star", "negative": "star"}, 400),
    ("/api/pin", {"pin": "nope"}, 404),
    ("/api/thumb", {"pin": IMAGE, "t": "-3"}, 400),
    ("/api/thumb", {"pin": IMAGE, "page": "1"}, 400),
    ("/api/media", {"pin": "../pins.lance"}, 404),
    ("/api/media", {"pin": IDEA, "page": "x"}, 400),
    ("/api/nope", {}, 404),
]


@pytest.mark.parametrize(("path", "params", "status"), HOSTILE_GETS)
def test_hostile_gets_are_4xx_json(api, path, params, status):
    error_of(api.get(path, params=params), status)


def test_where_injection_matches_nothing(api):
    inj = api.get("/api/related", params={"pin": IMAGE, "where": json.dumps({"kind": "x' OR '1'='1"})})
    assert inj.status_code == 200 and inj.json()["results"] == []


def test_hostile_posts_are_4xx_json(api, source, tmp_path):
    error_of(api.post("/api/session", content=b"{not json", headers={"content-type": "application/json"}), 400)
    error_of(api.post("/api/session", json=["a"]), 422)
    error_of(api.post("/api/session", json={"pins": "a"}), 422)
    error_of(api.post("/api/session", json={"pins": []}), 400)
    error_of(api.post("/api/session", json={"pins": [1, 2]}), 422)
    error_of(api.post("/api/session", json={"pins": [IMAGE], "k": "5"}), 422)
    error_of(api.post("/api/session", json={"pins": [IMAGE], "weights": [1, 2]}), 400)
    error_of(api.post("/api/session", json={"pins": [IMAGE, "missing.jpg"]}), 404)
    error_of(api.post("/api/search", json={"text": "x"}), 415)
    error_of(api.delete("/api/health"), 405)
    not_image = api.post("/api/search", files={"image": ("a.jpg", b"%PDF-1.4 not an image", "image/jpeg")})
    assert "PDF" in error_of(not_image, 415)["message"]
    error_of(api.post("/api/search", files={"image": ("a.jpg", b"", "image/jpeg")}), 415)
    bomb = huge_png(tmp_path / "bomb.png", side=9000)  # 81 Mpx in a few kB
    assert bomb.stat().st_size < 100_000
    err = error_of(api.post("/api/search", files={"image": ("bomb.png", bomb.read_bytes(), "image/png")}), 413)
    assert "pixels" in err["message"]
    big = os.urandom(2 << 20)
    error_of(api.post("/api/search", files={"image": ("big.jpg", big, "image/jpeg")}), 413)

    def chunks():  # no Content-Length: the limit applies while the body streams in
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(40):
            yield b"x" * 65536

    error_of(api.post("/api/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}), 413)
    error_of(api.post("/api/search", content=b"--b\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=b"}), 400)


def test_every_response_is_json_never_a_500(api):
    """A sweep of odd values over every parameter of every endpoint: never a 5xx."""
    odd = ["", " ", "-1", "1e309", "nan", "0x10", "{}", "[]", "null", "\u202e", "a" * 5000, "%00", "..", "\\"]
    for path, names in (("/api/related", ["pin", "k", "kinds", "dedupe", "diversity", "where"]),
                        ("/api/search", ["text", "negative", "pin", "k", "where"]),
                        ("/api/thumb", ["t", "page", "size"]), ("/api/media", ["page"]), ("/api/pin", ["pin"])):
        for name in names:
            for v in odd:
                params = {"pin": IMAGE, name: v} if path != "/api/search" else {"text": "star", name: v}
                r = api.get(path, params=params)
                assert r.status_code < 500, (path, name, v, r.text[:300])


# -- security ----------------------------------------------------------------------------------
def test_token_is_required_for_the_api_only(base_db):
    with Server(base_db, token="s3cret-token") as c:
        error_of(c.get("/api/health"), 401)
        error_of(c.get("/api/health", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert c.get("/api/thumb", params={"pin": IMAGE, "token": "s3cret-token"}).status_code == 200
        error_of(c.get("/api/media", params={"pin": IMAGE, "token": "s3cret"}), 401)
        page = c.get("/")
        assert page.status_code == 200 and "html" in page.headers["content-type"]
        assert c.get("/static/index.html").status_code == 200
        error_of(c.get("/static/"), 404)  # no directory listing
        assert c.get("/static/../pyproject.toml").status_code == 404


def test_loopback_server_refuses_other_host_names(api):
    error_of(api.get("/api/health", headers={"Host": "evil.example:80"}), 400)
    assert api.get("/api/health", headers={"Host": "localhost:1234"}).status_code == 200


def test_cors_is_off_unless_asked(api, base_db):
    r = api.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    with Server(base_db, cors_origins=("http://app.example",)) as c:
        ok = c.get("/api/health", headers={"Origin": "http://app.example"})
        assert ok.headers["access-control-allow-origin"] == "http://app.example"
        assert "access-control-allow-origin" not in c.get("/api/health", headers={"Origin": "http://x.example"}).headers


def test_request_time_limit_is_504(base_db):
    with Server(base_db, time_limit_s=0.001) as c:
        err = error_of(c.get("/api/search", params={"text": "a star", "k": 1000}), 504)
        assert "took over" in err["message"]


def test_cli_refuses_a_public_bind_without_a_token(tmp_path, base_db):
    from click.testing import CliRunner

    from pinembed.cli.main import cli

    r = CliRunner().invoke(cli, ["serve", "--db", base_db, "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "--token" in r.output
    r = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "missing.lance")])
    assert r.exit_code == 2 and "no database" in r.output


def test_cli_prints_the_url_and_stops_on_sigterm(base_db):
    env = {**os.environ, "PINEMBED_TOKEN": "tok en"}  # not --token: a command line shows in `ps`
    proc = subprocess.Popen([sys.executable, "-m", "pinembed.cli.main", "serve", "--db", base_db, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {base_db} at http://127.0.0.1:") and line.strip().endswith("/#token=tok%20en")
        base = line.split(" at ")[1].split("/#")[0]
        assert httpx.get(base + "/api/health", headers={"Authorization": "Bearer tok en"}).json()["pins"] == 8
        assert "tok en" not in " ".join(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()


def test_stopping_waits_for_the_warm_up_and_the_loading(base_db):
    """A process exiting while the model warms up (torch) or the pins load (LanceDB) in a daemon thread
    aborts ("terminate called without an active exception", exit -6): stop() waits for both."""
    from pinembed.serve.live import LiveIndex
    from pinembed.serve.settings import ServeSettings

    live = LiveIndex(base_db, ServeSettings())
    live.start()
    live.stop()
    assert not live._thread.is_alive() and not (live._loader and live._loader.is_alive())
    assert live.get().store.count() == 8  # the index stays usable


# -- live: a refresh and a model switch while a client queries -----------------------------------
def test_refresh_and_model_switch_are_picked_up_without_failed_requests(base_db, source, tmp_path, tiny_model_id):
    from pinembed.ingestion.refresh import refresh

    db = _copy(base_db, tmp_path)
    failures: list[str] = []
    seen: dict[str, set] = {"generations": set(), "pins": set()}
    stop = threading.Event()

    def keep_querying(base: str) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                for path, params in (("/api/related", {"pin": IMAGE, "k": 3}), ("/api/search", {"text": "a star"}),
                                     ("/api/health", {})):
                    r = c.get(path, params=params)
                    if r.status_code != 200:
                        failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                    elif path == "/api/health":
                        seen["generations"].add(r.json()["generation"])
                        seen["pins"].add(r.json()["pins"])

    def wait_for(c, pred, what: str) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            h = c.get("/api/health").json()
            if pred(h):
                return h
            time.sleep(0.1)
        raise AssertionError(f"the server did not pick up {what}: {h}")

    with Server(db, reload_interval_s=0.2) as c:
        server = c
        client = threading.Thread(target=keep_querying, args=(str(c.base_url),), daemon=True)
        client.start()
        new = save_image(source / "images" / "new-orange.png", colour=(250, 140, 0), size=(64, 64))
        try:
            wait_for(server, lambda h: h["memory"]["state"] == "held", "the pins into memory")
            refresh([source], db)
            wait_for(server, lambda h: h["pins"] == 9 and h["memory"].get("pins") == 9, "a refreshed pin")
            assert server.get("/api/pin", params={"pin": "images/new-orange.png"}).status_code == 200
            assert server.get("/api/related", params={"pin": "images/new-orange.png", "k": 3}).status_code == 200
            new.unlink()  # deleted by the next refresh: gone from memory too
            refresh([source], db)
            wait_for(server, lambda h: h["pins"] == 8 and h["memory"].get("pins") == 8, "a deleted pin")
            r = server.get("/api/related", params={"pin": "images/new-orange.png", "k": 3})
            assert r.status_code == 404 and r.json()["error"]["code"] == "pin_not_found"
            new = save_image(source / "images" / "new-orange.png", colour=(250, 140, 0), size=(64, 64))
            refresh([source], db)
            wait_for(server, lambda h: h["pins"] == 9, "the pin back")
            refresh([source], db, model=tiny_model_id)
            h = wait_for(server, lambda h: h["generation"] == 2, "the model switch")
            assert h["model_id"] == tiny_model_id and h["pins"] == 9
            # the new generation's pins go into memory in turn
            wait_for(server, lambda h: h["memory"]["state"] == "held" and h["memory"]["pins"] == 9, "the new pins in memory")
            time.sleep(0.5)  # a few more rounds on the new generation
        finally:
            stop.set()
            client.join(60)
            new.unlink()
    assert failures == []
    assert seen["generations"] == {1, 2} and 9 in seen["pins"]
