"""The uploaded 3D frames (``json_data.zip``: one JSON per frame) -> poses, cameras, points."""

from __future__ import annotations

import io
import math
import os
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson

from deepen_export._media import member_size
from deepen_export.errors import ParseError
from deepen_export.model import (
    DISTORTION_NAMES,
    Cameras,
    FrameRole,
    Frames,
    LabelSet,
    PointClouds,
    Poses,
)
from deepen_export.parse._assemble import _offsets, natural_key
from deepen_export.report import Issue


@dataclass
class FramesData:
    """What the uploaded 3D frames hold: per-frame device pose, cameras and points."""

    names: list[str]
    poses: list[dict[str, Any]]
    cameras: list[list[dict[str, Any]]]
    points: list[np.ndarray]
    intensity: list[np.ndarray]
    image_sizes: dict[str, tuple[int, int]]
    issues: list[Issue]


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return not (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in p.parts)


def _xyz(d: Any, keys: Sequence[str] = ("x", "y", "z")) -> list[float]:
    if isinstance(d, Mapping):
        return [float(d[k]) for k in keys]
    return [float(v) for v in d][: len(keys)]


def _points_array(pts: Any, name: str, path: str | None) -> tuple[np.ndarray, np.ndarray]:
    """A frame's ``points``: objects with x, y, z (and i), or rows [x, y, z(, i)]."""
    if pts is None or (isinstance(pts, list) and not pts):
        return np.zeros((0, 3)), np.zeros(0, dtype=np.float32)
    if not isinstance(pts, list):
        raise ParseError(
            f"frame {name}: points must be a list, not {type(pts).__name__}", path=path
        )
    rows: list[tuple[Any, ...]] = []  # its length names the point that failed
    try:
        if isinstance(pts[0], Mapping):
            for p in pts:
                rows.append((p["x"], p["y"], p["z"], p.get("i", np.nan)))
            a = np.array(rows, dtype=np.float64)
        else:
            a = np.array(pts, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] < 3:
                raise ValueError("rows of [x, y, z] or [x, y, z, i] expected")
            a = a if a.shape[1] > 3 else np.column_stack([a, np.full(len(a), np.nan)])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        detail = f"lacks {exc}" if isinstance(exc, KeyError) else f"is bad ({exc})"
        raise ParseError(f"frame {name}: points[{len(rows)}] {detail}", path=path) from exc
    return a[:, :3], a[:, 3].astype(np.float32)


def parse_frames_zip(source: str | os.PathLike[str] | bytes, *, points: bool = True) -> FramesData:
    """Read the uploaded 3D dataset zip: one JSON per frame at the root, sorted by name.

    Entries whose names are absolute or contain ``..`` are never read or extracted; each is
    listed in ``issues``. Frame order is the natural order of the JSON names (``2.json`` before
    ``10.json``), which equals Deepen's ascending order for zero-padded names.

    Parameters
    ----------
    source : path or bytes
        The zip (``json_data.zip`` or the dataset zip downloaded by ``pull --media``).
    points : bool
        Read the point clouds too (set False when only calibration is needed).

    Returns
    -------
    FramesData

    Examples
    --------
    >>> import io, json, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("0.json", json.dumps({"points": [{"x": 1, "y": 2, "z": 3}], "images": [],
    ...         "device_position": {"x": 0, "y": 0, "z": 0}, "device_heading": {"x": 0, "y": 0, "z": 0, "w": 1}}))
    >>> parse_frames_zip(buf.getvalue()).names
    ['0.json']
    """
    path = None if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    try:
        zf = zipfile.ZipFile(
            io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        )
    except (zipfile.BadZipFile, OSError) as exc:
        raise ParseError(f"not a readable zip: {exc}", path=path) from exc
    data = FramesData([], [], [], [], [], {}, [])
    with zf:
        members = _safe_members(zf, data.issues)
        for name in _frame_jsons(members):
            try:
                frame = orjson.loads(_read_member(zf, members[name], path))
            except orjson.JSONDecodeError as exc:
                raise ParseError(f"frame {name} is not valid JSON: {exc}", path=path) from exc
            if not isinstance(frame, Mapping):
                data.issues.append(Issue("skipped", "frame JSON is not an object", file_id=name))
                continue
            xyz, inten = (
                _points_array(frame.get("points"), name, path)
                if points
                else (np.zeros((0, 3)), np.zeros(0, np.float32))
            )
            data.names.append(name)
            data.poses.append(_pose(frame, name, path, data.issues))
            data.cameras.append(
                [_camera(im, k, name, path) for k, im in enumerate(_images(frame, name, path))]
            )
            data.points.append(xyz)
            data.intensity.append(inten)
        wanted = {c["image_path"] for cams in data.cameras for c in cams}
        for name, info in members.items():
            if name in wanted or name.lower().endswith((".png", ".jpg", ".jpeg")):
                size = _image_size(zf, info)
                if size:
                    data.image_sizes[name] = size
    return data


def _safe_members(zf: zipfile.ZipFile, issues: list[Issue]) -> dict[str, zipfile.ZipInfo]:
    """The zip's files by name; entries that point outside the archive are reported, not read."""
    members = {}
    for info in zf.infolist():
        if info.is_dir():
            continue
        if not _safe_member(info.filename):
            issues.append(
                Issue(
                    "skipped",
                    f"zip entry {info.filename!r} points outside the archive folder: not read",
                    file_id=info.filename,
                )
            )
            continue
        members[info.filename] = info
    return members


def _frame_jsons(members: Mapping[str, Any]) -> list[str]:
    """The frame JSONs: at the root, or in the one top folder; in natural name order."""
    jsons = [n for n in members if n.lower().endswith(".json") and "/" not in n.strip("/")]
    if not jsons:
        tops = {n.split("/")[0] for n in members if n.lower().endswith(".json")}
        if len(tops) == 1:
            top = tops.pop()
            jsons = [
                n
                for n in members
                if n.lower().endswith(".json") and n.count("/") == 1 and n.startswith(top + "/")
            ]
    return sorted(jsons, key=lambda n: natural_key(PurePosixPath(n).name))


# zipfile raises these for a corrupt member: a bad CRC, a broken deflate stream, a cut file
_BAD_MEMBER = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


# A frame JSON compresses 3-20x; a member that claims far more than that of its compressed bytes
# (beyond a size no frame reaches) is a zip bomb: refused before it is inflated.
_MAX_RATIO = 200
_RATIO_FROM = 64 << 20


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str | None) -> bytes:
    """A zip member's bytes; a corrupt or bomb-like member is one ParseError naming it."""
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > _RATIO_FROM and size > _MAX_RATIO * packed:
        raise ParseError(
            f"zip entry {info.filename!r} claims {size:,} bytes from {packed:,} compressed "
            f"(over {_MAX_RATIO}x): refused as a zip bomb; check the upload",
            path=path,
        )
    try:
        with zf.open(info) as fh:
            data = fh.read(size + 1)  # never more than the member declares (and one byte)
    except _BAD_MEMBER as exc:
        raise ParseError(
            f"zip entry {info.filename!r} is corrupt ({exc}); download the zip again", path=path
        ) from exc
    if len(data) > size:
        raise ParseError(
            f"zip entry {info.filename!r} holds more than the {size:,} bytes it declares",
            path=path,
        )
    return data


def _images(frame: Mapping[str, Any], name: str, path: str | None) -> list[Any]:
    images = frame.get("images")
    if images is None:
        return []
    if not isinstance(images, list):
        raise ParseError(
            f"frame {name}: images must be a list of camera objects, not {type(images).__name__}",
            path=path,
        )
    return images


def _pose(
    frame: Mapping[str, Any], name: str, path: str | None, issues: list[Issue]
) -> dict[str, Any]:
    """The device pose; a missing one is taken as the origin/identity *and reported*."""
    missing = [k for k in ("device_position", "device_heading") if frame.get(k) is None]
    if missing:
        issues.append(
            Issue(
                "changed",
                f"frame has no {' or '.join(missing)}: taken as the origin/identity pose "
                "(LiDAR points already in world coordinates); calibration may be wrong",
                file_id=name,
            )
        )
    try:
        pose: dict[str, Any] = {
            "position": _xyz(frame.get("device_position") or {"x": 0, "y": 0, "z": 0}),
            "quat": _xyz(
                frame.get("device_heading") or {"x": 0, "y": 0, "z": 0, "w": 1},
                ("x", "y", "z", "w"),
            ),
            "timestamp": float(frame.get("timestamp", math.nan) or math.nan),
        }
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ParseError(
            f"frame {name} has a bad device_position/device_heading: {exc}", path=path
        ) from exc
    _check_pose(pose["position"], pose["quat"], f"frame {name}: device_heading", path)
    return pose


def _check_pose(position: list[float], quat: list[float], where: str, path: str | None) -> None:
    """A rotation needs a finite, non-zero quaternion (a zero one is no rotation at all)."""
    if len(position) != 3 or len(quat) != 4:
        raise ParseError(f"{where}: position needs x, y, z and heading x, y, z, w", path=path)
    norm = math.sqrt(sum(q * q for q in quat)) if all(map(math.isfinite, quat)) else math.nan
    if not (norm > 1e-9) or not all(map(math.isfinite, position)):
        raise ParseError(
            f"{where} is not a rotation (quaternion {quat}, position {position}): "
            "a zero or non-finite pose",
            path=path,
        )


def _camera(im: Any, k: int, name: str, path: str | None) -> dict[str, Any]:
    try:
        cam: dict[str, Any] = {
            "sensor_id": f"camera_{k}",
            "fx": float(im["fx"]),
            "fy": float(im["fy"]),
            "cx": float(im["cx"]),
            "cy": float(im["cy"]),
            "model": str(im.get("camera_model") or "pinhole"),
            "distortion": [float(im.get(c, 0.0) or 0.0) for c in DISTORTION_NAMES],
            "position": _xyz(im["position"]),
            "quat": _xyz(im["heading"], ("x", "y", "z", "w")),
            "image_path": str(im.get("image_url") or ""),
            "timestamp": float(im.get("timestamp", math.nan) or math.nan),
        }
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ParseError(f"frame {name}, image {k}: missing or bad field {exc}", path=path) from exc
    _check_pose(cam["position"], cam["quat"], f"frame {name}, image {k}: heading", path)
    return cam


_image_size = member_size  # the one image-size reader (deepen_export._media)


def _frame_stem(file_id: str) -> str:
    return PurePosixPath(file_id).stem


def _attach_frames_data(labels: LabelSet, data: FramesData, dataset_id: str) -> LabelSet:
    """Add poses, cameras, points and image sizes from the uploaded frames to a LabelSet.

    The frames zip says the dataset is a 3D one, so this is where its frames' roles are
    recorded: every row of the dataset that is not a camera view is a LiDAR frame.
    """
    cols, lidar_rows = _frame_columns(labels.frames, data, dataset_id)
    cameras = _cameras(data, lidar_rows, cols, dataset_id)
    poses = Poses.from_columns(
        frame=lidar_rows,
        position=np.array([p["position"] for p in data.poses], dtype=np.float64).reshape(-1, 3),
        quat=np.array([p["quat"] for p in data.poses], dtype=np.float64).reshape(-1, 4),
        timestamp=[p["timestamp"] for p in data.poses],
    )
    pcs = PointClouds.from_columns(
        frame=lidar_rows,
        offsets=_offsets(len(p) for p in data.points),
        xyz=np.concatenate(data.points) if data.points else np.zeros((0, 3)),
        intensity=np.concatenate(data.intensity) if data.intensity else np.zeros(0, np.float32),
    )
    return labels.replace(
        frames=Frames.from_columns(**cols),
        poses=poses,
        cameras=cameras,
        pointclouds=pcs if len(pcs.xyz) else PointClouds.empty(),
        issues=(*labels.issues, *data.issues),
    )


def _frame_columns(
    fr: Frames, data: FramesData, dataset_id: str
) -> tuple[dict[str, list[Any]], list[int]]:
    """Frame columns with one LiDAR row per frame JSON (new rows for frames without labels)."""
    cols: dict[str, list[Any]] = {k: getattr(fr, k).tolist() for k in Frames.COLUMNS}
    ours = [
        d == dataset_id and r != FrameRole.CAMERA
        for d, r in zip(fr.dataset_id, fr.role, strict=True)
    ]
    by_stem: dict[str, int] = {}
    for i, f in enumerate(fr.file_id):
        if ours[i]:
            by_stem.setdefault(_frame_stem(f), i)
            cols["role"][i] = int(FrameRole.LIDAR)
    lidar_rows: list[int] = []
    for k, name in enumerate(data.names):
        stem = _frame_stem(name)
        if stem not in by_stem:
            by_stem[stem] = len(cols["file_id"])
            new = {"file_id": f"{stem}.pcd", "sensor_id": "lidar", "dataset_id": dataset_id,
                   "index": k, "role": int(FrameRole.LIDAR)}  # fmt: skip
            for c, spec in Frames.COLUMNS.items():
                cols[c].append(new.get(c, spec.fill))
        lidar_rows.append(by_stem[stem])
    stem_to_k = {_frame_stem(n): k for k, n in enumerate(data.names)}
    for i, (d, f) in enumerate(zip(cols["dataset_id"], cols["file_id"], strict=True)):
        if d == dataset_id and _frame_stem(f) in stem_to_k:
            cols["index"][i] = stem_to_k[_frame_stem(f)]
    return cols, lidar_rows


_CAMERA_KEYS = ("sensor_id", "fx", "fy", "cx", "cy", "model", "distortion", "position", "quat",
                "image_path", "timestamp")  # fmt: skip


def _cameras(
    data: FramesData, lidar_rows: list[int], cols: dict[str, list[Any]], dataset_id: str
) -> Cameras:
    """The cameras of every frame; their views (frame rows) take the image size, in ``cols``."""
    cam_rows: dict[str, list[Any]] = {k: [] for k in Cameras.COLUMNS}
    view = {
        (f, s): i
        for i, (d, f, s) in enumerate(
            zip(cols["dataset_id"], cols["file_id"], cols["sensor_id"], strict=True)
        )
        if d == dataset_id
    }
    for k, cams in enumerate(data.cameras):
        for cam in cams:
            size = data.image_sizes.get(cam["image_path"].lstrip("/"), (-1, -1))
            cam_rows["frame"].append(lidar_rows[k])
            for key in _CAMERA_KEYS:
                cam_rows[key].append(cam[key])
            cam_rows["width"].append(size[0])
            cam_rows["height"].append(size[1])
            i = view.get((cols["file_id"][lidar_rows[k]], cam["sensor_id"]))
            if i is not None:
                cols["width"][i], cols["height"][i] = size
    if not cam_rows["frame"]:
        return Cameras.empty()
    return Cameras.from_columns(
        **{
            k: np.asarray(v, dtype=np.float64).reshape(-1, *Cameras.COLUMNS[k].shape)
            if Cameras.COLUMNS[k].shape
            else v
            for k, v in cam_rows.items()
        }
    )
