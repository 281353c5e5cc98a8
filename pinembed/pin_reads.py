"""Reading pins as data: streamed Arrow batches for export, one pin's fields and attributes for a page,
the card facts of many pins at once, and the database's attributes, read once per table handle. Queries
are in ``retrieval``; this module never ranks."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pinembed.ingestion import kinds as kind_registry
from pinembed.store.filters import check_kinds, compile_where, is_in

from .errors import PinembedError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

#: The pin columns that ``iter_pins``, ``to_arrow`` and ``pinembed export`` give by default (with the
#: database's attributes after them).
EXPORT_COLUMNS = ("pin_id", "kind", "uri", "title", "description", "width", "height", "duration_s", "model_id",
                  "vector")
#: The stored fields of ``pin`` (no vector).
PIN_COLUMNS = ("pin_id", "kind", "uri", "content_hash", "title", "description", "width", "height", "duration_s",
               "fps", "n_segments", "model_id")
#: The card facts of ``pin_extras``.
CARD_FACTS = ("pin_id", "kind", "uri", "title", "duration_s", "content_hash", "n_segments")
_ATTRIBUTES: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, Any]]] = weakref.WeakKeyDictionary()


def attributes(store: Any) -> dict[str, pa.DataType]:
    """``store.attributes()`` (name -> Arrow type), read once per pins-table handle of ``store``: a schema
    read, so queries ask here. A new handle (``add_attributes`` drops the old one; another Store after a
    reload) reads them again; {} without a pins table."""
    handle = store._table("pins")  # the handle itself is the key: Store replaces it when the columns change
    if handle is None:
        return {}
    hit = _ATTRIBUTES.get(store)
    if hit is None or hit[0] is not handle:
        hit = _ATTRIBUTES[store] = (handle, store.attributes())
    return dict(hit[1])


def export_columns(attrs: Mapping[str, Any]) -> list[str]:
    """EXPORT_COLUMNS and then the attributes' columns, in the table's order."""
    return [*EXPORT_COLUMNS, *(a for a in attrs if a not in EXPORT_COLUMNS)]


def iter_pins(store: Any, batch_size: int = 1024, columns: Any = EXPORT_COLUMNS, kinds: Any = None,
              where: Any = None, attrs: Mapping[str, Any] | None = None) -> Iterator[pa.RecordBatch]:
    """The live generation's pins as Arrow record batches of at most ``batch_size`` rows, streamed.
    ``columns=EXPORT_COLUMNS`` (the default) gives the attributes too; ``attrs``: the database's
    attributes (``attributes(store)`` when not given), which ``where`` may name."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    store.require_database()
    attrs = attributes(store) if attrs is None else attrs
    kinds = check_kinds(kinds)
    conds = [c for c in (is_in("kind", kinds) if kinds is not None else None, compile_where(where, attrs)) if c]
    sql = " AND ".join(f"({c})" for c in conds) if conds else None
    cols = None if columns is None else checked_columns(store, _columns(columns, attrs))
    yield from store.iter_batches("pins", cols, sql, batch_size)


def _columns(columns: Any, attrs: Mapping[str, Any]) -> Any:
    return export_columns(attrs) if isinstance(columns, tuple) and columns == EXPORT_COLUMNS else columns


def to_arrow(store: Any, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None,
             attrs: Mapping[str, Any] | None = None) -> pa.Table:
    """The live generation's pins as one Arrow table (all in memory)."""
    import pyarrow as pa

    attrs = attributes(store) if attrs is None else attrs
    batches = list(iter_pins(store, 4096, columns, kinds, where, attrs))
    if batches:
        return pa.Table.from_batches(batches)
    schema = store.schema("pins")
    if schema is None:
        return pa.table({})
    if columns is None:
        return schema.empty_table()
    return schema.empty_table().select(checked_columns(store, _columns(columns, attrs)))


def to_pandas(store: Any, columns: Any = EXPORT_COLUMNS, kinds: Any = None, where: Any = None,
              attrs: Mapping[str, Any] | None = None) -> Any:
    """The live generation's pins as a pandas DataFrame (needs pandas, which pinembed does not install)."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise PinembedError("to_pandas() needs pandas, which is not installed",
                            "pip install pandas; or use to_arrow() or iter_pins(), which need only pyarrow") from None
    return to_arrow(store, columns, kinds, where, attrs).to_pandas()


def checked_columns(store: Any, columns: Any) -> list[str]:
    """``columns`` (a name or a list) checked against the pins table; UsageError naming unknown ones."""
    schema = store.schema("pins")
    have = set(schema.names) if schema is not None else set(EXPORT_COLUMNS)
    cols = [columns] if isinstance(columns, str) else list(columns)
    bad = [c for c in cols if not isinstance(c, str) or c not in have]
    if bad or not cols:
        raise UsageError(f"unknown pin column(s): {', '.join(map(repr, bad)) or 'none given'}",
                         f"pin columns: {', '.join(sorted(have))}")
    return cols


def pin(store: Any, pin_id: str, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One pin's stored fields (no vector), its ``attributes`` (name -> value, null ones included) and
    its ``segments`` (seq, kind, t_s, page, uri; no vectors), by exact id; PinNotFoundError when there is
    none. ``pages``: an idea pin's page count, else None."""
    schema = store.schema("pins")
    have = set(schema.names) if schema is not None else set(PIN_COLUMNS)
    names = [a for a in (attributes(store) if attrs is None else attrs) if a in have and a not in PIN_COLUMNS]
    row = store.get_pin(pin_id, with_vector=False, columns=[*(c for c in PIN_COLUMNS if c in have), *names])
    row["attributes"] = {a: row.pop(a) for a in names}
    segs = sorted(store.segments_of([pin_id]) if row.get("n_segments") else [], key=lambda s: s["seq"])
    row["segments"] = [{k: s.get(k) for k in ("seq", "kind", "t_s", "page", "uri")} for s in segs]
    pages = {s["page"] for s in segs if s["kind"] == "page" and s.get("page") is not None}
    row["pages"] = len(pages) if row["kind"] == "idea" else None
    return row


def pin_extras(store: Any, resident: Any, pin_ids: Any, vectors: bool = False) -> dict[str, dict[str, Any]]:
    """For cards: pin id -> CARD_FACTS and ``pages`` (idea pins: how many pages; else None) and, with
    ``vectors``, ``vector``, of the given ids: one query (none for pins held in memory), and one more
    when idea pins are among them. Unknown ids are left out (an exact-id existence check that never
    reads the file system)."""
    ids = list(dict.fromkeys(pin_ids))
    if not ids:
        return {}
    paged = {k.name for k in kind_registry.all_kinds() if k.paged}
    held = resident.rows(ids, vectors) if resident is not None else {}
    out = {pid: {**r, "pages": None} for pid, r in held.items()}
    missing = [pid for pid in ids if pid not in held]
    if missing:
        out.update({r["pin_id"]: {**r, "pages": None} for r in store.pins_with(missing, list(CARD_FACTS), vectors)})
    ideas = [pid for pid, r in out.items() if r["kind"] in paged and r.get("n_segments")]
    if ideas:
        pages: dict[str, set[int]] = {pid: set() for pid in ideas}
        for seg in store.segments_of(ideas, columns=["pin_id", "kind", "page"]):
            if seg["kind"] == "page" and seg.get("page") is not None:
                pages[seg["pin_id"]].add(seg["page"])
        for pid, p in pages.items():
            out[pid]["pages"] = len(p)
    return out
