"""The rules of a query's controls, one place for the CLI, Python and HTTP: ``k`` (one default, one
limit), ``kinds``, ``dedupe``, ``diversity``, ``where`` and weights (a session's pins', a search's
terms'). Each failure is a UsageError (exit 2; HTTP 400) that names the control. ``where`` is checked
against the database's attributes and compiled by ``store.filters`` (the one module that writes filter
SQL), once: its ``Compiled`` form passes through a second check unchanged (against the same attributes). The CLI's click types and serve's ``params`` only turn
text into values (ASCII digits, JSON types) and then ask this module."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from pinembed.store.filters import Compiled

DEFAULT_K = 20  # every query's default: related, sessions, searches, a page of a listing (CLI, Python, HTTP)
MAX_K = 10_000  # the most results a query gives in Python and the CLI
MAX_K_SERVED = 1_000  # the most an HTTP request gets (serve bounds each request's cost; --server checks it)
MIN_RELATIVE = 1e-12  # a weight this small next to the largest counts as 0
DIVERSITY_RANGE = (0.0, 1.0)  # 0: plain similarity
DEDUPE_RANGE = (-1.0, 1.0)  # a cosine, (lo, hi]


@dataclass(frozen=True)
class Controls:
    """A query's controls, checked: what ``ranking.ranked`` takes."""

    k: int
    kinds: list[str] | None = None
    where: Compiled | None = None
    dedupe: float | None = None
    diversity: float = 0.0

    @property
    def reranks(self) -> bool:
        """Whether the results are re-ranked (deduped or diversified) from a larger candidate pool."""
        return self.dedupe is not None or self.diversity > 0

    @property
    def pool(self) -> int:
        """How many candidates to retrieve: ``k``, or a larger pool when re-ranking."""
        return min(MAX_K, max(4 * self.k, self.k + 50)) if self.reranks else self.k


def check(k: Any = DEFAULT_K, kinds: Any = None, where: Any = None, dedupe: Any = None, diversity: Any = 0.0,
          limit: int = MAX_K, attributes: Mapping[str, pa.DataType] | None = None) -> Controls:
    """Every control of a query checked (``where``'s size first), before the query does any work.
    ``attributes``: the database's recorded attributes (``Store.attributes``), which ``where`` may name."""
    dedupe, diversity = check_controls(dedupe, diversity)
    return Controls(check_k(k, limit), check_kinds(kinds), check_where(where, attributes), dedupe, diversity)


def check_kinds(kinds: Any) -> list[str] | None:
    """``kinds``: a kind's name or names (image, motion, video, idea), sorted; None for all."""
    from pinembed.store import filters  # heavy: the store package loads pyarrow (the CLI reads DEFAULT_K)

    return filters.check_kinds(kinds)


def check_k(k: Any, limit: int = MAX_K) -> int:
    """``k``: an integer from 1 to ``limit`` (MAX_K; MAX_K_SERVED over HTTP)."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limit:
        raise UsageError(f"k must be an integer from 1 to {limit}, not {repr(k)[:40]}")
    return k


def check_controls(dedupe: Any, diversity: Any) -> tuple[float | None, float]:
    """``dedupe`` (a cosine in (-1, 1], or None) and ``diversity`` (0..1) as floats."""
    lo, hi = DEDUPE_RANGE
    if dedupe is not None and (not _real(dedupe) or not lo < dedupe <= hi):
        raise UsageError(f"dedupe must be in ({lo:g}, {hi:g}] (a cosine threshold, e.g. 0.95), "
                         f"not {repr(dedupe)[:40]}")
    lo, hi = DIVERSITY_RANGE
    if not _real(diversity) or not lo <= diversity <= hi:
        raise UsageError(f"diversity must be in [{lo:g}, {hi:g}] (0: plain similarity), not {repr(diversity)[:40]}")
    return (float(dedupe) if dedupe is not None else None), float(diversity)


def check_where(where: Any, attributes: Mapping[str, pa.DataType] | None = None) -> Compiled | None:
    """``where`` (a mapping, its text form ``"category = 'shoes' AND price < 50"``, or a ``Compiled``)
    checked (its size first, then every column, operator and value) and compiled to SQL by
    ``store.filters``, before a query does any other work; None for no filter. ``attributes``: the
    database's recorded attributes (name -> Arrow type), which the filter may name besides the pin
    columns; a ``Compiled`` made for other attributes is compiled again."""
    from pinembed.store import filters  # heavy: the store package loads pyarrow

    return filters.compile_where(where, attributes)


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _weight(w: Any, what: str) -> float:
    if not _real(w) or w < 0:
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
