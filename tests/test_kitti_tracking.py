"""KITTI tracking writer and reader: hand-computed sequence, track ids, DontCare rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from converters import _kitti_rows as kr
from converters import kitti_tracking
from deepen_export.geometry import spatial as sp
from deepen_export.model import Boxes, Cameras, Cuboids, Frames, LabelSet, Poses
from tests._golden import assert_same_tree

# LiDAR -> KITTI camera axes: x_cam = -y_lidar, y_cam = -z_lidar, z_cam = x_lidar
A = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def sequence() -> LabelSet:
    """ds1: frames 0.pcd, 1.pcd; ds2: 0.pcd (no labels). LiDAR = world, camera at the LiDAR."""
    frames = Frames.from_columns(
        file_id=["0.pcd", "1.pcd", "1.pcd", "0.pcd"],
        sensor_id=["lidar", "lidar", "camera_0", "lidar"],
        dataset_id=["ds1", "ds1", "ds1", "ds2"],
        index=[0, 1, 1, 0],
    )  # fmt: skip
    cub = Cuboids.from_columns(
        frame=[0, 0, 1, 1],
        category=[0, 1, 0, 2],
        label_id=["car:1", "truck:1", "car:1", "pedestrian"],
        center=[[10, 2, -1], [20, -2, -1], [10, 2, -1], [-10, 0, -1]],
        size=[[4.0, 2.0, 1.5]] * 4,
        quat=[[0, 0, 0, 1.0]] * 4,
    )
    boxes = Boxes.from_columns(
        frame=[2], category=[3], label_id=["dontcare:1"], xyxy=[[100, 200, 150, 260]]
    )
    poses = Poses.from_columns(
        frame=[0, 1, 3], position=np.zeros((3, 3)), quat=[[0, 0, 0, 1.0]] * 3
    )
    cams = Cameras.from_columns(
        frame=[0, 1, 3], sensor_id=["camera_0"] * 3, fx=[1000.0] * 3, fy=[1000.0] * 3,
        cx=[640.0] * 3, cy=[360.0] * 3, position=np.zeros((3, 3)),
        quat=[sp.matrix_to_quat(A.T)] * 3, width=[1280] * 3, height=[720] * 3,
    )  # fmt: skip
    return LabelSet(
        frames=frames, categories=("car", "truck", "pedestrian", "dontcare"), cuboids=cub,
        boxes=boxes, poses=poses, cameras=cams,
    )  # fmt: skip


# car:1 at LiDAR (10, 2, -1), yaw 0 -> camera centre A p = (-2, 1, 10), location y = 1 + 0.75
#   box x [-3, -1], y [0.25, 1.75], z [8, 12]: u 1000 * -3/8 + 640 = 265, -1/12 -> 556.666667
#   v 0.25/12 -> 380.833333, 1.75/8 -> 578.75; ry = atan2(-1, 0) = -1.570796
#   alpha = -pi/2 - atan2(-2, 10) = -1.570796 + 0.197396 = -1.373401
CAR = (
    "Car 0 0 -1.373401 265.000000 380.833333 556.666667 578.750000 "
    "1.500000 2.000000 4.000000 -2.000000 1.750000 10.000000 -1.570796"
)
# truck:1 at (20, -2, -1) -> camera (2, 1, 20); x [1, 3], z [18, 22]:
#   u 1/22 -> 685.454545, 3/18 -> 806.666667; v 0.25/22 -> 371.363636, 1.75/18 -> 457.222222
#   alpha = -pi/2 - atan2(2, 20) = -1.570796 - 0.099669 = -1.670465
#   track number 1 is taken by car:1 (first seen) -> next free id 2
TRUCK = (
    "2 Truck 0 0 -1.670465 685.454545 371.363636 806.666667 457.222222 "
    "1.500000 2.000000 4.000000 2.000000 1.750000 20.000000 -1.570796"
)
# pedestrian (no track number) -> id 3; behind the camera: truncated 2, bbox -1
#   camera (0, 1, -10); alpha = -pi/2 - atan2(0, -10) = -3pi/2 -> +1.570796
PED = (
    "3 Pedestrian 2 0 1.570796 -1.000000 -1.000000 -1.000000 -1.000000 "
    "1.500000 2.000000 4.000000 0.000000 1.750000 -10.000000 -1.570796"
)
DONTCARE_GT = (
    "1 -1 DontCare -1 -1 -10.000000 100.000000 200.000000 150.000000 260.000000 "
    "-1000.000000 -1000.000000 -1000.000000 -10.000000 -1.000000 -1.000000 -1.000000"
)


def test_hand_computed_sequence(tmp_path: Path) -> None:
    report = kitti_tracking.write(sequence(), tmp_path / "t")
    assert (tmp_path / "t/label_02/0000.txt").read_text().splitlines() == [
        f"0 1 {CAR}",
        f"0 {TRUCK}",
        f"1 1 {CAR}",
        f"1 {PED}",
        DONTCARE_GT,
    ]
    assert (tmp_path / "t/label_02/0001.txt").read_text() == ""
    changed = sorted((i.action, i.label_id) for i in report if i.action == "changed")
    assert changed == [("changed", "pedestrian"), ("changed", "truck:1")]
    mapping = json.loads((tmp_path / "t/mapping.json").read_text())
    assert mapping["sequences"][0]["tracks"] == {"1": "car:1", "2": "truck:1", "3": "pedestrian"}
    assert [m["kitti"] for m in mapping["frames"]] == ["0000/000000", "0000/000001", "0001/000000"]
    calib_text = (tmp_path / "t/calib/0000.txt").read_text()
    assert "\nR_rect " in calib_text and "\nTr_velo_cam " in calib_text
    calib = kr.parse_calib(calib_text)
    np.testing.assert_allclose(calib["Tr_velo_to_cam"], np.c_[A, np.zeros(3)], atol=1e-12)


def test_dontcare_devkit_style(tmp_path: Path) -> None:
    kitti_tracking.write(sequence(), tmp_path / "t", dontcare_style="devkit")
    last = (tmp_path / "t/label_02/0000.txt").read_text().splitlines()[-1]
    assert last.endswith(
        "-1.000000 -1.000000 -1.000000 -1000.000000 -1000.000000 -1000.000000 -10.000000"
    )


def test_round_trip(tmp_path: Path) -> None:
    ls = sequence()
    kitti_tracking.write(ls, tmp_path / "t")
    back = kitti_tracking.read(tmp_path / "t")
    assert back.cuboids.label_id.tolist() == ["car:1", "truck:1", "car:1", "pedestrian"]
    assert back.cuboids.track.tolist() == [1, 2, 1, 3]
    assert back.categories == ("car", "truck", "pedestrian", "dontcare")
    assert back.boxes.xyxy.tolist() == [[100.0, 200.0, 150.0, 260.0]]
    np.testing.assert_allclose(back.cuboids.center, ls.cuboids.center, atol=1e-6)
    np.testing.assert_allclose(back.cuboids.size, ls.cuboids.size)
    assert back.frames.file_id.tolist()[:3] == ["0.pcd", "1.pcd", "0.pcd"]
    # writing what was read gives the same sequence file (up to the 6-decimal rounding of ry,
    # which moves the projected corners by < 1e-3 px)
    kitti_tracking.write(back, tmp_path / "t2")
    a = (tmp_path / "t/label_02/0000.txt").read_text().splitlines()
    b = (tmp_path / "t2/label_02/0000.txt").read_text().splitlines()
    assert [x.split()[:5] for x in a] == [x.split()[:5] for x in b]
    num_a = np.array([[float(v) for v in x.split()[5:]] for x in a])
    num_b = np.array([[float(v) for v in x.split()[5:]] for x in b])
    np.testing.assert_allclose(num_b, num_a, atol=1e-3)


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_sample_sequence_tracks(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    kitti_tracking.write(ls, tmp_path / "t", on_unsupported="drop")
    rows = [r.split() for r in (tmp_path / "t/label_02/0000.txt").read_text().splitlines()]
    mapping = json.loads((tmp_path / "t/mapping.json").read_text())
    tracks = mapping["sequences"][0]["tracks"]
    # Deepen's numbers are unique across categories here, so they are kept
    assert tracks == {"1": "car:1", "2": "pedestrian:2", "3": "cyclist:3", "4": "car:4"}
    seen: dict[str, list[str]] = {}
    for r in rows:
        if float(r[10]) >= 0:  # 3D rows (h >= 0)
            seen.setdefault(tracks[r[1]], []).append(exp["frame_order"][int(r[0])])
    assert seen == exp["tracks"]
    # truncated is an integer: pedestrian:2 in frame 1 is partly outside (1), cyclist:3 and
    # car:4 are not in the image (2)
    state = {(r[0], r[1]): r[3] for r in rows if float(r[10]) >= 0}
    assert state[("1", "2")] == "1" and state[("1", "3")] == "2" and state[("0", "4")] == "2"
    assert state[("0", "1")] == "0"


def test_golden_files(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    kitti_tracking.write(
        ls, tmp_path / "t", on_unsupported="drop", occlusion_attribute="occlusion",
        occlusion_map={"none": 0, "partial": 1, "heavy": 2},
    )  # fmt: skip
    assert_same_tree(tmp_path / "t", SAMPLE / "golden/kitti_tracking")
    back = kitti_tracking.read(SAMPLE / "golden/kitti_tracking")
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    want = [
        c["centre_lidar"] for f in exp["frame_order"] for c in exp["frames"][f]["cuboids"].values()
    ]
    np.testing.assert_allclose(back.cuboids.center, want, atol=2e-6)
    assert back.cuboids.label_id.tolist() == [
        lid for f in exp["frame_order"] for lid in exp["frames"][f]["cuboids"]
    ]
