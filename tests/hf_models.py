"""Tiny random transformers CLIP and SigLIP models saved with save_pretrained, for offline tests.

The tokenizer is a real CLIP BPE tokenizer built from the first merges of open_clip's bundled
vocabulary (no hub download).
"""

from __future__ import annotations

import gzip
from pathlib import Path


def _bpe(n_merges: int = 2000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : n_merges + 1]
    merges = [tuple(m.split()) for m in lines]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def make_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = _bpe()
    return CLIPTokenizer(vocab=vocab, merges=merges)


def save_tiny_clip(out: Path) -> Path:
    """A random CLIPModel (32 px, 2 layers) with processor files in ``out``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = make_tokenizer()
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=24,
    )
    CLIPModel(cfg).eval().save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_tiny_siglip(out: Path) -> Path:
    """A random SiglipModel (32 px, 2 layers) with an image processor and a BPE tokenizer in ``out``."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tok = make_tokenizer()
    torch.manual_seed(0)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )
    SiglipModel(cfg).eval().save_pretrained(out)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    tok.save_pretrained(out)
    return out
