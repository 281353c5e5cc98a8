"""Ledger bookkeeping, unique pin ids and unstorable strings: bad input never crashes a run."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from pinembed.cli.main import cli

from helpers import save_image, write, write_idea


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _ledger(db):
    return {f["uri"]: f for f in json.loads(run("failures", "--db", db, "--json").stdout)["failures"]}


def test_lone_surrogates_in_sidecars_and_manifests_are_stored_safely(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "m" / "a.jpg")
    write(tmp_path / "m" / "a.json", '{"title": "bad \\ud800 title"}')
    save_image(tmp_path / "m" / "idea" / "p.jpg")
    write(tmp_path / "m" / "idea" / "pin.json", '{"title": "x\\udfff", "pages": [{"media": "p.jpg", "text": "\\ud83d"}]}')
    r = run("ingest", tmp_path / "m", "--db", db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 2


def test_duplicate_pin_ids_keep_one_pin_and_ledger_the_rest(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "m" / "x.jpg")
    for name in ("one", "two"):
        save_image(tmp_path / "m" / name / "p.jpg")
        write_idea(tmp_path / "m" / name, [{"media": "p.jpg"}], id="x.jpg")
    r = run("ingest", tmp_path / "m", "--db", db, "--model", tiny_model_id, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 3 and out["added"] == 1
    assert [f["error"] for f in out["failures"]] == ["duplicate_id", "duplicate_id"]
    assert json.loads(run("stats", "--db", db, "--json").stdout)["pins"] == 1
    again = json.loads(run("ingest", tmp_path / "m", "--db", db, "--json").stdout)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 1)


def test_fixed_idea_page_leaves_the_ledger(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "m" / "idea" / "p.jpg")
    write_idea(tmp_path / "m" / "idea", [{"media": "p.jpg"}, {"media": "later.jpg"}])
    run("ingest", tmp_path / "m", "--db", db, "--model", tiny_model_id)
    assert [f["error"] for f in _ledger(db).values()] == ["missing_page"]
    save_image(tmp_path / "m" / "idea" / "later.jpg")
    st = os.stat(tmp_path / "m" / "idea" / "pin.json")
    os.utime(tmp_path / "m" / "idea" / "pin.json", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = run("ingest", tmp_path / "m", "--db", db, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["updated"] == 1 and _ledger(db) == {}


def test_no_usable_pages_keeps_each_page_reason(tmp_path, db, tiny_model_id):
    write(tmp_path / "m" / "idea" / "broken.jpg", "not an image")
    write_idea(tmp_path / "m" / "idea", [{"media": "broken.jpg"}])
    run("ingest", tmp_path / "m", "--db", db, "--model", tiny_model_id)
    assert sorted(f["error"] for f in _ledger(db).values()) == ["no_usable_pages", "not_an_image"]


def test_json_errors_are_json(tmp_path):
    r = run("related", "x", "--db", tmp_path / "missing.lance", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["exit_code"] == 2
    assert not (tmp_path / "missing.lance").exists()  # a query never creates a database


def test_train_replaces_only_its_own_weights(tmp_path):
    save_image(tmp_path / "d" / "a.png").with_suffix(".txt").write_text("a red square\n")
    save_image(tmp_path / "d" / "b.png", colour=(0, 0, 200)).with_suffix(".txt").write_text("a blue square\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.safetensors").write_bytes(b"keep me")
    r = run("train", "--data", tmp_path / "d", "--out", tmp_path / "out", "--arch", "pinembed-tiny", "--epochs", "1",
            "--batch-size", "2")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "mine.safetensors").read_bytes() == b"keep me"
