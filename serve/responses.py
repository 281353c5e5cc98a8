"""Responses of the app that are not an endpoint's answer: JSON bodies, errors (the app's and
Starlette's own, and bugs, never with a traceback), the page and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import ApiError
from .security import BodyTooLarge
from .settings import ServeSettings

log = logging.getLogger("pinembed.serve")
STATIC = Path(__file__).resolve().parent / "static"


def json_response(obj: Any, status: int = 200) -> Any:
    """``obj`` as a JSON response, never cached."""
    from starlette.responses import Response

    body = json.dumps(obj, default=str, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers={"cache-control": "no-store"})


def error_response(e: ApiError) -> Any:
    """The JSON error response of ``e``."""
    return json_response(e.body(), e.status)


def too_large(settings: ServeSettings) -> ApiError:
    """The 413 of a request body over the upload limit."""
    return ApiError(413, "too_large", f"the request body is over the limit of {settings.max_upload_bytes // (1 << 20)} MB",
                    "send a smaller image")


async def openapi_doc(request: Any) -> Any:
    """GET /api/openapi.json."""
    from .openapi import openapi

    return json_response(openapi())


async def page(request: Any) -> Any:
    """GET /: the page."""
    from starlette.responses import FileResponse

    return FileResponse(STATIC / "index.html", media_type="text/html")


async def http_error(request: Any, exc: Any) -> Any:
    """Starlette's own errors (no such route, method not allowed) as JSON."""
    status = getattr(exc, "status_code", 400)
    codes = {404: ("not_found", "no such endpoint", "GET /api/openapi.json lists the endpoints"),
             405: ("method_not_allowed", f"{request.method} is not allowed on {request.url.path}", ""),
             413: ("too_large", "the request is too large", "")}
    code, message, hint = codes.get(status, ("bad_request", str(getattr(exc, "detail", "bad request")), ""))
    if status == 404 and request.url.path.startswith("/static/"):
        message = "no such file"
    return json_response({"error": {"code": code, "message": message, "hint": hint}}, status)


async def internal(request: Any, exc: Exception) -> Any:
    """A bug: logged with its traceback; the client gets a JSON error without one."""
    if isinstance(exc, BodyTooLarge):
        return json_response({"error": {"code": "too_large", "message": "the request body is too large", "hint": ""}}, 413)
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return json_response({"error": {"code": "internal", "message": f"unexpected {type(exc).__name__}",
                                    "hint": "the server log has the details; please report it"}}, 500)
