"""Precision choices: int8 dynamic quantization on CPU stays in the same space; bad choices are clear."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pinembed.cli.main import cli
from pinembed.embedders import get_embedder
from pinembed.embedders.device import pick_precision
from pinembed.errors import UsageError

from helpers import save_image


def test_int8_is_close_to_fp32_and_the_same_space(tiny, tiny_model_id):
    q = get_embedder(tiny_model_id, "cpu", "int8")
    assert q.precision == "int8" and tiny.precision == "fp32"
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(8)]
    cos = np.sum(q.embed_images(images) * tiny.embed_images(images), axis=1)
    tcos = np.sum(q.embed_texts(["a red star", "blue ring"]) * tiny.embed_texts(["a red star", "blue ring"]), axis=1)
    assert cos.min() >= 0.999 and tcos.min() >= 0.999
    assert q.identity() == tiny.identity()


def test_precision_choices():
    assert pick_precision("cpu") == "fp32" and pick_precision("cuda") == "fp16"
    assert pick_precision("cpu", "int8") == "int8"
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
