"""A database damaged under a running server: /api/health says "degraded" (503) and names the table,
and says "ok" again once `pinembed doctor --restore` brought it back. A real uvicorn server over a
database ingested with the bundled nano model."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from test_serve_limits import Server

REPO = Path(__file__).resolve().parent.parent


def test_health_says_degraded_when_a_table_cannot_be_read(tmp_path):
    import pinembed
    from pinembed.store.doctor import restore

    root = tmp_path / "media"
    root.mkdir()
    for name in ("red-star-on-white.jpg", "red-star-on-black.jpg", "yellow-star-on-white.jpg"):
        shutil.copy2(REPO / "sample_media/images/star" / name, root / name)
    db = tmp_path / "pins.lance"
    idx = pinembed.open_index(str(db), model="nano")
    assert idx.ingest(root).failed == 0
    save_image_again = root / "red-star-on-black.jpg"
    shutil.copy2(REPO / "sample_media/images/star/yellow-star-on-black.jpg", save_image_again)
    assert idx.ingest(root).failed == 0  # a second version of the pins table to go back to
    with Server(str(db), probe_interval_s=0.2, memory_mb=0) as s:
        r = s.client.get("/api/health")
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        newest = max((db / "pins.lance" / "data").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        newest.unlink()
        deadline = time.monotonic() + 30
        while (r := s.client.get("/api/health")).status_code == 200:
            assert time.monotonic() < deadline, "health never said degraded"
            time.sleep(0.2)
        doc = r.json()
        assert r.status_code == 503 and doc["status"] == "degraded", r.text
        assert any(p.startswith("pins") for p in doc["problems"]), doc
        assert str(tmp_path) not in r.text  # no server paths
        restore(str(db))
        deadline = time.monotonic() + 30
        while (r := s.client.get("/api/health")).json()["status"] != "ok":
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)


