"""Generate sample_media/images: a small labelled set (objects x colours x backgrounds) with sidecar
titles and labels.csv. Deterministic: the same seed gives the same bytes.

    python sample_media/make_samples.py            # writes sample_media/images and labels.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

OBJECTS = ("circle", "square", "triangle", "star")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40)}
BACKGROUNDS = ("white", "black", "stripes")
SIZE = 96


def _background(kind: str, rng: random.Random) -> Image.Image:
    if kind == "white":
        return Image.new("RGB", (SIZE, SIZE), (245, 245, 240))
    if kind == "black":
        return Image.new("RGB", (SIZE, SIZE), (15, 15, 20))
    im = Image.new("RGB", (SIZE, SIZE), (200, 200, 200))
    d = ImageDraw.Draw(im)
    step = rng.choice((8, 12))
    for x in range(-SIZE, SIZE * 2, step * 2):
        d.polygon([(x, 0), (x + step, 0), (x + step + SIZE, SIZE), (x + SIZE, SIZE)], fill=(120, 120, 130))
    return im


def _shape(d: ImageDraw.ImageDraw, obj: str, colour: tuple[int, int, int], rng: random.Random) -> None:
    r = rng.randint(22, 34)
    cx, cy = rng.randint(r + 4, SIZE - r - 4), rng.randint(r + 4, SIZE - r - 4)
    if obj == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif obj == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif obj == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        d.polygon(pts, fill=colour)


def make(out: Path, seed: int = 0) -> int:
    """Write the image set under ``out/images`` and ``out/labels.csv``; returns the image count."""
    rng = random.Random(seed)
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    rows = []
    for obj in OBJECTS:
        (images / obj).mkdir(parents=True, exist_ok=True)
        for colour, rgb in COLOURS.items():
            for bg in BACKGROUNDS:
                im = _background(bg, rng)
                _shape(ImageDraw.Draw(im), obj, rgb, rng)
                name = f"{colour}-{obj}-on-{bg}"
                ext = ".png" if bg == "stripes" else ".jpg"
                path = images / obj / (name + ext)
                if ext == ".jpg":
                    im.save(path, quality=85, optimize=True)
                else:
                    im.save(path, optimize=True)
                (images / obj / (name + ".txt")).write_text(
                    f"{colour.capitalize()} {obj} on {bg}\nA {colour} {obj} drawn on a {bg} background.\n"
                )
                rows.append({"pin_id": f"images/{obj}/{name}{ext}", "object": obj, "colour": colour, "background": bg})
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["pin_id", "object", "colour", "background"])
        w.writeheader()
        w.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"wrote {make(args.out, args.seed)} images to {args.out / 'images'}")
