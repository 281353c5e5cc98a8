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

import numpy as np

from pinembed.errors import PinembedError
from pinembed.index import PinIndex
from pinembed.store.faults import short
from pinembed.store.location import is_local
from pinembed.store.resident import ResidentPins, estimate_mb, pins_table
from pinembed.store.watch import Watcher

from .errors import ApiError

if TYPE_CHECKING:
    from .settings import ServeSettings

log = logging.getLogger("pinembed.serve")


class LiveIndex:
    """Holds the current PinIndex of ``uri`` and replaces it when the database changes."""

    def __init__(self, uri: str, settings: ServeSettings) -> None:
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
        #: held around every use of an embedder (it is not safe for concurrent calls): the app's text and
        #: image embedding and the warm-ups here
        self.embed_lock = threading.Lock()
        self.swaps = 0  # how many times a new index replaced the current one
        #: the pins held in memory (store.resident), shared by the indexes of one pins table
        self._resident: Any = None
        self.memory: dict[str, Any] = {"state": "off" if settings.memory_budget_mb() <= 0 else "waiting"}
        self._loader: threading.Thread | None = None
        #: the current index's pins, model and generation, read when it was opened (for /api/health)
        self._facts: dict[str, Any] = {}
        #: what the last probe of the tables found wrong (``Store.health``; empty: every table reads)
        self.damage: list[str] = []
        self._probed = 0.0  # monotonic time of that probe

    # -- what requests use ------------------------------------------------------------------
    def get(self) -> PinIndex:
        """The index to answer one request with (take it once per request); 503 when there is none."""
        idx = self._current
        if idx is None:
            raise ApiError(503, "no_database", self._error,
                           "ingest a folder into the server's database (pinembed ingest SRC --db DB); "
                           "the server picks it up, and its log says more")
        return idx

    def health(self) -> dict[str, Any]:
        """What ``/api/health`` says, from memory: no database call, no lock, no worker thread (it answers
        while every worker is busy). 503 when there is no index."""
        self.get()
        if self.damage:  # queries would fail: say so, and what (`pinembed doctor` restores)
            return {"status": "degraded", "problems": self.damage, **self._facts, "memory": self.memory}
        return {"status": "ok", **self._facts, "memory": self.memory}

    def probe(self, every_s: float | None = None) -> None:
        """Read every table's first and last rows (``Store.health``) when the last probe is older than
        ``every_s`` (default ``settings.probe_interval_s``), and keep what is wrong for ``health``."""
        idx = self._current
        every = self.settings.probe_interval_s if every_s is None else every_s
        if idx is None or time.monotonic() - self._probed < every:
            return
        self._probed = time.monotonic()
        try:
            found = idx.store.health()
        except Exception as e:  # the probe itself failing is what health must say
            found = [f"the database cannot be read: {short(e)}"]
        if found != self.damage:
            (log.warning if found else log.info)("database %s: %s", self.uri, "; ".join(found) or "readable again")
        self.damage = found

    # -- keeping it current -----------------------------------------------------------------
    def start(self) -> None:
        """Open the index now (errors are kept for ``get``), then load its model and keep checking in a
        daemon thread (so the server listens before the model is loaded: related pins need none)."""
        self.check(load_model=False)
        self.probe(every_s=0.0)
        self._thread = threading.Thread(target=self._loop, name="pinembed-live", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 120.0) -> None:
        """Stop checking and loading (the current index stays usable). Waits for the threads to end their
        step (a model's warm-up, a check, a batch of the pins being loaded): a process that exits while one
        of them runs inside torch or LanceDB aborts ("terminate called without an active exception")."""
        self._stop.set()
        for name in ("_thread", "_loader"):  # the checker first: it may start a loader until it stops
            t = getattr(self, name)
            if t is not None:
                t.join(timeout=timeout_s)
                if t.is_alive():
                    log.warning("the %s thread has not stopped after %.0f s", t.name, timeout_s)

    def _loop(self) -> None:
        if self._current is not None:
            self._hold()
            if not self._stop.is_set():
                self._warm(self._current)
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                if self.check():
                    self._probed = 0.0  # a new state of the tables: probe it now
                self.probe()
                self._hold()
            except Exception:  # never let the checker die: log it and try again next time
                log.exception("checking %s for changes failed", self.uri)

    # -- the pins in memory ------------------------------------------------------------------
    def _hold(self) -> None:
        """Start loading the current pins table into memory in a thread, when it is not held (or is
        another table's after a model switch, or mostly old rows) and fits the budget."""
        idx = self._current
        if (idx is None or self._stop.is_set() or self.memory["state"] == "off"
                or (self._loader is not None and self._loader.is_alive())):
            return
        res = self._resident
        if res is not None and res.table == pins_table(idx.store) and res.garbage <= len(res):
            return
        self._resident = None  # another table's (a model switch): its memory goes with the old index
        need, budget = estimate_mb(idx.store.count(), idx.store.dim), self.settings.memory_budget_mb()
        if need > budget:
            if self.memory.get("state") != "too large":
                log.info("not holding the pins in memory: %.0f MB needed, the budget is %.0f MB (--memory-mb)",
                         need, budget)
            self.memory = {"state": "too large", "needed_mb": round(need), "budget_mb": round(budget)}
            return
        self.memory = {**self.memory, "state": "loading"}
        self._loader = threading.Thread(target=self._load, args=(idx,), name="pinembed-memory", daemon=True)
        self._loader.start()

    def _load(self, idx: PinIndex) -> None:
        try:
            res = ResidentPins.load(idx.store, stop=self._stop)
            if res is None:  # stopped
                self.memory = {"state": "waiting"}
                return
        except Exception as e:  # a table dropped under it (model switch, gc): tried again next check
            log.warning("loading the pins into memory failed: %s", e)
            self.memory = {"state": "waiting"}
            return
        with self._check_lock:
            cur = self._current
            if cur is None or pins_table(cur.store) != res.table:
                self.memory = {"state": "waiting"}
                return
            res.sync(cur.store)  # the commits made while it loaded
            self._resident = res
            cur.resident = res
        self.memory = {"state": "held", "pins": len(res), "mb": round(res.mb), "loaded_s": round(res.loaded_s, 2)}
        log.info("holding %d pins in memory (%.0f MB, loaded in %.1f s)", len(res), res.mb, res.loaded_s)

    def _share_resident(self, new: PinIndex) -> None:
        """Give ``new`` the pins in memory when they copy its table, brought up to date first."""
        res = self._resident
        if res is not None and res.table == pins_table(new.store):
            try:
                res.sync(new.store)
            except Exception as e:  # never keep a copy that could not follow: load it afresh next check
                log.warning("the pins in memory could not follow the database, loading them again: %s", e)
                self._resident = None
                self.memory = {"state": "waiting"}
                return
            new.resident = res
            self.memory = {**self.memory, "pins": len(res), "mb": round(res.mb)}

    def check(self, load_model: bool = True) -> bool:
        """Swap in a new index when the database changed since the last check; True when swapped.
        ``load_model``: load a new model before the swap (else the first search loads it)."""
        with self._check_lock:
            old = self._current
            names = _tables(old)
            fp = self._fingerprint(names)
            if old is not None and fp == self._fp:
                return False
            t0 = time.perf_counter()
            try:
                new = self._open(old, load_model)
            except ApiError as e:
                self._error = e.message
                if old is not None:
                    log.warning("reloading %s failed, still serving the previous state: %s", self.uri, e.message)
                return False
            except Exception as e:  # a PinembedError, or LanceDB failing to read a table
                # the client is told that it failed; the server's log says why (with the database's path)
                self._error = "the database could not be opened"
                log.warning("reloading %s failed: %s", self.uri, e.message if isinstance(e, PinembedError) else short(e))
                return False
            # a commit after the fingerprint is seen next time (the tables' names are part of it, so the
            # first check after a model switch takes the new generation's versions and swaps once more,
            # cheaply: the embedder is shared)
            self._fp = fp
            self._facts = {"pins": new.store.count(), "model_id": new.model_id, "generation": generation(new)}
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

    def _open(self, old: PinIndex | None, load_model: bool = True) -> PinIndex:
        """A new PinIndex of the database, warmed; ApiError 503 when it has no pins (yet)."""
        s = self.settings
        idx = PinIndex(self.uri, device=s.device, storage_options=s.storage_options, precision=s.precision)
        if not idx.store.exists() or idx.store.schema("pins") is None:
            raise ApiError(503, "no_database", "the server's database does not exist yet (or it holds no pins)")
        idx.store.count()
        idx.attributes()  # read once here (a schema read): requests compile their where against them
        probe = np.ones(idx.store.dim, np.float32)
        idx.search_vector(probe, k=1)  # opens the tables and their indexes
        if (old is None or not idx.share_embedder(old)) and load_model:
            self._warm(idx)  # the model is loaded before the swap: the first search does not wait for it
        self._share_resident(idx)
        return idx

    def _warm(self, idx: PinIndex) -> None:
        """Load ``idx``'s model and run it once (a model that cannot load is logged: related pins still
        work, and searches say why they cannot)."""
        try:
            with self.embed_lock:
                idx.embedder.embed_texts(["warm up"])
        except PinembedError as e:
            log.warning("the model %s could not be loaded: %s", idx.model_id, e.message)


def _tables(idx: PinIndex | None) -> tuple[str | None, str | None]:
    g = idx.store.generation if idx is not None else None
    return (g.pins, g.segments) if g is not None else (None, None)


def generation(idx: PinIndex) -> int | None:
    """The model generation ``idx`` reads (None for a database without one)."""
    g = idx.store.generation
    return g.generation if g is not None else None
