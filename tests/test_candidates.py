"""Candidate tables (``pinembed candidates``): every query pin's top-k related pins, the semantics of
``related``, exact on small cases, IVF groups at scale, resumable after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pinembed
from pinembed.store import Store
from pinembed.store.identity import space_identity
from pinembed.store.rows import now

from helpers import save_image

EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


def run(*args, env=None, timeout=300):
    base = {k: v for k, v in os.environ.items() if k != "PINEMBED_FAILPOINT"}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def write_vectors(db: str, vecs: np.ndarray, kinds: list[str] | None = None, start: int = 0) -> list[str]:
    """Pins with the given (normalised) vectors, written as the store writes rows; their ids."""
    store = Store(db)
    n, dim = vecs.shape
    store.ensure_space(space_identity({"model_id": "synthetic", "dim": dim, "weights_digest": "-", "preprocess": {}}))
    table = store._pins()
    ids = [f"v{i:06d}" for i in range(start, start + n)]
    cols = {f.name: pa.nulls(n, f.type) for f in table.schema}
    cols.update(pin_id=pa.array(ids), kind=pa.array(kinds or ["image"] * n), n_segments=pa.array([0] * n, pa.int32()),
                vector=pa.FixedSizeListArray.from_arrays(pa.array(vecs.astype(np.float32).ravel()), dim),
                embedded_at=pa.array([now()] * n, pa.timestamp("us", tz="UTC")))
    table.add(pa.table(cols, schema=table.schema))
    return ids


def clustered(n: int, dim: int, centers: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    v = c[rng.integers(0, centers, n)] + 0.4 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def lists(table: pa.Table) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for r in table.sort_by([("pin_id", "ascending"), ("rank", "ascending")]).to_pylist():
        out.setdefault(r["pin_id"], []).append((r["candidate_id"], r["score"]))
    return out


def test_every_pin_gets_what_related_gives_it_with_ties_broken_the_same_way_each_run(tmp_path, db, tiny_model_id):
    for i in range(10):
        save_image(tmp_path / "m" / f"{i}.jpg", colour=(25 * i, 240 - 20 * i, (70 * i) % 255), fmt="JPEG")
    for j in range(3):  # three copies of one image: tied scores
        save_image(tmp_path / "m" / f"same{j}.jpg", colour=(10, 200, 30), fmt="JPEG")
    idx = pinembed.open_index(db, model=tiny_model_id)
    assert idx.ingest(tmp_path / "m").added == 13
    got = lists(idx.candidates(k=5))
    assert len(got) == 13 and all(len(v) == 5 for v in got.values())
    for pid, cands in got.items():
        want = [(r.pin_id, r.score) for r in idx.related(pid, k=5)]
        assert pid not in [c for c, _ in cands]
        assert np.allclose([s for _, s in cands], [s for _, s in want], atol=1e-5)
        kth = cands[-1][1]
        assert {c for c, s in cands if s > kth + 1e-5} == {c for c, s in want if s > kth + 1e-5}
    same = [p for p in got if "same" in p]
    for p in same:  # each copy's best two are the other copies, score 1
        assert {c for c, _ in got[p][:2]} == set(same) - {p} and got[p][0][1] == pytest.approx(1.0, abs=1e-5)
    assert lists(idx.candidates(k=5)) == got  # the same table again, ties included


def test_the_cli_writes_a_parquet_table_with_filters_and_query_pins(tmp_path, db):
    vecs = clustered(300, 16, 6)
    kinds = ["image" if i % 3 else "video" for i in range(300)]
    ids = write_vectors(db, vecs, kinds)
    (tmp_path / "q.txt").write_text("v000001\nv000002\nnot-a-pin\n")
    out = tmp_path / "cands.parquet"
    p = run("candidates", "--db", db, "--out", out, "-k", 7, "--kind", "video", "--pins", tmp_path / "q.txt", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["queries"], s["base"], s["rows"], s["missing_pins"], s["method"]) == (2, 100, 14, 1, "exact")
    t = pq.read_table(out)
    assert t.schema.names == ["pin_id", "rank", "candidate_id", "score"]
    meta = json.loads(t.schema.metadata[b"pinembed"])
    assert meta["k"] == 7 and meta["generation"] == s["generation"]
    by = {i: kinds[n] for n, i in enumerate(ids)}
    assert {by[c] for c in t.column("candidate_id").to_pylist()} == {"video"}
    sims = vecs[1] @ vecs.T
    sims[1] = -2
    video = np.array([k == "video" for k in kinds])
    want = [ids[i] for i in np.argsort(-np.where(video, sims, -3))[:7]]
    assert lists(t)["v000001"] == [(c, pytest.approx(float(sims[int(c[1:])]), abs=1e-5)) for c in want]
    bad = run("candidates", "--db", db, "--out", tmp_path / "x.parquet", "--where", "nope = 1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    (tmp_path / "notes.txt").write_text("mine")
    bad = run("candidates", "--db", db, "--out", tmp_path / "notes.txt")
    assert bad.returncode == 2 and "is a file, not a folder" in bad.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_ivf_groups_recall_the_exact_table_and_a_killed_job_finishes_only_its_missing_parts(tmp_path, db):
    vecs = clustered(40_000, 16, 60)
    write_vectors(db, vecs)
    exact_out, out = tmp_path / "exact", tmp_path / "ivf"
    p = run("candidates", "--db", db, "--out", exact_out, "-k", 10, "--exact", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["parts"] == 3  # 40k queries in parts of 16k
    killed = run("candidates", "--db", db, "--out", out, "-k", 10, env={"PINEMBED_FAILPOINT": "candidates_part:1"})
    assert killed.returncode == -9 and not out.exists()  # nothing appears before the end
    p = run("candidates", "--db", db, "--out", out, "-k", 10, "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["method"] == "ivf" and s["parts_reused"] == 1 and s["rows"] == 400_000
    truth, got = lists(pq.read_table(exact_out)), lists(pq.read_table(out))
    recall = np.mean([len({c for c, _ in got[q]} & {c for c, _ in truth[q]}) / 10 for q in truth])
    assert recall >= 0.95 and s["sample_recall_at_10"] >= 0.95
    assert not (tmp_path / "ivf.partial").exists()


def test_eval_judges_a_candidate_table_by_the_engagement_it_recalls_beside_exact(tmp_path, db):
    vecs = clustered(400, 16, 8, seed=3)
    ids = write_vectors(db, vecs, ["image" if i % 2 else "video" for i in range(400)])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -2)
    near = np.argsort(-sims, axis=1)
    rows = ["query_pin_id,engaged_pin_id"]
    rows += [f"{ids[q]},{ids[near[q, 0]]}" for q in range(0, 40)]  # engaged: the nearest pin (rank 1)
    rows += [f"{ids[q]},{ids[near[q, 30]]}" for q in range(40, 80)]  # the 31st nearest
    rows += ["v000001,nobody"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "c10.parquet"
    assert run("candidates", "--db", db, "--out", out, "-k", 10).returncode == 0
    p = run("eval", "--db", db, "--pairs", tmp_path / "pairs.csv", "--candidates", out, "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["candidates"] == {"recall@10": 0.5, "recall@50": None, "recall@100": None, "pairs": 80}
    assert r["exact"]["recall@10"] == 0.5 and r["exact"]["recall@50"] == 1.0
    assert r["unknown_pairs"] == 1 and r["table"]["k"] == 10
    assert sum(v["candidates"]["pairs"] for v in r["by_kind"].values()) == 80
    text = run("eval", "--db", db, "--pairs", tmp_path / "pairs.csv", "--candidates", out)
    assert "recall@10 0.5 (exact 0.5)" in text.stdout


def test_a_candidate_table_inside_the_database_is_switched_whole_and_says_when_it_is_stale(tmp_path, db):
    write_vectors(db, clustered(200, 16, 5))
    p = run("candidates", "--db", db, "--out", "table:closeup", "-k", 5, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["out"] == "table:closeup"
    store = Store(db)
    assert store.read_candidates("closeup").num_rows == 1000
    first = store.candidate_table("closeup")["physical"]
    stats = json.loads(run("stats", "--db", db, "--json").stdout)["candidate_tables"]
    assert [(c["name"], c["k"], c["stale"]) for c in stats] == [("closeup", 5, False)]
    write_vectors(db, clustered(10, 16, 5, seed=9), start=200)  # more pins: the table is stale now
    assert "stale: the pins table is" in run("stats", "--db", db).stdout
    assert run("candidates", "--db", db, "--out", "table:closeup", "-k", 3).returncode == 0
    store = Store(db)
    assert store.read_candidates("closeup").num_rows == 3 * 210
    assert store.candidate_table("closeup")["physical"] != first and first not in store.db.list_tables().tables
    bad = run("candidates", "--db", db, "--out", "table:../x")
    assert bad.returncode == 2 and "not a candidate table name" in bad.stderr
