"""`pinembed search|related --server URL`: the query asked of a running `pinembed serve` (a real
subprocess on a free port of 127.0.0.1, started the way a user starts it) prints what the local path
prints, loads no model here, refuses a server of another database, what the server cannot do, and
reports an unreachable or foreign server with a hint. Without --server, a slow model load is noted on
stderr; `related` never loads the model, whatever its controls."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli

from helpers import save_image

REPO = Path(__file__).resolve().parent.parent
IMAGE = "images/star/red-star-on-white.jpg"
OTHER = "images/star/red-star-on-black.jpg"
VIDEO = "videos/blue-square-moving-on-black.mp4"
IDEA = "ideas/green-circle-ideas"
ODD = "images/a\nb.png"  # a line break in a file name
TOKEN = "s3cret tok"


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def pinembed(*args, env=None, cwd=None, timeout=120):
    """The command in its own process (a fresh one: nothing loaded before)."""
    return subprocess.run([sys.executable, "-m", "pinembed.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-server") / "media"
    for rel in (IMAGE, OTHER, "images/star/yellow-star-on-white.jpg", "images/circle/blue-circle-on-white.jpg",
                "images/circle/blue-circle-on-black.jpg", VIDEO):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        for side in (rel, str(Path(rel).with_suffix(".txt")), str(Path(rel).with_suffix(".json"))):  # + titles
            if (REPO / "sample_media" / side).exists():
                shutil.copy2(REPO / "sample_media" / side, root / side)
    shutil.copytree(REPO / "sample_media" / IDEA, root / IDEA)
    save_image(root / ODD, colour=(220, 20, 40))
    return root


@pytest.fixture(scope="module")
def db(media) -> str:
    db = str(media.parent / "pins.lance")
    r = run("ingest", media, "--db", db, "--model", "nano")
    assert r.exit_code == 0, r.output
    return db


@pytest.fixture(scope="module")
def url(db):
    """`pinembed serve --db pins.lance --port 0 --token ...` started in the database's folder (a relative
    --db, as users type it); the URL it prints, with its #token=."""
    proc = subprocess.Popen([sys.executable, "-m", "pinembed.cli.main", "serve", "--db", "pins.lance", "--port", "0",
                             "--token", TOKEN], cwd=Path(db).parent, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving pins.lance at http://127.0.0.1:"), line
        yield line.split(" at ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(30)


def _same(local, remote) -> None:
    """Two --json answers: the same pins in the same order with the same fields (scores to 1e-4: the
    server re-ranks from memory)."""
    a, b = json.loads(local.stdout)["results"], json.loads(remote.stdout)["results"]
    assert [r["pin_id"] for r in a] == [r["pin_id"] for r in b] and a
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y) and abs(x["score"] - y["score"]) < 1e-4
        assert {k: v for k, v in x.items() if k != "score"} == {k: v for k, v in y.items() if k != "score"}


QUERIES = [
    ("search", "--text", "a red star", "-k", "5"),
    ("search", "a blue square", "-k", "4", "--kind", "video", "--kind", "image"),
    ("search", "a red star", "+", "MEDIA/" + OTHER, "-", "a circle", "-k", "6", "--dedupe", "0.99"),
    ("search", "--image", "MEDIA/" + IMAGE, "-k", "3", "--where", "title~star"),
    ("search", "green circle", "-k", "3", "--kind", "idea"),
    ("related", IMAGE, "-k", "4", "--kind", "image", "--dedupe", "0.99", "--diversity", "0.3"),
    ("related", VIDEO, "-k", "5", "--where", "width>=1"),
    ("related", IMAGE, IDEA, VIDEO, "-k", "6"),
    ("related", "images/a\\nb.png", "-k", "3"),  # the id as `pins` prints it
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: " ".join(q[:2]))
def test_the_server_answers_what_the_local_path_answers(db, url, media, query):
    args = [a.replace("MEDIA/", f"{media}/") for a in query]
    local, remote = run(*args, "--db", db, "--json"), run(*args, "--server", url, "--json")
    assert local.exit_code == 0 and remote.exit_code == 0, (local.output, remote.output)
    _same(local, remote)
    text_local, text_remote = run(*args, "--db", db), run(*args, "--server", url, "--db", db)
    assert text_remote.exit_code == 0, text_remote.output
    strip = [line.split(None, 1)[1] for line in text_local.stdout.splitlines()]  # the score aside
    assert [line.split(None, 1)[1] for line in text_remote.stdout.splitlines()] == strip
    assert "note:" not in text_remote.stderr


def test_with_server_no_model_loads_here(db, url, tmp_path):
    """A process whose nano model cannot load (PINEMBED_NANO_DIR names an empty folder) still searches
    through the server, fast; its local search fails, so the model really is out of reach."""
    env = {"PINEMBED_NANO_DIR": str(tmp_path), "PINEMBED_SERVER": url}
    t = time.perf_counter()
    r = pinembed("search", "a red star", "-k", "2", "--json", env=env)
    took = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    assert [x["pin_id"] for x in json.loads(r.stdout)["results"]][0].startswith("images/")
    assert took < 20, f"{took:.1f} s"
    r = pinembed("search", "a red star", "--db", db, env={"PINEMBED_NANO_DIR": str(tmp_path)})
    assert r.returncode == 1 and "the bundled nano model is not at" in r.stderr


def test_related_never_loads_the_model(db, tmp_path):
    """Every control of related, one pin and a session, by id and by path: answered with the model out
    of reach."""
    env = {"PINEMBED_NANO_DIR": str(tmp_path)}
    controls = ["-k", "4", "--kind", "image", "--kind", "idea", "--where", "title~star", "--where", "width>=1",
                "--dedupe", "0.99", "--diversity", "0.4", "--json"]
    for pins in ([IMAGE], [IMAGE, IDEA, VIDEO], ["images/a\\nb.png", OTHER], [str(Path(db).parent / "media" / IMAGE)]):
        r = pinembed("related", *pins, "--db", db, *controls, env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["results"] and "note:" not in r.stderr
    r = pinembed("search", "--text", "a star", "--db", db, env=env)  # the control: this one needs it
    assert r.returncode == 1 and "nano model is not at" in r.stderr


def test_a_slow_model_load_is_noted_on_stderr_only(db):
    r = run("search", "--text", "a red star", "--db", db, "-k", "2", "--json", env={"PINEMBED_SLOW_LOAD_S": "0"})
    assert r.exit_code == 0
    assert len(json.loads(r.stdout)["results"]) == 2  # stdout: one JSON object
    note = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "loaded model nano in" in note[0] and "`--server URL`" in note[0], r.stderr
    assert f"pinembed serve --db {db}" in note[0]
    r = run("search", "--text", "a red star", "--db", db, "-k", "2", env={"PINEMBED_SLOW_LOAD_S": "1000"})
    assert r.exit_code == 0 and "note:" not in r.stderr
    r = run("related", IMAGE, "--db", db, "-k", "2", env={"PINEMBED_SLOW_LOAD_S": "0"})
    assert r.exit_code == 0 and "note:" not in r.stderr


def test_the_server_must_serve_the_database_given(db, url, tmp_path, media):
    other = str(tmp_path / "other.lance")
    save_image(tmp_path / "m" / "x.jpg")
    assert run("ingest", tmp_path / "m", "--db", other, "--model", "nano").exit_code == 0
    for how in (["--db", other], ["--db", str(tmp_path / "missing.lance")]):
        r = run("search", "a star", "--server", url, *how)
        assert r.exit_code == 2 and "serves the database 'pins.lance', not --db" in r.stderr, r.output
        assert "hint: leave out --db" in r.stderr
    r = run("related", IMAGE, "--server", url, env={"PINEMBED_DB": other})
    assert r.exit_code == 2 and "serves the database" in r.stderr
    copy = str(tmp_path / "copy.lance")  # the same database (a copy of it) is served: fine
    shutil.copytree(db, copy)
    for how in (["--db", db], ["--db", copy], []):
        assert run("related", IMAGE, "--server", url, "-k", "1", *how).exit_code == 0


def test_the_servers_errors_are_the_clis_errors(db, url, media):
    base, token = url.split("#")[0], TOKEN
    r = run("related", "no/such.jpg", "--server", url)
    assert r.exit_code == 2 and "error: no pin with id 'no/such.jpg'" in r.stderr and "hint: " in r.stderr
    r = run("related", media / IMAGE, "--server", url)  # a path is an id for the server
    assert r.exit_code == 2 and "with --server, a PIN is a pin id" in r.stderr
    r = run("search", "red", "--server", base)
    assert r.exit_code == 2 and "needs its token" in r.stderr and "--token" in r.stderr
    r = run("search", "red", "--server", base, "--token", "wrong")
    assert r.exit_code == 2 and "needs its token" in r.stderr
    assert run("search", "red", "--server", base, "--token", token, "-k", "1").exit_code == 0
    assert run("search", "red", "-k", "1", env={"PINEMBED_SERVER": base, "PINEMBED_TOKEN": token}).exit_code == 0
    r = run("search", "red", "--server", url, "--json", "--where", "nosuch=1")
    assert r.exit_code == 2 and json.loads(r.stdout)["exit_code"] == 2


@pytest.mark.parametrize("args, message", [
    (["search", "2:red star"], "--server takes no WEIGHT:"),
    (["search", "red", "-", "MEDIA/" + OTHER], "--server subtracts texts only"),
    (["search", "red", "-k", "5000"], "a server gives at most 1000 results"),
    (["related", IMAGE, "-k", "1001"], "a server gives at most 1000 results"),
])
def test_what_the_server_cannot_do_is_refused(url, media, args, message):
    r = run(*[a.replace("MEDIA/", f"{media}/") for a in args], "--server", url)
    assert r.exit_code == 2 and message in r.stderr and "hint: " in r.stderr, r.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("server, message", [
    ("http://127.0.0.1:{closed}", "no pinembed server answers at http://127.0.0.1:"),
    ("ftp://127.0.0.1/", "is not an http:// or https:// URL"),
    ("http://user:pw@127.0.0.1:1/", "takes no user name or password"),
    ("127.0.0.1:8000", "is not an http:// or https:// URL"),
    ("http://127.0.0.1:99999/", "is not a URL"),
    ("http://127.0.0.1:1/?x=1", "has a query"),
])
def test_a_server_that_is_not_there_or_no_url(server, message):
    r = run("search", "red", "--server", server.format(closed=_closed_port()), "--json")
    assert r.exit_code in (1, 2) and message in r.stderr and "hint: " in r.stderr, r.output
    assert json.loads(r.stdout)["exit_code"] == r.exit_code and "Traceback" not in r.output
    if "answers" in message:
        assert r.exit_code == 1 and "pinembed serve --db DB" in r.stderr


class _Foreign(BaseHTTPRequestHandler):
    """Not a pinembed server: HTML pages, JSON of the wrong shape, an error with terminal escapes."""

    def do_GET(self):  # noqa: N802
        self._answer()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._answer()

    def _answer(self):
        mode = self.server.mode
        if mode == "html":
            body, status, ctype = b"<html>hello</html>", 404, "text/html"
        elif mode == "shape":
            body, status, ctype = json.dumps({"results": [{"pin_id": 3}]}).encode(), 200, "application/json"
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            return
        else:
            body = json.dumps({"error": {"code": "x", "message": "bad \x1b[31mred\n", "hint": "h"}}).encode()
            status, ctype = 503, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode, message", [
    ("html", "answered HTTP 404 without a pinembed error"),
    ("shape", "the server's results are not pin cards"),
    ("redirect", "answered HTTP 302 without a pinembed error"),
    ("error", "the server could not answer (503 x): bad \\x1b[31mred\\n"),
])
def test_a_foreign_server_is_reported_not_trusted(mode, message):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    httpd.mode = mode
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        r = run("search", "red", "--server", f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    assert r.exit_code == 1 and message in r.stderr, r.output
    assert "\x1b" not in r.output and "Traceback" not in r.output


def test_help_tells_of_the_server_and_the_printed_ids():
    for cmd in ("search", "related"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "--server URL" in r.stdout and "PINEMBED_SERVER" in r.stdout
        assert "--token" in r.stdout and "PINEMBED_TOKEN" in r.stdout
    assert "a\\nb.png" in run("related", "--help").stdout and "a\\nb.png" in run("pins", "--help").stdout
    assert "--server URL" in run("serve", "--help").stdout
    assert "folder of OUT is created" in " ".join(run("export", "--help").stdout.split())
