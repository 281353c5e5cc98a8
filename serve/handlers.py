"""The /api handlers: each parses its parameters (``params``), runs the blocking query in a worker
thread under the request's deadline (``framing``) and answers JSON (or an image, or a file). The
embedder is not safe for concurrent calls, so text and image embedding hold one lock; LanceDB
queries run in parallel."""

from __future__ import annotations

import time
import weakref
from typing import Any

import anyio
from starlette.responses import Response

from pinembed import query_vector
from pinembed.errors import InputError

from . import cards, params, uploads, work
from .errors import ApiError, bad_request
from .framing import Framing
from .live import LiveIndex
from .media import resolve, scrub
from .playable import PlayCache
from .recent import RecentPins
from .responses import json_response, media_file
from .settings import ServeSettings
from .thumbs import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, ThumbCache, make_thumb, preview_jpeg


class Api(Framing):
    """The /api handlers, sharing the live index, the settings, the caches (thumbnails, videos' verdicts,
    the recent pins' order, each index's source folders) and the embed lock."""

    def __init__(self, live: LiveIndex, settings: ServeSettings, thumbs: ThumbCache) -> None:
        super().__init__(live, settings)
        self.thumbs = thumbs
        self.embed_lock = live.embed_lock
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

    # -- endpoints ---------------------------------------------------------------------------
    async def health(self, request: Any) -> Any:
        """GET /api/health: status, pins, model, generation, and whether the pins are held in memory."""
        doc = self.live.health()  # from memory: it never waits for the workers
        return json_response(doc, 503 if doc["status"] == "degraded" else 200)

    async def stats(self, request: Any) -> Any:
        """GET /api/stats: PinIndex.stats()."""
        idx = self.live.get()
        return json_response(await self.blocking(idx.stats))

    async def attributes(self, request: Any) -> Any:
        """GET /api/attributes: the served database's attributes, name -> type name, in the table's order."""
        idx = self.live.get()
        return json_response({"attributes": cards.attribute_types(idx.attributes())})

    async def related(self, request: Any) -> Any:
        """GET /api/related?pin=ID&k=&kinds=&dedupe=&diversity=&where=."""
        q = request.query_params
        pin = params.pin_id(params.one(q, "pin") or "")
        idx = self.live.get()  # once: the where is compiled for its attributes
        controls = params.query_controls(q, idx.attributes())

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
            idx = self.live.get()
            controls = params.json_controls(doc, idx.attributes())
        else:
            q = request.query_params
            pins = params.pin_ids(q.getlist("pin"), "pin")
            raw = q.getlist("weight")
            weights = params.weights([params.number(w, "weight", 0, 1e6) for w in raw], len(pins)) if raw else None
            idx = self.live.get()
            controls = params.query_controls(q, idx.attributes())

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
        idx = self.live.get()
        controls = params.controls(lambda name: params.one(fields, name), idx.attributes())

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
        """``normalise(sum of positive terms - sum of negative texts)`` by ``pinembed.query_vector``:
        texts and images embedded (one request at a time through the embedder), pins by their stored
        vectors. The uploads' sizes are checked first (415/413, ``uploads``), then they are decoded at a
        reduced size; the deadline is checked between the steps, and the wait for the embedder ends
        with it."""
        s = self.settings
        opened = uploads.opened(images, s.max_pixels, s.max_request_pixels)  # 415/413 before any decoding
        terms = query_vector.Terms(texts=[(t, 1.0) for t in texts] + [(t, -1.0) for t in negatives])
        for pid in pins:
            work.check()
            terms.vectors.append((idx.store.get_pin(pid, columns=[])["vector"], 1.0))
        if not (texts or negatives or opened):
            return query_vector.build(terms, idx.store.dim, lambda: idx.embedder, work.check)
        work.acquire(self.embed_lock)
        try:
            emb = idx.embedder
            terms.images = [(p, 1.0) for p in uploads.decoded(opened, emb.image_size)] if opened else []
            work.check()
            return query_vector.build(terms, idx.store.dim, lambda: emb, work.check)
        finally:
            self.embed_lock.release()

    async def pin(self, request: Any) -> Any:
        """GET /api/pin?pin=ID: the pin's card, description, size, duration, attributes and segments."""
        pin = params.pin_id(params.one(request.query_params, "pin") or "")
        idx = self.live.get()
        return json_response(await self.blocking(lambda: self.with_playability(idx, [cards.details(idx.pin(pin))])[0]))

    async def pins(self, request: Any) -> Any:
        """GET /api/pins?page=&size=&kinds=&where=: the pins newest first (by embedded_at), a page at a time."""
        q = request.query_params
        page, size = params.paging(q)
        kinds = params.kinds(params.one(q, "kinds"))
        idx = self.live.get()
        where = params.where(params.one(q, "where"), idx.attributes())

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            ids, total = self.recent.page(idx, page, size, kinds, where)
            extras = idx.pin_extras(ids)
            out = [cards.card(pid, e["kind"], e["uri"], e["title"], e) for pid in ids if (e := extras.get(pid))]
            return {"pins": self.with_playability(idx, out), "page": page, "size": size, "total": total,
                    "pages": -(-total // size), "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

        return json_response(await self.blocking(run))

    async def preview(self, request: Any) -> Any:
        """POST /api/preview multipart ``image`` (one file)[, ``size``]: a JPEG of it, for formats a browser
        cannot show (HEIC, TIFF, PSD, ...); decoded as uploads to a search are, under the pixel limit."""
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
