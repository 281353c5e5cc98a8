"""Which files `pinembed serve` serves and plays, over HTTP (a real uvicorn server over a database ingested
with nano). Symlinks: one that stays inside its source (to a file, or a linked folder on the way, or the
source folder itself given through a link) is served; one that points out of it, or a loop, is not.
Videos: a card says whether browsers play its file (H.264 and VP9 do; MPEG-4 Part 2 in .avi or .mov
does not), and such a file is still served for download with its best frame as the thumbnail."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_serve_http import Server, error_of

from helpers import save_image, write_video

REPO = Path(__file__).resolve().parent.parent
IDEA = "ideas/green-circle-ideas"
VIDEOS = {"clips/old.avi": ("mpeg4", False), "clips/old-mpeg4.mov": ("mpeg4", False),
          "clips/new.mp4": ("libx264", True), "clips/new.webm": ("libvpx-vp9", True)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, Path]:
    """media/ with cat.jpg, link-to-cat.jpg -> cat.jpg, pets -> .shelf/pets (a linked folder whose target
    is walked only through the link), swap.jpg and loop.jpg (made links after the ingest), an idea pin and
    four videos; via-link -> media is the folder that is ingested."""
    base = tmp_path_factory.mktemp("links")
    media = base / "media"
    save_image(media / "cat.jpg", colour=(230, 120, 20))
    os.symlink("cat.jpg", media / "link-to-cat.jpg")
    save_image(media / ".shelf" / "pets" / "dog.jpg", colour=(20, 120, 230))
    os.symlink(".shelf/pets", media / "pets")
    save_image(media / "swap.jpg", colour=(20, 230, 120))
    save_image(media / "loop.jpg", colour=(120, 20, 230))
    save_image(media / "shelf" / "book.jpg", colour=(230, 20, 120))
    shutil.copytree(REPO / "sample_media" / IDEA, media / IDEA)
    for rel, (codec, _) in VIDEOS.items():
        write_video(media / rel, codec=codec, secs=2.0, fps=8)
    save_image(base / "outside" / "secret.jpg", colour=(10, 200, 10))
    save_image(base / "outside" / "shelf" / "book.jpg", colour=(10, 10, 200))
    os.symlink("media", base / "via-link")
    return {"base": base, "media": media, "root": base / "via-link"}


@pytest.fixture(scope="module")
def api(tree, tmp_path_factory):
    """A server over the folder ingested through its symlink."""
    import pinembed

    db = str(tmp_path_factory.mktemp("links-db") / "pins.lance")
    summary = pinembed.open_index(db, model="nano").ingest(tree["root"])
    assert summary.failed == 0, summary.failures
    with Server(db) as client:
        yield client


def _pins(api) -> dict[str, dict]:
    body = api.get("/api/pins", params={"size": 100}).json()
    return {c["pin_id"]: c for c in body["pins"]}


def test_links_inside_the_source_are_served(api, tree):
    pins = _pins(api)
    assert {"cat.jpg", "link-to-cat.jpg", "pets/dog.jpg", IDEA} <= set(pins), sorted(pins)
    cat = (tree["media"] / "cat.jpg").read_bytes()
    for pid in ("cat.jpg", "link-to-cat.jpg"):
        r = api.get("/api/media", params={"pin": pid})
        assert r.status_code == 200 and r.content == cat and r.headers["content-type"] == "image/jpeg", pid
    dog = api.get("/api/media", params={"pin": "pets/dog.jpg"})
    assert dog.status_code == 200 and dog.content == (tree["media"] / ".shelf/pets/dog.jpg").read_bytes()
    for pid, c in pins.items():  # every pin: its thumbnail and its file (an idea pin's first page)
        assert api.get(c["thumb"]).status_code == 200, pid
        assert api.get(c["media"]).status_code == 200, pid
    page = api.get("/api/media", params={"pin": IDEA, "page": "1"})  # the pages' paths are resolved ones
    assert page.status_code == 200 and page.content == (tree["media"] / IDEA / "page2.jpg").read_bytes()


def test_links_out_of_the_source_and_loops_are_not_served(api, tree):
    media, outside = tree["media"], tree["base"] / "outside"
    assert api.get("/api/media", params={"pin": "swap.jpg"}).status_code == 200
    (media / "swap.jpg").unlink()  # the ingested file becomes a link out of the source
    os.symlink(outside / "secret.jpg", media / "swap.jpg")
    shutil.rmtree(media / "shelf")  # and a folder on the way, a link to a folder outside
    os.symlink(outside / "shelf", media / "shelf")
    (media / "loop.jpg").unlink()
    os.symlink("loop.jpg", media / "loop.jpg")
    for pid in ("swap.jpg", "shelf/book.jpg"):
        for path in ("/api/media", "/api/thumb"):
            err = error_of(api.get(path, params={"pin": pid}), 404)
            assert err["code"] == "not_served" and "outside its source" in err["message"], (pid, path, err)
    err = error_of(api.get("/api/media", params={"pin": "loop.jpg"}), 404)
    assert err["code"] == "not_served" and "loop" in err["message"]


def test_cards_say_which_videos_browsers_play(api, tree):
    pins = _pins(api)
    for rel, (_, playable) in VIDEOS.items():
        c = pins[rel]
        assert c["kind"] == "video" and c["playable"] is playable, c
        if playable:
            assert c["media_type"].startswith(("video/mp4; codecs=\"avc1.", "video/webm; codecs=\"vp09.")), c
        else:
            assert c["media_type"] is None and "MPEG-4 Part 2" in c["unplayable_reason"], c
            r = api.get(c["media"])  # still served: the page links to it ("open the file")
            assert r.status_code == 200 and r.content == (tree["media"] / rel).read_bytes()
            assert api.get(c["thumb"]).headers["content-type"] == "image/jpeg"  # its best frame
    related = api.get("/api/related", params={"pin": "cat.jpg", "kinds": "video"}).json()["results"]
    assert {c["pin_id"]: c["playable"] for c in related} == {rel: p for rel, (_, p) in VIDEOS.items()}
    assert api.get("/api/pin", params={"pin": "clips/old.avi"}).json()["playable"] is False
    assert "playable" not in pins["cat.jpg"]
