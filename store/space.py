"""The embedding space of a database, as a part of ``Store``: what the tables were built in, a check
that a model belongs to it, and the tables made (or brought up to the current columns) for it."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from pinembed.errors import ModelMismatchError

from . import attributes as attrs
from . import faults
from . import generations as gens
from .identity import describe, same_space
from .rows import now
from .schema import PINS, SEGMENTS, SPACE_KEY, pins_schema, segments_schema
from .tables import Tables


class Space(Tables):
    """The space's identity and dimension, its check, and the tables made for it."""

    @property
    def identity(self) -> dict[str, Any] | None:
        """The embedding space this database was built in, or None for a new database."""
        t = self._table(PINS)
        if t is None:
            return None
        raw = (t.schema.metadata or {}).get(SPACE_KEY)
        return json.loads(raw) if raw else None

    @property
    def dim(self) -> int:
        """The vector dimension of pins (read once: a generation's space never changes)."""
        if self._dim is None:
            self._dim = int(self._pins().schema.field("vector").type.list_size)
        return self._dim

    def attributes(self) -> dict[str, pa.DataType]:
        """The attributes recorded with this database (``store.attributes``): name -> Arrow type, in the
        pins table's column order; {} when there are none (or no pins table)."""
        t = self._table(PINS)
        if t is None:
            return {}
        return {f.name: f.type for f in t.schema if attrs.is_attribute(f.name)}

    @faults.translated
    def add_attributes(self, types: dict[str, pa.DataType], where: str = "the catalog") -> dict[str, pa.DataType]:
        """Record ``types`` (name -> one of ``attributes.TYPES``) as attributes of the pins table: new ones
        are added as columns (old rows read them as null); UsageError, before anything changes, for a name
        that is not allowed or an attribute whose type would change. Returns the ones added."""
        for name in types:
            attrs.check_name(name, where)
        added = attrs.merged(self.attributes(), types, where)
        if added:
            self._pins().add_columns([pa.field(n, t, nullable=True) for n, t in added.items()])
            self._tables.pop(PINS, None)  # the handle reads its schema again
            self._pin_columns = None
        return added

    def check_space(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """The database's space; ModelMismatchError when ``identity`` is another one."""
        have = self.identity
        if have is not None and not same_space(have, identity):
            raise ModelMismatchError(
                f"the database {self.uri!r} holds vectors of {describe(have)}; "
                f"{describe(identity)} is another embedding space",
                "leave out --model (the database's own model is used), or use another --db; to change "
                f"the database's model run `pinembed refresh SRC --db {self.uri} --model NEW` (it builds "
                "the new model's generation beside the live one and switches when complete); "
                "vectors of two models are never mixed in one table",
            )
        return have

    @faults.translated
    def ensure_space(self, identity: dict[str, Any]) -> None:
        """Create the tables for ``identity``, or check that the database already holds that space."""
        have = self.check_space(identity)
        if have is not None:
            self._add_missing_columns(have)
            return
        dim = int(identity["dim"])
        new = self.generation is None
        self._create(PINS, pins_schema(dim, identity))
        self._create(SEGMENTS, segments_schema(dim, identity))
        self._ensure_failures()
        if new:  # a new database: generation 1 goes live with its (empty) tables
            g = gens.Generation(1, identity.get("model_id", "?"), identity, *gens.table_names(1), gens.LIVE, now(), now())
            gens.write(self.db, self._names, [g])
            self._gen = g

    def _add_missing_columns(self, identity: dict[str, Any]) -> None:
        """Bring a database written by an older pinembed up to the current columns (all nullable, so
        old rows read as null); done before writing, never on a read-only query."""
        dim = int(identity["dim"])
        for name, schema in ((PINS, pins_schema(dim, identity)), (SEGMENTS, segments_schema(dim, identity))):
            t = self._table(name)
            if t is None:
                if name == SEGMENTS:
                    self._create(SEGMENTS, schema)
                continue
            have = set(t.schema.names)
            missing = [f for f in schema if f.name not in have]
            if missing:
                t.add_columns(missing)
                self._pin_columns = None
