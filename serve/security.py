"""Who may ask what: the bind rule, the token, the Host check, body limits and response headers.

- Binding anything but the loopback interface needs a token (or an explicit ``--insecure``).
- With a token, every ``/api`` request carries it: ``Authorization: Bearer T``, or ``?token=T`` in the
  URLs the page puts in <img>/<video> tags. Compared in constant time. The page and /static are open.
- Bound to loopback, a request whose Host header is not a loopback name is refused: a web page in the
  browser cannot reach the service through DNS rebinding.
- A request body over the limit is a 413, by its Content-Length or while it streams in: the upload
  limit for multipart bodies (images), a smaller one for every other body (a session's JSON).
- Responses say ``nosniff`` and ``no-referrer`` (a token in a URL never leaks through a Referer).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from pinembed.errors import UsageError

from .settings import ServeSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """UsageError unless ``host`` is loopback, or a token (or ``insecure``) is given."""
    if host in LOOPBACK or token or insecure:
        return
    raise UsageError(f"serving on {host} lets other machines reach the database; that needs --token",
                     "pass --token SECRET (or set PINEMBED_TOKEN; clients send 'Authorization: Bearer SECRET'), "
                     "or --insecure to serve without one, or leave out --host to serve on 127.0.0.1 only")


class BodyTooLarge(Exception):
    """A request body passed its limit while it was being read."""

    def __init__(self, limit: int, upload: bool) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit, self.upload = limit, upload

    @property
    def limit_text(self) -> str:
        """The limit for people: ``20 MB``, ``512 kB``."""
        return f"{self.limit / (1 << 20):g} MB" if self.limit >= 1 << 20 else f"{self.limit / 1024:g} kB"


class Guard:
    """ASGI middleware applying the rules above to every HTTP request."""

    def __init__(self, app: Any, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self._token = settings.token.encode() if settings.token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.settings.loopback_only and _hostname(headers.get("host", "")) not in _LOOPBACK_HOSTS:
            await _error(send, 400, "bad_host", "this server answers requests for localhost only",
                         "open it as http://127.0.0.1:PORT/, or serve with --host and --token")
            return
        if self._token is not None and (path == "/api" or path.startswith("/api/")) and not self._authorised(scope, headers):
            await _error(send, 401, "unauthorized", "this server needs a token",
                         "send 'Authorization: Bearer TOKEN', or open the page as http://HOST:PORT/#token=TOKEN",
                         [(b"www-authenticate", b"Bearer")])
            return
        upload = headers.get("content-type", "").lower().lstrip().startswith("multipart/")
        limit = self.settings.max_upload_bytes if upload else min(self.settings.max_json_bytes,
                                                                  self.settings.max_upload_bytes)
        length = headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > limit):
            too = BodyTooLarge(limit, upload)
            await _error(send, 413, "too_large", f"the request body is over the limit of {too.limit_text}",
                         "send a smaller image" if upload else "send a smaller request (fewer pins, a shorter filter)")
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, upload)
            return message

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)

    def _authorised(self, scope: dict[str, Any], headers: dict[str, str]) -> bool:
        assert self._token is not None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), self._token):
            return True
        query = scope.get("query_string", b"").decode("latin-1")
        given = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"]
        return any(hmac.compare_digest(v.encode("utf-8", "replace"), self._token) for v in given)


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _error(send: Any, status: int, code: str, message: str, hint: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "hint": hint}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


#: a query parameter whose name is ``token`` in any case, percent-encoded or not, with brackets or a
#: suffix (``?TOKEN=``, ``?token[]=``, ``?%74oken=``, ``&token%5B0%5D=``): its value up to the next ``&``, ``#``,
#: space or quote
_TOKEN_PARAM = re.compile(r"([?&;](?:%[0-9a-f]{2}|[^=&#\s\"])*?(?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)"
                          r"(?:%[0-9a-f]{2}|[^=&#\s\"])*=)[^&#\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a request line or URL) with the value of every query parameter named like ``token``
    replaced by ``***``."""
    return _TOKEN_PARAM.sub(r"\1***", text)


class RedactToken(logging.Filter):
    """Hides the token in access-log lines (the page puts it in media URLs): every form of the name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
