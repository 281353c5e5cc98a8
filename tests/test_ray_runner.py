"""The ray runner: the same stages on a Ray cluster give the same pins, ledger and vectors as the local
runner; a driver killed mid-job is finished by a re-run; two worker nodes both embed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import pinembed
from pinembed.ingestion.options import IngestOptions, RayOptions

from helpers import save_image, truncated_jpeg, write, write_idea, write_sidecar, write_video

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'pinembed[ray]')")
EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray cluster (2 CPUs) for these tests."""
    if ray.is_initialized():
        ray.shutdown()
    info = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield info
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Good and bad inputs of every kind."""
    from PIL import Image

    src = tmp_path_factory.mktemp("ray") / "media"
    for i in range(6):
        save_image(src / "images" / f"img{i}.jpg", colour=(40 * i, 200 - 30 * i, 90), size=(80, 60))
    write_sidecar(src / "images" / "img0.jpg", "A titled image")
    frames = [Image.new("RGB", (40, 30), c) for c in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    frames[0].save(src / "anim.gif", "GIF", save_all=True, append_images=frames[1:], duration=[400, 400, 400])
    write_video(src / "clip.mp4", secs=3.0, fps=6)
    save_image(src / "idea" / "p1.jpg", colour=(9, 9, 200))
    write_idea(src / "idea", [{"media": "p1.jpg", "text": "first page"}, {"media": "../escape.jpg"}])
    (src / "bad").mkdir()
    truncated_jpeg(src / "bad" / "truncated.jpg")
    write(src / "bad" / "text.jpg", "not an image")
    write(src / "notes.md", "# not media")
    return src


def _state(db):
    idx = pinembed.open_index(db)
    rows = idx.to_arrow(columns=["pin_id", "kind", "n_segments", "vector"]).to_pylist()
    pins = {r["pin_id"]: (r["kind"], r["n_segments"]) for r in rows}
    vectors = {r["pin_id"]: np.asarray(r["vector"], np.float32) for r in rows}
    ledger = sorted((f["pin_id"], f["error"]) for f in idx.failures())
    return pins, vectors, ledger


def test_ray_gives_the_same_pins_ledger_and_vectors_as_local(local_ray, mixed, tmp_path, tiny_model_id):
    local = pinembed.open_index(str(tmp_path / "local.lance"), model=tiny_model_id).ingest(mixed)
    opts = IngestOptions(batch_size=4, runner="ray", ray=RayOptions(workers=1))
    remote = pinembed.open_index(str(tmp_path / "ray.lance"), model=tiny_model_id).ingest(mixed, opts)
    counts = ("added", "failed", "warnings", "skipped", "embedded_images")
    assert [getattr(remote, c) for c in counts] == [getattr(local, c) for c in counts]
    assert (local.added, local.failed, local.warnings, local.skipped) == (9, 2, 1, 1)
    assert remote.runner == "ray" and sum(remote.pins_by_node.values()) == 9
    pins_l, vec_l, ledger_l = _state(str(tmp_path / "local.lance"))
    pins_r, vec_r, ledger_r = _state(str(tmp_path / "ray.lance"))
    assert pins_r == pins_l and ledger_r == ledger_l
    assert pins_l["anim.gif"] == ("motion", 1) and pins_l["idea"][0] == "idea"
    cos = [float(vec_l[p] @ vec_r[p]) for p in pins_l]
    assert min(cos) >= 0.9999, min(cos)
    # a re-run through ray plans nothing new: unchanged pins, the bad inputs retried
    again = pinembed.open_index(str(tmp_path / "ray.lance")).ingest(mixed, opts)
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, 9, 2)


def test_ray_actors_decode_jpegs_in_batches_on_their_device(local_ray, mixed, tmp_path, tiny_model_id):
    """With the device decoder (GPU actors by default; asked for here on CPU actors) read tasks pass
    JPEG bytes, and each actor decodes its batch at once: the local PIL path's pins, ledger and vectors."""
    local = pinembed.open_index(str(tmp_path / "local.lance"), model=tiny_model_id).ingest(
        mixed, IngestOptions(fast_jpeg=False, image_decode="pil"))
    opts = IngestOptions(batch_size=4, runner="ray", ray=RayOptions(workers=1), fast_jpeg=False, image_decode="device")
    remote = pinembed.open_index(str(tmp_path / "ray.lance"), model=tiny_model_id).ingest(mixed, opts)
    assert (remote.added, remote.failed, remote.cpu_fallbacks) == (local.added, local.failed, 0) == (9, 2, 0)
    pins_l, vec_l, ledger_l = _state(str(tmp_path / "local.lance"))
    pins_r, vec_r, ledger_r = _state(str(tmp_path / "ray.lance"))
    assert pins_r == pins_l and ledger_r == ledger_l
    assert min(float(vec_l[p] @ vec_r[p]) for p in pins_l) >= 0.999


def test_a_driver_killed_mid_job_is_finished_by_a_rerun(local_ray, mixed, tmp_path, tiny_model_id):
    db = tmp_path / "pins.lance"
    address = local_ray.address_info["address"]
    args = [EXE, "ingest", mixed, "--db", db, "--model", tiny_model_id, "--runner", "ray", "--ray-address", address,
            "--batch-size", "2", "--json"]
    env = {**os.environ, "PINEMBED_FAILPOINT": "batch:2"}
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    env.pop("PINEMBED_FAILPOINT")
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300, env=env)
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["failed"] == 2 and out["added"] + out["unchanged"] == 9, r.stderr[-2000:]
    assert out["unchanged"] >= 2  # the batches committed before the kill were kept
    ids = pinembed.open_index(str(db)).to_arrow(columns=["pin_id"]).column("pin_id").to_pylist()
    assert len(ids) == len(set(ids)) == 9


def test_ray_reads_media_from_object_storage(local_ray, mixed, tmp_path, tiny_model_id, monkeypatch):
    """SRC on S3 (moto's server), read in Ray tasks: the same pins, ledger and vectors as the local
    runner over the same prefix. The workers get the endpoint and credentials from the storage options
    the entries carry (no AWS_* variables anywhere)."""
    from s3 import isolate, moto_server

    isolate(tmp_path, monkeypatch)
    with moto_server() as s3:
        s3.create_bucket("media")
        client = s3.client()
        for p in sorted(mixed.rglob("*")):
            if p.is_file():
                client.upload_file(str(p), "media", "in/" + p.relative_to(mixed).as_posix())
        states = {}
        for runner in ("local", "ray"):
            db = str(tmp_path / f"{runner}.lance")
            idx = pinembed.open_index(db, model=tiny_model_id, storage_options=s3.options())
            s = idx.ingest("s3://media/in/", IngestOptions(batch_size=4, runner=runner, ray=RayOptions(workers=1)))
            assert (s.added, s.failed, s.warnings, s.skipped) == (9, 2, 1, 1), s.to_dict()
            states[runner] = _state(db)
    (pins_l, vec_l, ledger_l), (pins_r, vec_r, ledger_r) = states["local"], states["ray"]
    assert pins_r == pins_l and ledger_r == ledger_l and "clip.mp4" in pins_r and "idea" in pins_r
    assert min(float(vec_l[p] @ vec_r[p]) for p in pins_l) >= 0.9999


def test_two_worker_nodes_both_embed(tmp_path):
    from ray.cluster_utils import Cluster

    from pinembed.embedders.tiny import make_tiny_checkpoint

    # a model that takes real time per batch, so a block arrives while the first actor is still busy
    # (with the tiny model one actor kept up with the reads alone and the other stayed idle)
    model_id = make_tiny_checkpoint(tmp_path / "vitb32.pt", arch="ViT-B-32")
    src = tmp_path / "media"
    for i in range(40):
        save_image(src / f"{i:02d}.jpg", colour=(6 * i, 250 - 6 * i, 120), size=(64, 48))
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})  # the head reads
    nodes = [cluster.add_node(num_cpus=1, resources={"embedder": 1}) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        opts = IngestOptions(batch_size=2, runner="ray", ray=RayOptions(workers=2, resources={"embedder": 1}))
        s = pinembed.open_index(str(tmp_path / "pins.lance"), model=model_id).ingest(src, opts)
        assert s.added == 40
        assert set(s.pins_by_node) == {n.node_id for n in nodes}  # both worker nodes embedded pins
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_without_ray_the_runner_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from pinembed.cli.main import main\nmain()")
    r = subprocess.run([sys.executable, "-c", code, "ingest", str(tmp_path), "--db", str(tmp_path / "db"),
                        "--runner", "ray"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "pip install 'pinembed[ray]'" in r.stderr and "Traceback" not in r.stderr


def test_ray_reads_catalog_rows_as_the_local_runner_does(local_ray, mixed, tmp_path, tiny_model_id):
    """Catalog rows (Parquet) through ray: the same pins, attributes, ledger and vectors as local."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    media = [str(mixed / "images" / f"img{i}.jpg") for i in range(4)] + [str(mixed / "clip.mp4"),
                                                                         str(mixed / "bad" / "text.jpg")]
    cat = tmp_path / "cat.parquet"
    pq.write_table(pa.table({"pin_id": [f"r{i}" for i in range(6)], "media": media,
                             "board": ["a", "b", "a", "b", "v", "x"], "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}), cat)
    local = pinembed.open_index(str(tmp_path / "local.lance"), model=tiny_model_id).ingest(cat)
    opts = IngestOptions(batch_size=4, runner="ray", ray=RayOptions(workers=1))
    remote = pinembed.open_index(str(tmp_path / "ray.lance"), model=tiny_model_id).ingest(cat, opts)
    assert (local.added, local.failed) == (remote.added, remote.failed) == (5, 1)
    assert remote.runner == "ray" and sum(remote.pins_by_node.values()) == 5
    pins_l, vec_l, ledger_l = _state(str(tmp_path / "local.lance"))
    pins_r, vec_r, ledger_r = _state(str(tmp_path / "ray.lance"))
    assert pins_r == pins_l and ledger_r == ledger_l and pins_l["r4"][0] == "video"
    assert min(float(vec_l[p] @ vec_r[p]) for p in pins_l) >= 0.9999
    boards = pinembed.open_index(str(tmp_path / "ray.lance")).store.pin_states(("pin_id", "board")).to_pylist()
    assert {r["pin_id"]: r["board"] for r in boards}["r1"] == "b"


def test_ray_tasks_write_the_local_runners_candidate_table(local_ray, tmp_path):
    from test_candidates import clustered, lists, write_vectors

    db = str(tmp_path / "vec.lance")
    write_vectors(db, clustered(21_000, 16, 40))
    idx = pinembed.open_index(db)
    local = idx.candidates(tmp_path / "local", k=8)
    ray_s = idx.candidates(tmp_path / "ray", k=8, runner="ray")
    assert (ray_s.method, ray_s.parts, ray_s.rows) == ("ivf", local.parts, local.rows)
    assert lists(pq.read_table(tmp_path / "ray")) == lists(pq.read_table(tmp_path / "local"))
