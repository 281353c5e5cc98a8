"""A real HTTP server for tests of media over http(s): stdlib ``ThreadingHTTPServer`` in a thread on
127.0.0.1, port 0, whose routes a test registers.

    server = MediaServer().start()          # or the ``media_server`` fixture (tests/conftest.py)
    url = server.add("/a.jpg", body=jpeg_bytes, content_type="image/jpeg")
    server.add("/slow.jpg", body=b"...", delay_s=2)           # a pause before the headers
    server.add("/drip.jpg", body=b"x" * 1000, drip=(10, 0.05))  # 10 bytes every 0.05 s
    server.add("/huge.mp4", size=1 << 30, length=False)       # a GiB of zeros, streamed, chunked
    server.add("/moved", redirect=server.url("/a.jpg", host="localhost"))
    server.add("/flaky.jpg", body=b"...", fail_first=2)       # 503 twice, then the body
    server.hits("/a.jpg"), server.requests, server.max_in_flight, server.sent("/huge.mp4")
    server.stop()

``tls=(certfile, keyfile)`` serves https instead (``self_signed_cert`` makes a pair for 127.0.0.1 and
localhost). Every answer is HTTP/1.1 with a Content-Length, or chunked when ``length=False``.
"""

from __future__ import annotations

import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

_ZEROS = bytes(1 << 16)


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/octet-stream"  # None: no Content-Type header
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # pause before the status line
    drip: tuple[int, float] | None = None  # send the body (bytes, seconds): that many bytes, then a pause
    size: int | None = None  # a body of this many zero bytes, streamed (never held)
    length: bool = True  # send Content-Length (else the body is chunked)
    fail_first: int = 0  # answer fail_status to this many requests first
    fail_status: int = 503
    retry_after: str | None = None  # with the failures
    head: bool = True  # answer HEAD (else 405)
    ranges: bool = True  # answer "Range: bytes=a-b" with 206
    redirect: str | None = None  # answer redirect_status with this Location
    redirect_status: int = 302


@dataclass(frozen=True)
class Seen:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]


class MediaServer:
    """The server; routes by path (the query is ignored)."""

    def __init__(self, tls: tuple[str | Path, str | Path] | None = None) -> None:
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._sent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return self._httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this server (``host`` "localhost" names the same server another way)."""
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", **route) -> str:
        """Serve ``path`` (see Route for the keywords); returns its URL."""
        self.routes[path] = Route(body=body, **route)
        return self.url(path)

    def hits(self, path: str | None = None) -> int:
        """Requests seen (for ``path``, or all)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def sent(self, path: str) -> int:
        """Body bytes written for ``path`` so far (all requests)."""
        with self._lock:
            return self._sent.get(path, 0)

    def reset(self) -> None:
        """No routes, nothing seen."""
        with self._lock:
            self.routes.clear()
            self.requests.clear()
            self._sent.clear()
            self.max_in_flight = 0

    def start(self) -> MediaServer:
        self._stop.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.media = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # pauses and drips end at once
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self._httpd = None

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the handler --------------------------------------------------------------------

    def _arrive(self, method: str, path: str, headers: dict[str, str]) -> int:
        with self._lock:
            self.requests.append(Seen(method, path, headers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return sum(1 for r in self.requests if r.path == path)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wrote(self, path: str, n: int) -> None:
        with self._lock:
            self._sent[path] = self._sent.get(path, 0) + n


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() does not wait for a handler still dripping to a client
    media: MediaServer

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up is no error of the server's
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        media = self.server.media
        path = urlsplit(self.path).path
        nth = media._arrive(self.command, path, dict(self.headers))
        try:
            route = media.routes.get(path)
            if route is None:
                return self._plain(404, b"no such route")
            if route.delay_s and media._stop.wait(route.delay_s):
                return
            if nth <= route.fail_first:
                extra = {"Retry-After": route.retry_after} if route.retry_after is not None else {}
                return self._plain(route.fail_status, b"try again later", extra)
            if self.command == "HEAD" and not route.head:
                return self._plain(405, b"", {"Allow": "GET"})
            if route.redirect is not None:
                return self._plain(route.redirect_status, b"", {"Location": route.redirect})
            self._body(route, path)
        except OSError:  # the client went away (or the TLS handshake failed)
            self.close_connection = True
        finally:
            media._leave()

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self, route: Route, path: str) -> None:
        total = route.size if route.size is not None else len(route.body)
        first, last, status = 0, total - 1, route.status
        asked = self.headers.get("Range", "")
        if asked.startswith("bytes=") and route.ranges and status == 200 and total:
            a, _, b = asked[6:].partition("-")
            first, last, status = int(a or 0), min(int(b) if b else total - 1, total - 1), 206
        self.send_response(status)
        if route.content_type is not None:
            self.send_header("Content-Type", route.content_type)
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
        for k, v in route.headers.items():
            self.send_header(k, v)
        count = max(0, last - first + 1)
        if route.length:
            self.send_header("Content-Length", str(count))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        step, pause = route.drip or (len(_ZEROS), 0.0)
        stop = self.server.media._stop
        at = first
        while at <= last and not stop.is_set():
            n = min(step, last - at + 1)
            piece = _ZEROS[:n] if route.size is not None else route.body[at:at + n]
            self.server.media._wrote(path, n)  # before the write: a client that has the bytes sees them counted
            self.wfile.write(piece if route.length else b"%x\r\n%s\r\n" % (n, piece))
            at += n
            if pause and at <= last and stop.wait(pause):
                return
        if not route.length:
            self.wfile.write(b"0\r\n\r\n")


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) files of a self-signed certificate for 127.0.0.1 and localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinembed test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
