"""End to end through the `pinembed` command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli

from helpers import huge_png, save_image, truncated_jpeg, write, write_sidecar

GOOD = [
    "top.jpg",
    "nested/deeper/photo.PNG",
    "nested/ünïcødé café 🎨.webp",
    "it's a \"quote\".jpg",
    "pal.gif",
    "scan.tiff",
    "pic.bmp",
]
BAD = {  # pin id -> error code in the ledger
    "broken/truncated.jpg": "truncated",
    "broken/empty.jpg": "empty",
    "broken/notes.jpg": "not_an_image",
    "broken/huge.png": "too_large",
}


@pytest.fixture()
def mixed(tmp_path):
    src = tmp_path / "media"
    for i, rel in enumerate(GOOD):
        save_image(src / rel, colour=(30 * i, 200 - 20 * i, 90), mode="P" if rel.endswith(".gif") else "RGB")
    write_sidecar(src / "top.jpg", "Top pin", "the first one")
    truncated_jpeg(write(src / "broken" / "truncated.jpg", b""))
    write(src / "broken" / "empty.jpg", b"")
    write(src / "broken" / "notes.jpg", "this is a text file wearing a .jpg name\n")
    huge_png(src / "broken" / "huge.png", side=9000)
    write(src / "README.md", "not media")
    return src


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def test_ingest_mixed_folder_end_to_end(mixed, db, tiny_model_id):
    r = run("ingest", mixed, "--db", db, "--model", tiny_model_id, "--max-pixels", "50000000", "--json")
    assert r.exit_code == 3, r.output
    out = json.loads(r.stdout)
    assert (out["added"], out["updated"], out["unchanged"], out["failed"]) == (len(GOOD), 0, 0, len(BAD))
    assert out["elapsed_s"] > 0 and out["items_per_s"] > 0 and out["skipped"] == 1

    r = run("failures", "--db", db, "--json")
    ledger = {f["pin_id"]: f for f in json.loads(r.stdout)["failures"]}
    assert {k: v["error"] for k, v in ledger.items()} == BAD
    assert all(v["message"] and v["attempts"] == 1 for v in ledger.values())

    r = run("stats", "--db", db, "--json")
    assert json.loads(r.stdout)["pins"] == len(GOOD)

    r = run("ingest", mixed, "--db", db, "--json", "--max-pixels", "50000000")  # again: its own model
    again = json.loads(r.stdout)
    assert r.exit_code == 3 and (again["added"], again["updated"], again["unchanged"]) == (0, 0, len(GOOD))
    assert json.loads(run("stats", "--db", db, "--json").stdout)["pins"] == len(GOOD)
    attempts = {f["pin_id"]: f["attempts"] for f in json.loads(run("failures", "--db", db, "--json").stdout)["failures"]}
    assert set(attempts.values()) == {2}

    r = run("related", "it's a \"quote\".jpg", "--db", db, "-k", "3", "--json")
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert len(results) == 3 and all({"pin_id", "kind", "score", "uri", "title"} <= set(x) for x in results)
    assert "it's a \"quote\".jpg" not in [x["pin_id"] for x in results]

    r = run("related", "top.jpg", "--db", db, "-k", "2")
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 2

    r = run("search", "--text", "top pin", "--db", db, "-k", "2", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 2
    r = run("search", "--image", mixed / "top.jpg", "--db", db, "-k", "1", "--json")
    assert json.loads(r.stdout)["results"][0]["pin_id"] == "top.jpg"
    assert json.loads(r.stdout)["results"][0]["title"] == "Top pin"


def test_fixing_a_bad_file_clears_its_ledger_row(mixed, db, tiny_model_id):
    run("ingest", mixed, "--db", db, "--model", tiny_model_id, "--max-pixels", "50000000")
    save_image(mixed / "broken" / "empty.jpg")
    st = os.stat(mixed / "broken" / "empty.jpg")
    os.utime(mixed / "broken" / "empty.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    run("ingest", mixed, "--db", db, "--max-pixels", "50000000")
    ledger = json.loads(run("failures", "--db", db, "--json").stdout)["failures"]
    assert "broken/empty.jpg" not in {f["pin_id"] for f in ledger} and len(ledger) == len(BAD) - 1


def test_clean_folder_exits_zero_and_text_output(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "a" / "x.jpg")
    save_image(tmp_path / "a" / "y.jpg", colour=(1, 2, 3))
    r = run("ingest", tmp_path / "a", "--db", db, "--model", tiny_model_id)
    assert r.exit_code == 0 and "added 2" in r.stdout


def test_usage_errors_exit_two(db, tmp_path, tiny_model_id):
    assert run("search", "--db", db).exit_code == 2  # neither --text nor --image
    assert run("related", "x", "-k", "0", "--db", db).exit_code == 2
    r = run("ingest", tmp_path / "no-such-folder", "--db", db, "--model", tiny_model_id)
    assert r.exit_code == 2 and "does not exist" in r.stderr and "Traceback" not in r.output
    save_image(tmp_path / "m" / "x.jpg")
    run("ingest", tmp_path / "m", "--db", db, "--model", tiny_model_id)
    r = run("related", "no/such/pin.jpg", "--db", db)
    assert r.exit_code == 2 and "no pin with id" in r.stderr and "hint:" in r.stderr


def _pinembed(*args, env=None, timeout=120):
    exe = os.path.join(os.path.dirname(sys.executable), "pinembed")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help_is_fast():
    _pinembed("--help")  # warm the file cache
    t = time.perf_counter()
    r = _pinembed("--help")
    assert r.returncode == 0 and "ingest" in r.stdout
    assert time.perf_counter() - t < 1.0


def test_missing_model_is_one_clear_error_without_traceback(tmp_path):
    save_image(tmp_path / "m" / "x.jpg")
    r = _pinembed("ingest", tmp_path / "m", "--db", tmp_path / "db.lance",
                  "--model", "open_clip:ViT-B-32/laion2b_s34b_b79k", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "error: the weights of open_clip:ViT-B-32" in r.stderr
    assert "hint:" in r.stderr and "checkpoint" in r.stderr


def test_related_controls_from_the_cli(tmp_path, sample_media):
    import shutil

    src = tmp_path / "m"
    shutil.copytree(sample_media / "images", src)
    shutil.copy2(src / "star" / "red-star-on-white.jpg", src / "star" / "red-star-reupload.jpg")
    db = str(tmp_path / "pins.lance")
    assert run("ingest", src, "--db", db, "--model", "nano").exit_code == 0
    plain = json.loads(run("related", "star/red-star-on-white.jpg", "--db", db, "-k", "5", "--json").stdout)
    assert plain["results"][0]["pin_id"] == "star/red-star-reupload.jpg"
    r = run("related", "star/red-star-on-white.jpg", "--db", db, "-k", "5", "--dedupe", "0.99", "--json")
    assert "star/red-star-reupload.jpg" not in [x["pin_id"] for x in json.loads(r.stdout)["results"]]
    r = run("related", "star/red-star-on-white.jpg", "--db", db, "-k", "5", "--diversity", "0.5", "--json")
    assert len(json.loads(r.stdout)["results"]) == 5
    r = run("related", "star/red-star-on-white.jpg", "circle/blue-circle-on-black.jpg", "--db", db, "-k", "6", "--json")
    ids = [x["pin_id"] for x in json.loads(r.stdout)["results"]]
    assert len(ids) == 6 and "circle/blue-circle-on-black.jpg" not in ids
    r = run("related", "star/red-star-on-white.jpg", "--db", db, "--where", "title~star", "--where", "width>=1", "--json")
    assert r.exit_code == 0 and all("star" in x["title"].lower() for x in json.loads(r.stdout)["results"])
    r = run("related", "star/red-star-on-white.jpg", "--db", db, "--where", "title=' OR 1=1 --", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["results"] == []
    r = run("related", "star/red-star-on-white.jpg", "--db", db, "--where", "1=1 OR title=x")
    assert r.exit_code == 2 and "cannot filter on" in r.stderr
    r = run("search", "a red star", "+", src / "star" / "red-star-on-black.jpg", "-", "0.5:a circle", "--db", db,
            "-k", "3", "--json")
    assert r.exit_code == 0 and "star" in json.loads(r.stdout)["results"][0]["pin_id"]
    r = run("dupes", "--db", db, "--threshold", "0.999", "--json")
    assert ["star/red-star-on-white.jpg", "star/red-star-reupload.jpg"] in json.loads(r.stdout)["clusters"]
