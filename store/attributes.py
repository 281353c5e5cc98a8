"""Attributes: a source's own typed columns of the pins table (a catalog's board, category, language,
price, shoppable, created_at, safety label; a webdataset sample's JSON fields).

They are recorded with the database as columns of its pins table: their names and Arrow types are the
table's own schema (every column that is not a ``PinRow`` field is an attribute). A new attribute is
added to the table (old rows read as null); an attribute whose type would change is a UsageError
naming the column. Names are hostile input that reaches SQL and Lance: only ``NAME_RULE`` passes
(letters, digits and underscores, starting with a letter or an underscore, up to 64 characters), and
no name of a pin field (nor one that differs from one only by case).

The types are six: string, int (int64), float (float64), bool, timestamp (microseconds, UTC) and
list<string>. ``type_of`` maps any Arrow type a reader inferred onto one of them (or None: not an
attribute type), so Parquet's int32 and CSV's int64 are the same attribute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa

from pinembed.errors import UsageError

from .schema import PinRow

NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: The attribute types by name (what ``pinembed attrs``, ``pins --json`` and the OpenAPI document say).
TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"), "list<string>": pa.list_(pa.string()),
}
#: Names no attribute may take: the pin fields, and what query results add.
RESERVED = frozenset(PinRow.__annotations__) | {"_distance", "_score", "_rowid", "score", "distance"}
_RESERVED_LOWER = {r.lower() for r in RESERVED}
MAX_ATTRIBUTES = 256


def type_name(t: pa.DataType) -> str | None:
    """The attribute type name of an Arrow type of one of the six (``TYPES``), else None."""
    for name, have in TYPES.items():
        if t.equals(have):
            return name
    return None


def type_of(t: pa.DataType) -> pa.DataType | None:
    """The attribute type a column of Arrow type ``t`` is stored as: integers -> int, floats and decimals
    -> float, strings -> string, bool, timestamps and dates -> timestamp (UTC), a list of strings ->
    list<string>; None for any other type (structs, binary, lists of numbers...)."""
    if pa.types.is_integer(t):
        return TYPES["int"]
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return TYPES["float"]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return TYPES["string"]
    if pa.types.is_boolean(t):
        return TYPES["bool"]
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return TYPES["timestamp"]
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
            pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type) or pa.types.is_null(t.value_type)):
        return TYPES["list<string>"]
    return None


def value_type(value: object) -> pa.DataType | None:
    """The attribute type of one Python (or JSON) value: str, int, float, bool, an aware or naive datetime
    (naive is read as UTC), a list of strings; None for None, and for what is no attribute type (a dict,
    a list holding anything but strings)."""
    import datetime as dt

    if isinstance(value, bool):
        return TYPES["bool"]
    if isinstance(value, int):
        return TYPES["int"] if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return TYPES["float"]
    if isinstance(value, str):
        return TYPES["string"]
    if isinstance(value, dt.datetime | dt.date):
        return TYPES["timestamp"]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return TYPES["list<string>"]
    return None


def check_name(name: object, where: str = "the catalog") -> str:
    """``name`` when it may be an attribute's name; UsageError naming it otherwise."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise UsageError(
            f"{where} has a column {str(name)[:80]!r} that cannot be an attribute: names are letters, digits "
            "and underscores, starting with a letter or an underscore, up to 64 characters",
            "rename the column, or choose the attributes with --attr-cols a,b,c",
        )
    if name.lower() in _RESERVED_LOWER:
        raise UsageError(
            f"{where} has a column {name!r}, which is the name of a pin field; an attribute may not take it",
            f"map it with --title-col/--description-col/--id-col/--media-col, or leave it out with --attr-cols "
            f"(pin fields: {', '.join(sorted(PinRow.__annotations__))})",
        )
    return name


def is_attribute(name: str) -> bool:
    """Whether a pins-table column is an attribute (not a pin field)."""
    return name not in PinRow.__annotations__


def merged(have: Mapping[str, pa.DataType], new: Mapping[str, pa.DataType], where: str = "the catalog"
           ) -> dict[str, pa.DataType]:
    """The attributes ``new`` adds to the recorded ``have``; UsageError for one whose type changes (it
    names the column and both types) or when there would be over ``MAX_ATTRIBUTES``."""
    added: dict[str, pa.DataType] = {}
    for name, t in new.items():
        old = have.get(name)
        if old is None:
            added[name] = t
        elif not old.equals(t):
            raise UsageError(
                f"attribute {name!r} is recorded in this database as {type_name(old) or old}; {where} gives it as "
                f"{type_name(t) or t}",
                f"make the column {type_name(old) or old} again (a cast in the catalog), or use another --db; an "
                "attribute's type never changes under its stored values",
            )
    if len(have) + len(added) > MAX_ATTRIBUTES:
        raise UsageError(f"{where} would give the database {len(have) + len(added)} attributes; at most {MAX_ATTRIBUTES}",
                         "choose the attributes with --attr-cols a,b,c")
    return added
