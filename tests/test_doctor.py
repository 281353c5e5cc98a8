"""A damaged local database (a data file deleted or truncated, the manifests removed, the newest
manifest garbled) is named as such by every command (one line naming the table and what is wrong, exit
5, no Rust paths); ``pinembed doctor`` names it too, and ``doctor --restore`` brings each table back to
its newest readable version, counting the pins lost, which the next refresh embeds again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pinembed.store.doctor import readable

from helpers import save_image

EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")
N = 8


def pinembed(*args, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PINEMBED_DEBUG", "PINEMBED_FAILPOINT")}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_id):
    """A database of N images written in several commits (so older versions exist), kept pristine."""
    base = tmp_path_factory.mktemp("doctor")
    src = base / "media"
    for i in range(N):
        save_image(src / f"m{i}.png", colour=(30 * i, 240 - 25 * i, (70 * i) % 256))
    db = base / "db"
    r = pinembed("ingest", src, "--db", db, "--model", tiny_model_id, "--batch-size", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    return src, db


@pytest.fixture()
def copy(built, tmp_path):
    src, db = built
    out = tmp_path / "db"
    shutil.copytree(db, out)
    return src, out


def newest_data_file(db: Path) -> Path:
    return max((db / "pins.lance" / "data").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def manifests(db: Path) -> list[Path]:
    """The pins table's manifests, newest first (lance's V2 names count down)."""
    return sorted((db / "pins.lance" / "_versions").glob("*.manifest"), key=lambda p: int(p.name.split(".")[0]))


def delete_data_file(db: Path) -> str:
    newest_data_file(db).unlink()
    return "lacks its data file data/"


def truncate_data_file(db: Path) -> str:
    f = newest_data_file(db)
    os.truncate(f, f.stat().st_size // 3)
    return "truncated"


def remove_manifests(db: Path) -> str:
    for m in manifests(db):
        m.unlink()
    return "no manifest left"


def garble_manifest(db: Path) -> str:
    m = manifests(db)[0]
    m.write_bytes(os.urandom(m.stat().st_size))
    return "unreadable manifest"


DAMAGES = [delete_data_file, truncate_data_file, remove_manifests, garble_manifest]


def one_error_line(r: subprocess.CompletedProcess, said: str) -> None:
    assert r.returncode == 5, (r.returncode, r.stderr[-2000:])
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the database is damaged: the table 'pins'" in errors[0], r.stderr[-2000:]
    assert said in errors[0], errors
    assert ".cargo" not in r.stderr and "/rustc/" not in r.stderr and "Traceback" not in r.stderr
    assert "pinembed doctor" in r.stderr


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_a_damaged_table_is_named_by_the_commands_by_doctor_and_health_and_restored(copy, damage, tiny_model_id):
    src, db = copy
    said = damage(db)
    one_error_line(pinembed("stats", "--db", db), said)
    one_error_line(pinembed("related", "m0.png", "--db", db), said)
    one_error_line(pinembed("models", "--db", db), said)
    problems = readable(str(db))
    assert len(problems) == 1 and problems[0].startswith("pins: ") and said in problems[0], problems

    r = pinembed("doctor", "--db", db)
    assert r.returncode == 5 and "pins\tDAMAGED: " in r.stdout and said in r.stdout, r.stdout + r.stderr
    assert "segments\tok" in r.stdout and "'pins'" in r.stderr

    r = pinembed("doctor", "--db", db, "--restore", "--json")
    report = json.loads(r.stdout)
    pins = next(t for t in report["tables"] if t["table"] == "pins")
    if damage is remove_manifests:  # nothing to go back to
        assert r.returncode == 5 and not report["ok"] and pins["restored_to"] is None, r.stdout
        return
    assert r.returncode == 0 and report["ok"], r.stdout + r.stderr
    assert pins["restored_to"] is not None and pins["rows_after"] <= N
    if damage is garble_manifest:
        assert pins["lost"] is None  # the newest version's row count was in the garbled manifest
    else:
        assert pins["lost"] == N - pins["rows_after"]
    assert readable(str(db)) == []
    r = pinembed("stats", "--db", db, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["pins"] == pins["rows_after"], r.stdout + r.stderr
    r = pinembed("refresh", src, "--db", db, "--json")  # the pins lost are embedded again
    assert r.returncode == 0, r.stderr[-2000:]
    r = pinembed("stats", "--db", db, "--json")
    assert json.loads(r.stdout)["pins"] == N


def test_a_sound_database_is_ok(copy):
    _, db = copy
    r = pinembed("doctor", "--db", db)
    assert r.returncode == 0 and "pins\tok (8 rows" in r.stdout, r.stdout + r.stderr
    assert readable(str(db)) == []
    r = pinembed("doctor", "--db", Path(db).parent / "nothing-here")
    assert r.returncode == 2


def test_doctor_restores_a_table_on_object_storage(tmp_path, monkeypatch):
    import lancedb
    import pyarrow as pa

    from pinembed.store.doctor import restore

    from s3 import isolate, moto_server

    isolate(tmp_path, monkeypatch)
    with moto_server() as s3:
        s3.create_bucket("doctor")
        db = "s3://doctor/db.lance"
        t = lancedb.connect(db, storage_options=s3.options()).create_table("pins", pa.table({"pin_id": ["a", "b"]}))
        t.add(pa.table({"pin_id": ["c"]}))
        t.add(pa.table({"pin_id": ["d"]}))
        c = s3.client()
        objects = c.list_objects_v2(Bucket="doctor", Prefix="db.lance/pins.lance/")["Contents"]
        garbled = min((o["Key"] for o in objects if o["Key"].endswith(".manifest")),
                      key=lambda k: int(k.rsplit("/", 1)[1].split(".")[0]))  # V2 names count down: the newest
        size = next(o["Size"] for o in objects if o["Key"] == garbled)
        c.put_object(Bucket="doctor", Key=garbled, Body=os.urandom(size))
        problems = readable(db, s3.options())
        assert len(problems) == 1 and problems[0].startswith("pins: ") and "manifest" in problems[0], problems
        pins = next(r for r in restore(db, s3.options()) if r.table == "pins")
        assert pins.ok and pins.rows_after == 3 and pins.restored_to == 2, pins
        assert readable(db, s3.options()) == []
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="doctor", Prefix="db.lance/pins.lance/_versions/")["Contents"]]
        assert any(".manifest.damaged-" in k for k in keys)  # moved aside, not deleted


def test_only_lances_own_errors_read_as_damage():
    from pinembed.store.damage import what

    assert what("lance error: LanceError(IO): file size is too small, /root/.cargo/x.rs:1:2")[1].startswith("has an")
    assert what("Not found: /db/pins.lance/data/0a.lance, /rustc/x.rs:1") == ("pins", "lacks its data file data/0a.lance")
    assert what("failed to decode image: truncated") is None and what("No such file or directory") is None
