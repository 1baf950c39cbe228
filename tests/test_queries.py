"""Run the ten queries of the README's Parquet section (DuckDB SQL and Polars, as written there) on a
partitioned dataset and check their answers against values worked out by hand."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from converters import parquet
from tests._parquet_fixtures import rich

DOC = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _sections() -> tuple[str, str, dict[int, tuple[str, str]]]:
    text = DOC.read_text(encoding="utf-8").split("### Ten queries", 1)[1].split("\n## ", 1)[0]
    head, *parts = re.split(r"^#### (\d+)\. .*$", text, flags=re.M)
    setup_sql, setup_py = _blocks(head, "sql")[0], _blocks(head, "python")[0]
    queries = {}
    for num, body in zip(parts[::2], parts[1::2], strict=True):
        (sql,), (py,) = _blocks(body, "sql"), _blocks(body, "python")
        queries[int(num)] = (sql, py)
    return setup_sql, setup_py, queries


SETUP_SQL, SETUP_PY, QUERIES = _sections()


def _two_datasets():
    ds1 = rich("ds1")
    # ds2: the three camera frames of the fixture with their boxes only
    cams = rich("ds2").select_frames([True, True, True, False, False])
    ds2 = cams.without(*[k for k, _ in cams if k != "boxes"])
    return ds1, ds2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "out"
    for ls in _two_datasets():
        parquet.write(ls, out, layout="hive")
    return out.as_posix()


def _here(code: str, root: str) -> str:
    return code.replace("'out/", f"'{root}/").replace('"out/', f'"{root}/')


@pytest.fixture(scope="module")
def con(root):
    c = duckdb.connect()
    for stmt in _here(SETUP_SQL, root).split(";"):
        if stmt.strip():
            c.execute(stmt)
    return c


@pytest.fixture(scope="module")
def polars_ns(root):
    ns: dict = {}
    exec(_here(SETUP_PY, root), ns)
    return ns


def _run(n: int, con, polars_ns) -> tuple[list[tuple], list[tuple]]:
    sql, py = QUERIES[n]
    duck = con.sql(sql).fetchall()
    ns = dict(polars_ns)
    exec(py, ns)
    return duck, ns["result"].rows()


def test_the_doc_has_ten_queries():
    assert sorted(QUERIES) == list(range(1, 11))


def _both(n, con, polars_ns):
    duck, pol = _run(n, con, polars_ns)
    assert duck == pol, f"query {n}: DuckDB and Polars disagree"
    return duck


def test_1_labels_per_category_per_dataset(con, polars_ns):
    # ds1: car = 2 boxes + 2 cuboids (car:7 in two frames); pedestrian = 1 box + 2 points
    # + 1 cuboid + 1 3D point; lane = 2 polylines + 1 3D polyline; road = 2 polygons + 1 3D
    # polygon; vegetation = 1 polygon; Straße ✓ = 1 scene. ds2: its 3 boxes.
    assert _both(1, con, polars_ns) == [
        ("ds1", "pedestrian", 5),
        ("ds1", "car", 4),
        ("ds1", "lane", 3),
        ("ds1", "road", 3),
        ("ds1", "Straße ✓", 1),
        ("ds1", "vegetation", 1),
        ("ds2", "car", 2),
        ("ds2", "pedestrian", 1),
    ]


def test_2_box_size_distribution(con, polars_ns):
    # car:1 100 x 50 = 5000 px² (medium), car: 2 4 x 8 = 32 (small), pedestrian:1 20 x 60 = 1200
    # (medium); each once in ds1 and once in ds2
    assert _both(2, con, polars_ns) == [
        ("car", "medium", 2, 100.0, 50.0),
        ("car", "small", 2, 4.0, 8.0),
        ("pedestrian", "medium", 2, 20.0, 60.0),
    ]


def test_3_tracks_in_two_frames(con, polars_ns):
    # car:7 is the only label id in two LiDAR frames (0.pcd, 1.pcd)
    assert _both(3, con, polars_ns) == [("ds1", "lidar", "3d_bbox", "car", 7, 2, 0, 1)]


def test_4_labels_per_labeller_and_stage(con, polars_ns):
    # the boxes: car:1 and car: 2 by ann (QA), pedestrian:1 by bob (L1), in both datasets
    assert _both(4, con, polars_ns) == [("ann@x.com", "QA", 4), ("bob@x.com", "L1", 2)]


def test_5_cuboids_within_50_m(con, polars_ns):
    # 0.pcd: ego at (E+10, E-20, 0); car:7 at (E+10.125, E-20.5, 1.25):
    #   sqrt(0.125² + 0.5² + 1.25²) = sqrt(1.828125) = 1.352081;
    #   pedestrian:8 at (E+60, E, 0.9): sqrt(50² + 20² + 0.9²) = 53.86 > 50, left out.
    # 1.pcd: ego at (E+12, E-20, 0); car:7 at (E+11, E-20, 1.25): sqrt(1 + 1.5625) = 1.600781
    duck, pol = _run(5, con, polars_ns)
    for rows in (duck, pol):
        assert [r[:4] for r in rows] == [
            ("ds1", "0.pcd", "car:7", "car"),
            ("ds1", "1.pcd", "car:7", "car"),
        ]
        assert [r[4] for r in rows] == pytest.approx([1.3520817, 1.6007811], abs=1e-6)


def test_6_empty_vs_unlabelled_frames(con, polars_ns):
    # ds1: 000.png, 0.pcd, 1.pcd labelled; 001.png reviewed empty; 002.png not labelled yet.
    # ds2: the three camera frames only.
    assert _both(6, con, polars_ns) == [
        ("ds1", "empty", 1, 0),
        ("ds1", "labelled", 3, 3),
        ("ds1", "unlabelled", 1, 0),
        ("ds2", "empty", 1, 0),
        ("ds2", "labelled", 1, 1),
        ("ds2", "unlabelled", 1, 0),
    ]


def test_7_attribute_value_counts(con, polars_ns):
    rows = _both(7, con, polars_ns)
    counts = {(k, v): n for k, v, n in rows}
    # boxes (x2 datasets): occluded true/false, Farbe grün/blau, count 1/2, ratio 0.5/2,
    # tags ["a","b"], mixed "x"/3, pose standing = 12 pairs; polygons: surface asphalt/gravel;
    # cuboids: moving yes (car:7 twice) / no; scene: wetter = 17 pairs
    assert len(rows) == 17
    assert counts[("moving", "yes")] == 2 and counts[("moving", "no")] == 1
    assert counts[("occluded", "true")] == 2 and counts[("Farbe", "grün")] == 2
    assert counts[("mixed", '"x"')] == 2 and counts[("tags", '["a","b"]')] == 2
    assert counts[("wetter", "sonnig ☀")] == 1 and counts[("surface", "asphalt")] == 1


def test_8_polygons_with_holes(con, polars_ns):
    # road:1 is a 10 x 10 square with a 2 x 2 hole; road:2 has two parts and no hole
    assert _both(8, con, polars_ns) == [("ds1", "000.png", "road:1", "road", 1, 1)]


def test_9_points_per_class_per_frame(con, polars_ns):
    # 0.pcd: car car (unpainted) road vegetation; 1.pcd: road road (unpainted)
    assert _both(9, con, polars_ns) == [
        ("ds1", "0.pcd", "car", 2),
        ("ds1", "0.pcd", "(unpainted)", 1),
        ("ds1", "0.pcd", "road", 1),
        ("ds1", "0.pcd", "vegetation", 1),
        ("ds1", "1.pcd", "road", 2),
        ("ds1", "1.pcd", "(unpainted)", 1),
    ]


def test_10_mean_cuboid_size(con, polars_ns):
    # car:7 4.5 x 1.9 x 1.6 in both frames; pedestrian:8 0.6 x 0.6 x 1.8
    assert _both(10, con, polars_ns) == [
        ("car", 2, 4.5, 1.9, 1.6),
        ("pedestrian", 1, 0.6, 0.6, 1.8),
    ]
