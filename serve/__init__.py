"""``pinembed serve``: related pins, sessions, search, pin details, thumbnails and media over HTTP (JSON),
and the page that shows them. A thin layer over ``PinIndex`` (see docs/serve.md and the contract
there): ``create_app`` builds the Starlette app, ``server.run`` serves it with uvicorn.

Heavy imports (starlette, torch, lancedb) happen inside the functions, so ``pinembed --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import ServeSettings


def create_app(db: str, settings: ServeSettings | None = None, **kw: Any) -> Any:
    """The Starlette app serving the database ``db`` (see ``app.create_app``)."""
    from .app import create_app as _create

    return _create(db, settings, **kw)
