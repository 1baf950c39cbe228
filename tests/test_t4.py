"""T4 export: loaded by the real t4-devkit 0.1.0 (isolated venv), same boxes as the label model."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_api
from scipy.spatial.transform import Rotation

import deepen_export
from converters import nuscenes, t4
from deepen_export.errors import ConversionError
from deepen_export.model import Polygons
from tests._isolated_env import run_check

SEQ = Path(__file__).parents[1] / "sample_data" / "lidar_sequence"
DS = "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6"


def _md5(*parts: str) -> str:
    return hashlib.md5("/".join(parts).encode()).hexdigest()


@pytest.fixture(scope="module")
def labels() -> deepen_export.LabelSet:
    ls = deepen_export.read_labels(SEQ)
    # a road polygon (a surface) and a pedestrian outline (an object) on camera_0 of frame 0
    poly = Polygons.from_columns(
        frame=[0, 0], category=[ls.category_code("road"), ls.category_code("pedestrian")],
        label_id=["road:7", "pedestrian:2"], offsets=[0, 1, 2], ring_offsets=[0, 4, 7],
        coords=[[0, 80], [160, 80], [160, 120], [0, 120], [134, 56], [147, 56], [140, 80]],
    )  # fmt: skip
    assert ls.frames.sensor_id[0] == "camera_0"
    return ls.replace(polygons=poly)


@pytest.fixture(scope="module")
def export(tmp_path_factory, labels) -> Path:
    out = tmp_path_factory.mktemp("t4") / "t4"
    t4.write(
        labels, out, on_unsupported="drop", surface_categories=["road"],
        visibility_attribute="occlusion", visibility_map={"none": "4", "partial": "2"},
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def devkit(export) -> dict[str, Any]:
    return run_check("t4_check.py", export / DS)[str(export / DS)]


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_t4_devkit_loads_without_warnings(devkit):
    assert devkit["warnings"] == []
    assert "8 sample_annotation" in devkit["load_output"]
    assert "2 object_ann" in devkit["load_output"] and "1 surface_ann" in devkit["load_output"]


def test_t4_devkit_reports_the_label_model_boxes(labels, devkit):
    cub, fr, poses = labels.cuboids, labels.frames, labels.poses
    assert len(devkit["annotations"]) == len(cub)
    for j in range(len(cub)):
        tok = _md5("sample_annotation", DS, str(fr.file_id[cub.frame[j]]), str(cub.label_id[j]))
        ann = devkit["annotations"][tok]
        length, w, h = cub.size[j]
        rot = Rotation.from_quat(cub.quat[j])
        assert np.abs(np.array(ann["global"]["center"]) - cub.center[j]).max() <= 1e-3
        assert ann["global"]["wlh"] == ann["lidar"]["wlh"] == [w, length, h]
        assert abs(_wrap(ann["global"]["yaw"] - rot.as_euler("ZYX")[0])) <= 1e-6
        p = int(np.flatnonzero(poses.frame == cub.frame[j])[0])
        dev = Rotation.from_quat(poses.quat[p])
        centre = dev.inv().apply(cub.center[j] - poses.position[p])
        assert np.abs(np.array(ann["lidar"]["center"]) - centre).max() <= 1e-3
        assert abs(_wrap(ann["lidar"]["yaw"] - (dev.inv() * rot).as_euler("ZYX")[0])) <= 1e-6
        assert ann["instance_token"] == _md5("instance", DS, str(cub.label_id[j]))
    assert {a["visibility"] for a in devkit["annotations"].values()} == {"full", "partial"}


def test_2d_labels_are_object_ann_linked_to_the_3d_instance(labels, devkit):
    anns = sorted(devkit["object_ann"].values(), key=lambda a: a["name"])
    car, ped = anns
    # the camera_0 box of car:1, [x, y, w, h] = [70.02, 58.95, 26.06, 15.71] in labels.json
    assert car["name"] == "car" and car["channel"] == "CAMERA_0"
    assert np.allclose(car["roi"], [70.02, 58.95, 96.08, 74.66])
    assert car["instance_token"] == _md5("instance", DS, "car:1")
    assert ped["instance_token"] == _md5("instance", DS, "pedestrian:2")
    assert np.allclose(ped["roi"], [134, 56, 147, 80]) and ped["mask_size"] == [120, 160]
    assert devkit["distortion"]["CAMERA_1"] == [-0.05, 0.0, 0.0, 0.0, 0.0]
    assert f"{DS}::car:1" in devkit["instance_names"]


# pycocotools 2.0.x decode() warns under numpy 2 from inside its Cython code (not ours)
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_surface_and_object_masks_are_coco_rle(export):
    ann = export / DS / "annotation"
    surf = json.loads((ann / "surface_ann.json").read_text())
    assert len(surf) == 1
    rle = {"size": surf[0]["mask"]["size"], "counts": surf[0]["mask"]["counts"].encode()}
    m = mask_api.decode([rle])[:, :, 0]
    assert (
        m.shape == (120, 160) and m[80:, :].all() and not m[:80].any()
    )  # rows 80..119 of the road
    obj = {o["bbox"][0]: o for o in json.loads((ann / "object_ann.json").read_text())}
    car = obj[70.02]["mask"]
    # the box [70.02, 58.95, 96.08, 74.66] rasterised by pycocotools: about 26 x 16 pixels
    area = int(mask_api.area([{"size": car["size"], "counts": car["counts"].encode()}])[0])
    assert 20 * 12 <= area <= 28 * 18


def test_t4_round_trip_keeps_boxes_and_cuboids(tmp_path, export, labels):
    back = t4.read(export)
    assert sorted(back.boxes.label_id.tolist()) == ["car:1", "pedestrian:2"]
    assert np.allclose(sorted(back.boxes.xyxy[:, 0]), [70.02, 134.0])
    assert sorted(set(back.cuboids.label_id.tolist())) == sorted(
        set(labels.cuboids.label_id.tolist())
    )
    # the same cuboids as a nuScenes export of the original
    a = nuscenes.read(_nusc(tmp_path / "a", labels))
    b = nuscenes.read(_nusc(tmp_path / "b", back))
    assert np.allclose(a.cuboids.center, b.cuboids.center, atol=1e-9)
    assert a.cuboids.label_id.tolist() == b.cuboids.label_id.tolist()


def _nusc(out: Path, ls: deepen_export.LabelSet) -> Path:
    nuscenes.write(ls, out, on_unsupported="drop")
    return out


def test_t4_without_poses_is_one_clear_error(tmp_path):
    bare = deepen_export.read_labels(SEQ / "labels.json")
    with pytest.raises(ConversionError, match="no device pose"):
        t4.write(bare, tmp_path / "out", on_unsupported="drop")
    assert not (tmp_path / "out").exists()


def test_t4_writes_one_dataset_folder_per_deepen_dataset(tmp_path, labels):
    import dataclasses

    other = labels.replace(
        frames=dataclasses.replace(
            labels.frames,
            dataset_id=np.array(["Second0000000000000000ds"] * len(labels.frames), dtype=object),
        ),
        meta={},
    )
    both = deepen_export.LabelSet.concat([labels, other])
    r = t4.write(both, tmp_path / "t4", on_unsupported="drop", media=SEQ / "media" / "dataset.zip")
    # no surface_categories here: the road polygon is an object too (1 box + 2 polygons each)
    assert r.written["datasets"] == 2 and r.written["object_ann"] == 6
    res = run_check(
        "t4_check.py", tmp_path / "t4" / DS, tmp_path / "t4" / "Second0000000000000000ds"
    )
    assert all(v["warnings"] == [] and len(v["annotations"]) == 8 for v in res.values())
    back = t4.read(tmp_path / "t4")
    assert sorted(set(back.frames.dataset_id.tolist())) == [DS, "Second0000000000000000ds"]


def test_fisheye_distortion_is_reported_and_kept_in_the_mapping(tmp_path, labels):
    import dataclasses

    cams = labels.cameras
    model = np.array(
        [
            "fisheye" if s == "camera_1" else m
            for s, m in zip(cams.sensor_id, cams.model, strict=True)
        ],
        dtype=object,
    )
    dist = cams.distortion.copy()
    dist[cams.sensor_id == "camera_1"] = [0.1, 0.01, 0.0, 0.0, 0.001, 0.0001]
    ls = labels.replace(cameras=dataclasses.replace(cams, model=model, distortion=dist))
    report = t4.write(ls, tmp_path / "t4", on_unsupported="drop")
    bad = [i.reason for i in report.issues if "fisheye" in i.reason]
    assert len(bad) == 1 and "CAMERA_1" in bad[0]
    side = json.loads((tmp_path / "t4" / DS / "mapping.json").read_text())
    assert [d["coefficients"] for d in side["distortion"].values() if d["model"] == "fisheye"] == [
        [0.1, 0.01, 0.0, 0.0, 0.001, 0.0001]
    ]
    back = t4.read(tmp_path / "t4")
    assert np.allclose(
        back.cameras.distortion[back.cameras.sensor_id == "camera_1"],
        [0.1, 0.01, 0.0, 0.0, 0.001, 0.0001],
    )
    assert set(back.cameras.model[back.cameras.sensor_id == "camera_1"]) == {"fisheye"}


def test_lidar_to_ego_puts_t4_scans_in_base_link(tmp_path, labels):
    q = Rotation.from_euler("z", 0.1)
    w, x, y, z = np.roll(q.as_quat(), 1)
    tr = {"translation": [1.2, 0.0, 1.8], "rotation": [w, x, y, z]}
    out = tmp_path / "t4"
    t4.write(labels, out, on_unsupported="drop", lidar_to_ego=tr)
    ann = out / DS / "annotation"
    cs = json.loads((ann / "calibrated_sensor.json").read_text())
    sensors = {s["token"]: s["channel"] for s in json.loads((ann / "sensor.json").read_text())}
    lidar = [c for c in cs if sensors[c["sensor_token"]] == "LIDAR_CONCAT"]
    assert [(c["translation"], c["rotation"]) for c in lidar] == [
        ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
    ]
    # scan 0 in the vehicle frame: p_ego = R_le p_lidar + t_le, p_lidar from the device pose
    poses, pc = labels.poses, labels.pointclouds
    p_lidar = (
        Rotation.from_quat(poses.quat[0]).inv().apply(pc.xyz[: pc.offsets[1]] - poses.position[0])
    )
    p_ego = q.apply(p_lidar) + np.array([1.2, 0.0, 1.8])
    scan = np.fromfile(out / DS / "data" / "LIDAR_CONCAT" / "0.pcd.bin", dtype="<f4").reshape(-1, 5)
    assert np.abs(scan[:, :3] - p_ego).max() < 1e-4 and (scan[:, 4] == -1).all()
    res = run_check("t4_check.py", out / DS)[str(out / DS)]
    assert res["warnings"] == []
    cub = labels.cuboids
    for j in range(len(cub)):
        tok = _md5(
            "sample_annotation", DS, str(labels.frames.file_id[cub.frame[j]]), str(cub.label_id[j])
        )
        p = int(np.flatnonzero(poses.frame == cub.frame[j])[0])
        c_lidar = Rotation.from_quat(poses.quat[p]).inv().apply(cub.center[j] - poses.position[p])
        c_ego = q.apply(c_lidar) + np.array([1.2, 0.0, 1.8])
        assert np.abs(np.array(res["annotations"][tok]["lidar"]["center"]) - c_ego).max() <= 1e-3
    back = t4.read(out)
    assert np.abs(back.poses.position - poses.position).max() < 1e-9
    assert np.abs(np.abs((back.poses.quat * poses.quat).sum(axis=1)) - 1).max() < 1e-12
