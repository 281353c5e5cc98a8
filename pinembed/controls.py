"""The checks of a query's controls, one place for the CLI, Python and HTTP: ``k``, ``dedupe``,
``diversity`` and weights (a session's pins', a search's terms'). Each failure is a UsageError
(exit 2; HTTP 400) that names the control. Kinds and ``where`` are checked by ``store.filters``
(``check_kinds``, ``check_size``, ``compile_where``), the one module that writes filter SQL."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import UsageError

DEFAULT_K = 20  # every query's default: related, sessions, searches, a page of a listing (CLI, Python, HTTP)
MAX_K = 10_000  # the most results a query gives in Python and the CLI
MAX_K_SERVED = 1_000  # the most an HTTP request gets (serve bounds each request's cost; --server checks it)
MIN_RELATIVE = 1e-12  # a weight this small next to the largest counts as 0


def check_k(k: Any) -> int:
    """``k``: an integer from 1 to MAX_K."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be an integer from 1 to {MAX_K}, got {repr(k)[:40]}")
    return k


def check_controls(dedupe: Any, diversity: Any) -> tuple[float | None, float]:
    """``dedupe`` (a cosine in (-1, 1], or None) and ``diversity`` (0..1) as floats."""
    if dedupe is not None and (isinstance(dedupe, bool) or not isinstance(dedupe, int | float) or not -1 < dedupe <= 1):
        raise UsageError(f"dedupe is a cosine threshold in (-1, 1], e.g. 0.95; got {repr(dedupe)[:40]}")
    if isinstance(diversity, bool) or not isinstance(diversity, int | float) or not 0 <= diversity <= 1:
        raise UsageError(f"diversity is a number from 0 (plain similarity) to 1; got {repr(diversity)[:40]}")
    return (float(dedupe) if dedupe is not None else None), float(diversity)


def check_where(where: Any) -> str | None:
    """``where`` checked (its size first, then every column, operator and value) and compiled to SQL by
    ``store.filters``, before a query does any other work; None for no filter."""
    from pinembed.store.filters import compile_where

    return compile_where(where)


def _weight(w: Any, what: str) -> float:
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
        raise UsageError(f"{what} must be a finite non-negative number, not {repr(w)[:40]}")
    return float(w)


def scaled(weights: Sequence[float]) -> list[float]:
    """``weights`` divided by the largest magnitude, so that any finite weights (1e308, 5e-324) give a
    finite weighted sum of unit vectors: the direction of the sum, all that a query uses, is unchanged.
    A weight under MIN_RELATIVE of the largest is 0 (it would underflow to a zero vector on its own)."""
    top = max((abs(w) for w in weights), default=0.0)
    if top <= 0:
        return list(weights)
    return [w / top if abs(w / top) >= MIN_RELATIVE else 0.0 for w in weights]


def check_term_weight(weight: Any) -> float:
    """A search term's weight: a finite non-negative number."""
    return _weight(weight, "a term's weight")


def check_weights(weights: Any, n: int) -> list[float]:
    """A session's pin weights: ``n`` finite non-negative numbers, not all zero, scaled (``scaled``)."""
    if isinstance(weights, str | bytes | Mapping) or not isinstance(weights, Iterable):
        raise UsageError("weights must be one non-negative number per pin, not all zero")
    values = list(weights)
    if len(values) != n:
        raise UsageError(f"weights must be one non-negative number per pin ({n}), not {len(values)}")
    out = [_weight(w, "a weight") for w in values]
    if not any(w > 0 for w in out):
        raise UsageError("weights must be one non-negative number per pin, not all zero")
    return scaled(out)
