"""The Starlette app: the routes of the HTTP contract (docs/serve.md), the middleware (``security``'s
guard, CORS when asked) and the lifespan of the live index; the handlers are ``handlers.Api``."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import responses
from .handlers import Api
from .live import LiveIndex
from .responses import STATIC, http_error, internal, openapi_doc
from .security import Guard
from .settings import ServeSettings
from .thumbs import ThumbCache


def create_app(db: str, settings: ServeSettings | None = None, live: LiveIndex | None = None) -> Any:
    """The app serving database ``db`` with ``settings`` (defaults: loopback, no token, no CORS)."""
    settings = settings or ServeSettings()
    live = live or LiveIndex(db, settings)
    api = Api(live, settings, ThumbCache(settings.thumb_cache_bytes))

    @asynccontextmanager
    async def lifespan(app: Any):
        await anyio.to_thread.run_sync(live.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(live.stop)

    routes = [
        Route("/", responses.page, methods=["GET", "HEAD"]),
        Route("/api/health", api.wrap(api.health), methods=["GET"]),
        Route("/api/stats", api.wrap(api.stats), methods=["GET"]),
        Route("/api/attributes", api.wrap(api.attributes), methods=["GET"]),
        Route("/api/related", api.wrap(api.related), methods=["GET"]),
        Route("/api/session", api.wrap(api.session), methods=["GET", "POST"]),
        Route("/api/search", api.wrap(api.search), methods=["GET", "POST"]),
        Route("/api/pin", api.wrap(api.pin), methods=["GET"]),
        Route("/api/thumb", api.wrap(api.thumb), methods=["GET"]),
        Route("/api/media", api.wrap(api.media, timed=False), methods=["GET", "HEAD"]),
        Route("/api/pins", api.wrap(api.pins), methods=["GET"]),
        Route("/api/preview", api.wrap(api.preview), methods=["POST"]),
        Route("/api/openapi.json", api.wrap(openapi_doc), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    middleware = [Middleware(Guard, settings=settings)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    handlers = {Exception: internal, 404: http_error, 405: http_error, 400: http_error, 413: http_error}
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers)
    app.state.live = live
    app.state.thumbs = api.thumbs
    app.state.pool = api.pool
    return app
