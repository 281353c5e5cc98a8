"""Faults of the disk said plainly: a real full disk and a real read-only file system.

Both are tmpfs mounts in a user+mount namespace (``unshare --user --map-root-user --mount``), so no
privileges are needed and nothing outside the test sees them. "Permission denied" cannot be made here:
the tests run as root, whom permissions do not stop; the read-only file system covers that family
(both are errno faults translated alike, see store/faults.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import pinembed

from helpers import save_image

EXE = sys.executable


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(not _unshare_works(), reason="user+mount namespaces (unshare) are not permitted here")


def in_namespace(tmp_path, script: str, **env: str) -> None:
    """Run ``script`` (sh) in a fresh user+mount namespace with $MNT, $PY and ``env`` set."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    e = {**os.environ, "MNT": str(mnt), "PY": EXE, "PINEMBED_DEBUG": "", **env}
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "set -u\n" + script],
                       env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "-m", "pinembed.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def pin_ids(db) -> list[str]:
    return pinembed.open_index(db).store.pin_states(("pin_id",)).column("pin_id").to_pylist()


def images(folder, n: int, start: int = 0):
    for i in range(start, start + n):
        save_image(folder / f"{i:03d}.jpg", colour=(i % 256, (i * 7) % 256, (i * 13) % 256), size=(64, 48))
    return folder


def one_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].startswith("hint:"), stderr
    for word in ("LanceError", "RuntimeError", "Traceback", "please report", "os error"):
        assert word not in stderr, stderr
    return lines[0]


def test_a_full_disk_says_so_keeps_what_was_committed_and_a_rerun_finishes(tmp_path, tiny_model_id):
    src = images(tmp_path / "src", 400)
    out = tmp_path / "out"
    out.mkdir()
    in_namespace(tmp_path, """
        mount -t tmpfs -o size=512k none "$MNT" || exit 97
        "$PY" -m pinembed.cli.main ingest "$SRC" --db "$MNT/pins.lance" --model "$MODEL" --batch-size 2 \\
            >"$OUT/stdout" 2>"$OUT/stderr"
        echo $? >"$OUT/rc"
        cp -a "$MNT/pins.lance" "$OUT/copy.lance"
    """, SRC=str(src), OUT=str(out), MODEL=tiny_model_id)
    assert (out / "rc").read_text().strip() == "5", (out / "stderr").read_text()
    line = one_error((out / "stderr").read_text())
    assert line.startswith(f"error: no space left on device: {tmp_path / 'mnt' / 'pins.lance'}; the "), line
    committed = int(line.split("; the ")[1].split()[0])
    assert 0 < committed < 400
    assert "run the same command again" in (out / "stderr").read_text()

    copy = out / "copy.lance"  # the database moved to a bigger disk: what the message said is there
    assert len(pin_ids(copy)) == committed
    r = cli("ingest", src, "--db", copy, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["added"], summary["unchanged"]) == (400 - committed, committed)
    ids = pin_ids(copy)
    assert len(ids) == len(set(ids)) == 400


def test_a_read_only_file_system_says_so_and_a_rerun_on_a_writable_disk_finishes(tmp_path, tiny_model_id):
    src = images(tmp_path / "src", 20)
    more = images(tmp_path / "more", 10, start=20)
    out = tmp_path / "out"
    out.mkdir()
    in_namespace(tmp_path, """
        mount -t tmpfs -o size=16m none "$MNT" || exit 97
        "$PY" -m pinembed.cli.main ingest "$SRC" --db "$MNT/pins.lance" --model "$MODEL" >/dev/null || exit 98
        mount -o remount,ro "$MNT" || exit 99
        cp "$MORE"/* "$SRC"/
        "$PY" -m pinembed.cli.main ingest "$SRC" --db "$MNT/pins.lance" >"$OUT/stdout" 2>"$OUT/stderr"
        echo $? >"$OUT/rc"
        "$PY" -m pinembed.cli.main refresh "$SRC" --db "$MNT/pins.lance" --json >"$OUT/refresh.json" 2>/dev/null
        echo $? >"$OUT/refresh.rc"
        "$PY" -m pinembed.cli.main related 000.jpg --db "$MNT/pins.lance" -k 3 >"$OUT/related" 2>&1
        echo $? >"$OUT/related.rc"
        cp -a "$MNT/pins.lance" "$OUT/copy.lance"
    """, SRC=str(src), MORE=str(more), OUT=str(out), MODEL=tiny_model_id)
    assert (out / "rc").read_text().strip() == "5", (out / "stderr").read_text()
    line = one_error((out / "stderr").read_text())
    assert line == f"error: read-only file system: {tmp_path / 'mnt' / 'pins.lance'}; no pins were committed"
    assert (out / "refresh.rc").read_text().strip() == "5"
    assert json.loads((out / "refresh.json").read_text())["exit_code"] == 5  # --json: one object, errors too
    assert (out / "related.rc").read_text().strip() == "0"  # queries still work on a read-only disk

    copy = out / "copy.lance"
    r = cli("ingest", src, "--db", copy, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["added"], summary["unchanged"]) == (10, 20)
    ids = pin_ids(copy)
    assert len(ids) == len(set(ids)) == 30
