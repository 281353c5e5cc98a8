"""PinIndex: the public face that wires an embedder and a store together."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pinembed.candidates import CandidateOptions
from pinembed.candidates import build as build_candidates
from pinembed.embedders import get_embedder
from pinembed.embedders.device import pick_device, pick_precision
from pinembed.embedders.registry import DEFAULT_MODEL
from pinembed.ingestion.catalog import CatalogOptions, is_catalog
from pinembed.ingestion.ingest import ingest
from pinembed.ingestion.options import IngestOptions
from pinembed.ingestion.refresh import RefreshOptions, refresh
from pinembed.store import Store
from pinembed.store.identity import space_identity
from pinembed.store.lock import WriteLock
from pinembed.store.objects import is_object_store
from pinembed.store.resident import ResidentPins, estimate_mb

from . import controls, pin_reads, query_vector, retrieval
from . import related as rel
from .controls import DEFAULT_K, check_controls, check_weights
from .errors import PinembedError, PinNotFoundError, UsageError
from .pin_reads import EXPORT_COLUMNS
from .results import Related

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_DB = "pins.lance"


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
            t0 = time.perf_counter()
            emb = get_embedder(self.model_id, self._device, self._precision)
            self.store.check_space(space_identity(emb.identity()))
            self._embedder = emb
            self.model_load_s = time.perf_counter() - t0
        return self._embedder

    def ingest(self, src: str | os.PathLike[str], options: Any = None, progress: Any = None,
               runner: str | None = None, **catalog: Any) -> Any:
        """Ingest every image, video and idea pin under ``src``, or every row of a catalog (``src`` a
        .parquet, .csv or .jsonl file, or a folder or prefix of them; ``catalog``: ``id_col``,
        ``media_col``, ``title_col``, ``description_col``, ``kind_col``, ``page_text_col``,
        ``version_col``, ``attr_cols``, ``allow_hosts``); returns an IngestSummary (see
        ``summary.exit_code``). The write lock is taken first; the model is loaded only when there is
        something to embed (or a database to create). ``runner="ray"`` reads and embeds on a Ray
        cluster (``options.ray``: address, workers, CPUs and GPUs per worker)."""
        if catalog:
            if not is_catalog(src, self._storage_options):
                raise UsageError(f"{', '.join(sorted(catalog))} apply to catalogs; {os.fspath(src)!r} is not a "
                                 ".parquet, .csv or .jsonl file (or a folder of them only)",
                                 "leave them out for a folder of media")
            options = options or IngestOptions()
            options = replace(options, catalog=CatalogOptions.given(options.catalog, **catalog))
        # a local lock first, before the model loads, so a second writer is told at once (the pipeline's
        # nests); an object store's lease is taken by the pipeline after it checked the source prefix
        local = not is_object_store(self.uri)
        with WriteLock(self.uri, "ingest", self._storage_options, reentrant=True) if local else nullcontext():
            if runner is not None:
                options = replace(options or IngestOptions(), runner=runner)
            if self._precision or self._device:  # a wrong choice is an error even when no model loads
                pick_precision(pick_device(self._device), self._precision)
            summary = ingest(src, self.store, lambda: self.embedder, options, progress, model_id=self._model,
                             model_spec=(self.model_id, self._device, self._precision))
        if self.resident is not None:  # what this process wrote is held too
            self.sync_memory()
        return summary

    def refresh(self, sources: Any, options: Any = None, progress: Any = None, runner: str | None = None,
                **catalog: Any) -> Any:
        """Bring the database in line with ``sources`` (a folder or a list, or catalogs with ``catalog``
        as for ``ingest``): new, changed, moved, deleted, failed-before and stale pins. With a ``model`` given to open_index that differs from
        the live one, the new model's generation is built and goes live when complete. Returns a
        RefreshSummary. This index then reads the (possibly new) live generation."""
        srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        if catalog:
            options = options or RefreshOptions()
            options = replace(options, ingest=replace(options.ingest,
                                                      catalog=CatalogOptions.given(options.ingest.catalog, **catalog)))
        if runner is not None:
            options = options or RefreshOptions()
            options = replace(options, ingest=replace(options.ingest, runner=runner))
        summary = refresh(srcs, self.uri, self._model, options, device=self._device, precision=self._precision,
                          storage_options=self._storage_options, progress=progress)
        self.reload()
        return summary

    def reload(self) -> None:
        """Re-resolve the live model generation (after another process switched models)."""
        self.store = Store(self.uri, storage_options=self._storage_options)
        self._embedder = None
        self.resident = None

    def hold_in_memory(self, max_mb: float | None = None) -> bool:
        """Keep every pin's vector and card columns in memory (``store.resident``), for a long-lived
        reader: a related-pins query then makes one LanceDB query instead of three (25 -> ~10 ms at 1M
        pins). Loaded only when it takes at most ``max_mb`` (None: no limit); True when held. Call
        ``sync_memory`` to see later writes of other processes (``pinembed serve`` does, every second);
        pins written since are read from the table meanwhile."""
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
        self.store.require_database()  # never create a folder for a database that is not there
        with WriteLock(self.uri, "gc", self._storage_options):
            retired = [g.generation for g in self.store.generations() if g.state == "retired"]
            dropped = self.store.drop_generations(retired)
            self.store.ensure_index()
        return dropped

    def related(self, pin_id: str, k: int = DEFAULT_K, kinds: Any = None, where: Any = None,
                dedupe: float | None = None, diversity: float = 0.0) -> list[Related]:
        """The ``k`` pins nearest to ``pin_id``'s stored vector, the pin itself left out.

        ``where``: a structured filter (``{"kind": "video", "title": {"contains": "pasta"}}``, see
        ``store.filters.compile_where``) or its text form (``"category = 'shoes' AND price < 50"``); it
        may name the database's attributes (``attributes()``). ``dedupe=0.95`` drops results within that
        cosine of the query pin or of a result already returned (re-uploads, a frame saved as an image).
        ``diversity`` (0..1) re-ranks a larger candidate pool by maximal marginal relevance; 0 is plain
        similarity."""
        c = controls.check(k, kinds, where, dedupe, diversity, attributes=self.attributes())
        pin_id, pin = self._query_pin(pin_id)
        return retrieval.ranked(self.store, self.resident, pin["vector"], c, exclude=[pin_id])

    def candidates(self, out: str | os.PathLike[str] | None = None, k: int = 100, kinds: Any = None,
                   where: Any = None, query_where: Any = None, pins: Any = None, exact: bool = False,
                   memory_mb: int = 2048, target_recall: float = 0.97, progress: Any = None,
                   runner: str = "local", ray: Any = None) -> Any:
        """The candidate table: every query pin's ``k`` related pins (``related``'s semantics: itself left
        out, ``kinds``/``where`` choose the candidates), as Arrow (``pin_id, rank, candidate_id, score``).
        Queries: every pin, or those of ``query_where``, or the ids ``pins``. With ``out`` (a .parquet
        file, a folder, or ``"table:NAME"`` in the database) it is written there and a CandidateSummary is
        returned; else the table. ``runner="ray"``: the parts are searched by Ray tasks (``ray``: RayOptions)."""
        opts = CandidateOptions(k=k, kinds=kinds, where=where, query_where=query_where,
                                pins=None if pins is None else list(pins), exact=exact, memory_mb=memory_mb,
                                target_recall=target_recall, runner=runner, ray=ray)
        if out is not None:
            return build_candidates(self, os.fspath(out), opts, progress)
        import tempfile

        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="pinembed-candidates-") as tmp:
            path = os.path.join(tmp, "candidates.parquet")
            build_candidates(self, path, opts, progress)
            return pq.read_table(path)

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

    def related_to_session(self, pin_ids: Any, weights: Any = None, k: int = DEFAULT_K, kinds: Any = None,
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
        c = controls.check(k, kinds, where, dedupe, diversity, attributes=self.attributes())
        ids = [pin_ids] if isinstance(pin_ids, str) else list(pin_ids)
        if not ids:
            raise UsageError("a session needs at least one pin id")
        step = check or _no_check
        found = []
        for p in ids:
            step()
            found.append(self._query_pin(p))
        n = len(found)
        w = rel.recency_weights(n) if weights is None else np.asarray(check_weights(weights, n))
        return retrieval.session(self.store, self.resident, found, w, c, threshold, step)

    def search_text(self, text: str, k: int = DEFAULT_K, kinds: Any = None, where: Any = None) -> list[Related]:
        """Pins nearest to a text query."""
        return self.search([text], k=k, kinds=kinds, where=where)

    def search_image(self, path: str | os.PathLike[str], k: int = DEFAULT_K, kinds: Any = None,
                     where: Any = None) -> list[Related]:
        """Pins nearest to an image file (a local file: URLs are refused, download them first)."""
        if isinstance(path, str) and "://" in path:
            raise UsageError(f"image URLs are not supported: {path}", "download the image first and pass the file")
        return self.search([Path(path)], k=k, kinds=kinds, where=where)

    def search(self, positive: Any = (), negative: Any = (), k: int = DEFAULT_K, kinds: Any = None,
               where: Any = None, dedupe: float | None = None, diversity: float = 0.0) -> list[Related]:
        """Pins nearest to a combination of queries: ``normalise(sum w*positive - sum w*negative)``.

        Each term is a text (``str``), an image file (``pathlib.Path``) or a ``(term, weight)`` pair:
        ``idx.search(positive=["red dress", (Path("look.jpg"), 0.5)], negative=["logo"])``."""
        c = controls.check(k, kinds, where, dedupe, diversity, attributes=self.attributes())
        self.store.require_pins()
        vec = self.query_vector(positive, negative)
        return retrieval.ranked(self.store, self.resident, vec, c, exclude=[])

    def query_vector(self, positive: Any = (), negative: Any = ()) -> Any:
        """The normalised query vector of weighted text and image terms (see ``search``)."""
        return query_vector.build(query_vector.from_python(positive, negative), self.store.dim,
                                  lambda: self.embedder)

    def dupes(self, threshold: float = 0.95, neighbours: int = 10, batch_size: int = 512) -> list[list[str]]:
        """Clusters of near-duplicate pins (cosine >= ``threshold``, linked transitively), biggest first.
        Vectors are streamed in batches and each batch asks the index for its ``neighbours`` nearest
        pins, so the table is never loaded whole."""
        dedupe, _ = check_controls(threshold, 0.0)
        assert dedupe is not None
        return rel.near_duplicate_clusters(self.store, dedupe, neighbours, batch_size)

    def search_vector(self, vector: Any, k: int = DEFAULT_K, kinds: Any = None, where: Any = None,
                      dedupe: float | None = None, diversity: float = 0.0, exclude: Any = ()) -> list[Related]:
        """Pins nearest to a vector of this database's space (normalised here; no model is loaded),
        leaving out the pin ids in ``exclude`` (``related(p)`` is ``search_vector(vector of p,
        exclude=[p])``)."""
        c = controls.check(k, kinds, where, dedupe, diversity, attributes=self.attributes())
        self.store.require_pins()
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        dim = self.store.dim
        if vec.shape[0] != dim or not np.all(np.isfinite(vec)) or not np.any(vec):
            raise UsageError(f"the query vector must be {dim} finite numbers, not all zero (got {vec.shape[0]})")
        skip = [exclude] if isinstance(exclude, str) else list(exclude)
        return retrieval.ranked(self.store, self.resident, vec / np.linalg.norm(vec), c, exclude=skip)

    def iter_pins(self, batch_size: int = 1024, columns: Any = EXPORT_COLUMNS, kinds: Any = None,
                  where: Any = None) -> Iterator[pa.RecordBatch]:
        """The live generation's pins as Arrow record batches of at most ``batch_size`` rows, streamed
        (never the whole table in memory). ``columns``: EXPORT_COLUMNS and the database's attributes by
        default (``None``: every column); ``kinds`` and ``where`` filter as in ``related``. This is the
        stable way to read pins: the physical table behind them changes name after a model switch."""
        return pin_reads.iter_pins(self.store, batch_size, columns, kinds, where, self.attributes())

    def to_arrow(self, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None) -> pa.Table:
        """The live generation's pins as one Arrow table (all in memory: use ``iter_pins`` for large
        databases)."""
        return pin_reads.to_arrow(self.store, columns, kinds, where, self.attributes())

    def to_pandas(self, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None) -> Any:
        """The live generation's pins as a pandas DataFrame (needs pandas, which pinembed does not
        install)."""
        return pin_reads.to_pandas(self.store, columns, kinds, where, self.attributes())

    def attributes(self) -> dict[str, pa.DataType]:
        """The attributes recorded with the database (name -> Arrow type, ``store.attributes``): what
        ``where`` may name besides the pin columns, and what pins carry besides their fields. Read once
        per pins-table handle (``pin_reads.attributes``): attributes added through this index's store,
        or ``reload``, read them again."""
        return pin_reads.attributes(self.store)

    def failures(self) -> list[dict[str, Any]]:
        """The failure ledger, newest first."""
        return self.store.failures()

    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, failures and the model that built the database."""
        return self.store.stats()

    # -- for the HTTP service (serve/) -------------------------------------------------------
    def pin(self, pin_id: str) -> dict[str, Any]:
        """One pin's stored fields (no vector), its ``attributes`` (name -> value) and its ``segments``
        (seq, kind, t_s, page, uri; no vectors), by exact id; PinNotFoundError when there is none.
        ``pages``: the number of pages of an idea pin (None for other kinds)."""
        return pin_reads.pin(self.store, pin_id, self.attributes())

    def pin_extras(self, pin_ids: Any, vectors: bool = False) -> dict[str, dict[str, Any]]:
        """For cards: pin id -> ``kind``, ``uri``, ``title``, ``duration_s``, ``content_hash``, ``pages``
        (idea pins: how many pages; else None) and, with ``vectors``, ``vector``, of the given ids: one
        query, and one more when idea pins are among them. Unknown ids are left out (so this is also an
        exact-id existence check that never reads the file system)."""
        return pin_reads.pin_extras(self.store, self.resident, pin_ids, vectors)

    def share_embedder(self, other: PinIndex) -> bool:
        """Use ``other``'s already loaded embedder when it is of this database's space (a newer view of
        the same database after a refresh), so this index needs no model load. True when shared."""
        emb = other._embedder
        if emb is None or self._embedder is not None or other.model_id != self.model_id:
            return False
        try:
            self.store.check_space(space_identity(emb.identity()))
        except PinembedError:
            return False
        self._embedder = emb
        return True


def _no_check() -> None:
    """A step check that never stops the work."""
