"""Running the service: uvicorn on one host and port, the URL printed once it listens (with the
token in the page's fragment, which browsers never send to servers), a clean stop on Ctrl-C or
SIGTERM (uvicorn's own handlers: requests in flight finish, then the process exits).

Connections are bounded in time: one that has not sent a whole request head within
``header_timeout_s`` of opening (or of its last response) is closed (uvicorn itself has no such limit:
its keep-alive timer starts only after a first response, and any byte stops it, so an idle or
header-trickling client held a connection forever); an idle one between requests after ``keep_alive_s``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .app import create_app
from .security import RedactToken
from .settings import ServeSettings


def page_url(host: str, port: int, token: str | None) -> str:
    """The page's URL (``#token=`` when there is a token)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"#token={quote(token, safe='')}" if token else "")


def uvicorn_config(app: Any, host: str, port: int, settings: ServeSettings, **kw: Any) -> Any:
    """The ``uvicorn.Config`` of ``app``: the settings' connection timeouts, no server header, lifespan on
    (``kw``: other Config arguments, e.g. ``log_level``)."""
    import uvicorn

    kw = {"log_level": "info", "access_log": True, "timeout_graceful_shutdown": 5, **kw}
    config = uvicorn.Config(app, host=host, port=port, server_header=False, lifespan="on",
                            http=protocol(settings.header_timeout_s), timeout_keep_alive=settings.keep_alive_s, **kw)
    access = logging.getLogger("uvicorn.access")  # configured by Config: the token is hidden from here on
    if not any(isinstance(f, RedactToken) for f in access.filters):
        access.addFilter(RedactToken())
    return config


def protocol(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head within
    ``header_timeout_s`` of its start or of its last response (a request in flight is never cut)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request head since the last
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def run(db: str, host: str, port: int, settings: ServeSettings, on_ready: Callable[[str], None] = print) -> None:
    """Serve ``db`` until interrupted. ``on_ready`` gets the URL once the socket listens."""
    import uvicorn

    app = create_app(db, settings)
    config = uvicorn_config(app, host, port, settings)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers:
                bound = self.servers[0].sockets[0].getsockname()[1]
                on_ready(page_url(host, bound, settings.token))

    _run_until_signal(_Server(config))


def _run_until_signal(server: Any) -> None:
    """``server.run()``; Ctrl-C and SIGTERM make uvicorn shut down gracefully, then return here (uvicorn
    raises the signal again after its shutdown: a handler of ours takes it, so the command exits 0)."""
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    wanted = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, lambda *_: None) for s in wanted}
    try:
        server.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
