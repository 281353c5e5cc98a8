"""The embedder interface: pixels and text in, L2-normalised float32 vectors out."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class Embedder(ABC):
    """A model that maps images and texts into one embedding space.

    Subclasses set ``model_id`` and ``dim`` and implement ``preprocess``, ``embed_pixels`` and
    ``embed_texts``. ``preprocess`` is thread-safe and cheap to call from reader threads, so the
    pipeline can decode and resize ahead of the model; ``embed_images`` is the one-call form.
    """

    model_id: str
    dim: int
    #: Where the model runs ("cpu", "cuda", "cuda:1", "mps"); subclasses set it when they load.
    device: str = "cpu"
    #: The weights' precision as loaded: "fp32", "fp16" or "int8" (``auto`` settled to one of them).
    precision: str = "fp32"
    #: Side of the square input the model expects; readers may decode JPEGs at reduced size to it.
    image_size: int = 224

    @abstractmethod
    def preprocess(self, image: Any) -> Any:
        """Turn one RGB PIL image into the model's input tensor (C, H, W)."""

    def preprocessor(self) -> Any:
        """``preprocess`` as a standalone picklable callable, for readers in other processes (the ray
        runner's read tasks); the default is the bound method (which carries the model with it)."""
        return self.preprocess

    @abstractmethod
    def embed_pixels(self, pixels: Sequence[Any]) -> np.ndarray:
        """Embed preprocessed image tensors in one batch: float32 (n, dim), rows L2-normalised."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in one batch: float32 (n, dim), rows L2-normalised."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What defines this embedding space: model id, dim, weights digest, preprocessing."""

    def device_preprocessor(self) -> Any:
        """A ``device_preprocess.DevicePreprocess`` that decodes and preprocesses batches of JPEG bytes on
        this model's device the way ``preprocess`` does, or None (then every image takes the CPU path)."""
        return None

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Embed RGB PIL images: float32 (n, dim), rows L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_pixels([self.preprocess(im) for im in images])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def weights_digest(module: Any) -> str:
    """A cheap fingerprint of a torch module's weights: names, shapes and a strided sample of values.

    Hashing every byte of a large model costs seconds; a strided sample of each tensor tells apart
    any two checkpoints that differ in training, which is what the store needs to refuse mixing.
    """
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 256)
            sample = flat[::step][:256].to(device="cpu", dtype=torch.float32).numpy()
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(np.round(sample, 5).tobytes())
    return h.hexdigest()[:16]
