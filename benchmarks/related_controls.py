"""What the related-pin controls change on sample_media, as one JSON object.

sample_media/ is ingested with nano, plus re-uploads: a copy of every 4th image (resaved as JPEG at
another quality) and one frame of each video saved as an image. For every original pin, related(k=10)
is compared plain, with dedupe=0.95 and with diversity 0.3 / 0.6: how many re-uploads of the query
(or of a result already shown) the list holds, and how many distinct labels (and objects, colours)
the top 10 spans. Sessions: for pairs of pins with different labels, the share of the top 10 that
carries either label, from related_to_session vs related() of the mean vector.

    python benchmarks/related_controls.py [--model nano]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="nano")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import numpy as np
    from PIL import Image

    import pinembed
    from pinembed.ingestion.video_decode import VideoParams, decode_video

    rows = list(csv.DictReader(open(REPO / "sample_media" / "labels.csv")))
    label = {r["pin_id"]: r for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "media"
        shutil.copytree(REPO / "sample_media", src, ignore=shutil.ignore_patterns("nano", "*.py", "*.csv"))
        reup: dict[str, str] = {}  # re-upload pin id -> original pin id
        images = sorted(r["pin_id"] for r in rows if r["kind"] == "image")
        for i, pid in enumerate(images[::4]):
            dst = f"reuploads/copy-{i:02d}.jpg"
            (src / "reuploads").mkdir(exist_ok=True)
            Image.open(src / pid).convert("RGB").save(src / dst, quality=70)
            reup[dst] = pid
        for pid in sorted(r["pin_id"] for r in rows if r["kind"] == "video"):
            frames = decode_video(str(src / pid), VideoParams(max_frames=3, target_side=256))
            dst = f"reuploads/frame-{Path(pid).stem}.png"
            Image.fromarray(frames.frames[1]).save(src / dst)
            reup[dst] = pid
        for dst, pid in reup.items():
            label[dst] = label[pid]
        idx = pinembed.open_index(str(Path(tmp) / "db.lance"), model=args.model)
        idx.ingest(src)

        def group(pid: str) -> str:
            return reup.get(pid, pid)

        def measure(**kw) -> dict:
            dup, labels, objects, colours = [], [], [], []
            for q in label:
                if q in reup:
                    continue
                res = [r.pin_id for r in idx.related(q, k=10, **kw)]
                groups = [group(p) for p in res]
                dup.append(sum(g == q for g in groups) + len(groups) - len(set(groups)))
                labels.append(len({label[p]["label"] for p in res}))
                objects.append(len({label[p]["object"] for p in res}))
                colours.append(len({label[p]["colour"] for p in res}))
            return {"reuploads_in_top10": round(float(np.mean(dup)), 3),
                    "queries_with_a_reupload": round(float(np.mean([d > 0 for d in dup])), 3),
                    "distinct_labels_top10": round(float(np.mean(labels)), 2),
                    "distinct_objects_top10": round(float(np.mean(objects)), 2),
                    "distinct_colours_top10": round(float(np.mean(colours)), 2)}

        out = {"benchmark": "related_controls", "model": args.model, "pins": idx.store.count(),
               "reuploads_added": len(reup), "queries": len(label) - len(reup),
               "plain": measure(), "dedupe_0.95": measure(dedupe=0.95),
               "diversity_0.3": measure(diversity=0.3), "diversity_0.6": measure(diversity=0.6),
               "dedupe_0.95_diversity_0.3": measure(dedupe=0.95, diversity=0.3)}
        clusters = idx.dupes(0.95)
        out["dupes_0.95"] = {"clusters": len(clusters),
                             "clusters_that_are_a_reupload_pair": sum(
                                 any(group(p) != p and group(p) in c for p in c) for c in clusters),
                             "largest": len(clusters[0]) if clusters else 0}

        originals = [p for p in label if p not in reup]
        rng = np.random.default_rng(0)
        both_sess, both_mean, n = [], [], 0
        while n < 40:
            a, b = rng.choice(originals, 2, replace=False)
            la, lb = label[a]["label"], label[b]["label"]
            if la == lb or label[a]["object"] == label[b]["object"]:
                continue
            n += 1
            sess = [r.pin_id for r in idx.related_to_session([a, b], k=10)]
            mean = (idx.store.get_pin(a)["vector"] + idx.store.get_pin(b)["vector"]) / 2
            plain = [r.pin_id for r in idx.search_vector(mean, k=12) if r.pin_id not in (a, b)][:10]
            both_sess.append(min(sum(label[p]["label"] == la for p in sess), sum(label[p]["label"] == lb for p in sess)))
            both_mean.append(min(sum(label[p]["label"] == la for p in plain), sum(label[p]["label"] == lb for p in plain)))
        out["session_two_interests"] = {
            "pairs": n, "note": "results carrying the less-served interest's label, in the top 10",
            "related_to_session": round(float(np.mean(both_sess)), 2),
            "mean_vector": round(float(np.mean(both_mean)), 2)}
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
