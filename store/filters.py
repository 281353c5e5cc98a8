"""Building LanceDB filter strings from values that may be hostile.

Only this module writes SQL text. Values are quoted as SQL string literals; kinds are checked
against the closed set of pin kinds; column names never come from users.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from pinembed.errors import UsageError

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


#: Columns a structured filter may name, with their type: s(tring), i(nteger) or f(loat).
FILTER_COLUMNS: dict[str, str] = {
    "pin_id": "s", "kind": "s", "uri": "s", "title": "s", "description": "s", "model_id": "s",
    "content_hash": "s", "width": "i", "height": "i", "n_segments": "i", "size": "i", "duration_s": "f", "fps": "f",
}
#: Operators: CLI spelling -> SQL (``~`` is a case-insensitive substring match).
OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "~")
_SQL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_CLI_OPS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "~": "contains"}


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


def _column(name: Any) -> str:
    if not isinstance(name, str) or name not in FILTER_COLUMNS:
        raise UsageError(f"cannot filter on {name!r}", f"filterable columns: {', '.join(sorted(FILTER_COLUMNS))}")
    return name


def _literal(column: str, value: Any) -> str:
    """``value`` as a SQL literal of ``column``'s type (numbers are parsed, strings quoted)."""
    kind = FILTER_COLUMNS[column]
    if kind == "s":
        return sql_str(value if isinstance(value, str) else str(value))
    lo, hi = RANGES[column]
    what = f"an integer from {lo:d} to {hi:d}" if kind == "i" else f"a number from {lo:.7g} to {hi:.7g}"
    num: float | None = None
    if isinstance(value, str) and (_INT if kind == "i" else _FLOAT).fullmatch(value.strip()):
        num = int(value.strip()) if kind == "i" else float(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        num = value if kind == "i" else float(value)
    elif isinstance(value, float) and math.isfinite(value) and (kind == "f" or value.is_integer()):
        num = int(value) if kind == "i" else value
    if num is None or not lo <= num <= hi:
        raise UsageError(f"{column} takes {what}, not {repr(value)[:40]}")
    return repr(num)


def condition(column: str, op: str, value: Any) -> str:
    """One condition as SQL: ``op`` is eq, ne, gt, gte, lt, lte, in or contains."""
    column = _column(column)
    if op == "in":
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else None
        if values is None:
            raise UsageError(f"{column} in takes a list of values, not {type(value).__name__}")
        if len(values) > MAX_WHERE_VALUES:
            raise UsageError(f"the list of {column} values holds {len(values)}; at most {MAX_WHERE_VALUES}", _SIZE_HINT)
        if not values:
            return "false"
        return f"{column} IN ({', '.join(_literal(column, v) for v in values)})"
    if op == "contains":
        if FILTER_COLUMNS[column] != "s":
            raise UsageError(f"~ (contains) needs a text column; {column} is a number")
        return f"strpos(lower({column}), lower({sql_str(str(value))})) > 0"
    if op not in _SQL_OPS:
        raise UsageError(f"unknown filter operator {op!r}", f"use one of {', '.join([*_SQL_OPS, 'in', 'contains'])}")
    return f"{column} {_SQL_OPS[op]} {_literal(column, value)}"


class Compiled(str):
    """A ``where`` already checked and compiled by ``compile_where``: compiling it again gives it back
    as it is, so a filter checked at a service's edge is not compiled a second time by the query."""


def compile_where(where: Mapping[str, Any] | Compiled | None) -> Compiled | None:
    """A structured filter as LanceDB SQL; conditions are ANDed.

    ``{column: value}`` equals; a list or set is any of them; a tuple ``(lo, hi)`` is an inclusive range
    (None leaves a side open); a dict names operators: ``{"gte": 100, "lt": 200}``,
    ``{"contains": "pasta"}`` (case-insensitive), ``{"ne": "image"}``. Columns: FILTER_COLUMNS."""
    if isinstance(where, Compiled):
        return where
    if not where:
        return None
    check_size(where)
    parts = []
    for column, value in where.items():
        if isinstance(value, Mapping):
            parts += [condition(column, op, v) for op, v in value.items()]
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise UsageError(f"a range for {column} is (lo, hi); use a list for any-of")
            lo, hi = value
            parts += ([condition(column, "gte", lo)] if lo is not None else [])
            parts += ([condition(column, "lte", hi)] if hi is not None else [])
        elif isinstance(value, list | set | frozenset):
            parts.append(condition(column, "in", sorted(value, key=str)))
        else:
            parts.append(condition(column, "eq", value))
    return Compiled(" AND ".join(f"({p})" for p in parts)) if parts else None


def check_size(where: Any) -> None:
    """UsageError unless ``where`` is a mapping within the size bounds (conditions, list lengths, string
    lengths). Counts without compiling or copying, so it is cheap on a hostile filter of any size."""
    if not isinstance(where, Mapping):
        raise UsageError("where must be a mapping of column -> value, list, (lo, hi) range or {op: value}")
    terms = 0
    for column, value in where.items():
        ops = value.values() if isinstance(value, Mapping) else [value]
        terms += len(value) if isinstance(value, Mapping | tuple) else 1
        if terms > MAX_WHERE_TERMS:
            raise UsageError(f"the filter holds over {MAX_WHERE_TERMS} conditions", _SIZE_HINT)
        for v in ops:
            if isinstance(v, list | tuple | set | frozenset) and len(v) > MAX_WHERE_VALUES:
                raise UsageError(f"a list of {str(column)[:40]} values holds {len(v)}; at most {MAX_WHERE_VALUES}",
                                 _SIZE_HINT)
            for item in (v if isinstance(v, list | tuple | set | frozenset) else [v]):
                if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
                    raise UsageError(f"a value for {str(column)[:40]} is over {MAX_VALUE_CHARS} characters", _SIZE_HINT)


def parse_cli_where(terms: Iterable[str]) -> dict[str, Any]:
    """``--where`` terms (``kind=video``, ``title~pasta``, ``width>=640``) as a structured filter. The same
    column given with ``=`` more than once means any of the values."""
    out: dict[str, Any] = {}
    for term in terms:
        idx = [(term.find(op), op) for op in OPERATORS if term.find(op) > 0]
        if not idx:
            raise UsageError(f"cannot read --where {term!r}", "write COLUMN=VALUE, COLUMN~TEXT, COLUMN>=NUMBER, ...")
        pos = min(i for i, _ in idx)
        op = max((o for i, o in idx if i == pos), key=len)  # ">=" over ">" at the same place
        column, value = term[:pos].strip(), term[pos + len(op):]
        _column(column)
        name = _CLI_OPS[op]
        ops = out.setdefault(column, {})
        if name == "eq" and ("eq" in ops or "in" in ops):
            ops["in"] = [*ops.pop("in", []), *([ops.pop("eq")] if "eq" in ops else []), value]
        elif name in ops:
            raise UsageError(f"--where gives {column}{op} twice")
        else:
            ops[name] = value
    return out
