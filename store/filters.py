"""Building LanceDB filter strings from values that may be hostile.

Only this module writes SQL text. Values are quoted as SQL string literals; kinds are checked
against the closed set of pin kinds; column names never come from users.
"""

from __future__ import annotations

from collections.abc import Iterable

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
