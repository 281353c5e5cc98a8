"""PinIndex: the public face that wires an embedder and a store together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import InputError, UsageError
from .results import Related

DEFAULT_DB = "pins.lance"
DEFAULT_MODEL = "open_clip:ViT-B-32/laion2b_s34b_b79k"
MAX_K = 10_000


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

    @property
    def model_id(self) -> str:
        """The model this index embeds with: the one asked for, else the one that built the database."""
        if self._model:
            return self._model
        have = self.store.identity
        return have["model_id"] if have else DEFAULT_MODEL

    @property
    def embedder(self) -> Any:
        """The embedder, loaded on first use and checked against the database's space."""
        if self._embedder is None:
            from pinembed.embedders import get_embedder
            from pinembed.store.identity import space_identity

            emb = get_embedder(self.model_id, self._device, self._precision)
            self.store.check_space(space_identity(emb.identity()))
            self._embedder = emb
        return self._embedder

    def ingest(self, src: str | os.PathLike[str], options: Any = None, progress: Any = None) -> Any:
        """Ingest every image under ``src``; returns an IngestSummary (see ``summary.exit_code``)."""
        from pinembed.ingestion.pipeline import ingest

        return ingest(src, self.store, self.embedder, options, progress)

    def refresh(self, sources: Any, options: Any = None, progress: Any = None) -> Any:
        """Bring the database in line with ``sources`` (a folder or a list): new, changed, moved,
        deleted, failed-before and stale pins. With a ``model`` given to open_index that differs from
        the live one, the new model's generation is built and goes live when complete. Returns a
        RefreshSummary. This index then reads the (possibly new) live generation."""
        from pinembed.ingestion.refresh import refresh

        srcs = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        summary = refresh(srcs, self.uri, self._model, options, device=self._device, precision=self._precision,
                          storage_options=self._storage_options, progress=progress)
        self.reload()
        return summary

    def reload(self) -> None:
        """Re-resolve the live model generation (after another process switched models)."""
        from pinembed.store import Store

        self.store = Store(self.uri, storage_options=self._storage_options)
        self._embedder = None

    def models(self) -> list[dict[str, Any]]:
        """The model generations: generation, state (live, building, retired), model_id, dim, pins, dates."""
        out = []
        for g in self.store.generations():
            out.append({"generation": g.generation, "state": g.state, "model_id": g.model_id,
                        "dim": g.identity.get("dim"), "pins": self.store.table_rows(g.pins),
                        "weights_digest": g.identity.get("weights_digest"), "created_at": g.created_at,
                        "switched_at": g.switched_at})
        return out

    def gc(self) -> list[int]:
        """Drop retired generations (holding the write lock) and compact the live one; returns the
        generations dropped. A generation still being built is kept: its refresh resumes it."""
        from pinembed.store.lock import WriteLock

        with WriteLock(self.uri, "gc"):
            retired = [g.generation for g in self.store.generations() if g.state == "retired"]
            dropped = self.store.drop_generations(retired)
            self.store.ensure_index()
        return dropped

    def related(self, pin_id: str, k: int = 20, kinds: Any = None) -> list[Related]:
        """The ``k`` pins nearest to ``pin_id``'s stored vector, the pin itself left out."""
        k = _check_k(k)
        pin = self.store.get_pin(pin_id)
        return self._results(pin["vector"], self.store.search(pin["vector"], k, kinds, exclude=pin_id))

    def search_text(self, text: str, k: int = 10, kinds: Any = None) -> list[Related]:
        """Pins nearest to a text query."""
        k = _check_k(k)
        if not isinstance(text, str) or not text.strip():
            raise UsageError("the text query is empty", "pass some words, e.g. --text 'red circle'")
        self.store.require_pins()
        vec = self.embedder.embed_texts([text])[0]
        return self._results(vec, self.store.search(vec, k, kinds))

    def search_image(self, path: str | os.PathLike[str], k: int = 10, kinds: Any = None) -> list[Related]:
        """Pins nearest to an image file."""
        from pinembed.ingestion.images import decode_image

        k = _check_k(k)
        self.store.require_pins()
        try:
            data = Path(path).read_bytes()
            decoded = decode_image(data)
        except OSError as e:
            raise UsageError(f"cannot read query image {os.fspath(path)!r}: {e.strerror}") from e
        except InputError as e:
            raise UsageError(f"cannot use query image {os.fspath(path)!r}: {e.message}", e.hint) from e
        vec = self.embedder.embed_images([decoded.image])[0]
        return self._results(vec, self.store.search(vec, k, kinds))

    def search_vector(self, vector: Any, k: int = 10, kinds: Any = None) -> list[Related]:
        """Pins nearest to a vector of this database's space (normalised here; no model is loaded)."""
        import numpy as np

        k = _check_k(k)
        self.store.require_pins()
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        dim = self.store.dim
        if vec.shape[0] != dim or not np.all(np.isfinite(vec)) or not np.any(vec):
            raise UsageError(f"the query vector must be {dim} finite numbers, not all zero (got {vec.shape[0]})")
        vec = vec / np.linalg.norm(vec)
        return self._results(vec, self.store.search(vec, k, kinds))

    def _results(self, query: Any, rows: list[dict[str, Any]]) -> list[Related]:
        """Results, with the best-matching frame time of videos and best page of idea pins."""
        import numpy as np

        multi = [r["pin_id"] for r in rows if r["kind"] in ("video", "idea") and r.get("n_segments")]
        best: dict[str, tuple[float, dict[str, Any]]] = {}
        for seg in self.store.segments_of(multi):
            if seg["kind"] == "frame" or (seg["kind"] in ("page", "text") and seg.get("page") is not None):
                score = float(np.dot(np.asarray(seg["vector"], np.float32), query))
                if seg["pin_id"] not in best or score > best[seg["pin_id"]][0]:
                    best[seg["pin_id"]] = (score, seg)
        out = []
        for r in rows:
            seg = best.get(r["pin_id"], (0.0, {}))[1]
            out.append(Related.from_row(r, best_t_s=seg.get("t_s") if r["kind"] == "video" else None,
                                        best_page=seg.get("page") if r["kind"] == "idea" else None))
        return out

    def failures(self) -> list[dict[str, Any]]:
        """The failure ledger, newest first."""
        return self.store.failures()

    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, failures and the model that built the database."""
        return self.store.stats()


def _check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k
