"""A database's model generations over time, as a part of ``Store``: begin one beside the live one,
switch to it in one commit, and drop the tables of old ones (the records live in ``store.generations``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pinembed.errors import StoreError

from . import generations as gens
from . import lease
from .rows import now
from .tables import Tables


class Lifecycle(Tables):
    """Begin, switch to and drop model generations."""

    def begin_generation(self, identity: dict[str, Any]) -> int:
        """A generation for ``identity`` built beside the live one: an unfinished one of the same space
        is resumed, else a new one is recorded as building. Its tables are made by ``ensure_space``."""
        self._connect()
        all_ = self.generations()
        g = gens.building_for(all_, identity)
        if g is not None:
            return g.generation
        n = max((g.generation for g in all_), default=0) + 1
        new = gens.Generation(n, identity.get("model_id", "?"), identity, *gens.table_names(n), gens.BUILDING, now())
        rows = [new]
        if gens.GENERATIONS not in self._names:  # a database from before generations: record generation 1
            rows += [replace(g, created_at=None) for g in all_]
        gens.write(self.db, self._names, rows)
        return n

    def switch_to(self, generation: int) -> None:
        """Make ``generation`` live and retire the live one, in one commit (readers see one or the other)."""
        lease.check_held(self.uri)
        all_ = self.generations()
        new = next((g for g in all_ if g.generation == generation), None)
        if new is None:
            raise StoreError(f"no model generation {generation} in {self.uri!r}")
        stamp = now()
        rows = [replace(new, state=gens.LIVE, switched_at=stamp)]
        rows += [replace(g, state=gens.RETIRED, switched_at=stamp) for g in all_ if g.state == gens.LIVE and g is not new]
        gens.write(self.db, self._names, rows)

    def drop_generations(self, generations: Sequence[int]) -> list[int]:
        """Drop the tables of the given generations (never the live one) and forget them."""
        lease.check_held(self.uri)
        all_ = {g.generation: g for g in self.generations()}
        dropped = []
        for n in generations:
            g = all_.get(n)
            if g is None or g.state == gens.LIVE:
                continue
            for name in (g.pins, g.segments):
                if name in self._names:
                    self.db.drop_table(name)
                    self._names.discard(name)
            dropped.append(n)
        gens.forget(self.db, dropped)
        return dropped
