"""The committed sample media: labelled, small, reproducible by its own script, and ingestible."""

from __future__ import annotations

import csv
import importlib.util
import json

from click.testing import CliRunner

from pinembed.cli.main import cli


def _labels(folder):
    with open(folder / "labels.csv") as f:
        return list(csv.DictReader(f))


def test_labels_match_files_and_size(sample_media):
    rows = _labels(sample_media)
    kinds = [r["kind"] for r in rows]
    assert (kinds.count("image"), kinds.count("video"), kinds.count("idea")) == (48, 8, 4)
    assert all((sample_media / r["pin_id"]).exists() for r in rows)
    assert {p.suffix for p in (sample_media / "videos").iterdir()} == {".mp4", ".webm", ".json"}
    media = sum(p.stat().st_size for p in sample_media.rglob("*") if p.is_file() and "nano" not in p.parts)
    assert media < 8 * 1024 * 1024
    assert (sample_media / "nano" / "open_clip_model.safetensors").stat().st_size < 20 * 1024 * 1024


def test_generator_reproduces_the_set(sample_media, tmp_path):
    spec = importlib.util.spec_from_file_location("make_samples", sample_media / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.make(tmp_path) == 60
    assert _labels(tmp_path) == _labels(sample_media)
    assert sorted(p.name for p in (tmp_path / "images").rglob("*")) == sorted(
        p.name for p in (sample_media / "images").rglob("*"))


def test_sample_media_ingests_cleanly(sample_media, db, tiny_model_id):
    r = CliRunner().invoke(cli, ["ingest", str(sample_media), "--db", db, "--model", tiny_model_id, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["added"], out["failed"]) == (60, 0)
    for pin in ("images/star/red-star-on-white.jpg", "videos/red-circle-moving-on-white.mp4", "ideas/blue-star-ideas"):
        r = CliRunner().invoke(cli, ["related", pin, "--db", db, "-k", "5"])
        assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 5


def test_nano_related_pins_share_object_or_colour(sample_media, tmp_path):
    """The bundled model on the demo set: most related pins share the query's object or colour."""
    import pinembed

    idx = pinembed.open_index(str(tmp_path / "nano.lance"), model="nano")
    assert idx.ingest(sample_media).added == 60 and idx.embedder.model_id == "nano"
    rows = {r["pin_id"]: r for r in _labels(sample_media)}
    shared = []
    for pin_id in rows:
        for r in idx.related(pin_id, k=5):
            a, b = rows[pin_id], rows[r.pin_id]
            shared.append(a["object"] == b["object"] or a["colour"] == b["colour"])
    assert sum(shared) / len(shared) >= 0.8
    top = idx.search_text("a yellow star", k=3)
    assert sum(rows[r.pin_id]["label"] == "yellow star" for r in top) >= 2
