"""A hostile run against `pinembed serve`, as one JSON object.

A few sample images (``sample_media/images``) are ingested with the bundled nano model into a
temporary database, served by the real command (``pinembed serve --port 0``, a subprocess on
127.0.0.1). The traffic goes only to that address and is bounded in count and time (the whole run
well under 3 minutes):

- ``where_10mb``: POST /api/session with a ~10 MB JSON body (one real pin, a ``where`` of ~1M ids);
- ``uploads_16x8000``: POST /api/search with sixteen 8000x8000 1-bit PNGs (a few kB each);
  for both: the status, the seconds, and the server's peak RSS (VmHWM of /proc/PID/status) and RSS
  before and after;
- ``health_ms_during``: 30 calls of /api/health while a thread sends those two requests in a loop
  (~10 s): median and max ms;
- ``bad_numbers``: out-of-range ``where`` numbers, non-ASCII and empty ``k``, session weights
  ``[1e308, 1]``: each request and its status; ``fives_xx`` counts the 5xx among them (0 expected);
- ``rss_mb_end``: the server's RSS at the end.

    python benchmarks/hostile.py
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse

REPO = Path(__file__).resolve().parent.parent
IMAGES = 8
HOSTILE_S = 10.0
HEALTH_CALLS = 30
HOSTILE_MAX = 2000  # requests of the hostile thread at most


def _exe() -> str:
    return str(Path(sys.executable).with_name("pinembed"))


def _database(tmp: Path) -> str:
    media = tmp / "media"
    media.mkdir()
    found = sorted(p for p in (REPO / "sample_media/images").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for p in found[:IMAGES]:
        shutil.copy2(p, media / p.name)
    db = str(tmp / "pins.lance")
    r = subprocess.run([_exe(), "ingest", str(media), "--db", db, "--model", "nano"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"ingest failed ({r.returncode}): {r.stderr[-2000:]}")
    return db


def _start(db: str, log: Path) -> tuple[subprocess.Popen, int]:
    err = open(log, "w")
    server = subprocess.Popen([_exe(), "serve", "--db", db, "--host", "127.0.0.1", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    ready: list[str] = []

    def read() -> None:
        for line in server.stdout:
            if line.startswith("serving ") and not ready:
                ready.append(line.strip())
        # keep draining so that the server never blocks on a full pipe

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while not ready:
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    url = urlparse(ready[0].rsplit(" at ", 1)[1])
    if url.hostname != "127.0.0.1":
        _stop(server)
        raise SystemExit(f"the server listens on {url.hostname}, not 127.0.0.1")
    return server, url.port


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _mem(pid: int) -> dict:
    """The server's peak (VmHWM) and current (VmRSS) resident memory, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"peak_rss_mb": fields.get("VmHWM"), "rss_mb": fields.get("VmRSS")}


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None, timeout: float = 60) -> tuple[int, bytes, str | None]:
    """One request on a fresh connection: (status, body, transport error). A server that answers
    before it has read the whole body (a 413 by Content-Length) and closes is still read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    problem = None
    try:
        conn.putrequest(method, path)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders()
        if body:
            view = memoryview(body)
            try:
                for s in range(0, len(body), 1 << 16):
                    conn.send(view[s:s + (1 << 16)])
            except OSError as e:  # closed while sending: the answer may be waiting
                problem = type(e).__name__
        r = conn.getresponse()
        return r.status, r.read(), problem
    except (OSError, http.client.HTTPException) as e:
        return 0, b"", problem or type(e).__name__
    finally:
        conn.close()


def _multipart(files: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for field, name, data, ctype in files:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _png_1bit(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, "PNG")
    return buf.getvalue()


def _timed(port: int, pid: int, method: str, path: str, body: bytes, headers: dict) -> dict:
    before = _mem(pid)
    t = time.perf_counter()
    status, answer, problem = _request(port, method, path, body, headers)
    took = time.perf_counter() - t
    after = _mem(pid)
    out = {"status": status, "seconds": round(took, 3), "body_bytes": len(body),
           "peak_rss_mb_before": before["peak_rss_mb"], "peak_rss_mb_after": after["peak_rss_mb"],
           "rss_mb_before": before["rss_mb"], "rss_mb_after": after["rss_mb"]}
    if problem:
        out["transport"] = problem
    try:
        out["error"] = json.loads(answer)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        pass
    return out


def main() -> None:
    out: dict = {"benchmark": "hostile", "cpus": os.cpu_count()}
    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = _database(tmp)
        server, port = _start(db, tmp / "serve.log")
        pid = server.pid
        try:
            status, body, _ = _request(port, "GET", "/api/pins?size=10")
            pins = [c["pin_id"] for c in json.loads(body)["pins"]] if status == 200 else []
            if len(pins) < 2:
                raise SystemExit(f"/api/pins: {status} {body[:300]!r}")
            out["pins"] = len(pins)
            _request(port, "GET", f"/api/related?pin={quote(pins[0], safe='')}&k=5")  # warm up
            _request(port, "GET", "/api/search?text=warm+up&k=5")
            out["rss_mb_start"] = _mem(pid)["rss_mb"]

            ids = [f"p{i}" for i in range(1_000_000)]
            where_body = json.dumps({"pins": [pins[0]], "k": 5, "where": {"pin_id": {"in": ids}}},
                                    separators=(",", ":")).encode()
            del ids
            json_headers = {"Content-Type": "application/json"}
            bomb = _png_1bit(8000)
            up_body, up_type = _multipart([("image", f"{i}.png", bomb, "image/png") for i in range(16)])
            up_headers = {"Content-Type": up_type}
            out["png_8000_bytes"] = len(bomb)

            out["where_10mb"] = _timed(port, pid, "POST", "/api/session", where_body, json_headers)
            out["uploads_16x8000"] = _timed(port, pid, "POST", "/api/search", up_body, up_headers)

            # health while a thread sends both hostile requests in a loop
            stop = threading.Event()
            sent: list[int] = []

            def hostile() -> None:
                t0 = time.monotonic()
                while not stop.is_set() and time.monotonic() - t0 < HOSTILE_S + 5 and len(sent) < HOSTILE_MAX:
                    sent.append(_request(port, "POST", "/api/session", where_body, json_headers)[0])
                    sent.append(_request(port, "POST", "/api/search", up_body, up_headers)[0])

            th = threading.Thread(target=hostile)
            th.start()
            health = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            lat, bad = [], 0
            t0 = time.monotonic()
            for n in range(HEALTH_CALLS):
                time.sleep(max(0.0, t0 + n * HOSTILE_S / HEALTH_CALLS - time.monotonic()))
                t = time.perf_counter()
                try:
                    health.request("GET", "/api/health")
                    r = health.getresponse()
                    r.read()
                    bad += r.status != 200
                except (OSError, http.client.HTTPException):
                    bad += 1
                    health.close()
                    health = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                lat.append((time.perf_counter() - t) * 1000)
            health.close()
            stop.set()
            th.join()
            hostile_s = time.monotonic() - t0
            out["health_ms_during"] = {"calls": len(lat), "median": round(statistics.median(lat), 2),
                                       "max": round(max(lat), 2), "not_200": bad,
                                       "hostile_requests": len(sent), "hostile_s": round(hostile_s, 1),
                                       "hostile_statuses": {str(s): sent.count(s) for s in sorted(set(sent))}}
            out["peak_rss_mb_after_loop"] = _mem(pid)["peak_rss_mb"]

            pin = quote(pins[0], safe="")
            cases: list[tuple[str, str, str, bytes | None]] = []
            for where in ({"width": 3000000000}, {"height": 1e20}):
                w = json.dumps(where)
                cases.append((f"GET /api/related where={w}", "GET",
                              f"/api/related?pin={pin}&where={quote(w, safe='')}", None))
                cases.append((f"POST /api/session where={w}", "POST", "/api/session",
                              json.dumps({"pins": [pins[0]], "k": 5, "where": where}).encode()))
            for k in ("²", "٥", ""):
                cases.append((f"GET /api/related k={k}", "GET", f"/api/related?pin={pin}&k={quote(k)}", None))
            cases.append(("POST /api/session weights=[1e308, 1]", "POST", "/api/session",
                          json.dumps({"pins": pins[:2], "weights": [1e308, 1], "k": 5}).encode()))
            bad_numbers = []
            for label, method, path, body in cases:
                status = _request(port, method, path, body, json_headers if body else None)[0]
                bad_numbers.append([label, status])
            out["bad_numbers"] = bad_numbers
            out["fives_xx"] = sum(1 for _, s in bad_numbers if s >= 500)
            out["bad_numbers_unanswered"] = sum(1 for _, s in bad_numbers if s == 0)
            end = _mem(pid)
            out["rss_mb_end"] = end["rss_mb"]
            out["peak_rss_mb_end"] = end["peak_rss_mb"]
        finally:
            _stop(server)
        out["server_exit"] = server.returncode
    out["run_s"] = round(time.perf_counter() - t_run, 1)
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
