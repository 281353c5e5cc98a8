"""Catalogs: tables of pins, a row per pin (Parquet, CSV or JSON Lines; one file, or a folder or an
object-storage prefix of them), read in batches with bounded memory.

A row names its pin's id (``--id-col``), where its media is (``--media-col``: a URI, or a list of URIs
for an idea pin's pages), its title and description, optionally its kind, its pages' texts and a
version; every other column (or only ``--attr-cols``) is an attribute (``store.attributes``).

- Parquet is read a row group at a time; CSV with pyarrow's streaming reader (types inferred from the
  first block; a malformed line is a ledger row naming its line, the rest is read); JSON Lines line by
  line (a line that is not a JSON object is a ledger row naming its line).
- A catalog on object storage is copied to a temporary file first (pyarrow reads local files).
- The columns are checked on each file's schema before anything is written: a missing id or media
  column is a UsageError (exit 2) naming the file and the column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from pinembed.errors import UsageError
from pinembed.store import attributes as attr_types

from .entry import Problem, Skip
from .http_allow import parse_entry
from .object_media import MediaStore, is_uri
from .prefetch import prefetched
from .walk_rules import TABLE_EXTS

BATCH_ROWS = 65_536
MAX_LINE_BYTES = 1 << 20  # a JSON line (or CSV row) longer than this is a bad line


@dataclass(frozen=True)
class Columns:
    """How a catalog's columns map onto pins (the ``--*-col`` flags and their defaults)."""

    id: str = "pin_id"
    media: str = "media"
    title: str = "title"
    description: str = "description"
    kind: str | None = None  # None: the kind comes from the media (its extension; a list is an idea pin)
    page_text: str = "page_texts"  # idea pins: one text per page (a list, or a JSON list in CSV)
    version: str | None = None  # a row's version (``updated_at``): its media signature, nothing is stat'ed
    attrs: tuple[str, ...] | None = None  # None: every other column

    def fixed(self) -> set[str]:
        """The columns that are pin fields, not attributes."""
        return {c for c in (self.id, self.media, self.title, self.description, self.kind, self.page_text,
                            self.version) if c}


@dataclass
class CatalogOptions:
    """How a catalog is read: its column mapping and who may serve its http media."""

    columns: Columns = field(default_factory=Columns)
    allow_hosts: tuple[str, ...] = ()  # --allow-host: the only hosts http(s) media are fetched from
    http: dict[str, Any] = field(default_factory=dict)  # HttpMedia settings (timeouts, concurrency, retries)

    def __post_init__(self) -> None:
        for entry in self.allow_hosts:  # a bad --allow-host is a usage error now, not in a read thread later
            parse_entry(entry)

    @classmethod
    def given(cls, base: CatalogOptions | None = None, *, id_col: str | None = None, media_col: str | None = None,
              title_col: str | None = None, description_col: str | None = None, kind_col: str | None = None,
              page_text_col: str | None = None, version_col: str | None = None,
              attr_cols: Sequence[str] | None = None, allow_hosts: Sequence[str] | None = None) -> CatalogOptions:
        """``base`` (default: the defaults) with the Python keyword arguments that were given put in
        (``PinIndex.ingest("catalog.parquet", id_col="id", allow_hosts=["cdn.example.com"])``)."""
        base = base or cls()
        c = base.columns
        picked = {k: v for k, v in dict(id=id_col, media=media_col, title=title_col, description=description_col,
                                        kind=kind_col, page_text=page_text_col, version=version_col).items()
                  if v is not None}
        for k, v in picked.items():
            if not isinstance(v, str) or not v:
                raise UsageError(f"{k}_col must be a column name, not {v!r}")
        if isinstance(attr_cols, str):
            attr_cols = [a.strip() for a in attr_cols.split(",") if a.strip()]
        columns = replace(c, **picked, **({"attrs": tuple(attr_cols)} if attr_cols is not None else {}))
        hosts = tuple(allow_hosts) if allow_hosts is not None else base.allow_hosts
        return cls(columns, hosts, dict(base.http))


def is_table(path: str) -> bool:
    """Whether a file name is a catalog table's (by extension)."""
    return path.lower().endswith(TABLE_EXTS)


def is_catalog(src: str | os.PathLike[str], storage_options: dict[str, str] | None = None) -> bool:
    """Whether ``src`` is a catalog: a table file, or a folder or prefix whose (non-hidden) files are all
    tables (at least one). A folder of media is not (a stray .csv among photos leaves it a folder)."""
    s = os.fspath(src)
    if is_table(s) and (is_uri(s) or os.path.isfile(s)):
        return True
    try:
        files = _listing(s, storage_options)
    except (OSError, UsageError):
        return False
    return bool(files) and all(is_table(f) for f in files)


def catalog_root(src: str | os.PathLike[str]) -> str:
    """A catalog source's root as the database records it: an absolute path, or a URI without a
    trailing slash."""
    s = os.fspath(src)
    return s.rstrip("/") if is_uri(s) else os.path.abspath(s)


def catalog_files(root: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """The table files of a catalog (``root`` a file, folder or prefix), sorted; UsageError when none."""
    if is_table(root) and (is_uri(root) or os.path.isfile(root)):
        return [root]
    files = sorted(f for f in _listing(root, storage_options) if is_table(f))
    if not files:
        raise UsageError(f"the catalog {root!r} holds no .parquet, .csv or .jsonl file",
                         "pass a catalog table, or a folder or prefix of them")
    return files


def _listing(root: str, storage_options: dict[str, str] | None) -> list[str]:
    """Every non-hidden file under a folder or prefix (absolute paths or URIs)."""
    if is_uri(root):
        media = MediaStore(root, storage_options)
        return [media.uri(o.rel) for o in media.list()
                if o.rel and not any(p.startswith(".") for p in o.rel.split("/")) and not o.rel.endswith("/")]
    if not os.path.isdir(root):
        return []
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(folder, f) for f in files if not f.startswith(".")]
    return out


@contextmanager
def local_table(path: str, storage_options: dict[str, str] | None) -> Iterator[str]:
    """A local path to read the table at ``path`` from (an object is copied to a temporary file)."""
    if not is_uri(path):
        yield path
        return
    media = MediaStore(path.rsplit("/", 1)[0], storage_options)
    with media.local_copy(path) as tmp:
        yield tmp


@dataclass
class Batch:
    """Rows of one catalog file: the raw table, each row's line (CSV and JSON Lines: its line in the
    file; Parquet: its row, from 1), and the file's bad lines met while reading it."""

    file: str
    table: pa.Table
    lines: list[int]
    bad: list[Problem] = field(default_factory=list)


def schema_of(path: str, local: str) -> pa.Schema:
    """The columns of a catalog file and the types its reader gives them (for CSV and JSON Lines, from
    the first block of rows)."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_schema(local)
    for batch in read_batches(path, local, max_rows=1000):
        return batch.table.schema
    return pa.schema([])


def read_batches(path: str, local: str, batch_rows: int = BATCH_ROWS, max_rows: int | None = None) -> Iterator[Batch]:
    """The rows of one catalog file in batches (``path`` names it in messages, ``local`` is read), the next
batch read while the caller works on this one (``prefetch``)."""
    low = path.lower()
    if low.endswith(".parquet"):
        yield from prefetched(_parquet(path, local, batch_rows))
    elif low.endswith(".csv"):
        yield from prefetched(_csv(path, local, batch_rows))
    else:
        yield from prefetched(_jsonl(path, local, batch_rows, max_rows))


def _parquet(path: str, local: str, batch_rows: int) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(local)
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"cannot read the catalog {path!r} as Parquet: {str(e)[:200]}",
                         "check the file (is it whole?)") from e
    row = 1
    for rb in f.iter_batches(batch_size=batch_rows):
        t = pa.Table.from_batches([rb])
        yield Batch(path, t, list(range(row, row + t.num_rows)))
        row += t.num_rows


def _csv(path: str, local: str, batch_rows: int) -> Iterator[Batch]:
    import pyarrow.csv as pcsv

    bad: list[Problem] = []

    def invalid(row: Any) -> str:
        n = row.number if row.number is not None else 0  # known with one parsing thread
        bad.append(Problem(f"{path}#line={n}", "", "bad_line",
                           f"line {n}: expected {row.expected_columns} fields, found {row.actual_columns}",
                           "catalog"))
        return "skip"

    try:
        reader = pcsv.open_csv(local, read_options=pcsv.ReadOptions(block_size=8 << 20, use_threads=False),
                               parse_options=pcsv.ParseOptions(invalid_row_handler=invalid))
    except pa.ArrowException as e:
        raise UsageError(f"cannot read the catalog {path!r} as CSV: {str(e)[:200]}", "check its header line") from e
    line = 2  # line 1 is the header
    names = reader.schema.names
    taken = 0  # bad lines already given out (opening the reader parses the first block)
    while True:
        try:
            rb = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            raise _csv_error(path, str(e), names) from e
        before, taken = taken, len(bad)
        skipped = sorted(n for p in bad[before:taken] if (n := int(str(p.path).rsplit("=", 1)[1])))
        lines: list[int] = []
        for _ in range(rb.num_rows):
            while skipped and skipped[0] == line:
                skipped.pop(0)
                line += 1
            lines.append(line)
            line += 1
        line += len(skipped)
        t = pa.Table.from_batches([rb])
        for i in range(0, t.num_rows, batch_rows):
            yield Batch(path, t.slice(i, batch_rows), lines[i:i + batch_rows], bad[before:taken] if i == 0 else [])


def _csv_error(path: str, message: str, names: Sequence[str]) -> UsageError:
    """A CSV block that does not convert to the types of the first block: the column named."""
    import re

    m = re.search(r"column #(\d+)", message)
    col = names[int(m.group(1))] if m and int(m.group(1)) < len(names) else None
    what = f"column {col!r}" if col else "a column"
    return UsageError(f"the catalog {path!r}: {what} changes type after its first rows ({message[:160]})",
                      "make the column one type throughout (quote it as text, or fix the odd values)")


def _jsonl(path: str, local: str, batch_rows: int, max_rows: int | None) -> Iterator[Batch]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    bad: list[Problem] = []
    types: dict[str, pa.DataType] = {}
    seen = 0
    with open(local, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            doc, why = _json_line(raw)
            if why is None:
                why = _unify(doc, types)
            if why is not None:
                bad.append(Problem(f"{path}#line={n}", "", "bad_line", f"line {n}: {why}", "catalog"))
                continue
            rows.append(doc)
            lines.append(n)
            seen += 1
            if len(rows) >= batch_rows or (max_rows is not None and seen >= max_rows):
                yield Batch(path, _table(rows, types), lines, bad)
                rows, lines, bad = [], [], []
                if max_rows is not None and seen >= max_rows:
                    return
    if rows or bad:
        yield Batch(path, _table(rows, types), lines, bad)


def _json_line(raw: bytes) -> tuple[dict[str, Any], str | None]:
    if len(raw) > MAX_LINE_BYTES:
        return {}, f"over {MAX_LINE_BYTES} bytes"
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return {}, f"not valid JSON ({e})"
    if not isinstance(doc, dict):
        return {}, "not a JSON object"
    return doc, None


def _unify(doc: dict[str, Any], types: dict[str, pa.DataType]) -> str | None:
    """Record the type of each field of ``doc`` (the first value seen sets it; int then float is float);
    the reason when a value conflicts with its field's type."""
    for k, v in doc.items():
        if v is None:
            continue
        t = attr_types.value_type(v)
        if t is None:  # a dict or a mixed list: kept as JSON text
            t = pa.string()
            doc[k] = json.dumps(v, sort_keys=True)[:10_000] if not isinstance(v, list) else v
            if isinstance(v, list):
                return f"field {str(k)[:40]!r} holds a list of other than strings"
        have = types.get(k)
        if have is None or have.equals(t):
            types.setdefault(k, t)
        elif pa.types.is_integer(have) and pa.types.is_floating(t):
            types[k] = t
        elif _is_strings(have) and _is_strings(t):  # a string and a list of them (one page, or several)
            types[k] = attr_types.TYPES["list<string>"]
        elif not (pa.types.is_floating(have) and pa.types.is_integer(t)):
            return (f"field {str(k)[:40]!r} is {attr_types.type_name(t) or t} here, "
                    f"{attr_types.type_name(have) or have} on earlier lines")
    return None


def _is_strings(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or (pa.types.is_list(t) and pa.types.is_string(t.value_type))


def _table(rows: list[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    names = list(types)
    cols = {}
    for k in names:
        t = types[k]
        vals = [r.get(k) for r in rows]
        if pa.types.is_floating(t):
            vals = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in vals]
        elif pa.types.is_list(t):
            vals = [[v] if isinstance(v, str) else v for v in vals]
        cols[k] = pa.array(vals, type=t)
    return pa.table(cols) if cols else pa.table({"_": pa.nulls(len(rows))}).drop_columns(["_"])


def attribute_columns(schema: pa.Schema, cols: Columns, path: str) -> tuple[dict[str, pa.DataType], list[Skip]]:
    """The attribute columns of a catalog file and the types they are stored as, and a named skip for
    each column that cannot be one (a struct, binary...). UsageError when the id or media column is
    missing, when an ``--attr-cols`` column is missing, or when a name cannot be an attribute's."""
    names = set(schema.names)
    for what, col in (("id", cols.id), ("media", cols.media)):
        if col not in names:
            raise UsageError(f"the catalog {path!r} has no {what} column {col!r} (its columns: "
                             f"{', '.join(schema.names[:20])})", f"name it with --{what}-col COLUMN")
    for flag, col in (("--kind-col", cols.kind), ("--version-col", cols.version)):
        if col and col not in names:
            raise UsageError(f"the catalog {path!r} has no column {col!r} ({flag})", f"check {flag}")
    if cols.attrs is not None:
        missing = [c for c in cols.attrs if c not in names]
        if missing:
            raise UsageError(f"the catalog {path!r} has no column(s) {', '.join(map(repr, missing))} (--attr-cols)",
                             f"its columns: {', '.join(schema.names[:30])}")
    wanted = [c for c in (cols.attrs if cols.attrs is not None else schema.names) if c not in cols.fixed()]
    out: dict[str, pa.DataType] = {}
    skips: list[Skip] = []
    for name in wanted:
        t = attr_types.type_of(schema.field(name).type)
        if pa.types.is_null(schema.field(name).type):
            continue  # no value seen yet (an all-null column): not recorded until it holds one
        if t is None:
            skips.append(Skip(f"{path}#column={name}", "not_an_attribute",
                              f"column {name!r} is {schema.field(name).type}, which no attribute type holds"))
            continue
        try:
            out[attr_types.check_name(name, f"the catalog {path!r}")] = t
        except UsageError as e:
            if cols.attrs is not None:  # asked for by name: say so and stop
                raise
            skips.append(Skip(f"{path}#column={name}", "not_an_attribute", f"{e.message} ({e.hint})"))
    return out, skips
