"""The driver that ``ingest`` and ``refresh`` share, whichever runner reads and embeds: it hands the
runner its work (``runners.Work``), lands each finished batch the runner hands back (the write stage,
withdrawals, compaction, the counts), keeps the ledger rows still to write and the embedder (loaded on
first need), and does upkeep at the end. Runners never touch it: they only yield batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any

from pinembed.embedders.base import Embedder
from pinembed.errors import UsageError
from pinembed.store.db import Store

from . import runners
from .embed_stage import Embedded
from .entry import Entry, Problem
from .ledger import problem_rows
from .model import ModelSpec
from .options import IngestOptions, Progress, phase
from .read_stage import Unread
from .write_stage import write_embedded

COMPACT_EVERY = 16  # batches between checks for piled-up fragments


class RunSummary:
    """What ingest and refresh summaries share: the exit code and the JSON form."""

    failed: int

    @property
    def exit_code(self) -> int:
        """0 when everything landed, 3 when inputs failed in this run."""
        return 3 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class IngestSummary(RunSummary):
    """What a run did. Every input found is counted once: added, updated, unchanged or failed (a pin
    that landed with a warning is added or updated, and counted in ``warnings`` too); files that are
    not read at all are ``skipped`` and named in ``skipped_files``."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    fields_updated: int = 0  # catalog rows whose title, description or attributes changed but not their
    # media: rewritten with their stored vectors, nothing read or embedded
    failed: int = 0  # inputs that failed in this run (their ledger rows are in ``failures``)
    warnings: int = 0  # pins that landed with a warning (a bad sidecar, a dropped page; ``warning_rows``)
    withdrawn: int = 0  # stored pins whose changed file failed: taken out of results at once, their old
    # vector gone (the ledger says why; the next run reads the file again, refresh gives up after its attempts)
    skipped: int = 0  # files not read: not media, camera RAW, hidden, not a page of an idea pin
    model_loaded: bool = False
    runner: str = "local"
    pins_by_node: dict[str, int] = field(default_factory=dict)  # ray runner: pins embedded on each node
    embedded_images: int = 0  # images + video frames + page images through the image encoder
    precision: str = ""  # the precision the model ran at (fp32, int8, fp16; "int8+fp16" if workers differed)
    cpu_fallbacks: int = 0  # JPEGs the device decoder refused that the CPU path then read (they landed)
    elapsed_s: float = 0.0  # the whole run, model loading included
    items_per_s: float = 0.0  # pins written per second of the run
    steady_items_per_s: float | None = None  # pins per second from the first embedded batch to the last
    # (start-up and model loads left out; None with fewer than two batches)
    stage_s: dict[str, float] = field(default_factory=dict)  # model, read (summed over threads), embed, write, index
    index: str = "exact"  # the ANN index after the run: exact, built, rebuilt or current
    sources: list[dict[str, str]] = field(default_factory=list)  # root and id prefix of each source
    failures: list[dict[str, Any]] = field(default_factory=list)
    warning_rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # path, reason, message


class Run:
    """State of one ingestion run on the driver. The embedder is loaded on first need
    (``embedder``): a run with nothing to embed never loads it. ``model_spec`` is what a runner
    that loads the model in its own workers loads (the ray runner)."""

    def __init__(self, store: Store, embedder: Embedder | Callable[[], Embedder] | None, opts: IngestOptions,
                 known: dict[str, str], progress: Progress | None = None, replacing: set[str] | None = None,
                 model_spec: ModelSpec | None = None) -> None:
        self.store, self.opts, self.known = store, opts, known
        self.replacing = replacing or set()  # stored pins this run re-reads (changed): withdrawn if they fail
        self._embedder = embedder
        self.progress = progress
        self.model_spec = model_spec
        self.summary = IngestSummary(runner=opts.runner)
        self.pending = Embedded()  # ledger rows not yet written (walk problems, read failures)
        self.keep: set[str] = set()  # uris that failed in this run: never cleared by a landing pin
        self.stage = {"model": 0.0, "read": 0.0, "embed": 0.0, "write": 0.0, "index": 0.0}
        self.writes = 0
        self.marks: list[tuple[float, int]] = []  # (when a batch was embedded, its pins)
        self.finished: list[Callable[[], None]] = []  # called by finish after upkeep (the lock still held)

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded now if it was given as a loader (the progress display says so)."""
        if not isinstance(self._embedder, Embedder):
            if self._embedder is None:
                raise UsageError("this run needs a model and none was given")
            phase(self.progress, "loading model")
            t = time.perf_counter()
            self._embedder = self._embedder()
            self.stage["model"] += time.perf_counter() - t
            self.summary.model_loaded = True
        return self._embedder

    def prepare(self, todo: list[Entry]) -> None:
        """Let the runner start what it needs (decode processes) while the model loads."""
        runners.prepare(self.opts.runner, self.opts, todo)

    def embed(self, todo: list[Entry]) -> None:
        """Hand ``todo`` to the run's runner and land every batch it hands back, in order."""
        if not todo:
            return
        work = runners.Work(todo, self.opts, lambda: self.embedder, self.model_spec, self.progress)
        with closing(runners.get(self.opts.runner)(work)) as batches:
            for out in batches:
                if isinstance(out, Unread):
                    self.fail(out.rows)
                else:
                    self.land(out)

    def fail(self, rows: list[dict[str, Any]], inputs: int = 1) -> None:
        """Ledger rows of ``inputs`` inputs that failed in this run (written with the next batch)."""
        self.pending.failures.extend(rows)
        self.pending.failed += inputs
        self.keep.update(r["uri"] for r in rows)

    def problems(self, problems: list[Problem]) -> None:
        """What a walk found but could not use: one failed input per file or folder."""
        rows = problem_rows(problems)
        self.fail(rows, len({r["uri"].split("#", 1)[0] for r in rows}))

    def land(self, batch: Embedded) -> None:
        """Write one embedded batch (with the ledger rows pending) and count what it did."""
        self.stage["read"] += batch.read_s
        self.stage["embed"] += batch.embed_s
        if batch.decode_s is not None:
            self.stage["decode"] = self.stage.get("decode", 0.0) + batch.decode_s
        batch.failures = self.pending.failures + batch.failures
        batch.failed += self.pending.failed
        self.pending = Embedded()
        self.keep.update(r["uri"] for r in batch.failures)
        t = time.perf_counter()
        write_embedded(self.store, batch, self.keep)
        landed = {p.pin_id for p in batch.landed}
        broken = sorted({r["pin_id"] for r in batch.failures  # (a duplicate id is another entry's row)
                         if r.get("pin_id") in self.replacing and r.get("error") != "duplicate_id"} - landed)
        if broken:  # a changed file that fails never answers with its old vector (the ledger rows are written)
            self.store.delete_pins(broken)
            self.replacing.difference_update(broken)
            self.summary.withdrawn += len(broken)
        if batch.pins:
            self.writes += 1
            if self.writes % COMPACT_EVERY == 0:  # one fragment per commit: merge them on the way
                self.store.compact()
        self.stage["write"] += time.perf_counter() - t
        s = self.summary
        if batch.landed:
            self.marks.append((batch.done_at or time.time(), len(batch.landed)))
        for p in batch.landed:
            if p.pin_id in self.known:
                s.updated += 1
            else:
                s.added += 1
            s.warnings += p.warned
            s.embedded_images += p.images
        if batch.node and batch.landed:
            s.pins_by_node[batch.node] = s.pins_by_node.get(batch.node, 0) + len(batch.landed)
        s.failed += batch.failed
        s.cpu_fallbacks += batch.cpu_fallbacks
        if batch.precision and batch.precision not in s.precision.split("+"):
            s.precision = "+".join(p for p in (s.precision, batch.precision) if p)
        s.failures.extend(batch.failures)
        s.warning_rows.extend(batch.warnings)

    def finish(self, t0: float) -> IngestSummary:
        """Write what is pending, upkeep (the store's index policy and compaction), the summary."""
        if self.pending.failures:
            self.land(Embedded())
        t = time.perf_counter()
        self.summary.index = self.store.ensure_index()
        self.stage["index"] = time.perf_counter() - t
        for then in self.finished:
            then()
        s = self.summary
        s.elapsed_s = round(time.perf_counter() - t0, 3)
        s.items_per_s = round((s.added + s.updated) / s.elapsed_s, 2) if s.elapsed_s > 0 else 0.0
        marks = sorted(self.marks)
        if len(marks) >= 2 and marks[-1][0] > marks[0][0]:
            s.steady_items_per_s = round(sum(n for _, n in marks[1:]) / (marks[-1][0] - marks[0][0]), 2)
        s.stage_s = {k: round(v, 3) for k, v in self.stage.items()}
        return s
