"""Table upkeep: the ANN index policy, scalar indexes, and compaction of small fragments.

One place decides when to build or rebuild the vector index, with which parameters, and how to
query it so that related() keeps recall@10 >= 0.95 against exact search. The index is IVF_SQ (each
vector scalar-quantized to int8 within its partition): its distances are close enough to exact that
re-ranking 4k candidates with full vectors gives recall@10 1.0 at 1M, where IVF_PQ needed 40k
candidates for 0.97 and 2-3x the query time (benchmarks/query.py; docs/performance.md). It costs
dim bytes per pin (512 B at 512-d) against IVF_PQ's 64. Rows added after a build are still searched
(flat) until they pass 1% of the table or the table outgrows the index's partitions; then the index
is rebuilt. Every
writer (ingest, refresh) ends with ``maintain``; long runs call ``compact`` on the way, so fragments
(one per committed batch) never pile up in tables without a vector index.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from pinembed import failpoints

VECTOR = "vector"


@dataclass(frozen=True)
class IndexPolicy:
    """Thresholds and query parameters; defaults measured with benchmarks/query.py."""

    exact_below: int = 50_000  # flat search over 50k x 512-d takes ~0.2 s here; above it, an index
    nprobes: int = 10  # of ~1000 partitions at 1M: recall@10 1.0 with 6, 10 or 20 (IVF_SQ); 10 is 25% faster than 20
    exact_slice_below: int = 1_000  # a filter selecting fewer pins is searched exactly on its slice (a 3k-pin
    # slice: exact 38 ms, index with all partitions probed 26 ms, recall 0.97; benchmarks/query.py)
    refine_candidates: int = 40  # SQ candidates re-ranked with full vectors: refine = this / k (2..40)
    reindex_unindexed: float = 0.01  # rebuild once rows added since the build pass this share
    scalar_index_above: int = 10_000  # B-tree on pin_id (lookups, merge_insert) and a bitmap on kind
    compact_fragments: int = 32  # compact once this many small fragments have piled up

    @classmethod
    def from_env(cls) -> IndexPolicy:
        """The defaults, with ``$PINEMBED_EXACT_BELOW`` (rows below which search stays exact) applied."""
        raw = os.environ.get("PINEMBED_EXACT_BELOW")
        return cls(exact_below=max(1, int(raw))) if raw and raw.isdigit() else cls()

    def probes(self, k: int) -> int:
        """Partitions to probe for ``k`` results: ``nprobes``, twice that beyond 100 results (a long
        list reaches past the nearest partitions)."""
        return self.nprobes * (2 if k > 100 else 1)

    def refine_factor(self, k: int) -> int:
        """Refine factor for a query of ``k`` results (k=10 -> 4; k=1000 -> 2). At 1M x 512-d, IVF_SQ
        with 22 re-ranked candidates gave recall@10 1.0, without re-ranking 0.94."""
        return int(max(2, min(40, math.ceil(self.refine_candidates / max(1, k)))))

    @staticmethod
    def partitions(n_rows: int) -> int:
        """IVF partitions: about sqrt(rows), between 16 and 4096 (1M rows -> 1000)."""
        return int(min(4096, max(16, round(math.sqrt(n_rows)))))

    @staticmethod
    def index_name(n_partitions: int) -> str:
        """The vector index's name: its kind and partitions (``vector_idx_sq_p1000``)."""
        return f"vector_idx_sq_p{n_partitions}"


def vector_index(table: Any) -> Any | None:
    """The table's vector index config, or None."""
    for idx in table.list_indices():
        if VECTOR in getattr(idx, "columns", []) and "IVF" in str(getattr(idx, "index_type", "")).upper():
            return idx
    return None


def built_partitions(idx: Any, table: Any) -> int:
    """IVF partitions an index was built with (kept in its name, ``vector_idx_sq_p<N>``)."""
    m = re.fullmatch(r"vector_idx_(?:sq_)?p(\d+)", str(idx.name))
    return int(m.group(1)) if m else IndexPolicy.partitions(table.index_stats(idx.name).num_indexed_rows or 1)


def current_kind(idx: Any) -> bool:
    """Whether a vector index is of the kind the policy builds (IVF_SQ); an IVF_PQ index of an older
    pinembed is rebuilt by the next upkeep (ingest, refresh or gc)."""
    return str(idx.name).startswith("vector_idx_sq_p")


def ensure_index(table: Any, dim: int, policy: IndexPolicy = IndexPolicy()) -> str:
    """Build, rebuild or keep the vector index by the policy; returns exact, built, rebuilt or current.

    Rows added after a build are searched flat beside the index until they pass ``reindex_unindexed``
    of the table, or the table outgrows the index (the policy asks for twice its partitions); then the
    index is rebuilt. The new index is committed before the old one is dropped, so queries never lose
    it. Small fragments are compacted just before a (re)build, never under a live index: LanceDB's
    optimize() of an indexed table (IVF_PQ) cut recall@10 from 0.98 to 0.77 at 1M rows (measured here)."""
    n = table.count_rows()
    if n < policy.exact_below:
        return "exact"
    old = vector_index(table)
    parts = policy.partitions(n)
    if old is not None and current_kind(old):
        outgrown = parts >= 2 * built_partitions(old, table)
        unindexed = table.index_stats(old.name).num_unindexed_rows
        if not outgrown and unindexed <= policy.reindex_unindexed * n:
            return "current"
    from lancedb.index import IvfSq

    if small_fragments(table) >= policy.compact_fragments:
        table.optimize()
    failpoints.hit("index")
    name = policy.index_name(parts)
    config = IvfSq(distance_type="cosine", num_partitions=parts)
    table.create_index(VECTOR, config=config, replace=True, name=name)
    for idx in table.list_indices():
        if VECTOR in getattr(idx, "columns", []) and idx.name != name:
            table.drop_index(idx.name)
    return "rebuilt" if old is not None else "built"


def ensure_scalar_indexes(table: Any, columns: dict[str, str], policy: IndexPolicy = IndexPolicy()) -> list[str]:
    """Create the missing scalar indexes (``{column: "btree" | "bitmap"}``) on a table of at least
    ``scalar_index_above`` rows; returns the columns indexed now. Smaller tables are scanned."""
    if table.count_rows() < policy.scalar_index_above:
        return []
    from lancedb.index import Bitmap, BTree, LabelList

    have = {c for i in table.list_indices() for c in getattr(i, "columns", [])}
    made = []
    for column, kind in columns.items():
        if column in table.schema.names and column not in have:
            config = Bitmap() if kind == "bitmap" else LabelList() if kind == "label_list" else BTree()
            table.create_index(column, config=config)
            made.append(column)
    return made


#: A string attribute with at most this many values gets a bitmap index (a category, a language), else a
#: btree (a board id).
BITMAP_MAX_VALUES = 1000


def attribute_index_kinds(table: Any, attributes: dict[str, Any]) -> dict[str, str]:
    """The scalar index each attribute column gets (bitmap, btree or label_list), so that a filter on it
    does not scan the column: bools and strings of few values bitmap, numbers, times and other strings
    btree, lists of strings label_list. The values of a string column are counted only when it has no
    index yet."""
    import pyarrow as pa
    import pyarrow.compute as pc

    have = {c for i in table.list_indices() for c in getattr(i, "columns", [])}
    out: dict[str, str] = {}
    for name, t in attributes.items():
        if name in have:
            continue
        if pa.types.is_boolean(t):
            out[name] = "bitmap"
        elif pa.types.is_list(t):
            out[name] = "label_list"
        elif pa.types.is_string(t):
            col = table.search().select([name]).limit(table.count_rows()).to_arrow().column(name)
            out[name] = "bitmap" if pc.count_distinct(col).as_py() <= BITMAP_MAX_VALUES else "btree"
        else:
            out[name] = "btree"
    return out


def small_fragments(table: Any) -> int:
    """Fragments under LanceDB's compaction target size."""
    return int(table.stats()["fragment_stats"]["num_small_fragments"])


def compact(table: Any, policy: IndexPolicy = IndexPolicy()) -> bool:
    """Merge small fragments (LanceDB ``optimize``) once ``compact_fragments`` have piled up; True when
    it ran. Tables under a vector index are left to ``ensure_index``, which compacts before it
    rebuilds. Old versions are kept for LanceDB's default week, so readers are never cut off."""
    if vector_index(table) is not None or small_fragments(table) < policy.compact_fragments:
        return False
    table.optimize()
    return True


def maintain(table: Any, dim: int | None, policy: IndexPolicy = IndexPolicy(),
             scalar: dict[str, str] | None = None) -> str:
    """Upkeep after a write run: scalar indexes, the vector index (``dim`` given) by the policy, and
    compaction. Returns the vector index state (exact, built, rebuilt or current)."""
    ensure_scalar_indexes(table, scalar or {}, policy)
    state = ensure_index(table, dim, policy) if dim else "exact"
    compact(table, policy)
    return state
