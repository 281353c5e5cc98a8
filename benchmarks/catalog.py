"""Catalogs at 1M rows, as one JSON object: a no-change refresh against reading the Parquet file alone,
and related() with an attribute filter (recall against exact).

A Parquet catalog of --rows pins (pin_id, media, title, description; attributes category (20 values,
5% each), price, shoppable, language; updated_at as the version column) whose media point at
--media-files tiny JPEGs (rows share them). The store is built in two steps:

1. the first --small-rows rows are ingested through the real ``PinIndex.ingest`` (model ``nano``,
   ``--version-col updated_at``): this is what the real code writes (signature, source, attributes);
2. every row is then written through the store's pins table in batches: the columns of the media it
   names are taken from the rows of step 1 (uri, size, content hash, width, height, model), its own
   fields from the catalog, its signature computed the way ``ingestion/catalog_plan.py`` computes it
   (checked against step 1's stored signatures first), and a clustered unit vector (``synthetic.py``'s
   generator at the model's dimension) instead of an embedding: embedding 1M images at ~20/s would take
   14 hours here. Then the store's index policy (``Store.ensure_index``: IVF_SQ, scalar indexes).

Measured, in the same run: ``pyarrow.parquet.read_table`` of the catalog (best of --repeat) and a
no-change ``PinIndex.refresh`` of it, which must plan 0 new, changed, updated, deleted and --rows
unchanged. The first refresh (``nochange_refresh_cold_s``) finds no snapshot it may trust (step 2 wrote
the store behind the catalog's back), so it plans every row against the store and leaves one; the
next ones (best of --repeat, goal <= 3x the read) compare each row with the snapshot's
(``ingestion/catalog_snapshot.py``). Then a cProfile of one such refresh (its top functions) and each
part of the store-side plan alone. Then ``related(pin, k=10, where={"category": "c07"})`` (and the text form
``"category = 'c07'"``) for --queries random pins: p50/p95 and recall@10 against numpy exact search over
the filtered vectors (goal >= 0.95), beside the unfiltered query.

    python benchmarks/catalog.py [--rows 1000000] [--small-rows 2000] [--queries 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

CATEGORIES = [f"c{i:02d}" for i in range(20)]  # uniform: c07 is 5% of rows
LANGUAGES = (["en", "de", "fr", "es", "ja", "pt"], [0.55, 0.12, 0.1, 0.1, 0.08, 0.05])
WRITE_BATCH = 50_000
FILTER = {"category": "c07"}
FILTER_TEXT = "category = 'c07'"


def _mb(path: Path) -> float:
    """Megabytes under ``path`` (a file or a folder)."""
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)


def _best(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls of ``fn`` and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def make_media(folder: Path, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct tiny JPEGs (32x32: a colour and noise); their names relative to the catalog."""
    from PIL import Image

    folder.mkdir(parents=True)
    names = []
    for j in range(n):
        base = rng.integers(0, 256, 3)
        px = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype("uint8")
        Image.fromarray(px).save(folder / f"m{j:04d}.jpg", quality=85)
        names.append(f"{folder.name}/m{j:04d}.jpg")
    return names


def catalog(rows: int, media: list[str], seed: int = 0):
    """The catalog as one Arrow table (row i's media is media[i % len(media)])."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    i = np.arange(rows)
    cat = np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), rows)]
    lang = np.array(LANGUAGES[0])[rng.choice(len(LANGUAGES[0]), rows, p=LANGUAGES[1])]
    base = np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64)
    updated = base + rng.integers(0, 300 * 86400, rows, dtype=np.int64) * 1_000_000
    ids = [f"p{k:07d}" for k in range(rows)]
    return pa.table({
        "pin_id": pa.array(ids, pa.string()),
        "media": pa.array(np.array(media, dtype=object)[i % len(media)], pa.string()),
        "title": pa.array([f"Item {k}" for k in range(rows)], pa.string()),
        "description": pa.array([f"A catalog item, number {k}, in {c}"
                                 for k, c in zip(range(rows), cat, strict=True)], pa.string()),
        "category": pa.array(cat, pa.string()),
        "price": pa.array(np.round(rng.lognormal(3, 1, rows), 2), pa.float64()),
        "shoppable": pa.array(rng.random(rows) < 0.7, pa.bool_()),
        "language": pa.array(lang, pa.string()),
        "updated_at": pa.array(updated, pa.timestamp("us", tz="UTC")),
    })


def signatures(table, opts) -> object:
    """Each row's stored signature as ``ingestion/catalog_plan.py`` computes it for a row with a version
    column and one media value, read as an image: ``cat:{kind col}:v={version}@{media}{settings}``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pinembed.ingestion.catalog_plan import opts_suffix
    from pinembed.ingestion.column_ops import as_text
    from pinembed.ingestion.entry import Entry

    n = table.num_rows
    suffix = opts_suffix(opts, Entry("", "image", "", -1, 0), "image")
    return pc.binary_join_element_wise(
        pa.array(["cat::v="] * n), as_text(table.column("updated_at").combine_chunks()), pa.array(["@"] * n),
        table.column("media").combine_chunks(), pa.array([suffix] * n), "")


def seed_store(db: str, cat, small, vecs: np.ndarray, opts, out: dict) -> None:
    """Write every catalog row as a pin (see the module doc, step 2) in batches of WRITE_BATCH."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pinembed.store import Store
    from pinembed.store.rows import now

    store = Store(db)
    table = store._pins()
    real = table.to_arrow()
    assert real.num_rows == small, (real.num_rows, small)
    real = real.sort_by("pin_id")
    want = signatures(cat.slice(0, small), opts)
    got = real.column("source_sig").combine_chunks()
    same = pc.all(pc.equal(want, got)).as_py()
    if not same:
        raise SystemExit(f"the signature format is not the planner's: stored {got[0]} computed {want[0]}")
    out["store_build"]["real_rows_example"] = {k: (str(v) if k != "vector" else f"[{len(v)} floats]")
                                               for k, v in real.slice(0, 1).to_pylist()[0].items()}
    out["store_build"]["signatures_checked"] = small
    # the columns a row takes from the media it names (the real rows of step 1, one per media file)
    per_media = {"uri", "content_hash", "size", "mtime_ns", "source", "width", "height", "duration_s", "fps",
                 "n_segments", "model_id", "kind"}
    media_col = real.column("pin_id")  # rows of step 1 are p0000000.. in catalog order
    first = {}
    cat_media = cat.column("media").combine_chunks()
    for k, pid in enumerate(media_col.to_pylist()):
        m = cat_media[int(pid[1:])].as_py()
        first.setdefault(m, k)
    media_names = sorted(first)
    template = real.take(pa.array([first[m] for m in media_names]))
    media_index = pa.array(media_names)
    schema = table.schema
    stamp = now()
    dim = vecs.shape[1]
    n = cat.num_rows
    for s in range(0, n, WRITE_BATCH):
        e = min(n, s + WRITE_BATCH)
        part = cat.slice(s, e - s)
        which = pc.index_in(part.column("media"), media_index)
        assert pc.all(pc.is_valid(which)).as_py(), "a row names media that step 1 did not ingest"
        cols = {}
        for f in schema:
            if f.name in per_media:
                cols[f.name] = pc.take(template.column(f.name), which).cast(f.type)
            elif f.name == "source_sig":
                cols[f.name] = signatures(part, opts)
            elif f.name == "vector":
                cols[f.name] = pa.FixedSizeListArray.from_arrays(pa.array(vecs[s:e].ravel()), dim)
            elif f.name == "embedded_at":
                cols[f.name] = pa.array([stamp] * (e - s), f.type)
            elif f.name in part.column_names:
                cols[f.name] = part.column(f.name).combine_chunks().cast(f.type)
            else:
                cols[f.name] = pa.nulls(e - s, f.type)
        data = pa.Table.from_pydict(cols, schema=schema)
        if s == 0:  # the real rows of step 1 are among these: upsert (their vectors become clustered ones)
            table.merge_insert("pin_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        else:
            table.add(data)
    assert table.count_rows() == n, (table.count_rows(), n)


def profile_top(fn, top: int = 15) -> tuple[object, list[str], list[str], dict[str, float]]:
    """``fn()`` under cProfile: its result, the top functions by cumulative and by own time, and the
    cumulative seconds of each function of the catalog modules (``ingestion/catalog*.py``)."""
    prof = cProfile.Profile()
    res = prof.runcall(fn)
    stats = pstats.Stats(prof)
    ours = {f"{Path(file).name}:{name}": round(st[3], 3) for (file, _line, name), st in stats.stats.items()
            if Path(file).name.startswith("catalog") and Path(file).parent.name == "ingestion"}
    kept = [(k, v) for k, v in ours.items() if v >= 0.005 and "<" not in k]
    ours = dict(sorted(kept, key=lambda kv: -kv[1])[:15])

    def rows(key: str) -> list[str]:
        stats.sort_stats(key)
        out = []
        for func in stats.fcn_list[:top]:
            cc, nc, tt, ct, _ = stats.stats[func]
            file, line, name = func
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if file != "~" else "builtin"
            out.append(f"{name} ({where}): own {tt:.3f} s, cumulative {ct:.3f} s, {nc} calls")
        return out

    return res, rows("cumulative"), rows("tottime"), ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small-rows", type=int, default=2000, help="rows ingested through the real pipeline")
    ap.add_argument("--media-files", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--centers", type=int, default=1000)
    ap.add_argument("--workdir", default="/tmp/catbench")
    ap.add_argument("--keep", action="store_true", help="leave the work folder in place")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import pyarrow.parquet as pq

    import pinembed
    from pinembed.ingestion.catalog import CatalogOptions, Columns
    from pinembed.ingestion.options import IngestOptions
    from pinembed.ingestion.refresh import RefreshOptions
    from pinembed.metrics import recall_at

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synthetic

    n, small = args.rows, min(args.small_rows, args.rows)
    assert small >= args.media_files, "--small-rows must cover every media file"
    rng = np.random.default_rng(0)
    work = Path(args.workdir) / f"run-{os.getpid()}"
    work.mkdir(parents=True)
    path, db = work / "catalog.parquet", str(work / "pins.lance")
    copts = CatalogOptions(Columns(version="updated_at"))
    iopts = IngestOptions(catalog=copts)
    how = (f"the first {small} rows ingested through PinIndex.ingest (nano, version column updated_at); then "
           f"every row written to the pins table in Arrow batches of {WRITE_BATCH} (the first as the "
           "merge_insert Store.write makes, upserting the real rows; the rest appended, being new): "
           "the columns of its media from those real rows, its fields from the catalog, its signature as "
           "catalog_plan computes it (checked against the real rows' stored signatures), a clustered unit "
           "vector instead of an embedding (embedding 1M images at ~20/s would take ~14 h here)")
    out: dict = {"benchmark": "catalog", "catalog_rows": n, "cpus": os.cpu_count(), "model": "nano",
                 "store_build": {"how": how}}
    try:
        t = time.perf_counter()
        media = make_media(work / "media", args.media_files, rng)
        cat = catalog(n, media)
        pq.write_table(cat.slice(0, small), path)
        out["store_build"]["generate_s"] = round(time.perf_counter() - t, 1)

        t = time.perf_counter()
        idx = pinembed.open_index(db, model="nano")
        s = idx.ingest(str(path), options=iopts)
        assert s.added == small and not s.failed, s
        dim = idx.store.dim
        took = time.perf_counter() - t
        out["store_build"].update(small_ingest_rows=small, small_ingest_s=round(took, 1),
                                  small_ingest_rows_per_s=round(small / took, 1), dim=dim,
                                  attributes={k: str(v) for k, v in idx.store.attributes().items()})
        del idx

        t = time.perf_counter()
        pq.write_table(cat, path)  # the whole catalog, at the same path (the same source)
        out["store_build"]["parquet_write_s"] = round(time.perf_counter() - t, 1)
        meta = pq.ParquetFile(path).metadata
        out["catalog_parquet"] = {"mb": _mb(path), "row_groups": meta.num_row_groups,
                                  "columns": cat.column_names}
        world = synthetic.generate(n, dim, args.centers, seed=1)
        vecs = world.vecs
        del world
        t = time.perf_counter()
        seed_store(db, cat, small, vecs, iopts, out)
        out["store_build"]["seed_write_s"] = round(time.perf_counter() - t, 1)
        from pinembed.store import Store

        t = time.perf_counter()
        out["store_build"]["index"] = Store(db).ensure_index()
        out["store_build"]["index_s"] = round(time.perf_counter() - t, 1)
        out["store_build"]["db_mb"] = _mb(Path(db))
        out["store_build"]["peak_rss_mb_after_build"] = _peak_mb()

        # -- 1. a no-change refresh against reading the Parquet file alone ---------------------------
        ropts = RefreshOptions(ingest=iopts)
        idx = pinembed.open_index(db)
        pq.read_table(path)  # page cache warm for both
        t = time.perf_counter()  # the store was written behind the catalog's back (step 2): no snapshot holds
        r = idx.refresh(str(path), options=ropts)
        out["nochange_refresh_cold_s"] = round(time.perf_counter() - t, 3)
        assert r.planned["unchanged"] == n, r.planned
        read_s = refresh_s = float("inf")
        for _ in range(args.repeat):  # interleaved, best of each
            t = time.perf_counter()
            pq.read_table(path)
            read_s = min(read_s, time.perf_counter() - t)
            t = time.perf_counter()
            r = idx.refresh(str(path), options=ropts)
            refresh_s = min(refresh_s, time.perf_counter() - t)
            planned = {k: r.planned.get(k, 0) for k in ("new", "changed", "updated", "deleted", "unchanged")}
            assert planned == {"new": 0, "changed": 0, "updated": 0, "deleted": 0, "unchanged": n}, r.planned
            assert not (r.added or r.updated or r.deleted or r.failed or r.model_loaded), r
        out.update(nochange_refresh_s=round(refresh_s, 3), parquet_read_s=round(read_s, 3),
                   nochange_refresh_over_read=round(refresh_s / read_s, 2), goal_refresh_over_read=3,
                   nochange_refresh_cold_over_read=round(out["nochange_refresh_cold_s"] / read_s, 2),
                   refresh_planned=r.planned, refresh_model_loaded=r.model_loaded, refresh_index=r.index)
        _, by_cum, by_own, ours = profile_top(lambda: idx.refresh(str(path), options=ropts))
        out["refresh_profile"] = {"by_cumulative": by_cum, "by_own_time": by_own,
                                  "catalog_functions_cumulative_s": ours}
        out["refresh_parts_s"] = parts(db, str(path), iopts, args.repeat)
        if refresh_s / read_s > 3:
            p = out["refresh_parts_s"]
            out["notes"] = [
                f"goal missed: a no-change refresh took {refresh_s / read_s:.1f}x the Parquet read "
                "(goal <= 3)",
                f"alone: the store's pin states {p['stored_states']} s, the catalog's batches "
                f"{p['read_batches']} s (read_table {read_s:.3f} s), the plan of every batch "
                f"{p['plan_all_batches']} s",
                "catalog functions under cProfile (cumulative s): "
                + ", ".join(f"{k} {v}" for k, v in list(ours.items())[:8]),
                "top own time: " + "; ".join(by_own[:6])]
        out["peak_rss_mb_after_refresh"] = _peak_mb()

        # -- 2. related() with an attribute filter, recall against exact -----------------------------
        idx = pinembed.open_index(db)
        mask = np.asarray(cat.column("category").to_numpy(zero_copy_only=False) == FILTER["category"])
        out["filter"] = {"where": FILTER, "text": FILTER_TEXT, "selected": int(mask.sum()),
                         "share": round(float(mask.mean()), 4)}
        qs = rng.choice(n, min(args.queries, n), replace=False)

        def run(where, m):
            lat, rec, outside = [], [], 0
            for q in qs:
                t0 = time.perf_counter()
                res = idx.related(f"p{q:07d}", k=10, where=where)
                lat.append(time.perf_counter() - t0)
                got = [x.pin_id for x in res]
                if m is not None:
                    outside += sum(not m[int(p[1:])] for p in got)
                    cand = np.flatnonzero(m)
                else:
                    cand = np.arange(n)
                cand = cand[cand != q]
                sims = vecs[cand] @ vecs[q]
                exact = {f"p{i:07d}" for i in cand[np.argpartition(-sims, 10)[:10]]}
                rec.append(recall_at(got, exact, 10))
            return {"p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
                    "p95_ms": round(1000 * float(np.percentile(lat, 95)), 2),
                    "recall_at_10": round(float(np.mean(rec)), 4), "results_outside_filter": outside}

        run(None, None)  # warm caches
        out["related"] = {"k10": run(None, None)}
        try:
            out["related"]["k10_where_dict"] = run(FILTER, mask)
            out["related"]["k10_where_text"] = run(FILTER_TEXT, mask)
            f = out["related"]["k10_where_dict"]
            out.update(filtered_related_p50_ms=f["p50_ms"], filtered_recall_at_10=f["recall_at_10"],
                       goal_filtered_recall=0.95, unfiltered_related_p50_ms=out["related"]["k10"]["p50_ms"])
        except Exception as e:  # the filter API not there yet: say so, keep the rest
            out["related"]["filtered_error"] = f"{type(e).__name__}: {e}"[:400]
        out["scalar_indexes"] = sorted(c for i in idx.store._pins().list_indices() for c in i.columns)
        out["policy"] = {"nprobes": idx.store.index_policy.nprobes,
                         "exact_slice_below": idx.store.index_policy.exact_slice_below,
                         "partitions": idx.store.index_policy.partitions(n)}
        out["peak_rss_mb"] = _peak_mb()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    json.dump(out, sys.stdout, indent=2)
    print()


def parts(db: str, path: str, opts, repeat: int) -> dict[str, float]:
    """Each part of a no-change catalog refresh alone (best of ``repeat``): the store's pin states, the
    Parquet batches read as the refresh reads them, and the plan of every batch against the states."""
    from pinembed.ingestion.catalog import read_batches
    from pinembed.ingestion.catalog_media import CatalogMedia
    from pinembed.ingestion.catalog_plan import CatalogPlanner
    from pinembed.ingestion.catalog_run import open_catalog, stored_states
    from pinembed.store import Store

    store = Store(db)
    cols = opts.catalog.columns
    ((root, prefix),) = store.sources().items()
    open_s, opened = _best(lambda: open_catalog(root, cols, None), repeat)
    states_s, stored = _best(lambda: stored_states(store, opened.attributes), repeat)
    read_s, _ = _best(lambda: sum(b.table.num_rows for b in read_batches(path, path)), repeat)
    batches = list(read_batches(path, path))

    def plan() -> int:
        p = CatalogPlanner(root, prefix or "", cols, opened.attributes, stored, opts,
                           CatalogMedia((), None, {}))
        return sum(p.plan(b).unchanged for b in batches)

    plan_s, unchanged = _best(plan, repeat)
    assert unchanged == sum(b.table.num_rows for b in batches), unchanged
    return {"open_catalog": round(open_s, 3), "stored_states": round(states_s, 3),
            "read_batches": round(read_s, 3), "plan_all_batches": round(plan_s, 3),
            "note": "each part alone, best of --repeat; the refresh also takes the lock, records the source, "
                    "clears stale ledger rows and runs upkeep"}


if __name__ == "__main__":
    main()
