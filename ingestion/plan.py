"""Plan a run against the store: which entries are new, changed or unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .discover import Entry


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


def make_plan(entries: Sequence[Entry], known: Mapping[str, str]) -> Plan:
    """Compare each entry's source signature (size and mtime of media and sidecar) with ``known``
    (pin id -> stored signature). Unchanged entries cost nothing more than the stat already done."""
    plan = Plan()
    for e in entries:
        sig = known.get(e.pin_id)
        if sig is None:
            plan.new.append(e)
        elif sig != e.source_sig:
            plan.changed.append(e)
        else:
            plan.unchanged.append(e)
    return plan
