"""Learning from engagement, as one JSON object: fine-tuning nano on engaged pin pairs.

1. Generate the engagement world (sample_media/engagement.py, ``--seed``), ingest it with nano, and
   measure held-out Recall@10 (the latest 20% of pairs by time; `pinembed eval --pairs` protocol over
   every pin in the database), overall and by query kind -> engaged kind.
2. Fine-tune nano on the training pairs (`pinembed train --pairs`), switch the database to the new
   model (`refresh --model`), measure again.
3. No forgetting: text->pin recall@5 and related precision@10 by label on quality.py's eval world
   (sample_media/world.py --split eval), with nano and with the fine-tuned model.
4. Optionally (``--speed``) the eval speed bar: 10k random pairs over 100k synthetic 512-d pins.

Goal: recall_at_10_after - recall_at_10_before >= 0.15, text_recall_at_5_after >= 0.90,
label_precision_at_10_before - label_precision_at_10_after <= 0.05.

    python benchmarks/engagement.py [--seed 0] [--pins 900] [--epochs 12] [--speed]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "sample_media" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _heldout(pairs_csv: Path, out: Path, holdout: float) -> Path:
    from pinembed.training.engagement_pairs import read_pairs

    _, held = read_pairs(pairs_csv).split_by_time(holdout)
    with open(out, "w") as f:
        f.write("query_pin_id,engaged_pin_id,weight,action\n")
        for q, e, w, a in zip(held.query, held.engaged, held.weight, held.action, strict=True):
            f.write(f"{q},{e},{w},{a}\n")
    return out


def _engagement(db: str, pairs: Path) -> dict:
    from pinembed.store import Store
    from pinembed.training.engagement_eval import evaluate_pairs
    from pinembed.training.engagement_pairs import read_pairs

    rep = evaluate_pairs(Store(db), read_pairs(pairs))
    return {"recall@10": rep["recall@10"], "recall@1": rep["recall@1"], "recall@100": rep["recall@100"],
            "mrr": rep["mrr"], "pairs": rep["pairs"], "hubs": rep["hubs"],
            "by_kind": {k: v["recall@10"] for k, v in rep["by_kind"].items()}}


def _quality(model: str, src: Path, db: str) -> dict:
    import pinembed
    from pinembed.training.evaluate import evaluate

    idx = pinembed.open_index(db, model=model)
    idx.ingest(src)
    rep = evaluate(idx, src / "labels.csv")
    return {"text_recall@5": rep["text_to_pin"]["recall@5"], "label_precision@10": rep["pin_to_pin"]["precision@10"]}


def _speed(tmp: str) -> dict:
    import numpy as np
    import pyarrow as pa

    from pinembed.store import Store, space_identity
    from pinembed.store.rows import now
    from pinembed.training.engagement_eval import evaluate_pairs
    from pinembed.training.engagement_pairs import EngagementPairs

    n, dim, npairs = 100_000, 512, 10_000
    rng = np.random.default_rng(0)
    store = Store(os.path.join(tmp, "speed.lance"))
    store.ensure_space(space_identity({"model_id": "synthetic", "dim": dim, "weights_digest": "-", "preprocess": {}}))
    table = store._pins()
    for s in range(0, n, 50_000):
        e = min(n, s + 50_000)
        v = rng.normal(size=(e - s, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        cols = {f.name: pa.nulls(e - s, f.type) for f in table.schema}
        cols.update(pin_id=pa.array([f"pin{i:07d}" for i in range(s, e)]), kind=pa.array(["image"] * (e - s)),
                    n_segments=pa.array([0] * (e - s), pa.int32()),
                    vector=pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim),
                    embedded_at=pa.array([now()] * (e - s), pa.timestamp("us", tz="UTC")))
        table.add(pa.Table.from_pydict(cols, schema=table.schema))
    q, e = rng.integers(0, n, npairs), rng.integers(0, n, npairs)
    pairs = EngagementPairs([f"pin{i:07d}" for i in q], [f"pin{i:07d}" for i in e], [1.0] * npairs,
                            [None] * npairs, [""] * npairs)
    t = time.perf_counter()
    evaluate_pairs(Store(os.path.join(tmp, "speed.lance")), pairs)
    return {"pairs": npairs, "pins": n, "dim": dim, "seconds": round(time.perf_counter() - t, 1), "max_s": 60}


def main() -> None:
    from pinembed.training.engagement_train import PairTrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of the engagement world")
    ap.add_argument("--pins", type=int, default=900)
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=PairTrainConfig.epochs)
    ap.add_argument("--batch-size", type=int, default=PairTrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=PairTrainConfig.lr)
    ap.add_argument("--text-weight", type=float, default=PairTrainConfig.text_weight)
    ap.add_argument("--train-blocks", type=int, default=PairTrainConfig.train_blocks)
    ap.add_argument("--anchor-weight", type=float, default=PairTrainConfig.anchor_weight)
    ap.add_argument("--anchor-batch", type=int, default=PairTrainConfig.anchor_batch)
    ap.add_argument("--anchor-per-label", type=int, default=40,
                    help="rehearsal stills per label of nano's training world (64 labels)")
    ap.add_argument("--no-anchor-data", action="store_true",
                    help="anchor only the engagement pins, not a sample of nano's own training world")
    ap.add_argument("--patience", type=int, default=PairTrainConfig.patience)
    ap.add_argument("--negatives", type=int, default=PairTrainConfig.negatives)
    ap.add_argument("--quality-seed", type=int, default=1000, help="seed of quality.py's eval world")
    ap.add_argument("--speed", action="store_true", help="also time eval of 10k pairs over 100k pins")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    import torch

    import pinembed
    from pinembed.training.engagement_train import train_on_pairs

    t0 = time.perf_counter()
    out: dict = {"benchmark": "engagement", "seed": args.seed, "cpus": os.cpu_count(),
                 "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "engagement"
        out["world"] = _load("engagement").make(src, args.seed, args.pins, args.users)
        db = str(Path(tmp) / "eng.lance")
        pinembed.open_index(db, model="nano").ingest(src)
        held = _heldout(src / "pairs.csv", Path(tmp) / "heldout.csv", 0.2)
        before = _engagement(db, held)
        anchor = None
        if not args.no_anchor_data:  # rehearsal: a sample of nano's training world (world.py train split)
            anchor = Path(tmp) / "world-train"
            _load("world").make(anchor, "train", 7 + args.seed, images_per_label=args.anchor_per_label,
                                videos_per_label=1)
        t = time.perf_counter()
        r = train_on_pairs(PairTrainConfig(pairs=str(src / "pairs.csv"), db=db, out=str(Path(tmp) / "tuned"),
                                           init="nano", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                           text_weight=args.text_weight, train_blocks=args.train_blocks,
                                           anchor_weight=args.anchor_weight,
                                           anchor_batch=args.anchor_batch, negatives=args.negatives,
                                           anchor_data=str(anchor) if anchor else None, patience=args.patience, seed=0))
        out["training"] = {"train_pairs": r.train_pairs, "heldout_pairs": r.heldout_pairs, "pins": r.pins,
                           "steps": r.steps, "best_epoch": r.best_epoch, "heldout_recall_at_10_by_epoch": r.recall_at_10,
                           "train_seconds": r.train_seconds, "pairs_per_s": r.pairs_per_s,
                           "wall_s": round(time.perf_counter() - t, 1)}
        pinembed.open_index(db, model=r.model_id).refresh(src)
        after = _engagement(db, held)
        qsrc = Path(tmp) / "world-eval"
        _load("world").make(qsrc, "eval", args.quality_seed)
        q_before = _quality("nano", qsrc, str(Path(tmp) / "q1.lance"))
        q_after = _quality(r.model_id, qsrc, str(Path(tmp) / "q2.lance"))
        out.update({
            "recall_at_10_before": before["recall@10"], "recall_at_10_after": after["recall@10"],
            "recall_at_10_gain": round(after["recall@10"] - before["recall@10"], 4),
            "by_kind_recall_at_10": {k: {"before": before["by_kind"].get(k), "after": v}
                                     for k, v in after["by_kind"].items()},
            "before": before, "after": after,
            "text_recall_at_5_before": q_before["text_recall@5"], "text_recall_at_5_after": q_after["text_recall@5"],
            "label_precision_at_10_before": q_before["label_precision@10"],
            "label_precision_at_10_after": q_after["label_precision@10"],
        })
        if args.speed:
            out["eval_speed"] = _speed(tmp)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["goal"] = {
        "recall_gain_ge_0.15": out["recall_at_10_gain"] >= 0.15,
        "text_recall_at_5_ge_0.90": (out["text_recall_at_5_after"] or 0) >= 0.90,
        "label_precision_drop_le_0.05": (out["label_precision_at_10_before"] or 0)
        - (out["label_precision_at_10_after"] or 0) <= 0.05,
        "under_15_min": out["wall_s"] < 900,
    }
    out["all_pass"] = all(out["goal"].values())
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
