"""KITTI object writer and reader: hand-computed labels, the devkit example, round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from converters import _kitti_rows as kr
from converters import kitti
from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import Boxes, Cameras, Cuboids, Frames, LabelSet, Polygons, Poses
from tests._golden import assert_same_tree

SQ = math.sqrt(0.5)
# LiDAR -> KITTI camera axes: x_cam = -y_lidar, y_cam = -z_lidar, z_cam = x_lidar
A = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def scene(centers_lidar, yaws_lidar, *, quat_input: bool = False, boxes=None) -> LabelSet:
    """One LiDAR frame at world (100000, 50000, 30) with yaw +90 deg; camera_0 0.5 m below it.

    Cuboids are given in the LiDAR frame and placed in the world by hand:
    world = t_d + Rz(90)(x, y, z) = (100000 - y, 50000 + x, 30 + z), yaw_world = yaw + 90 deg.
    """
    c = np.asarray(centers_lidar, dtype=float)
    world = np.column_stack([100000.0 - c[:, 1], 50000.0 + c[:, 0], 30.0 + c[:, 2]])
    yaw_w = np.asarray(yaws_lidar, dtype=float) + np.pi / 2
    if quat_input:
        quat = np.column_stack([0 * yaw_w, 0 * yaw_w, np.sin(yaw_w / 2), np.cos(yaw_w / 2)])
    else:
        quat = sp.yaw_to_quat(yaw_w)
    n = len(c)
    frames = Frames.from_columns(
        file_id=["0.pcd", "0.pcd"], sensor_id=["lidar", "camera_0"], index=[0, 0],
        width=[-1, 1280], height=[-1, 720],
    )  # fmt: skip
    cub = Cuboids.from_columns(
        frame=[0] * n, category=[0] * n, label_id=[f"car:{i + 1}" for i in range(n)],
        center=world, size=[[4.0, 2.0, 1.5]] * n, quat=quat,
    )  # fmt: skip
    poses = Poses.from_columns(
        frame=[0], position=[[100000.0, 50000.0, 30.0]], quat=[[0, 0, SQ, SQ]]
    )
    # camera -> world rotation = Rz(90) A^T; camera centre (0, 0, -0.5) in the LiDAR frame
    cam_q = sp.matrix_to_quat(sp.quat_to_matrix([0, 0, SQ, SQ]) @ A.T)
    cams = Cameras.from_columns(
        frame=[0], sensor_id=["camera_0"], fx=[1000.0], fy=[1000.0], cx=[640.0], cy=[360.0],
        position=[[100000.0, 50000.0, 29.5]], quat=[cam_q], image_path=["images/0.png"],
    )  # fmt: skip
    kw = {"boxes": boxes} if boxes is not None else {}
    return LabelSet(
        frames=frames, categories=("car", "person sitting"), cuboids=cub, poses=poses,
        cameras=cams, **kw,
    )  # fmt: skip


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_hand_computed_cuboid(tmp_path: Path) -> None:
    # Cuboid 1: LiDAR centre (10, 2, -1), yaw 0, l w h = 4 2 1.5.
    #   camera coords = A (p - (0, 0, -0.5)) = A (10, 2, -0.5) = (-2, 0.5, 10)
    #   location = centre + (0, h/2, 0) = (-2, 1.25, 10); heading (1,0,0) -> A -> (0, 0, 1)
    #   ry = atan2(-1, 0) = -pi/2 = -1.57; alpha = -pi/2 - atan2(-2, 10) = -1.5708 + 0.1974 = -1.37
    #   box spans x [-3, -1], y [-0.25, 1.25], z [8, 12] in camera coords:
    #   u = 1000 x / z + 640 -> min -3/8 -> 265, max -1/12 -> 556.67
    #   v = 1000 y / z + 360 -> min -0.25/8 -> 328.75, max 1.25/8 -> 516.25
    # Cuboid 2: LiDAR centre (10, 8, -1): camera x spans [-9, -7]
    #   u from -9/8 -> -485 to -7/12 -> 56.67; clipped to [0, 56.67]
    #   truncated = 1 - 56.667 / 541.667 = 0.8954 -> 0.90
    #   alpha = -pi/2 - atan2(-8, 10) = -1.5708 + 0.6747 = -0.90
    # Cuboid 3: LiDAR centre (-10, 0, -1): behind the camera, kept with bbox -1
    #   camera centre (0, 0.5, -10), alpha = -pi/2 - atan2(0, -10) = -3pi/2 -> +pi/2 = 1.57
    ls = scene([[10, 2, -1], [10, 8, -1], [-10, 0, -1]], [0, 0, 0])
    report = kitti.write(ls, tmp_path / "k")
    assert lines(tmp_path / "k/label_2/000000.txt") == [
        "Car 0.00 0 -1.37 265.00 328.75 556.67 516.25 1.50 2.00 4.00 -2.00 1.25 10.00 -1.57",
        "Car 0.90 0 -0.90 0.00 328.75 56.67 516.25 1.50 2.00 4.00 -8.00 1.25 10.00 -1.57",
        "Car 1.00 0 1.57 -1.00 -1.00 -1.00 -1.00 1.50 2.00 4.00 0.00 1.25 -10.00 -1.57",
    ]
    assert {(i.action, i.label_id) for i in report} == {("clipped", "car:2"), ("kept", "car:3")}
    calib = kr.parse_calib((tmp_path / "k/calib/000000.txt").read_text())
    # p_cam = A (p_lidar - (0, 0, -0.5)) = A p_lidar + (0, -0.5, 0)
    np.testing.assert_allclose(calib["Tr_velo_to_cam"], np.c_[A, [0, -0.5, 0]], atol=1e-12)
    np.testing.assert_allclose(calib["P2"], [[1000, 0, 640, 0], [0, 1000, 360, 0], [0, 0, 1, 0]])
    np.testing.assert_allclose(calib["R0_rect"], np.eye(3))
    mapping = json.loads((tmp_path / "k/mapping.json").read_text())
    assert mapping["frames"][0]["file_id"] == "0.pcd"
    assert mapping["frames"][0]["image"] == "images/0.png"


def test_outside_drop(tmp_path: Path) -> None:
    ls = scene([[10, 2, -1], [-10, 0, -1]], [0, 0])
    report = kitti.write(ls, tmp_path / "k", outside="drop")
    assert len(lines(tmp_path / "k/label_2/000000.txt")) == 1
    assert [(i.action, i.label_id) for i in report] == [("dropped", "car:2")]


def test_rot_z_and_quaternion_inputs_give_identical_lines(tmp_path: Path) -> None:
    centers = [[12, -3, -1], [20, 4, -0.5], [8, 1, -1.2]]
    yaws = [0.3, -2.0, 3.0]
    kitti.write(scene(centers, yaws), tmp_path / "a")
    kitti.write(scene(centers, yaws, quat_input=True), tmp_path / "b")
    assert (tmp_path / "a/label_2/000000.txt").read_bytes() == (
        tmp_path / "b/label_2/000000.txt"
    ).read_bytes()
    # yaw in the LiDAR frame -> KITTI ry = -yaw - pi/2 (OpenPCDet boxes3d_lidar_to_kitti_camera)
    ry = [float(s.split()[-1]) for s in lines(tmp_path / "a/label_2/000000.txt")]
    expected = sp.wrap_angle(-np.asarray(yaws) - np.pi / 2)
    np.testing.assert_allclose(ry, expected, atol=0.006)


def test_devkit_example_000002(tmp_path: Path) -> None:
    # KITTI object 000002: "Car ... 1.41 1.58 4.36 3.18 2.27 34.38 -1.58" and its P2
    # (= K [I | t] with K t = (44.85728, 0.2163791, 2.745884e-3): t_z = 0.002746,
    #  t_x = (44.85728 - 609.5593 t_z) / 721.5377 = 0.059851, t_y = (0.21638 - 172.854 t_z) /
    #  721.5377 = -0.000358).
    p2 = np.array(
        [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 2.745884e-03]
    ).reshape(3, 4)
    t = np.array([0.0598508, -0.0003580, 0.002745884])
    # Reader side: the devkit corners projected with P2 give formats.md's verified box.
    center, size, quat = kr.kitti_to_cuboids(
        np.array([[1.41, 1.58, 4.36, 3.18, 2.27, 34.38, -1.58]])
    )
    corners = np.c_[sp.cuboid_corners(center, size, quat)[0], np.ones(8)] @ p2.T
    uv = corners[:, :2] / corners[:, 2:]
    np.testing.assert_allclose(np.r_[uv.min(0), uv.max(0)], [657.5, 189.8, 700.3, 223.7], atol=0.05)
    # Writer side, input built by hand in a LiDAR frame = KITTI velodyne axes (identity pose):
    # centre cam0 = (3.18, 2.27 - 1.41/2, 34.38) = (3.18, 1.565, 34.38)
    # -> LiDAR (z_c, -x_c, -y_c) = (34.38, -3.18, -1.565); yaw_lidar = -ry - pi/2 = 1.58 - pi/2.
    # Camera 2 sits at -t in cam0 coordinates, i.e. at A^T (-t) in the LiDAR frame.
    frames = Frames.from_columns(file_id=["000002.bin"], sensor_id=["lidar"], index=[0])
    cub = Cuboids.from_columns(
        frame=[0], category=[0], label_id=["car:1"], center=[[34.38, -3.18, -1.565]],
        size=[[4.36, 1.58, 1.41]], quat=sp.yaw_to_quat([1.58 - np.pi / 2]),
        frame_of_reference="lidar",
    )  # fmt: skip
    cams = Cameras.from_columns(
        frame=[0], sensor_id=["camera_0"], fx=[721.5377], fy=[721.5377], cx=[609.5593],
        cy=[172.854], position=[A.T @ -t], quat=[sp.matrix_to_quat(A.T)], width=[1242],
        height=[375],
    )  # fmt: skip
    poses = Poses.from_columns(frame=[0], position=[[0.0, 0, 0]], quat=[[0, 0, 0, 1.0]])
    ls = LabelSet(frames=frames, categories=("car",), cuboids=cub, cameras=cams, poses=poses)
    kitti.write(ls, tmp_path / "k", precision=4)
    f = lines(tmp_path / "k/label_2/000000.txt")[0].split()
    np.testing.assert_allclose([float(x) for x in f[4:8]], [657.5, 189.8, 700.3, 223.7], atol=0.05)
    # location in camera 2 = (3.18, 2.27, 34.38) + t = (3.2399, 2.2696, 34.3827); ry unchanged
    np.testing.assert_allclose(
        [float(x) for x in f[8:15]], [1.41, 1.58, 4.36, 3.2399, 2.2696, 34.3827, -1.58], atol=1e-4
    )
    # alpha = ry - atan2(x, z) = -1.58 - atan(3.2399 / 34.3827) = -1.58 - atan(0.094230)
    #       = -1.58 - (0.094230 - 0.094230^3 / 3) = -1.58 - 0.093951 = -1.6740
    assert float(f[3]) == pytest.approx(-1.6740, abs=1e-4)


def test_points_inside_after_export(tmp_path: Path) -> None:
    # Points sampled inside LiDAR-frame boxes stay inside the boxes read back from KITTI.
    rng = np.random.default_rng(3)
    centers = rng.uniform([5, -10, -1.5], [40, 10, 0.5], (6, 3))
    yaws = rng.uniform(-np.pi, np.pi, 6)
    ls = scene(centers, yaws)
    kitti.write(ls, tmp_path / "k", precision=6)
    back = kitti.read(tmp_path / "k")
    assert back.cuboids.frame_of_reference == "lidar"
    local = rng.uniform(-0.45, 0.45, (6, 50, 3)) * np.array([4.0, 2.0, 1.5])
    pts = sp.from_sensor(local, centers, sp.yaw_to_quat(yaws)).reshape(-1, 3)
    counts = sp.count_points_in_cuboids(
        pts, back.cuboids.center, back.cuboids.size, back.cuboids.quat
    )
    assert counts.tolist() == [50] * 6
    np.testing.assert_allclose(back.cuboids.center, centers, atol=2e-6)
    np.testing.assert_allclose(np.cos(back.cuboids.yaw - yaws), 1.0, atol=1e-9)


def test_round_trip_write_read_write(tmp_path: Path) -> None:
    box = Boxes.from_columns(
        frame=[1], category=[1], label_id=["person sitting:1"], xyxy=[[10, 20, 30, 40]]
    )
    ls = scene([[10, 2, -1], [15, -3, -1]], [0.2, -1.0], boxes=box)
    kitti.write(ls, tmp_path / "a", precision=6)
    back = kitti.read(tmp_path / "a")
    assert back.categories == ("car", "person_sitting")
    assert back.boxes.xyxy.tolist() == [[10.0, 20.0, 30.0, 40.0]]
    assert back.frames.sensor_id.tolist() == ["lidar", "camera_0"]
    kitti.write(back, tmp_path / "b", precision=6)
    a, b = lines(tmp_path / "a/label_2/000000.txt"), lines(tmp_path / "b/label_2/000000.txt")
    assert (
        [x.split()[0] for x in a] == [x.split()[0] for x in b] == ["Car", "Car", "Person_sitting"]
    )
    num_a = np.array([[float(v) for v in x.split()[1:]] for x in a])
    num_b = np.array([[float(v) for v in x.split()[1:]] for x in b])
    np.testing.assert_allclose(num_b, num_a, atol=1e-4)
    ca = kr.parse_calib((tmp_path / "a/calib/000000.txt").read_text())
    cb = kr.parse_calib((tmp_path / "b/calib/000000.txt").read_text())
    for key in ca:
        np.testing.assert_allclose(cb[key], ca[key], atol=1e-9)


def test_deterministic_and_negatives_kept(tmp_path: Path) -> None:
    ls = scene([[10, 2, -1]], [0.0])
    frames = Frames.concat(
        [ls.frames, Frames.from_columns(file_id=["1.pcd"], sensor_id=["lidar"], index=[1])]
    )
    poses = Poses.concat(
        [
            ls.poses,
            Poses.from_columns(frame=[2], position=[[1e5, 5e4, 30.0]], quat=[[0, 0, SQ, SQ]]),
        ]
    )
    cams = Cameras.concat([ls.cameras, ls.cameras.take([0])], frame_shift=[0, 2])
    ls = ls.replace(frames=frames, poses=poses, cameras=cams)
    kitti.write(ls, tmp_path / "a")
    kitti.write(ls, tmp_path / "b")
    for p in sorted((tmp_path / "a").rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()
    assert (tmp_path / "a/label_2/000001.txt").read_text() == ""


def test_category_map_occlusion_and_2d_boxes(tmp_path: Path) -> None:
    frames = Frames.from_columns(file_id=["b.png", "a.png"], width=[100, 100], height=[50, 50])
    boxes = Boxes.from_columns(
        frame=[0, 0, 1], category=[0, 1, 0], label_id=["car:1", "tree:1", "car:2"],
        xyxy=[[10, 5, 30, 25], [0, 0, 5, 5], [90, 40, 110, 50]],
        attributes={"occ": ["partial", "none", "weird"]},
    )  # fmt: skip
    ls = LabelSet(frames=frames, categories=("car", "tree"), boxes=boxes)
    report = kitti.write(
        ls, tmp_path / "k", category_map={"car": "Van", "tree": None},
        occlusion_attribute="occ", occlusion_map={"none": 0, "partial": 1},
    )  # fmt: skip
    # frames in file_id order: a.png -> 000000, b.png -> 000001
    # car:2 [90, 110] x [40, 50] clipped to x <= 100: truncated = 1 - 10/20 = 0.50
    assert lines(tmp_path / "k/label_2/000000.txt") == [
        "Van 0.50 -1 -10.00 90.00 40.00 100.00 50.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00"
    ]
    assert lines(tmp_path / "k/label_2/000001.txt") == [
        "Van 0.00 1 -10.00 10.00 5.00 30.00 25.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00"
    ]
    actions = sorted((i.action, i.label_id, i.reason.split(":")[0]) for i in report)
    assert actions == [
        ("changed", "car:2", "'occ' value not in occlusion_map"),
        ("clipped", "car:2", "2D box clipped to the image"),
        ("dropped", "tree:1", "category mapped to null in category_map"),
    ]
    assert not (tmp_path / "k/calib").exists()


def test_missing_calibration_and_lidar_only(tmp_path: Path) -> None:
    ls = scene([[10, 2, -1]], [0.0])
    with pytest.raises(ConversionError, match="calibration of 'camera_0'"):
        kitti.write(ls.replace(cameras=Cameras.empty()), tmp_path / "k")
    with pytest.raises(ConversionError, match="device pose"):
        kitti.write(ls.replace(poses=Poses.empty()), tmp_path / "k")
    assert not (tmp_path / "k").exists()
    # LiDAR-only: camera = LiDAR with KITTI's axis swap; centre (10, 2, -1) -> (-2, 1, 10),
    # location y = 1 + 0.75 = 1.75, ry = -pi/2, alpha = -pi/2 - atan2(-2, 10) = -1.37
    kitti.write(ls, tmp_path / "k", camera=None)
    assert lines(tmp_path / "k/label_2/000000.txt") == [
        "Car 0.00 0 -1.37 -1.00 -1.00 -1.00 -1.00 1.50 2.00 4.00 -2.00 1.75 10.00 -1.57"
    ]
    calib = kr.parse_calib((tmp_path / "k/calib/000000.txt").read_text())
    np.testing.assert_allclose(calib["Tr_velo_to_cam"], np.c_[A, np.zeros(3)], atol=1e-12)


def test_unsupported_kinds_policy(tmp_path: Path) -> None:
    poly = Polygons.from_columns(
        frame=[0], category=[0], label_id=["car:9"], offsets=[0, 1], ring_offsets=[0, 3],
        coords=[[0, 0], [1, 0], [1, 1]],
    )  # fmt: skip
    ls = scene([[10, 2, -1]], [0.0]).replace(polygons=poly)
    with pytest.raises(ConversionError, match="cannot hold 1 polygons"):
        kitti.write(ls, tmp_path / "k")
    report = kitti.write(ls, tmp_path / "k", on_unsupported="drop")
    assert [(i.action, i.label_id) for i in report] == [("dropped", "car:9")]


def test_velodyne_and_images(tmp_path: Path) -> None:
    from deepen_export.model import PointClouds

    ls = scene([[10, 2, -1]], [0.0])
    # world points of LiDAR points (1, 2, 3) and (10, 0, 0): (1e5 - 2, 5e4 + 1, 33), (1e5, 5e4 + 10, 30)
    pc = PointClouds.from_columns(
        frame=[0], offsets=[0, 2], xyz=[[99998.0, 50001.0, 33.0], [100000.0, 50010.0, 30.0]],
        intensity=np.array([0.5, np.nan], dtype=np.float32),
    )  # fmt: skip
    media = tmp_path / "media"
    (media / "images").mkdir(parents=True)
    (media / "images/0.png").write_bytes(b"\x89PNG fake")
    kitti.write(ls.replace(pointclouds=pc), tmp_path / "k", media=media)
    pts = np.fromfile(tmp_path / "k/velodyne/000000.bin", dtype="<f4").reshape(-1, 4)
    np.testing.assert_allclose(pts, [[1, 2, 3, 0.5], [10, 0, 0, 0]], atol=1e-5)
    assert (tmp_path / "k/image_2/000000.png").read_bytes() == b"\x89PNG fake"


# -- the sample LiDAR sequence against sample_data/expected.json ---------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def sample_expected() -> dict:
    return json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]


def test_sample_sequence_matches_expected(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    exp = sample_expected()
    report = kitti.write(
        ls, tmp_path / "k", on_unsupported="drop", precision=6,
        occlusion_attribute="occlusion", occlusion_map={"none": 0, "partial": 1, "heavy": 2},
        media=SAMPLE / "lidar_sequence/media/dataset.zip",
    )  # fmt: skip
    mapping = json.loads((tmp_path / "k/mapping.json").read_text())
    assert [m["file_id"] for m in mapping["frames"]] == exp["frame_order"]
    n_checked = 0
    for i, file_id in enumerate(exp["frame_order"]):
        fexp = exp["frames"][file_id]
        rows = [r.split() for r in lines(tmp_path / f"k/label_2/{i:06d}.txt")]
        cuboid_rows = [r for r in rows if float(r[8]) >= 0]
        for r, (label_id, c) in zip(cuboid_rows, fexp["cuboids"].items(), strict=True):
            k = c["kitti_camera_0"]
            assert r[0] == label_id.split(":")[0].capitalize()
            num = [float(v) for v in r[1:]]
            np.testing.assert_allclose(num[7:10], k["dimensions_hwl"], atol=1e-6)
            np.testing.assert_allclose(num[10:13], k["location_bottom_centre"], atol=2e-6)
            assert num[13] == pytest.approx(k["rotation_y"], abs=2e-6)
            assert num[2] == pytest.approx(k["alpha"], abs=2e-6)
            if k.get("overlaps_image"):
                # expected.json clips to [0, W]; KITTI's own labels clip to [0, W - 1]
                # (1241.00 / 374.00 for its 1242 x 375 images), which we follow.
                raw = np.asarray(k["bbox_unclipped"])
                want = np.clip(raw, 0, [159, 119, 159, 119])
                np.testing.assert_allclose(num[3:7], want, atol=2e-6)
                area = (raw[2] - raw[0]) * (raw[3] - raw[1])
                trunc = 1 - (want[2] - want[0]) * (want[3] - want[1]) / area
                assert num[0] == pytest.approx(trunc, abs=2e-6)
            else:
                assert num[3:7] == [-1, -1, -1, -1] and num[0] == 1.0
            assert (
                num[1]
                == {"none": 0, "partial": 1}[
                    str(ls.cuboids.attributes["occlusion"][ls.cuboids.label_id == label_id][0])
                ]
            )
            n_checked += 1
        calib = kr.parse_calib((tmp_path / f"k/calib/{i:06d}.txt").read_text())
        cam = fexp["camera_0"]
        np.testing.assert_allclose(calib["P2"], cam["P2"], atol=1e-9)
        np.testing.assert_allclose(
            calib["Tr_velo_to_cam"][:, :3], cam["Tr_velo_to_cam_R"], atol=1e-6
        )
        np.testing.assert_allclose(
            calib["Tr_velo_to_cam"][:, 3], cam["Tr_velo_to_cam_t"], atol=2e-6
        )
        # the camera_0 2D box of car:1 in frame 0 is the same object as its cuboid: no row
        assert len(rows) == len(fexp["cuboids"])
        # points inside each cuboid, read back from KITTI, in the velodyne file
        pts = np.fromfile(tmp_path / f"k/velodyne/{i:06d}.bin", dtype="<f4").reshape(-1, 4)
        assert len(pts) == fexp["n_points"]
        assert (tmp_path / f"k/image_2/{i:06d}.png").read_bytes()[:4] == b"\x89PNG"
    assert n_checked == 8
    back = kitti.read(tmp_path / "k")
    inside = []
    for f in range(3):
        pts = np.fromfile(tmp_path / f"k/velodyne/{f:06d}.bin", dtype="<f4").reshape(-1, 4)
        sel = back.cuboids.frame == f
        inside += sp.count_points_in_cuboids(
            pts[:, :3], back.cuboids.center[sel], back.cuboids.size[sel], back.cuboids.quat[sel]
        ).tolist()
    want = [
        c["points_inside"]
        for fid in exp["frame_order"]
        for c in exp["frames"][fid]["cuboids"].values()
    ]
    assert inside == want
    assert {(i.action, i.kind) for i in report} == {
        ("dropped", "point_segmentation"), ("dropped", "polylines3d"), ("kept", "cuboids"),
        ("clipped", "cuboids"), ("dropped", "boxes"),
    }  # fmt: skip
    # box_source="label": car:1's row in frame 0 carries the drawn camera_0 box instead
    kitti.write(ls, tmp_path / "k2", on_unsupported="drop", precision=6, box_source="label")
    first = lines(tmp_path / "k2/label_2/000000.txt")[0].split()
    box = exp["frames"]["0000.pcd"]["other_labels"]["car:1|camera_0|box"]["xyxy"]
    np.testing.assert_allclose([float(v) for v in first[4:8]], box)
    assert first[8:] == lines(tmp_path / "k/label_2/000000.txt")[0].split()[8:]


def test_golden_files(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    kitti.write(
        ls, tmp_path / "k", on_unsupported="drop", occlusion_attribute="occlusion",
        occlusion_map={"none": 0, "partial": 1, "heavy": 2},
    )  # fmt: skip
    assert_same_tree(tmp_path / "k", SAMPLE / "golden/kitti")
    back = kitti.read(SAMPLE / "golden/kitti")
    exp = sample_expected()
    want = [
        c["centre_lidar"] for f in exp["frame_order"] for c in exp["frames"][f]["cuboids"].values()
    ]
    # 2 decimals in the files: centres within 0.005 m (+ rounding of h/2)
    np.testing.assert_allclose(back.cuboids.center, want, atol=0.011)
    assert back.frames.file_id.tolist() == exp["frame_order"]


def test_image_dataset_2d_kitti(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "image_dataset")
    exp = json.loads((SAMPLE / "expected.json").read_text())["image_dataset"]
    report = kitti.write(
        ls, tmp_path / "k", on_unsupported="drop", images=SAMPLE / "image_dataset/images"
    )
    mapping = json.loads((tmp_path / "k/mapping.json").read_text())["frames"]
    # frames in the dataset's order (files.json: Frames.index), then sensor; 000004.png is not
    # labelled yet (file status "waiting"): left out and reported
    assert [(m["file_id"], m["sensor_id"]) for m in mapping] == [
        ("000001.png", "sensor1"), ("000001.png", "sensor2"), ("inner_kitty/000059.png", "sensor1"),
        ("000002.png", "sensor1"), ("000003.png", "sensor1"),
    ]  # fmt: skip
    assert ("skipped", "000004.png") in {(i.action, i.file_id) for i in report}
    rows = {
        (m["file_id"], m["sensor_id"]): [
            r.split() for r in lines(tmp_path / f"k/label_2/{m['kitti']}.txt")
        ]
        for m in mapping
    }
    got = {}
    for key, rs in rows.items():
        for r in rs:
            got.setdefault(key, []).append((r[0], [float(v) for v in r[4:8]], float(r[1])))
    for label_id, b in exp["boxes"].items():
        key = (b["file_id"], b["sensor_id"])
        clipped = b["xyxy_clipped"]
        # truncated = 1 - clipped area / area: car:2 1 - 243 / 500 = 0.514 -> 0.51
        trunc = round(1 - b["area_clipped"] / b["area"], 2)
        assert (label_id.split(":")[0].capitalize(), clipped, trunc) in got[key], label_id
    assert rows[("000003.png", "sensor1")] == []
    assert (tmp_path / "k/image_2/000004.png").read_bytes()[:4] == b"\x89PNG"


def test_rot_z_and_quaternion_json_through_the_parser(tmp_path: Path) -> None:
    # The same boxes as Deepen sends them in both rotation forms (deepen-api.md §5); q and -q
    # are the same rotation. Placed into the sample sequence's frame 0 (with its calibration).
    import deepen_export

    base = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    yaws = [0.3, -2.0, 2.9]
    centres = [(81512.0, 50302.0, 34.05), (81508.0, 50297.0, 34.15), (81510.0, 50299.0, 34.0)]

    def label(i: int, rotation: dict) -> dict:
        cx, cy, cz = centres[i]
        box = {"cx": cx, "cy": cy, "cz": cz, "l": 4.0, "w": 1.8, "h": 1.5, **rotation}
        return {
            "file_id": "0000.pcd", "sensor_id": "lidar", "label_type": "3d_bbox",
            "label_category_id": "car", "label_id": f"car:{i + 1}", "three_d_bbox": box,
        }  # fmt: skip

    rot_z = [label(i, {"rot_z": y}) for i, y in enumerate(yaws)]
    quat = [
        label(
            i, {"quaternion": {"x": 0, "y": 0, "z": s * math.sin(y / 2), "w": s * math.cos(y / 2)}}
        )
        for i, (y, s) in enumerate(zip(yaws, [1, -1, 1], strict=True))
    ]
    outs = []
    for k, labs in enumerate((rot_z, quat)):
        parsed = deepen_export.read_labels({"labels": labs})
        row = int(
            np.flatnonzero(
                (base.frames.file_id == "0000.pcd") & (base.frames.sensor_id == "lidar")
            )[0]
        )
        cub = parsed.cuboids
        cub = type(cub).from_columns(
            **{
                **cub.columns(),
                "frame": np.full(len(cub), row),
                "category": np.zeros(len(cub), dtype=np.int32),
            }
        )
        ls = base.replace(
            cuboids=cub, boxes=base.boxes.take([]), polylines3d=base.polylines3d.take([])
        )
        kitti.write(ls, tmp_path / f"k{k}", on_unsupported="drop", precision=6)
        outs.append((tmp_path / f"k{k}/label_2/000000.txt").read_text())
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 3


def test_non_finite_cuboid_dropped(tmp_path: Path) -> None:
    ls = scene([[10, 2, -1], [12, 0, -1]], [0.0, 0.0])
    center = ls.cuboids.center.copy()
    center[1, 0] = np.nan
    cub = type(ls.cuboids).from_columns(**{**ls.cuboids.columns(), "center": center})
    report = kitti.write(ls.replace(cuboids=cub), tmp_path / "k")
    assert len(lines(tmp_path / "k/label_2/000000.txt")) == 1
    assert ("dropped", "car:2", "non-finite coordinates") in {
        (i.action, i.label_id, i.reason) for i in report
    }


def test_read_with_rectification(tmp_path: Path) -> None:
    # A hand-made KITTI folder whose R0_rect is not the identity: the reader must undo
    # X_rect = R0_rect Tr_velo_to_cam X_velo. Expected centre by an independent 4x4 inverse.
    rng = np.random.default_rng(5)
    r0 = sp.quat_to_matrix(sp.quat_normalize(rng.normal(size=4) * [0.01, 0.01, 0.01, 1]))
    tr = np.c_[A @ sp.quat_to_matrix(sp.yaw_to_quat(0.02)), [0.1, -0.3, -0.2]]
    (tmp_path / "k/label_2").mkdir(parents=True)
    (tmp_path / "k/calib").mkdir()
    (tmp_path / "k/label_2/000000.txt").write_text(
        "Car 0.00 0 -1.58 657.39 190.13 700.07 223.39 1.41 1.58 4.36 3.18 2.27 34.38 -1.58\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
    )
    fmt = lambda m: " ".join(f"{x:.12e}" for x in np.ravel(m))  # noqa: E731
    (tmp_path / "k/calib/000000.txt").write_text(
        f"P2: {fmt(np.eye(3, 4))}\nR0_rect: {fmt(r0)}\nTr_velo_to_cam: {fmt(tr)}\n"
    )
    back = kitti.read(tmp_path / "k")
    m = np.eye(4)
    m[:3, :3] = r0
    t = np.eye(4)
    t[:3, :] = tr
    centre_rect = np.array([3.18, 2.27 - 1.41 / 2, 34.38, 1.0])
    want = np.linalg.inv(m @ t) @ centre_rect
    assert back.cuboids.frame_of_reference == "lidar"
    np.testing.assert_allclose(back.cuboids.center[0], want[:3], atol=1e-9)
    np.testing.assert_allclose(back.cuboids.size[0], [4.36, 1.58, 1.41])
    # DontCare rows come back as 2D boxes
    assert back.categories == ("car", "dontcare")
    assert back.boxes.xyxy.tolist() == [[503.89, 169.71, 590.61, 190.13]]
    # heading: box +x in rect coords is (cos ry, 0, -sin ry); in LiDAR coords inv(R0 Tr)
    heading_rect = np.array([math.cos(-1.58), 0.0, -math.sin(-1.58)])
    want_dir = np.linalg.inv(r0 @ tr[:, :3]) @ heading_rect
    got_dir = sp.quat_to_matrix(back.cuboids.quat[0])[:, 0]
    np.testing.assert_allclose(got_dir, want_dir, atol=1e-9)


def test_2d_only_rows_outside_or_empty_are_dropped_and_unknown_sizes_reported(
    tmp_path: Path,
) -> None:
    frames = Frames.from_columns(file_id=["a.png", "b.png"], width=[100, -1], height=[100, -1])
    boxes = Boxes.from_columns(
        frame=[0, 0, 0, 1],
        category=[0, 0, 0, 0],
        label_id=["car:1", "car:2", "car:3", "car:4"],
        # inside; entirely outside a 100x100 image; zero width; on an image of unknown size
        xyxy=[[10, 10, 20, 30], [200, 200, 210, 210], [5, 5, 5, 15], [0, 0, 500, 400]],
    )
    ls = LabelSet(frames=frames, categories=("car",), boxes=boxes)
    report = kitti.write(ls, tmp_path / "k")
    rows = [r.split() for r in lines(tmp_path / "k/label_2/000000.txt")]
    assert [[float(v) for v in r[4:8]] for r in rows] == [[10.0, 10.0, 20.0, 30.0]]
    dropped = {i.label_id: i.reason for i in report if i.action == "dropped"}
    assert dropped == {
        "car:2": "2D box outside the image or of zero area",
        "car:3": "2D box outside the image or of zero area",
    }
    kept = [i for i in report if i.action == "kept"]
    assert [(i.label_id, "image size unknown" in i.reason) for i in kept] == [("car:4", True)]
    assert [float(v) for v in lines(tmp_path / "k/label_2/000001.txt")[0].split()[4:8]] == [
        0,
        0,
        500,
        400,
    ]


def test_text_options_are_typed_by_the_signature(tmp_path: Path) -> None:
    """The CLI's text (``-O camera=none``, JSON maps) becomes the annotated types; library
    callers passing text still get the same files, with a DeprecationWarning."""
    from converters._writer import typed_options

    frames = Frames.from_columns(file_id=["a.png"], width=[100], height=[50])
    boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[1, 2, 3, 4]])
    ls = LabelSet(frames=frames, categories=("car",), boxes=boxes)
    opts = typed_options("kitti", kitti.write, {"camera": "none", "category_map": '{"car": "Van"}'})
    assert opts == {"camera": None, "category_map": {"car": "Van"}}
    kitti.write(ls, tmp_path / "typed", **opts)
    with pytest.warns(DeprecationWarning, match="category_map"):
        kitti.write(ls, tmp_path / "text", camera=None, category_map='{"car": "Van"}')
    for name in ("label_2/000000.txt", "mapping.json"):
        assert (tmp_path / "typed" / name).read_bytes() == (tmp_path / "text" / name).read_bytes()
    assert lines(tmp_path / "typed/label_2/000000.txt")[0].startswith("Van ")
