"""The Starlette app: routes of the HTTP contract (docs/serve.md) over a live PinIndex.

Every handler parses its parameters (``params``), runs the blocking query in a worker thread under
the request's deadline (``work``: the work stops between steps once the request is answered 504, and
past a cap of such abandoned work new requests are 503 at once), and answers JSON. The embedder is not
safe for concurrent calls, so text and image embedding hold one lock; LanceDB queries run in parallel.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from pinembed.errors import InputError, PinembedError

from . import cards, params, responses, uploads, work
from .errors import ApiError, bad_request, from_pinembed
from .live import LiveIndex
from .media import resolve, scrub
from .playable import PlayCache
from .recent import RecentPins
from .responses import STATIC, error_response, http_error, internal, json_response, openapi_doc
from .security import BodyTooLarge, Guard
from .settings import ServeSettings

Handler = Callable[[Any], Awaitable[Any]]
_deadline: ContextVar[work.Deadline | None] = ContextVar("pinembed_deadline", default=None)


def create_app(db: str, settings: ServeSettings | None = None, live: LiveIndex | None = None) -> Any:
    """The app serving database ``db`` with ``settings`` (defaults: loopback, no token, no CORS)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from .thumbs import ThumbCache

    settings = settings or ServeSettings()
    live = live or LiveIndex(db, settings)
    api = _Api(live, settings, ThumbCache(settings.thumb_cache_bytes))

    @asynccontextmanager
    async def lifespan(app: Any):
        import anyio

        await anyio.to_thread.run_sync(live.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(live.stop)

    routes = [
        Route("/", responses.page, methods=["GET", "HEAD"]),
        Route("/api/health", api.wrap(api.health), methods=["GET"]),
        Route("/api/stats", api.wrap(api.stats), methods=["GET"]),
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
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    handlers = {Exception: internal, 404: http_error, 405: http_error, 400: http_error, 413: http_error}
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers)
    app.state.live = live
    app.state.thumbs = api.thumbs
    app.state.pool = api.pool
    return app


class _Api:
    """The /api handlers, sharing the live index, the settings, the caches (thumbnails, videos' verdicts,
    the recent pins' order, each index's source folders) and the embed lock."""

    def __init__(self, live: LiveIndex, settings: ServeSettings, thumbs: Any) -> None:
        self.live = live
        self.settings = settings
        self.thumbs = thumbs
        self.embed_lock = live.embed_lock
        self.pool = work.Pool(settings.workers, settings.max_abandoned, work.retry_after(settings.time_limit_s))
        self.playable = PlayCache()
        self.recent = RecentPins()
        self._sources: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()

    def sources(self, idx: Any) -> list[dict[str, Any]]:
        """``idx.sources()``, read once per index (a change of the sources makes a new index)."""
        found = self._sources.get(idx)
        if found is None:
            found = self._sources[idx] = idx.sources()
        return found

    def with_playability(self, idx: Any, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Video cards with ``playable`` and ``media_type`` (``serve.playable``): whether a browser can play
        the file. A file that is not served gets neither (the page finds out when it tries)."""
        for c in out:
            if c.get("kind") != "video":
                continue
            work.check()
            try:
                media = resolve({"pin_id": c["pin_id"], "kind": "video", "uri": c.get("uri")}, self.sources(idx))
            except ApiError:
                continue
            c.update(self.playable.get(media.path).fields())
        return out

    def wrap(self, fn: Handler, timed: bool = True) -> Handler:
        """A handler with the time limit (504) and every error as a JSON error response (503 ``busy``
        with ``Retry-After``)."""
        import functools

        @functools.wraps(fn)
        async def handler(request: Any) -> Any:
            import anyio

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
        import os

        for path in sorted({self.live.uri, os.path.abspath(self.live.uri)}, key=len, reverse=True):
            e.message, e.hint = e.message.replace(path, "DB"), e.hint.replace(path, "DB")
        return e

    async def blocking(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)`` in a worker thread of the pool under the request's deadline (``work``)."""
        deadline = _deadline.get() or work.Deadline(self.settings.time_limit_s)
        return await self.pool.run(deadline, fn, *args, **kw)

    # -- endpoints ---------------------------------------------------------------------------
    async def health(self, request: Any) -> Any:
        """GET /api/health: status, pins, model, generation, and whether the pins are held in memory."""
        doc = self.live.health()  # from memory: it never waits for the workers
        return json_response(doc, 503 if doc["status"] == "degraded" else 200)

    async def stats(self, request: Any) -> Any:
        """GET /api/stats: PinIndex.stats()."""
        idx = self.live.get()
        return json_response(await self.blocking(idx.stats))

    async def related(self, request: Any) -> Any:
        """GET /api/related?pin=ID&k=&kinds=&dedupe=&diversity=&where=."""
        q = request.query_params
        pin = params.pin_id(params.one(q, "pin") or "")
        controls = params.query_controls(q)
        idx = self.live.get()

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            p = _existing(idx, [pin], vectors=True)[pin]  # one query: the pin, its card and its vector
            work.check()
            rows = idx.search_vector(p["vector"], exclude=[pin], **controls)  # = idx.related(pin), no 2nd lookup
            took = (time.perf_counter() - t0) * 1000
            query = cards.card(pin, p["kind"], p["uri"], p["title"], p)
            self.with_playability(idx, [query])
            return {"query": query, "results": self.with_playability(idx, cards.results(rows)),
                    "took_ms": round(took, 2)}

        return json_response(await self.blocking(run))

    async def session(self, request: Any) -> Any:
        """POST /api/session {"pins", "weights"?, k, kinds, dedupe, diversity, where}; or GET with
        repeated pin= (and weight=)."""
        if request.method == "POST":
            doc = params.json_body(await request.body())
            pins = params.pin_ids(doc.get("pins"))
            weights = params.weights(doc.get("weights"), len(pins))
            controls = params.json_controls(doc)
        else:
            q = request.query_params
            pins = params.pin_ids(q.getlist("pin"), "pin")
            raw = q.getlist("weight")
            weights = params.weights([params.number(w, "weight", 0, 1e6) for w in raw], len(pins)) if raw else None
            controls = params.query_controls(q)
        idx = self.live.get()

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            _existing(idx, pins)
            work.check()
            rows = idx.related_to_session(pins, weights=weights, check=work.check, **controls)
            work.check()
            out = self.with_playability(idx, cards.results(rows, fused=True))
            return {"results": out, "order": "fused" if all("fused" in c for c in out) else "rank",
                    "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

        return json_response(await self.blocking(run))

    async def search(self, request: Any) -> Any:
        """GET /api/search?text=&negative=&pin=&k=...; POST multipart with image files too."""
        images: list[bytes] = []
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
                raise ApiError(415, "unsupported_media_type", "POST /api/search takes multipart/form-data",
                               "send fields image (files), text, negative, pin, k, kinds, dedupe, diversity, where")
            form = await uploads.read_form(request, params.MAX_TERMS)
            fields = form
            for item in form.getlist("image"):
                if isinstance(item, str):
                    raise ApiError(422, "bad_type", "image must be a file upload, not a text field")
                images.append(await item.read())
            if len(images) > params.MAX_TERMS:
                raise bad_request(f"at most {params.MAX_TERMS} images")
        else:
            fields = request.query_params
        texts = params.texts(fields.getlist("text"), "text")
        negatives = params.texts(fields.getlist("negative"), "negative")
        pins = fields.getlist("pin")
        pins = params.pin_ids(pins, "pin", params.MAX_TERMS) if pins else []
        if not (texts or images or pins):
            raise bad_request("a search needs at least one positive term: text, image or pin",
                              "e.g. /api/search?text=red+circle")
        controls = params.controls(lambda name: params.one(fields, name))
        idx = self.live.get()

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            vec = self._query_vector(idx, texts, negatives, images, pins)
            work.check()
            rows = idx.search_vector(vec, **controls)
            return {"results": self.with_playability(idx, cards.results(rows)),
                    "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

        return json_response(await self.blocking(run))

    def _query_vector(self, idx: Any, texts: list[str], negatives: list[str], images: list[bytes],
                      pins: list[str]) -> Any:
        """``normalise(sum of positive terms - sum of negative texts)``: texts and images embedded (one
        at a time through the embedder), pins by their stored vectors. The uploads' sizes are checked
        first (415/413, ``uploads``), then they are decoded at a reduced size; the deadline is checked
        between the steps, and the wait for the embedder ends with it."""
        import numpy as np

        s = self.settings
        opened = uploads.opened(images, s.max_pixels, s.max_request_pixels)  # 415/413 before any decoding
        vec = np.zeros(idx.store.dim, np.float32)
        for pid in pins:
            work.check()
            vec += idx.store.get_pin(pid, columns=[])["vector"]
        if texts or negatives or opened:
            work.acquire(self.embed_lock)
            try:
                emb = idx.embedder
                pictures = uploads.decoded(opened, emb.image_size) if opened else []
                work.check()
                if texts or negatives:
                    tv = emb.embed_texts(texts + negatives)
                    vec += tv[: len(texts)].sum(axis=0) - tv[len(texts):].sum(axis=0)
                if pictures:
                    work.check()
                    vec += emb.embed_images(pictures).sum(axis=0)
            finally:
                self.embed_lock.release()
        norm = float(np.linalg.norm(vec))
        if not math.isfinite(norm) or norm < 1e-6:
            raise bad_request("the terms cancel out (the query vector is zero)", "leave out a negative term")
        return vec / norm

    async def pin(self, request: Any) -> Any:
        """GET /api/pin?pin=ID: the pin's card, description, size, duration and segments."""
        pin = params.pin_id(params.one(request.query_params, "pin") or "")
        idx = self.live.get()
        return json_response(await self.blocking(lambda: self.with_playability(idx, [cards.details(idx.pin(pin))])[0]))

    async def pins(self, request: Any) -> Any:
        """GET /api/pins?page=&size=&kinds=: the pins newest first (by embedded_at), a page at a time."""
        q = request.query_params
        page, size = params.paging(q)
        kinds = params.kinds(params.one(q, "kinds"))
        idx = self.live.get()

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            ids, total = self.recent.page(idx, page, size, kinds)
            extras = idx.pin_extras(ids)
            out = [cards.card(pid, e["kind"], e["uri"], e["title"], e) for pid in ids if (e := extras.get(pid))]
            return {"pins": self.with_playability(idx, out), "page": page, "size": size, "total": total,
                    "pages": -(-total // size), "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

        return json_response(await self.blocking(run))

    async def preview(self, request: Any) -> Any:
        """POST /api/preview multipart ``image`` (one file)[, ``size``]: a JPEG of it, for formats a browser
        cannot show (HEIC, TIFF, PSD, ...); decoded as uploads to a search are, under the pixel limit."""
        from starlette.responses import Response

        from .thumbs import MAX_SIZE, MIN_SIZE, preview_jpeg

        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "multipart/form-data":
            raise ApiError(415, "unsupported_media_type", "POST /api/preview takes multipart/form-data",
                           "send one file in the field image")
        form = await uploads.read_form(request, 1)
        files = form.getlist("image")
        if len(files) != 1 or isinstance(files[0], str):
            raise bad_request("POST /api/preview takes exactly one file in the field image")
        size = params.integer(params.one(form, "size"), "size", MIN_SIZE, MAX_SIZE) or MAX_SIZE
        data = await files[0].read()
        jpeg = await self.blocking(preview_jpeg, data, size, self.settings.max_pixels)
        return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "no-store"})

    async def thumb(self, request: Any) -> Any:
        """GET /api/thumb?pin=ID[&t=][&page=][&size=]: a JPEG."""
        from starlette.responses import Response

        from .thumbs import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, make_thumb

        q = request.query_params
        pin = params.pin_id(params.one(q, "pin") or "")
        t = params.number(params.one(q, "t"), "t", 0.0, params.MAX_T_S)
        page = params.integer(params.one(q, "page"), "page", 0, params.MAX_PAGE)
        size = params.integer(params.one(q, "size"), "size", MIN_SIZE, MAX_SIZE)
        size = DEFAULT_SIZE if size is None else size
        idx = self.live.get()

        def run() -> bytes:
            media = resolve(idx.pin(pin), self.sources(idx), page)
            key = (media.pin_id, media.content_hash, media.page, None if t is None else round(t, 1), size)
            work.check()
            try:
                return self.thumbs.get_or_make(key, lambda: make_thumb(media, t, size, self.settings.max_pixels))
            except InputError as e:  # the stored file changed or broke since it was ingested
                raise ApiError(404, "no_thumbnail", f"no thumbnail: {scrub(e.message, media)}",
                               "the next `pinembed refresh` re-reads the file") from None

        data = await self.blocking(run)
        return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=300"})

    async def media(self, request: Any) -> Any:
        """GET /api/media?pin=ID[&page=N]: the pin's file; Range requests answer 206."""
        import anyio

        from .responses import media_file

        q = request.query_params
        pin = params.pin_id(params.one(q, "pin") or "")
        page = params.integer(params.one(q, "page"), "page", 0, params.MAX_PAGE)
        idx = self.live.get()
        with anyio.fail_after(self.settings.time_limit_s):
            media = await self.blocking(lambda: resolve(idx.pin(pin), self.sources(idx), page))
        return media_file(media.path, media_type=media.content_type, content_disposition_type="inline",
                          headers={"cache-control": "private, max-age=300",
                                   "content-security-policy": "sandbox; default-src 'none'"})


def _existing(idx: Any, pins: list[str], vectors: bool = False) -> dict[str, dict[str, Any]]:
    """The pins' card facts (and vectors) by exact id; 404 naming the first unknown one (never looked
    up as a path)."""
    known = idx.pin_extras(pins, vectors=vectors)
    for p in pins:
        if p not in known:
            raise ApiError(404, "pin_not_found", f"no pin with id {p[:300]!r}",
                           "pin ids are paths under the ingested folder, e.g. images/red.jpg; "
                           "`pinembed pins --db DB` lists them")
    return known
