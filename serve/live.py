"""The PinIndex the service queries, swapped whole when the database changes underneath it.

A thread checks about once a second (``store.watch``: a few table versions, well under a millisecond
each) whether another process committed: a refresh (new, changed, deleted pins in the live
generation) or a model switch (another live generation). Then a new PinIndex is opened and warmed
(tables opened and searched once; for a new model, the embedder loaded and run once) before it
replaces the old one in one assignment. A request takes the index once when it starts and uses it to
the end, so requests in flight finish on the old one, and none fails during a switch. When opening
fails, the old index stays and the next check tries again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from pinembed.errors import PinembedError

from .errors import ApiError

if TYPE_CHECKING:
    from pinembed.index import PinIndex

    from .settings import ServeSettings

log = logging.getLogger("pinembed.serve")


class LiveIndex:
    """Holds the current PinIndex of ``uri`` and replaces it when the database changes."""

    def __init__(self, uri: str, settings: ServeSettings) -> None:
        from pinembed.store.location import is_local
        from pinembed.store.watch import Watcher

        self.uri = uri
        self.settings = settings
        self._local = is_local(uri)
        self._watcher = Watcher(uri, settings.storage_options)
        self._current: PinIndex | None = None
        self._fp: tuple[Any, ...] | None = None
        self._error: str = "the database is being opened"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check_lock = threading.Lock()
        self.swaps = 0  # how many times a new index replaced the current one

    # -- what requests use ------------------------------------------------------------------
    def get(self) -> PinIndex:
        """The index to answer one request with (take it once per request); 503 when there is none."""
        idx = self._current
        if idx is None:
            raise ApiError(503, "no_database", self._error,
                           f"ingest a folder first: pinembed ingest SRC --db {self.uri}; the server picks it up")
        return idx

    # -- keeping it current -----------------------------------------------------------------
    def start(self) -> None:
        """Open the index now (errors are kept for ``get``), then keep checking in a daemon thread."""
        self.check()
        self._thread = threading.Thread(target=self._loop, name="pinembed-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking (the current index stays usable)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                self.check()
            except Exception:  # never let the checker die: log it and try again next time
                log.exception("checking %s for changes failed", self.uri)

    def check(self) -> bool:
        """Swap in a new index when the database changed since the last check; True when swapped."""
        with self._check_lock:
            old = self._current
            names = _tables(old)
            fp = self._fingerprint(names)
            if old is not None and fp == self._fp:
                return False
            t0 = time.perf_counter()
            try:
                new = self._open(old)
            except ApiError as e:
                self._error = e.message
                if old is not None:
                    log.warning("reloading %s failed, still serving the previous state: %s", self.uri, e.message)
                return False
            except PinembedError as e:
                self._error = f"the database could not be opened: {e.message}"
                log.warning("reloading %s failed: %s", self.uri, e.message)
                return False
            # a commit after the fingerprint is seen next time (the tables' names are part of it, so the
            # first check after a model switch takes the new generation's versions and swaps once more,
            # cheaply: the embedder is shared)
            self._fp = fp
            self._current = new
            if old is not None:
                self.swaps += 1
                log.info("serving %s: generation %s, %s (reloaded in %.2f s)", self.uri, generation(new),
                         new.model_id, time.perf_counter() - t0)
            return old is not None

    def _fingerprint(self, names: tuple[str | None, str | None]) -> tuple[Any, ...] | None:
        if self._local and not os.path.isdir(self.uri):
            return None
        try:
            return (names, *self._watcher.fingerprint(*names))
        except Exception as e:  # object storage unreachable for a moment: reopen when it answers
            log.warning("cannot read the versions of %s: %s", self.uri, e)
            return None

    def _open(self, old: PinIndex | None) -> PinIndex:
        """A new PinIndex of the database, warmed; ApiError 503 when it has no pins (yet)."""
        import numpy as np

        from pinembed.index import PinIndex

        s = self.settings
        idx = PinIndex(self.uri, device=s.device, storage_options=s.storage_options, precision=s.precision)
        if not idx.store.exists() or idx.store.schema("pins") is None:
            raise ApiError(503, "no_database", f"no database at {self.uri!r} yet (or it holds no pins)")
        idx.store.count()
        probe = np.ones(idx.store.dim, np.float32)
        idx.search_vector(probe, k=1)  # opens the tables and their indexes
        if old is None or not idx.share_embedder(old):
            try:  # load the model before the swap, so the first text search does not wait for it
                idx.embedder.embed_texts(["warm up"])
            except PinembedError as e:  # related pins still work; searches say why they cannot
                log.warning("the model %s could not be loaded: %s", idx.model_id, e.message)
        return idx


def _tables(idx: PinIndex | None) -> tuple[str | None, str | None]:
    g = idx.store.generation if idx is not None else None
    return (g.pins, g.segments) if g is not None else (None, None)


def generation(idx: PinIndex) -> int | None:
    """The model generation ``idx`` reads (None for a database without one)."""
    g = idx.store.generation
    return g.generation if g is not None else None
