"""Plan a run against the store: survey its sources (discover, claim pin ids), then which entries are
new, changed or unchanged; for a refresh also moved, copied, deleted, failed before and stale."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinembed.store.db import Store

from .discover import discover_sources
from .entry import Discovery, Entry
from .sources import Source, claim_ids, owned


def survey(sources: list[Source], store: Store | None, columns: tuple[str, ...],
           storage_options: dict[str, str] | None = None, database: str | None = None
           ) -> tuple[Discovery, dict[str, dict[str, Any]]]:
    """What the sources hold and what ``store`` holds (pin id -> its ``columns``; nothing when ``store``
    is None): every source discovered (``database`` is skipped where it lies inside one), and the
    entries whose pin id a pin of another source holds turned into problems (``claim_ids``)."""
    found = discover_sources(sources, storage_options, database)
    stored = {r["pin_id"]: r for r in store.pin_states(columns).to_pylist()} if store is not None else {}
    found.entries, taken = claim_ids(found.entries, stored, [s.root for s in sources])
    found.problems += taken
    return found, stored


@dataclass
class Plan:
    """Entries split by what the run must do with them."""

    new: list[Entry] = field(default_factory=list)
    changed: list[Entry] = field(default_factory=list)
    unchanged: list[Entry] = field(default_factory=list)

    @property
    def todo(self) -> list[Entry]:
        """Entries to read and embed, new first."""
        return self.new + self.changed


Signature = Callable[[Entry, "str | None"], str]  # (entry, the kind its pin was stored as) -> signature


def source_sig(e: Entry, kind: str | None = None) -> str:
    """An entry's signature without embedding settings (see ``IngestOptions.signature``)."""
    return e.source_sig


def make_plan(entries: Sequence[Entry], stored: Mapping[str, Mapping[str, Any]], sig_of: Signature = source_sig
              ) -> Plan:
    """Compare each entry's signature (``sig_of``: size and mtime of media and sidecar, and the
    embedding settings that apply to its stored kind) with ``stored`` (pin id -> row with source_sig
    and kind). Unchanged entries cost nothing more than the stat already done."""
    plan = Plan()
    for e in entries:
        row = stored.get(e.pin_id)
        if row is None:
            plan.new.append(e)
        elif row.get("source_sig") != sig_of(e, row.get("kind")):
            plan.changed.append(e)
        else:
            plan.unchanged.append(e)
    return plan


@dataclass
class Move:
    """An entry whose content the store already holds under another pin id: its vectors are reused."""

    entry: Entry
    source_id: str  # the stored pin with the same content hash
    copied: bool  # the source is still there (a copy); else it moved (or was renamed)


@dataclass
class RefreshPlan(Plan):
    """What a refresh does with each entry and each stored pin under its sources."""

    moved: list[Move] = field(default_factory=list)  # moves, renames and copies
    deleted: list[str] = field(default_factory=list)  # stored pin ids whose media is gone (not moved)
    moved_from: list[str] = field(default_factory=list)  # stored pin ids whose media moved: removed too
    retry: list[Entry] = field(default_factory=list)  # failed before; tried again
    given_up: list[Entry] = field(default_factory=list)  # failed max_attempts times and unchanged since
    stale: list[Entry] = field(default_factory=list)  # held by the live model, not yet by the one being built

    @property
    def todo(self) -> list[Entry]:
        """Entries to read and embed."""
        return self.new + self.changed + self.stale + self.retry

    def counts(self) -> dict[str, int]:
        """Entries (and stored pins) per category."""
        return {"new": len(self.new), "changed": len(self.changed), "unchanged": len(self.unchanged),
                "moved": sum(not m.copied for m in self.moved), "copied": sum(m.copied for m in self.moved),
                "deleted": len(self.deleted), "retry": len(self.retry), "given_up": len(self.given_up),
                "stale": len(self.stale)}


def make_refresh_plan(
    entries: Sequence[Entry],
    stored: Sequence[Mapping[str, Any]],
    roots: Sequence[str],
    *,
    ledger: Mapping[str, Mapping[str, Any]] | None = None,
    live: Mapping[str, Mapping[str, Any]] | None = None,
    content_hash: Callable[[Entry], str | None] | None = None,
    max_attempts: int = 3,
    retry_failed: bool = False,
    sig_of: Signature = source_sig,
) -> RefreshPlan:
    """Diff ``entries`` (found under ``roots``) against ``stored`` pins (pin_id, kind, uri, source,
    source_sig, content_hash) of the generation being written.

    Unchanged entries cost nothing beyond the stat already done. Only entries the store does not hold
    by id are hashed (``content_hash``), to find moves and copies. ``ledger`` (uri -> failure row)
    marks inputs that failed before: retried, or given up after ``max_attempts`` unless they changed
    since or ``retry_failed``. A stored pin whose changed file fails is withdrawn by the run (``Run``),
    so the next plan finds it here, as an input that failed before. ``live`` (pin id -> source_sig,
    kind and uri in the live generation) is given while another model's generation is being built:
    entries it holds unchanged are stale, and its pins whose media is gone count as deleted (the
    switch drops them).

    A stored pin whose media is gone and whose content shows up under a new id is moved (its row
    goes, counted as moved, not deleted); a second new id with the same content is a copy."""
    plan = RefreshPlan()
    ledger = ledger or {}
    by_id = {r["pin_id"]: r for r in stored}
    present = {e.pin_id for e in entries}
    gone = {pid for pid, r in by_id.items() if pid not in present and owned(r, roots)}
    by_hash: dict[str, str] = {}  # the content hash covers the kind (an idea pin hashes its manifest)
    moved_from: set[str] = set()
    for pid, r in by_id.items():
        if r.get("content_hash"):
            key = r["content_hash"]
            if key not in by_hash or pid in gone:  # prefer a source that is gone: that is the move
                by_hash[key] = pid
    for e in entries:
        row = by_id.get(e.pin_id)
        if row is not None:  # (a changed file that fails is withdrawn by the run: next time it is not stored)
            (plan.unchanged if row.get("source_sig") == sig_of(e, row.get("kind")) else plan.changed).append(e)
            continue
        failed = ledger.get(e.uri)
        if failed is not None:
            (plan.given_up if _given_up(failed, e, max_attempts, retry_failed) else plan.retry).append(e)
            continue
        held = live.get(e.pin_id) if live is not None else None
        if held is not None and held.get("source_sig") == sig_of(e, held.get("kind")):
            plan.stale.append(e)
            continue
        h = content_hash(e) if content_hash is not None and by_hash else None
        source = by_hash.get(h) if h else None
        if source is not None:
            moved = source in gone and source not in moved_from
            plan.moved.append(Move(e, source, copied=not moved))
            if moved:
                moved_from.add(source)
        else:
            plan.new.append(e)
    if live is not None:  # a model upgrade: the live generation's pins whose media is gone go at the switch
        gone |= {pid for pid, r in live.items()
                 if pid not in present and pid not in by_id and owned(r, roots)}
    plan.deleted = sorted(gone - moved_from)
    plan.moved_from = sorted(moved_from)
    return plan


def _given_up(failed: Mapping[str, Any], e: Entry, max_attempts: int, retry_failed: bool) -> bool:
    """Whether an input that failed before is left alone: it failed ``max_attempts`` runs and its file
    has not changed since the last of them (``--retry-failed`` tries it anyway)."""
    seen = failed.get("last_seen")
    changed_since = seen is None or e.mtime_ns > int(seen.timestamp() * 1e9)
    return failed.get("attempts", 0) >= max_attempts and not retry_failed and not changed_since
