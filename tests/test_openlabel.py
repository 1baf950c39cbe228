"""OpenLABEL 1.0.0 writer and reader, checked with the ASAM schema and VCD's own transform code.

Reference tools: ``vcd.schema.openlabel_schema`` (the OpenLABEL 1.0.0 JSON schema shipped by the
VCD library) validated with jsonschema's Draft 7 validator, and ``vcd.scl.Scene.get_transform``
(VCD's coordinate-system chain) for the meaning of our poses.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from vcd import core, scl
from vcd.schema import openlabel_schema

from converters import openlabel
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, LabelSet
from tests._golden import assert_same_tree

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
LIDAR_FILE = "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6.json"
IMAGE_FILE = "Xq7Lm2PzR4tN8vB1cD6fG3hJ.json"


def validate(path: Path) -> dict:
    doc = json.loads(path.read_text())
    errors = list(jsonschema.Draft7Validator(openlabel_schema).iter_errors(doc))
    assert errors == []
    return doc["openlabel"]


def test_lidar_sequence_schema_objects_and_values(tmp_path: Path, lidar: LabelSet) -> None:
    report = openlabel.write(lidar, tmp_path / "ol", on_unsupported="drop")
    doc = validate(tmp_path / "ol" / LIDAR_FILE)
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    objs = {o["name"]: (uid, o) for uid, o in doc["objects"].items()}
    # one object per label id; frame intervals are the closed runs of its frames
    for label_id, frames in exp["tracks"].items():
        uid, obj = objs[label_id]
        idx = [exp["frame_order"].index(f) for f in frames]
        assert obj["frame_intervals"] == [{"frame_start": min(idx), "frame_end": max(idx)}]
        assert obj["type"] == label_id.split(":")[0]
    assert list(doc["objects"]) == ["0", "1", "2", "3", "4"]
    # car:1 in frame 0: quaternion (0, 0, sin 12.5 deg, cos 12.5 deg), l w h 4.5 1.9 1.5
    uid = objs["car:1"][0]
    data = doc["frames"]["0"]["objects"][uid]["object_data"]
    s, c = math.sin(math.radians(12.5)), math.cos(math.radians(12.5))
    np.testing.assert_allclose(
        data["cuboid"][0]["val"], [81512.0, 50302.0, 34.05, 0, 0, s, c, 4.5, 1.9, 1.5], atol=1e-9
    )
    assert data["cuboid"][0]["coordinate_system"] == "world"
    # its camera_0 box [70.02, 58.95, 96.08, 74.66] is centre-based: (83.05, 66.805, 26.06, 15.71)
    np.testing.assert_allclose(data["bbox"][0]["val"], [83.05, 66.805, 26.06, 15.71], atol=1e-9)
    assert data["bbox"][0]["coordinate_system"] == "camera_0"
    assert data["cuboid"][0]["attributes"]["text"] == [
        {"name": "occlusion", "val": "none"},
        {"name": "state", "val": "moving"},
    ]
    # streams and calibration
    cam0 = doc["streams"]["camera_0"]["stream_properties"]["intrinsics_pinhole"]
    assert cam0["camera_matrix"] == [100.0, 0, 80.0, 0, 0, 100.0, 60.0, 0, 0, 0, 1.0, 0]
    cam1 = doc["streams"]["camera_1"]["stream_properties"]["intrinsics_pinhole"]
    assert cam1["distortion_coeffs"] == [-0.05, 0, 0, 0, 0, 0]
    props = doc["frames"]["1"]["frame_properties"]
    assert props["streams"]["lidar"]["uri"] == "0001.pcd"
    assert props["streams"]["camera_0"]["uri"] == "images/camera_0/0001.png"
    assert props["timestamp"] == pytest.approx(1717236000.1)
    assert [i.kind for i in report] == ["point_segmentation"] * 3


def test_vcd_reads_our_coordinate_systems(tmp_path: Path, lidar: LabelSet) -> None:
    # VCD chains pose_wrt_parent and per-frame transforms; the world -> camera_0 / lidar
    # transforms it builds must move each cuboid centre to expected.json's values.
    openlabel.write(lidar, tmp_path / "ol", on_unsupported="drop")
    vcd = core.OpenLABEL()
    vcd.load_from_file(str(tmp_path / "ol" / LIDAR_FILE))
    scene = scl.Scene(vcd)
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    for f, file_id in enumerate(exp["frame_order"]):
        to_cam, _ = scene.get_transform("world", "camera_0", frame_num=f)
        to_lidar, _ = scene.get_transform("world", "lidar", frame_num=f)
        for c in exp["frames"][file_id]["cuboids"].values():
            p = np.r_[c["centre_world"], 1.0]
            np.testing.assert_allclose((to_lidar @ p)[:3], c["centre_lidar"], atol=2e-6)
            np.testing.assert_allclose(
                (to_cam @ p)[:3], c["kitti_camera_0"]["centre_cam"], atol=2e-6
            )


def test_lidar_round_trip_and_lidar_frame(tmp_path: Path, lidar: LabelSet) -> None:
    openlabel.write(lidar, tmp_path / "ol", on_unsupported="drop")
    back = openlabel.read(tmp_path / "ol")
    assert back.categories == lidar.categories
    assert back.cuboids.label_id.tolist() == lidar.cuboids.label_id.tolist()
    np.testing.assert_allclose(back.cuboids.center, lidar.cuboids.center)
    np.testing.assert_allclose(back.cuboids.size, lidar.cuboids.size)
    dots = np.abs(np.sum(back.cuboids.quat * lidar.cuboids.quat, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-12)
    np.testing.assert_allclose(back.boxes.xyxy, lidar.boxes.xyxy, atol=1e-9)
    np.testing.assert_allclose(back.polylines3d.coords, lidar.polylines3d.coords)
    assert back.cuboids.attributes["state"].tolist() == lidar.cuboids.attributes["state"].tolist()
    np.testing.assert_allclose(back.poses.position, lidar.poses.position)
    cams = back.cameras
    ref = lidar.cameras
    assert sorted(cams.sensor_id.tolist()) == sorted(ref.sensor_id.tolist())
    np.testing.assert_allclose(
        np.sort(cams.position, axis=0), np.sort(ref.position, axis=0), atol=1e-6
    )
    # cuboids in each frame's LiDAR frame
    openlabel.write(lidar, tmp_path / "ol2", on_unsupported="drop", cuboid_frame="lidar")
    doc = validate(tmp_path / "ol2" / LIDAR_FILE)
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    uid = next(u for u, o in doc["objects"].items() if o["name"] == "cyclist:3")
    val = doc["frames"]["1"]["objects"][uid]["object_data"]["cuboid"][0]["val"]
    c = exp["frames"]["0001.pcd"]["cuboids"]["cyclist:3"]
    np.testing.assert_allclose(val[:3], c["centre_lidar"], atol=2e-6)
    yaw = 2 * math.atan2(val[5], val[6])
    assert yaw == pytest.approx(c["yaw_lidar_rad"], abs=2e-6)


def test_image_dataset_round_trip(tmp_path: Path, images: LabelSet) -> None:
    openlabel.write(images, tmp_path / "ol", uids="uuid", indent=1)
    doc = validate(tmp_path / "ol" / IMAGE_FILE)
    uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert all(uuid_re.match(u) for u in doc["objects"])
    # road:1 is one polygon with a hole: two closed poly2d rings, absolute mode
    road = next(u for u, o in doc["objects"].items() if o["name"] == "road:1")
    rings = next(
        f["objects"][road]["object_data"]["poly2d"]
        for f in doc["frames"].values()
        if road in f.get("objects", {})
    )
    assert [r["val"][:4] for r in rings] == [[2, 20, 42, 20], [12, 26, 22, 26]]
    assert all(r["closed"] and r["mode"] == "MODE_POLY2D_ABSOLUTE" for r in rings)
    assert doc["contexts"]["0"]["name"] == "weather:1"
    back = openlabel.read(tmp_path / "ol")
    assert set(back.categories) == set(images.categories)
    for kind in ("boxes", "polygons", "polylines", "points", "scenes"):
        a, b = images.table(kind), back.table(kind)
        order_a, order_b = np.argsort(a.label_id), np.argsort(b.label_id)
        assert a.label_id[order_a].tolist() == b.label_id[order_b].tolist(), kind
        names_a = [images.categories[c] for c in a.category[order_a]]
        names_b = [back.categories[c] for c in b.category[order_b]]
        assert names_a == names_b
        if kind != "scenes":
            ta, tb = a.take(order_a), b.take(order_b)
            np.testing.assert_allclose(
                tb.coords if kind != "boxes" else tb.xyxy, ta.coords if kind != "boxes" else ta.xyxy
            )
        fa = [(images.frames.file_id[f], images.frames.sensor_id[f]) for f in a.frame[order_a]]
        fb = [(back.frames.file_id[f], back.frames.sensor_id[f]) for f in b.frame[order_b]]
        assert fa == fb
    assert back.scenes.attributes["weather"].tolist() == ["rain"]


def test_non_finite_dropped(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], sensor_id=["sensor1"]),
        categories=("car",),
        boxes=Boxes.from_columns(
            frame=[0, 0], category=[0, 0], label_id=["car:1", "car:2"],
            xyxy=[[0, 0, 1, 1], [np.nan, 0, 1, 1]],
        ),
    )  # fmt: skip
    report = openlabel.write(ls, tmp_path / "ol")
    assert [(i.action, i.label_id) for i in report] == [("dropped", "car:2")]
    doc = validate(tmp_path / "ol/openlabel.json")
    assert [o["name"] for o in doc["objects"].values()] == ["car:1"]


def test_golden_files(tmp_path: Path, lidar: LabelSet, images: LabelSet) -> None:
    openlabel.write(lidar, tmp_path / "lidar_sequence", on_unsupported="drop", indent=1)
    openlabel.write(images, tmp_path / "image_dataset", indent=1)
    for name in ("lidar_sequence", "image_dataset"):
        assert_same_tree(tmp_path / name, SAMPLE / "golden/openlabel" / name)
    validate(SAMPLE / "golden/openlabel/lidar_sequence" / LIDAR_FILE)
    validate(SAMPLE / "golden/openlabel/image_dataset" / IMAGE_FILE)
    back = openlabel.read(SAMPLE / "golden/openlabel/lidar_sequence")
    np.testing.assert_allclose(back.cuboids.center, lidar.cuboids.center)


def test_to_dict_and_from_dict_are_the_files_without_the_folder(
    tmp_path: Path, lidar: LabelSet
) -> None:
    # the pure functions hold the whole format: write is to_dicts plus the files, read is
    # from_dict per file; the document passes the schema and VCD loads it from memory
    from deepen_export.report import Report

    report = openlabel.write(lidar, tmp_path / "ol", on_unsupported="drop")
    kept = lidar.without("point_segmentation")
    doc = openlabel.to_dict(kept, Report("openlabel"))
    assert json.loads((tmp_path / "ol" / LIDAR_FILE).read_text()) == doc
    assert list(jsonschema.Draft7Validator(openlabel_schema).iter_errors(doc)) == []
    vcd = core.OpenLABEL()
    vcd.data = doc
    assert sorted(o["name"] for o in vcd.get_objects().values()) == sorted(
        set(lidar.cuboids.label_id.tolist())
        | set(lidar.boxes.label_id.tolist())
        | set(lidar.polylines3d.label_id.tolist())
    )
    assert report.written["objects"] == len(doc["openlabel"]["objects"])
    back, read = openlabel.from_dict(doc), openlabel.read(tmp_path / "ol")
    assert back.equals(read)
    np.testing.assert_allclose(back.cuboids.center, lidar.cuboids.center)


def test_to_dict_of_several_datasets_and_of_nothing() -> None:
    frames = Frames.from_columns(file_id=["a.png", "b.png"], dataset_id=["d1", "d2"])
    boxes = Boxes.from_columns(frame=[0, 1], category=[0, 0], label_id=["car:1", "car:2"],
                               xyxy=[[0, 0, 2, 2], [1, 1, 3, 3]])  # fmt: skip
    ls = LabelSet(frames=frames, categories=("car",), boxes=boxes)
    docs = openlabel.to_dicts(ls)
    assert list(docs) == ["d1", "d2"]
    assert [d["openlabel"]["objects"]["0"]["name"] for d in docs.values()] == ["car:1", "car:2"]
    with pytest.raises(ConversionError, match="2 datasets"):
        openlabel.to_dict(ls)
    empty = openlabel.to_dict(LabelSet())["openlabel"]
    assert empty["frames"] == {} and empty["metadata"]["schema_version"] == "1.0.0"
    assert (
        list(jsonschema.Draft7Validator(openlabel_schema).iter_errors({"openlabel": empty})) == []
    )
    with pytest.raises(ConversionError, match="no 'openlabel' key"):
        openlabel.from_dict({"frames": {}})
