"""Deadlines on the object store, against moto's S3 server in its own process so that it can be frozen
(SIGSTOP): a refresh whose store stops answering ends with exit 5 and its committed count within about
the lease's TTL (before: 727 s, stuck in a LanceDB call), and a re-run once the store is back lands
exactly the pins of the source. A lease left by a dead process of this host is taken over at once,
and neither the lease nor the lock file records the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pinembed.store.db import Store
from pinembed.store.deadline import with_deadlines
from pinembed.store.lease import LEASE_NAME, Lease
from pinembed.store.lock import WriteLock, lock_path

from helpers import save_image
from s3 import AWS_VARS, KEY_ID, REGION, SECRET, S3Server, free_port, isolate

BUCKET = "frozen"
EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")
TTL = 6.0


@pytest.fixture()
def moto():
    """moto's server as a child process (a thread of this one could not be frozen alone)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
            time.sleep(0.1)
    server = S3Server(f"http://127.0.0.1:{port}", KEY_ID, SECRET)
    server.create_bucket(BUCKET)
    server.proc = proc  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def _clean_env(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch, "PINEMBED_LEASE_TTL_S", "PINEMBED_LEASE_RENEW_S", "PINEMBED_FAILPOINT",
            "PINEMBED_STORE_TIMEOUT_S")


def env(tmp_path, **more: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in AWS_VARS}
    e.update(XDG_CACHE_HOME=str(tmp_path / "cache"), **more)
    return e


def data_files(s3, prefix: str) -> int:
    got = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sum(1 for o in got.get("Contents", []) if "/data/" in o["Key"])


def test_a_refresh_on_a_frozen_store_exits_5_within_the_ttl_and_a_rerun_lands_exactly(moto, tmp_path, tiny_model_id):
    src = tmp_path / "media"
    for i in range(40):
        save_image(src / f"p{i:02d}.png", colour=(6 * i, 250 - 6 * i, (37 * i) % 256))
    db = f"s3://{BUCKET}/cron.lance"
    args = [EXE, "refresh", str(src), "--db", db, "--model", tiny_model_id, "--batch-size", "1", "--json",
            *moto.cli_options()]
    e = env(tmp_path, PINEMBED_LEASE_TTL_S=f"{TTL:g}")
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    deadline = time.monotonic() + 120
    while data_files(moto, "cron.lance/pins") < 3:  # a few batches committed: mid-run
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(moto.proc.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        out, err = run.communicate(timeout=TTL * 4 + 30)
    finally:
        took = time.monotonic() - frozen
        if run.poll() is None:
            run.kill()
        os.kill(moto.proc.pid, signal.SIGCONT)
    print(f"refresh exited {run.returncode} {took:.1f} s after the store froze (ttl {TTL:g} s)")
    assert run.returncode == 5, err[-3000:]
    assert took < TTL * 2 + 5, took
    assert "error: the object store stopped answering" in err or "unreachable" in err, err[-3000:]
    assert "committed before it are kept" in err and "Traceback" not in err and ".cargo" not in err, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["exit_code"] == 5

    t0 = time.monotonic()  # at once: the lease the frozen run could not release names a dead pid of this host
    again = subprocess.run(args, capture_output=True, text=True, env=e, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "took over the write lease" in again.stderr and "no longer running" in again.stderr
    print(f"the re-run took {time.monotonic() - t0:.1f} s;", err.strip().splitlines()[-2:])
    store = Store(db, storage_options=moto.options())
    ids = store.pin_states(("pin_id",)).column("pin_id").to_pylist()
    assert sorted(ids) == sorted(f"p{i:02d}.png" for i in range(40))


def test_a_lease_left_by_a_dead_process_of_this_host_is_taken_over_at_once(moto):
    db = f"s3://{BUCKET}/same-host.lance"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = {"holder": "x", "host": socket.gethostname(), "pid": dead.pid, "command": "refresh",
            "started": time.time() - 5, "expires_at": time.time() + 600, "ttl_s": 600}
    moto.client().put_object(Bucket=BUCKET, Key=f"same-host.lance/{LEASE_NAME}", Body=json.dumps(left).encode())
    t0 = time.monotonic()
    lease = Lease(db, "refresh", moto.options()).acquire()
    try:
        assert time.monotonic() - t0 < 5 and lease.took_over is not None and lease.took_over["pid"] == dead.pid
        body = json.loads(moto.client().get_object(Bucket=BUCKET, Key=f"same-host.lance/{LEASE_NAME}")["Body"].read())
        assert set(body) == {"holder", "host", "pid", "command", "started", "expires_at", "ttl_s"}  # no argv
    finally:
        lease.release()


def test_a_live_process_of_this_host_keeps_its_lease(moto):
    from pinembed.errors import LockedError

    db = f"s3://{BUCKET}/alive.lance"
    left = {"holder": "x", "host": socket.gethostname(), "pid": os.getppid(), "command": "refresh",
            "started": time.time(), "expires_at": time.time() + 600, "ttl_s": 600}
    moto.client().put_object(Bucket=BUCKET, Key=f"alive.lance/{LEASE_NAME}", Body=json.dumps(left).encode())
    with pytest.raises(LockedError):
        Lease(db, "refresh", moto.options()).acquire()


def test_the_lock_file_records_no_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pinembed", "ingest", "--storage-option", "aws_secret_access_key=s3cr3t"])
    db = str(tmp_path / "db")
    with WriteLock(db, "ingest"):
        info = json.loads(lock_path(db).read_text())
    assert set(info) == {"pid", "host", "started", "command"} and "s3cr3t" not in json.dumps(info)


def test_every_object_store_request_gets_a_deadline_unless_given(monkeypatch):
    opts = with_deadlines({"aws_region": REGION, "aws_timeout": "40s"})
    assert opts["aws_timeout"] == "40s" and "timeout" not in opts
    assert opts["connect_timeout"] == "5s" and opts["client_max_retries"] == "2"
    monkeypatch.setenv("PINEMBED_STORE_TIMEOUT_S", "3")
    assert with_deadlines(None)["timeout"] == "3s"


def test_a_read_on_a_frozen_store_exits_5_within_its_deadline(moto, tmp_path):
    import lancedb
    import pyarrow as pa

    db = f"s3://{BUCKET}/reader.lance"
    lancedb.connect(db, storage_options=moto.options()).create_table("pins", pa.table({"pin_id": ["a"], "kind": ["image"]}))
    os.kill(moto.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    r = subprocess.run([EXE, "stats", "--db", db, *moto.cli_options()], capture_output=True, text=True, timeout=300,
                       env=env(tmp_path, PINEMBED_STORE_DEADLINE_S="5"))
    took = time.monotonic() - t0
    print(f"stats on a frozen store exited {r.returncode} after {took:.1f} s (deadline 5 s)")
    assert r.returncode == 5 and "error: the object store did not answer within 5 s" in r.stderr, r.stderr[-2000:]
    assert took < 25 and "Traceback" not in r.stderr and ".cargo" not in r.stderr
