"""Every handler's frame: the request's deadline (``work``), the time limit (504), the pool of
worker threads, and every error as its JSON response (never a server path, never a traceback)."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio

from pinembed.errors import PinembedError

from . import work
from .errors import ApiError, from_pinembed
from .live import LiveIndex
from .responses import error_response
from .security import BodyTooLarge
from .settings import ServeSettings

Handler = Callable[[Any], Awaitable[Any]]
_deadline: ContextVar[work.Deadline | None] = ContextVar("pinembed_deadline", default=None)


class Framing:
    """The frame shared by the /api handlers: the live index, the settings and the worker pool."""

    def __init__(self, live: LiveIndex, settings: ServeSettings) -> None:
        self.live = live
        self.settings = settings
        self.pool = work.Pool(settings.workers, settings.max_abandoned, work.retry_after(settings.time_limit_s))

    def wrap(self, fn: Handler, timed: bool = True) -> Handler:
        """A handler with the time limit (504) and every error as a JSON error response (503 ``busy``
        with ``Retry-After``)."""
        @functools.wraps(fn)
        async def handler(request: Any) -> Any:
            limit = self.settings.time_limit_s
            deadline = work.Deadline(limit)
            token = _deadline.set(deadline)
            try:
                if not timed:
                    return await fn(request)
                with anyio.fail_after(limit):
                    return await fn(request)
            except TimeoutError:
                return error_response(work.Stopped(limit))
            except work.Busy as e:
                response = error_response(e)
                response.headers["retry-after"] = str(e.retry_after_s)
                return response
            except ApiError as e:
                return error_response(e)
            except BodyTooLarge as e:
                return error_response(ApiError(413, "too_large", f"the request body is over the limit of {e.limit_text}",
                                               "send a smaller image" if e.upload else "send a smaller request"))
            except PinembedError as e:
                return error_response(self._without_paths(from_pinembed(e)))
            finally:
                deadline.cancelled.set()  # answered: work still running stops at its next step
                _deadline.reset(token)

        return handler

    def _without_paths(self, e: ApiError) -> ApiError:
        """``e`` without the server's database path (library messages name it; clients are told DB)."""
        for path in sorted({self.live.uri, os.path.abspath(self.live.uri)}, key=len, reverse=True):
            e.message, e.hint = e.message.replace(path, "DB"), e.hint.replace(path, "DB")
        return e

    async def blocking(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)`` in a worker thread of the pool under the request's deadline (``work``)."""
        deadline = _deadline.get() or work.Deadline(self.settings.time_limit_s)
        return await self.pool.run(deadline, fn, *args, **kw)
