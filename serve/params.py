"""Request parameters -> PinIndex arguments. Everything here is hostile input: each value is checked
for type, size and range, and anything wrong is a 400 (422 for valid JSON of the wrong shape) that
says which parameter and what it takes. The rules (ranges, the served k, kinds, weights, ``where``) are
``pinembed.controls``'; this module turns text and JSON into values and their UsageErrors into 400s.
A ``where`` (a JSON object, or its text form ``category = 'shoes' AND price < 50``) is checked against
the served database's attributes and compiled once, here, by ``store.filters`` (the one module that
writes SQL)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pinembed import controls as rules
from pinembed.errors import UsageError
from pinembed.store.filters import FILTER_COLUMNS, Compiled, check_size

from .errors import ApiError, bad_request

if TYPE_CHECKING:
    import pyarrow as pa

MAX_PIN_ID_CHARS = 4096
MAX_SESSION_PINS = 500
MAX_TERMS = 16  # texts, negatives, pins and images of one search, each
MAX_TEXT_CHARS = 1000
MAX_WHERE_CHARS = 10_000
MAX_LIST_PAGE = 1_000_000  # pages of GET /api/pins
MAX_T_S = 1e7  # t of GET /api/thumb
MAX_PAGE = 1000  # an idea pin's page (thumb, media)
MAX_WEIGHT = 1e6  # weight= of GET /api/session
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() takes "²" and "٥", int() then fails or reads 5
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
WHERE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains")
_WHERE_HINT = ("conditions joined by AND, e.g. category = 'shoes' AND price < 50 (text in 'quotes'; = != < <= > "
               ">= ~ and IN ('a', 'b')), or a JSON object, e.g. {\"kind\": \"video\", \"width\": {\"gte\": 640}} "
               f"(operators: {', '.join(WHERE_OPS)}); GET /api/attributes lists the database's attributes")


def one(params: Any, name: str) -> str | None:
    """The single value of query parameter ``name`` (None when absent); 400 when given twice."""
    values = params.getlist(name)
    if len(values) > 1:
        raise bad_request(f"{name} is given {len(values)} times; it takes one value")
    return values[0] if values else None


def pin_id(value: Any, name: str = "pin") -> str:
    """A pin id: a non-empty string without NUL, at most MAX_PIN_ID_CHARS. Never used as a path."""
    if not isinstance(value, str):
        raise ApiError(422, "bad_type", f"{name} must be a pin id (a string), not {_type(value)}")
    if not value:
        raise bad_request(f"{name} is empty", "pin ids are like images/red.jpg; GET /api/stats lists the sources")
    if "\x00" in value or len(value) > MAX_PIN_ID_CHARS:
        raise bad_request(f"{name} is not a pin id (a NUL character, or over {MAX_PIN_ID_CHARS} characters)")
    return value


def pin_ids(values: Any, name: str = "pins", limit: int = MAX_SESSION_PINS) -> list[str]:
    """A list of pin ids (at least one, at most ``limit``)."""
    if not isinstance(values, list):
        raise ApiError(422, "bad_type", f"{name} must be a list of pin ids, not {_type(values)}")
    if not values:
        raise bad_request(f"{name} is empty: give at least one pin id")
    if len(values) > limit:
        raise bad_request(f"{name} holds {len(values)} pin ids; at most {limit}")
    return [pin_id(v, name) for v in values]


def k(value: Any) -> int:
    """``k``: an integer from 1 to MAX_K_SERVED (DEFAULT_K when absent); the rule is ``controls.check_k``'s."""
    if value is None:
        return rules.DEFAULT_K
    if isinstance(value, str):
        value = value.strip()
        if not _DIGITS.fullmatch(value):
            raise bad_request(f"k must be an integer from 1 to {rules.MAX_K_SERVED}, not {value[:40]!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, "bad_type", f"k must be an integer from 1 to {rules.MAX_K_SERVED}, not {_type(value)}")
    return _ruled(rules.check_k, value, rules.MAX_K_SERVED)


def integer(value: str | None, name: str, lo: int, hi: int) -> int | None:
    """A query parameter that is an integer from ``lo`` to ``hi`` in ASCII digits (None when absent)."""
    if value is None:
        return None
    v = value.strip()
    if not _DIGITS.fullmatch(v) or not lo <= int(v) <= hi:
        raise bad_request(f"{name} must be an integer from {lo} to {hi}, not {value[:40]!r}")
    return int(v)


def paging(params: Any) -> tuple[int, int]:
    """``page`` (from 1, default 1) and ``size`` (1 to MAX_K_SERVED pins a page, default DEFAULT_K) of a listing."""
    page = integer(one(params, "page"), "page", 1, MAX_LIST_PAGE)
    size = integer(one(params, "size"), "size", 1, rules.MAX_K_SERVED)
    return page or 1, size or rules.DEFAULT_K


def kinds(value: Any) -> list[str] | None:
    """``kinds``: a comma list (or a JSON list) of image, motion, video, idea; None (all) when absent."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):  # spaces and tabs around an item, as the OpenAPI pattern says
        items = [v.strip(" \t") for v in value.split(",") if v.strip(" \t")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ApiError(422, "bad_type", f"kinds must be a comma list or a list of strings, not {_type(value)}")
    return _ruled(rules.check_kinds, items) or None


def number(value: Any, name: str, lo: float, hi: float, lo_open: bool = False) -> float | None:
    """A finite number in [lo, hi] (``(lo, hi]`` when ``lo_open``), or None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            raise bad_request(f"{name} must be a number, not {value[:40]!r}")
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(422, "bad_type", f"{name} must be a number, not {_type(value)}")
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise bad_request(f"{name} must be in {span}, not {value!r}")
    return float(value)


def where(value: Any, attributes: Mapping[str, pa.DataType] | None = None) -> Compiled | None:
    """``where``: a JSON object in the shape of ``store.filters.compile_where``, or its text form
    (``category = 'shoes' AND price < 50``, as ``--where`` and the page's filter box take it); a string
    that starts with ``{`` or ``[`` is JSON (a query parameter's object). Checked against the database's
    ``attributes`` and compiled here, once, so that a bad one is a 400 (the query takes the compiled
    form as it is)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) > MAX_WHERE_CHARS:
            raise bad_request(f"where is over {MAX_WHERE_CHARS} characters", _WHERE_HINT)
        if not value.lstrip().startswith(("{", "[")):  # the text form: read by store.where_text, never SQL
            try:
                return rules.check_where(value, attributes)
            except UsageError as e:
                raise bad_request(f"where: {e.message}", e.hint or _WHERE_HINT) from None
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise bad_request("where is not valid JSON", _WHERE_HINT) from None
    if not isinstance(value, dict):
        raise ApiError(422, "bad_type", f"where must be a JSON object or its text form, not {_type(value)}",
                       _WHERE_HINT)
    try:
        check_size(value)  # before any other work on it
    except UsageError as e:
        raise bad_request(f"where: {e.message}", e.hint) from None
    for column, cond in value.items():
        if isinstance(cond, dict):
            for op, v in cond.items():
                if op not in WHERE_OPS:
                    raise bad_request(f"where: unknown operator {op[:40]!r} for {column[:40]!r}", _WHERE_HINT)
                ok = isinstance(v, list) and all(map(_scalar, v)) if op == "in" else _scalar(v)
                if not ok:
                    raise ApiError(422, "bad_type", f"where: {column[:40]}.{op} takes " + (
                        "a list of numbers, strings or true/false" if op == "in" else "a number, a string or true/false"))
        elif not (_scalar(cond) or (isinstance(cond, list) and all(map(_scalar, cond)))):
            raise ApiError(422, "bad_type", f"where: {column[:40]!r} takes a number, a string, true/false, a list of "
                           "them or an object of operators", _WHERE_HINT)
    try:
        return rules.check_where(value, attributes)
    except UsageError as e:
        raise bad_request(f"where: {e.message}", e.hint or _WHERE_HINT) from None


def texts(values: list[Any], name: str) -> list[str]:
    """Query texts (each non-empty, at most MAX_TEXT_CHARS; at most MAX_TERMS of them)."""
    if len(values) > MAX_TERMS:
        raise bad_request(f"{name} is given {len(values)} times; at most {MAX_TERMS}")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise ApiError(422, "bad_type", f"{name} must be text, not {_type(v)}")
        if not v.strip():
            raise bad_request(f"{name} is empty", "pass some words, e.g. text=red circle")
        if len(v) > MAX_TEXT_CHARS or "\x00" in v:
            raise bad_request(f"{name} is over {MAX_TEXT_CHARS} characters or holds a NUL")
        out.append(v)
    return out


def controls(get: Any, attributes: Mapping[str, pa.DataType] | None = None) -> dict[str, Any]:
    """k, kinds, dedupe, diversity and where, read through ``get(name)`` (a query parameter or a JSON
    field), as keyword arguments of PinIndex's queries; the ranges are ``pinembed.controls``'.
    ``attributes``: the served database's (``PinIndex.attributes``), which ``where`` may name."""
    lo, hi = rules.DEDUPE_RANGE
    dedupe = number(get("dedupe"), "dedupe", lo, hi, lo_open=True)
    lo, hi = rules.DIVERSITY_RANGE
    diversity = number(get("diversity"), "diversity", lo, hi) or 0.0
    _ruled(rules.check_controls, dedupe, diversity)
    return {"k": k(get("k")), "kinds": kinds(get("kinds")), "dedupe": dedupe, "diversity": diversity,
            "where": where(get("where"), attributes)}


def json_controls(doc: dict[str, Any], attributes: Mapping[str, pa.DataType] | None = None) -> dict[str, Any]:
    """``controls`` from a JSON body, where numbers must be JSON numbers (a string is a 422)."""
    for name in ("k", "dedupe", "diversity"):
        if isinstance(doc.get(name), str):
            raise ApiError(422, "bad_type", f"{name} must be a JSON number, not a string")
    return controls(doc.get, attributes)


def query_controls(params: Any, attributes: Mapping[str, pa.DataType] | None = None) -> dict[str, Any]:
    """``controls`` from query parameters."""
    return controls(lambda name: one(params, name), attributes)


def json_body(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("the body is not valid JSON", 'send a JSON object, e.g. {"pins": ["a.jpg"], "k": 20}',
                          code="bad_json") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "bad_type", f"the body must be a JSON object, not {_type(doc)}")
    return doc


def weights(value: Any, n: int) -> list[float] | None:
    """Session weights: one non-negative number per pin, not all zero (None when absent); the rule is
    ``pinembed.controls.check_weights``'s."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in value):
        raise ApiError(422, "bad_type", "weights must be a list of numbers, one per pin")
    _ruled(rules.check_weights, value, n)
    return [float(w) for w in value]


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and (not isinstance(v, str) or len(v) <= 1000)


def _type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def column_names() -> Mapping[str, str]:
    """The columns a where filter may name (for the OpenAPI description)."""
    return FILTER_COLUMNS


def _ruled(rule: Any, *args: Any) -> Any:
    """``rule(*args)`` (one of ``pinembed.controls``), its UsageError a 400 with the same words."""
    try:
        return rule(*args)
    except UsageError as e:
        raise bad_request(e.message, e.hint) from None
