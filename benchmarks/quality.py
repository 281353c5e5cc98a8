"""Quality of a model on a held-out generated world, as one JSON object, against the project's bars.

The eval world (sample_media/world.py --split eval) uses another seed and only (pattern, background)
combinations that the training split never has. It is ingested with the model, then `pinembed eval`
metrics are computed against its labels.

    python benchmarks/quality.py [--model nano] [--seed 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BARS = {  # metric path -> minimum
    "text_to_pin.recall@5": 0.90,
    "pin_to_pin.precision@10": 0.80,
    "cross_kind.image->video.precision@5": 0.75,
}


def _get(report: dict, path: str) -> float:
    node = report
    head, _, rest = path.partition(".")
    node = node[head]
    if head == "cross_kind":
        key, _, metric = rest.rpartition(".")
        return node[key][metric]
    return node[rest]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="nano")
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    import pinembed
    from pinembed.embedders.registry import nano_dir
    from pinembed.training.evaluate import evaluate

    spec = importlib.util.spec_from_file_location("world", REPO / "sample_media" / "world.py")
    world = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(world)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "world-eval"
        n = world.make(src, "eval", args.seed)
        idx = pinembed.open_index(str(Path(tmp) / "eval.lance"), model=args.model)
        summary = idx.ingest(src)
        report = evaluate(idx, src / "labels.csv")
    out = {"benchmark": "quality", "model": args.model, "eval_seed": args.seed, "eval_pins": n,
           "ingest_failed": summary.failed, "report": report,
           "bars": {k: {"min": v, "value": _get(report, k), "pass": (_get(report, k) or 0) >= v}
                    for k, v in BARS.items()}}
    if args.model == "nano":
        d = nano_dir()
        weights = d / "open_clip_model.safetensors"
        out["nano"] = {"checkpoint_mb": round(weights.stat().st_size / 2**20, 2)}
        meta = d / "training.json"
        if meta.is_file():
            m = json.loads(meta.read_text())
            out["nano"].update({k: m.get(k) for k in ("seconds", "epochs", "pairs", "steps", "first_loss",
                                                      "last_loss", "cpus", "torch_threads")})
    out["all_pass"] = all(b["pass"] for b in out["bars"].values())
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
