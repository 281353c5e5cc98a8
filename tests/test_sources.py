"""No silent overwrite across sources: each source folder owns the pin ids under its prefix; writers
lock before anything else; a typo in SRC creates nothing; a no-change run loads no model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import pinembed
from pinembed.store.lock import WriteLock

from helpers import save_image

EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


def run(*args, timeout: int = 120):
    env = {k: v for k, v in os.environ.items() if k != "PINEMBED_FAILPOINT"}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture()
def cards(tmp_path):
    """Two camera cards that both hold IMG_0001.JPG (different photos)."""
    a, b = tmp_path / "cardA", tmp_path / "cardB"
    save_image(a / "IMG_0001.JPG", colour=(220, 20, 20), fmt="JPEG")
    save_image(a / "IMG_0002.JPG", colour=(20, 220, 20), fmt="JPEG")
    save_image(b / "IMG_0001.JPG", colour=(20, 20, 220), fmt="JPEG")
    return a, b


def test_a_second_source_never_takes_over_the_first_ones_pins(cards, db, tiny_model_id):
    a, b = cards
    assert run("ingest", a, "--db", db, "--model", tiny_model_id).returncode == 0
    before = pinembed.open_index(db).store.get_pin("IMG_0001.JPG")
    r = run("ingest", b, "--db", db)
    assert r.returncode == 2, r.stderr
    assert f"already belong to the source '{a}'" in r.stderr and "--id-prefix cardB" in r.stderr
    assert "Traceback" not in r.stderr
    after = pinembed.open_index(db).store.get_pin("IMG_0001.JPG")
    assert after["uri"] == str(a / "IMG_0001.JPG") and np.array_equal(after["vector"], before["vector"])

    r = run("ingest", b, "--db", db, "--id-prefix", "cardB", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["added"] == 1
    idx = pinembed.open_index(db)
    assert idx.store.get_pin("cardB/IMG_0001.JPG", with_vector=False)["uri"] == str(b / "IMG_0001.JPG")
    assert idx.store.get_pin("IMG_0001.JPG", with_vector=False)["uri"] == str(a / "IMG_0001.JPG")
    listed = json.loads(run("sources", "--db", db, "--json").stdout)["sources"]
    assert [(s["root"], s["id_prefix"]) for s in listed] == [(str(a), ""), (str(b), "cardB")]

    # a known source keeps its prefix: refresh B without --id-prefix, and another prefix is refused
    (b / "IMG_0001.JPG").unlink()
    s = json.loads(run("refresh", b, "--db", db, "--json").stdout)
    assert s["planned"]["deleted"] == 1 and s["deleted"] == 1
    r = run("refresh", b, "--db", db, "--id-prefix", "other")
    assert r.returncode == 2 and "recorded in this database" in r.stderr
    # refreshing one source never touches the other's pins
    s = json.loads(run("refresh", a, "--db", db, "--json").stdout)
    assert s["planned"]["unchanged"] == 2 and s["planned"]["deleted"] == 0
    assert sorted(r["pin_id"] for r in pinembed.open_index(db).store.pin_states(("pin_id",)).to_pylist()) == [
        "IMG_0001.JPG", "IMG_0002.JPG"]


def test_an_id_held_by_another_source_is_a_ledger_row_not_an_overwrite(tmp_path, db, tiny_model_id):
    a, b = tmp_path / "a", tmp_path / "b"
    save_image(a / "x" / "y.jpg", colour=(200, 0, 0))  # pin id x/y.jpg
    save_image(b / "y.jpg", colour=(0, 0, 200))  # with --id-prefix x: also x/y.jpg
    save_image(b / "z.jpg", colour=(0, 200, 0))
    assert run("ingest", a, "--db", db, "--model", tiny_model_id).returncode == 0
    r = run("ingest", b, "--db", db, "--id-prefix", "x", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["added"] == 1 and out["failed"] == 1
    (row,) = out["failures"]
    assert row["error"] == "id_taken" and row["pin_id"] == "x/y.jpg" and str(a) in row["message"]
    assert pinembed.open_index(db).store.get_pin("x/y.jpg", with_vector=False)["uri"] == str(a / "x" / "y.jpg")


def test_a_missing_source_creates_no_database(tmp_path, db):
    r = run("ingest", tmp_path / "nonexistent", "--db", db, "--model", "nano")
    assert r.returncode == 2 and "does not exist" in r.stderr and "nothing was created" in r.stderr
    assert not os.path.exists(db)


def test_writers_lock_before_loading_the_model(cards, db):
    a, _ = cards
    with WriteLock(db, "test"):
        t = time.perf_counter()
        # a model that cannot load: the lock answers first
        r = run("ingest", a, "--db", db, "--model", "open_clip:pinembed-tiny//nonexistent.pt")
        assert r.returncode == 4 and "being written by another pinembed process" in r.stderr
        assert time.perf_counter() - t < 10


def test_a_no_change_ingest_loads_no_model_and_reports_its_real_time(cards, db, tiny_model_id):
    a, _ = cards
    first = json.loads(run("ingest", a, "--db", db, "--model", tiny_model_id, "--json").stdout)
    assert first["model_loaded"] and first["stage_s"]["model"] > 0
    assert first["elapsed_s"] >= first["stage_s"]["model"]  # the model's load is part of the run's time
    again = json.loads(run("ingest", a, "--db", db, "--model", tiny_model_id, "--json").stdout)
    assert (again["unchanged"], again["model_loaded"], again["stage_s"]["model"]) == (2, False, 0)
    assert again["elapsed_s"] > 0
