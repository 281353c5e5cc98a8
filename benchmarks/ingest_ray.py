"""The ray runner against the local runner, node scaling, and object storage, as one JSON object.

- ray_over_local: the same JPEGs through `ingest` with the local runner and with the ray runner (a
  local Ray instance, started before timing): steady-state images/s (``steady_items_per_s``: from the
  first embedded batch to the last, so the actors' start-up and model loads are left out), and end to
  end beside it (``ray_over_local_end_to_end``, model loads included);
- two_nodes_over_one: a ray Cluster whose head (1 CPU) runs the read tasks and 1 or 2 worker nodes of
  1 CPU each run one embedding actor each (one torch thread); steady state, and end to end beside it;
  ``machine_busy``: the share of this machine's CPU time in use during each run (the nodes of a
  Cluster share the machine's cores with the driver, the read tasks and Ray's daemons);
  ``two_processes_over_one``: the ceiling of the same model on this machine without Ray, two plain
  processes embedding at once against one (one torch thread each);
- s3_over_local: the local runner with the media and the database on moto's S3 server (127.0.0.1)
  against both on local disk (the media part only where SRC may be an s3:// prefix).

    python benchmarks/ingest_ray.py [--images 512] [--size 800x600] [--model vit-b-32|tiny|ID] [--parts ray,cluster,s3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_images import _photos  # noqa: E402


def _ingest(db: str, src: str, model_id: str, opts, storage_options=None) -> tuple[float, float | None, object]:
    import pinembed

    t = time.perf_counter()
    s = pinembed.open_index(db, model=model_id, storage_options=storage_options).ingest(src, opts)
    took = time.perf_counter() - t
    assert s.failed == 0 and s.added > 0, s.to_dict()
    return round(s.added / took, 2), s.steady_items_per_s, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--size", default="800x600")
    ap.add_argument("--model", default="vit-b-32")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--parts", default="ray,cluster,s3", help="which comparisons to run (comma-separated)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    logging.getLogger().setLevel(logging.ERROR)

    from pinembed.embedders.device import cpu_count
    from pinembed.embedders.tiny import make_tiny_checkpoint
    from pinembed.ingestion.options import IngestOptions

    w, h = map(int, args.size.split("x"))
    out: dict = {"benchmark": "ingest_ray", "model": args.model, "images": args.images, "size": args.size,
                 "batch_size": args.batch_size, "cpus": cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "photos"
        _photos(src, args.images, w, h)
        model_id = (make_tiny_checkpoint(tmp / "m.pt", arch="ViT-B-32") if args.model == "vit-b-32" else
                    make_tiny_checkpoint(tmp / "m.pt") if args.model == "tiny" else args.model)
        bs = args.batch_size
        from pinembed.embedders import get_embedder

        get_embedder(model_id)  # loaded once here, so no run below pays the first load alone

        local, local_steady, _ = _ingest(str(tmp / "local.lance"), str(src), model_id, IngestOptions(batch_size=bs))
        out["local_images_per_s"] = local
        if "ray" in parts:
            _vs_ray(out, tmp, src, model_id, bs, local, local_steady)
        if "cluster" in parts:
            _cluster(out, tmp, src, model_id, bs)
            if args.model == "vit-b-32":
                out["ceiling"] = _ceiling()
                out["two_processes_over_one"] = out["ceiling"]["two_processes_over_one"]
        if "s3" in parts:
            out["s3"] = _s3(tmp, src, model_id, bs, local)
            out["s3_over_local"] = out["s3"].get("s3_over_local")
    json.dump(out, sys.stdout, indent=2)
    print()


def _vs_ray(out: dict, tmp: Path, src: Path, model_id: str, bs: int, local: float, local_steady: float | None) -> None:
    """The same images through the ray runner on a local Ray instance."""
    import ray

    from pinembed.embedders.device import cpu_count
    from pinembed.ingestion.options import IngestOptions

    ray.init(address="local", num_cpus=cpu_count() + 1, include_dashboard=False, log_to_driver=False)
    ray_opts = IngestOptions(batch_size=bs, runner="ray")
    on_ray, ray_steady, s = _ingest(str(tmp / "ray.lance"), str(src), model_id, ray_opts)
    out["local_vs_ray"] = {"local_images_per_s": local, "ray_images_per_s": on_ray,
                           "local_steady": local_steady, "ray_steady": ray_steady,
                           "ray_stage_s": s.stage_s}
    out["ray_over_local"] = round(ray_steady / local_steady, 3) if ray_steady and local_steady else None
    out["ray_over_local_end_to_end"] = round(on_ray / local, 3)
    ray.shutdown()


def _cpu_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine so far, wall seconds x cores so far) from /proc/stat
    (Linux): whether a run saturated the machine. Per process accounting would miss Ray's workers,
    which exit before a run's end is sampled."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    return (sum(cpu) - idle) / tick, sum(cpu) / tick


_CEILING = """
import time, torch, open_clip, logging
logging.disable(logging.WARNING)
torch.set_num_threads(1)
m = open_clip.create_model({arch!r}).eval()
x = torch.randn({batch}, 3, 224, 224)
with torch.inference_mode():
    m.encode_image(x)
    t = time.perf_counter(); n = 0
    while time.perf_counter() - t < {secs}:
        m.encode_image(x); n += {batch}
print(n / (time.perf_counter() - t))
"""


def _ceiling(arch: str = "ViT-B-32", batch: int = 32, secs: float = 15.0) -> dict:
    """Images/s of one process embedding alone (one torch thread), and of two at once: the most any
    runner could gain from a second node on this machine."""
    import subprocess

    code = _CEILING.format(arch=arch, batch=batch, secs=secs)

    def run(n: int) -> list[float]:
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True) for _ in range(n)]
        return [float(p.communicate()[0]) for p in procs]

    one, two = run(1), run(2)
    return {"one_process_images_per_s": round(one[0], 2), "two_processes_images_per_s": round(sum(two), 2),
            "two_processes_over_one": round(sum(two) / one[0], 3)}


def _utilisation(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the machine's CPU time that was busy between two ``_cpu_busy`` samples."""
    return round((after[0] - before[0]) / max(1e-9, after[1] - before[1]), 3)


def _cluster(out: dict, tmp: Path, src: Path, model_id: str, bs: int) -> None:
    """1 vs 2 worker nodes of 1 CPU each (a ray Cluster on this machine; the head reads)."""
    import ray
    from ray.cluster_utils import Cluster

    from pinembed.ingestion.options import IngestOptions, RayOptions

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1, resources={"embedder": 1})
        ray.init(address=cluster.address, log_to_driver=False)
        runs = {}
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1, resources={"embedder": 1})
                cluster.wait_for_nodes()
            opts = IngestOptions(batch_size=bs, runner="ray",
                                 ray=RayOptions(workers=nodes, cpus_per_worker=1, resources={"embedder": 1}))
            before = _cpu_busy()
            e2e, steady, s = _ingest(str(tmp / f"nodes{nodes}.lance"), str(src), model_id, opts)
            runs[nodes] = {"images_per_s": e2e, "steady_images_per_s": steady, "nodes_used": len(s.pins_by_node),
                           "seconds": round(s.added / e2e, 1), "machine_busy": _utilisation(before, _cpu_busy())}
    finally:
        ray.shutdown()
        cluster.shutdown()
    out["scaling"] = runs
    s1, s2 = runs[1]["steady_images_per_s"], runs[2]["steady_images_per_s"]
    out["two_nodes_over_one"] = round(s2 / s1, 3) if s1 and s2 else None
    out["two_nodes_over_one_end_to_end"] = round(runs[2]["images_per_s"] / runs[1]["images_per_s"], 3)


def _s3(tmp: Path, src: Path, model_id: str, bs: int, local: float) -> dict:
    """The local runner with the database (and, where supported, the media) on moto's S3 server."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    from pinembed.ingestion.options import IngestOptions

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        s3.create_bucket(Bucket="bench")
        opts = {"aws_endpoint": endpoint, "allow_http": "true", "aws_access_key_id": "bench",
                "aws_secret_access_key": "bench", "aws_region": "us-east-1"}
        media = str(src)
        where = "database on S3, media on local disk"
        try:
            from pinembed.ingestion import object_media  # noqa: F401  (media on object storage)

            for p in sorted(src.iterdir()):
                s3.upload_file(str(p), "bench", f"photos/{p.name}")
            media, where = "s3://bench/photos/", "database and media on S3"
        except ImportError:
            pass
        on_s3, steady, _ = _ingest("s3://bench/pins.lance", media, model_id, IngestOptions(batch_size=bs), opts)
        return {"where": where, "images_per_s": on_s3, "steady_images_per_s": steady,
                "local_images_per_s": local, "s3_over_local": round(on_s3 / local, 3)}
    finally:
        server.stop()


if __name__ == "__main__":
    main()
