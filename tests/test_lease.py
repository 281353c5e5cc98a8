"""The write lease of object-storage databases, against a real S3-compatible server (moto's): writers on
different machines exclude each other (the second exits 4, naming the holder), a dead holder's lease
is taken over once it expires, two takers of one expired lease cannot both win, the heartbeat keeps a
long run's lease alive, a lost lease stops the run before its next commit, and a finished run leaves
the lease free for the next writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from pinembed.cli.main import cli
from pinembed.errors import LockedError
from pinembed.store import lease as leases
from pinembed.store import objects
from pinembed.store.db import Store
from pinembed.store.lease import LEASE_NAME, Lease, LeaseLostError
from pinembed.store.lock import WriteLock

from helpers import save_image
from s3 import AWS_VARS, isolate, moto_server

BUCKET = "leases"
EXE = os.path.join(os.path.dirname(sys.executable), "pinembed")


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(autouse=True)
def _clean_env(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch, "PINEMBED_LEASE_TTL_S", "PINEMBED_LEASE_RENEW_S", "PINEMBED_FAILPOINT")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    src = tmp_path_factory.mktemp("media")
    for i, name in enumerate(["red.jpg", "green.png", "blue.jpg", "shoes/red2.jpg"]):
        save_image(src / name, colour=(60 * i, 250 - 60 * i, 40 + 50 * i))
    return src


def machine(tmp_path, name: str, **env: str) -> dict[str, str]:
    """The environment of a process on "another machine": its own cache folder (so no flock can be
    shared with this one) and nothing inherited that would change the lease."""
    e = {k: v for k, v in os.environ.items() if k not in AWS_VARS}
    e.update(XDG_CACHE_HOME=str(tmp_path / name), **env)
    return e


def pinembed(*args, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def lease_object(s3, db: str) -> dict:
    key = db.removeprefix(f"s3://{BUCKET}/") + "/" + LEASE_NAME
    return json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def put_lease(s3, db: str, **fields) -> None:
    """A lease object written as another machine's writer would have left it."""
    info = {"holder": "0-dead", "host": "crashed-box", "pid": 4242, "command": "ingest", "started": time.time() - 600,
            "expires_at": time.time() - 5, "ttl_s": 60, **fields}
    key = db.removeprefix(f"s3://{BUCKET}/") + "/" + LEASE_NAME
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=json.dumps(info).encode())


def test_a_second_writer_on_another_machine_exits_4_naming_the_holder_and_readers_keep_working(
        s3, media, tiny_model_id, tmp_path):
    db = f"s3://{BUCKET}/two-writers.lance"
    r = run("ingest", media, "--db", db, "--model", tiny_model_id, *s3.cli_options())
    assert r.exit_code == 0 and "added 4" in r.stdout, r.output
    with WriteLock(db, "ingest", s3.options()):  # this process is the first writer
        held = lease_object(s3, db)
        assert held["pid"] == os.getpid() and held["expires_at"] > time.time() and not held.get("released")
        t0 = time.monotonic()
        r2 = pinembed("ingest", media, "--db", db, *s3.cli_options(), env=machine(tmp_path, "b"))
        assert r2.returncode == 4, r2.stderr
        assert "being written by another pinembed process" in r2.stderr
        assert f"pid {os.getpid()} on " in r2.stderr and "ingest" in r2.stderr
        assert "Traceback" not in r2.stderr and time.monotonic() - t0 < 60
        r = run("gc", "--db", db, *s3.cli_options())
        assert r.exit_code == 4, r.output
        r = run("related", "red.jpg", "--db", db, "--json", *s3.cli_options())  # readers never wait
        assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 3, r.output
        r = run("stats", "--db", db, *s3.cli_options())
        assert r.exit_code == 0 and "pins: 4" in r.stdout, r.output


def test_a_dead_holders_lease_is_taken_over_once_it_expires(s3, media, tiny_model_id, tmp_path):
    db = f"s3://{BUCKET}/dead.lance"
    a = machine(tmp_path, "a", PINEMBED_LEASE_TTL_S="2", PINEMBED_FAILPOINT="batch:1")
    r = pinembed("ingest", media, "--db", db, "--model", tiny_model_id, "--batch-size", "2", *s3.cli_options(), env=a)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]  # killed holding the lease, after one batch
    left = lease_object(s3, db)
    assert left["pid"] > 0 and not left.get("released")
    time.sleep(max(0.0, left["expires_at"] - time.time()) + 0.2)
    r = pinembed("ingest", media, "--db", db, "--json", *s3.cli_options(), env=machine(tmp_path, "b"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "took over the write lease" in r.stderr and f"left by pid {left['pid']}" in r.stderr
    s = json.loads(r.stdout)
    assert s["added"] + s["unchanged"] == 4 and s["unchanged"] >= 2
    assert lease_object(s3, db)["released"] is True


def test_two_takers_of_one_expired_lease_one_wins(s3):
    db = f"s3://{BUCKET}/race.lance"
    put_lease(s3, db)
    n, start = 6, threading.Barrier(6)
    won: list[Lease] = []
    refused: list[LockedError] = []

    def take() -> None:
        start.wait()
        try:
            won.append(Lease(db, "racer", s3.options()).acquire())
        except LockedError as e:
            refused.append(e)

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == n - 1, (won, refused)
    assert won[0].took_over is not None and won[0].took_over["pid"] == 4242
    assert all("being written by another pinembed process" in e.message and "racer" in e.message for e in refused)
    assert lease_object(s3, db)["holder"] == won[0].holder
    won[0].release()


def test_renewal_keeps_a_long_runs_lease_alive_past_its_ttl(s3):
    db = f"s3://{BUCKET}/long.lance"
    lease = Lease(db, "ingest", s3.options(), ttl_s=1.0, renew_s=0.2).acquire()
    try:
        first = lease_object(s3, db)["expires_at"]
        time.sleep(2.5)  # more than twice the TTL
        lease.check()  # still ours
        leases.check_held(db)
        now = lease_object(s3, db)
        assert now["holder"] == lease.holder and now["expires_at"] > first + 1.5 and now["expires_at"] > time.time()
        with pytest.raises(LockedError):
            Lease(db, "refresh", s3.options()).acquire()
    finally:
        lease.release()


def test_a_whole_cli_run_outlives_a_short_ttl(s3, media, tiny_model_id, tmp_path):
    db = f"s3://{BUCKET}/short-ttl.lance"
    env = machine(tmp_path, "a", PINEMBED_LEASE_TTL_S="0.8")  # the run takes longer: only renewal keeps it
    r = pinembed("ingest", media, "--db", db, "--model", tiny_model_id, "--batch-size", "1", *s3.cli_options(), env=env)
    assert r.returncode == 0 and "added 4" in r.stdout, r.stderr[-2000:]
    assert "lost the write lease" not in r.stderr and "took over" not in r.stderr


def test_a_lost_lease_stops_the_run_before_its_next_commit(s3):
    db = f"s3://{BUCKET}/lost.lance"
    lease = Lease(db, "ingest", s3.options(), ttl_s=30, renew_s=0.2).acquire()
    try:
        put_lease(s3, db, expires_at=time.time() + 60, host="other-box", pid=777)  # another writer's, by force
        deadline = time.monotonic() + 10
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        store = Store(db, storage_options=s3.options())
        with pytest.raises(LeaseLostError) as e:
            store.delete_pins(["red.jpg"])
        assert e.value.exit_code == 4 and "lost its write lease" in e.value.message
        assert "another writer took it over" in e.value.message and e.value.hint
    finally:
        lease.release()
    assert lease_object(s3, db)["pid"] == 777  # the release left the other writer's lease alone


def test_a_finished_run_leaves_the_lease_free_for_the_next_writer(s3, media, tiny_model_id, tmp_path):
    db = f"s3://{BUCKET}/release.lance"
    r = pinembed("ingest", media, "--db", db, "--model", tiny_model_id, *s3.cli_options(), env=machine(tmp_path, "a"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert lease_object(s3, db)["released"] is True
    t0 = time.monotonic()
    with WriteLock(db, "refresh", s3.options()) as lock:  # at once, and no takeover
        assert lock.took_over is None and time.monotonic() - t0 < 5
    r = run("refresh", media, "--db", db, "--json", *s3.cli_options())
    assert r.exit_code == 0 and json.loads(r.stdout)["planned"]["unchanged"] == 4, r.output


def test_local_and_file_uris_keep_the_flock(tmp_path):
    assert not objects.is_object_store(str(tmp_path / "pins.lance"))
    assert not objects.is_object_store(f"file://{tmp_path}/pins.lance")
    assert not objects.is_object_store("memory://pins")
    assert all(objects.is_object_store(u) for u in ("s3://b/p.lance", "gs://b/p", "az://c/p", "S3://b/p"))


def test_a_lease_taken_over_is_exit_4_and_one_that_ran_out_is_exit_5(s3):
    from pinembed.errors import FaultError

    db = f"s3://{BUCKET}/which-exit.lance"
    lease = Lease(db, "refresh", s3.options(), ttl_s=30, renew_s=0.2).acquire()
    try:
        assert not lease.stuck()
        put_lease(s3, db, expires_at=time.time() + 60, host="other-box", pid=778)
        deadline = time.monotonic() + 10
        while not lease.stuck() and time.monotonic() < deadline:
            time.sleep(0.05)
        err = lease.error()
        assert isinstance(err, LeaseLostError) and err.exit_code == 4 and "another writer took it over" in err.message
    finally:
        lease.release()
    late = Lease(f"s3://{BUCKET}/ran-out.lance", "refresh", s3.options(), ttl_s=30, renew_s=0.2).acquire()
    try:
        late._valid_until = time.monotonic() - 1  # as if no renewal had succeeded for ttl_s - renew_s
        late._renewing_since = time.monotonic() - 1  # and one were hanging
        assert late.stuck()
        err = late.error()
        assert isinstance(err, FaultError) and err.exit_code == 5 and "stopped answering" in err.message
        with pytest.raises(FaultError):
            late.check()
    finally:
        late.release()
