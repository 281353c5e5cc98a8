"""A generated engagement world: users with tastes save pins to boards over time.

Pins are drawn with world.py's painter (objects x colours x patterns x scenes; stills, short videos and
idea pins whose pages share one scene and pattern). Each user keeps a few boards; a board gathers one
theme that cuts across objects and colours, so the engagement signal is not in the content labels:

- a scene (every pin on a blue sky), a pattern (everything striped), or a style (dotted on grass);
- a quarter of the boards take only videos and idea pins (a board of motion and ideas on one theme).

Saves happen over time (pins appear over time too); 10% of saves are off-theme noise. Pairs:

- ``save``: a new save on a board pairs with up to 3 earlier saves on that board (query = the earlier
  pin, engaged = the new one);
- ``closeup``: 30% of saves follow a closeup of another on-theme pin (query = the pin closed up).

Writes ``pairs.csv`` (query_pin_id, engaged_pin_id, weight, timestamp, action; sorted by time),
``labels.csv`` (as world.py, plus ``theme`` columns) and the media. The latest pairs by timestamp are
the held-out split of ``pinembed train --pairs``. ``same_label_share`` in ``world.json`` says how many
pairs a content-label match would explain.

    python sample_media/engagement.py --out build/engagement --seed 0 [--pins 900 --users 60]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

_spec = importlib.util.spec_from_file_location("pinembed_sample_world", Path(__file__).with_name("world.py"))
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)

THEMES = ([("scene", bg) for bg in world.BACKGROUNDS] + [("pattern", p) for p in ("striped", "dotted")]
          + [("style", "dotted/grass"), ("style", "striped/sky"), ("style", "solid/checker")])
KIND_SHARE = {"image": 0.72, "video": 0.14, "idea": 0.14}
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 100


def matches(theme: tuple[str, str], pattern: str, bg: str) -> bool:
    """Whether a pin of ``pattern`` on ``bg`` fits a board's theme."""
    what, value = theme
    if what == "scene":
        return bg == value
    if what == "pattern":
        return pattern == value
    p, b = value.split("/")
    return pattern == p and bg == b


def _pins(out: Path, n: int, rng: random.Random) -> list[dict]:
    pins = []
    kinds = list(KIND_SHARE)
    for i in range(n):
        obj, colour = rng.choice(world.OBJECTS), rng.choice(list(world.COLOURS))
        pattern, bg = rng.choice(world.PATTERNS), rng.choice(world.BACKGROUNDS)
        kind = rng.choices(kinds, weights=[KIND_SHARE[k] for k in kinds])[0]
        base = f"{i:04d}-{colour}-{obj}-{pattern}-{bg}"
        if kind == "image":
            rel = f"images/{base}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            world.still(obj, colour, pattern, bg, rng).save(out / rel)
            (out / rel).with_suffix(".txt").write_text(world.caption(obj, colour, pattern, bg, rng) + "\n")
        elif kind == "video":
            rel = f"videos/{base}.mp4"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            world.video(out / rel, obj, colour, pattern, bg, rng)
            (out / rel).with_suffix(".txt").write_text(f"a {colour} {obj} moving\n")
        else:
            rel = f"ideas/{base}"
            folder = out / rel
            folder.mkdir(parents=True)
            pages = []
            for j in range(2):  # one scene and pattern per idea pin: its theme
                world.still(obj, colour, pattern, bg, rng).save(folder / f"page{j}.png")
                pages.append({"media": f"page{j}.png", "text": world.caption(obj, colour, pattern, bg, rng)})
            (folder / "pin.json").write_text(json.dumps(
                {"title": f"Ideas with a {colour} {obj}", "description": f"{colour} {obj} ideas", "pages": pages}))
        born = 0.0 if rng.random() < 0.6 else rng.uniform(0, DAYS * 0.9)  # most pins exist from the start
        pins.append({"pin_id": rel, "kind": kind, "object": obj, "colour": colour, "pattern": pattern,
                     "background": bg, "born": born})
    return pins


def _engagement(pins: list[dict], users: int, saves_per_board: int, rng: random.Random) -> list[tuple]:
    """(time in days, query pin, engaged pin, action) rows, sorted by time."""
    boards = []
    for _ in range(users):
        for theme in rng.sample(THEMES, 2):
            motion = rng.random() < 0.25
            fits = [p for p in pins if matches(theme, p["pattern"], p["background"])
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


def make(out: Path, seed: int = 0, pins: int = 900, users: int = 60, saves_per_board: int = 10) -> dict:
    """Write the world under ``out``; returns its summary (also in ``out/world.json``)."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    made = _pins(out, pins, rng)
    rows = _engagement(made, users, saves_per_board, rng)
    with open(out / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query_pin_id", "engaged_pin_id", "weight", "timestamp", "action"])
        for t, q, e, action in rows:
            stamp = (START + timedelta(days=t)).isoformat().replace("+00:00", "Z")
            w.writerow([q, e, 1, stamp, action])
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pin_id", "kind", "label", "text", "object", "colour", "pattern", "background"])
        for p in made:
            label = f"{p['colour']} {p['object']}"
            w.writerow([p["pin_id"], p["kind"], label, f"a {label}", p["object"], p["colour"], p["pattern"],
                        p["background"]])
    by_id = {p["pin_id"]: p for p in made}
    same = sum(1 for _, q, e, _ in rows if (by_id[q]["object"], by_id[q]["colour"]) == (by_id[e]["object"],
                                                                                    by_id[e]["colour"]))
    summary = {"seed": seed, "pins": len(made), "kinds": {k: sum(p["kind"] == k for p in made) for k in KIND_SHARE},
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
    a = ap.parse_args()
    print(json.dumps(make(a.out, a.seed, a.pins, a.users, a.saves_per_board)))
