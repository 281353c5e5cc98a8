"""Nothing stale, nothing takes the run down: a changed file that breaks leaves results at once and is
given up after --max-attempts; symlinks follow one policy; decoders that crash, hang or print cost
one file's ledger row (or warning), never the run or its stderr. Each runs the user's command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli

from helpers import save_image, truncated_jpeg

EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r, (json.loads(r.stdout) if "--json" in args and r.stdout.strip() else None)


def pins(db):
    r, _ = run("pins", "--db", db)
    return {line.split("\t")[0] for line in r.stdout.splitlines() if line}


@pytest.fixture()
def folder(tmp_path):
    src = tmp_path / "media"
    for i, c in enumerate(COLOURS):
        save_image(src / f"p{i}.png", colour=c, size=(64, 48))
    return src


def test_a_changed_file_that_breaks_leaves_results_and_is_given_up(folder, db, tiny_model_id):
    r, out = run("ingest", folder, "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 0 and out["added"] == 4
    cat = folder / "p1.png"
    truncated_jpeg(cat)  # the file changes into a broken one
    os.utime(cat, ns=(time.time_ns(), time.time_ns() + 10**9))

    r, out = run("refresh", folder, "--db", db, "--json", "--max-attempts", "3")
    assert r.exit_code == 3 and out["planned"]["changed"] == 1 and out["failed"] == 1
    assert out["withdrawn"] == 1  # its old vector answers nothing any more
    assert pins(db) == {"p0.png", "p2.png", "p3.png"}
    r, rel = run("related", "p0.png", "--db", db, "-k", "10", "--json")
    assert "p1.png" not in {x["pin_id"] for x in rel["results"]} and len(rel["results"]) == 2
    r, _ = run("failures", "--db", db)
    assert "p1.png" in r.stdout

    for attempt in (2, 3):  # retried: the file may be fixed meanwhile
        r, out = run("refresh", folder, "--db", db, "--json", "--max-attempts", "3")
        assert r.exit_code == 3 and out["planned"]["retry"] == 1 and out["withdrawn"] == 0, attempt
    r, out = run("refresh", folder, "--db", db, "--json", "--max-attempts", "3")
    assert r.exit_code == 0 and out["given_up"] == 1 and out["failed"] == 0
    assert out["model_loaded"] is False  # nothing to read: no model load
    r, txt = run("refresh", folder, "--db", db)
    assert r.exit_code == 0 and "given up 1" in r.stdout

    save_image(cat, colour=COLOURS[1], size=(64, 48))  # fixed: read again at once
    r, out = run("refresh", folder, "--db", db, "--json", "--max-attempts", "3")
    assert r.exit_code == 0 and out["planned"]["retry"] == 1 and out["added"] == 1
    assert "p1.png" in pins(db)


def test_ingest_withdraws_a_changed_file_that_breaks(folder, db, tiny_model_id):
    run("ingest", folder, "--db", db, "--model", tiny_model_id)
    (folder / "p2.png").write_bytes(b"not a picture any more")
    r, _ = run("ingest", folder, "--db", db)
    assert r.exit_code == 3 and "withdrawn 1" in r.stdout
    assert "p2.png" not in pins(db)


def test_symlinks_inside_are_followed_outside_and_loops_are_named_skips(tmp_path, db, tiny_model_id):
    src, out_dir = tmp_path / "media", tmp_path / "elsewhere"
    save_image(src / "cat.jpg", colour=COLOURS[0])
    save_image(src / "sub" / "dog.jpg", colour=COLOURS[1])
    save_image(out_dir / "far.jpg", colour=COLOURS[2])
    (src / "link-to-cat.jpg").symlink_to("cat.jpg")
    (src / "linked-sub").symlink_to("sub")
    (src / "far.jpg").symlink_to(out_dir / "far.jpg")
    (src / "far-folder").symlink_to(out_dir)
    (src / "sub" / "loop").symlink_to("..")
    r, out = run("ingest", src, "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 0, r.output
    assert pins(db) == {"cat.jpg", "link-to-cat.jpg", "sub/dog.jpg", "linked-sub/dog.jpg"}
    skips = {(os.path.relpath(s["path"], src), s["reason"]) for s in out["skipped_files"]}
    assert {("far.jpg", "symlink_outside"), ("far-folder", "symlink_outside"), ("sub/loop", "symlink_loop"),
            ("linked-sub/loop", "symlink_loop")} <= skips
    far = next(s for s in out["skipped_files"] if s["path"].endswith("far-folder"))
    assert str(out_dir) in far["message"]
    r, _ = run("ingest", src, "--db", db)
    assert "2 symlink outside, 2 symlink loop" in r.output
    r, _ = run("ingest", src, "--db", db, "--list-skipped")
    assert f"{src / 'far.jpg'}: [symlink_outside]" in r.output and "[symlink_loop]" in r.output


def test_a_decoder_that_aborts_or_hangs_costs_one_file(folder, db, tiny_model_id, monkeypatch):
    monkeypatch.setenv("PINEMBED_FAILPOINT", "decode_abort=p1.png")
    r, out = run("ingest", folder, "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 3 and out["added"] == 3 and out["failed"] == 1
    (f,) = out["failures"]
    assert f["pin_id"] == "p1.png" and f["error"] == "decoder_crashed"

    save_image(folder / "p9.png", colour=(9, 9, 9))
    monkeypatch.setenv("PINEMBED_FAILPOINT", "decode_hang=p9.png")
    t = time.monotonic()
    r, out = run("ingest", folder, "--db", db, "--json", "--image-timeout", "2")
    assert time.monotonic() - t < 60
    assert r.exit_code == 3 and out["failed"] == 1 and out["added"] == 1  # p1 retried (it lands), p9 hangs
    (f,) = out["failures"]
    assert f["pin_id"] == "p9.png" and f["error"] == "timeout"
    monkeypatch.delenv("PINEMBED_FAILPOINT")
    r, out = run("ingest", folder, "--db", db, "--json")
    assert r.exit_code == 0 and out["added"] == 1 and out["unchanged"] == 4


def test_decoder_noise_is_a_warning_of_its_file_and_stderr_stays_clean(tmp_path, db, tiny_model_id):
    from PIL import Image

    src = tmp_path / "media"
    save_image(src / "plain.png")
    im = Image.new("RGB", (64, 48), (120, 40, 200))
    exif = im.getexif()
    exif[0x010E] = "a description"
    im.save(src / "odd-exif.jpg", exif=exif.tobytes()[:-4])  # EXIF cut short: PIL warns, pixels are fine
    save_image(src / "printing.png", colour=(1, 2, 3))
    env = {**os.environ, "PINEMBED_FAILPOINT": "decode_print=printing.png"}  # the decoder prints to fd 2
    p = subprocess.run([EXE, "ingest", str(src), "--db", db, "--model", tiny_model_id, "--json"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == ""  # no decoder line reaches the run's stderr
    out = json.loads(p.stdout)
    assert out["added"] == 3 and out["warnings"] == 2
    said = {w["pin_id"]: w for w in out["warning_rows"]}
    assert said["odd-exif.jpg"]["error"] == "decoder_warning" and "Truncated File Read" in said["odd-exif.jpg"]["message"]
    assert "libfake" in said["printing.png"]["message"]


def test_an_upgrade_refresh_counts_the_pins_its_switch_drops(folder, db, tiny_model_id, other_tiny_model_id):
    run("ingest", folder, "--db", db, "--model", tiny_model_id)
    (folder / "p3.png").unlink()
    r, out = run("refresh", folder, "--db", db, "--model", other_tiny_model_id, "--json")
    assert r.exit_code == 0 and out["switched"] is True, r.output
    assert out["planned"]["deleted"] == 1 and out["deleted"] == 1
    assert pins(db) == {"p0.png", "p1.png", "p2.png"}
