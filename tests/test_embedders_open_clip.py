"""open_clip embedders: parity with open_clip's own pipeline, errors for missing models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pinembed.embedders import get_embedder
from pinembed.embedders.open_clip_embedder import CONFIG_DIR, parse_spec
from pinembed.errors import ModelNotFoundError


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (50 + i * 7, 60, 3), dtype=np.uint8)) for i in range(5)]


def test_vectors_are_normalised_float32(tiny):
    v = tiny.embed_images(_images())
    t = tiny.embed_texts(["a red circle", "", "x" * 5000])
    assert v.dtype == np.float32 and v.shape == (5, tiny.dim)
    assert t.dtype == np.float32 and t.shape == (3, tiny.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert tiny.embed_images([]).shape == (0, tiny.dim)


def test_parity_with_open_clip_reference_pipeline(tiny, tiny_model_id):
    import open_clip
    import torch

    open_clip.add_model_config(CONFIG_DIR)
    arch, path = parse_spec(tiny_model_id.split(":", 1)[1])
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=path)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    images, texts = _images(), ["a photo of a dog", "red star on stripes"]
    with torch.no_grad():
        ref_i = model.encode_image(torch.stack([preprocess(im) for im in images]))
        ref_t = model.encode_text(tokenizer(texts))
    ref_i = (ref_i / ref_i.norm(dim=-1, keepdim=True)).numpy()
    ref_t = (ref_t / ref_t.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(tiny.embed_images(images), ref_i, atol=1e-5)
    np.testing.assert_allclose(tiny.embed_texts(texts), ref_t, atol=1e-5)


def test_identity_ties_weights_and_preprocessing(tiny, other_tiny_model_id):
    other = get_embedder(other_tiny_model_id, "cpu")
    a, b = tiny.identity(), other.identity()
    assert a["dim"] == b["dim"] == 64
    assert a["preprocess"]["size"] == [64, 64] or a["preprocess"]["size"] == 64
    assert a["preprocess"]["mean"] and a["weights_digest"] != b["weights_digest"]


def test_parse_spec_keeps_absolute_paths_and_hub_ids():
    assert parse_spec("ViT-B-32/laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert parse_spec("ViT-B-32//abs/w.pt") == ("ViT-B-32", "/abs/w.pt")
    assert parse_spec("hf-hub:laion/CLIP-ViT-B-32") == ("hf-hub:laion/CLIP-ViT-B-32", None)
    assert parse_spec("ViT-B-32") == ("ViT-B-32", None)


@pytest.mark.parametrize(
    "model_id, words",
    [
        ("open_clip:ViT-B-32//no/such/file.pt", "neither a pretrained tag"),
        ("open_clip:No-Such-Arch/x.pt", "no architecture"),
        ("open_clip:ViT-B-32", "needs weights"),
        ("nosuchprefix:thing", "unknown model id"),
        ("ViT-B-32", "unknown model id"),
    ],
)
def test_missing_models_are_one_clear_error(model_id, words):
    with pytest.raises(ModelNotFoundError) as e:
        get_embedder(model_id, "cpu")
    assert words in e.value.message and e.value.hint


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFoundError) as e:
        get_embedder(f"open_clip:pinembed-tiny/{bad}", "cpu")
    assert "could not load" in e.value.message and "checkpoint" in e.value.hint


def test_weights_digest_is_of_the_fp32_weights(tiny, tiny_model_id):
    """fp16 rounding changes a digest; the embedder takes it before any cast, so a database built on a
    GPU (fp16) is the same space on a CPU (fp32). Checked on an H100 by the GPU check too."""
    import copy

    import open_clip

    from pinembed.embedders.base import weights_digest

    arch, path = parse_spec(tiny_model_id.split(":", 1)[1])
    model = open_clip.create_model(arch, pretrained=path)
    assert tiny.identity()["weights_digest"] == weights_digest(model)
    assert weights_digest(copy.deepcopy(model).half()) != weights_digest(model)
