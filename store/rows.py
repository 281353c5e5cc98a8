"""Rows between Python and LanceDB: dicts to Arrow tables, query results to Arrow or dicts, and the
UTC time that rows are stamped with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def to_arrow(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts; ``vector`` a float32 array) as an Arrow table of ``schema``."""
    cols = {}
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if pa.types.is_fixed_size_list(field.type):
            dim = field.type.list_size
            flat = np.asarray(values, dtype=np.float32).reshape(-1) if values else np.zeros(0, np.float32)
            cols[field.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
        else:
            cols[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(cols, schema=schema)


def arrow_of(query: Any) -> pa.Table:
    """A LanceDB query's result as an Arrow table, run without the synchronous builder's checks for
    blob columns: they read the table's schema two to three times per query (~0.6 ms each, the
    largest fixed cost of a related() at 1M pins, docs/performance.md), and our tables have no blob
    columns. Falls back to the builder where its internals differ."""
    table = getattr(query, "_table", None)
    execute = getattr(table, "_execute_query", None)
    if execute is None or not hasattr(query, "to_query_object"):
        return query.to_arrow()
    return execute(query.to_query_object()).read_all()


def rows_of(query: Any) -> list[dict[str, Any]]:
    """A LanceDB query's result rows as dicts (see ``arrow_of``)."""
    return arrow_of(query).to_pylist()
