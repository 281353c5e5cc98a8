"""Pooling segment vectors (and optional text) into one vector."""

from __future__ import annotations

import numpy as np

from pinembed.embedders.base import l2_normalise


def pool(segments: np.ndarray, text: np.ndarray | None = None, text_weight: float = 0.0) -> np.ndarray:
    """normalise(mean of segment vectors + text_weight * text vector), float32 (dim,)."""
    segments = np.atleast_2d(np.asarray(segments, dtype=np.float32))
    v = segments.mean(axis=0)
    if text is not None and text_weight:
        v = v + np.float32(text_weight) * np.asarray(text, dtype=np.float32)
    return l2_normalise(v[None, :])[0]


def pool_frames(frames: np.ndarray, blank: np.ndarray | list[bool]) -> np.ndarray:
    """normalise(mean of the non-blank frames); every frame when all are blank."""
    frames = np.atleast_2d(np.asarray(frames, dtype=np.float32))
    keep = ~np.asarray(blank, dtype=bool)
    return pool(frames[keep] if keep.any() else frames)
