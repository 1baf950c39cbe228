"""The project's sample datasets through Parquet: round trips, reference readers, and the ten
queries of the README (Parquet section) checked against sample_data/expected.json (hand-derived values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import geopandas as gpd
import pytest
import shapely

import deepen_export
from converters import parquet
from tests.test_queries import QUERIES, SETUP_PY, SETUP_SQL, _here

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
IMAGE_ID = "Xq7Lm2PzR4tN8vB1cD6fG3hJ"
LIDAR_ID = "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6"


@pytest.mark.parametrize("layout", ["files", "hive"])
def test_sample_round_trips(images, lidar, tmp_path, layout):
    for name, ls in (("image", images), ("lidar", lidar)):
        report = parquet.write(ls, tmp_path / name, layout=layout, pointclouds=True)
        assert report.written["labels"] == len(ls) - len(ls.point_segmentation) - len(ls.masks2d)
        # the sample's bowtie (vegetation:1) is the one polygon whose geometry differs from its
        # rings as sent; every writer reports it the same way (sample_data/README.md)
        repaired = [(i.action, i.label_id) for i in report.issues]
        assert repaired == ([("repaired", "vegetation:1")] if name == "image" else [])
        back = parquet.read(tmp_path / name)
        assert back == ls
        assert back.pointclouds.equals(ls.pointclouds)
    assert len(lidar.pointclouds) == 3 and len(lidar.pointclouds.xyz) == 1350  # README §5


def test_point_clouds_left_out_by_default_are_reported(lidar, tmp_path):
    report = parquet.write(lidar, tmp_path / "o")
    assert [(i.action, i.file_id) for i in report.issues] == [
        ("skipped", "0000.pcd"),
        ("skipped", "0001.pcd"),
        ("skipped", "0002.pcd"),
    ]
    assert not (tmp_path / "o" / "pointclouds.parquet").exists()


def test_points_join_their_paint(lidar, tmp_path):
    """pointclouds and point_segmentation join on (file_id, point_index): painted car points of
    frame 0 lie inside car:1 or car:4 (60 + 40 = 100, README §5)."""
    parquet.write(lidar, tmp_path / "o", pointclouds=True)
    o = (tmp_path / "o").as_posix()
    n = duckdb.sql(
        f"SELECT count(*) FROM '{o}/pointclouds.parquet' p JOIN '{o}/point_segmentation.parquet' s "
        "USING (file_id, sensor_id, point_index) WHERE s.category = 'car' AND file_id = '0000.pcd'"
    ).fetchall()
    assert n == [(100,)]


def test_image_polygons_in_duckdb_and_geopandas(images, tmp_path):
    parquet.write(images, tmp_path / "o")
    f = (tmp_path / "o" / "labels.parquet").as_posix()
    rows = duckdb.sql(
        f"SELECT label_id, ST_AsText(geometry), n_parts, n_holes FROM '{f}' "
        "WHERE label_type = 'polygon' ORDER BY label_id"
    ).fetchall()
    exp = EXPECTED["image_dataset"]["polygons"]
    got = {r[0]: (shapely.from_wkt(r[1]), r[2], r[3]) for r in rows}
    assert got["road:1"][0].area == exp["road:1"]["area"] == 860.0
    assert got["road:1"][1:] == (exp["road:1"]["n_parts"], exp["road:1"]["n_holes"])
    assert got["building:1"][0].area == exp["building:1"]["area"] == 500.0
    assert got["building:1"][1:] == (2, 0)
    assert got["vegetation:1"][0].area == exp["vegetation:1"]["area_even_odd"] == 200.0
    for lid, e in exp.items():
        assert list(got[lid][0].bounds) == e["bounds_xyxy"]
    gdf = gpd.read_parquet(f)
    assert gdf.geometry.dropna().is_valid.all()
    boxes = gdf[gdf.label_type == "box"].set_index("label_id")
    for lid, e in EXPECTED["image_dataset"]["boxes"].items():
        assert boxes.geometry[lid].area == pytest.approx(e["area"])


def test_lidar_cuboids_keep_world_coordinates(lidar, tmp_path):
    parquet.write(lidar, tmp_path / "o")
    f = (tmp_path / "o" / "labels.parquet").as_posix()
    rows = duckdb.sql(
        f"SELECT file_id, label_id, cuboid.cx, cuboid.cy, cuboid.cz FROM '{f}' "
        "WHERE label_type = '3d_bbox'"
    ).fetchall()
    frames = EXPECTED["lidar_sequence"]["frames"]
    assert len(rows) == 8
    for fid, lid, cx, cy, cz in rows:
        assert [cx, cy, cz] == pytest.approx(frames[fid]["cuboids"][lid]["centre_world"], abs=1e-9)


# -- the ten queries on the samples -----------------------------------------------------


@pytest.fixture(scope="module")
def sample_env(images, lidar, tmp_path_factory):
    root = (tmp_path_factory.mktemp("s") / "out").as_posix()
    parquet.write(images, root, layout="hive")
    parquet.write(lidar, root, layout="hive")
    con = duckdb.connect()
    for stmt in _here(SETUP_SQL, root).split(";"):
        if stmt.strip():
            con.execute(stmt)
    ns: dict = {}
    exec(_here(SETUP_PY, root), ns)
    return con, ns


def _run(n, env):
    con, ns = env
    sql, py = QUERIES[n]
    ns = dict(ns)
    exec(py, ns)
    duck, pol = con.sql(sql).fetchall(), ns["result"].rows()
    assert len(duck) == len(pol)
    for a, b in zip(duck, pol, strict=True):
        assert a == pytest.approx(b) if any(isinstance(x, float) for x in a) else a == b
    return duck


def test_q1_counts_match_expected(sample_env, images, lidar):
    rows = _run(1, sample_env)
    per_ds: dict[str, int] = {}
    for ds, _cat, n in rows:
        per_ds[ds] = per_ds.get(ds, 0) + n
    assert per_ds[IMAGE_ID] == EXPECTED["image_dataset"]["n_labels"] == 13
    assert per_ds[LIDAR_ID] == sum(EXPECTED["lidar_sequence"]["label_counts_by_type"].values())
    # image: boxes car:1..4 + pedestrian:1; polygons road, building, vegetation; 2 lanes;
    # 2 poles; 1 weather scene (sample_data/README.md §3)
    image_rows = {c: n for ds, c, n in rows if ds == IMAGE_ID}
    assert image_rows == {
        "car": 4,
        "pedestrian": 1,
        "road": 1,
        "building": 1,
        "vegetation": 1,
        "lane": 2,
        "pole": 2,
        "weather": 1,
    }


def test_q3_tracks_match_expected(sample_env):
    rows = _run(3, sample_env)
    lidar_tracks = {
        f"{cat}:{track}": frames
        for ds, sensor, lt, cat, track, frames, *_ in rows
        if lt == "3d_bbox"
    }
    expected = {k: len(v) for k, v in EXPECTED["lidar_sequence"]["tracks"].items() if len(v) >= 2}
    assert lidar_tracks == expected == {"car:1": 3, "pedestrian:2": 2, "cyclist:3": 2}


def test_q5_distance_is_the_norm_of_the_lidar_centre(sample_env):
    """Independent check: expected.json's centre_lidar = R_dᵀ (c - t_d), whose norm is the
    distance from the device; all eight cuboids are within 50 m."""
    rows = _run(5, sample_env)
    frames = EXPECTED["lidar_sequence"]["frames"]
    assert len(rows) == 8
    for _ds, fid, lid, _cat, dist in rows:
        assert dist == pytest.approx(
            math.dist(frames[fid]["cuboids"][lid]["centre_lidar"], (0, 0, 0)), abs=2e-6
        )


def test_q6_empty_vs_unlabelled(sample_env):
    rows = _run(6, sample_env)
    image_rows = [r[1:] for r in rows if r[0] == IMAGE_ID]
    # 000003.png reviewed and empty, 000004.png waiting (README §2); 4 labelled file|sensor rows
    assert image_rows == [("empty", 1, 0), ("labelled", 4, 4), ("unlabelled", 1, 0)]
    assert sorted(EXPECTED["image_dataset"]["unlabelled_files"]) == ["000003.png", "000004.png"]


def test_q8_polygons_with_holes(sample_env):
    assert _run(8, sample_env) == [(IMAGE_ID, "000001.png", "road:1", "road", 1, 1)]


def test_q9_paint_counts(sample_env):
    rows = _run(9, sample_env)
    for fid, frame in EXPECTED["lidar_sequence"]["frames"].items():
        got = {c: n for ds, f, c, n in rows if f == fid}
        exp = {
            ("(unpainted)" if k == "unpainted" else k): v
            for k, v in frame["paint_counts"].items()
            if v
        }
        assert got == exp


def test_q10_cuboid_sizes(sample_env):
    rows = {r[0]: r[1:] for r in _run(10, sample_env)}
    sizes: dict[str, list] = {}
    for frame in EXPECTED["lidar_sequence"]["frames"].values():
        for lid, c in frame["cuboids"].items():
            sizes.setdefault(lid.split(":")[0], []).append(c["lwh"])
    for cat, lwh in sizes.items():
        n = len(lwh)
        mean = [round(sum(v[i] for v in lwh) / n, 2) for i in range(3)]
        assert rows[cat] == (n, *mean)


def test_streamed_parse_writes_the_same_rows(tmp_path):
    """iter_label_batches (frame rows and category codes local to each batch) streamed in
    batches of 4 labels gives the same label rows as parsing the whole file at once."""
    import pyarrow.parquet as pq

    from deepen_export.parse import iter_label_batches

    src = SAMPLES / "image_dataset" / "labels.json"
    report = parquet.write_stream(iter_label_batches(src, batch_size=4), tmp_path / "stream")
    parquet.write(deepen_export.read_labels(src), tmp_path / "whole")
    assert report.written["labels"] == 13
    keys = [("file_id", "ascending"), ("sensor_id", "ascending"), ("label_id", "ascending")]

    def rows(name, table):
        t = pq.read_table(tmp_path / name / f"{table}.parquet")
        # typed attr_* columns are decided on the first batch (documented), and the parser
        # numbers frame_index within each batch: compare everything else
        t = t.drop_columns([c for c in t.column_names if c.startswith("attr_")] + ["frame_index"])
        return t.sort_by(keys if table == "labels" else keys[:2]).to_pylist()

    assert rows("stream", "labels") == rows("whole", "labels")
    assert rows("stream", "frames") == rows("whole", "frames")
    meta = pq.read_schema(tmp_path / "stream" / "labels.parquet").metadata
    assert sorted(json.loads(meta[b"deepen_export"])["categories"]) == sorted(
        {"building", "car", "lane", "pedestrian", "pole", "road", "vegetation", "weather"}
    )


def test_convert_command_writes_a_partitioned_dataset(tmp_path):
    from click.testing import CliRunner

    from deepen_export.cli import main

    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["convert", str(SAMPLES / "lidar_sequence"), "--to", "parquet", "-o", str(out),
         "-O", "layout=hive", "-O", "pointclouds=true"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        out / "labels" / f"dataset_id={LIDAR_ID}" / "label_type=3d_bbox" / "part-0.parquet"
    ).exists()
    assert (out / "pointclouds" / f"dataset_id={LIDAR_ID}" / "part-0.parquet").exists()
    assert parquet.read(out) == deepen_export.read_labels(SAMPLES / "lidar_sequence")
