"""Building LanceDB filter strings from values that may be hostile.

Only this module writes SQL text. Values are quoted as SQL string literals, numbers parsed as numbers,
dates as timestamp literals; kinds are checked against the closed set of pin kinds. A column a filter
names is one of ``FILTER_COLUMNS`` or an attribute recorded with the database (``store.attributes``),
written as a backticked identifier after its name is checked against ``attributes.NAME_RULE``; no other
name reaches SQL. The text form users type (``store.where_text``) is read into the structured filter
first, so a user's text never reaches SQL either.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pinembed.errors import UsageError

from . import where_text
from .attributes import NAME_RULE, type_name
from .schema import KINDS, pins_schema

#: The size of a filter, checked before anything is compiled (every form: CLI, Python, HTTP).
MAX_WHERE_TERMS = 64  # conditions: each operator of a column, each side of a range, each any-of list
MAX_WHERE_VALUES = 1000  # values of one any-of list
MAX_VALUE_CHARS = 1000  # characters of one string value
_SIZE_HINT = (f"a filter holds at most {MAX_WHERE_TERMS} conditions, {MAX_WHERE_VALUES} values a list and "
              f"{MAX_VALUE_CHARS} characters a value")
_INT = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII digits only: int() would take "٥" and "５"
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def sql_str(value: str) -> str:
    """``value`` as a SQL string literal: single quotes doubled, NUL refused."""
    if not isinstance(value, str):
        raise UsageError(f"expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise UsageError("a pin id or uri may not contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def eq(column: str, value: str) -> str:
    """``column = 'value'`` with ``value`` quoted."""
    return f"{column} = {sql_str(value)}"


def is_in(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b')`` with every value quoted (an empty set matches nothing)."""
    vals = [sql_str(v) for v in values]
    return f"{column} IN ({', '.join(vals)})" if vals else "false"


def check_kinds(kinds: Iterable[str] | str | None) -> list[str] | None:
    """Validated kinds (None means all)."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    out = sorted(set(kinds))
    bad = [k for k in out if k not in KINDS]
    if bad:
        raise UsageError(f"unknown pin kind(s): {', '.join(map(repr, bad))}", f"kinds are {', '.join(KINDS)}")
    return out


def int_in(column: str, values: Iterable[int]) -> str:
    """``column IN (1, 2)`` for integers (each checked to be one)."""
    vals = [str(int(v)) for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return f"{column} IN ({', '.join(vals)})" if vals else "false"


#: Columns a structured filter may name, with their type: s(tring), i(nteger) or f(loat). The database's
#: attributes (``store.attributes``) are filterable too, each by its type.
FILTER_COLUMNS: dict[str, str] = {
    "pin_id": "s", "kind": "s", "uri": "s", "title": "s", "description": "s", "model_id": "s",
    "content_hash": "s", "width": "i", "height": "i", "n_segments": "i", "size": "i", "duration_s": "f", "fps": "f",
}
_SQL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_OP_TEXT = {name: op for op, name in where_text.OPS.items()} | {"in": " IN"}
_BUILTIN_TYPES = {"s": "string", "i": "int", "f": "float"}
_MAX_HINT_ATTRIBUTES = 40


def _range(arrow_type: pa.DataType) -> tuple[float, float]:
    """The values a numeric Arrow type holds."""
    import numpy as np

    if pa.types.is_integer(arrow_type):  # symmetric: SQL reads -N as minus N, and int64's -2**63 overflows
        info = np.iinfo(arrow_type.to_pandas_dtype())
        return -int(info.max), int(info.max)
    fmax = float(np.finfo(arrow_type.to_pandas_dtype()).max)
    return -fmax, fmax


#: The range of each numeric filter column, read from its Arrow type in the pins table (store/schema.py).
RANGES: dict[str, tuple[float, float]] = {
    f.name: _range(f.type) for f in pins_schema(1, {}) if FILTER_COLUMNS.get(f.name) in ("i", "f")}
#: The range of numeric attributes (int64, float64).
ATTRIBUTE_RANGES: dict[str, tuple[float, float]] = {"int": _range(pa.int64()), "float": _range(pa.float64())}


@dataclass(frozen=True)
class Column:
    """A column a filter names: how SQL writes it, its type name (string, int, float, bool, timestamp,
    list<string>) and, for a number, the values it holds."""

    name: str
    sql: str
    type: str
    range: tuple[float, float] | None = None
    attribute: bool = False


def filter_columns(attributes: Mapping[str, pa.DataType] | None = None) -> dict[str, str]:
    """Every column a filter may name -> its type name: ``FILTER_COLUMNS`` and the database's attributes
    (those named by ``attributes.NAME_RULE`` and of one of the six types)."""
    out = {c: _BUILTIN_TYPES[k] for c, k in FILTER_COLUMNS.items()}
    for name, t in (attributes or {}).items():
        tn = type_name(t) if isinstance(t, pa.DataType) else None
        if tn is not None and isinstance(name, str) and NAME_RULE.fullmatch(name):
            out.setdefault(name, tn)
    return out


def columns_hint(attributes: Mapping[str, pa.DataType] | None = None) -> str:
    """The filterable columns, for a hint: the pin columns and this database's attributes with their types."""
    attrs = [(n, t) for n, t in filter_columns(attributes).items() if n not in FILTER_COLUMNS]
    out = f"filterable columns: {', '.join(sorted(FILTER_COLUMNS))}"
    if attrs:
        shown = ", ".join(f"{n} ({t})" for n, t in sorted(attrs)[:_MAX_HINT_ATTRIBUTES])
        more = len(attrs) - _MAX_HINT_ATTRIBUTES
        out += f"; attributes: {shown}" + (f" and {more} more (`pinembed stats` lists them)" if more > 0 else "")
    return out


def column(name: Any, attributes: Mapping[str, pa.DataType] | None = None) -> Column:
    """The column ``name`` names: a pin column of ``FILTER_COLUMNS`` or a recorded attribute; UsageError
    (the hint lists the filterable columns) for any other name."""
    if isinstance(name, str) and name in FILTER_COLUMNS:
        return Column(name, name, _BUILTIN_TYPES[FILTER_COLUMNS[name]], RANGES.get(name))
    t = attributes.get(name) if isinstance(name, str) and attributes else None
    if t is not None and NAME_RULE.fullmatch(name):  # recorded, and a name that cannot hold a backtick
        tn = type_name(t) if isinstance(t, pa.DataType) else None
        if tn is None:
            raise UsageError(f"cannot filter on {name!r}: its type ({t}) is none of the attribute types",
                             columns_hint(attributes))
        return Column(name, f"`{name}`", tn, ATTRIBUTE_RANGES.get(tn), True)
    raise UsageError(f"cannot filter on {str(name)[:80]!r}", columns_hint(attributes))


def _what(value: Any) -> str:
    return repr(value)[:40]


def _bad(col: Column, message: str) -> UsageError:
    """A UsageError about a value or operator of ``col``, its hint saying what the column takes."""
    n = col.name
    hint = {
        "string": f"{n} is text: {n} = 'value', {n} ~ 'part' (contains, any case), {n} IN ('a', 'b')",
        "int": f"{n} is an integer: {n} >= 2, {n} IN (1, 2)",
        "float": f"{n} is a number: {n} < 50, {n} >= 9.5",
        "bool": f"{n} is true or false: {n} = true, {n} != false",
        "timestamp": f"{n} is a date and time: {n} >= '2023-01-31', {n} < '2023-01-31T12:00:00Z' (UTC unless "
                     "an offset is given)",
        "list<string>": f"{n} is a list of text: {n} = 'x' (holds x), {n} != 'x', {n} IN ('x', 'y') (holds any)",
    }[col.type]
    return UsageError(message, hint)


def _timestamp(col: Column, value: Any) -> str:
    """A date (ISO 8601 text, a datetime or a date; naive is UTC) as a UTC timestamp literal's text."""
    what = f"{col.name} takes a date in ISO 8601 (e.g. 2023-01-31 or 2023-01-31T12:00:00Z), not {_what(value)}"
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip().isascii() and len(value.strip()) <= 64:
        try:
            d = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad(col, what) from None
    else:
        raise _bad(col, what)
    try:
        d = (d if d.tzinfo is not None else d.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise _bad(col, f"{col.name}: {_what(value)} is out of the range of dates") from None
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}."
            f"{d.microsecond:06d}")


def _literal(col: Column, value: Any) -> str:
    """``value`` as a SQL literal of ``col``'s type (numbers are parsed, strings quoted, dates read)."""
    t = col.type
    if t in ("string", "list<string>"):
        if isinstance(value, str):
            if "\x00" in value:
                raise _bad(col, f"a value for {col.name} holds a NUL character")
            return sql_str(value)
        if isinstance(value, int | float) and not isinstance(value, bool):  # a number as text, as it reads
            return sql_str(str(value))
        raise _bad(col, f"{col.name} takes text, not {_what(value)}")
    if t == "bool":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower()
        raise _bad(col, f"{col.name} takes true or false, not {_what(value)}")
    if t == "timestamp":
        return f"timestamp '{_timestamp(col, value)}'"
    lo, hi = col.range or ATTRIBUTE_RANGES[t]
    what = f"an integer from {lo:d} to {hi:d}" if t == "int" else f"a number from {lo:.7g} to {hi:.7g}"
    num: float | None = None
    if isinstance(value, str) and (_INT if t == "int" else _FLOAT).fullmatch(value.strip()):
        num = int(value.strip()) if t == "int" else float(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        num = value if t == "int" else float(value)
    elif isinstance(value, float) and math.isfinite(value) and (t == "float" or value.is_integer()):
        num = int(value) if t == "int" else value
    if num is None or not math.isfinite(num) or not lo <= num <= hi:
        raise _bad(col, f"{col.name} takes {what}, not {_what(value)}")
    return repr(num)


def condition(column_name: str, op: str, value: Any, attributes: Mapping[str, pa.DataType] | None = None) -> str:
    """One condition as SQL: ``op`` is eq, ne, gt, gte, lt, lte, in or contains. On a list<string>
    attribute, eq is "holds", ne "does not hold" and in "holds any of"; bool takes eq and ne."""
    col = column(column_name, attributes)
    name = col.name
    if op == "in":
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else None
        if values is None:
            raise _bad(col, f"{name} in takes a list of values, not {type(value).__name__}")
        if len(values) > MAX_WHERE_VALUES:
            raise UsageError(f"the list of {name} values holds {len(values)}; at most {MAX_WHERE_VALUES}", _SIZE_HINT)
        if not values:
            return "false"
        items = ", ".join(_literal(col, v) for v in values)
        return f"array_has_any({col.sql}, [{items}])" if col.type == "list<string>" else f"{col.sql} IN ({items})"
    if op == "contains":
        if col.type != "string":
            what = "a number" if col.type in ("int", "float") else f"of type {col.type}"
            raise _bad(col, f"~ (contains) needs a text column; {name} is {what}")
        return f"strpos(lower({col.sql}), lower({_literal(col, value)})) > 0"
    if op not in _SQL_OPS:
        raise UsageError(f"unknown filter operator {str(op)[:40]!r}",
                         f"use one of {', '.join([*_SQL_OPS, 'in', 'contains'])}")
    if col.type == "list<string>":
        if op not in ("eq", "ne"):
            raise _bad(col, f"{name} is a list of text: it takes = (holds), != (does not hold) and IN (holds any of)")
        has = f"array_has({col.sql}, {_literal(col, value)})"
        return has if op == "eq" else f"NOT {has}"
    if col.type == "bool" and op not in ("eq", "ne"):
        raise _bad(col, f"{name} is true or false: it takes = and !=")
    return f"{col.sql} {_SQL_OPS[op]} {_literal(col, value)}"


class Compiled(str):
    """A ``where`` already checked and compiled by ``compile_where``: compiling it again gives it back
    as it is, so a filter checked at a service's edge is not compiled a second time by the query, as long
    as the database's attributes it names are the same (name and type). Against other attributes (another
    database, a model switch's generation) it is compiled again from its ``source``."""

    source: Any
    uses: tuple[tuple[str, str], ...]

    def __new__(cls, sql: str, source: Any = None, uses: tuple[tuple[str, str], ...] = ()) -> Compiled:
        out = super().__new__(cls, sql)
        out.source, out.uses = source, uses
        return out

    def fits(self, attributes: Mapping[str, pa.DataType] | None) -> bool:
        """Whether this SQL holds for a database with ``attributes``: each attribute it names is recorded
        there with the same type."""
        have = attributes or {}
        return all(n in have and isinstance(have[n], pa.DataType) and type_name(have[n]) == t for n, t in self.uses)


def compile_where(where: Mapping[str, Any] | str | Compiled | None,
                  attributes: Mapping[str, pa.DataType] | None = None) -> Compiled | None:
    """A filter as LanceDB SQL; conditions are ANDed. ``attributes``: the database's recorded attributes
    (``Store.attributes``), which the filter may name besides ``FILTER_COLUMNS``.

    ``{column: value}`` equals; a list or set is any of them; a tuple ``(lo, hi)`` is an inclusive range
    (None leaves a side open); a dict names operators: ``{"gte": 100, "lt": 200}``,
    ``{"contains": "pasta"}`` (case-insensitive), ``{"ne": "image"}``. A string is the text form
    (``store.where_text``): ``"category = 'shoes' AND price < 50"``, read by ``parse_cli_where``."""
    if isinstance(where, Compiled):
        if where.fits(attributes):
            return where
        if where.source is None:
            raise UsageError("this compiled filter was made for a database with other attributes",
                             "pass the filter itself (a mapping or its text), not its compiled form")
        where = where.source
    source = dict(where) if isinstance(where, Mapping) else where
    if isinstance(where, str):
        if not where.strip():
            return None
        where = parse_cli_where([where], attributes)
    if not where:
        return None
    check_size(where)
    parts, uses = [], {}
    for name, value in where.items():
        col = column(name, attributes)
        if col.attribute:
            uses[col.name] = col.type
        if isinstance(value, Mapping):
            parts += [condition(name, op, v, attributes) for op, v in value.items()]
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise UsageError(f"a range for {name} is (lo, hi); use a list for any-of",
                                 "e.g. {\"price\": (10, 50)} for 10 <= price <= 50, (None, 50) for price <= 50")
            lo, hi = value
            parts += ([condition(name, "gte", lo, attributes)] if lo is not None else [])
            parts += ([condition(name, "lte", hi, attributes)] if hi is not None else [])
        elif isinstance(value, list | set | frozenset):
            parts.append(condition(name, "in", sorted(value, key=str), attributes))
        else:
            parts.append(condition(name, "eq", value, attributes))
    if not parts:
        return None
    return Compiled(" AND ".join(f"({p})" for p in parts), source, tuple(sorted(uses.items())))


def check_size(where: Any) -> None:
    """UsageError unless ``where`` is a mapping (or the text form) within the size bounds (conditions,
    list lengths, string lengths). Counts without compiling or copying, so it is cheap on a hostile
    filter of any size."""
    if isinstance(where, str):
        if len(where) > where_text.MAX_TEXT_CHARS:
            raise UsageError(f"the filter is over {where_text.MAX_TEXT_CHARS:,} characters", _SIZE_HINT)
        return
    if not isinstance(where, Mapping):
        raise UsageError("where must be a mapping of column -> value, list, (lo, hi) range or {op: value}, or "
                         "its text form", "e.g. {\"category\": \"shoes\", \"price\": {\"lt\": 50}}, or "
                         "\"category = 'shoes' AND price < 50\"")
    terms = 0
    for name, value in where.items():
        ops = value.values() if isinstance(value, Mapping) else [value]
        terms += len(value) if isinstance(value, Mapping | tuple) else 1
        if terms > MAX_WHERE_TERMS:
            raise UsageError(f"the filter holds over {MAX_WHERE_TERMS} conditions", _SIZE_HINT)
        for v in ops:
            if isinstance(v, list | tuple | set | frozenset) and len(v) > MAX_WHERE_VALUES:
                raise UsageError(f"a list of {str(name)[:40]} values holds {len(v)}; at most {MAX_WHERE_VALUES}",
                                 _SIZE_HINT)
            for item in (v if isinstance(v, list | tuple | set | frozenset) else [v]):
                if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
                    raise UsageError(f"a value for {str(name)[:40]} is over {MAX_VALUE_CHARS} characters", _SIZE_HINT)


def parse_cli_where(terms: Iterable[str], attributes: Mapping[str, pa.DataType] | None = None) -> dict[str, Any]:
    """``--where`` texts as a structured filter: each an expression (``category = 'shoes' AND price < 50``)
    or a plain term (``kind=video``, ``title~pasta``, ``width>=640``; see ``store.where_text``). Columns
    are checked against ``FILTER_COLUMNS`` and ``attributes`` (the database's). Within one text a column
    and operator appear once; the same column given with ``=`` in several texts means any of the values."""
    out: dict[str, Any] = {}
    for term in terms:
        conds, expression = where_text.parse(term)
        if expression and len(conds) > MAX_WHERE_TERMS:
            raise UsageError(f"the filter holds over {MAX_WHERE_TERMS} conditions", _SIZE_HINT)
        mine: set[tuple[str, str]] = set()
        for name, op, value in conds:
            column(name, attributes)
            if (name, op) in mine:
                raise UsageError(f"the filter gives {name}{_OP_TEXT[op]} twice",
                                 "conditions are ANDed; for any of several values use IN ('a', 'b')")
            mine.add((name, op))
            ops = out.setdefault(name, {})
            if op == "eq" and ("eq" in ops or "in" in ops):
                ops["in"] = [*ops.pop("in", []), *([ops.pop("eq")] if "eq" in ops else []), value]
            elif op in ops:
                raise UsageError(f"--where gives {name}{_OP_TEXT[op]} twice",
                                 "give each operator of a column once; several = of one column mean any of them")
            else:
                ops[op] = value
    return out
