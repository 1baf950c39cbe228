"""converters.parquet: round trips, reference readers (pyarrow, DuckDB, geopandas), partitions,
atomicity and streaming."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import weakref
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import converters
from converters import parquet
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, LabelSet
from tests._golden import assert_same_file
from tests._parquet_fixtures import E, rich, synthetic
from tests.test_arrow import label_sets


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["files", "hive"])
def test_round_trip_every_kind(tmp_path, layout):
    ls = rich()
    report = parquet.write(ls, tmp_path / "out", layout=layout)
    assert report.written["labels"] == 17 and report.written["frames"] == 5
    assert not report.issues
    back = parquet.read(tmp_path / "out")
    assert back == ls
    assert back.cuboids.center[0, 0] == E + 10.125  # float32 precision: see the next test
    assert back.frames.status.tolist() == ls.frames.status.tolist()  # empty vs unlabelled kept


def test_world_coordinates_keep_float64_precision(tmp_path):
    frames = Frames.from_columns(file_id=["0.pcd"], dataset_id=["d"])
    from deepen_export.model import Cuboids

    centre = [[E + 0.123456789012, E - 0.000000001, 12.3456789]]
    assert float(np.float32(centre[0][0])) != centre[0][0]  # the value really needs float64
    cub = Cuboids.from_columns(
        frame=[0],
        category=[0],
        label_id=["c:1"],
        center=centre,
        size=[[1, 2, 3]],
        quat=[[0, 0, 0, 1]],
    )
    ls = LabelSet(frames=frames, categories=("c",), cuboids=cub)
    parquet.write(ls, tmp_path / "o")
    assert parquet.read(tmp_path / "o").cuboids.center.tolist() == centre


def test_output_is_deterministic(tmp_path):
    parquet.write(rich(), tmp_path / "a")
    parquet.write(rich(), tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_registry_dispatch_and_report_file(tmp_path):
    report = converters.write(rich(), tmp_path / "o", "parquet")
    assert report.format == "parquet"
    saved = json.loads((tmp_path / "o" / "report.json").read_text())
    assert saved["written"]["labels"] == 17
    assert sorted(os.listdir(tmp_path / "o")) == [
        "cameras.parquet",
        "frames.parquet",
        "labels.parquet",
        "masks2d.parquet",
        "point_segmentation.parquet",
        "poses.parquet",
        "report.json",
    ]
    assert converters.read(tmp_path / "o", "parquet") == rich()


def test_single_labels_file_reads_alone(tmp_path):
    ls = rich()
    parquet.write(ls, tmp_path / "o")
    back = parquet.read(tmp_path / "o" / "labels.parquet")
    assert len(back) == 17  # vector labels only: no segmentation / masks in this file
    # frames come from the labels' keys: the empty and unlabelled images are not there
    assert back.frames.file_id.tolist() == ["000.png", "0.pcd", "1.pcd"]
    assert back.boxes.xyxy.tolist() == ls.boxes.xyxy.tolist()
    assert back.cuboids.center.tolist() == ls.cuboids.center.tolist()
    assert back.frames.file_id[back.cuboids.frame].tolist() == ["0.pcd", "0.pcd", "1.pcd"]


def test_pointclouds_are_reported_not_silently_dropped(tmp_path):
    from deepen_export.model import PointClouds

    pcs = PointClouds.from_columns(frame=[3], offsets=[0, 2], xyz=[[1, 2, 3], [4, 5, 6]])
    report = parquet.write(rich().replace(pointclouds=pcs), tmp_path / "o")
    assert [(i.action, i.file_id, i.kind) for i in report.issues] == [
        ("skipped", "0.pcd", "pointclouds")
    ]


# -- reference readers ------------------------------------------------------------------


def test_pyarrow_reads_schema_and_geo_metadata(tmp_path):
    parquet.write(rich(), tmp_path / "o")
    schema = pq.read_schema(tmp_path / "o" / "labels.parquet")
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["columns"]["geometry"]["crs"] is None
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    meta = json.loads(schema.metadata[b"deepen_export"])
    assert meta["categories"] == list(rich().categories) and meta["table"] == "labels"
    assert schema.field("cuboid").type.field("cx").type == pa.float64()
    assert (
        pq.ParquetFile(tmp_path / "o" / "labels.parquet")
        .metadata.row_group(0)
        .column(0)
        .compression
        == "ZSTD"
    )


def test_duckdb_reads_file_with_geometry(tmp_path):
    parquet.write(rich(), tmp_path / "o")
    f = (tmp_path / "o" / "labels.parquet").as_posix()
    con = duckdb.connect()
    # crs: null is accepted by the installed DuckDB and gives a GEOMETRY without CRS
    assert con.sql(
        f"SELECT DISTINCT typeof(geometry) FROM '{f}' WHERE geometry IS NOT NULL"
    ).fetchall() == [("GEOMETRY",)]
    # ST_AsText is built in; area and the like need the spatial extension (not offline here)
    wkt = con.sql(f"SELECT ST_AsText(geometry) FROM '{f}' WHERE label_id = 'road:1'").fetchall()
    assert shapely.from_wkt(wkt[0][0]).area == 96.0  # 10 x 10 minus the 2 x 2 hole
    rows = con.sql(
        f"SELECT label_type, count(*) FROM '{f}' GROUP BY ALL ORDER BY label_type"
    ).fetchall()
    assert dict(rows)["box"] == 3 and dict(rows)["3d_bbox"] == 3
    cx = con.sql(
        f"SELECT cuboid.cx FROM '{f}' WHERE label_id = 'car:7' ORDER BY file_id"
    ).fetchall()
    assert cx == [(E + 10.125,), (E + 11.0,)]
    occluded = con.sql(f"SELECT attributes['occluded'] FROM '{f}' WHERE label_id = 'car:1'")
    assert occluded.fetchall() == [("true",)]


def test_duckdb_reads_hive_folder(tmp_path):
    parquet.write(rich("ds1"), tmp_path / "o", layout="hive")
    parquet.write(rich("ds2"), tmp_path / "o", layout="hive")
    g = (tmp_path / "o" / "labels" / "**" / "*.parquet").as_posix()
    rows = duckdb.sql(
        f"SELECT dataset_id, count(*) FROM read_parquet('{g}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [("ds1", 17), ("ds2", 17)]
    boxes = duckdb.sql(
        f"SELECT count(*) FROM '{g}' WHERE label_type = 'box' AND dataset_id = 'ds2'"
    ).fetchall()
    assert boxes == [(3,)]
    wkt = duckdb.sql(
        f"SELECT ST_AsText(geometry) FROM '{g}' WHERE dataset_id = 'ds2' AND label_id = 'lane:1'"
    ).fetchall()
    assert wkt == [("LINESTRING (0 470, 100 300, 200 100)",)]


def test_geopandas_reads_valid_geometries(tmp_path):
    parquet.write(rich(), tmp_path / "o")
    gdf = gpd.read_parquet(tmp_path / "o" / "labels.parquet")
    assert gdf.crs is None  # crs: null = undefined, not lon/lat
    geoms = gdf.geometry[gdf.geometry.notna()]
    assert len(geoms) == 10  # 3 boxes + 3 polygons + 2 lines + 2 points
    assert geoms.is_valid.all()
    road = gdf[gdf.label_id == "road:1"].geometry.iloc[0]
    assert road.area == 96.0
    assert set(gdf.label_type[gdf.geometry.isna()]) == {
        "3d_bbox",
        "3d_polyline",
        "3d_polygon",
        "3d_point",
        "scene",
    }


def test_pyarrow_dataset_filters_by_partition(tmp_path):
    parquet.write(rich("ds1"), tmp_path / "o", layout="hive")
    parquet.write(rich("ds2"), tmp_path / "o", layout="hive")
    dataset = pads.dataset(tmp_path / "o" / "labels", partitioning="hive", format="parquet")
    expr = (pads.field("label_type") == "polygon") & (pads.field("dataset_id") == "ds1")
    fragments = list(dataset.get_fragments(filter=expr))
    assert [Path(f.path).relative_to(tmp_path / "o").as_posix() for f in fragments] == [
        "labels/dataset_id=ds1/label_type=polygon/part-0.parquet"
    ]
    t = dataset.to_table(filter=expr)
    assert sorted(t.column("label_id").to_pylist()) == ["road:1", "road:2", "vegetation:1"]


# -- partitions and atomicity ------------------------------------------------------------


def _fewer_labels(ls: LabelSet) -> LabelSet:
    """Only the boxes of ls: the rewrite must drop ds1's other partitions."""
    return LabelSet(frames=ls.frames, categories=ls.categories, boxes=ls.boxes[[0]])


def test_overwrite_one_dataset_keeps_the_others(tmp_path):
    out = tmp_path / "o"
    parquet.write(rich("ds1"), out, layout="hive")
    parquet.write(rich("ds2"), out, layout="hive")
    before = _tree(out)
    ds2_mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*dataset_id=ds2*/**/*.parquet")}
    parquet.write(_fewer_labels(rich("ds1")), out, layout="hive")
    after = _tree(out)
    assert {k: v for k, v in after.items() if "ds2" in k} == {
        k: v for k, v in before.items() if "ds2" in k
    }
    assert {p: p.stat().st_mtime_ns for p in ds2_mtimes} == ds2_mtimes
    ds1 = sorted(k for k in after if "dataset_id=ds1" in k)
    assert ds1 == [
        "frames/dataset_id=ds1/part-0.parquet",
        "labels/dataset_id=ds1/label_type=box/part-0.parquet",
    ]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    back = parquet.read(out, dataset_ids=["ds1"])
    assert back == _fewer_labels(rich("ds1"))
    assert parquet.read(out, dataset_ids=["ds2"]) == rich("ds2")


def test_read_hive_of_two_datasets_concatenates_in_dataset_order(tmp_path):
    parquet.write(rich("b"), tmp_path / "o", layout="hive")
    parquet.write(rich("a"), tmp_path / "o", layout="hive")
    back = parquet.read(tmp_path / "o")
    assert back == LabelSet.concat([rich("a"), rich("b")])


@pytest.mark.parametrize("layout", ["files", "hive"])
def test_failed_write_leaves_output_unchanged(tmp_path, monkeypatch, layout):
    out = tmp_path / "o"
    parquet.write(rich("ds1"), out, layout=layout)
    before = _tree(out)

    calls = {"n": 0}
    real = parquet._Sink._write

    def boom(self, name, rel, table):
        calls["n"] += 1
        if calls["n"] == 3:  # after some files were already written to the staging area
            raise OSError("disk full")
        real(self, name, rel, table)

    monkeypatch.setattr(parquet._Sink, "_write", boom)
    with pytest.raises(OSError, match="disk full"):
        parquet.write(rich("ds1"), out, layout=layout)
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


def test_hive_needs_a_dataset_id(tmp_path):
    ls = dataclasses.replace(
        rich(), frames=Frames.from_columns(file_id=list(rich().frames.file_id))
    )
    with pytest.raises(ConversionError, match="dataset_id"):
        parquet.write(ls, tmp_path / "o", layout="hive")
    parquet.write(ls, tmp_path / "o", layout="hive", dataset_id="given")
    assert set(parquet.read(tmp_path / "o").frames.dataset_id) == {"given"}


def test_dataset_id_cannot_escape_the_folder(tmp_path):
    parquet.write(rich("../../evil"), tmp_path / "o", layout="hive")
    assert not (tmp_path / "evil").exists()
    assert (tmp_path / "o" / "frames" / "dataset_id=..%2F..%2Fevil" / "part-0.parquet").exists()
    assert parquet.read(tmp_path / "o") == rich("../../evil")


# -- streaming ---------------------------------------------------------------------------


def _batches(n: int, size: int):
    """Disjoint frames per batch, as a streaming parser yields them."""
    for i in range(n):
        ls = synthetic(size, seed=i, n_frames=10, dataset_id="big")
        frames = dataclasses.replace(
            ls.frames,
            file_id=np.asarray([f"b{i}/{f}" for f in ls.frames.file_id], dtype=object),
        )
        yield ls.replace(frames=frames)


def test_write_stream_equals_the_concatenation(tmp_path):
    report = parquet.write_stream(_batches(4, 400), tmp_path / "o")
    assert report.written["labels"] == 1600
    back = parquet.read(tmp_path / "o")
    assert back == LabelSet.concat(list(_batches(4, 400)))
    meta = pq.ParquetFile(tmp_path / "o" / "labels.parquet").metadata
    assert meta.num_row_groups == 4  # one per batch: nothing was held back


def test_write_stream_holds_one_batch_at_a_time(tmp_path):
    refs: list[weakref.ref] = []

    def gen():
        for b in _batches(5, 200):
            gc.collect()
            alive = sum(r() is not None for r in refs)
            assert alive == 0, f"{alive} earlier batch(es) still referenced"
            refs.append(weakref.ref(b.boxes))
            yield b

    parquet.write_stream(gen(), tmp_path / "o", layout="hive")
    assert len(refs) == 5


def test_write_stream_reports_attribute_type_change(tmp_path):
    frames = Frames.from_columns(file_id=["a"], dataset_id=["d"])

    def batch(value, fid):
        f = dataclasses.replace(frames, file_id=np.asarray([fid], dtype=object))
        boxes = Boxes.from_columns(
            frame=[0], category=[0], label_id=[f"x:{fid}"], xyxy=[[0, 0, 1, 1]],
            attributes={"k": [value]},
        )  # fmt: skip
        return LabelSet(frames=f, categories=("x",), boxes=boxes)

    report = parquet.write_stream([batch("yes", "a"), batch(True, "b")], tmp_path / "o")
    assert [(i.action, i.file_id, i.label_id) for i in report.issues] == [("changed", "b", "x:b")]
    back = parquet.read(tmp_path / "o")
    assert back.boxes.attributes["k"].tolist() == ["yes", "true"]


def test_write_stream_deduplicates_repeated_frames(tmp_path):
    a = rich()
    b = LabelSet(frames=a.frames, categories=a.categories, boxes=a.boxes)
    report = parquet.write_stream([a, b], tmp_path / "o")
    assert report.written["frames"] == 5
    assert report.written["labels"] == 17 + 3


def test_geometry_metadata_after_streaming(tmp_path):
    parquet.write_stream(_batches(2, 100), tmp_path / "o")
    geo = json.loads(pq.read_schema(tmp_path / "o" / "labels.parquet").metadata[b"geo"])
    assert geo["columns"]["geometry"]["geometry_types"] == ["Polygon"]
    gdf = gpd.read_parquet(tmp_path / "o" / "labels.parquet")
    bbox = pq.read_table(tmp_path / "o" / "labels.parquet", columns=["bbox"]).column("bbox")
    expected = np.stack(
        [bbox.combine_chunks().field(k) for k in ("xmin", "ymin", "xmax", "ymax")], 1
    )
    has = gdf.geometry.notna().to_numpy()
    assert np.array_equal(bbox.is_valid().to_numpy(zero_copy_only=False), has)
    assert np.array_equal(gdf.geometry.bounds.to_numpy()[has], expected[has])
    assert shapely.is_valid(gdf.geometry.values[has]).all()


# -- schema golden -----------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "sample_data" / "golden" / "parquet"


def _schema_doc(schema: pa.Schema) -> list[dict]:
    out = []
    for f in schema:
        entry = {"name": f.name, "type": str(f.type), "nullable": f.nullable}
        if f.metadata and b"encoding" in f.metadata:
            entry["encoding"] = json.loads(f.metadata[b"encoding"])["encoding"]
        out.append(entry)
    return out


def _written_schemas(root: Path) -> dict:
    doc = {}
    for name in ("labels", "frames", "point_segmentation", "masks2d", "poses", "cameras"):
        schema = pq.read_schema(root / f"{name}.parquet")
        doc[name] = _schema_doc(schema)
    labels = pq.read_schema(root / "labels.parquet").metadata
    doc["geo"] = json.loads(labels[b"geo"])
    meta = json.loads(labels[b"deepen_export"])
    meta.pop("tool")
    doc["deepen_export"] = meta
    return doc


def test_schema_matches_golden(tmp_path):
    """Arrow schemas as pyarrow reads them back (not bytes) plus the metadata of the fixture.
    Regenerate with DEEPEN_UPDATE_GOLDEN=1 and check the diff by hand (see the README there)."""
    parquet.write(rich(), tmp_path / "o")
    doc = _written_schemas(tmp_path / "o")
    assert_same_file(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", GOLDEN / "schema.json")


GEO_SCHEMA = {
    # GeoParquet 1.1.0 file metadata as specified in format-specs/geoparquet.md (written down
    # from the spec text in formats.md §10.1; the JSON schema file itself is not vendored)
    "type": "object",
    "required": ["version", "primary_column", "columns"],
    "properties": {
        "version": {"const": "1.1.0"},
        "primary_column": {"type": "string", "minLength": 1},
        "columns": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["encoding", "geometry_types"],
                "properties": {
                    "encoding": {"enum": ["WKB", "point", "linestring", "polygon", "multipoint",
                                          "multilinestring", "multipolygon"]},
                    "geometry_types": {
                        "type": "array",
                        "uniqueItems": True,
                        "items": {
                            "pattern": "^(GeometryCollection|(Multi)?(Point|LineString|Polygon))( Z)?$"
                        },
                    },
                    "crs": {"type": ["object", "null"]},
                    "edges": {"enum": ["planar", "spherical"]},
                    "orientation": {"const": "counterclockwise"},
                    "bbox": {"type": "array", "items": {"type": "number"},
                             "minItems": 4, "maxItems": 6},
                    "covering": {"type": "object"},
                },
            },
        },
    },
}  # fmt: skip


def test_geo_metadata_follows_geoparquet_1_1(tmp_path):
    import jsonschema

    parquet.write(rich(), tmp_path / "o")
    geo = json.loads(pq.read_schema(tmp_path / "o" / "labels.parquet").metadata[b"geo"])
    jsonschema.validate(geo, GEO_SCHEMA)
    assert geo["primary_column"] in geo["columns"]
    cover = geo["columns"]["geometry"]["covering"]["bbox"]
    schema = pq.read_schema(tmp_path / "o" / "labels.parquet")
    bbox_type = schema.field("bbox").type
    # spec: covering struct at root, fields xmin, ymin, xmax, ymax in that order, all double
    assert [f.name for f in bbox_type] == ["xmin", "ymin", "xmax", "ymax"]
    assert all(f.type == pa.float64() for f in bbox_type)
    assert {k: v[0] for k, v in cover.items()} == dict.fromkeys(
        ("xmin", "ymin", "xmax", "ymax"), "bbox"
    )
    assert geo["columns"]["geometry_3d"]["bbox"][2] == 0.0  # 6 values: zmin third


@settings(max_examples=15, deadline=None)
@given(ls=label_sets(), layout=st.sampled_from(["files", "hive"]))
def test_round_trip_property_through_files(ls, layout, tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "o"
    parquet.write(ls, out, layout=layout)
    back = parquet.read(out)
    if layout == "files" or len(ls.polygons):
        assert back == ls
    else:  # a hive dataset without labels keeps its frames but not the empty table's keys
        assert back.frames.equals(ls.frames) and len(back) == 0


def test_numpy_scalar_attributes_are_stored_as_plain_numbers(tmp_path):
    import numpy as np

    from deepen_export.model import Boxes, Frames, LabelSet

    vals = np.empty(2, dtype=object)
    vals[:] = [np.int64(3), np.float32(0.5)]
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"]),
        categories=("car",),
        boxes=Boxes.from_columns(
            frame=[0, 0],
            category=[0, 0],
            label_id=["car:1", "car:2"],
            xyxy=[[0, 0, 1, 1]] * 2,
            attributes={"n": vals},
        ),
    )
    parquet.write(ls, tmp_path / "out")
    back = parquet.read(tmp_path / "out")
    assert back.boxes.attributes["n"].tolist() == [3, 0.5]
