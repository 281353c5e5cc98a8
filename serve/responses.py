"""Responses of the app that are not an endpoint's answer: JSON bodies, errors (the app's and
Starlette's own, and bugs, never with a traceback), the page and the OpenAPI document."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .errors import ApiError
from .openapi import openapi
from .security import BodyTooLarge
from .settings import ServeSettings

log = logging.getLogger("pinembed.serve")
STATIC = Path(__file__).resolve().parent / "static"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """``obj`` as a JSON response, never cached (with ``headers`` too)."""
    from starlette.responses import Response

    body = json.dumps(obj, default=str, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store", **(headers or {})})


def error_response(e: ApiError) -> Any:
    """The JSON error response of ``e``."""
    return json_response(e.body(), e.status)


def too_large(settings: ServeSettings) -> ApiError:
    """The 413 of a request body over the upload limit."""
    return ApiError(413, "too_large", f"the request body is over the limit of {settings.max_upload_bytes // (1 << 20)} MB",
                    "send a smaller image")


def media_file(path: str | os.PathLike[str], **kw: Any) -> Any:
    """A ``FileResponse`` of ``path`` (Range requests answer 206) whose Range errors are JSON errors too:
    a malformed Range 400 ``bad_range``, an unsatisfiable one 416 ``range_not_satisfiable`` (with
    ``Content-Range: bytes */SIZE``), where Starlette answers them in plain text."""
    from starlette.datastructures import Headers
    from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

    class _Media(FileResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            headers = Headers(scope=scope)
            http_range, if_range = headers.get("range"), headers.get("if-range")
            if http_range is not None and scope.get("method", "GET").upper() in ("GET", "HEAD"):
                import anyio

                try:
                    self.stat_result = self.stat_result or await anyio.to_thread.run_sync(os.stat, self.path)
                except OSError:
                    return await super().__call__(scope, receive, send)
                self.set_stat_headers(self.stat_result)
                error = None
                try:
                    if if_range is None or self._should_use_range(if_range):
                        self._parse_range_header(http_range, self.stat_result.st_size)
                except MalformedRangeHeader as e:
                    error = json_response({"error": {"code": "bad_range", "message": f"the Range header: {e.content}",
                                                     "hint": "e.g. Range: bytes=0-1023"}}, 400)
                except RangeNotSatisfiable as e:
                    error = json_response({"error": {"code": "range_not_satisfiable",
                                                     "message": f"the Range is outside the file's {e.max_size} bytes",
                                                     "hint": "ask for bytes below the file's size"}}, 416,
                                          {"Content-Range": f"bytes */{e.max_size}"})
                if error is not None:
                    return await error(scope, receive, send)
            return await super().__call__(scope, receive, send)

    return _Media(path, **kw)


async def openapi_doc(request: Any) -> Any:
    """GET /api/openapi.json."""
    return json_response(openapi())


async def page(request: Any) -> Any:
    """GET /: the page."""
    from starlette.responses import FileResponse

    return FileResponse(STATIC / "index.html", media_type="text/html")


async def http_error(request: Any, exc: Any) -> Any:
    """Starlette's own errors (no such route, method not allowed) as JSON; a 405 keeps its ``Allow``."""
    status = getattr(exc, "status_code", 400)
    allow = dict(getattr(exc, "headers", None) or {}).get("Allow", "")
    codes = {404: ("not_found", "no such endpoint", "GET /api/openapi.json lists the endpoints"),
             405: ("method_not_allowed", f"{request.method[:20]} is not allowed on {request.url.path[:200]}",
                   f"use {allow}" if allow else ""),
             413: ("too_large", "the request is too large", "")}
    code, message, hint = codes.get(status, ("bad_request", str(getattr(exc, "detail", "bad request")), ""))
    if status == 404 and request.url.path.startswith("/static/"):
        message = "no such file"
    headers = {"Allow": allow} if status == 405 and allow else None
    return json_response({"error": {"code": code, "message": message, "hint": hint}}, status, headers)


async def internal(request: Any, exc: Exception) -> Any:
    """A bug: logged with its traceback; the client gets a JSON error without one."""
    if isinstance(exc, BodyTooLarge):
        return json_response({"error": {"code": "too_large", "message": "the request body is too large", "hint": ""}}, 413)
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return json_response({"error": {"code": "internal", "message": f"unexpected {type(exc).__name__}",
                                    "hint": "the server log has the details; please report it"}}, 500)
