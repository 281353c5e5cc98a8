"""Running the service: uvicorn on one host and port, the URL printed once it listens (with the
token in the page's fragment, which browsers never send to servers), a clean stop on Ctrl-C or
SIGTERM (uvicorn's own handlers: requests in flight finish, then the process exits)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .settings import ServeSettings


def page_url(host: str, port: int, token: str | None) -> str:
    """The page's URL (``#token=`` when there is a token)."""
    from urllib.parse import quote

    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"#token={quote(token, safe='')}" if token else "")


def run(db: str, host: str, port: int, settings: ServeSettings, on_ready: Callable[[str], None] = print) -> None:
    """Serve ``db`` until interrupted. ``on_ready`` gets the URL once the socket listens."""
    import uvicorn

    from .app import create_app
    from .security import RedactToken

    app = create_app(db, settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=True, server_header=False,
                            timeout_graceful_shutdown=5, timeout_keep_alive=5, lifespan="on")
    logging.getLogger("uvicorn.access").addFilter(RedactToken())

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
    import signal
    import threading

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
