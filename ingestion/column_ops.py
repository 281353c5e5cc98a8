"""Whole columns compared and cleaned in Arrow, for catalog plans: texts as pins keep them, any value as
text, and row-wise equality with null equal to null (each returns a numpy bool array or an Arrow array;
no Python object per row)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_TEXT_JUNK = r"[\x00-\x08\x0b-\x1f]"  # what sidecar.clean_text drops (tabs and newlines stay)


def clean(arr: pa.Array, limit: int) -> pa.Array:
    """Text as pins keep it, for a whole column: control characters dropped, trimmed, capped; empty is null
    (``sidecar.clean_text``'s rule, in Arrow)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _TEXT_JUNK, "")), 0, limit)
    arr = pc.utf8_trim_whitespace(arr)  # again after the cut: cleaning a cleaned text changes nothing
    return pc.if_else(pc.equal(pc.utf8_length(arr), 0), pa.scalar(None, pa.string()), arr)


def raw_text(arr: pa.Array | None, n: int) -> pa.Array:
    """A text column as strings (a missing one as nulls)."""
    if arr is None:
        return pa.nulls(n, pa.string())
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string(), safe=False)


def same_text(raw: pa.Array, stored: pa.Array, limit: int, where: np.ndarray) -> np.ndarray:
    """Whether each row's text, once cleaned, is the stored text, for the rows ``where`` is set. Cleaning
    (a regex) runs only on rows whose text is not already the stored one: ``clean`` of a stored text
    gives it back (it is idempotent)."""
    same = same_rows(raw, stored) | ~where
    rest = np.flatnonzero(~same)
    if len(rest):
        ix = pa.array(rest)
        same[rest] = same_rows(clean(raw.take(ix), limit), stored.take(ix))
    return same


def as_text(arr: pa.Array) -> pa.Array:
    """A column as strings (a list joined by a separator; a time as its microseconds since the epoch,
    cheaper to format than a date), so that any value compares and goes into a signature."""
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return pc.binary_join(pc.cast(arr, pa.list_(pa.string())), "\x1f")
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        arr = pc.cast(pc.cast(arr, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
    return pc.cast(arr, pa.string(), safe=False)


def same_rows(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Row-wise equality with null == null (as a numpy bool array); columns of one type compare as they
    are, others as text."""
    if not a.type.equals(b.type) or pa.types.is_list(a.type) or pa.types.is_large_list(a.type):
        a, b = as_text(a), as_text(b)
    eq = pc.fill_null(pc.equal(a, b), False)
    if not a.null_count and not b.null_count:
        return np.asarray(eq)
    both = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(eq, both))
