"""The text form of a filter, as users type it (``--where``, serve's ``where`` string, the page's filter
box), read into conditions: ``(column, operator, value)``. It writes no SQL: ``store.filters`` checks
the columns and values and compiles them, so the user's text never reaches LanceDB.

Two shapes. An expression: conditions ``COLUMN OP VALUE`` joined by AND (any case), OP one of
``= != < <= > >= ~`` (``~``: contains, any case) or ``IN (v, ...)``; VALUE a 'single-quoted string'
(``''`` is a quote inside), a number, true or false. And a plain term, what ``--where`` always took:
``kind=video``, ``title~red star``, ``width>=640``: one condition without a quote or a keyword (AND,
OR, NOT, IN), whose value is the text after the operator as written (spaces around it dropped). OR, NOT,
parentheses for grouping and anything else are a UsageError with a hint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pinembed.errors import UsageError

MAX_TEXT_CHARS = 100_000  # a filter's text (64 conditions of 1000-character values, with room to spare)
MAX_NUMBER_CHARS = 400
#: Operators of both shapes, and their names in the structured filter (``store.filters``).
OPS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "~": "contains"}
_TERM_OPS = ("!=", ">=", "<=", "=", ">", "<", "~")
_KEYWORDS = {"AND", "OR", "NOT", "IN"}
_UNSUPPORTED = {
    "OR": "OR is not supported; use IN ('a', 'b') for any of",
    "NOT": "NOT is not supported; use != for one value",
    "IS": "IS [NOT] NULL is not supported: conditions compare with values",
    "NULL": "NULL is not a value here: conditions compare with values",
    "LIKE": "LIKE is not supported; use ~ 'text' (contains, any case)",
    "BETWEEN": "BETWEEN is not supported; write COLUMN >= LO AND COLUMN <= HI",
}
_FORM = ("write conditions COLUMN OP VALUE joined by AND, e.g. category = 'shoes' AND price < 50; OP is one of "
         "= != < <= > >= ~ (contains) or IN ('a', 'b'); text values in 'single quotes'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPACE = " \t\r\n"


@dataclass(frozen=True)
class _Tok:
    kind: str  # word, string, number, op, sign, open, close, comma
    text: str
    at: int
    value: Any = None


class _Untokenizable(Exception):
    """The text holds something no expression holds (an unknown character, an unterminated string)."""

    def __init__(self, message: str, keyword_before: bool) -> None:
        super().__init__(message)
        self.message, self.keyword_before = message, keyword_before


def _shown(text: str, at: int) -> str:
    return repr(text[at:at + 30] + ("..." if len(text) > at + 30 else ""))


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c == "'":
            j, parts = i + 1, []
            while True:
                k = text.find("'", j)
                if k < 0:
                    raise _Untokenizable(f"a text value starting at {_shown(text, i)} has no closing quote",
                                         any(t.kind == "word" and t.text.upper() in _KEYWORDS for t in out))
                parts.append(text[j:k])
                if text.startswith("''", k):
                    parts.append("'")
                    j = k + 2
                    continue
                out.append(_Tok("string", text[i:k + 1], i, "".join(parts)))
                i = k + 1
                break
        elif m := _NUMBER.match(text, i):
            out.append(_Tok("number", m.group(), i))
            i = m.end()
        elif m := _WORD.match(text, i):
            out.append(_Tok("word", m.group(), i))
            i = m.end()
        elif text.startswith(("!=", "<=", ">="), i):
            out.append(_Tok("op", text[i:i + 2], i))
            i += 2
        elif c in "=<>~":
            out.append(_Tok("op", c, i))
            i += 1
        elif c in "+-":
            out.append(_Tok("sign", c, i))
            i += 1
        elif c in "(),":
            out.append(_Tok({"(": "open", ")": "close", ",": "comma"}[c], c, i))
            i += 1
        else:
            raise _Untokenizable(f"cannot read {_shown(text, i)}",
                                 any(t.kind == "word" and t.text.upper() in _KEYWORDS for t in out))
    return out


def parse(text: str) -> tuple[list[tuple[str, str, Any]], bool]:
    """``text`` as (conditions, whether it was an expression): each condition ``(column, op, value)``
    with op one of eq, ne, lt, lte, gt, gte, contains, in. Column names are not checked here."""
    if not isinstance(text, str):
        raise UsageError(f"a filter's text must be a string, not {type(text).__name__}", _FORM)
    if len(text) > MAX_TEXT_CHARS:
        raise UsageError(f"the filter is over {MAX_TEXT_CHARS:,} characters", "give fewer or shorter conditions")
    if "\x00" in text:
        raise UsageError("a filter may not contain a NUL character", "remove it; " + _FORM)
    try:
        toks = _tokens(text)
    except _Untokenizable as e:
        if e.keyword_before:
            raise UsageError(f"cannot read the filter {_shown(text, 0)}: {e.message}", _FORM) from None
        return [_term(text)], False
    if toks and not any(t.kind == "string" or (t.kind == "word" and t.text.upper() in _KEYWORDS) for t in toks):
        return [_term(text)], False  # no quoted value and no AND, OR, NOT, IN: the term form
    return _Parser(text, toks).expression(), True


def _term(text: str) -> tuple[str, str, Any]:
    """A plain term ``COLUMN OP VALUE``, its value as written."""
    if text.lstrip().startswith("("):
        raise UsageError(f"cannot read the filter {_shown(text, 0)}: parentheses to group conditions are not "
                         "supported: conditions are joined by AND", _FORM)
    found = [(text.find(op), op) for op in _TERM_OPS if text.find(op) > 0]
    if not found:
        raise UsageError(f"cannot read the filter {_shown(text, 0)}",
                         "write COLUMN=VALUE, COLUMN~TEXT, COLUMN>=NUMBER, ..., or " + _FORM)
    pos = min(i for i, _ in found)
    op = max((o for i, o in found if i == pos), key=len)  # ">=" over ">" at the same place
    return text[:pos].strip(), OPS[op], text[pos + len(op):].strip()


class _Parser:
    """Conditions joined by AND, read token by token."""

    def __init__(self, text: str, toks: list[_Tok]) -> None:
        self.text, self.toks, self.i = text, toks, 0

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _fail(self, message: str, tok: _Tok | None, hint: str = _FORM) -> UsageError:
        where = f" at {_shown(self.text, tok.at)}" if tok is not None else " at its end"
        return UsageError(f"cannot read the filter{where}: {message}", hint)

    def _keyword(self, tok: _Tok | None) -> str | None:
        return tok.text.upper() if tok is not None and tok.kind == "word" else None

    def expression(self) -> list[tuple[str, str, Any]]:
        out = [self._condition()]
        while (tok := self._peek()) is not None:
            kw = self._keyword(tok)
            if kw in _UNSUPPORTED:
                raise self._fail(_UNSUPPORTED[kw], tok)
            if kw != "AND":
                raise self._fail(f"expected AND between conditions, found {tok.text[:40]!r}", tok)
            self.i += 1
            out.append(self._condition())
        return out

    def _condition(self) -> tuple[str, str, Any]:
        tok = self._peek()
        kw = self._keyword(tok)
        if tok is None:
            raise self._fail("a condition is missing", tok)
        if tok.kind in ("open", "close"):
            raise self._fail("parentheses to group conditions are not supported: conditions are joined by AND", tok)
        if kw in _UNSUPPORTED or kw in _KEYWORDS:
            raise self._fail(_UNSUPPORTED.get(kw, f"a condition starts with a column name, not {kw}"), tok)
        if tok.kind != "word":
            raise UsageError(f"cannot filter on {tok.text[:40]!r}: a condition starts with a column name", _FORM)
        column = tok.text
        self.i += 1
        op = self._peek()
        kw = self._keyword(op)
        if kw == "IN":
            self.i += 1
            return column, "in", self._list()
        if kw in _UNSUPPORTED:
            raise self._fail(_UNSUPPORTED[kw], op)
        if op is None or op.kind != "op":
            raise self._fail(f"expected an operator after {column[:40]}", op)
        self.i += 1
        return column, OPS[op.text], self._value(column)

    def _list(self) -> list[Any]:
        tok = self._peek()
        if tok is None or tok.kind != "open":
            raise self._fail("IN takes a parenthesised list, e.g. IN ('a', 'b')", tok)
        self.i += 1
        values: list[Any] = []
        if (tok := self._peek()) is not None and tok.kind == "close":
            self.i += 1
            return values
        while True:
            values.append(self._value("IN"))
            tok = self._peek()
            self.i += 1
            if tok is not None and tok.kind == "close":
                return values
            if tok is None or tok.kind != "comma":
                raise self._fail("expected , or ) in the IN list", tok)

    def _value(self, after: str) -> Any:
        tok = self._peek()
        self.i += 1
        if tok is None:
            raise self._fail(f"a value is missing after {after[:40]}", tok)
        if tok.kind == "string":
            return tok.value
        sign = ""
        if tok.kind == "sign":
            sign, tok = tok.text, self._peek()
            self.i += 1
            if tok is None or tok.kind != "number":
                raise self._fail(f"expected a number after {sign}", tok)
        if tok.kind == "number":
            if len(tok.text) > MAX_NUMBER_CHARS:
                raise self._fail(f"a number of over {MAX_NUMBER_CHARS} characters", tok)
            literal = sign + tok.text
            return int(literal) if tok.text.isdigit() else float(literal)
        kw = self._keyword(tok)
        if kw in ("TRUE", "FALSE"):
            return kw == "TRUE"
        if kw in _UNSUPPORTED:
            raise self._fail(_UNSUPPORTED[kw], tok)
        if tok.kind == "word":
            raise self._fail(f"{tok.text[:40]!r} is no value: text values are quoted, e.g. '{tok.text[:40]}'", tok)
        raise self._fail(f"expected a value after {after[:40]}", tok)
