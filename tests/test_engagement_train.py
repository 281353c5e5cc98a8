"""`pinembed train --pairs`: a tiny fine-tune on a tiny generated engagement world raises held-out recall,
is deterministic for a seed, writes a model that `refresh --model` switches the database to, and
refuses what it cannot train on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pinembed.cli.main import cli
from pinembed.training.engagement_train import PairTrainConfig, train_on_pairs

REPO = Path(__file__).resolve().parent.parent


def _world_module():
    spec = importlib.util.spec_from_file_location("engagement_world", REPO / "sample_media" / "engagement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 100-pin engagement world on 12 scenes (images, videos, idea pins; about 200 pairs) ingested with
    the bundled nano model."""
    import pinembed

    root = tmp_path_factory.mktemp("engagement")
    summary = _world_module().make(root / "src", seed=3, pins=100, users=8, saves_per_board=8, scenes=12)
    db = str(root / "pins.lance")
    pinembed.open_index(db, model="nano").ingest(root / "src")
    return root / "src", db, summary


def test_the_world_pairs_are_not_content_labels(world):
    src, _, summary = world
    assert summary["pairs"] > 100 and set(summary["kinds"]) == {"image", "video", "idea"} and summary["scenes"] == 12
    assert summary["same_label_share"] < 0.15  # boards gather scenes and patterns, not objects and colours
    header = (src / "pairs.csv").read_text().splitlines()[0]
    assert header == "query_pin_id,engaged_pin_id,weight,timestamp,action"


# two 3-epoch runs of nano on a cached frozen trunk: ~7 s here, so it runs in make test
def test_fine_tune_raises_heldout_recall_deterministically(world, tmp_path):
    src, db, _ = world
    cfg = PairTrainConfig(pairs=str(src / "pairs.csv"), db=db, out=str(tmp_path / "a"), epochs=3, batch_size=32,
                          lr=3e-4, patience=4, seed=5)
    r = train_on_pairs(cfg)
    assert r.pins > 30 and r.train_pairs > r.heldout_pairs > 0
    assert max(r.recall_at_10[1:]) > r.recall_at_10[0] and r.best_epoch > 0
    meta = json.loads((tmp_path / "a" / "training.json").read_text())
    assert meta["seed"] == 5 and meta["recall_at_10"] == r.recall_at_10
    again = train_on_pairs(PairTrainConfig(**{**vars(cfg), "out": str(tmp_path / "b")}))
    assert again.losses == r.losses and again.recall_at_10 == r.recall_at_10

    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / d / "open_clip_model.safetensors")) for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_fine_tune_then_refresh_switches_the_database(world, tmp_path):
    src, db, _ = world
    out = tmp_path / "m"
    r = CliRunner().invoke(cli, ["train", "--pairs", str(src / "pairs.csv"), "--db", db, "--out", str(out),
                                 "--epochs", "1", "--batch-size", "32", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["model_id"] == f"open_clip:local-dir:{out.resolve()}" and len(res["recall_at_10"]) == 2
    r = CliRunner().invoke(cli, ["refresh", str(src), "--db", db, "--model", res["model_id"], "--json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["eval", "--db", db, "--pairs", str(src / "pairs.csv"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["pairs"] > 100


def test_train_refuses_pairs_it_cannot_use(world, tmp_path):
    _, db, _ = world
    (tmp_path / "ghosts.csv").write_text("query_pin_id,engaged_pin_id\nx,y\nz,w\n")
    r = CliRunner().invoke(cli, ["train", "--pairs", str(tmp_path / "ghosts.csv"), "--db", db, "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "0 pairs have both pins in the database" in r.stderr
    (tmp_path / "bad.csv").write_text("query_pin_id,engaged_pin_id,timestamp\na,b,soon\n")
    r = CliRunner().invoke(cli, ["train", "--pairs", str(tmp_path / "bad.csv"), "--db", db, "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "line 2: timestamp 'soon'" in r.stderr
    r = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "give --data" in r.output


def test_training_embeds_pins_as_they_are_stored(world):
    """Every pin's vector under the initial model, as training pools it (idea pins with their texts at the
    ingest weight, the frozen trunk cached), is the vector ingest stored: what is trained is searched."""
    from pinembed.store import Store
    from pinembed.training.model_io import open_model as _model
    from pinembed.training.pair_tuner import PairTuner as _Tuner
    from pinembed.training.pin_media import load_pin_media
    from pinembed.training.train import TrainConfig

    _, db, _ = world
    store = Store(db)
    model_id = store.identity["model_id"]  # nano, or a fine-tune another test switched the database to
    model, preprocess, tokenizer, _, _ = _model(TrainConfig(data="", out="", init=model_id))
    ids = store.pin_states(("pin_id",)).column("pin_id").to_pylist()
    media = load_pin_media(store, ids, preprocess, 64)
    tuner = _Tuner(model, tokenizer, media, PairTrainConfig(pairs="", db=db, out="", init=model_id))
    assert tuner.trunk == 2 and {"image", "video", "idea"} <= set(media.kinds.values())
    stored = {r["pin_id"]: r["vector"] for r in store.pins_with(tuner.pins[:1000], ("pin_id",), with_vector=True)}
    for pin in tuner.pins:
        assert float(tuner.initial[pin] @ stored[pin]) > 0.999, (pin, media.kinds[pin])


def test_extra_negatives_are_database_pins_never_known_positives_nor_held_out_only(world):
    """Each step adds pins of the database outside the batch as negatives (the full ranking puts them
    between a pair): drawn from the training pairs' pins and pins in no pair, never a pin that only
    held-out pairs name, and a pin engaged with the row's pin is masked."""
    from pinembed.store import Store
    from pinembed.training.engagement_pairs import read_pairs
    from pinembed.training.model_io import open_model as _model
    from pinembed.training.pair_tuner import PairTuner as _Tuner
    from pinembed.training.pin_media import load_pin_media
    from pinembed.training.train import TrainConfig

    src, db, _ = world
    store = Store(db)
    model, preprocess, tokenizer, _, _ = _model(TrainConfig(data="", out="", init=store.identity["model_id"]))
    ids = store.pin_states(("pin_id",)).column("pin_id").to_pylist()
    pairs = read_pairs(src / "pairs.csv")
    train, held = pairs.split_by_time(0.2)
    paired = set(pairs.query) | set(pairs.engaged)
    unpaired = sorted(set(ids) - paired)
    held_only = (set(held.query) | set(held.engaged)) - set(train.query) - set(train.engaged)
    assert unpaired and held_only  # the world has both
    tuner = _Tuner(model, tokenizer, load_pin_media(store, ids, preprocess, 64),
                   PairTrainConfig(pairs="", db=db, out="", negatives=16))
    tuner.use_negatives(train, unpaired)
    batch = set(train.query[:8]) | set(train.engaged[:8])
    drawn = set()
    for _ in range(20):
        neg = tuner._negatives(batch)
        assert 0 < len(neg) <= 16 and len(set(neg)) == len(neg) and not set(neg) & batch
        drawn |= set(neg)
    assert not drawn & held_only and drawn & set(unpaired)
    assert (train.query[0], train.engaged[0]) in tuner.positive and (train.engaged[0], train.query[0]) in tuner.positive
    assert tuner.step(train, list(range(8))) > 0


def test_cli_defaults_are_the_training_defaults():
    cfg = PairTrainConfig(pairs="", db="", out="")
    params = {p.name: p.default for p in cli.commands["train"].params}
    assert params["train_blocks"] == cfg.train_blocks and params["anchor_weight"] == cfg.anchor_weight
    assert params["idea_text_weight"] == cfg.idea_text_weight and params["text_weight"] == cfg.text_weight
    assert params["holdout"] == cfg.holdout and params["patience"] == cfg.patience
    assert params["negatives"] == cfg.negatives


def test_anchor_data_reads_images_and_refuses_a_folder_without_any(tmp_path):
    from PIL import Image

    from pinembed.errors import UsageError
    from pinembed.training.pin_media import load_images

    def prep(im):
        return torch.zeros(3, 4, 4) + im.size[0]

    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "b" / "one.png")
    Image.new("RGB", (6, 6)).save(tmp_path / "a" / "two.jpg")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    pixels, bad, over = load_images(str(tmp_path / "a"), prep)
    assert pixels.shape == (2, 3, 4, 4) and bad == 1 and over == 0 and float(pixels[0, 0, 0, 0]) == 8  # by path
    pixels, bad, over = load_images(str(tmp_path / "a"), prep, limit=2)
    assert pixels.shape == (1, 3, 4, 4) and bad == 1 and over == 1  # past the limit: counted, not silent
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no readable images"):
        load_images(str(tmp_path / "empty"), prep)
    with pytest.raises(UsageError, match="is not a folder"):
        load_images(str(tmp_path / "a" / "notes.txt"), prep)
