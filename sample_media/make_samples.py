"""Generate sample_media/: a small labelled set with sidecar titles and labels.csv.

- images/: objects x colours x backgrounds (48 stills);
- videos/: short clips of a moving object (h264 .mp4 and vp9 .webm, some with a black opening);
- ideas/: idea pins (pin.json) mixing image pages and a video page, with texts.

Deterministic for a seed. Needs Pillow and PyAV (both pinembed dependencies).

    python sample_media/make_samples.py            # rewrites images/, videos/, ideas/ and labels.csv
"""

from __future__ import annotations

import argparse
import csv
import json
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


def _shape(d: ImageDraw.ImageDraw, obj: str, colour: tuple[int, int, int], rng: random.Random,
           at: tuple[int, int, int] | None = None) -> None:
    r = rng.randint(22, 34) if at is None else at[2]
    cx, cy = (rng.randint(r + 4, SIZE - r - 4), rng.randint(r + 4, SIZE - r - 4)) if at is None else at[:2]
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


VIDEOS = [  # (object, colour, background, container, black opening in seconds)
    ("circle", "red", "white", "mp4", 0.0), ("square", "blue", "black", "mp4", 1.0),
    ("triangle", "green", "stripes", "webm", 0.0), ("star", "yellow", "black", "mp4", 0.0),
    ("circle", "blue", "stripes", "webm", 1.0), ("square", "red", "white", "mp4", 0.0),
    ("triangle", "yellow", "white", "mp4", 0.0), ("star", "green", "stripes", "mp4", 1.0),
]
IDEAS = [  # (object, colour, title)
    ("circle", "green", "Green circles, three ways"), ("square", "yellow", "Yellow squares for a sunny room"),
    ("triangle", "red", "Red triangle pattern ideas"), ("star", "blue", "Blue star night"),
]
VIDEO_SECONDS, VIDEO_FPS = 3, 8


def _still(obj: str, colour: str, bg: str, rng: random.Random, at=None) -> Image.Image:
    im = _background(bg, rng)
    _shape(ImageDraw.Draw(im), obj, COLOURS[colour], rng, at)
    return im


def _video(path: Path, obj: str, colour: str, bg: str, black_s: float, seed: int) -> None:
    import av
    import numpy as np

    container = "webm" if path.suffix == ".webm" else "mp4"
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream("libvpx-vp9" if container == "webm" else "libx264", rate=VIDEO_FPS)
        s.width, s.height, s.pix_fmt = SIZE + 32, SIZE, "yuv420p"
        s.codec_context.gop_size = VIDEO_FPS
        s.thread_count = 1
        s.options = {"deadline": "realtime", "cpu-used": "8"} if container == "webm" else {"preset": "veryfast"}
        n = VIDEO_SECONDS * VIDEO_FPS
        for i in range(n):
            rng = random.Random(seed)  # same background every frame
            if i / VIDEO_FPS < black_s:
                im = Image.new("RGB", (SIZE + 32, SIZE), (0, 0, 0))
            else:
                im = _background(bg, rng).resize((SIZE + 32, SIZE))
                x = 30 + int((SIZE - 28) * i / n)
                _shape(ImageDraw.Draw(im), obj, COLOURS[colour], rng, (x, SIZE // 2, 24))
            for p in s.encode(av.VideoFrame.from_ndarray(np.asarray(im), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make(out: Path, seed: int = 0) -> int:
    """Write images/, videos/, ideas/ and labels.csv under ``out``; returns the number of pins."""
    rng = random.Random(seed)
    for sub in ("images", "videos", "ideas"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    rows = []
    images = out / "images"
    for obj in OBJECTS:
        (images / obj).mkdir(parents=True, exist_ok=True)
        for colour in COLOURS:
            for bg in BACKGROUNDS:
                im = _still(obj, colour, bg, rng)
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
                rows.append(("image", f"images/{obj}/{name}{ext}", obj, colour, bg))
    videos = out / "videos"
    videos.mkdir(parents=True)
    for i, (obj, colour, bg, ext, black_s) in enumerate(VIDEOS):
        name = f"{colour}-{obj}-moving-on-{bg}"
        _video(videos / f"{name}.{ext}", obj, colour, bg, black_s, seed * 1000 + i)
        (videos / f"{name}.json").write_text(json.dumps(
            {"title": f"{colour.capitalize()} {obj} moving on {bg}",
             "description": f"A short clip of a {colour} {obj} sliding across a {bg} background."}))
        rows.append(("video", f"videos/{name}.{ext}", obj, colour, bg))
    for i, (obj, colour, title) in enumerate(IDEAS):
        folder = out / "ideas" / f"{colour}-{obj}-ideas"
        folder.mkdir(parents=True)
        pages = []
        for j, bg in enumerate(("white", "black")):
            _still(obj, colour, bg, rng).save(folder / f"page{j + 1}.jpg", quality=85, optimize=True)
            pages.append({"media": f"page{j + 1}.jpg", "text": f"a {colour} {obj} on {bg}"})
        _video(folder / "clip.mp4", obj, colour, "stripes", 0.0, seed * 1000 + 100 + i)
        pages.append({"media": "clip.mp4", "text": f"the {colour} {obj} in motion"})
        (folder / "pin.json").write_text(json.dumps(
            {"title": title, "description": f"Ideas with a {colour} {obj}.", "pages": pages}, indent=1))
        rows.append(("idea", f"ideas/{colour}-{obj}-ideas", obj, colour, "mixed"))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pin_id", "kind", "label", "object", "colour", "background"])
        for kind, pin_id, obj, colour, bg in rows:
            w.writerow([pin_id, kind, f"{colour} {obj}", obj, colour, bg])
    return len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"wrote {make(args.out, args.seed)} pins under {args.out}")
