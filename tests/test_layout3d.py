"""The shared 3D frame layout (``converters._layout3d``) and the rule that made it: a format
module uses only the public names (``__all__``) of another format module.

Before, ``kitti.py`` was a hidden library: kitti_tracking used 24 of its private names and
openlabel, semantickitti and the nuScenes tables its frame layout.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

import converters
from converters import _layout3d as l3
from deepen_export.errors import ConversionError
from deepen_export.model import Cameras, Frames, LabelSet, Poses

ROOT = Path(__file__).resolve().parents[1]
FORMAT_MODULES = {f"converters.{name}" for name in converters.FORMATS}


def _uses_of_format_modules(path: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` of every name a file takes from a format module."""
    tree = ast.parse(path.read_text("utf-8"))
    alias: dict[str, str] = {}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "converters":
            for a in node.names:
                if f"converters.{a.name}" in FORMAT_MODULES:
                    alias[a.asname or a.name] = f"converters.{a.name}"
        elif isinstance(node, ast.ImportFrom) and node.module in FORMAT_MODULES:
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in FORMAT_MODULES and a.asname:
                    alias[a.asname] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in alias
        ):
            out.append((alias[node.value.id], node.attr, node.lineno))
    return out


def _package_files() -> list[Path]:
    return sorted((ROOT / "converters").glob("*.py")) + sorted(
        (ROOT / "deepen_export").rglob("*.py")
    )


# the lane formats' shared preparation still lives in tusimple (issue 11, lanes part): remove
# these when it moves to a shared module
KNOWN = {
    ("converters/culane.py", "converters.tusimple", "prepare"),
    ("converters/culane.py", "converters.tusimple", "report_lane_categories"),
}


def test_no_module_uses_private_names_of_a_format_module() -> None:
    bad = []
    for path in _package_files():
        own = f"converters.{path.stem}" if path.parent.name == "converters" else ""
        for module, name, line in _uses_of_format_modules(path):
            public = importlib.import_module(module).__all__
            known = (str(path.relative_to(ROOT)), module, name) in KNOWN
            if module != own and name not in public and not known:
                bad.append(f"{path.relative_to(ROOT)}:{line} uses {module}.{name}")
    assert bad == []


def test_the_rule_catches_a_private_use(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from converters import kitti\nfrom converters.lidarseg import token, class_indices\n"
        "x = kitti.read, kitti.build_rows\n"
    )
    uses = {(m, n) for m, n, _ in _uses_of_format_modules(probe)}
    private = {(m, n) for m, n in uses if n not in importlib.import_module(m).__all__}
    assert private == {("converters.kitti", "build_rows"), ("converters.lidarseg", "class_indices")}


def _sequence() -> LabelSet:
    # two datasets; "s2" listed first in the table but ordered by (dataset, index, file id);
    # camera rows hang on the LiDAR frame of the same (dataset, file id)
    frames = Frames.from_columns(
        file_id=["1.pcd", "0.pcd", "0.pcd", "5.pcd", "1.pcd"],
        dataset_id=["s1", "s1", "s1", "s2", "s1"],
        sensor_id=["lidar", "lidar", "camera_0", "lidar", "camera_0"],
        index=[1, 0, 0, 0, 1],
        width=[-1, -1, 640, -1, -1],
        height=[-1, -1, 480, -1, -1],
    )
    poses = Poses.from_columns(
        frame=[0, 1, 3], position=[[1, 0, 0], [0, 0, 0], [0, 5, 0]], quat=[[0, 0, 0, 1]] * 3
    )
    cams = Cameras.from_columns(
        frame=[0, 1, 3], sensor_id=["camera_0"] * 3, fx=[500] * 3, fy=[500] * 3,
        cx=[320] * 3, cy=[240] * 3, position=[[1, 0, 1], [0, 0, 1], [0, 5, 1]],
        quat=[[0, 0, 0, 1]] * 3, width=[-1, -1, 800], height=[-1, -1, 600],
    )  # fmt: skip
    return LabelSet(frames=frames, poses=poses, cameras=cams)


def test_layout_sequences_and_camera_rows() -> None:
    ls = _sequence()
    lay = l3.layout(ls)
    assert lay.three_d
    assert lay.rows.tolist() == [1, 0, 3]  # s1/0.pcd, s1/1.pcd, s2/5.pcd
    assert lay.position.tolist() == [1, 0, 0, 2, 1]  # camera rows 2 and 4 on their LiDAR frame
    seq, fno, names = l3.sequences(ls, lay)
    assert (seq.tolist(), fno.tolist(), names) == ([0, 0, 1], [0, 1, 0], ["s1", "s2"])


def test_calibration_sizes_and_missing_frames() -> None:
    ls = _sequence()
    lay = l3.layout(ls)
    cal = l3.calibration(ls, lay, "camera_0", fmt="kitti")
    # size: the calibration's when known (s2), else the camera frame's (s1/0.pcd), else unknown
    assert cal.width.tolist() == [640, -1, 800] and cal.height.tolist() == [480, -1, 600]
    # LiDAR -> camera: the camera sits 1 m above the LiDAR with the same axes
    np.testing.assert_allclose(l3.velo_to_cam(cal)[:, :, 3], [[0, 0, -1]] * 3)
    with pytest.raises(ConversionError, match=r"kitti: no calibration of 'camera_9' .*0\.pcd"):
        l3.calibration(ls, lay, "camera_9", fmt="kitti", hint="pass the zip")
    no_pose = ls.replace(poses=ls.poses.take(np.array([1, 2])))
    with pytest.raises(ConversionError, match=r"no device pose for frame\(s\) 1\.pcd; pass"):
        l3.calibration(no_pose, lay, "camera_0", fmt="kitti", hint="pass the zip")
    ident = l3.calibration(no_pose, lay, None, assume_identity_pose=True, fmt="kitti")
    assert ident.virtual and ident.lidar_pos.tolist()[1] == [0.0, 0.0, 0.0]
