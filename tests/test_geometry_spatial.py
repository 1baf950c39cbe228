"""Property and hand-computed tests of deepen_export.geometry.spatial.

Reference tools: scipy.spatial.transform.Rotation (quaternions, scalar-last like ours) and
OpenCV's projectPoints / fisheye.projectPoints (distortion models), both installed with the
``vcd`` dev dependency.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from deepen_export.geometry import spatial as sp

FAST = settings(max_examples=60, deadline=None)

finite = st.floats(-1.0, 1.0, allow_nan=False)
quats = arrays(np.float64, (5, 4), elements=finite).filter(
    lambda q: bool(np.all(np.linalg.norm(q, axis=1) > 0.1))
)
angles = arrays(np.float64, (7,), elements=st.floats(-10.0, 10.0, allow_nan=False))
world_xyz = arrays(np.float64, (5, 3), elements=st.floats(-2e5, 2e5, allow_nan=False))
local_xyz = arrays(np.float64, (5, 3), elements=st.floats(-80.0, 80.0, allow_nan=False))


def _same_rotation(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    q2 = q2 / np.linalg.norm(q2, axis=-1, keepdims=True)
    return np.abs(np.abs(np.sum(q1 * q2, axis=-1)) - 1.0) < 1e-9


# -- quaternions ------------------------------------------------------------------------


@FAST
@given(quats)
def test_quat_to_matrix_matches_scipy(q: np.ndarray) -> None:
    expected = Rotation.from_quat(q).as_matrix()  # scipy: scalar-last (x, y, z, w)
    np.testing.assert_allclose(sp.quat_to_matrix(q), expected, atol=1e-12)


@FAST
@given(quats)
def test_matrix_to_quat_round_trip(q: np.ndarray) -> None:
    back = sp.matrix_to_quat(sp.quat_to_matrix(q))
    assert np.all(back[:, 3] >= 0)
    assert np.all(_same_rotation(back, q))
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-12)


def test_matrix_to_quat_half_turns() -> None:
    # 180-degree turns are where the naive trace formula divides by ~0.
    mats = np.stack([np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])])
    np.testing.assert_allclose(np.abs(sp.matrix_to_quat(mats)), np.eye(4)[:3], atol=1e-12)


@FAST
@given(quats, quats)
def test_quat_multiply_is_matrix_product(a: np.ndarray, b: np.ndarray) -> None:
    ab = sp.quat_multiply(a, b)
    np.testing.assert_allclose(
        sp.quat_to_matrix(ab), sp.quat_to_matrix(a) @ sp.quat_to_matrix(b), atol=1e-12
    )
    ident = sp.quat_multiply(a, sp.quat_inverse(a))
    np.testing.assert_allclose(ident, np.tile([0, 0, 0, 1.0], (5, 1)), atol=1e-12)


@FAST
@given(angles)
def test_yaw_quat_round_trip(yaw: np.ndarray) -> None:
    q = sp.yaw_to_quat(yaw)
    assert np.all(_same_rotation(q, Rotation.from_euler("z", yaw[:, None]).as_quat()))
    back = sp.quat_to_yaw(q)
    np.testing.assert_allclose(np.cos(back - yaw), 1.0, atol=1e-12)
    assert np.all(np.abs(back) <= np.pi)


def test_yaw_hand_values() -> None:
    # yaw pi/2 turns the box's +x (heading) onto +y: q = (0, 0, sin(pi/4), cos(pi/4)).
    q = sp.yaw_to_quat(np.pi / 2)
    np.testing.assert_allclose(q, [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)
    np.testing.assert_allclose(sp.quat_rotate(q, [1.0, 0, 0]), [0, 1, 0], atol=1e-15)
    # TIER IV's real export quaternion (deepen-api.md §4): z = 0.75222, w = 0.65891
    # -> yaw = 2 * atan(0.75222 / 0.65891) = 2 * atan(1.14161); tan(0.85) = 1.13833 and
    # d tan / d a = 1 + tan^2 = 2.29579, so atan(1.14161) = 0.85 + 0.00328 / 2.29579 = 0.85143
    # -> yaw = 1.70286 rad.
    yaw = sp.quat_to_yaw([0, 0, 0.7522213131298905, 0.6589105372303157])
    assert yaw == pytest.approx(1.70286, abs=2e-5)


def test_wrap_angle() -> None:
    out = sp.wrap_angle([np.pi, -np.pi, 3 * np.pi, 0.5, -7.0])
    np.testing.assert_allclose(out, [-np.pi, -np.pi, -np.pi, 0.5, -7.0 + 2 * np.pi], atol=1e-12)


# -- frame transforms -------------------------------------------------------------------


@FAST
@given(world_xyz, quats, world_xyz, quats, local_xyz)
def test_world_lidar_camera_round_trip(
    t_lidar: np.ndarray, q_lidar: np.ndarray, t_cam: np.ndarray, q_cam: np.ndarray, d: np.ndarray
) -> None:
    # Points near the LiDAR (within 80 m) of poses up to 2e5 m from the origin.
    world = t_lidar + d
    lidar = sp.to_sensor(world, t_lidar, q_lidar)
    np.testing.assert_allclose(np.linalg.norm(lidar, axis=1), np.linalg.norm(d, axis=1), atol=1e-8)
    # lidar -> camera through the relative pose (what Tr_velo_to_cam holds) ...
    t_rel, q_rel = sp.relative_pose(t_lidar, q_lidar, t_cam, q_cam)
    cam = sp.from_sensor(lidar, t_rel, q_rel)
    # ... equals world -> camera directly
    np.testing.assert_allclose(cam, sp.to_sensor(world, t_cam, q_cam), atol=1e-6)
    back_lidar = sp.to_sensor(cam, t_rel, q_rel)
    back_world = sp.from_sensor(back_lidar, t_lidar, q_lidar)
    np.testing.assert_allclose(back_world, world, rtol=0, atol=1e-6)
    # matrix form agrees with the quaternion form
    mat = sp.invert_transform(sp.transform_matrix(t_lidar, q_lidar))
    np.testing.assert_allclose(sp.apply_transform(mat, world), lidar, atol=1e-6)


def test_to_sensor_batched_rows_and_precision() -> None:
    # Frame of 3 labels x 8 corners; pose per label row. Offsets of 1 mm at 1e5 m survive.
    t = np.array([[1e5, -2e5, 30.0], [1e5 + 1, 5.0, 0.0], [0.0, 0.0, 0.0]])
    q = sp.yaw_to_quat([0.0, np.pi, np.pi / 2])
    pts = t[:, None, :] + np.array([0.001, 0.002, 0.003])
    out = sp.to_sensor(pts.repeat(8, axis=1), t, q)
    assert out.shape == (3, 8, 3)
    np.testing.assert_allclose(out[0, 0], [0.001, 0.002, 0.003], atol=1e-10)
    np.testing.assert_allclose(out[1, 0], [-0.001, -0.002, 0.003], atol=1e-10)
    np.testing.assert_allclose(out[2, 0], [0.002, -0.001, 0.003], atol=1e-10)


@FAST
@given(world_xyz, quats, world_xyz, quats)
def test_cuboid_transform_matches_corner_transform(
    c: np.ndarray, qb: np.ndarray, t: np.ndarray, qs: np.ndarray
) -> None:
    size = np.array([[4.0, 2.0, 1.5]] * 5)
    c = t + (c % 50.0)
    c2, q2 = sp.cuboids_to_sensor(c, qb, t, qs)
    np.testing.assert_allclose(
        sp.cuboid_corners(c2, size, q2),
        sp.to_sensor(sp.cuboid_corners(c, size, qb), t, qs),
        atol=1e-6,
    )
    c3, q3 = sp.cuboids_from_sensor(c2, q2, t, qs)
    np.testing.assert_allclose(c3, c, atol=1e-6)
    assert np.all(_same_rotation(q3, qb))


# -- cuboids ----------------------------------------------------------------------------


def test_cuboid_corners_hand() -> None:
    # l=4, w=2, h=1 at (10, 5, 1), yaw +90 deg: heading +x -> +y, width +y -> -x.
    # corner 0 = front-left-bottom, local (+2, +1, -0.5) -> rotated (-1, +2, -0.5)
    # -> world (9, 7, 0.5); corner 6 = rear-right-top, local (-2, -1, +0.5) -> (1, -2, 0.5)
    # -> (11, 3, 1.5).
    corners = sp.cuboid_corners([[10.0, 5.0, 1.0]], [[4.0, 2.0, 1.0]], sp.yaw_to_quat([np.pi / 2]))
    np.testing.assert_allclose(corners[0, 0], [9, 7, 0.5], atol=1e-12)
    np.testing.assert_allclose(corners[0, 6], [11, 3, 1.5], atol=1e-12)
    np.testing.assert_allclose(corners[0].mean(axis=0), [10, 5, 1], atol=1e-12)


@FAST
@given(world_xyz, quats, quats, st.integers(0, 2**31 - 1))
def test_points_inside_stay_inside_after_transforms(
    t_lidar: np.ndarray, q_lidar: np.ndarray, q_box: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.5, 6.0, (5, 3))
    center = rng.uniform(-40, 40, (5, 3))
    # points sampled inside each box (98% of its half-size) in the LiDAR frame, plus points
    # just outside (102%) of a box's face
    u = rng.uniform(-0.98, 0.98, (5, 20, 3))
    inside_local = u * size[:, None, :] / 2
    inside = sp.from_sensor(inside_local, center, q_box)
    out_local = inside_local.copy()
    out_local[:, :, 0] = np.sign(u[:, :, 0] + 1e-9) * 1.02 * size[:, None, 0] / 2
    outside = sp.from_sensor(out_local, center, q_box)
    for pts, expected in ((inside, 20), (outside, 0)):
        flat = pts.reshape(-1, 3)
        own = np.repeat(np.arange(5), 20)
        mask = sp.points_in_cuboids(flat, center, size, q_box)
        assert np.all(mask[np.arange(100), own] == (expected == 20))
        # into the world frame and back into another sensor frame: still inside
        wc, wq = sp.cuboids_from_sensor(center, q_box, t_lidar[0], q_lidar[0])
        wp = sp.from_sensor(flat, t_lidar[0], q_lidar[0])
        mask_w = sp.points_in_cuboids(wp, wc, size, wq, tolerance=1e-7)
        assert np.all(mask_w[np.arange(100), own] == (expected == 20))
        counts = sp.count_points_in_cuboids(wp, wc, size, wq, tolerance=1e-7, chunk=17)
        np.testing.assert_array_equal(counts, mask_w.sum(axis=0))


def test_count_points_chunked_equals_mask() -> None:
    rng = np.random.default_rng(7)
    pts = rng.uniform(-50, 50, (5000, 3))
    c = rng.uniform(-50, 50, (40, 3))
    s = rng.uniform(1, 15, (40, 3))
    q = sp.yaw_to_quat(rng.uniform(-np.pi, np.pi, 40))
    expected = sp.points_in_cuboids(pts, c, s, q).sum(axis=0)
    for chunk in (1, 100, 1 << 20):
        np.testing.assert_array_equal(
            sp.count_points_in_cuboids(pts, c, s, q, chunk=chunk), expected
        )
    assert sp.count_points_in_cuboids(np.zeros((0, 3)), c, s, q).tolist() == [0] * 40


# -- projection -------------------------------------------------------------------------


def test_project_pinhole_hand() -> None:
    # fx=fy=1000, cx=640, cy=360; point (2, -1, 10): u = 1000*0.2+640 = 840, v = -100+360 = 260.
    # point behind the camera: not projected.
    uv, ok = sp.project_points([[2.0, -1.0, 10.0], [0.0, 0.0, -5.0]], 1000.0, 1000.0, 640.0, 360.0)
    np.testing.assert_allclose(uv[0], [840, 260])
    assert ok.tolist() == [True, False]
    assert np.isnan(uv[1]).all()


def test_project_k1_hand() -> None:
    # x/z = 0.5, y/z = 0 -> r^2 = 0.25; k1 = 0.1 -> radial = 1.025; u = 100*0.5125 + 50 = 101.25
    uv, _ = sp.project_points(
        [[1.0, 0.0, 2.0]], 100.0, 100.0, 50.0, 50.0, distortion=[0.1, 0, 0, 0, 0, 0]
    )
    np.testing.assert_allclose(uv, [[101.25, 50.0]])


@FAST
@given(
    arrays(np.float64, (6,), elements=st.floats(-0.05, 0.05, allow_nan=False)),
    arrays(np.float64, (10, 3), elements=st.floats(-1.0, 1.0, allow_nan=False)),
)
def test_project_pinhole_matches_opencv(dist: np.ndarray, xy: np.ndarray) -> None:
    pts = np.column_stack([xy[:, 0] * 5, xy[:, 1] * 5, 5 + 4 * np.abs(xy[:, 2])])
    k = np.array([[800.0, 0, 640], [0, 810.0, 360], [0, 0, 1]])
    ref, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k, np.r_[dist, 0.0, 0.0])
    uv, ok = sp.project_points(pts, 800.0, 810.0, 640.0, 360.0, distortion=dist)
    assert ok.all()
    np.testing.assert_allclose(uv, ref[:, 0, :], atol=1e-6)


@FAST
@given(
    arrays(np.float64, (4,), elements=st.floats(-0.05, 0.05, allow_nan=False)),
    arrays(np.float64, (10, 3), elements=st.floats(-1.0, 1.0, allow_nan=False)),
    st.sampled_from(["fisheye", "mod_kannala"]),
)
def test_project_fisheye_matches_opencv(k4: np.ndarray, xy: np.ndarray, model: str) -> None:
    pts = np.column_stack([xy[:, 0] * 5, xy[:, 1] * 5, 1 + 4 * np.abs(xy[:, 2])])
    k = np.array([[400.0, 0, 640], [0, 410.0, 360], [0, 0, 1]])
    ref, _ = cv2.fisheye.projectPoints(
        pts[:, None, :], np.zeros(3), np.zeros(3), k, k4.reshape(4, 1)
    )
    dist = np.array([k4[0], k4[1], 0.0, 0.0, k4[2], k4[3]])
    uv, ok = sp.project_points(pts, 400.0, 410.0, 640.0, 360.0, model=model, distortion=dist)
    assert ok.all()
    np.testing.assert_allclose(uv, ref[:, 0, :], atol=1e-6)


def test_project_per_camera_rows() -> None:
    # two cameras, 8 corners each; each row uses its own intrinsics and model
    pts = np.tile(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]), (2, 4, 1))
    uv, ok = sp.project_points(
        pts,
        [100.0, 200.0],
        [100.0, 200.0],
        [10.0, 20.0],
        [10.0, 20.0],
        model=np.array(["pinhole", "fisheye"], dtype=object),
    )
    assert uv.shape == (2, 8, 2) and ok.all()
    np.testing.assert_allclose(uv[0, 1], [110.0, 10.0])
    # fisheye: theta = atan(1) = pi/4 -> u = 200 * pi/4 + 20
    np.testing.assert_allclose(uv[1, 1], [200 * np.pi / 4 + 20, 20.0])
    with pytest.raises(ValueError, match="unknown camera model"):
        sp.project_points(pts, 1.0, 1.0, 0.0, 0.0, model="orthographic")


def test_sample_camera_1_distortion() -> None:
    # camera_1 of the sample sequence has k1 = -0.05; expected.json has the centre of cyclist:3
    # in camera_1 and its pinhole / distorted pixel, derived independently from the raw files.
    import json
    from pathlib import Path

    import deepen_export

    sample = Path(__file__).resolve().parents[1] / "sample_data"
    ls = deepen_export.read_labels(sample / "lidar_sequence")
    exp = json.loads((sample / "expected.json").read_text())["lidar_sequence"]
    for file_id in ("0001.pcd", "0002.pcd"):
        want = exp["frames"][file_id]["camera_1_centre_projection"]["cyclist:3"]
        row = int(
            np.flatnonzero((ls.frames.file_id == file_id) & (ls.frames.sensor_id == "lidar"))[0]
        )
        cub = np.flatnonzero((ls.cuboids.frame == row) & (ls.cuboids.label_id == "cyclist:3"))[0]
        cam = int(
            np.flatnonzero((ls.cameras.frame == row) & (ls.cameras.sensor_id == "camera_1"))[0]
        )
        c = ls.cameras
        p = sp.to_sensor(ls.cuboids.center[cub], c.position[cam], c.quat[cam])
        np.testing.assert_allclose(p, want["centre_cam"], atol=2e-6)
        uv, ok = sp.project_points(
            p[None], c.fx[cam], c.fy[cam], c.cx[cam], c.cy[cam], model=c.model[cam],
            distortion=c.distortion[cam],
        )  # fmt: skip
        assert ok.all()
        np.testing.assert_allclose(uv[0], want["uv_distorted_k1"], atol=2e-5)
        plain, _ = sp.project_points(p[None], c.fx[cam], c.fy[cam], c.cx[cam], c.cy[cam])
        np.testing.assert_allclose(plain[0], want["uv_pinhole"], atol=2e-5)


def test_euler_zyx_is_rz_ry_rx_as_matrices():
    rng = np.random.default_rng(7)
    angles = rng.uniform(-np.pi, np.pi, (50, 3))

    def rot(k, a):
        c, s = np.cos(a), np.sin(a)
        i, j = [(1, 2), (2, 0), (0, 1)][k]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    q = sp.euler_zyx_to_quat(angles[:, 0], angles[:, 1], angles[:, 2])
    for (rx, ry, rz), qi in zip(angles, q, strict=True):
        want = rot(2, rz) @ rot(1, ry) @ rot(0, rx)
        assert np.allclose(sp.quat_to_matrix(qi), want, atol=1e-12)
