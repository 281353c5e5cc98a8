"""``pinembed eval``: retrieval quality of a pin database against a labels file.

Labels file: a CSV with a header and the columns ``pin_id`` and ``label`` (required) and ``text``
(optional: a text query for that label; the label itself when absent). Other columns are ignored.

    pin_id,label,text
    images/red-star-01.png,red star,a red star
    videos/red-star-moving.mp4,red star,a red star

A hit is a result that carries the query's label. Metrics (as in Pinterest's released evaluation
code: recall against a distractor index, plus "hub" items that crowd many top-10 lists):
- text->pin recall@1/5/10: share of distinct (text, label) queries with a hit in the top k;
- pin->pin recall@1/5/10 and precision@10 of ``related`` (the query pin left out);
- cross-kind precision@5: image->video, video->idea, idea->image (``related`` filtered by kind);
- hubs: share of pins in the top 10 of more than 1% of pin->pin queries; p90 and max of those counts.

The metrics themselves are ``pinembed.metrics``'s (``recall_at``, ``precision_at``, ``hub_stats``).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from pinembed.errors import PinNotFoundError, UsageError
from pinembed.metrics import hub_stats, precision_at, recall_at

KS = (1, 5, 10)
CROSS = (("image", "video"), ("video", "idea"), ("idea", "image"))


def read_labels(path: str | os.PathLike[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({pin_id: label}, distinct [(text query, label)]) from a labels CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"pin_id", "label"} <= set(reader.fieldnames):
                raise UsageError(f"labels file {os.fspath(path)!r} needs the columns pin_id and label",
                                 "see `pinembed eval --help` for the format")
            rows = list(reader)
    except OSError as e:
        raise UsageError(f"cannot read labels file {os.fspath(path)!r}: {e.strerror}") from e
    labels = {r["pin_id"]: r["label"] for r in rows if r.get("pin_id") and r.get("label")}
    texts = sorted({((r.get("text") or r["label"]).strip(), r["label"]) for r in rows if r.get("label")})
    return labels, texts


def evaluate(index: Any, labels_path: str | os.PathLike[str]) -> dict[str, Any]:
    """All metrics for ``index`` (a PinIndex) against the labels file."""
    labels, texts = read_labels(labels_path)
    states = index.store.pin_states(("pin_id", "kind"))
    kinds = dict(zip(states.column("pin_id").to_pylist(), states.column("kind").to_pylist(), strict=True))
    present = {p: lab for p, lab in labels.items() if p in kinds}
    if not present:
        raise UsageError("none of the labelled pins is in the database",
                         "pin ids in the labels file must match the ids that ingest gave (paths relative to SRC)")
    out: dict[str, Any] = {"pins": len(kinds), "labelled": len(present), "missing": len(labels) - len(present),
                           "labels": len(set(present.values()))}
    kmax = max(KS)

    def lab(results) -> list[str | None]:
        return [present.get(r.pin_id) for r in results]

    used_texts = [(t, lab_) for t, lab_ in texts if lab_ in set(present.values())]
    text_hits = {k: [] for k in KS}
    for text, label in used_texts:
        ranked = lab(index.search_text(text, k=kmax))
        for k in KS:
            text_hits[k].append(recall_at(ranked, label, k))
    out["text_to_pin"] = {f"recall@{k}": _mean(v) for k, v in text_hits.items()} | {"queries": len(used_texts)}

    per_label = Counter(present.values())
    pin_hits = {k: [] for k in KS}
    precision, counts, n_queries = [], Counter(), 0
    for pin_id, label in present.items():
        try:
            results = index.related(pin_id, k=kmax)
        except PinNotFoundError:
            continue
        n_queries += 1
        counts.update(r.pin_id for r in results)
        if per_label[label] < 2:
            continue
        ranked = lab(results)
        for k in KS:
            pin_hits[k].append(recall_at(ranked, label, k))
        precision.append(precision_at(ranked, label, 10))
    out["pin_to_pin"] = ({f"recall@{k}": _mean(v) for k, v in pin_hits.items()}
                         | {"precision@10": _mean(precision), "queries": len(precision)})

    out["cross_kind"] = {}
    for a, b in CROSS:
        targets = Counter(lab_ for p, lab_ in present.items() if kinds[p] == b)
        scores = [precision_at(lab(index.related(p, k=5, kinds={b})), lab_, 5)
                  for p, lab_ in present.items() if kinds[p] == a and targets[lab_]]
        out["cross_kind"][f"{a}->{b}"] = {"precision@5": _mean(scores), "queries": len(scores)}
    out["hubs"] = hub_stats(counts, len(kinds), n_queries) | {"queries": n_queries}
    return out


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None
