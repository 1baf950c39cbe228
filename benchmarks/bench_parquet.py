"""Parquet writer benchmark: labels per second and peak memory, whole-set vs streamed.

Every scenario runs in a fresh process (so peak RSS is its own) on seeded synthetic labels
(half boxes, a quarter hexagon polygons, a quarter cuboids near 1e5 m, one string attribute),
and prints one table. Streaming writes ``total`` labels in batches of ``batch`` with
``converters.parquet.write_stream``: its peak memory should stay flat as ``total`` grows.

The second table compares the two layouts considered for point segmentation (one row per point vs
one ``list`` per frame): write time, file size and DuckDB / Polars query times.

Run::

    PYTHONPATH=. python benchmarks/bench_parquet.py            # full (2M labels streamed)
    PYTHONPATH=. python benchmarks/bench_parquet.py --quick    # a smaller smoke run
    PYTHONPATH=. python benchmarks/bench_parquet.py --json     # also parse + stream Deepen JSON

``--json`` generates Deepen label files with ``benchmarks/generate.py`` (cached in
``benchmarks/_data``) and streams them with ``deepen_export.parse.iter_label_batches`` into
``write_stream``: the end-to-end path for a labels body too big for memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

E = 100_000.0
CATS = ("car", "pedestrian", "cyclist", "truck")


def synthetic(n: int, seed: int, frame0: int = 0, n_frames: int = 1000) -> Any:
    from deepen_export.model import Boxes, Cuboids, Frames, LabelSet, Polygons

    rng = np.random.default_rng(seed)
    frames = Frames.from_columns(
        file_id=np.asarray([f"{frame0 + i:08d}.png" for i in range(n_frames)], dtype=object),
        sensor_id=np.full(n_frames, "cam", dtype=object),
        dataset_id=np.full(n_frames, "bench", dtype=object),
        index=np.arange(frame0, frame0 + n_frames),
    )
    nb, npoly = n // 2, n // 4
    nc = n - nb - npoly
    xy = rng.uniform(0, 1000, (nb, 2))
    boxes = Boxes.from_columns(
        frame=rng.integers(0, n_frames, nb),
        category=rng.integers(0, 4, nb),
        label_id=np.asarray([f"car:{i}" for i in range(nb)], dtype=object),
        xyxy=np.hstack([xy, xy + rng.uniform(1, 100, (nb, 2))]),
        attributes={"occluded": rng.choice(np.asarray(["yes", "no"], dtype=object), nb)},
    )
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang)], 1)[None] * rng.uniform(2, 20, (npoly, 1, 1))
    polygons = Polygons.from_columns(
        frame=rng.integers(0, n_frames, npoly),
        category=rng.integers(0, 4, npoly),
        label_id=np.asarray([f"p:{i}" for i in range(npoly)], dtype=object),
        offsets=np.arange(npoly + 1),
        ring_offsets=np.arange(npoly + 1) * 6,
        coords=(rng.uniform(0, 1000, (npoly, 1, 2)) + ring).reshape(-1, 2),
    )
    yaw = rng.uniform(-np.pi, np.pi, nc)
    q = np.zeros((nc, 4))
    q[:, 2], q[:, 3] = np.sin(yaw / 2), np.cos(yaw / 2)
    cuboids = Cuboids.from_columns(
        frame=rng.integers(0, n_frames, nc),
        category=rng.integers(0, 4, nc),
        label_id=np.asarray([f"c:{i}" for i in range(nc)], dtype=object),
        center=rng.uniform(0, 100, (nc, 3)) + E,
        size=rng.uniform(0.5, 10, (nc, 3)),
        quat=q,
    )
    return LabelSet(frames=frames, categories=CATS, boxes=boxes, polygons=polygons, cuboids=cuboids)


def _batches(total: int, batch: int) -> Iterator[Any]:
    for i, start in enumerate(range(0, total, batch)):
        yield synthetic(min(batch, total - start), seed=i, frame0=i * 1000)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(mode: str, total: int, batch: int, layout: str, queue: Any, src: str = "") -> None:
    from converters import parquet

    with tempfile.TemporaryDirectory() as tmp:
        base = _peak_mb()
        if mode == "json":
            from deepen_export.parse import iter_label_batches

            t0 = time.perf_counter()
            batches = iter_label_batches(src, batch_size=batch, dataset_id="bench")
            parquet.write_stream(batches, f"{tmp}/out", layout=layout)
        elif mode == "write":
            labels = synthetic(total, seed=0)
            t0 = time.perf_counter()
            parquet.write(labels, f"{tmp}/out", layout=layout)
        else:
            t0 = time.perf_counter()  # includes generating the batches, as a parser would
            parquet.write_stream(_batches(total, batch), f"{tmp}/out", layout=layout)
        dt = time.perf_counter() - t0
        size = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{tmp}/out") for f in fs
        )
    queue.put((dt, _peak_mb(), base, size))


def _scenario(
    mode: str, total: int, batch: int, layout: str, src: str = ""
) -> tuple[float, float, float, int]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(mode, total, batch, layout, q, src))
    p.start()
    res = q.get()
    p.join()
    return res


def _segmentation_layouts(frames: int, points: int) -> list[tuple[str, float, float, float, float]]:
    import duckdb
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 20, frames * points).astype(np.int32)
    inst = rng.integers(-1, 30, frames * points).astype(np.int32)
    names = [f"class{i}" for i in range(20)]
    files = [f"{i:06d}.pcd" for i in range(frames)]
    off = (np.arange(frames + 1) * points).astype(np.int32)
    cat = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), names)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        fr = np.repeat(np.arange(frames), points)
        per_point = pa.table(
            {
                "file_id": pa.DictionaryArray.from_arrays(pa.array(fr.astype(np.int32)), files),
                "point_index": (np.arange(frames * points) - np.repeat(off[:-1], points)).astype(
                    np.int32
                ),
                "category": cat,
                "instance": pa.array(inst, mask=inst < 0),
            }
        )
        per_frame = pa.table(
            {
                "file_id": files,
                "category": pa.ListArray.from_arrays(pa.array(off), cat),
                "instance": pa.ListArray.from_arrays(pa.array(off), pa.array(inst, mask=inst < 0)),
            }
        )
        queries = {
            "rows": (
                "SELECT category, count(*) FROM '{f}' GROUP BY ALL",
                "SELECT count(*) FROM '{f}' WHERE category = 'class3' AND instance = 5",
                lambda f: pl.scan_parquet(f).group_by("category").len().collect(),
            ),
            "lists": (
                "SELECT c, count(*) FROM (SELECT unnest(category) c FROM '{f}') GROUP BY ALL",
                "SELECT count(*) FROM (SELECT unnest(category) c, unnest(instance) i FROM '{f}') "
                "WHERE c = 'class3' AND i = 5",
                lambda f: (
                    pl.scan_parquet(f)
                    .select(pl.col("category").explode())
                    .group_by("category")
                    .len()
                    .collect()
                ),
            ),
        }
        for name, table, rg in (("rows", per_point, 1 << 20), ("lists", per_frame, 8)):
            f = f"{tmp}/{name}.parquet"
            t0 = time.perf_counter()
            pq.write_table(table, f, compression="zstd", row_group_size=rg, store_schema=False)
            w = time.perf_counter() - t0
            count_q, filter_q, polars_q = queries[name]
            con = duckdb.connect()
            timings = []
            for run in (
                lambda q=count_q, c=con, f=f: c.sql(q.format(f=f)).fetchall(),
                lambda q=filter_q, c=con, f=f: c.sql(q.format(f=f)).fetchall(),
                lambda p=polars_q, f=f: p(f),
            ):
                best = min(_timed(run) for _ in range(3))
                timings.append(best)
            out.append((name, w, os.path.getsize(f) / 1e6, *timings))
    return out


def _json_file(n: int) -> Any:
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    path = here / "_data" / f"labels_{n}_{n // 20}_default_0.json"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        cmd = [sys.executable, str(here / "generate.py"), "--labels", str(n)]
        subprocess.run([*cmd, "--frames", str(n // 20), "-o", str(path)], check=True)
    return path


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    ap.add_argument("--json", action="store_true", help="also parse + stream Deepen JSON files")
    args = ap.parse_args()
    batch = 20_000 if args.quick else 100_000
    totals = [40_000, 80_000] if args.quick else [500_000, 1_000_000, 2_000_000]
    rows = [("write (whole set)", "files", totals[0], 0)]
    rows += [("write_stream", "files", t, batch) for t in totals]
    rows += [("write_stream", "hive", totals[-1], batch)]
    print(f"{'mode':<18} {'layout':<6} {'labels':>10} {'batch':>8} {'s':>7} {'labels/s':>10} "
          f"{'peak RSS MB':>12} {'MB on disk':>10}")  # fmt: skip
    for mode, layout, total, b in rows:
        dt, peak, _, size = _scenario("write" if b == 0 else "stream", total, b, layout)
        print(
            f"{mode:<18} {layout:<6} {total:>10,} {b or '-':>8} {dt:>7.2f} {total / dt:>10,.0f} "
            f"{peak:>12.0f} {size / 1e6:>10.1f}"
        )
    if args.json:
        sizes = [50_000, 200_000] if args.quick else [250_000, 1_000_000]
        print(f"\nDeepen JSON -> iter_label_batches -> write_stream (batches of {batch:,})")
        print(f"{'labels':>10} {'JSON MB':>8} {'s':>7} {'labels/s':>10} {'peak RSS MB':>12}")
        for n in sizes:
            src = _json_file(n)
            dt, peak, _, _ = _scenario("json", n, batch, "files", str(src))
            mb = os.path.getsize(src) / 1e6
            print(f"{n:>10,} {mb:>8.0f} {dt:>7.2f} {n / dt:>10,.0f} {peak:>12.0f}")
    f, p = (20, 50_000) if args.quick else (50, 120_000)
    print(f"\npoint segmentation layouts ({f} frames x {p:,} points, 20 classes)")
    print(f"{'layout':<7} {'write s':>8} {'MB':>7} {'duckdb count s':>15} {'duckdb filter s':>16} "
          f"{'polars count s':>15}")  # fmt: skip
    for name, w, mb, q1, q2, q3 in _segmentation_layouts(f, p):
        print(f"{name:<7} {w:>8.3f} {mb:>7.1f} {q1:>15.4f} {q2:>16.4f} {q3:>15.4f}")


if __name__ == "__main__":
    main()
