"""A synthetic pin database for query benchmarks: clustered 512-d vectors written as pins through the
store, then the store's own index policy (IVF_SQ above its threshold, scalar indexes).

Used by ``query.py`` and ``serve.py``; ``build()`` returns the vectors and metadata the recall checks
need, and ``ids()`` the pin ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class World:
    """What was written: vectors (normalised), kinds and widths per row, and the write/index times."""

    vecs: np.ndarray
    kinds: np.ndarray
    widths: np.ndarray
    centers: np.ndarray
    write_s: float = 0.0
    index_s: float = 0.0
    index_state: str = ""


def pin_id(i: int) -> str:
    """The pin id of row ``i``."""
    return f"pin{i:07d}"


def generate(rows: int, dim: int = 512, centers: int = 1000, seed: int = 0) -> World:
    """Clustered unit vectors; kinds 80/15/5% image/video/idea; a width metadata column."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim)).astype(np.float32)
    vecs = np.empty((rows, dim), np.float32)
    for s in range(0, rows, 100_000):
        e = min(rows, s + 100_000)
        v = c[rng.integers(0, centers, e - s)] + 0.5 * rng.normal(size=(e - s, dim)).astype(np.float32)
        vecs[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
    kinds = np.array(["image", "video", "idea"])[rng.choice(3, rows, p=[0.8, 0.15, 0.05])]
    widths = rng.choice([320, 640, 720, 1080, 1920, 3840], rows).astype(np.int32)
    return World(vecs, kinds, widths, c)


def write(store, world: World, start: int = 0, prefix: str = "pin") -> None:
    """Append ``world``'s rows to ``store``'s pins table (ids ``prefix`` + 7 digits from ``start``)."""
    import pyarrow as pa

    from pinembed.store.rows import now

    table = store._pins()
    stamp = now()
    n, dim = world.vecs.shape
    for s in range(0, n, 50_000):
        e = min(n, s + 50_000)
        cols = {f.name: pa.nulls(e - s, f.type) for f in table.schema}
        cols.update(pin_id=pa.array([f"{prefix}{i:07d}" for i in range(start + s, start + e)]),
                    kind=pa.array(world.kinds[s:e].tolist()), n_segments=pa.array([0] * (e - s), pa.int32()),
                    width=pa.array(world.widths[s:e], pa.int32()),
                    vector=pa.FixedSizeListArray.from_arrays(pa.array(world.vecs[s:e].ravel()), dim),
                    embedded_at=pa.array([stamp] * (e - s), pa.timestamp("us", tz="UTC")))
        table.add(pa.Table.from_pydict(cols, schema=table.schema))


def build(store, rows: int, dim: int = 512, centers: int = 1000, seed: int = 0) -> World:
    """Generate ``rows`` pins into the empty ``store`` and apply its index policy."""
    from pinembed.store.identity import space_identity

    world = generate(rows, dim, centers, seed)
    store.ensure_space(space_identity({"model_id": "synthetic", "dim": dim, "weights_digest": "-", "preprocess": {}}))
    t = time.perf_counter()
    write(store, world)
    world.write_s = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    world.index_state = store.ensure_index()
    world.index_s = round(time.perf_counter() - t, 1)
    return world
