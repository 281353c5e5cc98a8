"""Other packages add embedders through the `pinembed.embedders` entry-point group."""

from __future__ import annotations

import textwrap

import pytest

import pinembed
from pinembed.embedders import registry

from helpers import save_image

PLUGIN = '''
import hashlib
import numpy as np
from pinembed.embedders import Embedder, l2_normalise


class ColourEmbedder(Embedder):
    """Mean colour of an image, and a hash of a text: deterministic, no weights."""

    dim = 8
    image_size = 16

    def __init__(self, spec):
        self.model_id = "colour:" + spec

    def preprocess(self, image):
        return np.asarray(image.resize((16, 16)), dtype=np.float32).mean(axis=(0, 1))

    def embed_pixels(self, pixels):
        x = np.stack(pixels)
        return l2_normalise(np.concatenate([x, np.ones((len(x), 5), np.float32)], axis=1))

    def embed_texts(self, texts):
        return l2_normalise(np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], np.uint8)
                                      .astype(np.float32) for t in texts]))

    def identity(self):
        return {"model_id": self.model_id, "dim": 8, "weights_digest": "none", "preprocess": {}}


def make(spec, device):
    return ColourEmbedder(spec)
'''


@pytest.fixture()
def plugin_on_path(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "colour_plugin.py").parent.mkdir(parents=True)
    (site / "colour_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "colour_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: colour-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pinembed.embedders]\ncolour = colour_plugin:make\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    registry._cache.clear()


def test_entry_point_embedder_is_found_and_used(plugin_on_path, tmp_path):
    assert "colour" in registry.factories()
    emb = registry.get_embedder("colour:v1")
    assert emb.model_id == "colour:v1" and emb.embed_texts(["a"]).shape == (1, 8)
    save_image(tmp_path / "m" / "red.jpg", colour=(250, 0, 0))
    save_image(tmp_path / "m" / "red2.jpg", colour=(240, 10, 0))
    save_image(tmp_path / "m" / "blue.jpg", colour=(0, 0, 250))
    idx = pinembed.open_index(str(tmp_path / "db.lance"), model="colour:v1")
    assert idx.ingest(tmp_path / "m").added == 3
    assert idx.related("red.jpg", k=1)[0].pin_id == "red2.jpg"
