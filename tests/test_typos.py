"""Typos fail, with a hint: the user's own commands against a missing database, a file as --db,
paths and URLs given to search, file paths given to related, and the `pins` listing."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli

from helpers import save_image

COLOURS = {"red.jpg": (220, 20, 20), "green.png": (20, 200, 40), "blue.jpg": (20, 30, 220), "sub/dark.jpg": (5, 5, 5)}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_id):
    """(media folder, database) with four ingested images."""
    base = tmp_path_factory.mktemp("typos")
    src = base / "media"
    for name, colour in COLOURS.items():
        save_image(src / name, colour=colour)
    db = str(base / "pins.lance")
    r = run("ingest", src, "--db", db, "--model", tiny_model_id)
    assert r.exit_code == 0, r.output
    return src, db


READ_COMMANDS = [
    ["stats"], ["failures"], ["models"], ["dupes"], ["pins"], ["related", "red.jpg"], ["search", "red things"],
    ["export", "out.parquet"], ["gc"],
]


@pytest.mark.parametrize("cmd", READ_COMMANDS, ids=lambda c: c[0])
def test_read_commands_on_a_missing_database_exit_2_and_create_nothing(tmp_path, cmd):
    db = tmp_path / "typo.lance"
    r = run(*cmd, "--db", db)
    assert r.exit_code == 2, r.output
    assert f"error: no database at '{db}'" in r.stderr and "hint:" in r.stderr and "pinembed ingest" in r.stderr
    assert "Traceback" not in r.output
    assert not db.exists()


def test_a_folder_without_tables_is_no_database(tmp_path):
    (tmp_path / "photos").mkdir()
    r = run("stats", "--db", tmp_path / "photos")
    assert r.exit_code == 2 and "no database at" in r.stderr
    assert os.listdir(tmp_path / "photos") == []


@pytest.mark.parametrize("cmd", [["stats"], ["ingest", "SRC"], ["gc"], ["refresh", "SRC"]], ids=lambda c: c[0])
def test_db_naming_a_plain_file_is_refused(tmp_path, cmd):
    save_image(tmp_path / "media" / "x.jpg")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    args = [str(tmp_path / "media") if a == "SRC" else a for a in cmd]
    r = run(*args, "--db", notes, "--model", "nano") if cmd[0] in ("ingest", "refresh") else run(*args, "--db", notes)
    assert r.exit_code == 2, r.output
    assert f"'{notes}' is a file, not a database" in r.stderr and "hint:" in r.stderr
    assert "Errno" not in r.output and notes.read_text() == "not a database"


@pytest.mark.parametrize("term", ["./nonexist.jpg", "photos/cat", "holiday.PNG", "clip.mp4", "~/x", "C:\\pics\\a"])
def test_search_term_that_looks_like_a_missing_file_is_an_error(built, term):
    r = run("search", term, "--db", built[1])
    assert r.exit_code == 2, r.output
    assert f"error: no such file: {term}" in r.stderr and "--text" in r.stderr


@pytest.mark.parametrize("args", [["https://example.com/a b.jpg?x=1"], ["--image", "https://example.com/a b.jpg?x=1"],
                                  ["red", "+", "0.5:s3://bucket/x.jpg"]])
def test_search_urls_are_not_supported_and_printed_as_given(built, args):
    r = run("search", *args, "--db", built[1])
    assert r.exit_code == 2, r.output
    url = args[-1].split(":", 1)[1] if args[-1].startswith("0.5:") else args[-1]
    assert "URLs are not supported" in r.stderr and url in r.stderr and "download" in r.stderr


def test_search_words_and_real_files_still_work(built):
    src, db = built
    for args in (["red things"], ["AC/DC poster"], ["--text", "./nonexist.jpg"], [src / "red.jpg"]):
        r = run("search", *args, "--db", db, "-k", "2", "--json")
        assert r.exit_code == 0, (args, r.output)
        assert len(json.loads(r.stdout)["results"]) == 2
    r = run("search", "--image", src / "nope.jpg", "--db", db)
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_related_takes_the_path_of_an_ingested_file(built, monkeypatch):
    src, db = built
    for ref in (src / "sub" / "dark.jpg", os.path.relpath(src / "sub" / "dark.jpg")):
        r = run("related", ref, "--db", db, "-k", "3", "--json")
        assert r.exit_code == 0, r.output
        ids = [x["pin_id"] for x in json.loads(r.stdout)["results"]]
        assert len(ids) == 3 and "sub/dark.jpg" not in ids
    monkeypatch.chdir(src / "sub")  # a path relative to where the user stands
    r = run("related", "dark.jpg", "red.jpg", "--db", db, "-k", "2", "--json")  # a path and a pin id: a session
    assert r.exit_code == 0, r.output
    assert not {"sub/dark.jpg", "red.jpg"} & {x["pin_id"] for x in json.loads(r.stdout)["results"]}


def test_unknown_pin_names_the_pins_command(built, tmp_path):
    stray = save_image(tmp_path / "never-ingested.jpg")
    for ref in ("no/such/pin.jpg", stray):
        r = run("related", ref, "--db", built[1])
        assert r.exit_code == 2 and "no pin with id" in r.stderr
        assert f"pinembed pins --db {built[1]}" in r.stderr


def test_pins_lists_ids_kind_uri_title_with_filters(built):
    src, db = built
    r = run("pins", "--db", db)
    assert r.exit_code == 0, r.output
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert sorted(x[0] for x in rows) == sorted(COLOURS)
    assert all(x[1] == "image" and x[2] == str(src / x[0]) for x in rows)
    r = run("pins", "--db", db, "--kind", "image", "--where", "pin_id~.jpg", "--where", "pin_id!=red.jpg", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["pins"]
    assert sorted(p["pin_id"] for p in got) == ["blue.jpg", "sub/dark.jpg"]
    assert set(got[0]) == {"pin_id", "kind", "uri", "title"}
    r = run("pins", "--db", db, "--kind", "video")
    assert r.exit_code == 0 and r.stdout == "" and "no pins" in r.stderr
    assert json.loads(run("pins", "--db", db, "--kind", "video", "--json").stdout) == {"pins": []}
    r = run("pins", "--db", db, "--where", "vector=1")
    assert r.exit_code == 2 and "cannot filter on 'vector'" in r.stderr


def test_another_embedding_space_names_refresh_model(built, other_tiny_model_id):
    src, db = built
    r = run("ingest", src, "--db", db, "--model", other_tiny_model_id)
    assert r.exit_code == 2, r.output
    assert "another embedding space" in r.stderr
    assert f"pinembed refresh SRC --db {db} --model NEW" in r.stderr


def test_where_numbers_out_of_range_or_not_ascii_exit_2_with_the_column(built):
    _, db = built
    for term, column in (("width>=3000000000", "width"), ("height<=1e20", "height"), ("width=٥", "width"),
                         ("size>=５", "size"), ("n_segments=²", "n_segments"), ("duration_s<1e300", "duration_s")):
        for cmd in (["pins"], ["related", "red.jpg"], ["search", "red things"]):
            r = run(*cmd, "--db", db, "--where", term)
            assert r.exit_code == 2 and f"error: {column} takes" in r.stderr, (cmd, term, r.output)
            assert "Traceback" not in r.output
    r = run("pins", "--db", db, "--where", "title=" + "x" * 1001)
    assert r.exit_code == 2 and "1000 characters" in r.stderr and "hint:" in r.stderr
    r = run("pins", "--db", db, *[f"--where=pin_id={i}" for i in range(1001)])
    assert r.exit_code == 2 and "at most 1000" in r.stderr
    for opt in (["-k", "٥"], ["-k", "５"], ["-k", "²"], ["--dedupe", "٠.٥"], ["--diversity", "nan"]):
        r = run("related", "red.jpg", "--db", db, *opt)
        assert r.exit_code == 2 and "ASCII" in r.output and "Traceback" not in r.output, (opt, r.output)


def test_extreme_finite_term_weights_search_like_plain_weights(built):
    _, db = built
    plain = json.loads(run("search", "red", "--db", db, "-k", "2", "--json").stdout)
    for args in (["1e308:red"], ["1e308:red", "+", "1e308:red"], ["5e-324:red"], ["1e308:red", "-", "5e-324:blue"]):
        r = run("search", *args, "--db", db, "-k", "2", "--json")
        assert r.exit_code == 0, (args, r.output)
        got = json.loads(r.stdout)
        assert [x["pin_id"] for x in got["results"]] == [x["pin_id"] for x in plain["results"]], args


def test_every_number_option_takes_ascii_digits_only(tmp_path):
    from click.testing import CliRunner

    from pinembed.cli.main import cli

    for args in (["ingest", str(tmp_path), "--fps", "٥"], ["ingest", str(tmp_path), "--batch-size", "３２"],
                 ["refresh", str(tmp_path), "--max-attempts", "²"], ["serve", "--port", "８０"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and "ASCII digits" in r.output, (args, r.output)
