"""A catalog's snapshot (``ingestion/catalog_snapshot.py``): with ``--version-col`` a refresh compares each
row with the row the last run left, and reads the store only for rows that differ. These tests change the
catalog (and the store behind its back) in the ways a daily export does and check that every refresh
still plans exactly what the store needs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pinembed
from pinembed.ingestion import catalog_snapshot
from pinembed.ingestion.options import IngestOptions
from pinembed.store.location import side_folder

from helpers import save_image

N = 8


@pytest.fixture()
def shop(tmp_path):
    """A Parquet catalog of N pins (media beside it, a version column, two attributes)."""
    for i in range(N + 2):
        save_image(tmp_path / "media" / f"p{i}.jpg", colour=(25 * i, 200 - 20 * i, 90), fmt="JPEG")
    rows = {"pin_id": [f"sku-{i}" for i in range(N)], "media": [f"media/p{i}.jpg" for i in range(N)],
            "category": ["shoes", "bags"] * (N // 2), "price": [10.0 + i for i in range(N)],
            "updated_at": [1] * N}
    path = tmp_path / "shop.parquet"
    pq.write_table(pa.table(rows), path)
    return path, rows


def write(path, rows):
    pq.write_table(pa.table(rows), path)


def settled(db, path) -> catalog_snapshot.Snapshot | None:
    """The snapshot the last run left, if the store is still as that run left it."""
    store = pinembed.open_index(db).store
    folder = side_folder(db, "catalogs")
    metas = list(folder.glob("*.json"))
    if len(metas) != 1:
        return None
    import json

    meta = json.loads(metas[0].read_text())
    return catalog_snapshot.load(db, str(path), meta["key"], store.pins_version())


def planned(r) -> dict:
    return {k: v for k, v in r.planned.items() if v}


def test_a_daily_export_with_rows_moved_added_removed_changed_and_repeated(shop, db, tiny_model_id):
    path, rows = shop
    idx = pinembed.open_index(db, model=tiny_model_id)
    assert idx.ingest(path, version_col="updated_at").added == N
    r = idx.refresh(path, version_col="updated_at")
    assert planned(r) == {"unchanged": N}
    snap = settled(db, path)
    assert snap is not None and snap.settled.all() and snap.n == N  # every row as its pin is stored

    # the next export: rows in another order, one new in the middle, one gone, a price changed, a new
    # version of one row, and a row repeating an id an earlier (unchanged) row has
    order = [5, 4, 0, 1, 2, 3]  # sku-6 and sku-7 are gone
    new = {k: [rows[k][i] for i in order] for k in rows}
    new["price"][1] = 99.0  # sku-4: a field, not the media
    new["updated_at"][2] = 2  # sku-0: a new version, read again
    for k, v in {"pin_id": "sku-new", "media": "media/p8.jpg", "category": "hats", "price": 5.0,
                 "updated_at": 1}.items():
        new[k].insert(3, v)
    for k in new:
        new[k].append(new[k][0])  # sku-5 again, on the last line
    write(path, new)
    r = pinembed.open_index(db).refresh(path, version_col="updated_at")
    assert planned(r) == {"new": 1, "changed": 1, "updated": 1, "unchanged": 4, "deleted": 2}
    assert (r.added, r.updated, r.deleted, r.failed) == (1, 2, 2, 1)
    store = pinembed.open_index(db).store
    fails = store.failures_by_uri()
    assert [v["error"] for u, v in fails.items() if u.endswith("#line=8")] == ["duplicate_id"]
    pins = {p["pin_id"]: p for p in store.pin_states(("pin_id", "price")).to_pylist()}
    assert sorted(pins) == sorted(["sku-0", "sku-1", "sku-2", "sku-3", "sku-4", "sku-5", "sku-new"])
    assert pins["sku-4"]["price"] == 99.0

    r = pinembed.open_index(db).refresh(path, version_col="updated_at")  # the written rows settle
    assert planned(r) == {"unchanged": 7} and (r.added, r.updated, r.deleted) == (0, 0, 0)
    r = pinembed.open_index(db).refresh(path, version_col="updated_at")
    assert planned(r) == {"unchanged": 7}
    assert settled(db, path) is not None
    fails = pinembed.open_index(db).store.failures_by_uri()
    assert [v["error"] for u, v in fails.items() if u.endswith("#line=8")] == ["duplicate_id"]  # still named


def test_a_write_the_snapshot_did_not_see_is_never_hidden_by_it(shop, tmp_path, db, tiny_model_id):
    path, rows = shop
    idx = pinembed.open_index(db, model=tiny_model_id)
    idx.ingest(path, version_col="updated_at")
    idx.refresh(path, version_col="updated_at")
    assert settled(db, path) is not None
    pinembed.open_index(db).store.delete_pins(["sku-3"])  # behind the catalog's back
    assert settled(db, path) is None  # the table moved on: the snapshot is not trusted
    r = pinembed.open_index(db, model=tiny_model_id).refresh(path, version_col="updated_at")
    assert planned(r) == {"new": 1, "unchanged": N - 1} and r.added == 1
    # another source's ingest into the same database: the catalog's rows are planned against the store
    save_image(tmp_path / "folder" / "x.jpg", colour=(1, 2, 3), fmt="JPEG")
    pinembed.open_index(db).ingest(tmp_path / "folder", options=IngestOptions(id_prefix="folder"))
    r = pinembed.open_index(db).refresh(path, version_col="updated_at")
    assert planned(r) == {"unchanged": N}
    assert pinembed.open_index(db).store.count() == N + 1


def test_a_damaged_snapshot_is_not_used(shop, db, tiny_model_id):
    path, rows = shop
    idx = pinembed.open_index(db, model=tiny_model_id)
    idx.ingest(path, version_col="updated_at")
    idx.refresh(path, version_col="updated_at")
    for f in side_folder(db, "catalogs").glob("*.arrow"):
        f.write_bytes(f.read_bytes()[:100])
    rows["price"][2] = 1.0
    write(path, rows)
    r = pinembed.open_index(db).refresh(path, version_col="updated_at")
    assert planned(r) == {"updated": 1, "unchanged": N - 1}
    assert pinembed.open_index(db).store.pins_by_id(["sku-2"])["sku-2"]["price"] == 1.0
