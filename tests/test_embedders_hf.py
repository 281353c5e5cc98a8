"""transformers CLIP and SigLIP embedders, loaded by `hf:<local dir>`, against transformers' own pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pinembed.embedders import get_embedder
from pinembed.errors import ModelNotFoundError

from hf_models import save_tiny_clip, save_tiny_siglip


@pytest.fixture(scope="module", params=["clip", "siglip"])
def hf_dir(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    return (save_tiny_clip if request.param == "clip" else save_tiny_siglip)(out)


def _reference(model_dir, images, texts):
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir).eval()
    proc = AutoImageProcessor.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    siglip = model.config.model_type == "siglip"
    enc = tok(texts, padding="max_length" if siglip else True, truncation=True,
              max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
    kw = {"input_ids": enc["input_ids"]} if siglip else dict(enc)
    with torch.no_grad():
        i = model.get_image_features(**proc(images=images, return_tensors="pt"))
        t = model.get_text_features(**kw)
    i = i if hasattr(i, "shape") else i.pooler_output
    t = t if hasattr(t, "shape") else t.pooler_output
    return (torch.nn.functional.normalize(i, dim=-1).numpy(), torch.nn.functional.normalize(t, dim=-1).numpy())


def test_hf_parity_with_transformers(hf_dir):
    emb = get_embedder(f"hf:{hf_dir}", "cpu")
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (40, 30 + 5 * i, 3), dtype=np.uint8)) for i in range(3)]
    texts = ["a red circle", "two blue squares on white"]
    ref_i, ref_t = _reference(hf_dir, images, texts)
    got_i, got_t = emb.embed_images(images), emb.embed_texts(texts)
    assert got_i.dtype == np.float32 and got_i.shape == (3, emb.dim)
    np.testing.assert_allclose(got_i, ref_i, atol=1e-5)
    np.testing.assert_allclose(got_t, ref_t, atol=1e-5)
    ident = emb.identity()
    assert ident["model_id"] == f"hf:{hf_dir}" and ident["preprocess"]["image_mean"]


def test_hf_missing_model_is_clear(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        get_embedder(f"hf:{tmp_path / 'nothing-here'}", "cpu")
    assert "could not load" in e.value.message and "save_pretrained" in e.value.hint
