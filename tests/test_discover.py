"""Walking a source folder: ids, kinds, hidden files, symlink loops, sidecars, odd names."""

from __future__ import annotations

import os

import pytest

from pinembed.errors import UsageError
from pinembed.ingestion.discover import discover

from helpers import save_image


def test_walk_ids_kinds_and_skips(tmp_path):
    save_image(tmp_path / "a.JPG")
    save_image(tmp_path / "nested" / "deeper" / "b.png")
    save_image(tmp_path / "nested" / "ünïcødé 🎨.webp", fmt="WEBP")
    save_image(tmp_path / ".hidden.jpg")
    save_image(tmp_path / ".cache" / "c.jpg")
    (tmp_path / "clip.MP4").write_bytes(b"\0")
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "a.txt").write_text("Title\nDescription")
    (tmp_path / "idea").mkdir()
    (tmp_path / "idea" / "pin.json").write_text('{"title": "T", "pages": [{"media": "page1.jpg", "text": "p"}]}')
    save_image(tmp_path / "idea" / "page1.jpg")
    found = discover(tmp_path)
    ids = {e.pin_id: e for e in found.entries}
    assert sorted(ids) == ["a.JPG", "clip.MP4", "idea", "nested/deeper/b.png", "nested/ünïcødé 🎨.webp"]
    assert [ids[i].kind for i in ("a.JPG", "clip.MP4", "idea")] == ["image", "video", "idea"]
    assert ids["idea"].title == "T" and [p.path.name for p in ids["idea"].pages] == ["page1.jpg"]
    assert ids["a.JPG"].sidecar == tmp_path / "a.txt" and ids["a.JPG"].sidecar_sig
    # every file is accounted for: a.txt is a sidecar; the rest is named with its reason
    assert sorted((os.path.basename(k.path), k.reason) for k in found.skips) == [
        (".cache", "hidden"), (".hidden.jpg", "hidden"), ("notes.md", "not_media")]
    assert found.problems == []


def test_symlink_loops_are_survived(tmp_path):
    save_image(tmp_path / "sub" / "x.jpg")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "sub" / "x.jpg", tmp_path / "link.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "dangling.jpg")
    found = discover(tmp_path)
    assert [e.pin_id for e in found.entries] == ["link.jpg", "sub/x.jpg"]
    assert [(p.pin_id, p.error) for p in found.problems] == [("dangling.jpg", "unreadable")]


def test_id_prefix_and_signature_change(tmp_path):
    p = save_image(tmp_path / "x.jpg")
    e1 = discover(tmp_path, id_prefix="/shop/").entries[0]
    assert e1.pin_id == "shop/x.jpg"
    (tmp_path / "x.json").write_text('{"title": "new"}')
    e2 = discover(tmp_path, id_prefix="shop").entries[0]
    assert e2.source_sig != e1.source_sig and e2.uri == str(p)


def test_non_utf8_name_is_a_problem_not_a_crash(tmp_path):
    name = b"caf\xe9.jpg"
    save_image(tmp_path / "ok.jpg")
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as f:
        f.write((tmp_path / "ok.jpg").read_bytes())
    found = discover(tmp_path)
    assert [e.pin_id for e in found.entries] == ["ok.jpg"]
    assert found.problems[0].error == "bad_name" and "caf" in found.problems[0].pin_id


def test_missing_source_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        discover(tmp_path / "nope")


def test_a_database_inside_the_source_is_one_named_skip(tmp_path, tiny_model_id):
    """`pinembed ingest . --db pins.lance`: the database's own files are neither pins nor a pile of
    not_media skips; the folder is named once, with the reason, in the first run and the re-run."""
    import json

    from click.testing import CliRunner

    from pinembed.cli.main import cli

    save_image(tmp_path / "a.jpg")
    db = tmp_path / "pins.lance"
    for _ in range(2):
        r = CliRunner().invoke(cli, ["ingest", str(tmp_path), "--db", str(db), "--model", tiny_model_id, "--json"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["added"] + out["unchanged"] == 1
        assert out["skipped_files"] == [] or [f["reason"] for f in out["skipped_files"]] == ["database"]
    assert out["skipped_files"] == [{"path": str(db), "reason": "database",
                                     "message": out["skipped_files"][0]["message"]}]
    assert "--db" in out["skipped_files"][0]["message"]
