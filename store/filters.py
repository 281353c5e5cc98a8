"""Building LanceDB filter strings from values that may be hostile.

Only this module writes SQL text. Values are quoted as SQL string literals; kinds are checked
against the closed set of pin kinds; column names never come from users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pinembed.errors import UsageError

from .schema import KINDS


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


def _column(name: Any) -> str:
    if not isinstance(name, str) or name not in FILTER_COLUMNS:
        raise UsageError(f"cannot filter on {name!r}", f"filterable columns: {', '.join(sorted(FILTER_COLUMNS))}")
    return name


def _literal(column: str, value: Any) -> str:
    """``value`` as a SQL literal of ``column``'s type (numbers are parsed, strings quoted)."""
    kind = FILTER_COLUMNS[column]
    if kind == "s":
        return sql_str(value if isinstance(value, str) else str(value))
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        num: float = float(value) if kind == "f" else int(value.strip() if isinstance(value, str) else value)
        if kind == "i" and isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"{column} takes {'an integer' if kind == 'i' else 'a number'}, not {value!r}") from None
    if not math.isfinite(num):
        raise UsageError(f"{column} takes a finite number, not {value!r}")
    return repr(num)


def condition(column: str, op: str, value: Any) -> str:
    """One condition as SQL: ``op`` is eq, ne, gt, gte, lt, lte, in or contains."""
    column = _column(column)
    if op == "in":
        values = list(value)
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


def compile_where(where: Mapping[str, Any] | None) -> str | None:
    """A structured filter as LanceDB SQL; conditions are ANDed.

    ``{column: value}`` equals; a list or set is any of them; a tuple ``(lo, hi)`` is an inclusive range
    (None leaves a side open); a dict names operators: ``{"gte": 100, "lt": 200}``,
    ``{"contains": "pasta"}`` (case-insensitive), ``{"ne": "image"}``. Columns: FILTER_COLUMNS."""
    if not where:
        return None
    if not isinstance(where, Mapping):
        raise UsageError("where must be a mapping of column -> value, list, (lo, hi) range or {op: value}")
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
    return " AND ".join(f"({p})" for p in parts) if parts else None


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
