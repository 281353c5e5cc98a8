"""A generated engagement world: users with tastes save pins to boards over time.

Pins are objects x colours x patterns painted with world.py's painter on this world's own scenes: a
backdrop texture (bands, waves, bricks, polka, grid, gradient) in a palette (sunset, ocean, forest,
desert, pastel, night), 36 scenes that the nano training and eval worlds never show; stills, short
videos and idea pins whose pages share one scene. Each user keeps two boards; a board gathers one scene
(every pin on ocean bricks) across objects, colours, patterns and kinds, so the engagement signal is
not in the content labels but in the pixels around them; a quarter of the boards take only videos and
idea pins (a board of motion and ideas on one scene).

``THEME_SHARE`` can also give boards a palette (anything at sunset) or a texture (anything on waves) as
theme; the default is scenes only. A palette board is a colour family, close to what content labels
(colour and object) say, and a theme as broad as a sixth of all pins caps held-out Recall@10 near 0.07
for those pairs even for a model that knows every pin's theme (with them on 30% of boards, the benchmark
measured gains of +0.03 and +0.05 on seeds 0 and 1 where scenes alone give about +0.15).

Why its own scenes: a theme of world.py's plain scenes or patterns (the first version of this world)
ranks pins by the very attributes whose variety quality.py's related-precision-by-label check asks a
model to ignore, so one embedding cannot gain one without losing the other. With 36 scenes (25 pins
each at 900 pins) the cap of a model that knows every pin's scene exactly is about 0.4.

Saves happen over time (pins appear over time too); 10% of saves are off-theme noise. Pairs:

- ``save``: a new save on a board pairs with up to 3 earlier saves on that board (query = the earlier
  pin, engaged = the new one);
- ``closeup``: 30% of saves follow a closeup of another on-theme pin (query = the pin closed up).

Writes ``pairs.csv`` (query_pin_id, engaged_pin_id, weight, timestamp, action; sorted by time),
``labels.csv`` (as world.py, with ``texture`` and ``palette`` for ``background``) and the media. The
latest pairs by timestamp are the held-out split of ``pinembed train --pairs``. ``same_label_share`` in ``world.json`` says how many
pairs a content-label match would explain.

    python sample_media/engagement.py --out build/engagement --seed 0 [--pins 900 --users 60 --scenes 36]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

_spec = importlib.util.spec_from_file_location("pinembed_sample_world", Path(__file__).with_name("world.py"))
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)

# The engagement world's own scenes: a backdrop texture in a palette, a vocabulary the nano training
# and eval worlds (world.BACKGROUNDS) never use, so learning it is new knowledge, not a re-weighting of
# the attributes quality.py's no-forgetting check varies (objects, colours, patterns, plain scenes).
PALETTES = {"sunset": ((250, 150, 90), (200, 70, 120)), "ocean": ((30, 120, 160), (10, 40, 90)),
            "forest": ((40, 90, 50), (130, 160, 70)), "desert": ((230, 200, 140), (190, 110, 60)),
            "pastel": ((200, 235, 215), (215, 195, 240)), "night": ((20, 20, 60), (230, 210, 90))}
TEXTURES = ("bands", "waves", "bricks", "polka", "grid", "gradient")
SCENES = [(t, p) for t in TEXTURES for p in PALETTES]
THEME_SHARE = {"scene": 1.0, "palette": 0.0, "texture": 0.0}  # how boards pick a theme
KIND_SHARE = {"image": 0.72, "video": 0.14, "idea": 0.14}
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 100


def backdrop(texture: str, palette: str, size: int = world.SIZE) -> Image.Image:
    """A scene: ``texture`` painted in the two colours of ``palette``."""
    a, b = PALETTES[palette]
    im = Image.new("RGB", (size, size), a)
    d = ImageDraw.Draw(im)
    if texture == "bands":
        for y in range(0, size, 16):
            d.rectangle([0, y + 8, size, y + 15], fill=b)
    elif texture == "waves":
        for y0 in range(4, size, 12):
            d.line([(x, y0 + 3 * math.sin(x / 4)) for x in range(size + 1)], fill=b, width=3)
    elif texture == "bricks":
        for row, y in enumerate(range(0, size, 10)):
            d.line([(0, y), (size, y)], fill=b, width=2)
            for x in range(-10 if row % 2 else 0, size, 20):
                d.line([(x, y), (x, y + 10)], fill=b, width=2)
    elif texture == "polka":
        for y in range(6, size, 14):
            for x in range(6 + (y // 14 % 2) * 7, size, 14):
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=b)
    elif texture == "grid":
        for v in range(0, size, 10):
            d.line([(v, 0), (v, size)], fill=b, width=1)
            d.line([(0, v), (size, v)], fill=b, width=1)
    else:  # gradient
        for y in range(size):
            t = y / (size - 1)
            d.line([(0, y), (size, y)], fill=tuple(round(a[i] + (b[i] - a[i]) * t) for i in range(3)))
    return im


def _still(obj: str, colour: str, pattern: str, scene: tuple[str, str], rng: random.Random) -> Image.Image:
    im = backdrop(*scene)
    r = rng.uniform(14, 22)
    world.draw_object(im, obj, colour, pattern, rng.uniform(r + 2, world.SIZE - r - 2),
                      rng.uniform(r + 2, world.SIZE - r - 2), r)
    return im


def _video(path: Path, obj: str, colour: str, pattern: str, scene: tuple[str, str], rng: random.Random,
           secs: int = 2, fps: int = 4) -> None:
    """A short h264 clip of the object sliding across one of this world's scenes (world.video)."""
    world.video(path, obj, colour, pattern, None, rng, secs, fps, scene=lambda: backdrop(*scene))


def _caption(obj: str, colour: str, scene: tuple[str, str], rng: random.Random) -> str:
    """Mostly what the pin shows; a quarter of captions name the scene too."""
    if rng.random() < world.DETAIL:
        return f"a {colour} {obj} on a {scene[1]} {scene[0]} backdrop"
    return rng.choice([f"a {colour} {obj}", f"{colour} {obj}", f"photo of a {colour} {obj}"])


def matches(theme: tuple[str, str], scene: tuple[str, str]) -> bool:
    """Whether a pin in ``scene`` (texture, palette) fits a board's theme."""
    what, value = theme
    if what == "scene":
        return "/".join(scene) == value
    return scene[0 if what == "texture" else 1] == value


def _theme(rng: random.Random, scenes: list[tuple[str, str]]) -> tuple[str, str]:
    what = rng.choices(list(THEME_SHARE), weights=list(THEME_SHARE.values()))[0]
    if what == "scene":
        return what, "/".join(rng.choice(scenes))
    return what, rng.choice(sorted({s[0 if what == "texture" else 1] for s in scenes}))


def _pins(out: Path, n: int, rng: random.Random, scenes: list[tuple[str, str]]) -> list[dict]:
    pins = []
    kinds = list(KIND_SHARE)
    for i in range(n):
        obj, colour = rng.choice(world.OBJECTS), rng.choice(list(world.COLOURS))
        pattern, scene = rng.choice(world.PATTERNS), rng.choice(scenes)
        kind = rng.choices(kinds, weights=[KIND_SHARE[k] for k in kinds])[0]
        base = f"{i:04d}-{colour}-{obj}-{pattern}-{scene[1]}-{scene[0]}"
        if kind == "image":
            rel = f"images/{base}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            _still(obj, colour, pattern, scene, rng).save(out / rel)
            (out / rel).with_suffix(".txt").write_text(_caption(obj, colour, scene, rng) + "\n")
        elif kind == "video":
            rel = f"videos/{base}.mp4"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            _video(out / rel, obj, colour, pattern, scene, rng)
            (out / rel).with_suffix(".txt").write_text(f"a {colour} {obj} moving\n")
        else:
            rel = f"ideas/{base}"
            folder = out / rel
            folder.mkdir(parents=True)
            pages = []
            for j in range(2):  # one scene per idea pin: its theme
                _still(obj, colour, pattern, scene, rng).save(folder / f"page{j}.png")
                pages.append({"media": f"page{j}.png", "text": _caption(obj, colour, scene, rng)})
            (folder / "pin.json").write_text(json.dumps(
                {"title": f"Ideas with a {colour} {obj}", "description": f"{colour} {obj} ideas", "pages": pages}))
        born = 0.0 if rng.random() < 0.6 else rng.uniform(0, DAYS * 0.9)  # most pins exist from the start
        pins.append({"pin_id": rel, "kind": kind, "object": obj, "colour": colour, "pattern": pattern,
                     "scene": scene, "born": born})
    return pins


def _engagement(pins: list[dict], users: int, saves_per_board: int, rng: random.Random,
                scenes: list[tuple[str, str]]) -> list[tuple]:
    """(time in days, query pin, engaged pin, action) rows, sorted by time."""
    boards = []
    for _ in range(users):
        for theme in (_theme(rng, scenes), _theme(rng, scenes)):
            motion = rng.random() < 0.25
            fits = [p for p in pins if matches(theme, p["scene"])
                    and (not motion or p["kind"] != "image")]
            if len(fits) >= 4:
                boards.append({"theme": theme, "fits": fits, "saved": []})
    events = sorted((rng.uniform(0, DAYS), b) for b in range(len(boards)) for _ in range(saves_per_board))
    rows = []
    for t, b in events:
        board = boards[b]
        alive = [p for p in board["fits"] if p["born"] <= t and p not in board["saved"]]
        if rng.random() < 0.1:  # off-theme noise
            alive = [p for p in pins if p["born"] <= t and p not in board["saved"]]
        if not alive:
            continue
        pin = rng.choice(alive)
        for prev in board["saved"][-3:]:
            rows.append((t, prev["pin_id"], pin["pin_id"], "save"))
        if rng.random() < 0.3:
            seen = [p for p in board["fits"] if p["born"] <= t and p is not pin]
            if seen:
                rows.append((t - 0.001, rng.choice(seen)["pin_id"], pin["pin_id"], "closeup"))
        board["saved"].append(pin)
    rows.sort(key=lambda r: r[0])
    return rows


def make(out: Path, seed: int = 0, pins: int = 900, users: int = 60, saves_per_board: int = 10,
         scenes: int = len(SCENES)) -> dict:
    """Write the world under ``out``; returns its summary (also in ``out/world.json``). ``scenes`` < 36:
    the pins use a seeded sample of that many scenes (a small world whose boards still fill)."""
    if not 1 <= scenes <= len(SCENES):
        raise ValueError(f"scenes must be between 1 and {len(SCENES)}, got {scenes}")
    used = SCENES if scenes == len(SCENES) else sorted(random.Random(f"scenes-{seed}").sample(SCENES, scenes))
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    made = _pins(out, pins, rng, used)
    rows = _engagement(made, users, saves_per_board, rng, used)
    with open(out / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query_pin_id", "engaged_pin_id", "weight", "timestamp", "action"])
        for t, q, e, action in rows:
            stamp = (START + timedelta(days=t)).isoformat().replace("+00:00", "Z")
            w.writerow([q, e, 1, stamp, action])
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pin_id", "kind", "label", "text", "object", "colour", "pattern", "texture", "palette"])
        for p in made:
            label = f"{p['colour']} {p['object']}"
            w.writerow([p["pin_id"], p["kind"], label, f"a {label}", p["object"], p["colour"], p["pattern"],
                        *p["scene"]])
    by_id = {p["pin_id"]: p for p in made}
    same = sum(1 for _, q, e, _ in rows if (by_id[q]["object"], by_id[q]["colour"]) == (by_id[e]["object"],
                                                                                    by_id[e]["colour"]))
    summary = {"seed": seed, "pins": len(made), "scenes": len(used), "kinds": {k: sum(p["kind"] == k for p in made) for k in KIND_SHARE},
               "pairs": len(rows), "actions": {a: sum(r[3] == a for r in rows) for a in ("save", "closeup")},
               "same_label_share": round(same / max(1, len(rows)), 4)}
    (out / "world.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pins", type=int, default=900)
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--saves-per-board", type=int, default=10)
    ap.add_argument("--scenes", type=int, default=len(SCENES), help="a seeded sample of this many scenes")
    a = ap.parse_args()
    print(json.dumps(make(a.out, a.seed, a.pins, a.users, a.saves_per_board, a.scenes)))
