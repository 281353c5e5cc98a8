"""`pinembed refresh`: every category of the diff, dry run, failure policy, model upgrades and gc,
on real files, a real LanceDB and the bundled nano model (and a tiny random one as the upgrade)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lancedb
import numpy as np
import pytest

import pinembed
from pinembed.ingestion.refresh import RefreshOptions, refresh

from helpers import save_image, truncated_jpeg

REPO = Path(__file__).resolve().parent.parent


def consistency(db: str) -> dict:
    """Facts about the live generation that must hold after every (re)run."""
    conn = lancedb.connect(db)
    gens = conn.open_table("generations").to_arrow().to_pylist()
    live = [g for g in gens if g["state"] == "live"]
    assert len(live) == 1
    pins = conn.open_table(live[0]["pins"]).to_arrow().select(["pin_id", "n_segments"]).to_pylist()
    segs = conn.open_table(live[0]["segments"]).to_arrow().select(["pin_id"]).column("pin_id").to_pylist()
    ids = [p["pin_id"] for p in pins]
    assert len(ids) == len(set(ids)), "a pin is duplicated"
    per_pin = {i: segs.count(i) for i in set(segs)}
    assert set(per_pin) <= set(ids), "segments without a pin"
    for p in pins:
        assert per_pin.get(p["pin_id"], 0) == p["n_segments"], p["pin_id"]
    return {"pins": set(ids), "model": live[0]["model_id"]}


@pytest.fixture()
def src(tmp_path) -> Path:
    """A source folder: 8 sample images (2 with sidecars), 1 video, 1 idea pin."""
    s = tmp_path / "media"
    imgs = sorted((REPO / "sample_media" / "images" / "circle").glob("*.jpg"))[:4]
    imgs += sorted((REPO / "sample_media" / "images" / "star").glob("*.jpg"))[:4]
    for p in imgs:
        d = s / p.parent.name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, d / p.name)
    (s / "circle" / imgs[0].with_suffix(".txt").name).write_text("a blue circle")
    (s / "star" / imgs[4].with_suffix(".json").name).write_text(json.dumps({"title": "first star"}))
    shutil.copy2(REPO / "sample_media" / "videos" / "red-circle-moving-on-white.mp4", s / "clip.mp4")
    shutil.copytree(REPO / "sample_media" / "ideas" / "green-circle-ideas", s / "idea")
    return s


def _opts(**kw) -> RefreshOptions:
    return RefreshOptions(**kw)


def test_refresh_follows_every_kind_of_change(src, db, tmp_path):
    s = refresh([src], db, "nano")
    assert s.planned["new"] == 10 and s.added == 10 and s.exit_code == 0 and s.generation == 1
    before = consistency(db)
    idx = pinembed.open_index(db)
    vec_of = lambda pid: idx.store.get_pin(pid)["vector"]  # noqa: E731
    circles = sorted(p.name for p in (src / "circle").glob("*.jpg"))
    stars = sorted(p.name for p in (src / "star").glob("*.jpg"))
    moved_vec = vec_of(f"star/{stars[1]}")

    # nothing changed: no reads, no model
    s = refresh([src], db)
    assert s.planned["unchanged"] == 10 and not s.model_loaded and s.added == s.updated == 0

    # one of each kind of change
    (src / "star" / stars[1]).rename(src / "circle" / "renamed.jpg")  # moved (renamed)
    shutil.copy2(src / "star" / stars[2], src / "copy.jpg")  # copied
    (src / "star" / stars[3]).unlink()  # deleted
    save_image(src / "circle" / circles[1], colour=(10, 200, 10), size=(64, 64))  # changed bytes
    os.utime(src / "circle" / circles[1], ns=(1, 1))
    (src / "star" / f"{Path(stars[0]).stem}.json").write_text(json.dumps({"title": "renamed star"}))  # sidecar only
    manifest = json.loads((src / "idea" / "pin.json").read_text())
    manifest["title"] = "New idea title"
    (src / "idea" / "pin.json").write_text(json.dumps(manifest))  # manifest text only
    save_image(src / "new.png", colour=(1, 2, 3))  # new
    truncated_jpeg(src / "broken.jpg")  # fails

    plan = refresh([src], db, opts=_opts(dry_run=True))
    p = plan.planned
    # a moved pin is reported as moved, not also as deleted
    assert (p["new"], p["changed"], p["moved"], p["copied"], p["deleted"]) == (2, 3, 1, 1, 1)
    assert consistency(db)["pins"] == before["pins"]  # the dry run wrote nothing
    assert "star/" + stars[1] + " -> circle/renamed.jpg" in plan.examples["moved"]

    s = refresh([src], db)
    assert s.exit_code == 3 and s.failed == 1 and s.reused == 2 and s.deleted == 1
    assert s.added == 1 and s.updated == 3
    after = consistency(db)
    assert "circle/renamed.jpg" in after["pins"] and f"star/{stars[1]}" not in after["pins"]
    assert f"star/{stars[3]}" not in after["pins"] and "copy.jpg" in after["pins"] and "new.png" in after["pins"]
    assert "broken.jpg" not in after["pins"]
    idx = pinembed.open_index(db)
    assert np.allclose(idx.store.get_pin("circle/renamed.jpg")["vector"], moved_vec)  # reused, not re-embedded
    assert idx.store.get_pin(f"star/{stars[0]}", with_vector=False)["title"] == "renamed star"
    assert idx.store.get_pin("idea", with_vector=False)["title"] == "New idea title"
    assert [f["uri"] for f in idx.failures()] == [str(src / "broken.jpg")]

    # failed before: retried until max_attempts, then given up (exit 0), until --retry-failed
    s = refresh([src], db, opts=_opts(max_attempts=2))
    assert s.planned["retry"] == 1 and s.exit_code == 3
    s = refresh([src], db, opts=_opts(max_attempts=2))
    assert s.planned["given_up"] == 1 and s.exit_code == 0 and not s.model_loaded
    s = refresh([src], db, opts=_opts(max_attempts=2, retry_failed=True))
    assert s.planned["retry"] == 1 and s.exit_code == 3
    # a deleted failure leaves the ledger
    (src / "broken.jpg").unlink()
    s = refresh([src], db)
    assert s.exit_code == 0 and pinembed.open_index(db).failures() == []


def test_a_missing_source_folder_deletes_nothing(src, db):
    refresh([src], db, "nano")
    with pytest.raises(pinembed.errors.UsageError):
        refresh([src / "unmounted"], db)
    assert len(consistency(db)["pins"]) == 10


def test_pins_of_other_sources_are_left_alone(src, db, tmp_path):
    other = tmp_path / "other"
    save_image(other / "x.png")
    refresh([src], db, "nano")
    refresh([other], db, opts=_opts(ingest=_ingest(id_prefix="other")))
    assert len(consistency(db)["pins"]) == 11  # refreshing `other` did not delete src's pins
    s = refresh([src], db)
    assert s.planned["deleted"] == 0


def _ingest(**kw):
    from pinembed.ingestion.options import IngestOptions

    return IngestOptions(**kw)


def test_model_upgrade_builds_beside_the_live_generation_and_switches(src, db, tiny_model_id):
    refresh([src], db, "nano")
    idx = pinembed.open_index(db)
    assert [m["state"] for m in idx.models()] == ["live"]
    assert len(idx.related("clip.mp4", k=3)) == 3  # this reader now reads generation 1
    s = refresh([src], db, tiny_model_id)
    assert s.planned["stale"] == 10 and s.switched and s.generation == 2
    assert consistency(db)["model"] == tiny_model_id
    reader = pinembed.open_index(db)
    assert [(m["generation"], m["state"]) for m in reader.models()] == [(1, "retired"), (2, "live")]
    assert reader.store.identity["model_id"] == tiny_model_id and reader.store.count() == 10
    assert idx.store.identity["model_id"] == "nano"  # a reader that was reading keeps its generation ...
    assert len(idx.related("clip.mp4", k=3)) == 3
    idx.reload()
    assert idx.store.identity["model_id"] == tiny_model_id  # ... until it reloads
    assert len(reader.related("clip.mp4", k=3)) == 3
    assert refresh([src], db).planned["unchanged"] == 10  # the new live generation is refreshed normally
    assert reader.gc() == [1]
    assert [m["generation"] for m in reader.models()] == [2]
    assert "pins.lance" not in os.listdir(db) and "pins_g2.lance" in os.listdir(db)


def test_changed_embedding_settings_re_embed_exactly_the_pins_they_affect(src, db):
    from dataclasses import replace

    from pinembed.ingestion.options import IngestOptions

    refresh([src], db, "nano")
    base = IngestOptions()
    s = refresh([src], db, opts=_opts(ingest=replace(base, video=replace(base.video, max_fps=0.5)), dry_run=True))
    assert sorted(s.examples["changed"]) == ["clip.mp4", "idea"]  # the idea pin has a video page
    s = refresh([src], db, opts=_opts(ingest=replace(base, idea_text_weight=0.2)))
    assert s.planned["changed"] == 1 and s.examples["changed"] == ["idea"] and s.updated == 1
    s = refresh([src], db, opts=_opts(ingest=replace(base, text_weight=0.3)))
    with_text = [p.relative_to(src).as_posix() for p in src.rglob("*.jpg")
                 if p.with_suffix(".txt").exists() or p.with_suffix(".json").exists()]
    assert sorted(s.examples["changed"]) == sorted([*with_text, "idea"])  # idea: back to the default weight
    assert refresh([src], db, opts=_opts(ingest=replace(base, text_weight=0.3))).planned["changed"] == 0


def test_a_long_lived_reader_sees_another_processes_writes(src, db):
    import time

    from pinembed.store import tables as store_db

    refresh([src], db, "nano")
    reader = pinembed.open_index(db)
    assert reader.store.count() == 10
    save_image(src / "late.png", colour=(5, 250, 5))
    refresh([src], db)  # another writer (its own Store)
    time.sleep(store_db.READ_CONSISTENCY.total_seconds() + 0.2)
    assert reader.store.count() == 11 and reader.related("late.png", k=1)
