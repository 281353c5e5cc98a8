"""Precision ``auto`` on a CPU: int8 when this model's int8 vectors agree with its fp32 ones.

The check runs once per model (its weights digest), torch version and CPU type, on a fixed probe set of
photo-like images and captions, and its verdict is cached in ``cache_dir()/precision/``. int8 is chosen
when, against the fp32 model on the same probe: every vector's cosine is >= ``MIN_COSINE``; the top 10
of int8 queries (images and texts) against the fp32 vectors hold >= ``MIN_RECALL`` of the fp32 queries'
top 10. Otherwise fp32. int8 (dynamic quantization of Linear layers) is the faster on CPUs: 1.7-1.8x
for ViT-B-32 end to end here; the check reports its speed-up, but does not choose by it (timings on a
busy machine would make the choice, and so the vectors, vary from run to run). The space stays the same
either way (the weights digest is taken from the fp32 weights), so databases built at either precision
answer each other's queries.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pinembed.metrics import recall_at

from .device import apply_precision

log = logging.getLogger("pinembed")

MIN_COSINE = 0.999
MIN_RECALL = 0.99
PROBE_IMAGES = 64
#: (PIL images, texts) -> the model's inputs (preprocessed once, outside the timing).
Prepare = Callable[[list[Any], list[str]], Any]
#: (model, inputs) -> (image vectors, text vectors), L2-normalised float32.
Forward = Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]

_CAPTIONS = [
    f"a {c} {o} on a {b} background" for c, o, b in (
        ("red", "circle", "white"), ("blue", "square", "black"), ("green", "star", "grey"),
        ("yellow", "ring", "sky"), ("purple", "triangle", "grass"), ("orange", "cross", "checked"),
        ("pink", "hexagon", "white"), ("teal", "diamond", "dark"))
] + ["pasta night recipe", "living room with a green sofa", "sneakers on a white floor", "a beach at sunset",
     "a cat asleep on a chair", "mountain lake in the morning", "wedding table flowers", "a bowl of ramen",
     "handmade ceramic mugs", "a city street at night", "autumn outfit ideas", "a small garden with herbs"]


def cache_dir() -> Path:
    """pinembed's cache folder: ``$PINEMBED_CACHE_DIR``, else ``$XDG_CACHE_HOME/pinembed``, else
    ``~/.cache/pinembed``."""
    env = os.environ.get("PINEMBED_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinembed"


_COLOURS = [(220, 40, 40), (40, 90, 220), (40, 170, 70), (240, 200, 40), (150, 60, 190), (250, 140, 30),
            (240, 120, 180), (30, 170, 170)]


def probe_images(n: int = PROBE_IMAGES, seed: int = 0) -> list[Any]:
    """``n`` deterministic RGB images: three in four are scenes like the eval world's (a shape of one
    colour, plain or striped, on a plain, gradient or checked background), one in four photo-like
    (smooth colour fields, a few shapes, sensor-like noise)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = (288, 224) if rng.random() < 0.5 else (224, 288)
        if i % 4 == 3:
            field = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
            im = Image.fromarray(field).resize((w, h), Image.Resampling.BICUBIC)
            shapes = int(rng.integers(1, 5))
        else:
            im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
            if rng.random() < 0.3:  # checked
                d, s = ImageDraw.Draw(im), int(rng.integers(16, 48))
                for y in range(0, h, s):
                    for x in range((y // s) % 2 * s, w, 2 * s):
                        d.rectangle((x, y, x + s - 1, y + s - 1), fill=(235, 235, 235))
            shapes = 1
        draw = ImageDraw.Draw(im)
        for _ in range(shapes):
            cx, cy, r = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7), min(w, h) * rng.uniform(0.15, 0.35)
            colour = _COLOURS[int(rng.integers(len(_COLOURS)))]
            sides = int(rng.choice([0, 3, 4, 5, 6, 10]))
            if sides == 0:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                turn = rng.uniform(0, 2 * np.pi)
                radii = [r if sides != 10 or k % 2 == 0 else r / 2.2 for k in range(sides)]
                draw.polygon([(cx + q * np.cos(turn + 2 * np.pi * k / sides), cy + q * np.sin(turn + 2 * np.pi * k / sides))
                              for k, q in enumerate(radii)], fill=colour)
            if rng.random() < 0.3:  # stripes across the shape
                for x in range(int(cx - r), int(cx + r), 10):
                    draw.line((x, cy - r, x, cy + r), fill=(255, 255, 255), width=3)
        arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
        out.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return out


def recall_at_10(index: np.ndarray, exact: np.ndarray, approx: np.ndarray, exclude_self: bool) -> float:
    """Mean share of the top 10 of ``exact`` queries against ``index`` that ``approx`` queries also rank
    in their top 10 (``exclude_self``: query i is row i of the index and is left out); each query's
    recall is ``pinembed.metrics.recall_at`` of its approximate top 10 against the exact one."""
    k = min(10, len(index) - int(exclude_self))
    if k <= 0:
        return 1.0
    a, b = exact @ index.T, approx @ index.T
    if exclude_self:
        np.fill_diagonal(a, -np.inf)
        np.fill_diagonal(b, -np.inf)
    ta, tb = np.argsort(-a, axis=1)[:, :k], np.argsort(-b, axis=1)[:, :k]
    return float(np.mean([recall_at(y, set(x), k) for x, y in zip(ta, tb, strict=True)]))


def compare(fp32: Any, int8: Any, prepare: Prepare, forward: Forward) -> dict[str, float]:
    """int8 against fp32 on the probe set: min cosine, recall@10 of int8 queries, and the speed-up."""
    inputs = prepare(probe_images(), list(_CAPTIONS))
    warm = prepare(probe_images(2, seed=1), _CAPTIONS[:2])
    forward(fp32, warm)  # first-call allocations out of the timing
    forward(int8, warm)
    t = time.perf_counter()
    fi, ft = forward(fp32, inputs)
    t32 = time.perf_counter() - t
    t = time.perf_counter()
    qi, qt = forward(int8, inputs)
    t8 = time.perf_counter() - t
    cos = min(float(np.min(np.sum(fi * qi, axis=1))), float(np.min(np.sum(ft * qt, axis=1))))
    recall = min(recall_at_10(fi, fi, qi, True), recall_at_10(fi, ft, qt, False))
    return {"min_cosine": round(cos, 6), "recall_at_10": round(recall, 4), "speedup": round(t32 / max(t8, 1e-9), 3)}


def verdict_of(figures: dict[str, float]) -> tuple[str, str]:
    """(precision, why) for the figures of ``compare``."""
    if figures["min_cosine"] < MIN_COSINE:
        return "fp32", f"int8 vectors drift from fp32 (min cosine {figures['min_cosine']} < {MIN_COSINE})"
    if figures["recall_at_10"] < MIN_RECALL:
        return "fp32", f"int8 reorders neighbours (recall@10 {figures['recall_at_10']} < {MIN_RECALL})"
    return "int8", (f"int8 agrees with fp32 (min cosine {figures['min_cosine']}, recall@10 "
                    f"{figures['recall_at_10']}; {figures['speedup']}x as fast on the check)")


def _key(digest: str) -> str:
    import torch

    engine = getattr(torch.backends.quantized, "engine", "none")
    return f"{digest}-torch{torch.__version__.split('+')[0]}-{platform.machine()}-{engine}"


def cached_verdict(digest: str) -> dict[str, Any] | None:
    """The cached verdict for a model's weights digest on this machine, or None."""
    try:
        return json.loads((cache_dir() / "precision" / f"{_key(digest)}.json").read_text())
    except (OSError, ValueError):
        return None


def _save(digest: str, verdict: dict[str, Any]) -> None:
    folder = cache_dir() / "precision"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_key(digest)}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(verdict, sort_keys=True))
        os.replace(tmp, folder / f"{_key(digest)}.json")
    except OSError as e:  # a read-only home: check again next time, never fail the run
        log.debug("cannot cache the precision verdict in %s: %s", folder, e)


def choose_cpu_precision(model: Any, digest: str, prepare: Prepare, forward: Forward
                         ) -> tuple[Any, str, dict[str, Any]]:
    """(the model to use, "int8" or "fp32", the verdict) for precision ``auto`` on a CPU. ``model`` is
    the fp32 model; the int8 one is made from a copy of it."""
    verdict = cached_verdict(digest)
    int8 = None
    if verdict is None:
        t = time.perf_counter()
        int8, _ = apply_precision(model, "int8")
        figures = compare(model, int8, prepare, forward)
        precision, why = verdict_of(figures)
        verdict = {**figures, "precision": precision, "why": why, "checked_s": round(time.perf_counter() - t, 2)}
        _save(digest, verdict)
        log.info("precision auto: %s: %s (checked once for this model on this machine)", precision, why)
    if verdict.get("precision") != "int8":
        return model, "fp32", verdict
    if int8 is None:
        int8, _ = apply_precision(model, "int8")
    return int8, "int8", verdict


def settle_precision(model: Any, precision: str, digest: str, prepare: Any, forward: Any
                     ) -> tuple[Any, Any, str, dict[str, Any] | None]:
    """(model, input dtype, precision, auto's verdict or None) for a loaded fp32 ``model``: ``auto`` on
    a CPU becomes int8 or fp32 by ``choose_cpu_precision`` (given the model's
    ``prepare`` and ``forward``); any other precision is applied as it is."""
    if precision == "auto":
        import torch

        model, precision, verdict = choose_cpu_precision(model, digest, prepare, forward)
        return model, torch.float32, precision, verdict
    model, dtype = apply_precision(model, precision)
    return model, dtype, precision, None
