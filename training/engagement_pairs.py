"""Engagement pairs: which pin a user engaged with after (or beside) another one.

A CSV (with a header row) or Parquet file with the columns:

- ``query_pin_id`` (required): the pin the user started from (a pin on the board, the pin closed up);
- ``engaged_pin_id`` (required): the pin engaged with (saved to the same board, saved after the closeup);
- ``weight`` (optional, a number >= 0, default 1): the pair's weight in training's loss;
- ``timestamp`` (optional): when the engagement happened, ISO 8601 (``2026-11-27T08:00:00Z``) or seconds
  since the epoch; the latest pairs are the held-out split of ``pinembed train``;
- ``action`` (optional): ``save``, ``click`` or ``closeup``.

Other columns are ignored. Pin ids are the ids ``pinembed ingest`` gave (``pinembed pins`` lists them).
A malformed row is a UsageError naming its line; ids missing from the database are counted by the
callers, never fatal.

    query_pin_id,engaged_pin_id,weight,timestamp,action
    images/red-star-01.png,videos/blue-sky-03.mp4,1,2026-11-01T10:00:00Z,save
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pinembed.errors import UsageError

REQUIRED = ("query_pin_id", "engaged_pin_id")
ACTIONS = ("save", "click", "closeup")
HINT = "see `pinembed eval --help`: columns query_pin_id, engaged_pin_id and optionally weight, timestamp, action"


@dataclass
class EngagementPairs:
    """Pairs in file order; ``timestamp`` is seconds since the epoch or None, ``action`` "" when not given."""

    query: list[str] = field(default_factory=list)
    engaged: list[str] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    timestamp: list[float | None] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    self_pairs: int = 0  # rows whose two ids are the same pin (left out)

    def __len__(self) -> int:
        return len(self.query)

    def subset(self, rows: list[int]) -> EngagementPairs:
        """The pairs at ``rows``, in that order."""
        return EngagementPairs([self.query[i] for i in rows], [self.engaged[i] for i in rows],
                               [self.weight[i] for i in rows], [self.timestamp[i] for i in rows],
                               [self.action[i] for i in rows])

    def split_by_time(self, holdout: float) -> tuple[EngagementPairs, EngagementPairs]:
        """(train, held-out): the latest ``holdout`` share of pairs by timestamp is held out (pairs
        without a timestamp count as the oldest; ties keep file order, so the split is stable)."""
        if not 0 < holdout < 1:
            raise UsageError(f"the held-out share must be between 0 and 1, got {holdout}")
        order = sorted(range(len(self)), key=lambda i: (self.timestamp[i] is not None, self.timestamp[i] or 0.0, i))
        n_hold = max(1, round(len(order) * holdout)) if len(order) > 1 else 0
        cut = len(order) - n_hold
        return self.subset(order[:cut]), self.subset(order[cut:])


def read_pairs(path: str | os.PathLike[str]) -> EngagementPairs:
    """Pairs from a CSV or Parquet file (by the ``.parquet``/``.pq`` suffix, else CSV)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise UsageError(f"pairs file {p!r} does not exist or is not a file", HINT)
    if p.lower().endswith((".parquet", ".pq")):
        rows, names = _parquet_rows(p)
        where = "row"
    else:
        rows, names = _csv_rows(p)
        where = "line"
    out = EngagementPairs()
    for line, row in rows:
        q, e = (_text(row.get(c)) for c in REQUIRED)
        if not q or not e:
            raise UsageError(f"{p}: {where} {line}: empty {'query_pin_id' if not q else 'engaged_pin_id'}", HINT)
        w, ts, act = _weight(row.get("weight"), p, where, line), _time(row.get("timestamp"), p, where, line), \
            _action(row.get("action"), p, where, line)
        if q == e:
            out.self_pairs += 1
            continue
        out.query.append(q)
        out.engaged.append(e)
        out.weight.append(w)
        out.timestamp.append(ts)
        out.action.append(act)
    return out


def _csv_rows(path: str):
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"cannot read pairs file {path!r}: {e.strerror}") from e
    with f:
        try:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise UsageError(f"pairs file {path!r} is empty (it needs a header row)", HINT)
            names = _require([h.strip() for h in header], path)
            rows = []
            start = reader.line_num + 1
            for fields in reader:
                if not fields or all(not x.strip() for x in fields):
                    start = reader.line_num + 1
                    continue
                if len(fields) != len(names):
                    raise UsageError(f"{path}: line {start}: {len(fields)} field(s), the header has {len(names)}", HINT)
                rows.append((start, dict(zip(names, fields, strict=True))))
                start = reader.line_num + 1
        except UnicodeDecodeError as e:
            raise UsageError(f"pairs file {path!r} is not UTF-8 text (byte {e.start})", HINT) from e
        except csv.Error as e:
            raise UsageError(f"{path}: line {reader.line_num}: {e}", HINT) from e
    return rows, names


def _parquet_rows(path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise UsageError(f"cannot read pairs file {path!r} as Parquet: {e}", HINT) from e
    names = _require(table.column_names, path)
    cols = {}
    for name in names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", tz="UTC"))
        cols[name] = col.to_pylist()
    return [(i + 1, {n: cols[n][i] for n in names}) for i in range(table.num_rows)], names


def _require(names: list[str], path: str) -> list[str]:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise UsageError(f"pairs file {path!r} lacks the column(s) {', '.join(missing)} (it has: "
                         f"{', '.join(map(str, names)) or 'none'})", HINT)
    return names


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _weight(value, path: str, where: str, line: int) -> float:
    s = _text(value)
    if not s:
        return 1.0
    try:
        w = float(s)
    except ValueError:
        w = math.nan
    if not math.isfinite(w) or w < 0:
        raise UsageError(f"{path}: {where} {line}: weight {s[:40]!r} is not a number >= 0", HINT)
    return w


def _time(value, path: str, where: str, line: int) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    s = _text(value)
    if not s:
        return None
    try:
        t = float(s)
        if math.isfinite(t):
            return t
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{path}: {where} {line}: timestamp {s[:40]!r} is neither ISO 8601 nor seconds since "
                         "the epoch", HINT) from None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def _action(value, path: str, where: str, line: int) -> str:
    s = _text(value).lower()
    if s and s not in ACTIONS:
        raise UsageError(f"{path}: {where} {line}: action {s[:40]!r} is not one of {', '.join(ACTIONS)}", HINT)
    return s
