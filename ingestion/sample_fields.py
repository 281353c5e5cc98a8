"""A webdataset sample's JSON fields as the pin's attributes (``store.attributes``): typed Python values
on ``Entry.attrs``, their Arrow types in ``Discovery.attributes``; and the merge of those types across
shards and sources.

- A field whose name cannot be an attribute's (``attributes.NAME_RULE``), or is a pin field's
  (img2dataset writes ``width`` and ``height``), or whose value no attribute type holds (an object, a
  list of numbers, an integer past 64 bits) is left out, named once per shard as a skip
  (``not_an_attribute``).
- ``null`` is a null. Strings stay strings (no timestamps are read out of them).
- int and float in one field make it a float (the ints are stored as floats).
- Any other type conflict (a string where earlier samples gave a number): the later sample keeps its
  pin without that field, with a warning (``attr_type``, naming the field and both types) in its notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from pinembed.store import attributes as attr_types

from .entry import Discovery, Problem, Skip

_INT, _FLOAT = attr_types.TYPES["int"], attr_types.TYPES["float"]
_PIN_FIELDS = {n.lower() for n in attr_types.RESERVED}


class ShardFields:
    """The attributes of one shard's samples: the types seen so far, and the fields named as skipped
    (once per shard)."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.types: dict[str, pa.DataType] = {}
        self.skips: list[Skip] = []
        self._refused: set[str] = set()  # names no attribute may take
        self._allowed: set[str] = set()  # names one may
        self._named: set[str] = set()  # fields named as skipped
        self._rows: list[dict[str, Any]] = []  # every attrs dict made so far (for widening int to float)

    def attrs(self, doc: dict[str, Any], leave_out: Iterable[str], uri: str, pin: str
              ) -> tuple[dict[str, Any], list[Problem]]:
        """One sample's attributes from its JSON object ``doc`` (``leave_out``: the fields taken as its
        id, title and description), and the warnings for fields it drops (type conflicts)."""
        taken = set(leave_out)
        out: dict[str, Any] = {}
        notes: list[Problem] = []
        for name, value in doc.items():
            if name in taken or name in self._refused:
                continue
            if name not in self._allowed:
                why = refusal(name)
                if why is not None:
                    self._refused.add(name)
                    self._skip(name, why)
                    continue
                self._allowed.add(name)
            if value is None:
                out[name] = None
                continue
            t = attr_types.value_type(value)
            have = self.types.get(name)
            if t is None or (have is None and len(self.types) >= attr_types.MAX_ATTRIBUTES):
                self._skip(name, f"its value ({_describe(value)}) is no attribute type" if t is None
                           else f"a shard gives at most {attr_types.MAX_ATTRIBUTES} attributes")
                continue
            if have is None:
                self.types[name] = t
            elif have is not t and not have.equals(t):
                if not widened(have, t):
                    notes.append(conflict(uri, pin, name, t, have, "earlier samples of this run"))
                    continue
                if not have.equals(_FLOAT):
                    self.types[name] = _FLOAT
                    cast_floats(self._rows, name)
            out[name] = clean(value, self.types[name])
        self._rows.append(out)
        return out, notes

    def _skip(self, name: str, why: str) -> None:
        """Name a field as left out, once per shard."""
        if name not in self._named:
            self._named.add(name)
            self.skips.append(Skip(f"{self.shard}#field={_utf8(name)}", "not_an_attribute",
                                   f"field {_utf8(name)[:80]!r} is left out: {why}"))


def refusal(name: str) -> str | None:
    """Why a JSON field named ``name`` cannot be an attribute, or None when it can."""
    if not isinstance(name, str) or not attr_types.NAME_RULE.fullmatch(name):
        return ("attribute names are letters, digits and underscores, starting with a letter or an "
                "underscore, up to 64 characters")
    if name.lower() in _PIN_FIELDS:
        return "it is the name of a pin field"
    return None


def widened(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether two attribute types are int and float (the field is a float)."""
    return {attr_types.type_name(a), attr_types.type_name(b)} == {"int", "float"}


def conflict(uri: str, pin: str, name: str, t: pa.DataType, have: pa.DataType, where: str) -> Problem:
    """The warning of a field whose type conflicts with the one ``where`` gave it: left out of this pin."""
    return Problem(uri, pin, "attr_type", f"field {name!r} is {attr_types.type_name(t)} here, "
                                          f"{attr_types.type_name(have)} in {where}; left out of this pin")


def cast_floats(rows: Iterable[dict[str, Any] | None], name: str) -> None:
    """Make the ints of field ``name`` floats in these attrs dicts (the field became a float)."""
    for row in rows:
        if row is not None:
            v = row.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                row[name] = float(v)


def clean(value: Any, t: pa.DataType | None) -> Any:
    """A JSON value as the attribute's Python value: an int in a float field a float, strings made
    storable (a lone surrogate from a JSON escape becomes U+FFFD)."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, list):
        return [_utf8(v) for v in value]
    if t is not None and t.equals(_FLOAT) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def merge_attributes(out: Discovery, found: Discovery) -> None:
    """Merge ``found``'s attribute types (a later shard's or source's) into ``out``'s, before ``found``'s
    entries join ``out``'s: int and float make a float (the ints on both sides become floats); another
    conflict leaves the field out of ``found``'s entries, each with an ``attr_type`` warning in its
    notes (``out`` keeps its type)."""
    for name, t in found.attributes.items():
        have = out.attributes.get(name)
        if have is None:
            out.attributes[name] = t
        elif have.equals(t):
            continue
        elif widened(have, t):
            out.attributes[name] = _FLOAT
            cast_floats((e.attrs for e in (*out.entries, *found.entries)), name)
        else:
            for e in found.entries:
                if e.attrs and name in e.attrs:
                    value = e.attrs.pop(name)
                    if value is not None:
                        e.notes = (*e.notes, conflict(e.uri, e.pin_id, name, t, have, "other shards or sources"))


def record(store: Any, found: Discovery) -> None:
    """Record the walk's attribute types with the database (``Store.add_attributes``) before its pins are
    written: an int field the database holds as float is written as floats; another type the database
    records otherwise is a UsageError naming the field (``attributes.merged``)."""
    if not found.attributes:
        return
    have = store.attributes()
    for name, t in list(found.attributes.items()):
        old = have.get(name)
        if old is not None and old.equals(_FLOAT) and pa.types.is_integer(t):
            found.attributes[name] = _FLOAT
            cast_floats((e.attrs for e in found.entries), name)
    store.add_attributes(found.attributes, "the shards")


def add_found(out: Discovery, found: Discovery) -> None:
    """Add a shard's entries, problems, skips and attribute types to a walk's ``out``."""
    merge_attributes(out, found)
    out.entries += found.entries
    out.problems += found.problems
    out.skips += found.skips


def _utf8(s: str) -> str:
    return s if s.isascii() else s.encode("utf-8", "replace").decode("utf-8")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list holding more than strings"
    if isinstance(value, int):
        return "an integer past 64 bits"
    return type(value).__name__
