"""Pins out to a file: Parquet or JSON Lines, written batch by batch to a temp file and renamed into
place, so a failed or interrupted export never leaves half a file under the name asked for. The pins'
attributes are columns of their own types (Parquet) or JSON values (timestamps as ISO 8601 text)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinembed.store.filters import is_in

from .errors import UsageError
from .pin_reads import export_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from .index import PinIndex

#: File extensions export writes, and their format.
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl"}


@dataclass
class ExportSummary:
    """What an export wrote: the files and their row counts (``segments_out`` is None without segments)."""

    out: str
    pins: int
    segments_out: str | None = None
    segments: int = 0

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        return asdict(self)


def format_of(out: str | os.PathLike[str]) -> str:
    """``parquet`` or ``jsonl`` from the extension of ``out``; UsageError for any other."""
    ext = Path(out).suffix.lower()
    if ext not in FORMATS:
        raise UsageError(f"cannot export to {os.fspath(out)!r}: the file name must end in .parquet or .jsonl",
                         "e.g. pinembed export pins.parquet, or pins.jsonl for one JSON object per line")
    return FORMATS[ext]


def segments_path(out: str | os.PathLike[str]) -> Path:
    """Where ``--segments`` writes the segments: ``OUT.segments.parquet`` beside ``OUT.parquet``."""
    p = Path(out)
    return p.with_name(p.stem + ".segments" + p.suffix)


def export(index: PinIndex, out: str | os.PathLike[str], segments: bool = False, kinds: Any = None,
           where: Any = None, batch_size: int = 1024) -> ExportSummary:
    """Write the live generation's pins (``index.EXPORT_COLUMNS`` and the database's attributes) to
    ``out`` (.parquet or .jsonl; its folder is created when missing), streamed; with ``segments``, the
    frame, page and text vectors of those pins to ``segments_path(out)``.
    ``kinds`` and ``where`` filter as in ``related``."""
    fmt = format_of(out)
    out = Path(out)
    targets = [out, segments_path(out)] if segments else [out]
    for t in targets:
        if t.is_dir():
            raise UsageError(f"cannot export to {str(t)!r}: it is a folder", "name a file, e.g. pins.parquet")
    index.store.require_database()
    filtered = kinds is not None or bool(where)
    made = _make_folder(out.parent)
    try:
        pins_sink = _sink(fmt, out)
        seg_sink = _sink(fmt, segments_path(out)) if segments else None
    except BaseException:
        _remove_empty(made)
        raise
    try:
        for batch in index.iter_pins(batch_size, kinds=kinds, where=where):
            pins_sink.write(batch)
            if seg_sink is not None and filtered:
                ids = batch.column("pin_id").to_pylist()
                seg_sink.write_all(index.store.iter_batches("segments", None, is_in("pin_id", ids), batch_size))
        if seg_sink is not None and not filtered:
            seg_sink.write_all(index.store.iter_batches("segments", None, None, batch_size))
        pins_sink.finish(_empty(index, "pins"))
        if seg_sink is not None:
            seg_sink.finish(_empty(index, "segments"))
    except BaseException:
        pins_sink.discard()
        if seg_sink is not None:
            seg_sink.discard()
        _remove_empty(made)
        raise
    if seg_sink is not None:
        seg_sink.commit()
    pins_sink.commit()
    return ExportSummary(str(out), pins_sink.rows, str(segments_path(out)) if segments else None,
                         seg_sink.rows if seg_sink is not None else 0)


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (as ingest does for a database); the folders created,
    deepest first. UsageError when a file stands in the way."""
    made = []
    f = folder
    while not f.exists() and f.parent != f:
        made.append(f)
        f = f.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot export into {str(folder)!r}: a file stands where a folder should be",
                         "name a file in a folder, e.g. out/pins.parquet") from None
    except OSError as e:
        raise UsageError(f"cannot create the folder {str(folder)!r}: {e.strerror}") from None
    return made


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders an export created, when it failed and they are still empty."""
    for f in made:
        try:
            f.rmdir()
        except OSError:
            return


def _empty(index: PinIndex, table: str) -> pa.Schema | None:
    """The schema an empty export is written with."""
    schema = index.store.schema(table)
    if schema is None or table != "pins":
        return schema
    cols = export_columns(index.attributes())
    return schema.empty_table().select([c for c in cols if c in schema.names]).schema


class _Sink:
    """A temp file beside ``path``, renamed to ``path`` by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch."""
        raise NotImplementedError

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Append every batch."""
        for b in batches:
            self.write(b)

    def finish(self, schema: pa.Schema | None) -> None:
        """Close the temp file (an empty export still gets a file, with ``schema``)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Rename the finished temp file into place."""
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Close and remove the temp file after a failure."""
        try:
            self.finish(None)
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


class _Parquet(_Sink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._writer: Any = None

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(self.tmp, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._open(batch.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def finish(self, schema: pa.Schema | None) -> None:
        if self._writer is None and schema is not None:
            self._open(schema)
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _JsonLines(_Sink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._f: Any = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed by finish)

    def write(self, batch: pa.RecordBatch) -> None:
        for row in batch.to_pylist():
            self._f.write(json.dumps(row, ensure_ascii=False, default=json_value) + "\n")
        self.rows += batch.num_rows

    def finish(self, schema: pa.Schema | None) -> None:
        if not self._f.closed:
            self._f.close()


def json_value(v: Any) -> Any:
    """What ``json.dumps`` cannot write, as JSON: a date and time as ISO 8601 text, anything else as text."""
    return v.isoformat() if isinstance(v, dt.datetime | dt.date) else str(v)


def _sink(fmt: str, path: Path) -> _Sink:
    return _Parquet(path) if fmt == "parquet" else _JsonLines(path)
