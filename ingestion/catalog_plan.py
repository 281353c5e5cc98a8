"""Plan a catalog against the store, one batch of rows at a time, with bounded memory.

Each row's signature is its kind column, its version (``--version-col``; else its media's size and mtime,
or ETag, from a stat: nothing is read) and its media value as written, plus the settings its vector
depends on (``IngestOptions.signature``). A row is

- **new** (no stored pin has its id) or **changed** (its signature differs): read and embedded;
- **updated**: its signature is the stored one but a field that is not in the vector changed (title,
  description, an attribute): the stored pin is rewritten with its stored vectors, nothing is read;
- **unchanged**: nothing is done; this is decided in Arrow (a join on the pin id and column compares),
  so a no-change refresh of a large catalog costs about a read of the table, not a Python object per row.

Bad rows are ledger rows naming the file and line: an id that is empty, too long or holds a control
character, a second row with an id already seen in this catalog (``duplicate_id``: never merged), an id
a pin of another source holds (``id_taken``), media that no reader takes or that is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pinembed.errors import InputError

from . import kinds
from .catalog import Batch, Columns
from .catalog_media import CatalogMedia, resolve
from .column_ops import as_text, clean, raw_text, same_rows, same_text
from .entry import Entry, Problem
from .id_lookup import IdLookup
from .idea import MAX_PAGES, Page
from .options import IngestOptions
from .sidecar import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, clean_text
from .sources import owned
from .walk_rules import MAX_ID_CHARS, checked_id, pin_id

_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


@dataclass
class Chunk:
    """One batch of a catalog, planned."""

    todo: list[Entry] = field(default_factory=list)  # new and changed rows: read and embed
    updates: list[Entry] = field(default_factory=list)  # fields changed, media not: keep the stored vectors
    problems: list[Problem] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    replacing: set[str] = field(default_factory=set)  # stored pin ids that todo rewrites
    given_up: int = 0  # rows whose media failed --max-attempts runs: not read again (refresh --retry-failed does)
    kept: set[str] = field(default_factory=set)  # ledger rows of given-up rows: they stay as they are
    quiet: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # each row of the batch: unchanged


_TEXTS = {"title": MAX_TITLE_CHARS, "description": MAX_DESCRIPTION_CHARS}  # text fields and their limits


class CatalogPlanner:
    """Plans the batches of one catalog source against the pins it owns in the store."""

    def __init__(self, root: str, prefix: str, cols: Columns, attributes: dict[str, pa.DataType],
                 stored: pa.Table, opts: IngestOptions, media: CatalogMedia,
                 given_up: Callable[[str], bool] | None = None) -> None:
        """``stored``: every stored pin's pin_id, kind, uri, source, source_sig, title, description and
        attribute columns (``attributes``: name -> stored type). ``given_up``: whether the ledger row of
        a new row (its line, or its media) failed so often that it is not tried again (a refresh's
        failure policy)."""
        self.root, self.prefix, self.cols, self.attributes = root, prefix, cols, attributes
        self.given_up = given_up
        self.opts, self.media = opts, media
        self.stored = stored.combine_chunks()  # one chunk a column: a batch's take is then one gather
        self._index: IdLookup | None = None  # the stored pin ids' rows (made at the first batch)
        self.seen = np.zeros(stored.num_rows, dtype=bool)  # stored pins met in the catalog
        self.new_ids: dict[str, str] = {}  # ids of new rows met so far -> their line (duplicates are named)
        self._suffix = self.settings(opts)

    @staticmethod
    def settings(opts: IngestOptions) -> dict[str, str]:
        """Each kind's settings part of a signature (what its vectors depend on)."""
        return {k: opts_suffix(opts, Entry("", k, "", -1, 0), k) for k in kinds.NAMES}

    def gone(self, named: pa.Array | None = None) -> list[str]:
        """Stored pins of this source that no row named (for refresh to delete); ``named``: the ids of rows
        that were not planned here (found unchanged by a snapshot)."""
        if not self.stored.num_rows:
            return []
        unseen = self.stored.select(["pin_id", "source", "uri"]).filter(pa.array(~self.seen))
        if named is not None and len(named):
            unseen = unseen.filter(pc.invert(pc.is_in(unseen.column("pin_id"), value_set=named)))
        return [r["pin_id"] for r in unseen.to_pylist() if owned(r, [self.root])]

    def plan(self, batch: Batch, again: np.ndarray | None = None) -> Chunk:
        """What to do with each row of ``batch``; ``again``: rows whose id a row not planned here named
        before (each is a duplicate)."""
        out = Chunk(problems=list(batch.bad))
        t, n = batch.table, batch.table.num_rows
        out.quiet = np.zeros(n, bool)
        if n == 0:
            return out
        lines = np.asarray(batch.lines, dtype=np.int64)
        ids, pids = pin_ids(t, self.cols.id, self.prefix)
        ok = np.asarray(pc.fill_null(pc.and_(
            pc.and_(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0),
                    pc.less_equal(pc.utf8_length(ids), MAX_ID_CHARS)),
            pc.invert(pc.match_substring_regex(ids, _CONTROL))), False))
        fields = self._fields(t, n)
        idx, matched = self._lookup(pids)
        joined = self._stored_at(idx, matched)
        fast = self._fast_sigs(t, n, joined)
        same_sig = np.zeros(n, bool) if fast is None else same_rows(fast, joined.column("source_sig")) & matched
        same_fields = same_sig.copy()  # (only rows whose signature matches are compared further)
        for name, arr in fields.items():
            if not same_fields.any():
                break
            if name in _TEXTS:
                same_fields &= same_text(arr, joined.column(name), _TEXTS[name], same_fields)
            else:
                same_fields &= same_rows(arr, joined.column(name))
        again = np.zeros(n, bool) if again is None else again
        dup_here = self._dups_within(pids, ok) | again
        seen_before = self.seen[idx] if len(self.seen) else np.zeros(n, bool)
        quiet = ok & matched & same_fields & ~dup_here & ~seen_before
        quiet &= self._owned_fast(joined, matched)
        self.seen[idx[quiet]] = True
        out.unchanged = int(quiet.sum())
        out.quiet = quiet
        loud = np.flatnonzero(~quiet)
        if not len(loud):
            return out
        rows = t.take(pa.array(loud)).to_pylist()
        stored_rows = joined.take(pa.array(loud)).to_pylist()
        taken = {k: v.take(pa.array(loud)) for k, v in fields.items()}
        field_rows = pa.table({k: clean(v, _TEXTS[k]) if k in _TEXTS else v for k, v in taken.items()}).to_pylist()
        for j, i in enumerate(loud):
            before = out.unchanged
            self._row(batch.file, int(lines[i]), rows[j], field_rows[j], stored_rows[j],
                      bool(matched[i]), int(idx[i]), out, bool(again[i]))
            quiet[i] = out.unchanged > before
        return out

    def _lookup(self, pids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Each pin id's stored row (0 where there is none) and whether there is one (``id_lookup``: the
        stored ids hashed and sorted once; a hash join per batch would hash every stored id again)."""
        if self._index is None:
            self._index = IdLookup(self.stored.column("pin_id"))
        return self._index.find(pids)

    def _stored_at(self, idx: np.ndarray, matched: np.ndarray) -> pa.Table:
        """The stored rows at ``idx`` (null where a row matched no stored pin), aligned with the batch."""
        if not self.stored.num_rows:
            return pa.table({f.name: pa.nulls(len(idx), f.type) for f in self.stored.schema})
        t = self.stored.take(pa.array(idx))
        if matched.all():
            return t
        mask = pa.array(~matched)
        return pa.table({c: pc.if_else(mask, pa.scalar(None, t.schema.field(c).type), t.column(c))
                         for c in t.column_names})

    def _fields(self, t: pa.Table, n: int) -> dict[str, pa.Array]:
        """The fields a row writes that its vector does not depend on (when text is not fused): title and
        description as the catalog has them (``clean`` makes them what is stored), the attributes as
        they will be stored."""
        names = set(t.column_names)

        def get(c: str | None) -> pa.Array | None:
            return t.column(c).combine_chunks() if c and c in names else None

        out = {"title": raw_text(get(self.cols.title), n), "description": raw_text(get(self.cols.description), n)}
        for name, typ in self.attributes.items():
            col = get(name)
            out[name] = pa.nulls(n, typ) if col is None else pc.cast(col, typ, safe=False)
        return out

    def _fast_sigs(self, t: pa.Table, n: int, joined: pa.Table) -> pa.Array | None:
        """Every row's expected stored signature, in Arrow, when no row needs Python to say it: a version
        column, one media value a row (not a list), no text fused into image vectors. Else None."""
        c = self.cols
        if not c.version or self.opts.text_weight or pa.types.is_list(t.schema.field(c.media).type):
            return None
        media = pc.cast(t.column(c.media).combine_chunks(), pa.string(), safe=False)
        version = as_text(t.column(c.version).combine_chunks())
        kind = pc.fill_null(pc.cast(t.column(c.kind).combine_chunks(), pa.string()), "") if c.kind else pa.scalar("")
        kinds_s = joined.column("kind")
        suffix = pc.fill_null(pc.take(pa.array(list(self._suffix.values())),
                                      pc.fill_null(pc.index_in(kinds_s, pa.array(list(self._suffix))), 0)), "")
        parts = [pa.scalar("cat:"), kind, pa.scalar(":v="), version, pa.scalar("@"), media, suffix]
        return pc.binary_join_element_wise(*parts, "")  # (scalars broadcast: no Python list of n strings)

    def _owned_fast(self, joined: pa.Table, matched: np.ndarray) -> np.ndarray:
        src = joined.column("source")
        return np.asarray(pc.fill_null(pc.equal(src, self.root), False)) | ~matched

    def _dups_within(self, pids: pa.Array, ok: np.ndarray) -> np.ndarray:
        """Rows whose id an earlier row of the same batch has."""
        if len(pc.unique(pids)) == len(pids):  # the common case, decided in Arrow
            return np.zeros(len(pids), bool)
        keys = np.asarray(pids.to_numpy(zero_copy_only=False), dtype=object)
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(len(keys), bool)
        dup[first] = False
        return dup

    def _row(self, file: str, line: int, row: dict[str, Any], fields: dict[str, Any], stored: dict[str, Any],
             matched: bool, i: int, out: Chunk, again: bool = False) -> None:
        """One row that is not unchanged (or is bad): an entry for ``out``, or a problem. ``again``: an
        earlier row not planned here named its id."""
        where = f"{file}#line={line}"
        try:
            raw = checked_id(row.get(self.cols.id), f"line {line}: pin id")
        except InputError as e:
            out.problems.append(Problem(where, "", e.error, e.message, "catalog"))
            return
        pid = pin_id(raw, self.prefix)
        if again or (matched and self.seen[i]) or (not matched and pid in self.new_ids):
            first = self.new_ids.get(pid, "an earlier line")
            out.problems.append(Problem(where, pid, "duplicate_id",
                                        f"line {line}: pin id {pid!r} is given again (first on {first}); "
                                        "this row is not ingested", "catalog"))
            return
        if matched and not owned(stored, [self.root]):
            owner = stored.get("source") or stored.get("uri")
            out.problems.append(Problem(where, pid, "id_taken", f"line {line}: pin id {pid!r} belongs to {owner} "
                                        "(another source); it is not overwritten", "catalog"))
            return
        if matched:
            self.seen[i] = True
        else:
            self.new_ids[pid] = f"line {line}"
        if not matched and self.given_up is not None and self.given_up(where):
            out.given_up += 1
            out.kept.add(where)
            return
        try:
            e = self._entry(file, line, pid, row, fields)
        except InputError as err:
            out.problems.append(Problem(where, pid, err.error, f"line {line}: {err.message}", "catalog"))
            return
        if not matched and self.given_up is not None and self.given_up(e.uri):
            out.given_up += 1
            out.kept.add(e.uri)
        elif not matched:
            out.todo.append(e)
            out.new += 1
        elif self.opts.signature(e, stored.get("kind")) != stored.get("source_sig"):
            out.todo.append(e)
            out.changed += 1
            out.replacing.add(pid)
        elif all(_py_same(fields[k], stored.get(k)) for k in fields):
            out.unchanged += 1
        else:
            out.updates.append(e)

    def _entry(self, file: str, line: int, pid: str, row: dict[str, Any], fields: dict[str, Any]) -> Entry:
        """The entry of a catalog row; InputError for media no reader takes or a bad kind."""
        c = self.cols
        value = row.get(c.media)
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise InputError(f"media {value[:80]!r} is not a JSON list", stage="catalog", error="bad_uri") from e
        uris = [resolve(v, file) for v in (value if isinstance(value, list) else [value])]
        if not uris:
            raise InputError("the media list is empty", stage="catalog", error="no_media")
        if len(uris) > MAX_PAGES:
            raise InputError(f"{len(uris)} media; an idea pin has at most {MAX_PAGES} pages", stage="catalog",
                             error="too_many_pages")
        declared = row.get(c.kind) if c.kind else None
        if declared is not None and declared not in kinds.NAMES:
            raise InputError(f"kind {str(declared)[:40]!r} is not one of {', '.join(kinds.NAMES)}", stage="catalog",
                             error="bad_kind")
        kind = declared or ("idea" if isinstance(value, list) and len(uris) > 1 else _kind_of(uris[0]))
        for u in uris:
            self.media.check(u)
        version = row.get(c.version) if c.version else None
        if version is not None:
            own = "v=" + str(as_text(pa.array([version])).to_pylist()[0])
        else:
            own = "s=" + ";".join(self.media.stat(u) for u in uris)
        media_value = value if isinstance(value, str) else json.dumps(value)
        sig = f"cat:{declared or ''}:{own}@{media_value}"
        texts = _page_texts(row.get(c.page_text), len(uris)) if kind == "idea" else []
        if kind == "idea" or self.opts.text_weight:
            h = hashlib.blake2b(json.dumps([fields.get("title"), fields.get("description"), texts]).encode(),
                                digest_size=8)
            sig += "|t=" + h.hexdigest()
        attrs = {k: v for k, v in fields.items() if k not in ("title", "description")}
        size, mtime = _size_mtime(own) if len(uris) == 1 else (-1, 0)
        pages = tuple(Page(j, u, _page_kind(u), texts[j] if j < len(texts) else None, -1, 0)
                      for j, u in enumerate(uris)) if kind == "idea" else ()
        return Entry(pid, kind, uris[0], size, mtime, title=fields.get("title"),
                     description=fields.get("description"), pages=pages, media=self.media, attrs=attrs,
                     source=self.root, sig=sig, row=f"{file}#line={line}")


def pin_ids(t: pa.Table, id_col: str, prefix: str) -> tuple[pa.Array, pa.Array]:
    """A batch's ids as text, and as pin ids (under the source's prefix)."""
    raw = t.column(id_col).combine_chunks()
    ids = raw if pa.types.is_string(raw.type) else pc.cast(raw, pa.string(), safe=False)
    return ids, (ids if not prefix else pc.binary_join_element_wise(pa.scalar(prefix), ids, "/"))


def opts_suffix(opts: IngestOptions, e: Entry, kind: str) -> str:
    """What ``IngestOptions.signature`` appends to a signature for ``kind`` (its settings part)."""
    full = opts.signature(Entry(e.pin_id, kind, e.file, e.size, e.mtime_ns, sig="x"), kind)
    return full[1:]


def _py_same(a: Any, b: Any) -> bool:
    if hasattr(a, "timestamp") and hasattr(b, "timestamp"):
        return a.timestamp() == b.timestamp()
    return a == b


def _kind_of(uri: str) -> str:
    """The kind a media URI's extension says (an http URL's path; no known extension: an image)."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    ext = ("." + name.rsplit(".", 1)[1].lower()) if "." in name else ""
    k = kinds.for_extension(ext)
    return k.name if k is not None else "image"


def _page_kind(uri: str) -> str:
    return "video" if _kind_of(uri) == "video" else "image"


def _page_texts(value: Any, n: int) -> list[str | None]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.lstrip().startswith("[") else [value]
        except json.JSONDecodeError:
            value = [value]
    if not isinstance(value, list):
        return []
    return [clean_text(v, 10_000) if isinstance(v, str) else None for v in value[:n]]


def _size_mtime(own: str) -> tuple[int, int]:
    if own.startswith("s="):
        parts = own[2:].split(":")
        try:
            return int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            return -1, 0
    return -1, 0


def batches_with_plans(planner: CatalogPlanner, batches: Iterator[Batch]) -> Iterator[Chunk]:
    """Each batch of a catalog planned."""
    for b in batches:
        yield planner.plan(b)
