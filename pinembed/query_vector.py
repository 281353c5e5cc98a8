"""The one builder of a query vector from weighted terms, for Python (``PinIndex.search``) and HTTP
(``/api/search``): ``normalise(sum w * text + sum w * image + sum w * stored vector)``, a negative
weight subtracting. Weights are scaled first (``controls.scaled``), so no finite weight overflows."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinembed.ingestion.image_decode import decode_image

from .controls import check_term_weight, scaled
from .errors import InputError, UsageError


@dataclass
class Terms:
    """A query's terms, each with its signed weight: texts, decoded RGB images, stored pin vectors."""

    texts: list[tuple[str, float]] = field(default_factory=list)
    images: list[tuple[Any, float]] = field(default_factory=list)
    vectors: list[tuple[np.ndarray, float]] = field(default_factory=list)


def build(terms: Terms, dim: int, embedder: Callable[[], Any], check: Callable[[], None] | None = None) -> np.ndarray:
    """The unit query vector of ``terms`` in a space of ``dim``. ``embedder()`` gives the model (called
    only when there are texts or images); ``check`` runs between the steps (serve's deadline).
    UsageError when no term is positive or the terms cancel out."""
    step = check or _never
    weights = [w for _, w in terms.texts] + [w for _, w in terms.images] + [w for _, w in terms.vectors]
    if not any(w > 0 for w in weights):
        raise UsageError("a search needs at least one positive term (a text, an image or a pin)",
                         "e.g. search \"red dress\"")
    w = scaled(weights)  # 1e308 stays finite
    nt, ni = len(terms.texts), len(terms.images)
    vec = np.zeros(dim, np.float32)
    for (v, _), wv in zip(terms.vectors, w[nt + ni:], strict=True):
        vec += np.float32(wv) * np.asarray(v, np.float32)
    if terms.texts:
        step()
        vec += np.einsum("n,nd->d", np.array(w[:nt], np.float32), embedder().embed_texts([t for t, _ in terms.texts]))
    if terms.images:
        step()
        vec += np.einsum("n,nd->d", np.array(w[nt:nt + ni], np.float32),
                         embedder().embed_images([im for im, _ in terms.images]))
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm < 1e-6:
        raise UsageError("the terms cancel out (the query vector is zero)", "weigh the negative terms less")
    return vec / norm


def from_python(positive: Any = (), negative: Any = ()) -> Terms:
    """``Terms`` of ``PinIndex.search``'s arguments: each term a text (``str``), an image file
    (``pathlib.Path``, read and decoded here) or a ``(term, weight)`` pair."""
    signed = [(t, 1.0) for t in _listed(positive)] + [(t, -1.0) for t in _listed(negative)]
    if not any(sign > 0 for _, sign in signed):
        raise UsageError("a search needs at least one positive text or image", "e.g. search \"red dress\"")
    out = Terms()
    for term, sign in signed:
        item, weight = term if isinstance(term, tuple) else (term, 1.0)
        weight = sign * check_term_weight(weight)
        if isinstance(item, str):
            if not item.strip():
                raise UsageError("a text query is empty", "pass some words, e.g. --text 'red circle'")
            out.texts.append((item, weight))
        elif isinstance(item, os.PathLike):
            out.images.append((item, weight))
        else:
            raise UsageError(f"a search term is a text (str) or an image file (pathlib.Path), not {item!r}")
    out.images = [(query_image(p), w) for p, w in out.images]  # read once every term is known to be good
    return out


def query_image(path: os.PathLike[str]) -> Any:
    """A query image file decoded to RGB (UsageError naming the file when it cannot be)."""
    try:
        return decode_image(Path(path).read_bytes()).image
    except OSError as e:
        raise UsageError(f"cannot read query image {os.fspath(path)!r}: {e.strerror}") from e
    except InputError as e:
        raise UsageError(f"cannot use query image {os.fspath(path)!r}: {e.message}", e.hint) from e


def _listed(terms: Any) -> list[Any]:
    if isinstance(terms, str | os.PathLike) or (isinstance(terms, tuple) and len(terms) == 2
                                                and isinstance(terms[1], int | float)):
        return [terms]
    return list(terms or [])


def _never() -> None:
    """A step check that never stops the work."""
