"""Getting pins out: `pinembed export` to Parquet and JSON Lines, and PinIndex.iter_pins / to_arrow /
to_pandas, which read the live generation (also after a model switch)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pinembed
from pinembed.cli.main import cli

from helpers import save_image, write_sidecar, write_video

COLUMNS = ["pin_id", "kind", "uri", "title", "description", "width", "height", "duration_s", "model_id", "vector"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_id):
    """(media folder, database) with three images and one video."""
    base = tmp_path_factory.mktemp("export")
    src = base / "media"
    for i, name in enumerate(["a.jpg", "b.png", "c \u00e9t\u00e9.jpg"]):
        save_image(src / name, colour=(60 * i, 100, 200 - 50 * i))
    write_sidecar(src / "a.jpg", "Red \"quoted\" title", "line one\nline two")
    write_video(src / "clip.mp4", secs=2.0, fps=6)
    db = str(base / "pins.lance")
    r = run("ingest", src, "--db", db, "--model", tiny_model_id)
    assert r.exit_code == 0, r.output
    return src, db


def test_export_parquet_with_segments(built, tmp_path):
    src, db = built
    out = tmp_path / "pins.parquet"
    r = run("export", out, "--db", db, "--segments", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["pins"] == 4 and summary["segments_out"] == str(tmp_path / "pins.segments.parquet")
    t = pq.read_table(out)
    assert t.column_names == COLUMNS and t.num_rows == 4
    rows = {r["pin_id"]: r for r in t.to_pylist()}
    assert rows["a.jpg"]["title"] == "Red \"quoted\" title" and rows["a.jpg"]["uri"] == str(src / "a.jpg")
    assert rows["clip.mp4"]["kind"] == "video" and rows["clip.mp4"]["duration_s"] > 1
    vecs = np.array([r["vector"] for r in rows.values()], np.float32)
    assert vecs.shape[0] == 4 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    seg = pq.read_table(tmp_path / "pins.segments.parquet")
    assert summary["segments"] == seg.num_rows > 0 and set(seg.column("pin_id").to_pylist()) == {"clip.mp4"}
    assert {"seq", "t_s", "vector"} <= set(seg.column_names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pins.parquet", "pins.segments.parquet"]  # no temp files


def test_export_jsonl_with_where(built, tmp_path):
    src, db = built
    out = tmp_path / "images.jsonl"
    r = run("export", out, "--db", db, "--where", "kind=image", "--where", "width>=1", "--segments")
    assert r.exit_code == 0, r.output
    assert "exported 3 pins to" in r.stdout and "0 segments" in r.stdout
    lines = out.read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines]
    assert len(objs) == 3 and all(list(o) == COLUMNS for o in objs)
    assert {o["pin_id"] for o in objs} == {"a.jpg", "b.png", "c \u00e9t\u00e9.jpg"}
    a = next(o for o in objs if o["pin_id"] == "a.jpg")
    assert a["description"] == "line one\nline two" and all(isinstance(x, float) for x in a["vector"])
    assert (tmp_path / "images.segments.jsonl").read_text() == ""


@pytest.mark.parametrize("name", ["pins.csv", "pins", "pins.json"])
def test_export_refuses_other_extensions(built, tmp_path, name):
    r = run("export", tmp_path / name, "--db", built[1])
    assert r.exit_code == 2 and ".parquet or .jsonl" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_no_file(built, tmp_path):
    out = tmp_path / "pins.parquet"
    r = run("export", out, "--db", built[1], "--segments", "--where", "vector>=1")
    assert r.exit_code == 2 and "cannot filter on" in r.stderr
    assert list(tmp_path.iterdir()) == []
    from pinembed.export import export

    for name in ("pins.parquet", "pins.jsonl"):  # the filter fails once the temp files are open
        with pytest.raises(pinembed.PinembedError, match="cannot filter on"):
            export(pinembed.open_index(built[1]), tmp_path / name, segments=True, where={"vector": 1})
    assert list(tmp_path.iterdir()) == []
    r = run("export", tmp_path / "no-such-folder" / "pins.parquet", "--db", built[1], "--where", "vector>=1")
    assert r.exit_code == 2 and list(tmp_path.iterdir()) == []  # nor the folder it would have created


def test_python_api_reads_the_live_generation_after_a_model_switch(built, tmp_path, other_tiny_model_id):
    import shutil

    src, db0 = built
    db = str(tmp_path / "switched.lance")
    shutil.copytree(db0, db)
    r = run("refresh", src, "--db", db, "--model", other_tiny_model_id)
    assert r.exit_code == 0, r.output
    idx = pinembed.open_index(db)
    assert [m["state"] for m in idx.models()] == ["retired", "live"]
    batches = list(idx.iter_pins(batch_size=2))
    assert [b.num_rows for b in batches] == [2, 2] and batches[0].schema.names == COLUMNS
    t = idx.to_arrow()
    assert t.num_rows == 4 and set(t.column("model_id").to_pylist()) == {other_tiny_model_id}
    assert idx.to_arrow(columns=["pin_id"], kinds="video").to_pylist() == [{"pin_id": "clip.mp4"}]
    assert idx.to_arrow(where={"title": {"contains": "QUOTED"}}).column("pin_id").to_pylist() == ["a.jpg"]
    assert idx.to_arrow(where={"kind": "idea"}).num_rows == 0
    df = idx.to_pandas(columns=["pin_id", "kind"])
    assert sorted(df["pin_id"]) == ["a.jpg", "b.png", "c \u00e9t\u00e9.jpg", "clip.mp4"]
    with pytest.raises(pinembed.PinembedError, match="unknown pin column"):
        idx.to_arrow(columns=["pin_id", "nope"])


def test_to_pandas_without_pandas_says_how_to_get_it(built):
    code = ("import sys\n"
            "class NoPandas:\n"  # as if pandas were not installed
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'pandas':\n"
            "            raise ModuleNotFoundError(\"No module named 'pandas'\")\n"
            "sys.meta_path.insert(0, NoPandas())\n"
            "import pinembed\n"
            "try:\n"
            f"    pinembed.open_index({built[1]!r}).to_pandas()\n"
            "except pinembed.PinembedError as e:\n"
            "    print(e.message); print(e.hint)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "needs pandas" in r.stdout and "pip install pandas" in r.stdout and "to_arrow()" in r.stdout


def test_python_api_on_a_missing_database(tmp_path):
    idx = pinembed.open_index(tmp_path / "typo.lance")
    with pytest.raises(pinembed.PinembedError, match="no database at"):
        idx.to_arrow()
    assert not (tmp_path / "typo.lance").exists()
