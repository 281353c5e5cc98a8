"""Candidate tables kept inside a database, as a part of ``Store``: ``pinembed candidates --out
table:NAME``. Each is a LanceDB table of its own (``pin_id, rank, candidate_id, score``) under a physical
name made for that build; the ``candidate_tables`` registry maps NAME to it, with what it was built from
(model generation, pins table version, k, method). A new build is written whole under a new physical
name, then the registry row is switched in one commit, then the old table is dropped: readers see the
old table or the new one, never a half-written one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from pinembed.errors import UsageError

from . import deadline, filters, lease
from .rows import now
from .tables import Tables

REGISTRY = "candidate_tables"
NAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def registry_schema() -> pa.Schema:
    """One row a named candidate table."""
    return pa.schema([pa.field("name", pa.string(), nullable=False), pa.field("physical", pa.string()),
                      pa.field("generation", pa.int64()), pa.field("pins_version", pa.int64()),
                      pa.field("k", pa.int32()), pa.field("method", pa.string()), pa.field("queries", pa.int64()),
                      pa.field("built_at", pa.timestamp("us", tz="UTC"))])


def check_name(name: str) -> str:
    """A candidate table's name, checked (a letter, then letters, digits or _; at most 63)."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise UsageError(f"{str(name)[:80]!r} is not a candidate table name",
                         "--out table:NAME takes a letter, then letters, digits or _ (at most 63)")
    return name


class CandidateTables(Tables):
    """The named candidate tables of a database."""

    def write_candidates(self, name: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                         info: dict[str, Any]) -> str:
        """Write a candidate table ``name`` from ``batches`` and switch the registry to it (the old one is
        dropped); returns its physical name. The caller holds the write lock."""
        lease.check_held(self.uri)
        check_name(name)
        self._connect()
        physical = f"candidates_{name}_{uuid.uuid4().hex[:10]}"
        t = self.db.create_table(physical, schema=schema)
        self._names.add(physical)
        held: list[pa.RecordBatch] = []
        for b in batches:
            held.append(b)
            if sum(x.num_rows for x in held) >= 1 << 20:
                t.add(pa.Table.from_batches(held, schema))
                held = []
        if held:
            t.add(pa.Table.from_batches(held, schema))
        old = self.candidate_table(name)
        reg = self._table(REGISTRY) or self._create(REGISTRY, registry_schema())
        row = {"name": name, "physical": physical, "built_at": now(),
               **{k: info.get(k) for k in ("generation", "pins_version", "k", "method", "queries")}}
        data = pa.Table.from_pylist([row], registry_schema())
        reg.merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(data)
        if old is not None and old["physical"] in self._names:
            self.db.drop_table(old["physical"])
            self._names.discard(old["physical"])
        return physical

    @deadline.bounded
    def candidate_tables(self) -> list[dict[str, Any]]:
        """Every named candidate table's registry row."""
        reg = self._table(REGISTRY)
        if reg is None or not reg.count_rows():
            return []
        return sorted(reg.search().limit(reg.count_rows()).to_list(), key=lambda r: r["name"])

    def candidate_table_states(self) -> list[dict[str, Any]]:
        """Each named candidate table and how stale it is: built for another model generation, or from an
        earlier version of the pins table (pins written or deleted since)."""
        rows = self.candidate_tables()
        if not rows:
            return []
        gen = self.generation.generation if self.generation is not None else None
        version = self.pins_version()
        out = []
        for r in rows:
            behind = None if version is None or r["pins_version"] is None else version - r["pins_version"]
            why = ("built for another model generation" if r["generation"] != gen
                   else f"the pins table is {behind} version(s) newer" if behind else None)
            out.append({"name": r["name"], "k": r["k"], "method": r["method"], "queries": r["queries"],
                        "built_at": str(r["built_at"]), "generation": r["generation"],
                        "pins_version": r["pins_version"], "stale": why is not None, "why_stale": why})
        return out

    def candidate_table(self, name: str) -> dict[str, Any] | None:
        """The registry row of the candidate table ``name`` (None when there is none)."""
        reg = self._table(REGISTRY)
        if reg is None:
            return None
        rows = reg.search().where(filters.eq("name", check_name(name))).limit(1).to_list()
        return rows[0] if rows else None

    def read_candidates(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """The rows of the candidate table ``name``."""
        row = self.candidate_table(name)
        if row is None or row["physical"] not in self._names:
            raise UsageError(f"no candidate table {name!r} in {self.uri!r}",
                             f"build it: pinembed candidates --db {self.uri} --out table:{name}")
        t = self.db.open_table(row["physical"])
        q = t.search().limit(t.count_rows())
        return (q.select(columns) if columns else q).to_arrow()
