"""deepen_export.arrow: LabelSet <-> Arrow, checked against hand-computed values and shapely."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from deepen_export.arrow import (
    KIND_OF_LABEL_TYPE,
    LABEL_TYPE_OF_KIND,
    TABLES,
    GeoSummary,
    from_arrow,
    label_schema,
    to_arrow,
)
from deepen_export.model import (
    KINDS,
    LABEL_KINDS,
    Boxes,
    Frames,
    LabelSet,
    Polygons,
    Polylines,
)
from tests._parquet_fixtures import E, rich


def _row(table: pa.Table, label_id: str, file_id: str | None = None) -> dict:
    rows = [
        r
        for r in table.to_pylist()
        if r["label_id"] == label_id and file_id in (None, r["file_id"])
    ]
    assert len(rows) == 1
    return rows[0]


def _geom(row: dict) -> shapely.Geometry:
    return shapely.from_wkb(row["geometry"])


def test_round_trip_every_kind_exactly():
    ls = rich()
    assert set(ls.kinds_present()) == set(KINDS)  # the fixture really has every kind
    back = from_arrow(to_arrow(ls, attribute_columns=True))
    for name in (*KINDS, "frames", "poses", "cameras"):
        assert back.table(name).equals(ls.table(name)) if name != "frames" else True, name
    assert back.frames.equals(ls.frames)
    assert back.categories == ls.categories
    assert back == ls


def test_empty_label_set_round_trip_and_schema():
    tables = to_arrow(LabelSet.empty())
    assert set(tables) == {"labels", "frames"}
    assert tables["labels"].schema.equals(label_schema(), check_metadata=False)
    assert from_arrow(tables) == LabelSet.empty()


def test_one_row_per_label_with_deepen_label_types():
    t = to_arrow(rich())["labels"]
    assert (
        t.num_rows == 17
    )  # 3 boxes + 3 polygons + 2 polylines + 2 points + 3 cuboids + 4 (3D, scene)
    from collections import Counter

    counts = dict(Counter(t.column("label_type").to_pylist()))
    assert counts == {
        "box": 3,
        "polygon": 3,
        "lane": 1,
        "polyline": 1,
        "point": 2,
        "3d_bbox": 3,
        "3d_polyline": 1,
        "3d_polygon": 1,
        "3d_point": 1,
        "scene": 1,
    }
    assert set(KIND_OF_LABEL_TYPE.values()) == set(LABEL_KINDS)
    assert all(KIND_OF_LABEL_TYPE[v] == k for k, v in LABEL_TYPE_OF_KIND.items())


def test_common_columns_nulls_and_times():
    t = to_arrow(rich())["labels"]
    a, b = _row(t, "car:1"), _row(t, "car: 2")
    assert a["track_id"] == 1 and b["track_id"] == 2
    assert a["category"] == "car" and a["file_id"] == "000.png" and a["sensor_id"] == "cam"
    assert a["frame_index"] == 0 and a["dataset_id"] == "ds1"
    # 1_700_000_000_123 ms = 2023-11-14T22:13:20.123Z (date -u -d @1700000000.123)
    assert a["create_time"].isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert a["version"] == 3
    assert b["create_time"] is None and b["version"] is None  # -1 in the model = unknown = null
    assert t.schema.field("create_time").type == pa.timestamp("ms", tz="UTC")
    assert pa.types.is_dictionary(t.schema.field("category").type)


def test_box_geometry_and_bbox():
    t = to_arrow(rich())["labels"]
    row = _row(t, "car:1")
    assert row["bbox"] == {"xmin": 10.0, "ymin": 20.0, "xmax": 110.0, "ymax": 70.0}
    g = _geom(row)
    assert g.geom_type == "Polygon" and g.area == 100 * 50
    assert shapely.is_ccw(g.exterior)  # positive shoelace area in raw coordinates


def test_polygon_with_hole_two_parts_and_orientation():
    t = to_arrow(rich())["labels"]
    holed = _geom(_row(t, "road:1"))
    # 10 x 10 square minus a 2 x 2 hole written clockwise-on-screen by the labeller
    assert holed.geom_type == "Polygon" and len(holed.interiors) == 1
    assert holed.area == 96.0
    assert shapely.is_ccw(holed.exterior) and not shapely.is_ccw(holed.interiors[0])
    two = _geom(_row(t, "road:2"))
    assert two.geom_type == "MultiPolygon" and len(two.geoms) == 2
    assert two.area == 2 * (10 * 5 / 2)
    assert _row(t, "road:2")["bbox"] == {"xmin": 20.0, "ymin": 0.0, "xmax": 50.0, "ymax": 5.0}
    assert shapely.is_valid(holed) and shapely.is_valid(two)


def test_lossless_xy_keeps_rings_as_sent():
    t = to_arrow(rich())["labels"]
    rings = _row(t, "road:1")["xy"]
    assert [[(p["x"], p["y"]) for p in r] for r in rings] == [
        [(0, 0), (10, 0), (10, 10), (0, 10)],
        [(2, 2), (2, 4), (4, 4), (4, 2)],
    ]


def test_lines_and_points():
    t = to_arrow(rich())["labels"]
    assert _geom(_row(t, "lane:1")).wkt == "LINESTRING (0 470, 100 300, 200 100)"
    assert _geom(_row(t, "lane:2")).geom_type == "MultiLineString"
    assert _geom(_row(t, "pedestrian:2")).wkt == "POINT (5 5)"
    assert _geom(_row(t, "pedestrian:3")).geom_type == "MultiPoint"
    assert _row(t, "pedestrian:3")["bbox"] == {"xmin": 1.0, "ymin": 1.0, "xmax": 3.0, "ymax": 3.0}


def test_cuboid_struct_is_float64_and_exact_near_1e5():
    t = to_arrow(rich())["labels"]
    assert all(f.type == pa.float64() for f in t.schema.field("cuboid").type)
    c = _row(t, "car:7", "0.pcd")["cuboid"]
    assert c["cx"] == E + 10.125 and c["cy"] == E - 20.5 and c["cz"] == 1.25
    assert (c["l"], c["w"], c["h"]) == (4.5, 1.9, 1.6)
    assert c["yaw"] == pytest.approx(0.6)  # q = (0, 0, sin 0.3, cos 0.3) -> yaw = 2 * 0.3
    assert _row(t, "car:7", "0.pcd")["geometry"] is None
    assert _row(t, "car:7", "0.pcd")["bbox"] is None


def test_3d_geometry_column():
    t = to_arrow(rich())["labels"]
    line = shapely.from_wkb(_row(t, "lane:9")["geometry_3d"])
    assert shapely.has_z(line) and line.geom_type == "LineString"
    assert shapely.get_coordinates(line, include_z=True)[1].tolist() == [E + 1, E + 0.5, 0.125]
    xyz = _row(t, "pedestrian:9")["xyz"]
    assert xyz == [[{"x": E + 1, "y": E + 2, "z": 3.0}, {"x": E + 4, "y": E + 5, "z": 6.0}]]


def test_attributes_map_encodings_and_typed_columns():
    tables = to_arrow(rich(), attribute_columns=True)
    t = tables["labels"]
    meta = json.loads(t.schema.metadata[b"deepen_export"])
    assert meta["attributes"]["Farbe"] == "string" and meta["attributes"]["occluded"] == "json"
    assert meta["attributes"]["mixed"] == "json"  # "x" and 3: every value as JSON text
    a = dict(_row(t, "car:1")["attributes"])
    assert a["Farbe"] == "grün" and a["occluded"] == "true" and a["tags"] == '["a","b"]'
    assert a["mixed"] == '"x"'
    assert _row(t, "pedestrian:1")["attributes"] == [("pose", "standing")]
    # typed columns: keys every label of some category has (both cars have occluded, count,
    # ratio, Farbe; the only pedestrian box has pose), one scalar type each; tags (a list)
    # and mixed (str + int) have none.
    types = {f.name: f.type for f in t.schema if f.name.startswith("attr_")}
    assert types["attr_occluded"] == pa.bool_()
    assert types["attr_count"] == pa.int64()
    assert types["attr_ratio"] == pa.float64()  # 0.5 and 2
    assert types["attr_Farbe"] == pa.string()
    assert "attr_tags" not in types and "attr_mixed" not in types
    assert _row(t, "car:1")["attr_occluded"] is True and _row(t, "car: 2")["attr_ratio"] == 2.0
    assert "attr_occluded" not in to_arrow(rich())["labels"].column_names  # off by default


def test_metadata_describes_the_table():
    tables = to_arrow(rich())
    for name, t in tables.items():
        meta = json.loads(t.schema.metadata[b"deepen_export"])
        assert meta["table"] == name and meta["schema_version"] == 1
        assert meta["categories"] == list(rich().categories)
        assert meta["cuboids_frame_of_reference"] == "world"
    assert set(tables) == set(TABLES) - {"pointclouds"}  # only with pointclouds=True


def test_frames_status_tells_empty_from_unlabelled():
    f = to_arrow(rich())["frames"].to_pylist()
    assert [r["status"] for r in f] == ["labelled", "empty", "unlabelled", "labelled", "labelled"]
    assert f[3]["width"] is None and f[0]["width"] == 640


def test_point_segmentation_one_row_per_point():
    s = to_arrow(rich())["point_segmentation"].to_pylist()
    assert len(s) == 8
    assert [r["point_index"] for r in s] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert [r["category"] for r in s][:3] == ["car", "car", None]  # -1 = unpainted = null
    assert [r["file_id"] for r in s] == ["0.pcd"] * 5 + ["1.pcd"] * 3


def test_degenerate_geometry_is_null_but_kept_losslessly():
    frames = Frames.from_columns(file_id=["a.png"], dataset_id=["d"])
    polygons = Polygons.from_columns(
        frame=[0, 0, 0],
        category=[0, 0, 0],
        label_id=["x:1", "x:2", "x:3"],
        offsets=[0, 1, 3, 4],
        ring_offsets=[0, 2, 5, 8, 11],
        # a 2-vertex "polygon"; a ring repeated twice (each covers the other); a NaN vertex
        coords=[[0, 0], [1, 1]] + [[0, 0], [1, 0], [0, 1]] * 2 + [[0, 0], [np.nan, 0], [0, 1]],
    )
    boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["x:4"], xyxy=[[np.nan, 0, 1, 1]])
    ls = LabelSet(frames=frames, categories=("x",), polygons=polygons, boxes=boxes)
    tables = to_arrow(ls)
    assert tables["labels"].column("geometry").null_count == 4
    assert from_arrow(tables) == ls


@st.composite
def _nested_squares(draw):
    """A label of 1-4 squares, some nested: the even-odd rule decides parts and holes."""
    n = draw(st.integers(1, 4))
    centres = draw(st.lists(st.sampled_from([0.0, 100.0]), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n, unique=True))
    return [(c, float(s)) for c, s in zip(centres, sizes, strict=True)]


@settings(max_examples=60, deadline=None)
@given(_nested_squares())
def test_even_odd_rule_matches_shapely_symmetric_difference(squares):
    """Reference: the even-odd fill of rings is the symmetric difference of their areas."""
    coords, ring_offsets = [], [0]
    for c, s in squares:
        coords += [[c - s, c - s], [c + s, c - s], [c + s, c + s], [c - s, c + s]]
        ring_offsets.append(len(coords))
    polygons = Polygons.from_columns(
        frame=[0],
        category=[0],
        label_id=["x:1"],
        offsets=[0, len(squares)],
        ring_offsets=ring_offsets,
        coords=coords,
    )
    ls = LabelSet(frames=Frames.from_columns(file_id=["a"]), categories=("x",), polygons=polygons)
    geom = shapely.from_wkb(to_arrow(ls)["labels"].column("geometry")[0].as_py())
    expected = shapely.Polygon()
    for c, s in squares:
        expected = shapely.symmetric_difference(expected, shapely.box(c - s, c - s, c + s, c + s))
    assert shapely.is_valid(geom)
    assert geom.area == pytest.approx(expected.area)
    assert shapely.equals(shapely.normalize(geom), shapely.normalize(expected))


def test_geo_summary_types_and_bbox():
    g = GeoSummary()
    g.update(to_arrow(rich())["labels"])
    geo = json.loads(g.metadata()[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["crs"] is None and col["encoding"] == "WKB"
    assert col["geometry_types"] == [
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
    ]
    # boxes reach x 320 (pedestrian box) and polygons x 0 .. 70, lanes y up to 470
    assert col["bbox"] == [0.0, 0.0, 330.0, 470.0]
    g3 = geo["columns"]["geometry_3d"]
    assert g3["geometry_types"] == ["LineString Z", "Polygon Z", "MultiPoint Z"]
    assert g3["bbox"] == [E, E, 0.0, E + 5, E + 5, 6.0]


def test_polylines_label_type_round_trip():
    frames = Frames.from_columns(file_id=["a"])
    pl = Polylines.from_columns(
        frame=[0, 0],
        category=[0, 0],
        label_id=["l:1", "l:2"],
        label_type=["polyline", "lane"],
        offsets=[0, 1, 2],
        part_offsets=[0, 2, 4],
        coords=[[0, 0], [1, 1], [2, 2], [3, 3]],
    )
    ls = LabelSet(frames=frames, categories=("l",), polylines=pl)
    assert from_arrow(to_arrow(ls)).polylines.label_type.tolist() == ["polyline", "lane"]


def test_parts_and_holes_counts():
    t = to_arrow(rich())["labels"]
    assert (_row(t, "road:1")["n_parts"], _row(t, "road:1")["n_holes"]) == (1, 1)
    assert (_row(t, "road:2")["n_parts"], _row(t, "road:2")["n_holes"]) == (2, 0)
    assert (_row(t, "vegetation:1")["n_parts"], _row(t, "vegetation:1")["n_holes"]) == (1, 0)
    assert (_row(t, "lane:2")["n_parts"], _row(t, "lane:2")["n_holes"]) == (2, None)
    assert _row(t, "car:1")["n_parts"] is None  # boxes: always one rectangle


def test_self_intersecting_ring_is_made_valid_in_geometry_only():
    # the bowtie of sample_data/README.md §3: even-odd fill = two triangles of 100 each
    bowtie = [[10, 30], [30, 50], [30, 30], [10, 50]]
    polygons = Polygons.from_columns(
        frame=[0], category=[0], label_id=["v:1"], offsets=[0, 1], ring_offsets=[0, 4],
        coords=bowtie,
    )  # fmt: skip
    ls = LabelSet(frames=Frames.from_columns(file_id=["a"]), categories=("v",), polygons=polygons)
    t = to_arrow(ls)["labels"]
    g = shapely.from_wkb(t.column("geometry")[0].as_py())
    assert g.is_valid and g.geom_type == "MultiPolygon" and g.area == 200.0
    assert from_arrow(to_arrow(ls)).polygons.coords.tolist() == bowtie  # kept as sent


_values = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, width=64),
    st.lists(st.integers(0, 3), max_size=2),
)


@st.composite
def label_sets(draw):
    n_frames = draw(st.integers(1, 3))
    frames = Frames.from_columns(
        file_id=[f"{i}.png" for i in range(n_frames)],
        dataset_id=[draw(st.sampled_from(["d1", "d2"]))] * n_frames,
        index=list(range(n_frames)),
    )
    n = draw(st.integers(0, 4))
    rings = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(0, 5), min_size=sum(rings), max_size=sum(rings)))
    coords = draw(
        st.lists(
            st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)),
            min_size=sum(sizes),
            max_size=sum(sizes),
        )
    )
    keys = draw(st.lists(st.sampled_from(["a", "b", "ü"]), unique=True, max_size=3))
    attrs = {k: draw(st.lists(_values, min_size=n, max_size=n)) for k in keys}
    polygons = Polygons.from_columns(
        frame=draw(st.lists(st.integers(0, n_frames - 1), min_size=n, max_size=n)),
        category=draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
        label_id=[f"x:{i}" for i in range(n)],
        offsets=np.r_[0, np.cumsum(rings)].astype(np.int64),
        ring_offsets=np.r_[0, np.cumsum(sizes)].astype(np.int64),
        coords=np.asarray(coords, dtype=np.float64).reshape(-1, 2),
        attributes=attrs,
    )
    return LabelSet(frames=frames, categories=("x", "ÿ"), polygons=polygons)


@settings(max_examples=60, deadline=None)
@given(label_sets())
def test_round_trip_property(ls):
    """Any rings (empty, degenerate, self-crossing), any attribute values, exactly back."""
    tables = to_arrow(ls, attribute_columns=True)
    assert from_arrow(tables) == ls
    geoms = shapely.from_wkb(tables["labels"].column("geometry").to_numpy(zero_copy_only=False))
    present = geoms[geoms != None]  # noqa: E711
    assert shapely.is_valid(present).all()
