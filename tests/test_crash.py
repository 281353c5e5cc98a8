"""Crash safety for real: `pinembed ingest` and `refresh` killed with SIGKILL at failpoints (while
decoding, between the two tables' commits, between batches, during an index build, before a model
switch), then run again: the store is consistent, no pin is duplicated or lost, and the second run
finishes the job. And the write lock: a second writer exits 4, a dead writer's lock is taken over."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_refresh import consistency

import pinembed
from pinembed.store.lock import WriteLock, lock_path

REPO = Path(__file__).resolve().parent.parent
EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


def _run(*args, failpoint: str | None = None, env: dict | None = None, timeout: int = 180):
    e = {**os.environ, **(env or {})}
    e.pop("PINEMBED_FAILPOINT", None)
    if failpoint:
        e["PINEMBED_FAILPOINT"] = failpoint
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=e)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """All 48 sample images, 2 videos and 2 idea pins."""
    s = tmp_path_factory.mktemp("crash") / "media"
    shutil.copytree(REPO / "sample_media" / "images", s / "images")
    for name in ("blue-square-moving-on-black", "red-circle-moving-on-white"):
        shutil.copy2(REPO / "sample_media" / "videos" / f"{name}.mp4", s / f"{name}.mp4")
    for name in ("blue-star-ideas", "green-circle-ideas"):
        shutil.copytree(REPO / "sample_media" / "ideas" / name, s / name)
    return s


EXPECTED = 52


@pytest.mark.parametrize("command,failpoint", [
    ("ingest", "read:20"),  # while decoding (an input was read, its batch not yet written)
    ("ingest", "commit:2"),  # segments of batch 2 committed, its pins not
    ("refresh", "batch:3"),  # between batch commits
    ("refresh", "index:1:5"),  # 5 ms into the vector index build
])
def test_killed_run_is_finished_by_the_next_one(media, tmp_path, command, failpoint):
    db = tmp_path / "pins.lance"
    env = {"PINEMBED_EXACT_BELOW": "30"}  # an index build at the end of these small runs
    r = _run(command, media, "--db", db, "--model", "nano", "--batch-size", "8", failpoint=failpoint, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    partial = consistency_after_crash(db)
    assert len(partial) < EXPECTED or failpoint.startswith("index")
    r = _run(command, media, "--db", db, "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary.get("failed", 0) == 0
    state = consistency(str(db))
    assert len(state["pins"]) == EXPECTED
    r = _run("refresh", media, "--db", db, "--json", env=env)  # and nothing is left to do
    assert json.loads(r.stdout)["planned"]["unchanged"] == EXPECTED
    assert len(pinembed.open_index(str(db)).related("images/star/red-star-on-white.jpg", k=5)) == 5


def consistency_after_crash(db: Path) -> set[str]:
    """Right after a kill: tables open, no duplicate pin ids (orphan segments are allowed)."""
    import lancedb

    conn = lancedb.connect(str(db))
    if "pins" not in conn.list_tables().tables:
        return set()
    ids = conn.open_table("pins").to_arrow().column("pin_id").to_pylist()
    assert len(ids) == len(set(ids))
    return set(ids)


def test_model_switch_killed_before_going_live_keeps_the_old_model_and_resumes(media, tmp_path, tiny_model_id):
    db = tmp_path / "pins.lance"
    assert _run("refresh", media, "--db", db, "--model", "nano").returncode == 0
    r = _run("refresh", media, "--db", db, "--model", tiny_model_id, "--batch-size", "8", failpoint="batch:2")
    assert r.returncode == -signal.SIGKILL
    idx = pinembed.open_index(str(db))
    assert [(m["state"], m["model_id"]) for m in idx.models()] == [("live", "nano"), ("building", tiny_model_id)]
    assert 0 < idx.models()[1]["pins"] < EXPECTED
    assert len(idx.related("images/star/red-star-on-white.jpg", k=5)) == 5  # queries go on, on nano
    r = _run("refresh", media, "--db", db, "--model", tiny_model_id, failpoint="switch")
    assert r.returncode == -signal.SIGKILL  # complete, killed just before the switch
    assert consistency(str(db))["model"] == "nano"
    r = _run("refresh", media, "--db", db, "--model", tiny_model_id, "--json")
    s = json.loads(r.stdout)
    assert r.returncode == 0 and s["switched"] and s["planned"]["unchanged"] == EXPECTED
    state = consistency(str(db))
    assert state["model"] == tiny_model_id and len(state["pins"]) == EXPECTED


def test_a_second_writer_exits_4_and_a_dead_writers_lock_is_taken_over(media, tmp_path):
    db = tmp_path / "pins.lance"
    assert _run("refresh", media / "images" / "star", "--db", db, "--model", "nano").returncode == 0
    with WriteLock(str(db), "test"):
        r = _run("refresh", media / "images" / "star", "--db", db)
        assert r.returncode == 4 and "being written by another pinembed process" in r.stderr
        assert "Traceback" not in r.stderr
        r = _run("ingest", media / "images" / "star", "--db", db, "--json")
        assert r.returncode == 4 and json.loads(r.stdout)["exit_code"] == 4
        r = _run("related", "red-star-on-white.jpg", "--db", db, "-k", "3")  # readers never wait
        assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3
    # a writer killed while holding the lock: its file remains, the kernel lock does not (the parent
    # folder is another source: it needs its own namespace)
    r = _run("refresh", media / "images", "--db", db, "--id-prefix", "all", failpoint="batch:1")
    assert r.returncode == -signal.SIGKILL and json.loads(lock_path(str(db)).read_text())["pid"] > 0
    r = _run("refresh", media / "images", "--db", db)
    assert r.returncode == 0 and "took over the lock" in r.stderr
