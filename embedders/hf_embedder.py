"""Hugging Face transformers CLIP and SigLIP models: ``hf:<hub id | local dir>``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pinembed.errors import ModelNotFoundError

from . import hub
from .auto_precision import settle_precision
from .base import Embedder, l2_normalise, weights_digest
from .device import pick_device, pick_precision

SUPPORTED = ("clip", "siglip")
_PREPROCESS_KEYS = (
    "image_mean", "image_std", "size", "crop_size", "resample", "do_center_crop", "do_resize",
    "rescale_factor", "do_normalize", "do_convert_rgb",
)


def _load(loader: Any, name: str, **kw: Any) -> Any:
    """Load from the local cache first; reach the hub only when the cache misses and the hub can be
    reached (else one ModelNotFoundError at once, not a minute of retries)."""
    try:
        return loader.from_pretrained(name, local_files_only=True, **kw)
    except Exception:
        if os.path.isdir(name) or name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise  # a local folder (or a path that is not there), not a hub id: nothing to fetch
        reason = hub.unreachable_reason()
        if reason is not None:
            raise ModelNotFoundError(
                f"hf:{name} is not on this machine: it is not in the Hugging Face cache ({hub.cache_dir()}) "
                f"and {reason}",
                hub.fixes("hf:/path/to/folder (saved with save_pretrained)"),
            ) from None
        with hub.quiet():
            return loader.from_pretrained(name, **kw)


class HFEmbedder(Embedder):
    """A transformers CLIPModel or SiglipModel with its own image processor and tokenizer."""

    def __init__(self, name: str, device: str | None = None, precision: str | None = None) -> None:
        import torch
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

        if os.path.exists(os.path.expanduser(name)):
            name = os.path.abspath(os.path.expanduser(name))
        try:
            config = _load(AutoConfig, name)
            model_type = config.model_type
            if model_type not in SUPPORTED:
                raise ModelNotFoundError(
                    f"hf:{name} is a {model_type!r} model; pinembed embeds with {', '.join(SUPPORTED)} models",
                    "choose a CLIP or SigLIP checkpoint, e.g. hf:openai/clip-vit-base-patch32",
                )
            self.device = pick_device(device)
            self.precision = pick_precision(self.device, precision)
            model = _load(AutoModel, name, dtype=torch.float32)
            self.image_processor = _load(AutoImageProcessor, name)
            self.tokenizer = _load(AutoTokenizer, name)
        except ModelNotFoundError:
            raise
        except Exception as e:
            raise ModelNotFoundError(
                f"could not load Hugging Face model {name!r}: {hub.brief(e)}",
                "give a local folder saved with save_pretrained (model, image processor and tokenizer), "
                "or a hub id that is in the HF cache ($HF_HOME, default ~/.cache/huggingface): run once "
                "where the network reaches the hub, or copy that cache here.",
            ) from e
        # The digest is taken from the fp32 weights, so a database built on a GPU (fp16) opens on a CPU.
        self._digest = weights_digest(model)
        self.model_type = model_type
        self.model_id = f"hf:{name}"
        text_cfg = config.text_config
        self.max_length = int(getattr(text_cfg, "max_position_embeddings", 77))
        model, self.dtype, self.precision, self.precision_check = settle_precision(
            model.to(self.device).eval(), self.precision, self._digest, self._probe_inputs, self._probe_forward)
        self.model = model
        self.dim = int(getattr(config, "projection_dim", 0) or text_cfg.hidden_size)
        with torch.inference_mode():
            self.dim = int(self._text_features(["probe"]).shape[-1])
        proc = self.image_processor
        self.image_size = _side(getattr(proc, "crop_size", None)) or _side(getattr(proc, "size", None)) or 224

    def preprocess(self, image: Any) -> Any:
        """The model's own image processor for one image."""
        return self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def preprocessor(self) -> Any:
        """The image processor alone, as a picklable callable."""
        return _Preprocess(self.image_processor)

    def embed_pixels(self, pixels: Sequence[Any]) -> np.ndarray:
        """One forward pass over a batch of preprocessed tensors."""
        import torch

        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.stack(list(pixels)).to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            out = _features(self.model.get_image_features(pixel_values=batch))
        return l2_normalise(out.float().cpu().numpy())

    def _text_inputs(self, texts: Sequence[str]) -> dict[str, Any]:
        # SigLIP was trained on max_length padding; CLIP pads to the longest text.
        padding = "max_length" if self.model_type == "siglip" else True
        enc = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        kw = {"input_ids": enc["input_ids"].to(self.device)}
        if self.model_type == "clip" and "attention_mask" in enc:
            kw["attention_mask"] = enc["attention_mask"].to(self.device)
        return kw

    def _text_features(self, texts: Sequence[str]) -> Any:
        return _features(self.model.get_text_features(**self._text_inputs(texts)))

    def _probe_inputs(self, images: list[Any], texts: list[str]) -> Any:
        """The auto-precision check's inputs: (pixel batch, text inputs)."""
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"], self._text_inputs(texts)

    @staticmethod
    def _probe_forward(model: Any, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """The auto-precision check's forward pass (on a CPU): image and text vectors."""
        import torch

        pixels, text = inputs
        with torch.inference_mode():
            img = _features(model.get_image_features(pixel_values=pixels))
            txt = _features(model.get_text_features(**text))
        return l2_normalise(img.float().numpy()), l2_normalise(txt.float().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One forward pass over a batch of texts."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            out = self._text_features(texts)
        return l2_normalise(out.float().cpu().numpy())

    def identity(self) -> dict[str, Any]:
        """Model id, dim, weights digest and the image processor's settings."""
        cfg = self.image_processor.to_dict()
        return {
            "model_id": self.model_id,
            "dim": self.dim,
            "weights_digest": self._digest,
            "preprocess": {k: cfg[k] for k in _PREPROCESS_KEYS if k in cfg},
            "precision": self.precision,  # recorded, not compared: every precision shares the space
        }


def _features(out: Any) -> Any:
    """transformers 4 returns a tensor from get_*_features, transformers 5 an output with pooler_output."""
    return out if hasattr(out, "shape") else out.pooler_output


def _side(size: Any) -> int:
    """The largest side in an image processor's size setting (a dict, a SizeDict or an int)."""
    if isinstance(size, int):
        return size
    keys = ("height", "width", "shortest_edge", "longest_edge")
    vals = [size.get(k) if isinstance(size, dict) else getattr(size, k, None) for k in keys] if size else []
    return max((v for v in vals if isinstance(v, int)), default=0)


class _Preprocess:
    """A transformers image processor applied to one image (picklable, without the model)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Any) -> Any:
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]
