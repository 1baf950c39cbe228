"""Frame roles decided once: which frames are LiDAR frames, camera images or images, in what order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from converters import coco, culane, kitti, tusimple
from deepen_export.model import (
    Boxes,
    Cuboids,
    FrameRole,
    Frames,
    LabelSet,
    Polylines,
    frame_roles,
)


def _cuboid(frame: int) -> Cuboids:
    return Cuboids.from_columns(
        frame=[frame], category=[0], label_id=["car:1"],
        center=[[1, 2, 0]], size=[[4, 2, 1.5]], quat=[[0, 0, 0, 1]],
    )  # fmt: skip


def test_the_one_rule() -> None:
    fr = Frames.from_columns(
        file_id=["10.pcd", "2.pcd", "2.pcd", "a.png", "scan", "b.bin"],
        sensor_id=["lidar", "lidar", "camera_0", "sensor1", "", ""],
        index=[1, 0, 0, -1, -1, -1],
    )
    boxes = Boxes.from_columns(frame=[5], category=[0], label_id=["c:1"], xyxy=[[0, 0, 1, 1]])
    ls = LabelSet(frames=fr, categories=("car",), cuboids=_cuboid(4), boxes=boxes)
    # "scan" has a cuboid (3D data); "b.bin" has a 2D label, so it is an image despite its suffix
    assert [FrameRole(r).name for r in ls.frames.role] == [
        "LIDAR", "LIDAR", "CAMERA", "IMAGE", "LIDAR", "IMAGE",
    ]  # fmt: skip
    assert ls.lidar_frames().tolist() == [4, 1, 0]  # dataset, index, natural file id
    assert ls.images().tolist() == [2, 3, 5]


def test_roles_are_kept_when_labels_are_dropped() -> None:
    fr = Frames.from_columns(file_id=["scan"], sensor_id=[""])
    ls = LabelSet(frames=fr, categories=("car",), cuboids=_cuboid(0))
    assert ls.without("cuboids").frames.role.tolist() == [FrameRole.LIDAR]
    assert frame_roles(ls.without("cuboids")).tolist() == [FrameRole.IMAGE]  # re-deciding differs


def test_snapshot_records_lidar_frames(lidar: LabelSet) -> None:
    roles = {(f, s): FrameRole(r).name for f, s, r in zip(
        lidar.frames.file_id, lidar.frames.sensor_id, lidar.frames.role, strict=True)}  # fmt: skip
    assert {v for (f, s), v in roles.items() if s.startswith("camera")} == {"CAMERA"}
    assert {v for (f, s), v in roles.items() if not s.startswith("camera")} == {"LIDAR"}
    assert len(lidar.lidar_frames()) == 3


def _lane_on_camera(lidar: LabelSet) -> LabelSet:
    f = lidar.frames
    cam = int(np.flatnonzero(f.sensor_id == "camera_0")[0])
    lane = Polylines.from_columns(
        frame=[cam], category=[0], label_id=["lane:1"], offsets=[0, 1], part_offsets=[0, 2],
        coords=[[10, 100], [50, 20]],
    )  # fmt: skip
    return lidar.replace(polylines=lane)


def test_lane_formats_and_coco_name_a_camera_image_alike(lidar: LabelSet, tmp_path: Path) -> None:
    ls = _lane_on_camera(lidar)
    coco.write(ls, tmp_path / "coco", on_unsupported="drop")
    tusimple.write(ls, tmp_path / "ts", on_unsupported="drop")
    culane.write(ls, tmp_path / "cu", on_unsupported="drop")
    doc = json.loads((tmp_path / "coco/annotations/instances_default.json").read_text())
    coco_names = [i["file_name"] for i in doc["images"]]
    ts_lines = (tmp_path / "ts/label_data.json").read_text().splitlines()
    ts_names = [json.loads(s)["raw_file"] for s in ts_lines]
    cu_names = [s.lstrip("/") for s in (tmp_path / "cu/list/all.txt").read_text().splitlines()]
    assert ts_names == cu_names == coco_names
    assert ts_names[0] == "images/camera_0/0000.png"  # the camera's image_path, as uploaded


def test_kitti_takes_the_lidar_frames(lidar: LabelSet, tmp_path: Path) -> None:
    kitti.write(lidar, tmp_path / "k", on_unsupported="drop")
    labels = sorted(p.name for p in (tmp_path / "k/label_2").iterdir())
    assert labels == [f"{i:06d}.txt" for i in range(len(lidar.lidar_frames()))]


def test_one_image_source_for_folders_and_zips(tmp_path: Path) -> None:
    import zipfile

    from PIL import Image

    from deepen_export._media import ImageSource

    Image.new("RGB", (5, 4), (10, 20, 30)).save(tmp_path / "a.png")
    with zipfile.ZipFile(tmp_path / "up.zip", "w") as zf:
        zf.write(tmp_path / "a.png", "images/camera_0/b.png")
    (tmp_path / "out").mkdir()
    with ImageSource([tmp_path, tmp_path / "up.zip"]) as src:
        assert src.size("a.png") == (5, 4) and src.size("/images/camera_0/b.png") == (5, 4)
    (tmp_path / "sub").mkdir()
    with ImageSource(tmp_path / "sub") as sub:
        assert (tmp_path / "a.png").is_file() and sub.open("../a.png") is None  # stays inside
    with ImageSource([tmp_path, tmp_path / "up.zip"]) as src:
        assert src.copy("images/camera_0/b.png", tmp_path / "out/b.png")
        assert (tmp_path / "out/b.png").read_bytes() == (tmp_path / "a.png").read_bytes()
        assert not src.copy("missing.png", tmp_path / "out/m.png")
        assert src.open("x/b.png") is None  # exact names, unless by_basename
    with ImageSource(tmp_path / "up.zip", by_basename=True) as src:
        assert src.open("x/b.png").getpixel((0, 0)) == (10, 20, 30)
