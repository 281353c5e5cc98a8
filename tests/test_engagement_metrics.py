"""Engagement metrics on hand-built vectors with known ranks (ties included), through a real LanceDB and
the CLI; the pairs file format and its errors."""

from __future__ import annotations

import json
import math
from datetime import UTC

import numpy as np
import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli
from pinembed.errors import UsageError
from pinembed.training.engagement_eval import evaluate_pairs, exact_ranks, summary
from pinembed.training.engagement_pairs import read_pairs

DEG = math.pi / 180
# a=(1,0); b and c identical at 10 degrees (a tie); d=(0,1); e=(-1,0)
VECS = {"a": (1.0, 0.0), "b": (math.cos(10 * DEG), math.sin(10 * DEG)), "c": (math.cos(10 * DEG), math.sin(10 * DEG)),
        "d": (0.0, 1.0), "e": (-1.0, 0.0)}
KINDS = {"a": "image", "b": "video", "c": "image", "d": "idea", "e": "image"}
# (query, engaged, expected rank): the query and the engaged pin are never in the index; ties count against
CASES = [
    ("a", "b", 2),  # c ties with b
    ("a", "d", 3),  # b, c above
    ("d", "a", 4),  # b, c above, e ties (cos 0)
    ("a", "e", 4),  # everything above
    ("b", "c", 1),  # c is identical to b: nothing else reaches cos 1
]


def _vectors():
    return {k: np.array(v, np.float32) for k, v in VECS.items()}


def _batches(size):
    ids = list(VECS)
    v = np.stack([_vectors()[i] for i in ids])
    return [(ids[s:s + size], v[s:s + size]) for s in range(0, len(ids), size)]


@pytest.mark.parametrize(("batch", "chunk"), [(5, 2048), (2, 1), (1, 2)])
def test_ranks_are_exact_with_ties_against_the_query(batch, chunk):
    q, e, want = zip(*CASES, strict=True)
    got = exact_ranks(list(q), list(e), _vectors(), _batches(batch), topk=2, query_chunk=chunk)
    assert got.ranks.tolist() == list(want)
    assert got.n_pins == 5 and got.n_queries == 3
    # top-2 of each distinct query, itself left out: a -> b, c; d -> b, c; b -> c, a
    assert dict(got.hub_counts) == {"b": 2, "c": 3, "a": 1}
    s = summary(got.ranks)
    assert s["recall@1"] == 0.2 and s["recall@10"] == 1.0 and s["pairs"] == 5
    assert s["mrr"] == round((1 / 2 + 1 / 3 + 1 / 4 + 1 / 4 + 1) / 5, 4)


def _store(tmp_path):
    from pinembed.store import Store, space_identity
    from pinembed.store.rows import now

    uri = str(tmp_path / "e.lance")
    store = Store(uri)
    store.ensure_space(space_identity({"model_id": "m", "dim": 2, "weights_digest": "d", "preprocess": {}}))
    store.write([{"pin_id": p, "kind": KINDS[p], "uri": p, "n_segments": 0, "model_id": "m", "vector": v,
                  "embedded_at": now()} for p, v in _vectors().items()])
    return uri, store


def _csv(path, rows, header="query_pin_id,engaged_pin_id,weight,timestamp,action"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def test_eval_pairs_over_a_database_by_kind_and_action_unknown_ids_counted(tmp_path):
    uri, store = _store(tmp_path)
    rows = [f"{q},{e},1,2026-11-0{i + 1}T10:00:00Z,{'save' if i % 2 else 'closeup'}"
            for i, (q, e, _) in enumerate(CASES)]
    pairs = _csv(tmp_path / "p.csv", [*rows, "a,ghost,1,,", "nobody,b,,,click", "a,a,1,,save"])
    rep = evaluate_pairs(store, read_pairs(pairs), batch_size=2)
    assert rep["pairs"] == 5 and rep["unknown_pairs"] == 2 and rep["unknown_pins"] == 2 and rep["self_pairs"] == 1
    assert rep["recall@1"] == 0.2 and rep["recall@10"] == 1.0 and rep["pins"] == 5
    assert rep["by_kind"]["image->idea"] == {"recall@1": 0.0, "recall@10": 1.0, "recall@100": 1.0, "mrr": 0.3333,
                                            "pairs": 1}
    assert rep["by_kind"]["video->image"]["recall@1"] == 1.0
    assert rep["by_action"]["closeup"]["pairs"] == 3 and rep["by_action"]["save"]["pairs"] == 2
    assert rep["hubs"]["queries"] == 3 and rep["hubs"]["max_freq_10"] == 3

    r = CliRunner().invoke(cli, ["eval", "--db", uri, "--pairs", str(pairs), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mrr"] == rep["mrr"]
    r = CliRunner().invoke(cli, ["eval", "--db", uri, "--pairs", str(pairs)])
    assert r.exit_code == 0 and "recall@10 1.0" in r.stdout and "image->idea" in r.stdout
    assert "2 pair(s) with a pin not in the database" in r.stdout


def test_pairs_with_no_known_pin_are_a_usage_error(tmp_path):
    uri, _ = _store(tmp_path)
    pairs = _csv(tmp_path / "p.csv", ["x,y,,,"])
    r = CliRunner().invoke(cli, ["eval", "--db", uri, "--pairs", str(pairs)])
    assert r.exit_code == 2 and "none of the 1 pairs" in r.stderr and "hint: " in r.stderr


@pytest.mark.parametrize(("rows", "header", "message"), [
    (["a,b,1,,"], "query_pin_id,other", "lacks the column(s) engaged_pin_id"),
    (["a,b,1,,", "a,,1,,"], None, "line 3: empty engaged_pin_id"),
    (["a,b,1,,", "a,b,-2,,"], None, "line 3: weight '-2' is not a number >= 0"),
    (["a,b,heavy,,"], None, "line 2: weight 'heavy'"),
    (["a,b,1,yesterday,"], None, "line 2: timestamp 'yesterday' is neither"),
    (["a,b,1,,like"], None, "line 2: action 'like' is not one of save, click, closeup"),
    (["a,b,1,,", "", "a,b,1"], None, "line 4: 3 field(s), the header has 5"),
])
def test_a_malformed_pairs_file_names_its_line(tmp_path, rows, header, message):
    path = _csv(tmp_path / "bad.csv", rows, header or "query_pin_id,engaged_pin_id,weight,timestamp,action")
    with pytest.raises(UsageError) as e:
        read_pairs(path)
    assert message in e.value.message


def test_pairs_file_errors_at_the_cli(tmp_path):
    uri, _ = _store(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"query_pin_id,engaged_pin_id\n\xff\xfe,\x00\n")
    for path, message in ((tmp_path / "bin.csv", "not UTF-8"), (tmp_path / "empty.csv", "is empty")):
        path.touch()
        r = CliRunner().invoke(cli, ["eval", "--db", uri, "--pairs", str(path)])
        assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["eval", "--db", uri])
    assert r.exit_code == 2 and "--labels or --pairs" in r.output


def test_parquet_pairs_and_the_time_split(tmp_path):
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    t = [datetime(2026, 1, d, tzinfo=UTC) for d in (5, 1, 3, 2, 4)]
    pq.write_table(pa.table({"query_pin_id": ["a", "b", "c", "d", "e"], "engaged_pin_id": ["b", "c", "d", "e", "a"],
                             "timestamp": pa.array(t, pa.timestamp("ms", tz="UTC")),
                             "action": ["save"] * 5}), tmp_path / "p.parquet")
    pairs = read_pairs(tmp_path / "p.parquet")
    assert len(pairs) == 5 and pairs.timestamp[1] == t[1].timestamp()
    train, held = pairs.split_by_time(0.4)
    assert held.query == ["e", "a"] and train.query == ["b", "d", "c"]
    pq.write_table(pa.table({"query_pin_id": ["a"], "engaged_pin_id": [None]}), tmp_path / "n.parquet")
    with pytest.raises(UsageError, match="row 1: empty engaged_pin_id"):
        read_pairs(tmp_path / "n.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="as Parquet"):
        read_pairs(tmp_path / "junk.parquet")
