"""Catalogs in: tables of pins (Parquet, CSV, JSON Lines) with their own ids, typed attributes and media
anywhere (relative, absolute, http(s) with an allow-list), ingested and refreshed incrementally; every
bad row is a ledger row naming its line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import pinembed
from pinembed.errors import UsageError
from pinembed.ingestion.options import IngestOptions

from helpers import save_image

EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


def run(*args, timeout: int = 180):
    env = {k: v for k, v in os.environ.items() if k != "PINEMBED_FAILPOINT"}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def summary(p) -> dict:
    assert p.returncode in (0, 3), p.stdout + p.stderr
    return json.loads(p.stdout)


def jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 32), colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def shop(tmp_path):
    """A Parquet catalog of 6 pins whose media lie beside it, with typed attributes."""
    for i in range(6):
        save_image(tmp_path / "media" / f"p{i}.jpg", colour=(40 * i, 200 - 30 * i, 90), fmt="JPEG")
    rows = {
        "pin_id": [f"sku-{i}" for i in range(6)],
        "media": [f"media/p{i}.jpg" for i in range(6)],
        "title": [f"Shoe {i}" for i in range(6)],
        "category": ["shoes", "shoes", "bags", "shoes", "hats", "bags"],
        "price": [19.5, 80.0, 45.0, 12.0, 30.0, 99.0],
        "shoppable": [True, True, False, True, False, True],
        "tags": [["red"], ["blue", "sale"], [], ["sale"], ["wool"], ["red", "sale"]],
        "updated_at": [1, 1, 1, 1, 1, 1],
    }
    path = tmp_path / "shop.parquet"
    pq.write_table(pa.table(rows), path)
    return path, rows


def rewrite(path, rows):
    pq.write_table(pa.table(rows), path)


def test_a_parquet_catalog_lands_with_its_ids_and_typed_attributes(shop, db, tiny_model_id):
    path, _ = shop
    s = summary(run("ingest", path, "--db", db, "--model", tiny_model_id, "--json"))
    assert (s["added"], s["failed"]) == (6, 0)
    idx = pinembed.open_index(db)
    attrs = {k: str(v) for k, v in idx.store.attributes().items()}
    assert attrs == {"category": "string", "price": "double", "shoppable": "bool", "tags": "list<item: string>",
                     "updated_at": "int64"}
    got = {r["pin_id"]: r for r in idx.store.pin_states(("pin_id", "uri", "title", "price", "tags")).to_pylist()}
    assert got["sku-1"]["title"] == "Shoe 1" and got["sku-1"]["price"] == 80.0
    assert got["sku-1"]["tags"] == ["blue", "sale"]
    assert got["sku-1"]["uri"] == str(path.parent / "media" / "p1.jpg")
    again = summary(run("ingest", path, "--db", db, "--json"))
    assert (again["unchanged"], again["added"], again["model_loaded"]) == (6, 0, False)


def test_refresh_updates_fields_without_reading_media_and_deletes_rows_that_are_gone(shop, db, tiny_model_id):
    path, rows = shop
    idx = pinembed.open_index(db, model=tiny_model_id)
    assert idx.ingest(path, version_col="updated_at").added == 6
    before = idx.store.pins_by_id(["sku-0"])["sku-0"]["vector"]
    rows["price"][0] = 25.0  # an attribute changed, the media did not
    rows["title"][2] = "A new title"
    for k in rows:
        rows[k] = rows[k][:5]  # sku-5 is gone
    rewrite(path, rows)
    idx = pinembed.open_index(db)  # the model is not loaded unless something needs embedding
    s = idx.ingest(path, version_col="updated_at")
    assert (s.fields_updated, s.unchanged, s.model_loaded) == (2, 3, False)  # ingest never deletes
    assert len(idx.store.pin_states(("pin_id",))) == 6
    r = summary(run("refresh", path, "--db", db, "--version-col", "updated_at", "--json"))
    planned = {k: v for k, v in r["planned"].items() if v}
    assert planned == {"unchanged": 5, "deleted": 1}
    assert (r["deleted"], r["model_loaded"]) == (1, False)
    idx = pinembed.open_index(db)
    pin = idx.store.pins_by_id(["sku-0"])["sku-0"]
    assert pin["price"] == 25.0 and list(pin["vector"]) == list(before)  # the stored vector was kept
    assert set(idx.store.pin_states(("pin_id",)).column("pin_id").to_pylist()) == {f"sku-{i}" for i in range(5)}
    rows["updated_at"][1] = 2  # a new version: the row is read and embedded again
    rewrite(path, rows)
    r = idx.refresh(path, version_col="updated_at")
    assert (r.planned["changed"], r.updated, r.model_loaded) == (1, 1, True)


def test_every_bad_row_is_a_ledger_row_naming_its_line(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "a.jpg", fmt="JPEG")
    save_image(tmp_path / "b.jpg", colour=(10, 200, 10), fmt="JPEG")
    (tmp_path / "cat.csv").write_text(
        "pin_id,media,title,price\n"
        "ok-1,a.jpg,First,10\n"
        "broken,a.jpg,too,many,fields\n"        # line 3: malformed
        "\"bad\x01id\",b.jpg,Ctl,3\n"            # line 4: a control character in the id
        "ok-1,b.jpg,Again,4\n"                   # line 5: a duplicate id
        "ok-2,missing.jpg,Gone,5\n"              # line 6: media that is not there
        "ok-3,ftp://host/x.jpg,Ftp,6\n"          # line 7: a scheme no reader takes
        ",b.jpg,No id,7\n"                       # line 8: no id
        "ok-4,b.jpg,Fine,8\n"
    )
    p = run("ingest", tmp_path / "cat.csv", "--db", db, "--model", tiny_model_id, "--json")
    assert p.returncode == 3, p.stderr
    s = json.loads(p.stdout)
    assert (s["added"], s["failed"]) == (2, 6)
    by_line = {f["uri"].rsplit("#line=", 1)[1]: f for f in s["failures"] if "#line=" in f["uri"]}
    assert {k: by_line[k]["error"] for k in by_line} == {
        "3": "bad_line", "4": "bad_id", "5": "duplicate_id", "6": "not_found", "7": "bad_uri", "8": "bad_id"}
    assert "line 5" in by_line["5"]["message"] and "line 2" in by_line["5"]["message"]
    failures = run("failures", "--db", db, "--json")
    assert failures.returncode == 0 and "duplicate_id" in failures.stdout


def test_a_missing_id_column_is_a_usage_error_before_anything_is_written(tmp_path, db, tiny_model_id):
    (tmp_path / "cat.jsonl").write_text('{"id": "a", "media": "a.jpg"}\n')
    p = run("ingest", tmp_path / "cat.jsonl", "--db", db, "--model", tiny_model_id)
    assert p.returncode == 2 and "no id column 'pin_id'" in p.stderr and "--id-col" in p.stderr
    assert not os.path.exists(db)


def test_jsonl_rows_with_a_list_of_media_are_idea_pins_and_python_maps_columns(tmp_path, db, tiny_model_id):
    for i in range(3):
        save_image(tmp_path / f"page{i}.jpg", colour=(60 * i, 90, 200), fmt="JPEG")
    (tmp_path / "cat.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": 7, "pages": ["page0.jpg", "page1.jpg"], "name": "Two pages", "texts": ["one", "two"], "lang": "en"},
        {"id": 8, "pages": "page2.jpg", "name": "A photo", "lang": "de"},
    ]) + "\n")
    idx = pinembed.open_index(db, model=tiny_model_id)
    s = idx.ingest(tmp_path / "cat.jsonl", id_col="id", media_col="pages", title_col="name",
                   page_text_col="texts")
    assert (s.added, s.failed) == (2, 0)
    pins = idx.store.pins_by_id(["7", "8"])
    assert pins["7"]["kind"] == "idea" and pins["7"]["title"] == "Two pages" and pins["7"]["lang"] == "en"
    assert pins["8"]["kind"] == "image" and pins["8"]["lang"] == "de"
    assert {s["kind"] for s in idx.store.segments_of(["7"])} == {"page", "text"}


def test_catalog_ids_never_take_over_another_sources_pins(shop, tmp_path, db, tiny_model_id):
    path, _ = shop
    folder = tmp_path / "folder"
    save_image(folder / "x.jpg", fmt="JPEG")
    idx = pinembed.open_index(db, model=tiny_model_id)
    assert idx.ingest(folder).added == 1
    p = run("ingest", path, "--db", db)
    assert p.returncode == 2 and "--id-prefix" in p.stderr  # both would own the ids without a prefix
    s = idx.ingest(path, IngestOptions(id_prefix="shop"))
    assert s.added == 6
    ids = set(idx.store.pin_states(("pin_id",)).column("pin_id").to_pylist())
    assert "x.jpg" in ids and "shop/sku-0" in ids


def test_an_attribute_whose_type_changes_is_an_error_naming_the_column(shop, db, tiny_model_id):
    path, rows = shop
    assert pinembed.open_index(db, model=tiny_model_id).ingest(path).added == 6
    rows["price"] = [str(v) for v in rows["price"]]
    rewrite(path, rows)
    p = run("ingest", path, "--db", db)
    assert p.returncode == 2 and "'price'" in p.stderr and "float" in p.stderr


def test_http_media_are_fetched_only_from_allowed_hosts(tmp_path, db, tiny_model_id, media_server):
    good = media_server.add("/img/a.jpg", body=jpeg((200, 10, 10)), content_type="image/jpeg")
    missing = media_server.url("/img/nope.jpg")
    page = media_server.add("/page", body=b"<html></html>", content_type="text/html")
    other = media_server.url("/img/a.jpg", host="localhost")
    (tmp_path / "cat.csv").write_text("pin_id,media\n" + "\n".join(
        f"{i},{u}" for i, u in enumerate([good, missing, page, other])) + "\n")
    p = run("ingest", tmp_path / "cat.csv", "--db", db, "--model", tiny_model_id, "--json",
            "--allow-host", f"127.0.0.1:{media_server.port}", "--http-timeout", "5")
    s = json.loads(p.stdout)
    assert p.returncode == 3 and (s["added"], s["failed"]) == (1, 3)
    errors = {f["pin_id"]: f["error"] for f in s["failures"]}
    assert errors == {"1": "not_found", "2": "not_media", "3": "host_not_allowed"}
    assert media_server.hits("/img/a.jpg") >= 1  # and nothing was asked of the host not allowed


def test_refresh_gives_up_on_a_url_that_keeps_failing(tmp_path, db, tiny_model_id, media_server):
    good = media_server.add("/a.jpg", body=jpeg((10, 200, 10)), content_type="image/jpeg")
    gone = media_server.url("/gone.jpg")  # 404
    (tmp_path / "cat.csv").write_text(f"pin_id,media\nok,{good}\nbad,{gone}\n")
    idx = pinembed.open_index(db, model=tiny_model_id)
    hosts = [f"127.0.0.1:{media_server.port}"]
    for _ in range(3):  # --max-attempts 3
        s = idx.refresh(tmp_path / "cat.csv", allow_hosts=hosts)
        assert s.failed == 1 and s.failures[0]["error"] == "not_found"
    asked = media_server.hits("/gone.jpg")
    s = idx.refresh(tmp_path / "cat.csv", allow_hosts=hosts)
    assert (s.failed, s.given_up, s.planned["given_up"], s.planned["unchanged"]) == (0, 1, 1, 1)
    assert media_server.hits("/gone.jpg") == asked  # not fetched again
    assert [f["attempts"] for f in idx.failures()] == [3]


def test_a_catalog_on_object_storage_with_media_beside_it(tmp_path, db, tiny_model_id, monkeypatch):
    from s3 import isolate, moto_server

    isolate(tmp_path, monkeypatch)
    with moto_server() as s3:
        s3.create_bucket("pins")
        client = s3.client()
        for i in range(3):
            client.put_object(Bucket="pins", Key=f"cat/imgs/{i}.jpg", Body=jpeg((70 * i, 40, 160)))
        buf = io.BytesIO()
        pq.write_table(pa.table({"pin_id": ["a", "b", "c"], "board": ["x", "y", "x"],
                                 "media": ["imgs/0.jpg", "s3://pins/cat/imgs/1.jpg", "imgs/2.jpg"]}), buf)
        client.put_object(Bucket="pins", Key="cat/shop.parquet", Body=buf.getvalue())
        idx = pinembed.open_index(db, model=tiny_model_id, storage_options=s3.options())
        s = idx.ingest("s3://pins/cat/shop.parquet")
        assert (s.added, s.failed) == (3, 0)
        uris = {r["pin_id"]: r["uri"] for r in idx.store.pin_states(("pin_id", "uri")).to_pylist()}
        assert uris == {"a": "s3://pins/cat/imgs/0.jpg", "b": "s3://pins/cat/imgs/1.jpg", "c": "s3://pins/cat/imgs/2.jpg"}
        again = idx.refresh("s3://pins/cat/shop.parquet")  # each media's ETag and size from a HEAD: nothing read
        assert again.planned["unchanged"] == 3 and not again.model_loaded
        client.put_object(Bucket="pins", Key="cat/imgs/2.jpg", Body=jpeg((1, 2, 3)))  # new content, new ETag
        third = idx.refresh("s3://pins/cat/shop.parquet")
        assert (third.planned["changed"], third.updated) == (1, 1)


def test_a_folder_of_tables_is_one_catalog_and_ids_repeated_across_its_files_are_named(tmp_path, db, tiny_model_id):
    cat = tmp_path / "catalog"
    for i in range(3):
        save_image(cat / "media" / f"{i}.jpg", colour=(90 * i, 30, 30), fmt="JPEG")
    (cat / "a.csv").write_text("pin_id,media,board\np0,media/0.jpg,home\np1,media/1.jpg,food\n")
    (cat / "b.jsonl").write_text('{"pin_id": "p1", "media": "media/2.jpg", "board": "x"}\n'
                                 '{"pin_id": "p2", "media": null, "board": "y"}\n'
                                 '{"pin_id": "p3", "media": "media/2.jpg", "board": "food"}\n')
    from pinembed.ingestion.catalog import is_catalog

    assert not is_catalog(cat)  # a folder holding media is walked as media, its tables skipped as not media
    with pytest.raises(UsageError, match="apply to catalogs"):
        pinembed.open_index(db, model=tiny_model_id).ingest(cat, attr_cols=["board"])
    for p in sorted((cat / "media").iterdir()):
        p.rename(tmp_path / p.name)
    (cat / "media").rmdir()
    for f in ("a.csv", "b.jsonl"):
        (cat / f).write_text((cat / f).read_text().replace("media/", "../"))
    assert is_catalog(cat)
    idx = pinembed.open_index(db, model=tiny_model_id)
    s = idx.ingest(cat)
    assert (s.added, s.failed) == (3, 2)
    errors = sorted((f["pin_id"], f["error"], f["uri"].rsplit("/", 1)[1]) for f in s.failures)
    assert errors == [("p1", "duplicate_id", "b.jsonl#line=1"), ("p2", "no_media", "b.jsonl#line=2")]
    boards = {r["pin_id"]: r["board"] for r in idx.store.pin_states(("pin_id", "board")).to_pylist()}
    assert boards == {"p0": "home", "p1": "food", "p3": "food"}


def test_serve_shows_a_catalog_pins_media_beside_the_catalog_and_filters_on_its_attributes(shop, tmp_path, db,
                                                                                            tiny_model_id):
    from test_serve_http import Server

    path, _ = shop
    outside = save_image(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "far.jpg", fmt="JPEG")
    extra = tmp_path / "extra.csv"
    extra.write_text(f"pin_id,media,category\nfar,{outside},shoes\n")
    idx = pinembed.open_index(db, model=tiny_model_id)
    assert idx.ingest(path).added == 6 and idx.ingest(extra, IngestOptions(id_prefix="x")).added == 1
    with Server(db) as api:
        r = api.get("/api/media", params={"pin": "sku-1"})
        assert r.status_code == 200 and r.content == (path.parent / "media" / "p1.jpg").read_bytes()
        assert api.get("/api/media", params={"pin": "x/far"}).status_code == 404  # named elsewhere: not served
        body = api.get("/api/related", params={"pin": "sku-0", "k": 10,
                                               "where": "category = 'shoes' AND price < 50"}).json()
        assert {c["pin_id"] for c in body["results"]} == {"sku-3"}
        assert api.get("/api/pin", params={"pin": "sku-1"}).json()["attributes"]["category"] == "shoes"


def test_id_lookup_finds_exactly_the_stored_ids():
    import numpy as np

    from pinembed.ingestion.id_lookup import IdLookup, id_hashes

    stored = pa.array([f"shop/{i}" for i in range(5000)] + ["", "ünïcode/ø", "a" * 600])
    look = IdLookup(stored.slice(0))
    asked = pa.array(["shop/42", "shop/4999", "nope", "", "ünïcode/ø", "a" * 600, "a" * 599, "shop/42 "])
    rows, found = look.find(asked.slice(0))
    assert found.tolist() == [True, True, False, True, True, True, False, False]
    assert rows[found].tolist() == [42, 4999, 5000, 5001, 5002]
    sliced = stored.slice(10, 3)  # an array that starts inside its buffers
    assert look.find(sliced)[0].tolist() == [10, 11, 12]
    assert len(set(id_hashes(stored).tolist())) == len(stored)
    assert np.array_equal(id_hashes(stored.slice(100, 5)), id_hashes(stored)[100:105])


def test_a_catalog_ingest_killed_mid_run_is_finished_by_the_next_with_no_duplicates(tmp_path, db, tiny_model_id):
    for i in range(10):
        save_image(tmp_path / f"{i}.jpg", colour=(20 * i, 100, 200 - 15 * i), fmt="JPEG")
    (tmp_path / "cat.csv").write_text("pin_id,media,board\n" + "".join(f"k{i},{i}.jpg,b{i % 3}\n" for i in range(10)))
    env = {k: v for k, v in os.environ.items() if k != "PINEMBED_FAILPOINT"}
    killed = subprocess.run([EXE, "ingest", tmp_path / "cat.csv", "--db", db, "--model", tiny_model_id,
                             "--batch-size", "2"], capture_output=True, text=True, timeout=180,
                            env={**env, "PINEMBED_FAILPOINT": "batch:2"})
    assert killed.returncode == -9  # SIGKILL after the second batch was committed
    first = pinembed.open_index(db).store.pin_states(("pin_id",)).num_rows
    assert 0 < first < 10
    s = summary(run("refresh", tmp_path / "cat.csv", "--db", db, "--json"))
    assert (s["added"], s["planned"]["unchanged"], s["failed"]) == (10 - first, first, 0)
    ids = pinembed.open_index(db).store.pin_states(("pin_id", "board")).to_pylist()
    assert sorted(r["pin_id"] for r in ids) == sorted(f"k{i}" for i in range(10))  # each once
