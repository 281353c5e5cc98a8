"""The page of `pinembed serve` in a real browser: Playwright drives Debian's Chromium against the real CLI.

Search by text, open a result's related pins, share the view by its URL, fill the session tray and show
its related pins (in fused order, with the fused score); page through the recent pins of the start page;
preview uploads of formats the browser cannot show; a video the browser cannot play says so; titles wrap
between words; the footer stays at the bottom; every card image must have loaded. `make test` installs Chromium (Debian, as root);
in CI (PINEMBED_REQUIRE_BROWSER=1) a missing browser is a failure, elsewhere a skip that says how to get
one. PINEMBED_SCREENSHOT=1 saves the README's screenshot to docs/images/serve.png (or to a given path).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
PINEMBED = [sys.executable, "-m", "pinembed.cli"]
SCREENSHOT = REPO / "docs" / "images" / "serve.png"
# A slice of sample_media/ with every kind: two shapes of images, two videos, two idea pins.
SUBSET = ["images/star", "images/circle", "videos/red-circle-moving-on-white.mp4",
          "videos/yellow-star-moving-on-black.mp4", "ideas/blue-star-ideas", "ideas/red-triangle-ideas"]
OLD_VIDEO = "videos/old-camera.avi"  # MPEG-4 Part 2 in AVI: no browser plays it
OLD_TITLE = "An old camera clip of a red circle, recorded long ago in a format browsers do not play"
TOKEN = "page-test-token"  # the server runs with --token: the page must send it on fetch and media URLs
HOW_TO_GET_ONE = ("no Chromium for the browser test: `apt-get install chromium` (Debian, as root; `make test` "
                  "does it), or point PINEMBED_CHROMIUM at a Chromium or Chrome binary")


def _browser_or_skip() -> str:
    """The Chromium binary, or a skip (a failure where PINEMBED_REQUIRE_BROWSER=1, as in CI)."""
    exe = os.environ.get("PINEMBED_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is missing: pip install -e '.[dev]'"
    if missing is None and not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        missing = HOW_TO_GET_ONE + f" ({exe} is not there)"
    if missing:
        if os.environ.get("PINEMBED_REQUIRE_BROWSER") == "1":
            pytest.fail(missing + "; PINEMBED_REQUIRE_BROWSER=1 makes this a failure")
        pytest.skip(missing)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pinembed serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(base + "/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"pinembed serve did not answer /api/health in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`pinembed serve --token` (the real CLI, a subprocess) on 127.0.0.1 over sample media ingested with
    nano; yields its base URL."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("page")
    media = root / "media"
    for rel in SUBSET:
        src, dst = REPO / "sample_media" / rel, media / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
            if src.with_suffix(".json").exists():  # the video's sidecar: its title
                shutil.copy2(src.with_suffix(".json"), dst.with_suffix(".json"))
    from helpers import write_sidecar, write_video

    write_sidecar(write_video(media / OLD_VIDEO, codec="mpeg4", secs=2.0, fps=8), OLD_TITLE)
    db = root / "pins.lance"
    subprocess.run([*PINEMBED, "ingest", str(media), "--db", str(db), "--model", "nano"], check=True,
                   capture_output=True, timeout=300)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*PINEMBED, "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port),
                                 "--token", TOKEN],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server):
    """Chromium, launched once for the module (Debian's binary: Playwright downloads nothing)."""
    exe = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser):
    """A fresh page (its own context: no cookies or cache shared between tests) of 1280x800."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)  # the first text query loads the model: slow on a busy machine
    pg = context.new_page()
    pg.problems = []  # uncaught errors and console errors (a failed image, a 404) fail the test
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    try:
        yield pg
    finally:
        context.close()


def _settled(page) -> None:
    """Wait until the latest request has rendered."""
    page.wait_for_function("() => !document.querySelector('#results').hasAttribute('aria-busy')")


def _card_ids(page, where: str = "#results") -> list[str]:
    return page.eval_on_selector_all(f"{where} .card", "cs => cs.map(c => c.dataset.pinId)")


def _images_loaded(page, where: str) -> int:
    """Scroll every image under ``where`` into view (they load lazily), wait for them, and check that each
    one decoded to a real picture. Returns how many there were."""
    imgs = page.locator(f"{where} img")
    n = imgs.count()
    for i in range(n):
        imgs.nth(i).scroll_into_view_if_needed()
    page.wait_for_function("sel => [...document.querySelectorAll(sel)].every(i => i.complete)", arg=f"{where} img")
    broken = page.eval_on_selector_all(f"{where} img", "is => is.filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    page.evaluate("() => window.scrollTo(0, 0)")
    return n


def _shrink_png(path: Path) -> None:
    """256 colours (median cut): the README's screenshot stays well under 300 kB."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_search_related_share_and_session(page, server):
    page.goto(server + f"/#token={TOKEN}")
    page.wait_for_selector("#health:not(:empty)")
    assert page.locator("#error").is_hidden()

    # search by text
    page.fill("#q", "a red star")
    page.press("#q", "Enter")
    page.wait_for_selector("#results .card")
    _settled(page)
    found = _card_ids(page)
    assert len(found) == 20 and "images/star/red-star-on-white.jpg" in found[:4], found
    assert _query(page)["q"] == ["a red star"]
    first = page.locator("#results .card").first
    assert first.locator(".badge").text_content() == "image"
    assert first.locator(".score").text_content().count(".") == 1
    assert len(first.locator(".score").text_content().split(".")[1]) == 3  # three decimals
    kinds = set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)"))
    assert kinds == {"image", "video", "idea"}, kinds
    assert page.locator("#results .card.kind-idea .pages img").count() >= 2  # idea cards show their pages
    assert _images_loaded(page, "#results") >= 20

    # a video card plays its file from the best-matching frame on hover
    video = page.locator("#results .card.kind-video:not(.unplayable)").first
    best_t = float(video.get_attribute("data-best-t-s"))
    video.hover()
    played = page.wait_for_function(  # the first moment it can show a frame: where it starts
        "() => { const v = document.querySelector('#results video.preview');"
        " return v && (v.error || (v.readyState >= 2 && !v.seeking))"
        " && {error: v.error && v.error.message, t: v.currentTime} }").json_value()
    assert played["error"] is None and abs(played["t"] - best_t) < 0.25, (played, best_t)
    page.mouse.move(0, 0)

    # two pins into the session tray
    page.locator("#results .card .add").nth(0).click()
    page.locator("#results .card .add").nth(1).click()
    assert page.locator("#tray-pins li").count() == 2
    assert len(_query(page)["s"]) == 2

    # a click on a video card shows its related pins
    video_id = video.get_attribute("data-pin-id")
    video.locator(".open").click()
    page.wait_for_selector(f'#query .card[data-pin-id="{video_id}"]')
    _settled(page)
    related = _card_ids(page)
    assert related and video_id not in related
    assert _images_loaded(page, "#results") >= len(related)
    assert _images_loaded(page, "#query") == 1
    state = _query(page)
    assert state["pin"] == [video_id] and "q" not in state and len(state["s"]) == 2

    if os.environ.get("PINEMBED_SCREENSHOT"):
        path = os.environ["PINEMBED_SCREENSHOT"]
        out = SCREENSHOT if path == "1" else Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.screenshot(path=str(out))
        _shrink_png(out)

    # the URL is the view: reloading it shows the same pins, query and tray
    url = page.url
    page.reload()
    page.wait_for_selector(f'#query .card[data-pin-id="{video_id}"]')
    _settled(page)
    assert page.url == url
    assert _card_ids(page) == related
    assert page.locator("#tray-pins li").count() == 2
    _images_loaded(page, "#tray")

    # back goes to the search, forward to the related pins again
    page.go_back()
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a red star'")
    _settled(page)
    assert page.input_value("#q") == "a red star"
    assert _card_ids(page) == found

    # the session's related pins
    session = page.eval_on_selector_all("#tray-pins li", "ls => ls.map(l => l.dataset.pinId)")
    page.click("#tray-related")
    page.wait_for_function("() => new URLSearchParams(location.search).get('view') === 'session'")
    _settled(page)
    together = _card_ids(page)
    assert together and not set(together) & set(session)
    _images_loaded(page, "#results")

    # the controls narrow the same view, and say so in the URL
    page.check("#kinds input[value=video]")
    page.wait_for_function("() => new URLSearchParams(location.search).get('kinds') === 'video'")
    _settled(page)
    assert set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)")) == {"video"}
    page.check("#dedupe-on")
    page.wait_for_function("() => new URLSearchParams(location.search).get('dedupe') === '0.95'")
    _settled(page)
    assert _query(page)["view"] == ["session"] and page.locator("#results .card").count() >= 1
    assert page.locator("#error").is_hidden()
    assert not page.problems, page.problems


def test_search_by_uploaded_and_dropped_image(page, server):
    page.goto(server + f"/?k=5#token={TOKEN}")
    page.set_input_files("#image", str(REPO / "sample_media/images/star/red-star-on-white.jpg"))
    page.wait_for_selector("#results .card")
    _settled(page)
    assert _card_ids(page)[0] == "images/star/red-star-on-white.jpg"  # itself, at the top
    assert page.locator("#query img.upload").count() == 1
    _images_loaded(page, "#results")

    # a file dropped anywhere on the page
    data = (REPO / "sample_media/images/circle/blue-circle-on-black.jpg").read_bytes()
    page.evaluate("""async (bytes) => {
        const file = new File([new Uint8Array(bytes)], "dropped.jpg", {type: "image/jpeg"});
        const dt = new DataTransfer();
        dt.items.add(file);
        document.body.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", list(data))
    page.wait_for_function("() => document.querySelector('#results .card')?.dataset.pinId"
                           " === 'images/circle/blue-circle-on-black.jpg'")
    assert "dropped.jpg" in page.locator("#query").text_content()
    assert not page.problems, page.problems


def test_api_errors_show_in_a_banner(page, server):
    page.goto(server + f"/?pin=no/such/pin.jpg#token={TOKEN}")  # an unknown pin: 404 with a message
    page.wait_for_selector("#error:not([hidden])")
    assert "no/such/pin.jpg" in page.locator("#error-message").text_content()
    assert page.locator("#results .card").count() == 0

    page.goto(server + "/?q=a+red+star")  # no token: 401, and the banner says how to give one
    page.wait_for_selector("#error:not([hidden])")
    assert "token" in page.locator("#error").text_content().lower()


# -- the start page, videos that do not play, uploads, titles, the footer ------------------------
WRAPS_BETWEEN_WORDS = """el => {
    // the characters at which a line ends: each text node, character by character, by its box's top
    const ends = [];
    let last = null, prev = "";
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        for (let i = 0; i < n.length; i++) {
            const r = document.createRange();
            r.setStart(n, i); r.setEnd(n, i + 1);
            const box = r.getClientRects()[0];
            if (!box) { prev = n.data[i]; continue; }
            if (last !== null && box.top > last + 2) ends.push(prev);
            last = box.top; prev = n.data[i];
        }
    }
    return ends;
}"""


def test_start_page_pages_through_the_recent_pins(page, server):
    page.goto(server + f"/?k=4#token={TOKEN}")
    page.wait_for_selector("#results .card")
    _settled(page)
    first = _card_ids(page)
    assert len(first) == 4 and page.locator("#pager").is_visible()
    status = page.locator("#status").text_content()
    assert status.startswith("Recent pins") and "1–4 of " in status, status
    total = int(status.rsplit(" of ", 1)[1])
    assert page.locator("#pager-where").text_content() == f"page 1 of {-(-total // 4)}"
    assert page.locator("#pager-newer").is_disabled() and not page.locator("#pager-older").is_disabled()
    _images_loaded(page, "#results")

    page.click("#pager-older")
    page.wait_for_function("() => new URLSearchParams(location.search).get('page') === '2'")
    _settled(page)
    second = _card_ids(page)
    assert len(second) == 4 and not set(second) & set(first)
    assert "5–8 of " in page.locator("#status").text_content()
    page.go_back()  # the page number is in the URL: back is the newer page
    page.wait_for_function("() => !new URLSearchParams(location.search).has('page')")
    _settled(page)
    assert _card_ids(page) == first

    # the footer sits at the bottom of a short page, and below the cards of a long one
    bottom = page.evaluate("() => document.querySelector('footer').getBoundingClientRect().bottom - innerHeight")
    assert abs(bottom) <= 1, bottom
    page.goto(server + f"/?k=40#token={TOKEN}")
    page.wait_for_selector("#results .card")
    _settled(page)
    gap = page.evaluate("() => document.querySelector('footer').getBoundingClientRect().top"
                        " - document.querySelector('#pager').getBoundingClientRect().bottom")
    assert gap >= 0, gap
    assert not page.problems, page.problems


def test_a_video_the_browser_cannot_play_says_so(page, server):
    page.goto(server + f"/?kinds=video#token={TOKEN}")
    old = page.locator(f'#results .card[data-pin-id="{OLD_VIDEO}"]')
    old.wait_for()
    _settled(page)
    assert "unplayable" in old.get_attribute("class")
    assert old.locator(".note").text_content() == "preview not playable in this browser; open the file"
    link = old.locator(".note a")
    assert link.text_content() == "open the file"
    href = link.get_attribute("href")
    assert href.startswith("api/media?pin=videos%2Fold-camera.avi") and f"token={TOKEN}" in href
    assert old.locator(".play").count() == 0
    old.hover()  # nothing to play: its best frame stays
    page.wait_for_timeout(300)
    assert old.locator("video").count() == 0
    _images_loaded(page, f'#results .card[data-pin-id="{OLD_VIDEO}"]')
    # the title wraps between words
    ends = old.locator(".title").evaluate(WRAPS_BETWEEN_WORDS)
    assert ends and all(c in " /_.-" for c in ends), ends
    # the playable ones have no note, and play on hover
    playable = page.locator("#results .card.kind-video:not(.unplayable)")
    assert playable.count() >= 2 and playable.locator(".note").count() == 0

    # a video the browser fails on after all (here the network answers bytes it cannot decode): the same note
    page.route("**/api/media?pin=videos%2Fred-circle*", lambda route: route.fulfill(
        status=200, body=b"\x00" * 4096, headers={"content-type": "video/mp4"}))
    red = page.locator('#results .card[data-pin-id="videos/red-circle-moving-on-white.mp4"]')
    red.hover()
    red.locator(".note").wait_for()
    assert red.locator(".note").text_content() == "preview not playable in this browser; open the file"
    assert red.locator("video").count() == 0
    assert not page.problems, page.problems


def test_uploads_of_any_format_preview(page, server, tmp_path):
    import pillow_heif

    from helpers import save_image

    pillow_heif.register_heif_opener()  # to write the HEIC file

    page.goto(server + f"/?k=3#token={TOKEN}")
    page.wait_for_selector("#results .card")
    for name, fmt in (("phone.heic", "HEIF"), ("scan.tiff", "TIFF")):
        path = save_image(tmp_path / name, colour=(220, 30, 30), size=(320, 240), fmt=fmt)
        page.set_input_files("#image", str(path))
        page.wait_for_function(f"() => document.querySelector('#query')?.textContent.includes('{name}')")
        page.wait_for_function("() => { const i = document.querySelector('#query img.upload');"
                               " return i && i.complete && i.naturalWidth > 0 }")
        img = page.locator("#query img.upload")
        assert img.get_attribute("data-preview") == "server" and img.get_attribute("src").startswith("blob:")
        _settled(page)
        assert _card_ids(page)
    page.set_input_files("#image", str(REPO / "sample_media/images/star/red-star-on-white.jpg"))
    page.wait_for_function("() => document.querySelector('#query img.upload')?.dataset.preview === 'browser'")
    assert not page.problems, page.problems


def test_session_results_are_in_fused_order_with_the_score(page, server):
    pins = ["images/star/red-star-on-white.jpg", "videos/yellow-star-moving-on-black.mp4", "ideas/blue-star-ideas"]
    query = "&".join(f"s={p}" for p in pins)
    page.goto(server + f"/?view=session&{query}&k=8#token={TOKEN}")
    page.wait_for_selector("#results .card")
    _settled(page)
    status = page.locator("#status").text_content()
    assert "in fused order" in status and "reciprocal rank fusion" in status, status
    shown = page.eval_on_selector_all("#results .card .score", "ss => ss.map(s => s.textContent)")
    assert len(shown) == len(_card_ids(page)) == 8
    assert "the score is the fused score" in status, status
    scores = [float(s) for s in shown]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1], scores
    assert "fused" in page.locator("#results .card .score").first.get_attribute("title")
    assert not page.problems, page.problems


def test_the_filter_box_narrows_every_view_and_shows_a_refused_filter(page, server):
    page.goto(server + f"/?k=40#token={TOKEN}")
    page.wait_for_selector("#results .card")
    _settled(page)
    assert len(set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)"))) > 1
    where = "kind = 'video' AND duration_s > 0"
    page.fill("#where", where)
    page.press("#where", "Enter")  # the start page's listing, filtered
    page.wait_for_function("w => new URLSearchParams(location.search).get('where') === w", arg=where)
    _settled(page)
    assert set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)")) == {"video"}
    page.fill("#q", "a red star")  # a search keeps the filter
    page.press("#q", "Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a red star'")
    _settled(page)
    assert set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)")) == {"video"}
    assert _query(page)["where"] == [where] and page.locator("#error").is_hidden()
    assert not page.problems, page.problems

    # a filter the server refuses: its 400 message and hint in the banner, the box there to fix it
    page.fill("#where", "kind = 'video' OR kind = 'idea'")
    page.press("#where", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "OR is not supported" in page.locator("#error-message").text_content()
    assert "IN ('a', 'b')" in page.locator("#error").text_content()
    assert page.locator("#results .card").count() == 0 and page.locator("#where").is_visible()
    page.fill("#where", "kind IN ('video', 'idea')")
    page.press("#where", "Enter")
    page.wait_for_selector("#error", state="hidden")
    _settled(page)
    kinds = set(page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.kind)"))
    assert kinds and kinds <= {"video", "idea"}
