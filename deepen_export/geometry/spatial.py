"""3D geometry: quaternions, cuboids, frame transforms, camera projection.

Everything is vectorized over a leading batch axis and computed in float64. Conventions are those
of :mod:`deepen_export.model`:

- quaternions are ``(x, y, z, w)``, scalar last, and rotate *from* the box / sensor frame *to*
  the frame of the table (box -> world, sensor -> world);
- a pose ``(position t, quat q)`` maps sensor points to the parent frame:
  ``p_parent = R(q) p_sensor + t``, and back: ``p_sensor = R(q)^T (p_parent - t)``. The
  subtraction comes first, so world coordinates near 1e5 m keep their sub-micrometre precision;
- LiDAR axes x forward, y left, z up; camera axes x right, y down, z forward.

Cuboid corner order (:func:`cuboid_corners`), in the box's own frame (x along the length /
heading, y along the width to the left, z up), the same order as the KITTI devkit's
``computeBox3D.m`` once its camera-style object frame is mapped to x forward / y left / z up::

        7 -------- 4          index  x      y      z
       /|         /|            0   +l/2   +w/2   -h/2    front left  bottom
      6 -------- 5 |            1   +l/2   -w/2   -h/2    front right bottom
      | |        | |            2   -l/2   -w/2   -h/2    rear  right bottom
      | 3 -------|-0            3   -l/2   +w/2   -h/2    rear  left  bottom
      |/         |/             4..7  as 0..3 with z = +h/2 (top face)
      2 -------- 1     (front = +x, faces 0-1-5-4)

Distortion models (:func:`project_points`) follow Deepen's upload format (``camera_model``):

- ``"pinhole"``: Brown-Conrady with the coefficient order ``(k1, k2, p1, p2, k3, k4)``, which is
  OpenCV's ``distCoeffs`` order; as in OpenCV, ``k4`` is the first coefficient of the rational
  model's denominator, ``radial = (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2)``.
- ``"fisheye"`` and ``"mod_kannala"``: Kannala-Brandt equidistant (OpenCV ``cv::fisheye``),
  ``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)`` with ``k1..k4`` in
  the ``k1, k2, k3, k4`` slots of the ``(k1, k2, p1, p2, k3, k4)`` vector. Deepen does not
  publish how its ``mod_kannala`` differs from plain Kannala-Brandt; we treat it as the same
  model (assumption, to check against a real calibration).

Examples
--------
>>> import numpy as np
>>> q = yaw_to_quat([np.pi / 2])
>>> np.round(quat_rotate(q, [[1.0, 0.0, 0.0]]), 12).tolist()
[[0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CORNER_ORDER",
    "CUBOID_EDGES",
    "DISTORTION_MODELS",
    "apply_transform",
    "count_points_in_cuboids",
    "cuboid_corners",
    "cuboids_from_sensor",
    "cuboids_to_sensor",
    "euler_zyx_to_quat",
    "from_sensor",
    "invert_transform",
    "matrix_to_quat",
    "points_in_cuboids",
    "project_points",
    "quat_conjugate",
    "quat_inverse",
    "quat_multiply",
    "quat_normalize",
    "quat_rotate",
    "quat_to_matrix",
    "quat_to_yaw",
    "relative_pose",
    "to_sensor",
    "transform_matrix",
    "wrap_angle",
    "yaw_to_quat",
]

Array = npt.NDArray[np.float64]

CORNER_ORDER = np.array(
    [
        [1, 1, -1],
        [1, -1, -1],
        [-1, -1, -1],
        [-1, 1, -1],
        [1, 1, 1],
        [1, -1, 1],
        [-1, -1, 1],
        [-1, 1, 1],
    ],
    dtype=np.float64,
)
"""Signs of ``(l/2, w/2, h/2)`` for the 8 corners of :func:`cuboid_corners` (see module docstring)."""

CUBOID_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)
"""The 12 edges of a cuboid as corner index pairs: bottom face, top face, then the verticals."""

DISTORTION_MODELS = ("pinhole", "fisheye", "mod_kannala")
"""Camera models :func:`project_points` knows."""


def _f64(a: npt.ArrayLike) -> Array:
    return np.asarray(a, dtype=np.float64)


# -- quaternions ------------------------------------------------------------------------


def quat_normalize(q: npt.ArrayLike) -> Array:
    """Unit quaternions ``(..., 4)``; zero-length input becomes the identity ``(0, 0, 0, 1)``.

    Examples
    --------
    >>> quat_normalize([[0, 0, 0, 2], [0, 0, 0, 0]]).tolist()
    [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]]
    """
    q = _f64(q)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    ident = np.zeros_like(q)
    ident[..., 3] = 1.0
    ok = norm > 0
    return np.where(ok, q / np.where(ok, norm, 1.0), ident)


def quat_conjugate(q: npt.ArrayLike) -> Array:
    """``(-x, -y, -z, w)``: the inverse rotation of a unit quaternion.

    Examples
    --------
    >>> quat_conjugate([0.0, 0.0, 0.6, 0.8]).tolist()
    [-0.0, -0.0, -0.6, 0.8]
    """
    q = _f64(q)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_inverse(q: npt.ArrayLike) -> Array:
    """Inverse ``conj(q) / |q|^2`` (works for non-unit quaternions too).

    Examples
    --------
    >>> quat_inverse([0.0, 0.0, 0.0, 2.0]).tolist()
    [-0.0, -0.0, -0.0, 0.5]
    """
    q = _f64(q)
    return quat_conjugate(q) / np.sum(q * q, axis=-1, keepdims=True)


def quat_multiply(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """Hamilton product ``a * b`` (rotate by ``b`` first, then by ``a``), broadcasting.

    Examples
    --------
    >>> q = yaw_to_quat(np.pi / 4)
    >>> np.round(quat_to_yaw(quat_multiply(q, q)), 12).item() == round(np.pi / 2, 12)
    True
    """
    a, b = _f64(a), _f64(b)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_to_matrix(q: npt.ArrayLike) -> Array:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` (normalized first).

    Examples
    --------
    >>> (np.round(quat_to_matrix([0, 0, np.sqrt(0.5), np.sqrt(0.5)]), 12) + 0.0).tolist()
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    x, y, z, w = np.moveaxis(quat_normalize(q), -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    m = np.stack(
        [
            1 - 2 * (yy + zz),
            2 * (xy - wz),
            2 * (xz + wy),
            2 * (xy + wz),
            1 - 2 * (xx + zz),
            2 * (yz - wx),
            2 * (xz - wy),
            2 * (yz + wx),
            1 - 2 * (xx + yy),
        ],
        axis=-1,
    )
    return m.reshape((*m.shape[:-1], 3, 3))


def matrix_to_quat(m: npt.ArrayLike) -> Array:
    """Quaternions ``(..., 4)`` of rotation matrices ``(..., 3, 3)``, with ``w >= 0``.

    Uses the numerically stable branch (largest diagonal term) per matrix, vectorized.

    Examples
    --------
    >>> np.round(matrix_to_quat(np.diag([-1.0, -1.0, 1.0])), 12).tolist()
    [0.0, 0.0, 1.0, 0.0]
    """
    m = _f64(m)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    cand = np.stack(
        [
            np.stack([1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
            np.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22, m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], 1 + tr], -1),
        ],
        axis=-2,
    )  # fmt: skip
    best = np.argmax(np.stack([m00, m11, m22, tr], -1), axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = quat_normalize(q)
    return np.where(q[..., 3:] < 0, -q, q)


def yaw_to_quat(yaw: npt.ArrayLike) -> Array:
    """Quaternions ``(..., 4)`` of rotations by ``yaw`` radians about +z.

    Examples
    --------
    >>> yaw_to_quat([0.0]).tolist()
    [[0.0, 0.0, 0.0, 1.0]]
    """
    half = _f64(yaw) / 2
    zero = np.zeros_like(half)
    return np.stack([zero, zero, np.sin(half), np.cos(half)], axis=-1)


def euler_zyx_to_quat(rx: npt.ArrayLike, ry: npt.ArrayLike, rz: npt.ArrayLike) -> Array:
    """Quaternions ``(..., 4)`` of intrinsic z-y-x Euler angles: ``R = Rz(rz) Ry(ry) Rx(rx)``.

    The order OpenLABEL's 9-value cuboids use (``x, y, z, rx, ry, rz, sx, sy, sz``).

    Examples
    --------
    >>> np.allclose(euler_zyx_to_quat(0.0, 0.0, 1.25), yaw_to_quat(1.25))
    True
    """

    def axis(angle: npt.ArrayLike, k: int) -> Array:
        half = _f64(angle) / 2
        q = np.zeros((*half.shape, 4))
        q[..., k], q[..., 3] = np.sin(half), np.cos(half)
        return q

    return quat_multiply(axis(rz, 2), quat_multiply(axis(ry, 1), axis(rx, 0)))


def quat_to_yaw(q: npt.ArrayLike, *, normalize: bool = True) -> Array:
    """Heading about +z (radians, in ``[-pi, pi]``): the angle of the rotated x axis in the xy plane.

    Exact for upright rotations; for tilted ones it is the heading of the projected x axis.
    ``normalize=False`` skips normalising ``q`` (for quaternions already of unit length, such
    as a :class:`~deepen_export.model.Cuboids` table's: the same result to the last bit).

    Examples
    --------
    >>> round(float(quat_to_yaw(yaw_to_quat(1.25))), 12)
    1.25
    """
    x, y, z, w = np.moveaxis(quat_normalize(q) if normalize else _f64(q), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_rotate(q: npt.ArrayLike, v: npt.ArrayLike) -> Array:
    """Rotate vectors ``v (..., 3)`` by quaternions ``q (..., 4)`` (broadcasting).

    Examples
    --------
    >>> np.round(quat_rotate(yaw_to_quat(np.pi), [1.0, 2.0, 3.0]), 12).tolist()
    [-1.0, -2.0, 3.0]
    """
    return np.einsum("...ij,...j->...i", quat_to_matrix(q), _f64(v))


def wrap_angle(a: npt.ArrayLike) -> Array:
    """Angles wrapped to ``[-pi, pi)``.

    Examples
    --------
    >>> np.round(wrap_angle([np.pi, 3 * np.pi / 2, -np.pi / 2]), 6).tolist()
    [-3.141593, -1.570796, -1.570796]
    """
    a = _f64(a)
    return (a + np.pi) % (2 * np.pi) - np.pi


# -- rigid transforms -------------------------------------------------------------------


def transform_matrix(position: npt.ArrayLike, quat: npt.ArrayLike) -> Array:
    """``(..., 4, 4)`` homogeneous matrices ``[[R(quat), position], [0, 0, 0, 1]]``.

    Examples
    --------
    >>> transform_matrix([1.0, 2.0, 3.0], [0, 0, 0, 1])[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    """
    position = _f64(position)
    r = quat_to_matrix(quat)
    shape = np.broadcast_shapes(position.shape[:-1], r.shape[:-2])
    out = np.zeros((*shape, 4, 4))
    out[..., :3, :3] = r
    out[..., :3, 3] = position
    out[..., 3, 3] = 1.0
    return out


def invert_transform(t: npt.ArrayLike) -> Array:
    """Inverse of rigid transforms ``(..., 4, 4)``: ``[[R^T, -R^T t], [0, 1]]``.

    Examples
    --------
    >>> invert_transform(transform_matrix([1.0, 2.0, 3.0], [0, 0, 0, 1]))[:3, 3].tolist()
    [-1.0, -2.0, -3.0]
    """
    t = _f64(t)
    rt = np.swapaxes(t[..., :3, :3], -1, -2)
    out = np.zeros_like(t)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, t[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def apply_transform(t: npt.ArrayLike, points: npt.ArrayLike) -> Array:
    """Apply transforms ``(n, 4, 4)`` (or one ``(4, 4)``) to points ``(n, ..., 3)``.

    Row ``i`` of the transforms applies to ``points[i]`` (all its trailing points).

    Examples
    --------
    >>> apply_transform(transform_matrix([1.0, 0, 0], [0, 0, 0, 1]), [[0.0, 0, 0]]).tolist()
    [[1.0, 0.0, 0.0]]
    """
    t, p = _f64(t), _f64(points)
    if t.ndim == 2:
        return p @ t[:3, :3].T + t[:3, 3]
    extra = p.ndim - 2
    r = t[:, :3, :3].reshape((len(t),) + (1,) * extra + (3, 3))
    tr = t[:, :3, 3].reshape((len(t),) + (1,) * extra + (3,))
    return np.einsum("...ij,...j->...i", r, p) + tr


def _per_row(a: Array, ndim: int, tail: int) -> Array:
    """Reshape per-row ``(n, *tail)`` data to broadcast against points ``(n, ..., 3)``."""
    if a.ndim <= tail:
        return a
    return a.reshape(a.shape[:1] + (1,) * (ndim - 1 - a.ndim + tail) + a.shape[1:])


def to_sensor(points: npt.ArrayLike, position: npt.ArrayLike, quat: npt.ArrayLike) -> Array:
    """Parent-frame points into a sensor frame: ``R(quat)^T (p - position)``.

    ``points`` is ``(n, ..., 3)`` with one pose per row (``position (n, 3)``, ``quat (n, 4)``),
    or any shape with a single pose. The position is subtracted first (float64), so points near
    1e5 m keep their precision.

    Examples
    --------
    >>> pose_q = yaw_to_quat(np.pi / 2)
    >>> p = to_sensor([[100000.0, 100001.0, 5.0]], [100000.0, 100000.0, 0.0], pose_q)
    >>> (np.round(p, 12) + 0.0).tolist()
    [[1.0, 0.0, 5.0]]
    """
    p, t = _f64(points), _f64(position)
    r = quat_to_matrix(quat)
    d = p - _per_row(t, p.ndim, 1)
    return np.einsum("...ji,...j->...i", _per_row(r, p.ndim, 2), d)


def from_sensor(points: npt.ArrayLike, position: npt.ArrayLike, quat: npt.ArrayLike) -> Array:
    """Sensor-frame points into the parent frame: ``R(quat) p + position`` (inverse of :func:`to_sensor`).

    Examples
    --------
    >>> from_sensor([[1.0, 0.0, 5.0]], [100000.0, 100000.0, 0.0], yaw_to_quat(np.pi / 2)).tolist()
    [[100000.0, 100001.0, 5.0]]
    """
    p, t = _f64(points), _f64(position)
    r = quat_to_matrix(quat)
    return np.einsum("...ij,...j->...i", _per_row(r, p.ndim, 2), p) + _per_row(t, p.ndim, 1)


def relative_pose(
    position_a: npt.ArrayLike,
    quat_a: npt.ArrayLike,
    position_b: npt.ArrayLike,
    quat_b: npt.ArrayLike,
) -> tuple[Array, Array]:
    """Pose of sensor ``a`` in sensor ``b``'s frame, both given as poses in a common parent.

    Returns ``(position, quat)`` with ``p_b = R(quat) p_a + position``:
    ``R = R_b^T R_a``, ``position = R_b^T (t_a - t_b)`` (positions subtracted first).
    For KITTI, ``a`` = LiDAR and ``b`` = camera gives ``Tr_velo_to_cam``.

    Examples
    --------
    >>> t, q = relative_pose([10.0, 0, 0], [0, 0, 0, 1], [8.0, 0, 0], [0, 0, 0, 1])
    >>> t.tolist(), q.tolist()
    ([2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])
    """
    qa, qb = quat_normalize(quat_a), quat_normalize(quat_b)
    pos = to_sensor(_f64(position_a), position_b, qb)
    q = quat_multiply(quat_conjugate(qb), qa)
    return pos, np.where(q[..., 3:] < 0, -q, q)


def cuboids_to_sensor(
    center: npt.ArrayLike,
    quat: npt.ArrayLike,
    position: npt.ArrayLike,
    sensor_quat: npt.ArrayLike,
) -> tuple[Array, Array]:
    """Cuboid centres ``(n, 3)`` and rotations ``(n, 4)`` from the parent frame into sensor frames.

    One sensor pose per cuboid (``position (n, 3)``, ``sensor_quat (n, 4)``) or one for all.
    Returns ``(center, quat)`` in the sensor frame, ``quat`` with ``w >= 0``.

    Examples
    --------
    >>> c, q = cuboids_to_sensor([[5.0, 0, 0]], yaw_to_quat([0.3]), [[0.0, 0, 0]], yaw_to_quat([0.1]))
    >>> round(float(quat_to_yaw(q)[0]), 12)
    0.2
    """
    c = to_sensor(center, position, sensor_quat)
    q = quat_multiply(quat_conjugate(quat_normalize(sensor_quat)), quat_normalize(quat))
    return c, np.where(q[..., 3:] < 0, -q, q)


def cuboids_from_sensor(
    center: npt.ArrayLike,
    quat: npt.ArrayLike,
    position: npt.ArrayLike,
    sensor_quat: npt.ArrayLike,
) -> tuple[Array, Array]:
    """Inverse of :func:`cuboids_to_sensor`: sensor-frame cuboids into the parent frame.

    Examples
    --------
    >>> c, q = cuboids_from_sensor([[5.0, 0, 0]], yaw_to_quat([0.2]), [[1.0, 0, 0]], yaw_to_quat([0.1]))
    >>> round(float(quat_to_yaw(q)[0]), 12), np.round(c, 6).tolist()
    (0.3, [[5.975021, 0.499167, 0.0]])
    """
    c = from_sensor(center, position, sensor_quat)
    q = quat_multiply(quat_normalize(sensor_quat), quat_normalize(quat))
    return c, np.where(q[..., 3:] < 0, -q, q)


# -- cuboids ----------------------------------------------------------------------------


def cuboid_corners(center: npt.ArrayLike, size: npt.ArrayLike, quat: npt.ArrayLike) -> Array:
    """The 8 corners ``(n, 8, 3)`` of cuboids (centre, ``size = (l, w, h)``, ``quat``).

    Corner order: :data:`CORNER_ORDER` (module docstring): 0-3 bottom face starting front-left,
    4-7 the top face above them.

    Examples
    --------
    >>> cuboid_corners([[0.0, 0, 0]], [[4.0, 2.0, 1.0]], [[0, 0, 0, 1]])[0, :2].tolist()
    [[2.0, 1.0, -0.5], [2.0, -1.0, -0.5]]
    """
    c, s = _f64(center).reshape(-1, 3), _f64(size).reshape(-1, 3)
    r = quat_to_matrix(_f64(quat).reshape(-1, 4))
    local = CORNER_ORDER[None, :, :] * (s[:, None, :] / 2)
    return np.einsum("nij,nkj->nki", r, local) + c[:, None, :]


def points_in_cuboids(
    points: npt.ArrayLike,
    center: npt.ArrayLike,
    size: npt.ArrayLike,
    quat: npt.ArrayLike,
    *,
    tolerance: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Mask ``(m, n)``: point ``i`` lies inside (or on the surface of) cuboid ``j``.

    Meant for moderate ``m x n``; for many points and boxes use :func:`count_points_in_cuboids`,
    which works in chunks. ``tolerance`` (metres) grows every box on each side.

    Examples
    --------
    >>> points_in_cuboids([[0.0, 0, 0], [3.0, 0, 0]], [[0.0, 0, 0]], [[4.0, 2, 2]], [[0, 0, 0, 1]]).tolist()
    [[True], [False]]
    """
    p = _f64(points).reshape(-1, 3)
    c, s = _f64(center).reshape(-1, 3), _f64(size).reshape(-1, 3)
    r = quat_to_matrix(_f64(quat).reshape(-1, 4))
    d = p[:, None, :] - c[None, :, :]
    local = np.einsum("nji,mnj->mni", r, d)
    return np.all(np.abs(local) <= s[None, :, :] / 2 + tolerance, axis=-1)


def count_points_in_cuboids(
    points: npt.ArrayLike,
    center: npt.ArrayLike,
    size: npt.ArrayLike,
    quat: npt.ArrayLike,
    *,
    tolerance: float = 0.0,
    chunk: int = 1 << 21,
) -> npt.NDArray[np.int64]:
    """Number of points inside each cuboid, ``(n,)`` int64, in bounded memory.

    Works in blocks of about ``chunk`` point-box pairs; before the exact test, points outside a
    box's bounding sphere are skipped cheaply (a sorted sweep on x), so large scenes stay fast.

    Examples
    --------
    >>> pts = np.array([[0.0, 0, 0], [1.9, 0.9, 0.9], [2.1, 0, 0]])
    >>> count_points_in_cuboids(pts, [[0.0, 0, 0]], [[4.0, 2, 2]], [[0, 0, 0, 1]]).tolist()
    [2]
    """
    p = _f64(points).reshape(-1, 3)
    c, s = _f64(center).reshape(-1, 3), _f64(size).reshape(-1, 3)
    q = _f64(quat).reshape(-1, 4)
    counts = np.zeros(len(c), dtype=np.int64)
    if len(p) == 0 or len(c) == 0:
        return counts
    order = np.argsort(p[:, 0], kind="stable")
    ps = p[order]
    xs = ps[:, 0]
    radius = np.linalg.norm(s, axis=1) / 2 + tolerance
    lo = np.searchsorted(xs, c[:, 0] - radius, side="left")
    hi = np.searchsorted(xs, c[:, 0] + radius, side="right")
    span = hi - lo
    # Boxes in order; each block holds boxes whose x-slabs together stay under `chunk` points.
    box_order = np.argsort(lo, kind="stable")
    start = 0
    while start < len(box_order):
        total, stop = 0, start
        while stop < len(box_order) and (stop == start or total + span[box_order[stop]] <= chunk):
            total += int(span[box_order[stop]])
            stop += 1
        boxes = box_order[start:stop]
        counts[boxes] = _count_block(
            ps, lo[boxes], hi[boxes], c[boxes], s[boxes], q[boxes], tolerance
        )
        start = stop
    return counts


def _count_block(
    ps: Array, lo: Any, hi: Any, c: Array, s: Array, q: Array, tol: float
) -> npt.NDArray[np.int64]:
    n = hi - lo
    if int(n.sum()) == 0:
        return np.zeros(len(c), dtype=np.int64)
    box = np.repeat(np.arange(len(c)), n)
    idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
    local = np.einsum("kji,kj->ki", quat_to_matrix(q)[box], ps[idx] - c[box])
    inside = np.all(np.abs(local) <= s[box] / 2 + tol, axis=1)
    return np.bincount(box[inside], minlength=len(c)).astype(np.int64)


# -- projection -------------------------------------------------------------------------


def project_points(
    points: npt.ArrayLike,
    fx: npt.ArrayLike,
    fy: npt.ArrayLike,
    cx: npt.ArrayLike,
    cy: npt.ArrayLike,
    *,
    model: str | npt.ArrayLike = "pinhole",
    distortion: npt.ArrayLike | None = None,
) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Project camera-frame points ``(n, ..., 3)`` to pixels ``(n, ..., 2)`` with distortion.

    Intrinsics (``fx, fy, cx, cy``: scalars or ``(n,)``), ``model`` (a name or ``(n,)`` names
    from :data:`DISTORTION_MODELS`) and ``distortion`` (``(6,)`` or ``(n, 6)`` as
    ``(k1, k2, p1, p2, k3, k4)``) apply per row ``n``. Camera axes: x right, y down, z forward.
    Pixels come out in the convention of the intrinsics, ``u = fx x/z + cx``: for OpenCV-style
    calibrations (Deepen's upload format, KITTI's ``P2``) integer coordinates are pixel *centres*;
    add 0.5 to get the model's pixel-corner convention.

    Returns ``(uv, in_front)``: ``in_front`` is ``z > 0`` (pinhole) or the angle from the optical
    axis below 90 degrees (fisheye models also project points up to 180 degrees, flagged
    ``False``); ``uv`` is NaN where a pinhole point is not in front.

    Examples
    --------
    >>> uv, ok = project_points([[2.0, -1.0, 10.0]], 1000.0, 1000.0, 640.0, 360.0)
    >>> uv.tolist(), ok.tolist()
    ([[840.0, 260.0]], [True])
    """
    p = _f64(points)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    fx_, fy_, cx_, cy_ = (_rows(v, x) for v in (fx, fy, cx, cy))
    dist = np.zeros(6) if distortion is None else _f64(distortion)
    if dist.shape[-1:] != (6,):
        raise ValueError(f"distortion must have shape (6,) or (n, 6), got {dist.shape}")
    k = [_rows(dist[..., i], x) for i in range(6)]
    names = np.asarray(model, dtype=object).astype(str)
    unknown = set(np.unique(names).tolist()) - set(DISTORTION_MODELS)
    if unknown:
        raise ValueError(f"unknown camera model(s) {sorted(unknown)}; known: {DISTORTION_MODELS}")
    fish = _rows(names != "pinhole", x)

    any_fish, all_fish = bool(np.any(fish)), bool(np.all(fish))
    with np.errstate(divide="ignore", invalid="ignore"):
        if not all_fish:
            xd, yd, front = _brown_conrady(x, y, z, k)
        if any_fish:
            xf, yf, theta = _kannala_brandt(x, y, z, k)
    if all_fish:
        xs, ys, ok = xf, yf, theta < np.pi / 2
    elif not any_fish:
        xs, ys, ok = xd, yd, front
    else:
        xs, ys = np.where(fish, xf, xd), np.where(fish, yf, yd)
        ok = np.where(fish, theta < np.pi / 2, front)
    u = xs * fx_ + cx_
    v = ys * fy_ + cy_
    return np.stack([u, v], axis=-1), ok


def _brown_conrady(x: Array, y: Array, z: Array, k: list[Any]) -> tuple[Any, Any, Any]:
    # OpenCV order k1 k2 p1 p2 k3 k4; k4 is the rational model's first denominator term
    front = z > 0
    xn, yn = x / z, y / z
    if not any(np.any(c != 0) for c in k):
        return np.where(front, xn, np.nan), np.where(front, yn, np.nan), front
    r2 = xn * xn + yn * yn
    radial = (1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))) / (1 + k[5] * r2)
    xd = xn * radial + 2 * k[2] * xn * yn + k[3] * (r2 + 2 * xn * xn)
    yd = yn * radial + k[2] * (r2 + 2 * yn * yn) + 2 * k[3] * xn * yn
    return np.where(front, xd, np.nan), np.where(front, yd, np.nan), front


def _kannala_brandt(x: Array, y: Array, z: Array, k: list[Any]) -> tuple[Any, Any, Any]:
    # equidistant fisheye: k1..k4 in the slots of k1, k2, k3, k4 (0, 1, 4, 5)
    rxy = np.hypot(x, y)
    theta = np.arctan2(rxy, z)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[4] + t2 * k[5]))))
    scale = np.where(rxy > 0, theta_d / np.where(rxy > 0, rxy, 1.0), 1.0 / np.where(z > 0, z, 1.0))
    return x * scale, y * scale, theta


def _rows(a: Any, like: Array) -> Any:
    """Per-row values ``(n,)`` reshaped to broadcast against ``like (n, ...)``; scalars as they are."""
    a = np.asarray(a)
    return a if a.ndim == 0 else a.reshape(a.shape + (1,) * (like.ndim - a.ndim))
