"""Media on object storage: SRC is an ``s3://`` prefix on a real S3-compatible server (moto's), which
holds both the media and the database. Everything runs through the user's own commands."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import pinembed
from pinembed.cli.main import cli
from pinembed.ingestion import object_media as media_store

from helpers import save_image, truncated_jpeg, write, write_idea, write_sidecar, write_video
from s3 import isolate, moto_server

BUCKET = "pins"
SRC = f"s3://{BUCKET}/media/"
PINS = {"red.jpg", "green.png", "shoes/blue.jpg", "clip.mp4", "idea"}


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, s3) -> Path:
    """A media folder, and the same files uploaded under ``s3://pins/media/``."""
    src = tmp_path_factory.mktemp("media")
    write_sidecar(save_image(src / "red.jpg", colour=(220, 20, 20)), "Red", "a red square")
    save_image(src / "green.png", colour=(20, 200, 40))
    (src / "shoes").mkdir()
    save_image(src / "shoes" / "blue.jpg", colour=(20, 40, 220))
    write_video(src / "clip.mp4", w=64, h=48, secs=1.5, fps=8)
    idea = write_idea(src / "idea", [{"media": "p1.jpg", "text": "first"}, {"media": "p2.mp4"},
                                     {"media": "../red.jpg"}], title="Pasta night")
    save_image(idea / "p1.jpg", colour=(200, 200, 20))
    write_video(idea / "p2.mp4", w=64, h=48, secs=1.0, fps=8)
    write(idea / "notes.txt", "not a page")
    truncated_jpeg(src / "broken.jpg")
    write(src / "readme.pdf", b"%PDF-1.4 not media")
    save_image(src / ".hidden.jpg")
    client = s3.client()
    for p in sorted(src.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), BUCKET, "media/" + p.relative_to(src).as_posix())
    return src


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def vectors(idx) -> dict[str, tuple[np.ndarray, str]]:
    t = idx.to_arrow(columns=["pin_id", "vector", "content_hash"]).to_pylist()
    return {r["pin_id"]: (np.asarray(r["vector"], np.float32), r["content_hash"]) for r in t}


def test_ingest_and_refresh_a_prefix(s3, folder, tiny_model_id, tmp_path):
    db = f"s3://{BUCKET}/pins.lance"
    r = run("ingest", SRC, "--db", db, "--model", tiny_model_id, "--json", *s3.cli_options())
    assert r.exit_code == 3, r.output  # broken.jpg failed; the rest landed
    s = json.loads(r.stdout)
    assert (s["added"], s["failed"], s["warnings"]) == (5, 1, 1), s
    assert s["failures"][0]["uri"] == f"{SRC}broken.jpg"
    assert "path_escape" in {w["error"] for w in s["warning_rows"]}  # the idea pin's "../red.jpg" page
    skipped = {(f["path"], f["reason"]) for f in s["skipped_files"]}
    assert skipped == {(f"{SRC}readme.pdf", "not_media"), (f"{SRC}.hidden.jpg", "hidden"),
                       (f"{SRC}idea/notes.txt", "not_a_page")}
    assert s["sources"] == [{"root": SRC.rstrip("/"), "id_prefix": ""}]

    idx = pinembed.open_index(db, storage_options=s3.options())
    remote = vectors(idx)
    assert set(remote) == PINS  # pin ids: keys relative to the prefix
    red = idx.to_arrow(columns=["pin_id", "uri", "title", "kind", "n_segments"], where={"pin_id": "red.jpg"}).to_pylist()[0]
    assert (red["uri"], red["title"], red["kind"]) == (f"{SRC}red.jpg", "Red", "image")
    idea = idx.to_arrow(columns=["pin_id", "n_segments", "kind"], where={"pin_id": "idea"}).to_pylist()[0]
    assert idea["kind"] == "idea" and idea["n_segments"] >= 3  # two pages and their texts

    # the same folder ingested locally: the same pin ids, equal vectors and content hashes
    local_db = str(tmp_path / "local.lance")
    r = run("ingest", folder, "--db", local_db, "--model", tiny_model_id, "--json")
    assert r.exit_code == 3, r.output
    local = vectors(pinembed.open_index(local_db))
    assert set(local) == set(remote)
    for pin_id, (vec, digest) in local.items():
        np.testing.assert_allclose(remote[pin_id][0], vec, atol=1e-5, err_msg=pin_id)
        assert remote[pin_id][1] == digest, pin_id

    # a re-run: everything unchanged by size, ETag and mtime; no model, and no media object read (the
    # idea pin's pin.json is read to find its pages, as in a folder); broken.jpg is given up on
    before = media_store.reads
    r = run("refresh", SRC, "--db", db, "--max-attempts", "1", "--json", *s3.cli_options())
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["planned"]["unchanged"] == 5 and s["planned"]["given_up"] == 1, s["planned"]
    assert sum(s["planned"].values()) == 6
    assert s["model_loaded"] is False
    assert media_store.reads - before == 1  # idea/pin.json

    # change one object, delete another: the refresh sees exactly that
    client = s3.client()
    save_image(tmp_path / "green2.png", colour=(240, 240, 240))
    client.upload_file(str(tmp_path / "green2.png"), BUCKET, "media/green.png")
    client.delete_object(Bucket=BUCKET, Key="media/shoes/blue.jpg")
    r = run("refresh", SRC, "--db", db, "--max-attempts", "1", "--json", *s3.cli_options())
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    p = s["planned"]
    assert (p["changed"], p["deleted"], p["unchanged"], p["new"], p["moved"]) == (1, 1, 3, 0, 0), p
    assert s["examples"]["changed"] == ["green.png"] and s["examples"]["deleted"] == ["shoes/blue.jpg"]
    idx = pinembed.open_index(db, storage_options=s3.options())
    after = vectors(idx)
    assert set(after) == PINS - {"shoes/blue.jpg"}
    assert not np.allclose(after["green.png"][0], remote["green.png"][0])
    assert after["clip.mp4"][1] == remote["clip.mp4"][1]


def test_an_empty_prefix_is_refused_like_a_missing_folder(s3, folder, tiny_model_id):
    db = f"s3://{BUCKET}/empty.lance"
    for cmd in (["ingest", f"s3://{BUCKET}/no-such-prefix/", "--model", tiny_model_id], ["refresh", SRC + "typo/"]):
        r = run(*cmd, "--db", db, *s3.cli_options())
        assert r.exit_code == 2, r.output
        assert "holds no objects" in r.stderr and "hint:" in r.stderr, r.stderr
        assert "Traceback" not in r.output
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="empty.lance")
    assert listed.get("KeyCount", 0) == 0, listed  # nothing was created, not even the write lease


def test_entries_read_in_another_process(s3, folder):
    """The ray runner ships entries to workers: an entry's MediaStore pickles as its root and options
    and makes its own client there."""
    from pinembed.ingestion.discover import discover

    found = discover(SRC, "", s3.options())
    e = next(x for x in found.entries if x.pin_id == "red.jpg")
    copy = pickle.loads(pickle.dumps(e))
    assert copy.media._store is None and copy.media.options == s3.options()
    assert copy.media.read(copy.uri, 1 << 20) == (folder / "red.jpg").read_bytes()
    with pytest.raises(ValueError):
        copy.media.read(f"s3://{BUCKET}/pins.lance/x", 10)  # only what lies under the source prefix


def test_a_database_under_the_media_prefix_is_one_named_skip(s3, folder, tiny_model_id):
    """The database kept under the media prefix is named once as skipped; its objects are not listed
    as not_media, and a prefix holding only the database is refused like an empty one."""
    client = s3.client()
    client.upload_file(str(folder / "red.jpg"), BUCKET, "solo/red.jpg")
    db = f"s3://{BUCKET}/solo/pins.lance"
    for _ in range(2):
        r = run("ingest", f"s3://{BUCKET}/solo/", "--db", db, "--model", tiny_model_id, "--json", *s3.cli_options())
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert s["added"] + s["unchanged"] == 1
    assert [(f["path"], f["reason"]) for f in s["skipped_files"]] == [(db, "database")]
    client.delete_object(Bucket=BUCKET, Key="solo/red.jpg")
    r = run("refresh", f"s3://{BUCKET}/solo/", "--db", db, "--json", *s3.cli_options())
    assert r.exit_code == 2 and "holds no objects" in r.output, r.output


def test_an_unreachable_store_stops_the_read_stage_and_a_gone_object_is_its_ledger_row(folder, monkeypatch):
    """A read that fails because the object store went away stops the run (FaultError, exit 5), not a
    ledger row per remaining input; an object deleted since the listing is that input's ledger row."""
    from pinembed.errors import FaultError
    from pinembed.ingestion.discover import discover
    from pinembed.ingestion.read import Reader, ReadLimits
    from pinembed.ingestion.read_stage import read_entry
    from pinembed.ingestion.video_decode import VideoParams

    monkeypatch.setattr(media_store, "RETRY_S", 1.0)  # give up on the dead endpoint quickly
    with moto_server() as own:
        own.create_bucket("gone")
        client = own.client()
        for name in ("red.jpg", "green.png"):
            client.upload_file(str(folder / name), "gone", f"m/{name}")
        found = discover("s3://gone/m/", "", own.options())
        client.delete_object(Bucket="gone", Key="m/green.png")
        reader = Reader(lambda im: im, ReadLimits(), VideoParams(), None)
        by_id = {e.pin_id: e for e in found.entries}
        item, rows = read_entry(reader, by_id["green.png"])
        assert item is None and rows[0]["pin_id"] == "green.png"
    with pytest.raises(FaultError) as err:  # the server is stopped now
        read_entry(reader, by_id["red.jpg"])
    assert err.value.exit_code == 5 and "unreachable" in err.value.message
