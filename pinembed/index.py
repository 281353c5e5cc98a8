"""PinIndex: the public face that wires an embedder and a store together."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .controls import MAX_K
from .controls import check_controls as _check_controls
from .controls import check_k as _check_k
from .controls import check_term_weight as _check_term_weight
from .controls import check_weights as _check_weights
from .controls import check_where as _check_where
from .controls import scaled as _scaled
from .errors import InputError, PinembedError, PinNotFoundError, UsageError
from .results import Related

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_DB = "pins.lance"
DEFAULT_MODEL = "open_clip:ViT-B-32/laion2b_s34b_b79k"
#: The pin columns that ``iter_pins``, ``to_arrow`` and ``pinembed export`` give by default.
EXPORT_COLUMNS = ("pin_id", "kind", "uri", "title", "description", "width", "height", "duration_s", "model_id",
                  "vector")


def open_index(uri: str | os.PathLike[str] = DEFAULT_DB, model: str | None = None, device: str | None = None,
               storage_options: dict[str, str] | None = None, precision: str | None = None) -> PinIndex:
    """Open (or prepare) the pin database at ``uri``: a local folder or any LanceDB URI.

    ``model`` is needed only to build a new database; an existing one uses the model that built it,
    and naming a different one is a ModelMismatchError. ``precision``: auto (fp16 on CUDA, fp32 on
    CPU), fp32, fp16 (CUDA) or int8 (CPU dynamic quantization; cosine to fp32 >= 0.999).
    """
    return PinIndex(uri, model=model, device=device, storage_options=storage_options, precision=precision)


class PinIndex:
    """Related-pin, text and image queries over one database, and ingestion into it."""

    def __init__(self, uri: str | os.PathLike[str] = DEFAULT_DB, model: str | None = None,
                 device: str | None = None, storage_options: dict[str, str] | None = None,
                 precision: str | None = None) -> None:
        from pinembed.store import Store

        self.uri = os.fspath(uri)
        self._storage_options = storage_options
        self.store = Store(self.uri, storage_options=storage_options)
        self._model = model
        self._device = device
        self._precision = precision
        self._embedder = None
        #: seconds the embedder took to load (and check) in this index, None while it is not loaded
        self.model_load_s: float | None = None
        #: the pins' vectors and card columns in memory (``hold_in_memory``), else None
        self.resident: Any = None

    @property
    def model_id(self) -> str:
        """The model this index embeds with: the one asked for, else the one that built the database."""
        if self._model:
            return self._model
        have = self.store.identity
        return have["model_id"] if have else DEFAULT_MODEL

    @property
    def embedder(self) -> Any:
        """The embedder, loaded on first use and checked against the database's space (the seconds it
        took in ``model_load_s``)."""
        if self._embedder is None:
            import time

            from pinembed.embedders import get_embedder
            from pinembed.store.identity import space_identity

            t0 = time.perf_counter()
            emb = get_embedder(self.model_id, self._device, self._precision)
            self.store.check_space(space_identity(emb.identity()))
            self._embedder = emb
            self.model_load_s = time.perf_counter() - t0
        return self._embedder

    def ingest(self, src: str | os.PathLike[str], options: Any = None, progress: Any = None,
               runner: str | None = None) -> Any:
        """Ingest every image, video and idea pin under ``src``; returns an IngestSummary (see
        ``summary.exit_code``). The write lock is taken first; the model is loaded only when there is
        something to embed (or a database to create). ``runner="ray"`` reads and embeds on a Ray
        cluster (``options.ray``: address, workers, CPUs and GPUs per worker)."""
        from contextlib import nullcontext
        from dataclasses import replace

        from pinembed.store.lease import is_object_store
        from pinembed.store.lock import WriteLock

        # a local lock first, before the slow imports, so a second writer is told at once (the pipeline's
        # nests); an object store's lease is taken by the pipeline after it checked the source prefix
        local = not is_object_store(self.uri)
        with WriteLock(self.uri, "ingest", self._storage_options, reentrant=True) if local else nullcontext():
            from pinembed.ingestion.pipeline import IngestOptions, ingest

            if runner is not None:
                options = replace(options or IngestOptions(), runner=runner)
            if self._precision or self._device:  # a wrong choice is an error even when no model loads
                from pinembed.embedders.device import pick_device, pick_precision

                pick_precision(pick_device(self._device), self._precision)
            summary = ingest(src, self.store, lambda: self.embedder, options, progress, model_id=self._model,
                             model_spec=(self.model_id, self._device, self._precision))
        if self.resident is not None:  # what this process wrote is held too
            self.sync_memory()
        return summary

    def refresh(self, sources: Any, options: Any = None, progress: Any = None, runner: str | None = None) -> Any:
        """Bring the database in line with ``sources`` (a folder or a list): new, changed, moved,
        deleted, failed-before and stale pins. With a ``model`` given to open_index that differs from
        the live one, the new model's generation is built and goes live when complete. Returns a
        RefreshSummary. This index then reads the (possibly new) live generation."""
        from pinembed.ingestion.refresh import refresh

        srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        if runner is not None:
            from dataclasses import replace

            from pinembed.ingestion.refresh import RefreshOptions

            options = options or RefreshOptions()
            options = replace(options, ingest=replace(options.ingest, runner=runner))
        summary = refresh(srcs, self.uri, self._model, options, device=self._device, precision=self._precision,
                          storage_options=self._storage_options, progress=progress)
        self.reload()
        return summary

    def reload(self) -> None:
        """Re-resolve the live model generation (after another process switched models)."""
        from pinembed.store import Store

        self.store = Store(self.uri, storage_options=self._storage_options)
        self._embedder = None
        self.resident = None

    def hold_in_memory(self, max_mb: float | None = None) -> bool:
        """Keep every pin's vector and card columns in memory (``store.resident``), for a long-lived
        reader: a related-pins query then makes one LanceDB query instead of three (25 -> ~10 ms at 1M
        pins). Loaded only when it takes at most ``max_mb`` (None: no limit); True when held. Call
        ``sync_memory`` to see later writes of other processes (``pinembed serve`` does, every second);
        pins written since are read from the table meanwhile."""
        from pinembed.store.resident import ResidentPins, estimate_mb

        self.store.require_pins()
        if max_mb is not None and estimate_mb(self.store.count(), self.store.dim) > max_mb:
            return False
        self.resident = ResidentPins.load(self.store)
        return True

    def sync_memory(self) -> dict[str, int]:
        """Bring the in-memory copy (``hold_in_memory``) in line with the table: counts ``read``,
        ``updated`` and ``deleted`` (empty when nothing is held)."""
        return self.resident.sync(self.store) if self.resident is not None else {}

    def models(self) -> list[dict[str, Any]]:
        """The model generations: generation, state (live, building, retired), model_id, dim, pins, dates."""
        out = []
        for g in self.store.generations():
            out.append({"generation": g.generation, "state": g.state, "model_id": g.model_id,
                        "dim": g.identity.get("dim"), "pins": self.store.table_rows(g.pins),
                        "weights_digest": g.identity.get("weights_digest"), "created_at": g.created_at,
                        "switched_at": g.switched_at})
        return out

    def sources(self) -> list[dict[str, Any]]:
        """The source folders ingested into this database: root, id_prefix, first_seen, last_seen. Each
        root owns the pin ids under its prefix; another folder cannot take them over."""
        return self.store.source_rows()

    def gc(self) -> list[int]:
        """Drop retired generations (holding the write lock) and compact the live one; returns the
        generations dropped. A generation still being built is kept: its refresh resumes it."""
        from pinembed.store.lock import WriteLock

        self.store.require_database()  # never create a folder for a database that is not there
        with WriteLock(self.uri, "gc", self._storage_options):
            retired = [g.generation for g in self.store.generations() if g.state == "retired"]
            dropped = self.store.drop_generations(retired)
            self.store.ensure_index()
        return dropped

    def related(self, pin_id: str, k: int = 20, kinds: Any = None, where: Any = None, dedupe: float | None = None,
                diversity: float = 0.0) -> list[Related]:
        """The ``k`` pins nearest to ``pin_id``'s stored vector, the pin itself left out.

        ``where``: a structured filter (``{"kind": "video", "title": {"contains": "pasta"}}``, see
        ``store.filters.compile_where``). ``dedupe=0.95`` drops results within that cosine of the query
        pin or of a result already returned (re-uploads, a frame saved as an image). ``diversity`` (0..1)
        re-ranks a larger candidate pool by maximal marginal relevance; 0 is plain similarity."""
        k = _check_k(k)
        dedupe, diversity = _check_controls(dedupe, diversity)
        _check_where(where)
        pin_id, pin = self._query_pin(pin_id)
        return self._ranked(pin["vector"], k, kinds, where, dedupe, diversity, exclude=[pin_id])

    def _query_pin(self, ref: str) -> tuple[str, dict[str, Any]]:
        """(pin id, row with its vector) of a pin named by its id or by the path of its ingested file."""
        held = self.resident.rows([ref], with_vector=True) if self.resident is not None else {}
        if ref in held:
            return ref, held[ref]
        try:
            return ref, self.store.get_pin(ref, columns=[])
        except PinNotFoundError:
            found = self.pin_id_for_path(ref)
            if found is None:
                raise
            return found, self.store.get_pin(found, columns=[])

    def pin_id_for_path(self, path: str | os.PathLike[str]) -> str | None:
        """The id of the pin ingested from the local file (or idea-pin folder) ``path``; None when
        ``path`` is no existing file or folder or no pin came from it."""
        try:
            if not os.path.exists(path):
                return None
        except (TypeError, ValueError):  # a NUL byte, not a path
            return None
        return self.store.pin_id_for_path(path)

    def related_to_session(self, pin_ids: Any, weights: Any = None, k: int = 20, kinds: Any = None,
                           where: Any = None, dedupe: float | None = None, diversity: float = 0.0,
                           threshold: float = 0.8, check: Callable[[], None] | None = None) -> list[Related]:
        """Related pins for a closeup session as a whole: its pins (oldest first) are grouped into
        distinct interests (cosine ``threshold`` to an interest's centroid), each interest retrieves
        on its own, and the lists are fused by reciprocal rank fusion weighted by the interests' total
        weight (``weights`` per pin, default recency: the newest weighs 1, five pins back 0.5). Pins of
        the session are left out. Interests share the results in proportion to their weight (see
        ``related.rrf``). ``score`` is the best cosine to any interest; ``fused`` the fused score, by
        which the list is ordered. ``check`` is called between steps (before each pin is read and each
        interest's query): what it raises stops the work there (serve's deadline)."""
        import numpy as np

        from pinembed import related as rel

        k = _check_k(k)
        dedupe, diversity = _check_controls(dedupe, diversity)
        _check_where(where)
        ids = [pin_ids] if isinstance(pin_ids, str) else list(pin_ids)
        if not ids:
            raise UsageError("a session needs at least one pin id")
        step = check or _no_check
        found = []
        for p in ids:
            step()
            found.append(self._query_pin(p))
        ids = [pid for pid, _ in found]
        vecs = np.stack([pin["vector"] for _, pin in found])
        w = rel.recency_weights(len(ids)) if weights is None else np.asarray(_check_weights(weights, len(ids)))
        groups = rel.interests(vecs[w > 0], w[w > 0], threshold)
        pool = k  # each interest could fill the list alone; deeper lists would let every pin collect votes
        lists, rows_by_id = [], {}
        for centroid, _weight, _members in groups:
            step()
            rows = self._ranked(centroid, pool, kinds, where, dedupe, diversity, exclude=ids, results=False)
            lists.append([r["pin_id"] for r in rows])
            for r in rows:
                best = rows_by_id.get(r["pin_id"])
                if best is None or r["score"] > best["score"]:
                    rows_by_id[r["pin_id"]] = r
        fused = rel.rrf(lists, [g[1] for g in groups])[:k]
        rows = [rows_by_id[pid] for pid, _ in fused]
        if dedupe is not None:  # interests may each bring the same near-duplicate
            keep = rel.dedupe(None, np.stack([r["vector"] for r in rows]), dedupe) if rows else []
            rows = [rows[i] for i in keep]
        by_id = dict(fused)  # the list is in fused order, not by score (each result's best cosine)
        return [replace(r, fused=round(by_id[r.pin_id], 6)) for r in self._results(groups[0][0], rows)]

    def _ranked(self, query: Any, k: int, kinds: Any, where: Any, dedupe: float | None, diversity: float,
                exclude: list[str], results: bool = True) -> Any:
        """Retrieve and re-rank: a candidate pool (larger when deduping or diversifying), near-duplicates
        dropped, then MMR; Related results, or the rows themselves (with vectors) when not ``results``."""
        import numpy as np

        from pinembed import related as rel
        from pinembed.store.filters import compile_where

        controls = dedupe is not None or diversity > 0
        pool = min(MAX_K, max(4 * k, k + 50)) if controls else k
        if self.resident is not None:  # one query for the candidates; vectors and cards from memory
            from pinembed.store.resident import CARD_COLUMNS

            hits = self.store.candidates(query, pool + len(exclude), kinds, where=compile_where(where))
            rows = self.resident.rank(query, hits, pool, exclude,
                                      lambda ids: self.store.pins_by_row(ids, [*CARD_COLUMNS, "vector"]),
                                      with_vector=controls or not results)
        else:
            rows = self.store.search(query, pool, kinds, exclude=exclude, where=compile_where(where),
                                     with_vector=controls or not results)
        if controls and rows:
            vecs = np.stack([r["vector"] for r in rows])
            idx = list(range(len(rows)))
            if dedupe is not None:
                idx = rel.dedupe(np.asarray(query, np.float32), vecs, dedupe)
            if diversity > 0:
                idx = [idx[i] for i in rel.mmr(np.asarray(query, np.float32), vecs[idx], k, diversity)]
            rows = [rows[i] for i in idx]
        rows = rows[:k]
        return self._results(query, rows) if results else rows

    def search_text(self, text: str, k: int = 10, kinds: Any = None, where: Any = None) -> list[Related]:
        """Pins nearest to a text query."""
        return self.search([text], k=k, kinds=kinds, where=where)

    def search_image(self, path: str | os.PathLike[str], k: int = 10, kinds: Any = None,
                     where: Any = None) -> list[Related]:
        """Pins nearest to an image file (a local file: URLs are refused, download them first)."""
        if isinstance(path, str) and "://" in path:
            raise UsageError(f"image URLs are not supported: {path}", "download the image first and pass the file")
        return self.search([Path(path)], k=k, kinds=kinds, where=where)

    def search(self, positive: Any = (), negative: Any = (), k: int = 10, kinds: Any = None, where: Any = None,
               dedupe: float | None = None, diversity: float = 0.0) -> list[Related]:
        """Pins nearest to a combination of queries: ``normalise(sum w*positive - sum w*negative)``.

        Each term is a text (``str``), an image file (``pathlib.Path``) or a ``(term, weight)`` pair:
        ``idx.search(positive=["red dress", (Path("look.jpg"), 0.5)], negative=["logo"])``."""
        k = _check_k(k)
        dedupe, diversity = _check_controls(dedupe, diversity)
        _check_where(where)
        self.store.require_pins()
        vec = self.query_vector(positive, negative)
        return self._ranked(vec, k, kinds, where, dedupe, diversity, exclude=[])

    def query_vector(self, positive: Any = (), negative: Any = ()) -> Any:
        """The normalised query vector of weighted text and image terms (see ``search``)."""
        import numpy as np

        terms = [(t, 1.0) for t in _terms(positive)] + [(t, -1.0) for t in _terms(negative)]
        if not any(sign > 0 for _, sign in terms):
            raise UsageError("a search needs at least one positive text or image", "e.g. search \"red dress\"")
        parsed = []
        for (term, sign) in terms:
            item, weight = term if isinstance(term, tuple) else (term, 1.0)
            parsed.append((item, sign * _check_term_weight(weight)))
        parsed = list(zip([i for i, _ in parsed], _scaled([w for _, w in parsed]), strict=True))  # 1e308 stays finite
        texts = [(i, w) for i, w in parsed if isinstance(i, str)]
        images = [(i, w) for i, w in parsed if isinstance(i, os.PathLike)]
        if len(texts) + len(images) != len(parsed):
            bad = next(i for i, _ in parsed if not isinstance(i, str | os.PathLike))
            raise UsageError(f"a search term is a text (str) or an image file (pathlib.Path), not {bad!r}")
        for t, _ in texts:
            if not t.strip():
                raise UsageError("a text query is empty", "pass some words, e.g. --text 'red circle'")
        vec = np.zeros(self.store.dim, np.float32)
        if texts:
            vec += np.einsum("n,nd->d", np.array([w for _, w in texts], np.float32),
                             self.embedder.embed_texts([t for t, _ in texts]))
        if images:
            vec += np.einsum("n,nd->d", np.array([w for _, w in images], np.float32),
                             self.embedder.embed_images([_query_image(p) for p, _ in images]))
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm < 1e-6:
            raise UsageError("the terms cancel out (the query vector is zero)", "weigh the negative terms less")
        return vec / norm

    def dupes(self, threshold: float = 0.95, neighbours: int = 10, batch_size: int = 512) -> list[list[str]]:
        """Clusters of near-duplicate pins (cosine >= ``threshold``, linked transitively), biggest first.
        Vectors are streamed in batches and each batch asks the index for its ``neighbours`` nearest
        pins, so the table is never loaded whole."""
        from pinembed import related as rel

        dedupe, _ = _check_controls(threshold, 0.0)
        assert dedupe is not None
        return rel.near_duplicate_clusters(self.store, dedupe, neighbours, batch_size)

    def search_vector(self, vector: Any, k: int = 10, kinds: Any = None, where: Any = None,
                      dedupe: float | None = None, diversity: float = 0.0, exclude: Any = ()) -> list[Related]:
        """Pins nearest to a vector of this database's space (normalised here; no model is loaded),
        leaving out the pin ids in ``exclude`` (``related(p)`` is ``search_vector(vector of p,
        exclude=[p])``)."""
        import numpy as np

        k = _check_k(k)
        dedupe, diversity = _check_controls(dedupe, diversity)
        _check_where(where)
        self.store.require_pins()
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        dim = self.store.dim
        if vec.shape[0] != dim or not np.all(np.isfinite(vec)) or not np.any(vec):
            raise UsageError(f"the query vector must be {dim} finite numbers, not all zero (got {vec.shape[0]})")
        skip = [exclude] if isinstance(exclude, str) else list(exclude)
        return self._ranked(vec / np.linalg.norm(vec), k, kinds, where, dedupe, diversity, exclude=skip)

    def _results(self, query: Any, rows: list[dict[str, Any]]) -> list[Related]:
        """Results, with the best-matching frame time of videos and best page of idea pins."""
        import numpy as np

        from pinembed.ingestion import kinds

        timed = {k.name for k in kinds.all_kinds() if k.timed}
        paged = {k.name for k in kinds.all_kinds() if k.paged}
        multi = [r["pin_id"] for r in rows if r["kind"] in timed | paged and r.get("n_segments")]
        best: dict[str, tuple[float, dict[str, Any]]] = {}
        pages: dict[str, set[int]] = {}
        for seg in self.store.segments_of(multi):
            if seg["kind"] == "page" and seg.get("page") is not None:
                pages.setdefault(seg["pin_id"], set()).add(seg["page"])
            if seg["kind"] == "frame" or (seg["kind"] in ("page", "text") and seg.get("page") is not None):
                score = float(np.dot(np.asarray(seg["vector"], np.float32), query))
                if seg["pin_id"] not in best or score > best[seg["pin_id"]][0]:
                    best[seg["pin_id"]] = (score, seg)
        out = []
        for r in rows:
            seg = best.get(r["pin_id"], (0.0, {}))[1]
            out.append(Related.from_row(r, best_t_s=seg.get("t_s") if r["kind"] in timed else None,
                                        best_page=seg.get("page") if r["kind"] in paged else None,
                                        pages=len(pages.get(r["pin_id"], ())) if r["kind"] in paged else None))
        return out

    def iter_pins(self, batch_size: int = 1024, columns: Any = EXPORT_COLUMNS, kinds: Any = None,
                  where: Any = None) -> Iterator[pa.RecordBatch]:
        """The live generation's pins as Arrow record batches of at most ``batch_size`` rows, streamed
        (never the whole table in memory). ``columns``: EXPORT_COLUMNS by default (``None``: every
        column); ``kinds`` and ``where`` filter as in ``related``. This is the stable way to read pins:
        the physical table behind them changes name after a model switch."""
        from pinembed.store.filters import check_kinds, compile_where, is_in

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.store.require_database()
        kinds = check_kinds(kinds)
        conds = [c for c in (is_in("kind", kinds) if kinds is not None else None, compile_where(where)) if c]
        sql = " AND ".join(f"({c})" for c in conds) if conds else None
        cols = None if columns is None else self._columns(columns)
        yield from self.store.iter_batches("pins", cols, sql, batch_size)

    def to_arrow(self, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None) -> pa.Table:
        """The live generation's pins as one Arrow table (all in memory: use ``iter_pins`` for large
        databases)."""
        import pyarrow as pa

        batches = list(self.iter_pins(4096, columns, kinds, where))
        if batches:
            return pa.Table.from_batches(batches)
        schema = self.store.schema("pins")
        if schema is None:
            return pa.table({})
        return schema.empty_table() if columns is None else schema.empty_table().select(self._columns(columns))

    def to_pandas(self, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None) -> Any:
        """The live generation's pins as a pandas DataFrame (needs pandas, which pinembed does not
        install)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise PinembedError("to_pandas() needs pandas, which is not installed",
                                "pip install pandas; or use to_arrow() or iter_pins(), which need only pyarrow") from None
        return self.to_arrow(columns, kinds, where).to_pandas()

    def _columns(self, columns: Any) -> list[str]:
        schema = self.store.schema("pins")
        have = set(schema.names) if schema is not None else set(EXPORT_COLUMNS)
        cols = [columns] if isinstance(columns, str) else list(columns)
        bad = [c for c in cols if not isinstance(c, str) or c not in have]
        if bad or not cols:
            raise UsageError(f"unknown pin column(s): {', '.join(map(repr, bad)) or 'none given'}",
                             f"pin columns: {', '.join(sorted(have))}")
        return cols

    def failures(self) -> list[dict[str, Any]]:
        """The failure ledger, newest first."""
        return self.store.failures()

    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, failures and the model that built the database."""
        return self.store.stats()

    # -- for the HTTP service (serve/) -------------------------------------------------------
    def pin(self, pin_id: str) -> dict[str, Any]:
        """One pin's stored fields (no vector) and its ``segments`` (seq, kind, t_s, page, uri; no
        vectors), by exact id; PinNotFoundError when there is none. ``pages``: the number of pages of
        an idea pin (None for other kinds)."""
        cols = ["pin_id", "kind", "uri", "content_hash", "title", "description", "width", "height", "duration_s",
                "fps", "n_segments", "model_id"]
        have = set(self.store.schema("pins").names) if self.store.schema("pins") is not None else set(cols)
        row = self.store.get_pin(pin_id, with_vector=False, columns=[c for c in cols if c in have])
        segs = sorted(self.store.segments_of([pin_id]) if row.get("n_segments") else [], key=lambda s: s["seq"])
        row["segments"] = [{k: s.get(k) for k in ("seq", "kind", "t_s", "page", "uri")} for s in segs]
        pages = {s["page"] for s in segs if s["kind"] == "page" and s.get("page") is not None}
        row["pages"] = len(pages) if row["kind"] == "idea" else None
        return row

    def pin_extras(self, pin_ids: Any, vectors: bool = False) -> dict[str, dict[str, Any]]:
        """For cards: pin id -> ``kind``, ``uri``, ``title``, ``duration_s``, ``content_hash``, ``pages``
        (idea pins: how many pages; else None) and, with ``vectors``, ``vector``, of the given ids: one
        query, and one more when idea pins are among them. Unknown ids are left out (so this is also an
        exact-id existence check that never reads the file system)."""
        ids = list(dict.fromkeys(pin_ids))
        if not ids:
            return {}
        from pinembed.ingestion import kinds

        paged = {k.name for k in kinds.all_kinds() if k.paged}
        cols = ["pin_id", "kind", "uri", "title", "duration_s", "content_hash", "n_segments"]
        held = self.resident.rows(ids, vectors) if self.resident is not None else {}
        out = {pid: {**r, "pages": None} for pid, r in held.items()}
        missing = [pid for pid in ids if pid not in held]
        if missing:
            out.update({r["pin_id"]: {**r, "pages": None} for r in self.store.pins_with(missing, cols, vectors)})
        ideas = [pid for pid, r in out.items() if r["kind"] in paged and r.get("n_segments")]
        if ideas:
            pages: dict[str, set[int]] = {pid: set() for pid in ideas}
            for seg in self.store.segments_of(ideas, columns=["pin_id", "kind", "page"]):
                if seg["kind"] == "page" and seg.get("page") is not None:
                    pages[seg["pin_id"]].add(seg["page"])
            for pid, p in pages.items():
                out[pid]["pages"] = len(p)
        return out

    def share_embedder(self, other: PinIndex) -> bool:
        """Use ``other``'s already loaded embedder when it is of this database's space (a newer view of
        the same database after a refresh), so this index needs no model load. True when shared."""
        emb = other._embedder
        if emb is None or self._embedder is not None or other.model_id != self.model_id:
            return False
        from pinembed.store.identity import space_identity

        try:
            self.store.check_space(space_identity(emb.identity()))
        except PinembedError:
            return False
        self._embedder = emb
        return True


def _terms(terms: Any) -> list[Any]:
    if isinstance(terms, str | os.PathLike) or (isinstance(terms, tuple) and len(terms) == 2
                                                and isinstance(terms[1], int | float)):
        return [terms]
    return list(terms or [])


def _query_image(path: os.PathLike[str]) -> Any:
    from pinembed.ingestion.images import decode_image

    try:
        return decode_image(Path(path).read_bytes()).image
    except OSError as e:
        raise UsageError(f"cannot read query image {os.fspath(path)!r}: {e.strerror}") from e
    except InputError as e:
        raise UsageError(f"cannot use query image {os.fspath(path)!r}: {e.message}", e.hint) from e


def _no_check() -> None:
    """A step check that never stops the work."""
