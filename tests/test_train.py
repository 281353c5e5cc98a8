"""`pinembed train`: a few steps lower the loss; the saved model reloads bit-exactly by its id."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from pinembed.cli.main import cli
from pinembed.embedders import get_embedder
from pinembed.training.pairs import load_pairs
from pinembed.training.train import TrainConfig, train

from helpers import save_image, write_idea, write_video

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    for name, rgb in COLOURS.items():
        for i in range(3):
            p = save_image(root / "images" / f"{name}-{i}.png", colour=rgb, size=(40 + 3 * i, 40))
            p.with_suffix(".txt").write_text(f"a {name} square\n")
    write_video(root / "videos" / "clip.mp4", secs=2, fps=4)
    (root / "videos" / "clip.txt").write_text("a moving bar\n")
    save_image(root / "idea" / "p.jpg", colour=(200, 100, 0))
    write_idea(root / "idea", [{"media": "p.jpg", "text": "an orange page"}], title="orange")
    save_image(root / "untitled.png")
    return root


def test_pairs_from_images_videos_and_idea_pins(data):
    pairs = load_pairs(data, image_size=64)
    assert len(pairs.texts) == 12 + 2 + 1 and pairs.untexted == 1
    assert pairs.texts.count("a moving bar") == 2 and "an orange page" in pairs.texts


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "open_clip_model.safetensors"))


def test_training_lowers_the_loss_and_reloads_exactly(data, tmp_path):
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "m"), arch="pinembed-tiny", epochs=12, batch_size=8,
                      lr=2e-3, seed=3, warmup_steps=2)
    r = train(cfg)
    assert r.steps == 12 and r.pairs == 15
    assert sum(r.losses[-3:]) / 3 < sum(r.losses[:3]) / 3
    meta = json.loads((tmp_path / "m" / "training.json").read_text())
    assert meta["seed"] == 3 and meta["steps"] == 12
    emb = get_embedder(r.model_id, "cpu", "fp32")  # open_clip's local-dir loader: config + preprocessing + weights
    saved = _weights(tmp_path / "m")
    for name, tensor in emb.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    again = train(TrainConfig(**{**vars(cfg), "out": str(tmp_path / "m2")}))
    assert again.losses == r.losses  # deterministic for a seed
    assert all(torch.equal(a, b) for a, b in zip(saved.values(), _weights(tmp_path / "m2").values(), strict=True))


def test_cli_train_fp16_and_fine_tune(data, tmp_path, tiny_model_id):
    r = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "h"), "--arch", "pinembed-tiny",
                                 "--epochs", "1", "--batch-size", "4", "--dtype", "fp16", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["steps"] == 3 and all(t.dtype == torch.float16 for t in _weights(tmp_path / "h").values())
    emb = get_embedder(out["model_id"], "cpu")
    assert emb.embed_texts(["a red square"]).shape == (1, 64)
    r = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "ft"), "--init", tiny_model_id,
                                 "--epochs", "1", "--batch-size", "4", "--json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "h"), "--out", str(tmp_path / "x"),
                                 "--arch", "pinembed-tiny"])
    assert r.exit_code == 2 and "image-text pairs" in r.stderr
