"""The frame layout of the 3D sequence formats: sequences, frame order, LiDAR and camera frames.

Shared by kitti, kitti_tracking, openlabel, semantickitti, nuscenes and t4 (each format adds
only its own file names). Frame roles are the model's (:attr:`Frames.role`); here they become:

- :func:`layout`: which ``Frames`` rows become the format's frames and in which order. 3D data
  (cuboids or device poses): one frame per LiDAR frame (every row that is not a camera view),
  in sequence order (dataset, ``Frames.index``, file id); a camera view maps to its LiDAR frame.
  Image data: one frame per image, same order.
- :func:`sequences`: the frames of one ``dataset_id`` are a sequence; each frame's number in it.
- :func:`calibration`: per frame, the device pose, the chosen camera's pose and intrinsics and
  the image size; :func:`velo_to_cam` the LiDAR -> camera transforms; :func:`lidar_points` the
  scans in the LiDAR frame.
- :func:`image_ext`, :func:`load_map`: image file extensions and name -> id maps of the
  point-segmentation formats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import KINDS, Cameras, FrameRole, FrameStatus, LabelSet, Poses

__all__ = [
    "LIDAR_TO_CAM",
    "Calibration",
    "Layout",
    "calibration",
    "image_ext",
    "layout",
    "lidar_points",
    "load_map",
    "pose_index",
    "sequences",
    "velo_to_cam",
]

Array = npt.NDArray[Any]

LIDAR_TO_CAM = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""KITTI camera axes from LiDAR axes: ``x_cam = -y, y_cam = -z, z_cam = x`` (``p_cam = A p``)."""
_VIRTUAL_CAM_QUAT = sp.matrix_to_quat(LIDAR_TO_CAM.T)


# -- which frames, in which order ----------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which ``Frames`` rows become a format's frames, in output order.

    ``rows[i]`` is the Frames row of output frame ``i``; ``position[r]`` is the output frame of
    Frames row ``r`` (camera rows map to their LiDAR frame), -1 when none.
    """

    three_d: bool
    rows: Array
    position: Array


def layout(
    labels: LabelSet, *, three_d: bool | None = None, skip_unlabelled: bool = False
) -> Layout:
    """The frames of ``labels`` in output order (module docstring: which frames, which order).

    Parameters
    ----------
    labels : LabelSet
    three_d : bool, optional
        Force LiDAR-frame mode (``None``: when there are cuboids or device poses).
    skip_unlabelled : bool
        Leave out frames whose status says they are not labelled yet (and that carry no label).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["b.png", "a.png"], index=[1, 0]))
    >>> lay = layout(ls)
    >>> lay.rows.tolist(), lay.position.tolist()
    ([1, 0], [1, 0])
    """
    fr = labels.frames
    if three_d is None:
        three_d = bool(len(labels.cuboids) or len(labels.poses))
    n = len(fr)
    # a sequence frame is a LiDAR frame or a plain image; camera views hang on their LiDAR frame
    base = fr.role != FrameRole.CAMERA if three_d else np.ones(n, dtype=bool)
    if skip_unlabelled:
        used = np.zeros(n, dtype=bool)
        for k in KINDS:
            used[labels.table(k).frame] = True  # type: ignore[attr-defined]
        base &= (fr.status != int(FrameStatus.UNLABELLED)) | used
    rows = labels.sequence_order(np.flatnonzero(base))
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    if three_d:
        key_pos = {(fr.dataset_id[r], fr.file_id[r]): p for p, r in enumerate(rows.tolist())}
        for r in np.flatnonzero(~base).tolist():
            position[r] = key_pos.get((fr.dataset_id[r], fr.file_id[r]), -1)
    return Layout(three_d, rows, position)


def sequences(labels: LabelSet, lay: Layout) -> tuple[Array, Array, list[str]]:
    """``(sequence, frame in sequence)`` of every laid-out frame, and each sequence's dataset id.

    A sequence is the frames of one ``dataset_id`` (the layout keeps them together).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a", "b", "c"], dataset_id=["x", "x", "y"]))
    >>> seq, fno, names = sequences(ls, layout(ls))
    >>> seq.tolist(), fno.tolist(), names
    ([0, 0, 1], [0, 1, 0], ['x', 'y'])
    """
    ds = labels.frames.dataset_id[lay.rows].astype(str)
    names = list(dict.fromkeys(ds.tolist()))
    seq = np.array([names.index(d) for d in ds.tolist()], dtype=np.int64)
    start = np.searchsorted(seq, np.arange(len(names)))
    return seq, np.arange(len(seq)) - start[seq], names


def pose_index(labels: LabelSet, rows: Array) -> Array:
    """The ``Poses`` row of every Frames row in ``rows`` (-1 where the frame has no pose).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet, Poses
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a", "b"]),
    ...               poses=Poses.from_columns(frame=[1], position=[[0, 0, 0]], quat=[[0, 0, 0, 1]]))
    >>> pose_index(ls, np.array([0, 1])).tolist()
    [-1, 0]
    """
    pose_of = np.full(len(labels.frames), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    return pose_of[rows]


# -- calibration per frame -----------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Per laid-out frame: device pose, camera pose (camera -> world), intrinsics, image size.

    ``virtual`` is the LiDAR-only case: the "camera" is the LiDAR with KITTI's axis swap
    (:data:`LIDAR_TO_CAM`), unit intrinsics and unknown image sizes.
    """

    lidar_pos: Array
    lidar_quat: Array
    cam_pos: Array
    cam_quat: Array
    fx: Array
    fy: Array
    cx: Array
    cy: Array
    model: Array
    distortion: Array
    width: Array
    height: Array
    image_path: Array
    virtual: bool


def _missing(labels: LabelSet, rows: Array, what: str, fmt: str, hint: str) -> ConversionError:
    ids = [str(labels.frames.file_id[r]) for r in rows[:5]]
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ConversionError(f"{fmt}: no {what} for frame(s) {', '.join(ids)}{more}; {hint}")


def calibration(
    labels: LabelSet,
    lay: Layout,
    camera: str | None,
    *,
    assume_identity_pose: bool = False,
    fmt: str,
    hint: str = "",
) -> Calibration:
    """The calibration of every laid-out frame with ``camera`` (``None``: LiDAR only).

    Raises :class:`ConversionError` naming the frames without a device pose (unless
    ``assume_identity_pose``) or without a calibration of ``camera``; ``hint`` says what to do.

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet, Poses
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"]),
    ...               poses=Poses.from_columns(frame=[0], position=[[1, 2, 3]], quat=[[0, 0, 0, 1]]))
    >>> cal = calibration(ls, layout(ls), None, fmt="kitti")
    >>> cal.virtual, cal.lidar_pos.tolist()
    (True, [[1.0, 2.0, 3.0]])
    """
    lidar_pos, lidar_quat = _device_poses(labels, lay, assume_identity_pose, fmt, hint)
    k = len(lay.rows)
    if camera is None:
        return Calibration(
            lidar_pos, lidar_quat, lidar_pos.copy(),
            sp.quat_multiply(lidar_quat, _VIRTUAL_CAM_QUAT),
            np.ones(k), np.ones(k), np.zeros(k), np.zeros(k),
            np.full(k, "pinhole", dtype=object), np.zeros((k, 6)),
            np.full(k, -1, dtype=np.int64), np.full(k, -1, dtype=np.int64),
            np.full(k, "", dtype=object), True,
        )  # fmt: skip
    cams: Cameras = labels.cameras
    sel = np.flatnonzero(cams.sensor_id == camera) if len(cams) else np.zeros(0, dtype=np.int64)
    cam_of = np.full(len(labels.frames), -1, dtype=np.int64)
    cam_of[cams.frame[sel]] = sel
    ci = cam_of[lay.rows]
    if np.any(ci < 0):
        raise _missing(labels, lay.rows[ci < 0], f"calibration of {camera!r}", fmt, hint)
    c = cams.take(ci)
    width, height = _image_sizes(labels, lay, camera, c)
    return Calibration(
        lidar_pos, lidar_quat, c.position, c.quat, c.fx, c.fy, c.cx, c.cy, c.model,
        c.distortion, width, height, c.image_path, False,
    )  # fmt: skip


def _device_poses(
    labels: LabelSet, lay: Layout, assume_identity_pose: bool, fmt: str, hint: str
) -> tuple[Array, Array]:
    """``(position, quat)`` of every laid-out frame's device pose (identity where missing)."""
    k = len(lay.rows)
    pi = pose_index(labels, lay.rows)
    if np.any(pi < 0) and not assume_identity_pose:
        raise _missing(labels, lay.rows[pi < 0], "device pose", fmt, hint)
    poses: Poses = labels.poses
    has = (pi >= 0)[:, None]
    lidar_pos = np.where(has, poses.position[np.maximum(pi, 0)] if len(poses) else 0.0, 0.0)
    ident = np.tile([0.0, 0.0, 0.0, 1.0], (k, 1))
    lidar_quat = np.where(has, poses.quat[np.maximum(pi, 0)] if len(poses) else ident, ident)
    return lidar_pos, lidar_quat


def _image_sizes(labels: LabelSet, lay: Layout, camera: str, c: Cameras) -> tuple[Array, Array]:
    """Image size per frame: the calibration's, else the camera frame row's."""
    width = np.asarray(c.width, dtype=np.int64).copy()
    height = np.asarray(c.height, dtype=np.int64).copy()
    fr = labels.frames
    cam_rows = np.flatnonzero(fr.sensor_id == camera)
    pos = lay.position[cam_rows]
    ok = (pos >= 0) & (fr.width[cam_rows] > 0)
    unknown = width[pos[ok]] <= 0
    width[pos[ok][unknown]] = fr.width[cam_rows[ok][unknown]]
    height[pos[ok][unknown]] = fr.height[cam_rows[ok][unknown]]
    return width, height


def velo_to_cam(cal: Calibration) -> Array:
    """``(k, 3, 4)`` LiDAR -> camera transforms ``[R | t]`` of every frame.

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]))
    >>> velo_to_cam(calibration(ls, layout(ls, three_d=True), None, assume_identity_pose=True,
    ...                         fmt="kitti"))[0].round(6).tolist()[0]
    [0.0, -1.0, 0.0, 0.0]
    """
    t, q = sp.relative_pose(cal.lidar_pos, cal.lidar_quat, cal.cam_pos, cal.cam_quat)
    return sp.transform_matrix(t, q)[:, :3, :]


def lidar_points(labels: LabelSet, lay: Layout, cal: Calibration) -> dict[int, Array]:
    """``{frame: (N, 4) float32}`` LiDAR-frame points with intensity (0 when unknown).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]))
    >>> lidar_points(ls, layout(ls, three_d=True), calibration(
    ...     ls, layout(ls, three_d=True), None, assume_identity_pose=True, fmt="kitti"))
    {}
    """
    pc = labels.pointclouds
    out: dict[int, Array] = {}
    if not len(pc):
        return out
    pos = lay.position[pc.frame]
    counts = np.diff(pc.offsets)
    f_of_pt = np.repeat(pos, counts)
    xyz = sp.to_sensor(
        pc.xyz, cal.lidar_pos[np.maximum(f_of_pt, 0)], cal.lidar_quat[np.maximum(f_of_pt, 0)]
    )
    inten = np.nan_to_num(pc.intensity.astype(np.float32), nan=0.0)
    data = np.column_stack([xyz.astype(np.float32), inten])
    for i, p in enumerate(pos.tolist()):
        if p >= 0:
            out[p] = data[pc.offsets[i] : pc.offsets[i + 1]]
    return out


# -- files ---------------------------------------------------------------------------------


def image_ext(rel: str) -> str:
    """Lower-case extension of an image path, ``.png`` when it has none.

    Examples
    --------
    >>> image_ext("cam/0001.JPG"), image_ext("cam/0001")
    ('.jpg', '.png')
    """
    ext = os.path.splitext(rel)[1].lower()
    return ext if ext else ".png"


def load_map(label_map: Mapping[str, int] | str | os.PathLike[str] | None) -> dict[str, int]:
    """A name -> id mapping from a dict, a JSON object string, or a YAML / JSON file path.

    Examples
    --------
    >>> load_map('{"car": 10}'), load_map({"kerb": "49"}), load_map(None)
    ({'car': 10}, {'kerb': 49}, {})
    """
    if label_map is None:
        return {}
    if isinstance(label_map, Mapping):
        return {str(k): int(v) for k, v in label_map.items()}
    text = str(label_map)
    if text.lstrip().startswith("{"):
        data = json.loads(text)
    else:
        data = yaml.safe_load(Path(text).read_text("utf-8"))
        if isinstance(data, dict) and "deepen_categories" in data:
            data = data["deepen_categories"]
    if not isinstance(data, dict):
        raise ConversionError(f"label_map must map names to ids, got {type(data).__name__}")
    return {str(k): int(v) for k, v in data.items()}
