"""`pinembed serve` over HTTP at scale, as one JSON object.

A synthetic database (``synthetic.py``: clustered 512-d vectors, the store's IVF_SQ policy) is served
by the real command (``pinembed serve``, a subprocess on 127.0.0.1 at a free port). Load goes only to
that address and is bounded in count and time:

- related k=10 of random pins, one client with a kept-alive connection: p50 and p99 over HTTP;
- 8 concurrent clients for a bounded count: requests/s and errors (any non-200 or transport error);
- one client again while another process refreshes the database (the cron job's writes: new pins in
  batches under the write lock, then the index upkeep): p99 during the refresh, errors, and how soon
  the server answered for a new pin (no restart).

    python benchmarks/serve.py [--rows 1000000] [--db /path/keep.lance] [--requests 1000]

The server holds the pins in memory (its default at this size, store/resident.py): the figures are
taken once it does; ``sequential_without_memory`` repeats the sequential requests against a server
started with ``--memory-mb 0``, and ``memory_speedup_p50`` is their ratio.

``--db`` keeps the built database there (and reuses it when it already holds ``--rows`` pins): the 1M
build takes several minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402

REFRESH_ROWS = 5_000  # 0.5% of 1M: the upkeep keeps the index (a rebuild waits for 1%)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database(path: str, rows: int) -> dict:
    """The database at ``path`` with ``rows`` synthetic pins (built when missing)."""
    import pinembed

    idx = pinembed.open_index(path)
    if idx.store.exists() and idx.store.count() >= rows:
        return {"built": False}
    if idx.store.exists():
        raise SystemExit(f"{path} holds {idx.store.count()} pins, not {rows}: remove it or pick another --db")
    w = synthetic.build(idx.store, rows)
    return {"built": True, "write_s": w.write_s, "index_s": w.index_s, "index": w.index_state}


class Client:
    """One kept-alive HTTP connection to the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return 0, b""


def _related_path(i: int) -> str:
    return f"/api/related?pin={quote(synthetic.pin_id(i), safe='')}&k=10"


def _latencies(port: int, pins: list[int]) -> tuple[list[float], int]:
    c = Client(port)
    lat, errors = [], 0
    for i in pins:
        t = time.perf_counter()
        status, body = c.get(_related_path(i))
        lat.append(time.perf_counter() - t)
        if status != 200 or len(json.loads(body)["results"]) != 10:
            errors += 1
    return lat, errors


def _concurrent(port: int, clients: int, per_client: int, rows: int, seed: int,
                until: threading.Event | None = None) -> dict:
    """``clients`` threads, each sending ``per_client`` related requests (or until ``until`` is set,
    then at most ``per_client``)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(seed + n)
        c = Client(port)
        mine, bad = [], 0
        for _ in range(per_client):
            if until is not None and until.is_set():
                break
            t = time.perf_counter()
            status, _ = c.get(_related_path(rng.randrange(rows)))
            mine.append(time.perf_counter() - t)
            bad += status != 200
        with lock:
            lat.extend(mine)
            errors[0] += bad

    t = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t
    return {"requests": len(lat), "errors": errors[0], "seconds": round(took, 2),
            "requests_per_s": round(len(lat) / took, 1), **_pct(lat)}


def _pct(lat: list[float]) -> dict:
    a = np.array(lat) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


REFRESHER = """
import sys
sys.path.insert(0, {bench!r})
import numpy as np, pinembed, synthetic
from pinembed.store.lock import WriteLock
idx = pinembed.open_index({db!r})
w = synthetic.generate({n}, seed=7)
with WriteLock({db!r}, "refresh"):
    for s in range(0, {n}, 2000):
        part = synthetic.World(w.vecs[s:s + 2000], w.kinds[s:s + 2000], w.widths[s:s + 2000], w.centers)
        synthetic.write(idx.store, part, start=s, prefix={prefix!r})
    idx.store.ensure_index()
"""


def _start(db: str, port: int, *extra: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("pinembed")
    return subprocess.Popen([str(exe), "serve", "--db", db, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def _wait_healthy(server: subprocess.Popen, c: Client) -> None:
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {server.stderr.read()[-2000:]}")
        if c.get("/api/health")[0] == 200:
            return
        time.sleep(0.1)


def _wait_held(server: subprocess.Popen, c: Client, limit_s: float = 300) -> dict:
    """Poll /api/health until the server holds the pins in memory (or says it will not)."""
    t = time.perf_counter()
    while time.perf_counter() - t < limit_s:
        status, body = c.get("/api/health")
        memory = json.loads(body).get("memory", {}) if status == 200 else {}
        if memory.get("state") in ("held", "too large", "off"):
            return dict(memory)
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {server.stderr.read()[-2000:]}")
        time.sleep(0.2)
    return {"state": "not held after the limit"}


def _drop_fresh(db: str) -> None:
    """Remove the pins a refresh of this benchmark added, so that a kept --db stays as built."""
    import pinembed

    store = pinembed.open_index(db).store
    if store.exists() and store.count():
        store._pins().delete("starts_with(pin_id, 'fresh')")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="keep (and reuse) the database here")
    ap.add_argument("--requests", type=int, default=1000, help="sequential related requests timed")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: dict = {"benchmark": "serve", "rows": args.rows, "cpus": os.cpu_count(), "k": 10}
    tmp = tempfile.TemporaryDirectory()
    db = args.db or os.path.join(tmp.name, "serve.lance")
    out["database"] = _database(db, args.rows)
    port = _free_port()
    t0 = time.perf_counter()
    server = _start(db, port)
    try:
        c = Client(port)
        _wait_healthy(server, c)
        out["server_start_s"] = round(time.perf_counter() - t0, 2)
        out["memory"] = _wait_held(server, c)
        out["memory"]["held_after_s"] = round(time.perf_counter() - t0, 2)
        rng = random.Random(args.seed)
        _latencies(port, [rng.randrange(args.rows) for _ in range(200)])  # warm the caches
        lat, errors = _latencies(port, [rng.randrange(args.rows) for _ in range(args.requests)])
        seq = {"requests": len(lat), "errors": errors, **_pct(lat)}
        out["sequential"] = seq
        conc = _concurrent(port, args.clients, args.per_client, args.rows, args.seed)
        out["concurrent"] = {"clients": args.clients, **conc}

        prefix = f"fresh{os.getpid()}-"  # this run's new pins, removed again at the end
        refresher = subprocess.Popen(
            [sys.executable, "-c", REFRESHER.format(bench=str(Path(__file__).resolve().parent), db=db,
                                                    n=REFRESH_ROWS, prefix=prefix)], stderr=subprocess.PIPE, text=True)
        done = threading.Event()
        during: dict = {}

        def load() -> None:  # one client, as for the latency figures above
            during.update(_concurrent(port, 1, 20_000, args.rows, args.seed + 1, until=done))

        th = threading.Thread(target=load)
        t = time.perf_counter()
        th.start()
        refresher.wait(timeout=600)
        refresh_s = time.perf_counter() - t
        # the server picks the new rows up without a restart: poll one of them (bounded)
        seen_after = None
        fresh = f"/api/related?pin={quote(prefix + '0000000', safe='')}&k=10"
        for _ in range(200):
            if c.get(fresh)[0] == 200:
                seen_after = round(time.perf_counter() - t - refresh_s, 2)
                break
            time.sleep(0.1)
        done.set()
        th.join()
        if refresher.returncode != 0:
            raise SystemExit(f"the refresh failed: {refresher.stderr.read()[-2000:]}")
        out["during_refresh"] = {"refresh_rows": REFRESH_ROWS, "refresh_s": round(refresh_s, 1),
                                 "new_pin_served_after_s": seen_after, **during}
    finally:
        _drop_fresh(db)
        _stop(server)
    # the same sequential requests to a server that holds nothing in memory (--memory-mb 0)
    port = _free_port()
    server = _start(db, port, "--memory-mb", "0")
    try:
        _wait_healthy(server, Client(port))
        rng = random.Random(args.seed)
        _latencies(port, [rng.randrange(args.rows) for _ in range(200)])
        lat, errors = _latencies(port, [rng.randrange(args.rows) for _ in range(args.requests // 2)])
        out["sequential_without_memory"] = {"requests": len(lat), "errors": errors, **_pct(lat)}
    finally:
        _stop(server)
        tmp.cleanup()
    out.update(related_p50_ms=seq["p50_ms"], related_p99_ms=seq["p99_ms"],
               memory_speedup_p50=round(out["sequential_without_memory"]["p50_ms"] / seq["p50_ms"], 2),
               requests_per_s=out["concurrent"]["requests_per_s"],
               errors=seq["errors"] + out["concurrent"]["errors"] + out["during_refresh"]["errors"],
               p99_during_refresh_ms=out["during_refresh"]["p99_ms"])
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
