"""A generated world for training and evaluating the bundled ``nano`` model.

Objects x colours x patterns x backgrounds (scenes), as captioned stills, short videos of a moving
object and idea pins. Two splits that never overlap:

- ``train``: every (object, colour) label, but only the (pattern, background) pairs in TRAIN_PAIRS;
- ``eval``: another seed, a subset of labels, and only the HELD_OUT pairs (combinations the model
  never saw), with enough pins per label for precision@10 and image->video precision@5.

It is separate from sample_media/ (the demo set, made by make_samples.py). Needs Pillow and PyAV.

    python sample_media/world.py --split train --out build/world-train --seed 0
    python sample_media/world.py --split eval --out build/world-eval --seed 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

OBJECTS = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (240, 210, 40), "green": (40, 170, 60),
    "blue": (40, 80, 220), "purple": (140, 60, 190), "pink": (245, 130, 190), "brown": (130, 80, 40),
}
PATTERNS = ("solid", "striped", "dotted")
BACKGROUNDS = ("white", "black", "grey", "sky", "grass", "checker")
HELD_OUT = {("solid", "sky"), ("striped", "grass"), ("dotted", "checker"), ("solid", "checker"),
            ("striped", "black"), ("dotted", "white")}
TRAIN_PAIRS = sorted((p, b) for p in PATTERNS for b in BACKGROUNDS if (p, b) not in HELD_OUT)
EVAL_PAIRS = sorted(HELD_OUT)
SIZE = 64
BG_PHRASE = {"white": "a white background", "black": "a black background", "grey": "a grey background",
             "sky": "a blue sky", "grass": "green grass", "checker": "a checkered floor"}


def background(kind: str, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """A background scene."""
    w, h = size
    flat = {"white": (245, 245, 240), "black": (15, 15, 20), "grey": (128, 128, 128)}
    if kind in flat:
        return Image.new("RGB", size, flat[kind])
    im = Image.new("RGB", size)
    d = ImageDraw.Draw(im)
    if kind == "sky":
        for y in range(h):
            d.line([(0, y), (w, y)], fill=(90 + y, 150 + y // 2, 235))
    elif kind == "grass":
        d.rectangle([0, 0, w, h // 3], fill=(170, 210, 240))
        d.rectangle([0, h // 3, w, h], fill=(70, 150, 60))
    else:  # checker
        step = 8
        for y in range(0, h, step):
            for x in range(0, w, step):
                d.rectangle([x, y, x + step, y + step], fill=(200, 200, 200) if (x + y) // step % 2 else (90, 90, 90))
    return im


def _outline(obj: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    def poly(n: int, start: float, radii=None) -> list[tuple[float, float]]:
        radii = radii or [r] * n
        return [(cx + radii[i] * math.cos(start + 2 * math.pi * i / n), cy + radii[i] * math.sin(start + 2 * math.pi * i / n))
                for i in range(n)]

    if obj == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if obj == "triangle":
        return [(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)]
    if obj == "star":
        return poly(10, -math.pi / 2, [r if i % 2 == 0 else r * 0.45 for i in range(10)])
    if obj == "diamond":
        return [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)]
    if obj == "hexagon":
        return poly(6, 0)
    if obj == "cross":
        a = r * 0.35
        return [(cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a), (cx + r, cy + a), (cx + a, cy + a),
                (cx + a, cy + r), (cx - a, cy + r), (cx - a, cy + a), (cx - r, cy + a), (cx - r, cy - a), (cx - a, cy - a)]
    return None  # circle, ring


def draw_object(im: Image.Image, obj: str, colour: str, pattern: str, cx: float, cy: float, r: float) -> None:
    """Paint ``obj`` in ``colour`` with ``pattern`` onto ``im``."""
    mask = Image.new("L", im.size, 0)
    d = ImageDraw.Draw(mask)
    pts = _outline(obj, cx, cy, r)
    if pts is None:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if obj == "ring":
            d.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=0)
    else:
        d.polygon(pts, fill=255)
    rgb = COLOURS[colour]
    fill = Image.new("RGB", im.size, rgb)
    if pattern != "solid":
        shade = tuple(int(c * 0.55) for c in rgb)
        fd = ImageDraw.Draw(fill)
        if pattern == "striped":
            for x in range(-im.size[1], im.size[0], 6):
                fd.line([(x, 0), (x + im.size[1], im.size[1])], fill=shade, width=2)
        else:
            for y in range(2, im.size[1], 6):
                for x in range(2 + (y // 6 % 2) * 3, im.size[0], 6):
                    fd.ellipse([x - 1, y - 1, x + 1, y + 1], fill=shade)
    im.paste(fill, (0, 0), mask)


def still(obj: str, colour: str, pattern: str, bg: str, rng: random.Random) -> Image.Image:
    """One captioned still."""
    im = background(bg)
    r = rng.uniform(14, 22)
    draw_object(im, obj, colour, pattern, rng.uniform(r + 2, SIZE - r - 2), rng.uniform(r + 2, SIZE - r - 2), r)
    return im


DETAIL = 0.25  # share of captions that also name the pattern and the scene


def caption(obj: str, colour: str, pattern: str, bg: str, rng: random.Random, detail: float = DETAIL) -> str:
    """A varied caption for a still or a clip: mostly what the pin shows (colour and object), sometimes
    its pattern and scene too. Naming the scene less often keeps same-object pins close across scenes."""
    pat = "" if pattern == "solid" else f"{pattern} "
    if rng.random() < detail:
        return rng.choice([f"a {pat}{colour} {obj} on {BG_PHRASE[bg]}", f"{pat}{colour} {obj} over {BG_PHRASE[bg]}",
                           f"photo of a {pat}{colour} {obj}"])
    return rng.choice([f"a {colour} {obj}", f"{colour} {obj}", f"photo of a {colour} {obj}",
                       f"a picture of a {colour} {obj}"])


def video(path: Path, obj: str, colour: str, pattern: str, bg: str | None, rng: random.Random, secs: int = 2,
          fps: int = 4, scene: Any = None) -> None:
    """A short h264 clip of the object sliding across the scene: ``background(bg)``, or what the
    callable ``scene`` paints (another world's backdrops)."""
    import av
    import numpy as np

    r = rng.uniform(14, 20)
    y = rng.uniform(r + 2, SIZE - r - 2)
    x0, x1 = r + 2, SIZE - r - 2
    if rng.random() < 0.5:
        x0, x1 = x1, x0
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width = s.height = SIZE
        s.pix_fmt = "yuv420p"
        s.thread_count = 1
        s.options = {"preset": "veryfast"}
        n = secs * fps
        for i in range(n):
            im = scene() if scene is not None else background(bg)
            draw_object(im, obj, colour, pattern, x0 + (x1 - x0) * i / max(1, n - 1), y, r)
            for p in s.encode(av.VideoFrame.from_ndarray(np.asarray(im), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make(out: Path, split: str = "train", seed: int = 0, images_per_label: int | None = None,
         videos_per_label: int | None = None) -> int:
    """Write the split under ``out`` (with labels.csv); returns the number of pins."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    labels = [(o, c) for o in OBJECTS for c in COLOURS]
    if split == "train":
        pairs, n_img, n_vid, n_idea = TRAIN_PAIRS, images_per_label or 56, videos_per_label or 2, 1
    else:
        labels = sorted(rng.sample(labels, 16))
        pairs, n_img, n_vid, n_idea = EVAL_PAIRS, images_per_label or 11, videos_per_label or 5, 3
    rows = []
    for obj, colour in labels:
        label = f"{colour} {obj}"
        base = f"{colour}-{obj}"
        for i in range(n_img):
            pattern, bg = rng.choice(pairs)
            rel = f"images/{base}/{i:03d}-{pattern}-{bg}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            still(obj, colour, pattern, bg, rng).save(out / rel)
            (out / rel).with_suffix(".txt").write_text(caption(obj, colour, pattern, bg, rng) + "\n")
            rows.append((rel, "image", label, obj, colour, pattern, bg))
        for i in range(n_vid):
            pattern, bg = rng.choice(pairs)
            rel = f"videos/{base}-{i}-{pattern}-{bg}.mp4"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            video(out / rel, obj, colour, pattern, bg, rng)
            (out / rel).with_suffix(".txt").write_text(f"a {colour} {obj} moving\n")
            rows.append((rel, "video", label, obj, colour, pattern, bg))
        for i in range(n_idea):
            folder = out / "ideas" / f"{base}-{i}"
            folder.mkdir(parents=True)
            pages = []
            for j in range(2):
                pattern, bg = rng.choice(pairs)
                still(obj, colour, pattern, bg, rng).save(folder / f"page{j}.png")
                pages.append({"media": f"page{j}.png", "text": caption(obj, colour, pattern, bg, rng)})
            pattern, bg = rng.choice(pairs)
            video(folder / "clip.mp4", obj, colour, pattern, bg, rng)
            pages.append({"media": "clip.mp4", "text": f"the {colour} {obj} in motion"})
            (folder / "pin.json").write_text(json.dumps(
                {"title": f"Ideas with a {colour} {obj}", "description": f"{colour} {obj} in a few scenes",
                 "pages": pages}))
            rows.append((f"ideas/{base}-{i}", "idea", label, obj, colour, "mixed", "mixed"))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pin_id", "kind", "label", "text", "object", "colour", "pattern", "background"])
        for rel, kind, label, obj, colour, pattern, bg in rows:
            w.writerow([rel, kind, label, f"a {label}", obj, colour, pattern, bg])
    return len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["train", "eval"], default="train")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images-per-label", type=int, default=None)
    ap.add_argument("--videos-per-label", type=int, default=None)
    a = ap.parse_args()
    n = make(a.out, a.split, a.seed, a.images_per_label, a.videos_per_label)
    print(f"wrote {n} pins ({a.split}) under {a.out}")
