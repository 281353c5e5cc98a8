"""Idea-pin manifests are hostile input: escapes, bad JSON, missing and unsupported pages."""

from __future__ import annotations

import os

from pinembed.ingestion.discover import discover

from helpers import save_image, write, write_idea


def _problems(found):
    return {(p.pin_id, p.error) for p in found.problems}


def test_valid_manifest(tmp_path):
    save_image(tmp_path / "idea" / "a.jpg")
    save_image(tmp_path / "idea" / "sub" / "b.png")
    write_idea(tmp_path / "idea", [{"media": "a.jpg", "text": "first"}, {"media": "sub/b.png"}], title="Pasta night",
               description="Quick and easy", id="ideas/pasta-night")
    (e,) = discover(tmp_path).entries
    assert (e.pin_id, e.kind, e.title, e.description) == ("ideas/pasta-night", "idea", "Pasta night", "Quick and easy")
    assert [(p.index, p.path.name, p.kind, p.text) for p in e.pages] == [(0, "a.jpg", "image", "first"),
                                                                           (1, "b.png", "image", None)]


def test_escapes_are_refused_and_other_pages_kept(tmp_path):
    save_image(tmp_path / "outside.jpg")
    save_image(tmp_path / "idea" / "ok.jpg")
    os.symlink(tmp_path / "outside.jpg", tmp_path / "idea" / "link-out.jpg")
    pages = [{"media": "ok.jpg"}, {"media": "../outside.jpg"}, {"media": str(tmp_path / "outside.jpg")},
             {"media": "link-out.jpg"}, {"media": "sub/../../outside.jpg"}, {"media": "C:\\\\evil.jpg"},
             {"media": "missing.jpg"}, {"media": "notes.txt"}, {"media": 5}, "not an object"]
    write(tmp_path / "idea" / "notes.txt", "x")
    write_idea(tmp_path / "idea", pages)
    found = discover(tmp_path)
    idea = next(e for e in found.entries if e.kind == "idea")
    assert [p.path.name for p in idea.pages] == ["ok.jpg"]
    assert found.problems == []  # the pin lands: its unusable pages are notes on it (ledger warnings)
    errors = [(p.path.rsplit("#", 1)[1], p.error) for p in idea.notes]
    assert errors == [("page=1", "path_escape"), ("page=2", "path_escape"), ("page=3", "path_escape"),
                      ("page=4", "path_escape"), ("page=5", "path_escape"), ("page=6", "missing_page"),
                      ("page=7", "unsupported_page"), ("page=8", "bad_page"), ("page=9", "bad_page")]
    assert "outside.jpg" in [e.pin_id for e in found.entries]  # the file outside is its own pin


def test_broken_manifests_are_ledger_rows(tmp_path):
    write(tmp_path / "bad-json" / "pin.json", "{not json")
    write(tmp_path / "not-object" / "pin.json", "[1, 2]")
    write_idea(tmp_path / "no-pages", [])
    save_image(tmp_path / "many" / "a.jpg")
    write_idea(tmp_path / "many", [{"media": "a.jpg"}] * 21)
    write_idea(tmp_path / "none-usable", [{"media": "gone.jpg"}])
    write_idea(tmp_path / "bad-id", [{"media": "x.jpg"}], id="a\x00b")
    write_idea(tmp_path / "bad-title", [{"media": "x.jpg"}], title=["list"])
    found = discover(tmp_path)
    assert found.entries == []
    assert _problems(found) == {
        ("bad-json", "bad_json"), ("not-object", "bad_manifest"), ("no-pages", "no_pages"),
        ("many", "too_many_pages"), ("none-usable", "missing_page"), ("none-usable", "no_usable_pages"),
        ("bad-id", "bad_manifest"), ("bad-title", "bad_manifest"),
    }


def test_files_inside_an_idea_folder_are_not_pins_of_their_own(tmp_path):
    save_image(tmp_path / "idea" / "a.jpg")
    save_image(tmp_path / "idea" / "unused.jpg")
    write_idea(tmp_path / "idea", [{"media": "a.jpg"}])
    found = discover(tmp_path)
    assert [e.pin_id for e in found.entries] == ["idea"]
    assert [(os.path.basename(k.path), k.reason) for k in found.skips] == [("unused.jpg", "not_a_page")]
