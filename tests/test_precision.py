"""Precision choices: auto takes int8 on a CPU when the model holds its quality in int8; int8 stays in the
same space as fp32; bad choices are clear."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pinembed.cli.main import cli
from pinembed.embedders import auto_precision, get_embedder
from pinembed.embedders.device import apply_precision, pick_precision
from pinembed.errors import UsageError
from pinembed.store import Store, same_space

from helpers import save_image


def test_int8_is_close_to_fp32_and_the_same_space(tiny, tiny_model_id):
    q = get_embedder(tiny_model_id, "cpu", "int8")
    assert q.precision == "int8" and tiny.precision == "fp32"
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(8)]
    cos = np.sum(q.embed_images(images) * tiny.embed_images(images), axis=1)
    tcos = np.sum(q.embed_texts(["a red star", "blue ring"]) * tiny.embed_texts(["a red star", "blue ring"]), axis=1)
    assert cos.min() >= 0.999 and tcos.min() >= 0.999
    assert same_space(q.identity(), tiny.identity())  # the same space, with the precision recorded
    assert q.identity()["precision"] == "int8" and {**q.identity(), "precision": "fp32"} == get_embedder(
        tiny_model_id, "cpu", "fp32").identity()


def test_precision_choices():
    assert pick_precision("cpu") == "auto" and pick_precision("cuda") == "fp16"  # auto is settled on load
    assert pick_precision("cpu", "int8") == "int8" and pick_precision("cpu", "fp32") == "fp32"
    for device, bad in (("cpu", "fp16"), ("cuda", "int8"), ("cpu", "bf16")):
        with pytest.raises(UsageError):
            pick_precision(device, bad)


def test_cli_int8_ingest_into_an_fp32_database(tmp_path, db, tiny_model_id):
    save_image(tmp_path / "a" / "x.jpg")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "a"), "--db", db, "--model", tiny_model_id, "--json"])
    assert r.exit_code == 0
    save_image(tmp_path / "a" / "y.jpg", colour=(1, 2, 3))
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "a"), "--db", db, "--precision", "int8", "--json"])
    assert r.exit_code == 0, r.output and json.loads(r.stdout)["added"] == 1
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "a"), "--db", db, "--precision", "fp16"])
    assert r.exit_code == 2 and "CUDA option" in r.stderr


def test_auto_picks_int8_for_nano_on_a_cpu_and_says_why():
    nano = get_embedder("nano", "cpu")  # auto
    v = nano.precision_check
    assert nano.precision == "int8" and v["precision"] == "int8" and "agrees with fp32" in v["why"]
    assert v["min_cosine"] >= auto_precision.MIN_COSINE and v["recall_at_10"] >= auto_precision.MIN_RECALL
    assert auto_precision.cached_verdict(nano.identity()["weights_digest"]) == v  # checked once per machine


def test_int8_nano_agrees_with_fp32_on_the_eval_world(sample_media):
    """The rule's bar on the eval world (its labels, patterns and backgrounds; world.py --split eval):
    int8 queries against the fp32 ranking, recall@10 >= 0.99, and cosine >= 0.999, for images and texts."""
    import importlib.util
    import random

    spec = importlib.util.spec_from_file_location("world", sample_media / "world.py")
    world = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(world)
    rng = random.Random(1)
    labels = sorted(rng.sample([(o, c) for o in world.OBJECTS for c in world.COLOURS], 16))
    scenes = [(o, c, *rng.choice(world.EVAL_PAIRS)) for o, c in labels for _ in range(8)]
    images = [world.still(o, c, p, b, rng) for o, c, p, b in scenes]
    texts = [world.caption(o, c, p, b, rng) for o, c, p, b in scenes[::4]]
    f, q = get_embedder("nano", "cpu", "fp32"), get_embedder("nano", "cpu", "int8")
    fi, qi = f.embed_images(images), q.embed_images(images)
    ft, qt = f.embed_texts(texts), q.embed_texts(texts)
    assert np.sum(fi * qi, axis=1).min() >= 0.999 and np.sum(ft * qt, axis=1).min() >= 0.999
    assert auto_precision.recall_at_10(fi, fi, qi, exclude_self=True) >= 0.99
    assert auto_precision.recall_at_10(fi, ft, qt, exclude_self=False) >= 0.99


def test_auto_keeps_fp32_when_int8_does_not_hold_quality(tiny_model_id, tmp_path, monkeypatch):
    assert auto_precision.verdict_of({"min_cosine": 0.9989, "recall_at_10": 1.0, "speedup": 2.0})[0] == "fp32"
    assert auto_precision.verdict_of({"min_cosine": 0.9999, "recall_at_10": 0.98, "speedup": 2.0})[0] == "fp32"
    ok, why = auto_precision.verdict_of({"min_cosine": 0.9995, "recall_at_10": 0.99, "speedup": 0.9})
    assert ok == "int8" and "0.9x" in why  # quality decides; the speed is reported
    # a verdict on file is what auto follows (here one that refuses int8 for the tiny model)
    monkeypatch.setenv("PINEMBED_CACHE_DIR", str(tmp_path / "cache"))
    tiny = get_embedder(tiny_model_id, "cpu", "fp32")
    digest = tiny.identity()["weights_digest"]
    auto_precision._save(digest, {"precision": "fp32", "why": "int8 reorders neighbours", "min_cosine": 1.0,
                                  "recall_at_10": 0.5, "speedup": 1.5})
    from pinembed.embedders.open_clip_embedder import OpenClipEmbedder

    again = OpenClipEmbedder(tiny_model_id.removeprefix("open_clip:"), device="cpu")
    assert again.precision == "fp32" and again.precision_check["why"] == "int8 reorders neighbours"


def test_an_unwritable_cache_never_fails_a_load(tiny_model_id, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PINEMBED_CACHE_DIR", str(blocker / "cache"))
    from pinembed.embedders.open_clip_embedder import OpenClipEmbedder

    emb = OpenClipEmbedder(tiny_model_id.removeprefix("open_clip:"), device="cpu")
    assert emb.precision in ("fp32", "int8") and emb.precision_check["precision"] == emb.precision


def test_the_database_records_the_precision_that_built_it(tmp_path, db):
    save_image(tmp_path / "a" / "x.jpg")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "a"), "--db", db, "--model", "nano", "--json"])
    assert r.exit_code == 0, r.output
    assert Store(db).identity["precision"] == "int8"  # nano's auto on a CPU
    save_image(tmp_path / "a" / "y.jpg", colour=(1, 2, 3))
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "a"), "--db", db, "--precision", "fp32", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 1  # fp32 answers into the same space


def test_int8_copy_leaves_the_fp32_model_alone(tiny):
    import torch

    model, dtype = apply_precision(tiny.model, "int8")
    assert dtype == torch.float32 and model is not tiny.model
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in tiny.model.modules())
