"""Evaluation metrics on hand-built cases with known answers."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

import pinembed
from pinembed.cli.main import cli
from pinembed.metrics import hub_stats, precision_at, recall_at
from pinembed.store.identity import space_identity
from pinembed.store.rows import now


def test_metric_functions():
    ranked = ["b", "a", None, "a", "c"]
    assert [recall_at(ranked, "a", k) for k in (1, 2, 5)] == [0.0, 1.0, 1.0]
    assert precision_at(ranked, "a", 5) == 0.4 and precision_at(ranked, "a", 10) == 0.2
    h = hub_stats(Counter({"x": 10, "y": 1}), n_pins=10, n_queries=200)  # 1% of 200 = 2
    assert h == {"share_over_1pct": 0.1, "p90": pytest.approx(1.9), "max": 10.0}


@pytest.fixture()
def labelled_db(tmp_path, tiny):
    """Six pins in two tight clusters centred on the tiny model's own text vectors."""
    db = str(tmp_path / "eval.lance")
    idx = pinembed.open_index(db)
    idx.store.ensure_space(space_identity(tiny.identity()))
    red, blue = tiny.embed_texts(["a red star", "a blue ring"])
    rng = np.random.default_rng(0)

    def near(c, eps=0.01):
        v = c + eps * rng.normal(size=c.shape).astype(np.float32)
        return v / np.linalg.norm(v)

    pins = [("r-img1", "image", red), ("r-img2", "image", near(red)), ("r-vid", "video", near(red)),
            ("r-idea", "idea", near(red)), ("b-img1", "image", blue), ("b-img2", "image", near(blue)),
            ("b-vid", "video", near(blue)), ("b-idea", "idea", near(blue))]
    idx.store.write([{"pin_id": p, "kind": k, "uri": p, "source_sig": "1:1", "n_segments": 0,
                      "model_id": tiny.model_id, "vector": v, "embedded_at": now()} for p, k, v in pins])
    labels = tmp_path / "labels.csv"
    labels.write_text("pin_id,label,text\n" + "".join(
        f"{p},{'red star' if p.startswith('r') else 'blue ring'},{'a red star' if p.startswith('r') else 'a blue ring'}\n"
        for p, _, _ in pins) + "not-in-db.jpg,red star,a red star\n")
    return db, labels


def test_evaluate_known_answers(labelled_db):
    db, labels = labelled_db
    r = CliRunner().invoke(cli, ["eval", "--db", db, "--labels", str(labels), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert (rep["pins"], rep["labelled"], rep["missing"], rep["labels"]) == (8, 8, 1, 2)
    assert rep["text_to_pin"] == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "queries": 2}
    # each pin's 7 neighbours: its 3 same-label pins first, then the 4 others
    assert rep["pin_to_pin"] == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "precision@10": 0.3,
                                 "queries": 8}
    # same-label pins of the target kind out of 5 slots: 1 video, 1 idea, 2 images
    assert rep["cross_kind"] == {"image->video": {"precision@5": 0.2, "queries": 4},
                                 "video->idea": {"precision@5": 0.2, "queries": 2},
                                 "idea->image": {"precision@5": 0.4, "queries": 2}}
    assert rep["hubs"] == {"share_over_1pct": 1.0, "p90": 7.0, "max": 7.0, "queries": 8}
    text = CliRunner().invoke(cli, ["eval", "--db", db, "--labels", str(labels)])
    assert text.exit_code == 0 and "precision@10 0.3" in text.stdout


def test_bad_labels_file(labelled_db, tmp_path):
    db, _ = labelled_db
    bad = tmp_path / "bad.csv"
    bad.write_text("id,class\nx,y\n")
    r = CliRunner().invoke(cli, ["eval", "--db", db, "--labels", str(bad)])
    assert r.exit_code == 2 and "needs the columns pin_id and label" in r.stderr
    none = tmp_path / "none.csv"
    none.write_text("pin_id,label\nelsewhere.jpg,x\n")
    r = CliRunner().invoke(cli, ["eval", "--db", db, "--labels", str(none)])
    assert r.exit_code == 2 and "none of the labelled pins" in r.stderr
