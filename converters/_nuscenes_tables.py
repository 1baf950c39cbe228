"""The nuScenes tables shared by the nuScenes and T4 writers and readers.

:func:`build` turns a 3D sequence :class:`LabelSet` into the nuScenes v1.0 tables (a dict of
table name -> list of records) plus the files they point to (LiDAR scans, images, lidarseg).
:func:`to_labelset` does the inverse. ``converters.nuscenes`` and ``converters.t4`` add only
their folder layout and the fields of their flavour (see their module docstrings).

Conventions (also in ``converters.nuscenes``)
---------------------------------------------
- Deepen's world frame is nuScenes' *global* frame: ``sample_annotation.translation`` is the
  cuboid centre as labelled, ``ego_pose`` is the vehicle pose in it.
- The LiDAR is the ego reference (``calibrated_sensor`` of the LiDAR = identity, ``ego_pose`` =
  the device pose) unless ``lidar_to_ego`` gives the LiDAR's pose in the vehicle frame; then
  ``ego_pose = device_pose * lidar_to_ego^-1``.
- Quaternions: the model's ``(x, y, z, w)`` become nuScenes' ``[w, x, y, z]``, with ``w >= 0``
  (q and -q are the same rotation).
- Sizes: the model's ``(l, w, h)`` become nuScenes' ``[w, l, h]``.
- Tokens: 32-hex MD5 of the record's kind and Deepen ids (:func:`token`),
  e.g. ``token("sample_annotation", dataset_id, file_id, label_id)``; re-exports are stable.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters import _layout3d as l3
from deepen_export._media import ImageSource
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import (
    Cameras,
    Cuboids,
    FrameRole,
    Frames,
    FrameStatus,
    LabelSet,
    PointClouds,
    PointSegmentation,
    Poses,
    natural_key,
)
from deepen_export.report import Action, Report

Array = npt.NDArray[Any]
Record = dict[str, Any]

Transform = Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str] | None
"""A transform option (:func:`parse_transform`): a mapping, a 4x4 matrix, JSON text or a path."""

NOISE = "noise"
"""The lidarseg class of unpainted points (index 0)."""


def token(*parts: str) -> str:
    """A stable 32-hex token of ``parts`` joined by ``/`` (MD5).

    Examples
    --------
    >>> token("ds", "0.pcd")  # = md5sum of "ds/0.pcd"
    'ea25885924bc7c2c592ae6983450bf8e'
    """
    return hashlib.md5("/".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()


TABLES = (
    "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map",
    "sample", "sample_annotation", "sample_data", "scene", "sensor", "visibility",
)  # fmt: skip
"""The tables every nuScenes v1.0 folder has (``lidarseg`` is added when written)."""

VISIBILITY = (
    ("1", "v0-40", "none", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "partial", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "most", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "full", "visibility of whole object is between 80 and 100%"),
)
"""nuScenes' visibility records: token, nuScenes level, T4 level, description."""
UNAVAILABLE = token("visibility", "unavailable")
STATIC_TOL = 1e-6
"""Metres (and quaternion components) within which a camera's mounting counts as unchanged."""
DEFAULT_PERIOD_US = 100_000
"""Frame spacing used when a sequence has no usable timestamps (10 Hz, as nuScenes' LiDAR keyframes are 2 Hz of 20 Hz sweeps)."""


@dataclass
class Flavour:
    """What differs between nuScenes and T4 tables."""

    name: str
    lidar_channel: str
    data_dir: str
    t4: bool = False


@dataclass
class Export:
    """The tables and the files they point to."""

    tables: dict[str, list[Record]]
    points: list[tuple[str, Array]] = field(default_factory=list)
    images: list[tuple[str, str, Record]] = field(default_factory=list)
    lidarseg: list[tuple[str, bytes]] = field(default_factory=list)
    sidecar: dict[str, Any] = field(default_factory=dict)
    frames: Frames3D | None = None
    camera_data: dict[tuple[int, str], Record] = field(default_factory=dict)
    instances: dict[tuple[str, str], Record] = field(default_factory=dict)
    vocab: Vocab | None = None


# -- options ----------------------------------------------------------------------------


def parse_transform(value: Any, what: str = "lidar_to_ego") -> tuple[Array, Array] | None:
    """``(translation, quat xyzw)`` from a transform option; None for identity / not given.

    Accepts ``{"translation": [x, y, z], "rotation": [w, x, y, z]}`` (nuScenes order) or
    ``{"translation": ..., "quaternion": [x, y, z, w]}`` (the model's order), a 4x4 matrix
    (row-major, nested or flat), a JSON string of either, or a path to a JSON file.

    Examples
    --------
    >>> t, q = parse_transform({"translation": [1, 0, 2], "rotation": [1, 0, 0, 0]})
    >>> t.tolist(), q.tolist()
    ([1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0])
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        text = str(value)
        if not text.lstrip().startswith(("{", "[")) and Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{what}: not JSON nor a JSON file: {exc}") from None
    try:
        if isinstance(value, Mapping):
            t = np.asarray(value.get("translation", [0.0, 0.0, 0.0]), dtype=np.float64)
            if "rotation" in value:
                w, x, y, z = np.asarray(value["rotation"], dtype=np.float64)
                q = np.array([x, y, z, w])
            else:
                q = np.asarray(value.get("quaternion", [0.0, 0.0, 0.0, 1.0]), dtype=np.float64)
        else:
            m = np.asarray(value, dtype=np.float64).reshape(4, 4)
            t, q = m[:3, 3].copy(), sp.matrix_to_quat(m[:3, :3])
    except (TypeError, ValueError) as exc:
        raise ConversionError(
            f"{what} must be {{translation, rotation [w,x,y,z]}} or a 4x4 matrix: {exc}"
        ) from None
    if t.shape != (3,) or q.shape != (4,) or not np.all(np.isfinite(t)) or np.linalg.norm(q) == 0:
        raise ConversionError(f"{what}: need a finite translation [3] and a rotation [4]")
    return t, sp.quat_normalize(q)


def load_category_map(value: Mapping[str, str] | str | os.PathLike[str] | None) -> dict[str, str]:
    """Our category -> nuScenes category name, from a dict, a JSON object or a JSON/YAML file.

    Examples
    --------
    >>> load_category_map('{"car": "vehicle.car"}')
    {'car': 'vehicle.car'}
    """
    if value is None:
        return {}
    data: Any = value
    if not isinstance(value, Mapping):
        import yaml

        text = str(value)
        if not text.lstrip().startswith("{"):
            text = Path(text).read_text(encoding="utf-8")
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise ConversionError("category_map must map our category names to nuScenes names")
    return {str(k): str(v) for k, v in data.items()}


def wxyz(q: Array) -> list[list[float]]:
    """Model quaternions ``(n, 4)`` xyzw as nuScenes ``[w, x, y, z]`` lists, ``w >= 0``.

    Examples
    --------
    >>> wxyz([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, -1.0]])
    [[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]]
    """
    q = sp.quat_normalize(np.asarray(q, dtype=np.float64).reshape(-1, 4))
    q = np.where(q[:, 3:] < 0, -q, q)
    return (q[:, [3, 0, 1, 2]] + 0.0).tolist()


def xyzw(rotation: Any) -> Array:
    """nuScenes ``[w, x, y, z]`` (one or many) as model ``(n, 4)`` xyzw.

    Examples
    --------
    >>> xyzw([1.0, 0.0, 0.0, 0.0]).tolist()
    [[0.0, 0.0, 0.0, 1.0]]
    """
    r = np.asarray(rotation, dtype=np.float64).reshape(-1, 4)
    return r[:, [1, 2, 3, 0]]


def safe_name(s: str, fallback: str) -> str:
    """A file-name-safe version of a Deepen id.

    Examples
    --------
    >>> safe_name("a b/c", "scene-0"), safe_name("..", "scene-0")
    ('a_b_c', 'scene-0')
    """
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._")
    return out or fallback


# -- frames, poses, timestamps -----------------------------------------------------------


@dataclass
class Frames3D:
    """The LiDAR frames written, in output order, with their scene and poses."""

    rows: Array
    scene: Array
    scene_names: list[str]
    dataset_ids: list[str]
    lidar_pos: Array
    lidar_quat: Array
    ego_pos: Array
    ego_quat: Array
    timestamp: Array


def _missing_pose(labels: LabelSet, rows: Array, fmt: str) -> ConversionError:
    ids = [str(labels.frames.file_id[r]) for r in rows[:5]]
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ConversionError(
        f"{fmt}: no device pose for frame(s) {', '.join(ids)}{more}; nuScenes needs the ego pose "
        "of every frame: give the dataset's uploaded zip (CLI: --media json_data.zip, or pull "
        "with --media)",
        format=fmt,
    )


def frames_3d(labels: LabelSet, fmt: str, lidar_to_ego: Any, report: Report) -> Frames3D:
    """Which frames become samples, their scenes, LiDAR / ego poses and timestamps (µs)."""
    lay = l3.layout(labels, three_d=True, skip_unlabelled=True)
    fr = labels.frames
    skipped = np.flatnonzero((lay.position < 0) & (fr.status == 1) & (fr.role != FrameRole.CAMERA))
    for r in skipped.tolist():
        report.add(
            "skipped", "frame not labelled yet: no sample written", file_id=str(fr.file_id[r])
        )
    rows = lay.rows
    if len(rows) == 0:
        raise ConversionError(f"{fmt}: no LiDAR frames to write", format=fmt)
    pose_of = np.full(len(fr), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    pi = pose_of[rows]
    if np.any(pi < 0):
        raise _missing_pose(labels, rows[pi < 0], fmt)
    poses = labels.poses.take(pi)
    bad = ~(np.isfinite(poses.position).all(axis=1) & np.isfinite(poses.quat).all(axis=1))
    if bad.any():
        ids = ", ".join(str(f) for f in fr.file_id[rows[bad]][:5])
        raise ConversionError(f"{fmt}: device pose of frame(s) {ids} is not finite", format=fmt)
    seq, _, ds = l3.sequences(labels, lay)
    names: list[str] = []
    for i, d in enumerate(ds):
        base = safe_name(d, f"scene-{i:04d}")
        names.append(base if base not in names else f"{base}-{i}")
    ego_pos, ego_quat = poses.position, sp.quat_normalize(poses.quat)
    tr = parse_transform(lidar_to_ego)
    if tr is not None:
        # ego = device * lidar_to_ego^-1: the ego's pose in the LiDAR frame, then to the world
        inv_t = -sp.quat_rotate(sp.quat_conjugate(tr[1]), tr[0])
        ego_pos = sp.from_sensor(np.tile(inv_t, (len(rows), 1)), poses.position, ego_quat)
        ego_quat = sp.quat_multiply(ego_quat, sp.quat_conjugate(tr[1]))
    ts = _timestamps(poses.timestamp, seq, fr.file_id[rows], fmt, report)
    return Frames3D(
        rows, seq, names, ds, poses.position, sp.quat_normalize(poses.quat), ego_pos,
        sp.quat_normalize(ego_quat), ts,
    )  # fmt: skip


def _timestamps(t: Array, seq: Array, file_ids: Array, fmt: str, report: Report) -> Array:
    """Microsecond timestamps; a sequence without strictly increasing ones gets 10 Hz ones."""
    us = np.where(np.isfinite(t), np.round(t * 1e6), -1).astype(np.int64)
    for s in np.unique(seq).tolist():
        sel = np.flatnonzero(seq == s)
        u = us[sel]
        if np.all(u >= 0) and np.all(np.diff(u) > 0):
            continue
        base = int(u[u >= 0].min()) if np.any(u >= 0) else 0
        us[sel] = base + DEFAULT_PERIOD_US * np.arange(len(sel))
        report.add(
            "changed",
            f"{fmt}: frames have no strictly increasing timestamps: written 0.1 s apart",
            file_id=str(file_ids[sel[0]]),
        )
    return us


# -- sensors ----------------------------------------------------------------------------


def camera_channels(labels: LabelSet, channels: Mapping[str, str] | None) -> dict[str, str]:
    """Deepen camera sensor id -> nuScenes channel (``channels`` overrides; default upper case)."""
    out: dict[str, str] = {}
    for s in sorted(set(labels.cameras.sensor_id.tolist()), key=natural_key):
        out[s] = (channels or {}).get(s, str(s).upper())
    return out


def _valid_cameras(cams: Cameras, labels: LabelSet, fmt: str, report: Report) -> Array:
    k = np.stack([cams.fx, cams.fy, cams.cx, cams.cy], axis=1) if len(cams) else np.zeros((0, 4))
    ok = np.all(np.isfinite(k), axis=1) & (cams.fx > 0) & (cams.fy > 0)
    ok &= np.isfinite(cams.position).all(axis=1) & np.isfinite(cams.quat).all(axis=1)
    for i in np.flatnonzero(~ok).tolist():
        report.add(
            "skipped",
            f"{fmt}: camera {cams.sensor_id[i]} has no valid intrinsics (fx, fy, cx, cy) or pose: "
            "its image is not written for this frame",
            file_id=str(labels.frames.file_id[cams.frame[i]]),
        )
    return ok


class _Calibrations:
    """calibrated_sensor records, one per channel while its mounting stays the same."""

    def __init__(self, flavour: Flavour) -> None:
        self.flavour = flavour
        self.records: list[Record] = []
        self.by_channel: dict[str, list[tuple[Array, Record]]] = {}
        self.distortion: dict[str, dict[str, Any]] = {}

    def get(
        self, channel: str, t: Array, q: Array, k: Array | None, dist: Array | None, model: str
    ) -> str:
        key = np.concatenate(
            [t, q, k.ravel() if k is not None else [], dist if dist is not None else []]
        )
        for vals, old in self.by_channel.get(channel, []):
            if len(vals) == len(key) and np.all(np.abs(vals - key) <= STATIC_TOL):
                return str(old["token"])
        n = len(self.by_channel.get(channel, []))
        rec: Record = {
            "token": token("calibrated_sensor", channel, str(n)),
            "sensor_token": token("sensor", channel),
            "translation": (t + 0.0).tolist(),
            "rotation": wxyz(q)[0],
            "camera_intrinsic": (k + 0.0).tolist() if k is not None else [],
        }
        if self.flavour.t4:
            rec["camera_distortion"] = (dist[:5] + 0.0).tolist() if dist is not None else []
        if dist is not None:
            self.distortion[rec["token"]] = {"model": model, "coefficients": (dist + 0.0).tolist()}
        self.records.append(rec)
        self.by_channel.setdefault(channel, []).append((key, rec))
        return str(rec["token"])


# -- samples, sample_data, ego poses ------------------------------------------------------


def _file_name(flavour: Flavour, scene: str, channel: str, ts: int, k: int, ext: str) -> str:
    if flavour.t4:
        return f"{flavour.data_dir}/{channel}/{k}{ext}"  # T4: data/<channel>/<frame>.<ext>
    return f"{flavour.data_dir}/{channel}/{scene}__{channel}__{ts}{ext}"


def _link(records: list[Record]) -> None:
    """``prev``/``next`` along records given in time order."""
    for a, b in itertools.pairwise(records):
        a["next"], b["prev"] = b["token"], a["token"]


def _scene_tables(ex: Export, f3: Frames3D, fid: Array, flavour: Flavour) -> None:
    t = ex.tables
    for s, name in enumerate(f3.scene_names):
        sel = np.flatnonzero(f3.scene == s)
        ds = f3.dataset_ids[s]
        first = datetime.fromtimestamp(int(f3.timestamp[sel[0]]) / 1e6, UTC)
        log: Record = {
            "token": token("log", ds),
            "logfile": ds,
            "vehicle": "",
            ("data_captured" if flavour.t4 else "date_captured"): first.strftime(
                "%Y-%m-%d-%H-%M-%S" if flavour.t4 else "%Y-%m-%d"
            ),
            "location": "",
        }
        t["log"].append(log)
        samples = [
            {
                "token": token("sample", ds, str(fid[i])),
                "timestamp": int(f3.timestamp[i]),
                "scene_token": token("scene", ds),
                "next": "",
                "prev": "",
            }
            for i in sel.tolist()
        ]
        _link(samples)
        t["sample"] += samples
        t["scene"].append(
            {
                "token": token("scene", ds),
                "name": name,
                "description": f"Deepen dataset {ds}" if ds else "Deepen dataset",
                "log_token": log["token"],
                "nbr_samples": len(samples),
                "first_sample_token": samples[0]["token"],
                "last_sample_token": samples[-1]["token"],
            }
        )


def _sample_data(
    ex: Export, f3: Frames3D, i: int, channel: str, cs: str, ts: int, filename: str,
    fileformat: str, size: tuple[int, int], fid: Array,
) -> Record:  # fmt: skip
    ds = f3.dataset_ids[int(f3.scene[i])]
    rec: Record = {
        "token": token("sample_data", ds, str(fid[i]), channel),
        "sample_token": token("sample", ds, str(fid[i])),
        "ego_pose_token": token("ego_pose", ds, str(fid[i])),
        "calibrated_sensor_token": cs,
        "timestamp": ts,
        "fileformat": fileformat,
        "is_key_frame": True,
        "height": size[1],
        "width": size[0],
        "filename": filename,
        "prev": "",
        "next": "",
    }
    ex.tables["sample_data"].append(rec)
    return rec


def _lidar_data(
    ex: Export, labels: LabelSet, f3: Frames3D, flavour: Flavour, cal: _Calibrations,
    lidar_to_ego: Any, report: Report,
) -> dict[str, list[Record]]:  # fmt: skip
    fid = labels.frames.file_id[f3.rows]
    tr = parse_transform(lidar_to_ego)
    t_le, q_le = tr if tr is not None else (np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    ch = flavour.lidar_channel
    if flavour.t4:
        # T4: scans are in base_link (the ego frame) and the LiDAR's calibration is base_link's
        t_le, q_le = np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])
        pts = _points_by_frame(labels, f3, f3.ego_pos, f3.ego_quat, ring=-1.0)
    else:
        pts = _points_by_frame(labels, f3, f3.lidar_pos, f3.lidar_quat, ring=0.0)
    cs = cal.get(ch, t_le, q_le, None, None, "")
    chains: dict[str, list[Record]] = {}
    for i in range(len(f3.rows)):
        ds = f3.dataset_ids[int(f3.scene[i])]
        ts = int(f3.timestamp[i])
        ex.tables["ego_pose"].append(
            {
                "token": token("ego_pose", ds, str(fid[i])),
                "timestamp": ts,
                "rotation": wxyz(f3.ego_quat[i])[0],
                "translation": (f3.ego_pos[i] + 0.0).tolist(),
            }
        )
        k = int(np.count_nonzero(f3.scene[:i] == f3.scene[i]))
        name = _file_name(flavour, f3.scene_names[int(f3.scene[i])], ch, ts, k, ".pcd.bin")
        rec = _sample_data(
            ex, f3, i, ch, cs, ts, name, "pcd.bin" if flavour.t4 else "pcd", (0, 0), fid
        )
        chains.setdefault(f"{f3.scene[i]}/{ch}", []).append(rec)
        if i not in pts:
            report.add(
                "skipped",
                "no LiDAR points for this frame: an empty scan is written",
                file_id=str(fid[i]),
            )
        ex.points.append((name, pts.get(i, np.zeros((0, 5), dtype=np.float32))))
    return chains


def _points_by_frame(
    labels: LabelSet, f3: Frames3D, position: Array, quat: Array, ring: float
) -> dict[int, Array]:
    """``{output frame: (N, 5) float32}`` x y z intensity ring in the frame of the poses given.

    Deepen has no ring index: nuScenes gets 0, T4 its documented -1.
    """
    pc = labels.pointclouds
    pos = np.full(len(labels.frames), -1, dtype=np.int64)
    pos[f3.rows] = np.arange(len(f3.rows))
    out: dict[int, Array] = {}
    for j, row in enumerate(pc.frame.tolist()):
        i = int(pos[row])
        if i < 0:
            continue
        a, b = pc.offsets[j], pc.offsets[j + 1]
        data = np.full((b - a, 5), ring, dtype=np.float32)
        data[:, :3] = sp.to_sensor(pc.xyz[a:b], position[i], quat[i])
        data[:, 3] = np.nan_to_num(pc.intensity[a:b], nan=0.0)
        out[i] = data
    return out


def _camera_data(
    ex: Export, labels: LabelSet, f3: Frames3D, flavour: Flavour, cal: _Calibrations,
    channels: dict[str, str], fmt: str, report: Report, chains: dict[str, list[Record]],
) -> dict[tuple[int, str], Record]:  # fmt: skip
    """Camera sample_data of every frame; ``{(output frame, sensor_id): record}``."""
    cams = labels.cameras
    pos = np.full(len(labels.frames), -1, dtype=np.int64)
    pos[f3.rows] = np.arange(len(f3.rows))
    ok = _valid_cameras(cams, labels, fmt, report)
    fid = labels.frames.file_id[f3.rows]
    out: dict[tuple[int, str], Record] = {}
    order = sorted(
        np.flatnonzero(ok & (pos[cams.frame] >= 0)).tolist(),
        key=lambda c: (int(pos[cams.frame[c]]), natural_key(str(cams.sensor_id[c]))),
    )
    kmat = cams.intrinsic_matrix()
    for c in order:
        i = int(pos[cams.frame[c]])
        sid = str(cams.sensor_id[c])
        ch = channels[sid]
        t, q = sp.relative_pose(cams.position[c], cams.quat[c], f3.ego_pos[i], f3.ego_quat[i])
        dist = np.asarray(cams.distortion[c], dtype=np.float64)
        cs = cal.get(ch, t, q, kmat[c], dist, str(cams.model[c]))
        ts = (
            round(cams.timestamp[c] * 1e6)
            if np.isfinite(cams.timestamp[c])
            else int(f3.timestamp[i])
        )
        rel = str(cams.image_path[c])
        ext = l3.image_ext(rel) if rel else ".png"
        k = int(np.count_nonzero(f3.scene[:i] == f3.scene[i]))
        name = _file_name(flavour, f3.scene_names[int(f3.scene[i])], ch, ts, k, ext)
        size = (int(cams.width[c]), int(cams.height[c]))
        rec = _sample_data(ex, f3, i, ch, cs, ts, name, ext.lstrip("."), size, fid)
        chains.setdefault(f"{f3.scene[i]}/{ch}", []).append(rec)
        ex.images.append((name, rel, rec))
        out[(i, sid)] = rec
    return out


# -- files ------------------------------------------------------------------------------


def default_media(labels: LabelSet) -> str | None:
    """Where images come from when ``media`` is not given: a reader's folder or the snapshot zip."""
    if labels.meta.get("media"):
        return str(labels.meta["media"])
    src = labels.meta.get("source")
    if src and Path(src, "media").is_dir():
        zips = sorted(Path(src, "media").glob("*.zip"))
        return str(zips[0]) if zips else None
    return None


def copy_files(ex: Export, tmp: Path, media: str | None, report: Report) -> int:
    """Write scans and lidarseg files, copy images; returns the number of images copied."""
    made: set[Path] = set()

    def target(rel: str) -> Path:
        p = tmp / rel
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        return p

    for rel, pts in progress(ex.points, description="LiDAR scans"):
        target(rel).write_bytes(np.ascontiguousarray(pts, dtype="<f4").tobytes())
    for rel, data in ex.lidarseg:
        target(rel).write_bytes(data)
    src = ImageSource(media)
    copied = 0
    try:
        for rel, source, rec in progress(ex.images, description="images"):
            p = target(rel)
            if src.path is None or not src.copy(source, p):
                report.add(
                    "skipped",
                    f"image {source!r} not found in {src.path}: sample_data {rec['token']} points to a missing file",
                )
                continue
            copied += 1
            size = src.size(source) if rec["width"] <= 0 or rec["height"] <= 0 else None
            if size is not None:  # the one image source reads it (header first, PIL else)
                rec["width"], rec["height"] = size
    finally:
        src.close()
    return copied


def write_map(tmp: Path, rel: str) -> None:
    """A 1 x 1 placeholder map mask (the devkit opens one file per map record)."""
    from PIL import Image

    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (1, 1), 0).save(tmp / rel)


# -- annotations ------------------------------------------------------------------------


def attr_text(v: Any) -> str:
    """An attribute value as nuScenes attribute-name text (JSON for non-strings).

    Examples
    --------
    >>> attr_text("moving"), attr_text(True), attr_text(2)
    ('moving', 'true', '2')
    """
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def world_cuboids(labels: LabelSet, fmt: str) -> Cuboids:
    """The cuboids in Deepen's world frame (LiDAR-frame cuboids moved by their device pose)."""
    cub = labels.cuboids
    if cub.frame_of_reference == "world" or not len(cub):
        return cub
    if cub.frame_of_reference != "lidar":
        raise ConversionError(
            f"{fmt}: cuboids in the {cub.frame_of_reference!r} frame cannot be placed in the "
            "global frame (read them with their calibration)",
            format=fmt,
        )
    pose_of = np.full(len(labels.frames), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    pi = pose_of[cub.frame]
    if np.any(pi < 0):
        raise _missing_pose(labels, cub.frame[pi < 0], fmt)
    c, q = sp.cuboids_from_sensor(
        cub.center, cub.quat, labels.poses.position[pi], labels.poses.quat[pi]
    )
    import dataclasses

    return dataclasses.replace(cub, center=c, quat=q, frame_of_reference="world")


@dataclass
class Vocab:
    """Category and attribute records, and the category name of every category code."""

    names: list[str]
    category: list[Record]
    attribute: dict[str, Record]


def vocab(
    labels: LabelSet, category_map: Mapping[str, str], flavour: Flavour, lidarseg: bool
) -> Vocab:
    """Categories (mapped names, merged when two map to one) and an empty attribute table."""
    names = [category_map.get(c, c) for c in labels.categories]
    unique = list(dict.fromkeys(names))
    if lidarseg and NOISE not in unique:
        unique.insert(0, NOISE)
    recs: list[Record] = []
    nxt = 1
    for n in unique:
        rec: Record = {"token": token("category", n), "name": n, "description": ""}
        if lidarseg:
            rec["index"] = 0 if n == NOISE else nxt
            nxt += n != NOISE
        recs.append(rec)
    if lidarseg and nxt > 256:
        raise ConversionError(f"lidarseg indices are uint8: {nxt - 1} categories do not fit")
    return Vocab(names, recs, {})


def _attribute_tokens(voc: Vocab, cub: Cuboids, i: int) -> list[str]:
    out = []
    for key, col in cub.attributes.items():
        v = col[i]
        if v is None:
            continue
        name = f"{key}.{attr_text(v)}"
        rec = voc.attribute.setdefault(
            name,
            {
                "token": token("attribute", name),
                "name": name,
                "description": f"Deepen attribute {key!r}",
            },
        )
        out.append(str(rec["token"]))
    return out


def _visibility(
    cub: Cuboids, attribute: str | None, mapping: Mapping[str, str] | None
) -> list[str]:
    """visibility_token of every cuboid: from ``attribute`` through ``mapping`` (value -> token
    ``"1"``..``"4"`` or a level name); "unavailable" otherwise."""
    by_level = {lv: tok for tok, lv, t4, _ in VISIBILITY} | {
        t4: tok for tok, _, t4, _ in VISIBILITY
    }
    col = cub.attributes.get(attribute) if attribute else None
    out = []
    for i in range(len(cub)):
        v = None if col is None else col[i]
        key = str(v) if v is not None else None
        key = (mapping or {}).get(key, key) if key is not None else None
        tok = key if key in {"1", "2", "3", "4"} else by_level.get(key or "", UNAVAILABLE)
        out.append(tok)
    return out


def add_annotations(
    ex: Export, labels: LabelSet, cub: Cuboids, f3: Frames3D, voc: Vocab, fmt: str,
    report: Report, visibility_attribute: str | None, visibility_map: Mapping[str, str] | None,
    flavour: Flavour,
) -> dict[tuple[str, str], Record]:  # fmt: skip
    """instance and sample_annotation records (tracks = label ids per dataset)."""
    pos = np.full(len(labels.frames), -1, dtype=np.int64)
    pos[f3.rows] = np.arange(len(f3.rows))
    fr = labels.frames
    counts = _num_points(labels, cub, f3, pos)
    vis = _visibility(cub, visibility_attribute, visibility_map)
    order = sorted(range(len(cub)), key=lambda j: (int(pos[cub.frame[j]]), j))
    instances: dict[tuple[str, str], Record] = {}
    tracks: dict[tuple[str, str], list[Record]] = {}
    seen: set[str] = set()
    size = cub.size[:, [1, 0, 2]] + 0.0
    rot = wxyz(cub.quat)
    finite = np.isfinite(np.hstack([cub.center, cub.size, cub.quat])).all(axis=1)
    for j in order:
        i = int(pos[cub.frame[j]])
        if i < 0:
            continue
        ds, f = str(fr.dataset_id[cub.frame[j]]), str(fr.file_id[cub.frame[j]])
        lid = str(cub.label_id[j])
        if not finite[j]:
            _note(
                report, "dropped", f"{fmt}: cuboid with non-finite centre, size or rotation", f, lid
            )
            continue
        tok = token("sample_annotation", ds, f, lid)
        if tok in seen:
            _note(
                report, "dropped", f"{fmt}: a second cuboid with this label id in the frame", f, lid
            )
            continue
        seen.add(tok)
        cat = voc.names[int(cub.category[j])]
        inst = instances.get((ds, lid))
        if inst is None:
            inst = instances[(ds, lid)] = new_instance(ds, lid, cat, flavour)
        elif inst["category_token"] != token("category", cat):
            why = f"{fmt}: category changes along the track; the instance keeps its first one"
            _note(report, "changed", why, f, lid)
        rec: Record = {
            "token": tok,
            "sample_token": token("sample", ds, f),
            "instance_token": inst["token"],
            "visibility_token": vis[j],
            "attribute_tokens": _attribute_tokens(voc, cub, j),
            "translation": (cub.center[j] + 0.0).tolist(),
            "size": size[j].tolist(),
            "rotation": rot[j],
            "prev": "",
            "next": "",
            "num_lidar_pts": int(counts[j]),
            "num_radar_pts": 0,
        }
        ex.tables["sample_annotation"].append(rec)
        tracks.setdefault((ds, lid), []).append(rec)
    _finish_tracks(instances, tracks)
    _report_visibility(vis, fmt, report)
    return instances


def _report_visibility(vis: list[str], fmt: str, report: Report) -> None:
    n_unknown = sum(v == UNAVAILABLE for v in vis)
    if n_unknown:
        report.add(
            "kept",
            f"{fmt}: {n_unknown} cuboid(s) have no visibility (-O visibility_attribute=...): "
            "visibility 'unavailable'",
            kind="cuboids",
        )


def _note(report: Report, action: Action, why: str, file_id: str, label_id: str) -> None:
    report.add(action, why, file_id=file_id, label_id=label_id, kind="cuboids")


def _finish_tracks(
    instances: dict[tuple[str, str], Record], tracks: dict[tuple[str, str], list[Record]]
) -> None:
    """``prev``/``next`` along each track; the instance's count and first / last annotation."""
    for key, recs in tracks.items():
        _link(recs)
        instances[key].update(
            nbr_annotations=len(recs),
            first_annotation_token=recs[0]["token"],
            last_annotation_token=recs[-1]["token"],
        )


def new_instance(ds: str, lid: str, cat: str, flavour: Flavour) -> Record:
    """An instance record without annotations yet.

    Examples
    --------
    >>> new_instance("ds", "car:1", "car", Flavour("t4", "LIDAR_CONCAT", "data", t4=True))["instance_name"]
    'ds::car:1'
    """
    rec: Record = {
        "token": token("instance", ds, lid),
        "category_token": token("category", cat),
        "nbr_annotations": 0,
        "first_annotation_token": "",
        "last_annotation_token": "",
    }
    if flavour.t4:
        rec["instance_name"] = f"{ds}::{lid}"
    return rec


def _num_points(labels: LabelSet, cub: Cuboids, f3: Frames3D, pos: Array) -> Array:
    """Points of each cuboid's frame inside it (world frame, float64)."""
    out = np.zeros(len(cub), dtype=np.int64)
    pc = labels.pointclouds
    for j, row in enumerate(pc.frame.tolist()):
        sel = np.flatnonzero(cub.frame == row)
        if len(sel) and pos[row] >= 0:
            a, b = pc.offsets[j], pc.offsets[j + 1]
            out[sel] = sp.count_points_in_cuboids(
                pc.xyz[a:b], cub.center[sel], cub.size[sel], cub.quat[sel]
            )
    return out


def visibility_records(flavour: Flavour, used_unavailable: bool) -> list[Record]:
    """The visibility table (nuScenes levels, or T4's level names)."""
    recs: list[Record] = [
        {"token": tok, "level": t4 if flavour.t4 else lv, "description": d}
        for tok, lv, t4, d in VISIBILITY
    ]
    if used_unavailable:
        recs.append(
            {
                "token": UNAVAILABLE,
                "level": "unavailable",
                "description": "visibility not labelled in Deepen",
            }
        )
    return recs


# -- lidarseg ---------------------------------------------------------------------------


def lidarseg(
    ex: Export, labels: LabelSet, f3: Frames3D, voc: Vocab, version: str, fmt: str,
    report: Report, lidar_sd: dict[int, Record],
) -> None:  # fmt: skip
    """``lidarseg/<version>/<sd token>_lidarseg.bin`` (uint8 category index per point)."""
    seg = labels.point_segmentation
    index = {r["name"]: r["index"] for r in voc.category}
    lut = np.array([0] + [index[n] for n in voc.names], dtype=np.uint8)
    pos = np.full(len(labels.frames), -1, dtype=np.int64)
    pos[f3.rows] = np.arange(len(f3.rows))
    npts = {i: len(p) for i, (_, p) in enumerate(ex.points)}
    has_points = set(np.flatnonzero(np.isin(f3.rows, labels.pointclouds.frame)).tolist())
    records = []
    for j, row in enumerate(seg.frame.tolist()):
        i = int(pos[row])
        if i < 0:
            continue
        a, b = int(seg.offsets[j]), int(seg.offsets[j + 1])
        fid = str(labels.frames.file_id[row])
        if i in has_points and npts[i] != b - a:
            report.add(
                "dropped",
                f"{fmt}: paint labels hold {b - a} points but the frame has {npts[i]}: "
                "its lidarseg file is not written",
                file_id=fid,
                kind="point_segmentation",
            )
            continue
        sd = lidar_sd[i]["token"]
        rel = f"lidarseg/{version}/{sd}_lidarseg.bin"
        ex.lidarseg.append((rel, lut[seg.category[a:b].astype(np.int64) + 1].tobytes()))
        records.append({"token": sd, "sample_data_token": sd, "filename": rel})
        if np.any(seg.instance[a:b] >= 0):
            report.add(
                "dropped",
                f"{fmt}: lidarseg holds classes only: instance ids of the paint labels are not written",
                file_id=fid,
                kind="point_segmentation",
            )
    ex.tables["lidarseg"] = records


# -- build ------------------------------------------------------------------------------


def build(
    labels: LabelSet,
    *,
    flavour: Flavour,
    report: Report,
    version: str,
    lidar_to_ego: Any = None,
    channels: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | str | os.PathLike[str] | None = None,
    visibility_attribute: str | None = "visibility",
    visibility_map: Mapping[str, str] | None = None,
    with_lidarseg: bool = False,
) -> Export:
    """All tables of a nuScenes / T4 export of ``labels`` (see the module docstring)."""
    fmt = flavour.name
    if lidar_to_ego is None:
        lidar_to_ego = labels.meta.get("lidar_to_ego")
    f3 = frames_3d(labels, fmt, lidar_to_ego, report)
    ex = Export({name: [] for name in TABLES})
    cal = _Calibrations(flavour)
    fid = labels.frames.file_id[f3.rows]
    _scene_tables(ex, f3, fid, flavour)
    chains = _lidar_data(ex, labels, f3, flavour, cal, lidar_to_ego, report)
    lidar_sd = {i: rec for i, rec in enumerate(ex.tables["sample_data"])}
    chans = camera_channels(labels, channels)
    cam_sd = _camera_data(ex, labels, f3, flavour, cal, chans, fmt, report, chains)
    for recs in chains.values():
        _link(recs)
    seg = with_lidarseg and len(labels.point_segmentation) > 0
    voc = vocab(labels, load_category_map(category_map), flavour, seg)
    cub = world_cuboids(labels, fmt)
    instances = add_annotations(
        ex, labels, cub, f3, voc, fmt, report, visibility_attribute, visibility_map, flavour
    )
    if seg:
        lidarseg(ex, labels, f3, voc, version, fmt, report, lidar_sd)
    t = ex.tables
    t["instance"] = list(instances.values())
    t["category"] = voc.category
    t["attribute"] = sorted(voc.attribute.values(), key=lambda r: str(r["name"]))
    t["visibility"] = visibility_records(
        flavour, any(r["visibility_token"] == UNAVAILABLE for r in t["sample_annotation"])
    )
    t["calibrated_sensor"] = cal.records
    t["sensor"] = [
        {"token": token("sensor", ch), "channel": ch, "modality": mod}
        for ch, mod in [(flavour.lidar_channel, "lidar"), *((c, "camera") for c in chans.values())]
    ]
    ex.sidecar = {
        "format": fmt,
        "version": version,
        "lidar_sensor_id": "lidar",
        "lidar_to_ego": lidar_to_ego_record(lidar_to_ego),
        "scenes": {token("scene", d): d for d in f3.dataset_ids},
        "samples": {
            token("sample", f3.dataset_ids[int(f3.scene[i])], str(fid[i])): str(fid[i])
            for i in range(len(fid))
        },
        "instances": {r["token"]: lid for (_, lid), r in instances.items()},
        "cameras": {ch: sid for sid, ch in chans.items()},
        "distortion": cal.distortion,
        "categories": list(labels.categories) if not category_map else None,
    }
    ex.frames, ex.camera_data, ex.instances, ex.vocab = f3, cam_sd, instances, voc
    return ex


def lidar_to_ego_record(value: Any) -> Record | None:
    """``lidar_to_ego`` as ``{translation, rotation [w, x, y, z]}`` (None for identity).

    Examples
    --------
    >>> lidar_to_ego_record('{"translation": [1, 0, 2], "quaternion": [0, 0, 0, 1]}')
    {'translation': [1.0, 0.0, 2.0], 'rotation': [1.0, 0.0, 0.0, 0.0]}
    """
    tr = parse_transform(value)
    if tr is None:
        return None
    return {"translation": (tr[0] + 0.0).tolist(), "rotation": wxyz(tr[1])[0]}


def map_record(log_tokens: list[str], filename: str) -> Record:
    """The placeholder map the devkits require (one record for every log).

    Examples
    --------
    >>> map_record(["log1"], "maps/m.png")["log_tokens"]
    ['log1']
    """
    return {
        "token": token("map", "placeholder"),
        "log_tokens": log_tokens,
        "category": "semantic_prior",
        "filename": filename,
    }


# -- read -------------------------------------------------------------------------------


def load_tables(
    folder: Path, fmt: str, names: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, list[Record]]:
    """Read ``<name>.json`` tables of ``folder`` (ConversionError naming a missing one)."""
    out: dict[str, list[Record]] = {}
    for name in (*names, *optional):
        p = folder / f"{name}.json"
        if not p.is_file():
            if name in optional:
                out[name] = []
                continue
            raise ConversionError(f"{fmt}: {p} is missing; not a {fmt} folder", format=fmt)
        try:
            out[name] = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{fmt}: {p} is not valid JSON: {exc}", format=fmt) from None
    return out


def _table(cls: Any, cols: Mapping[str, list[Any]]) -> Any:
    """A model table from per-row Python lists, each column shaped by its declaration."""
    out = {}
    for k, v in cols.items():
        col = cls.COLUMNS[k]
        out[k] = v if col.dtype == "O" else np.asarray(v, dtype=col.dtype).reshape(-1, *col.shape)
    return cls.from_columns(**out)


class _Reader:
    """Walks scenes -> samples -> sample_data of nuScenes tables into LabelSet columns."""

    def __init__(
        self,
        tables: dict[str, list[Record]],
        sidecar: Mapping[str, Any],
        root: Path,
        lidar_channel: str | None,
    ) -> None:
        self.t = tables
        self.by = {name: {r["token"]: r for r in recs} for name, recs in tables.items()}
        self.side = sidecar
        self.root = root
        self.sensor_of_cs = {
            cs["token"]: self.by["sensor"][cs["sensor_token"]] for cs in tables["calibrated_sensor"]
        }
        self.frame_rows: dict[tuple[str, str, str], int] = {}
        self.frames: dict[str, list[Any]] = {
            k: []
            for k in ("file_id", "sensor_id", "dataset_id", "index", "width", "height", "status")
        }
        self.sample_row: dict[str, int] = {}
        self.lidar_sd: dict[str, Record] = {}
        self.lidar_channel = lidar_channel

    def pose(self, sd: Record) -> tuple[Array, Array]:
        ego = self.by["ego_pose"][sd["ego_pose_token"]]
        cs = self.by["calibrated_sensor"][sd["calibrated_sensor_token"]]
        t, q = sp.cuboids_from_sensor(
            np.asarray([cs["translation"]], dtype=np.float64), xyzw(cs["rotation"]),
            np.asarray([ego["translation"]], dtype=np.float64), xyzw(ego["rotation"]),
        )  # fmt: skip
        return t[0], q[0]

    def frame_row(
        self, ds: str, fid: str, sensor: str, index: int, wh: tuple[int, int] = (-1, -1)
    ) -> int:
        key = (ds, fid, sensor)
        if key not in self.frame_rows:
            self.frame_rows[key] = len(self.frames["file_id"])
            for k, v in zip(
                self.frames,
                (fid, sensor, ds, index, wh[0], wh[1], int(FrameStatus.EMPTY)),
                strict=True,
            ):
                self.frames[k].append(v)
        return self.frame_rows[key]

    def _lidar_of(self, tok: str, sds: list[Record]) -> Record:
        """The LiDAR sample_data of a sample (of ``lidar_channel`` when several)."""
        sensors = [self.sensor_of_cs[sd["calibrated_sensor_token"]] for sd in sds]
        lidar = [sd for sd, s in zip(sds, sensors, strict=True) if s["modality"] == "lidar"]
        chosen = [
            sd
            for sd in lidar
            if self.lidar_channel
            in (None, self.sensor_of_cs[sd["calibrated_sensor_token"]]["channel"])
        ]
        if not (chosen or lidar):
            raise ConversionError(f"sample {tok} has no LiDAR sample_data")
        return (chosen or lidar)[0]

    def walk(self) -> tuple[Poses, Cameras]:
        """Frames, LiDAR poses and cameras of every sample, scene by scene along ``next``."""
        data_of: dict[str, list[Record]] = {}
        for sd in self.t["sample_data"]:
            if sd.get("is_key_frame", True):
                data_of.setdefault(sd["sample_token"], []).append(sd)
        pose_cols: dict[str, list[Any]] = {"frame": [], "position": [], "quat": [], "timestamp": []}
        cam_cols: dict[str, list[Any]] = {k: [] for k in Cameras.COLUMNS}
        for scene in self.t["scene"]:
            ds = str(self.side.get("scenes", {}).get(scene["token"], scene["name"]))
            tok, k = scene["first_sample_token"], 0
            while tok:
                sds = data_of.get(tok, [])
                sd = self._lidar_of(tok, sds)
                fid = str(self.side.get("samples", {}).get(tok, Path(sd["filename"]).name))
                row = self.frame_row(ds, fid, str(self.side.get("lidar_sensor_id", "lidar")), k)
                self.sample_row[tok], self.lidar_sd[tok] = row, sd
                t, q = self.pose(sd)
                for col, v in zip(pose_cols, (row, t, q, sd["timestamp"] / 1e6), strict=True):
                    pose_cols[col].append(v)
                for c in sds:
                    if self.sensor_of_cs[c["calibrated_sensor_token"]]["modality"] == "camera":
                        self._camera(cam_cols, row, c)
                tok, k = self.by["sample"][tok]["next"], k + 1
        cams = _table(Cameras, cam_cols) if cam_cols["frame"] else Cameras.empty()
        return _table(Poses, pose_cols), cams

    def _camera(self, cols: dict[str, list[Any]], row: int, sd: Record) -> None:
        cs = self.by["calibrated_sensor"][sd["calibrated_sensor_token"]]
        ch = self.sensor_of_cs[cs["token"]]["channel"]
        k = np.asarray(cs["camera_intrinsic"], dtype=np.float64).reshape(3, 3)
        dist = self.side.get("distortion", {}).get(cs["token"])
        if dist is None and cs.get("camera_distortion"):
            dist = {"model": "pinhole", "coefficients": list(cs["camera_distortion"])}
        coeffs = np.zeros(6)
        if dist:
            c = np.asarray(dist["coefficients"], dtype=np.float64)[:6]
            coeffs[: len(c)] = c
        t, q = self.pose(sd)
        vals = {
            "frame": row, "sensor_id": str(self.side.get("cameras", {}).get(ch, ch.lower())),
            "fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
            "model": (dist or {}).get("model", "pinhole"), "distortion": coeffs, "position": t,
            "quat": q, "image_path": sd["filename"], "width": int(sd.get("width") or -1),
            "height": int(sd.get("height") or -1), "timestamp": sd["timestamp"] / 1e6,
        }  # fmt: skip
        for key, v in vals.items():
            cols[key].append(v)


def _categories(tables: dict[str, list[Record]], sidecar: Mapping[str, Any]) -> list[str]:
    names = [
        str(c["name"])
        for c in tables["category"]
        if not (c["name"] == NOISE and c.get("index") == 0)
    ]
    side = sidecar.get("categories")
    if isinstance(side, list) and set(side) == set(names):
        return [str(c) for c in side]
    return names


def to_labelset(
    tables: dict[str, list[Record]], sidecar: Mapping[str, Any], root: Path, *,
    lidar_channel: str | None, fmt: str, points: bool = True,
) -> tuple[LabelSet, _Reader]:  # fmt: skip
    """A LabelSet of world-frame cuboids, poses, cameras, points and paint labels."""
    rd = _Reader(tables, sidecar, root, lidar_channel)
    try:
        poses, cams = rd.walk()
        cats = _categories(tables, sidecar)
        code = {c: i for i, c in enumerate(cats)}
        cub = _read_cuboids(rd, code)
        pcs = _read_points(rd, poses) if points else PointClouds.empty()
        seg = _read_lidarseg(rd, code)
    except ConversionError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        # a token pointing nowhere or a record missing a field: one line naming the folder
        raise ConversionError(
            f"{fmt}: {root} has inconsistent tables ({type(exc).__name__}: {exc})", format=fmt
        ) from None
    for r in set(cub.frame.tolist()):
        # samples with annotations are labelled, the others reviewed negatives (nuScenes has no
        # 'not labelled yet': the writer leaves such frames out)
        rd.frames["status"][r] = int(FrameStatus.LABELLED)
    frames = Frames.from_columns(**rd.frames)
    meta = {"source": str(root), "source_format": fmt, "media": str(root)}
    if sidecar.get("lidar_to_ego"):
        meta["lidar_to_ego"] = sidecar["lidar_to_ego"]
    ls = LabelSet(
        frames=frames,
        categories=tuple(cats),
        cuboids=cub,
        poses=poses,
        cameras=cams,
        pointclouds=pcs,
        point_segmentation=seg,
        meta=meta,
    )
    return ls, rd


def label_ids(rd: _Reader, code: Mapping[str, int]) -> dict[str, str]:
    """Instance token -> Deepen label id (the sidecar's, else ``<category>:<n>``)."""
    side = rd.side.get("instances", {})
    out: dict[str, str] = {}
    for n, inst in enumerate(rd.t["instance"], start=1):
        cat = rd.by["category"][inst["category_token"]]["name"]
        out[inst["token"]] = str(side.get(inst["token"], f"{cat}:{n}"))
    return out


def attributes_of(rd: _Reader, recs: list[Record]) -> dict[str, Array]:
    """Attribute columns from ``attribute_tokens`` (names ``key.value``, split at the first dot)."""
    cols: dict[str, list[Any]] = {}
    for i, rec in enumerate(recs):
        for tok in rec.get("attribute_tokens", []):
            name = str(rd.by["attribute"][tok]["name"])
            key, _, value = name.partition(".")
            cols.setdefault(key, [None] * len(recs))[i] = value
    return {k: np.array(v, dtype=object) for k, v in cols.items()}


def _read_cuboids(rd: _Reader, code: Mapping[str, int]) -> Cuboids:
    recs = [a for a in rd.t["sample_annotation"] if a["sample_token"] in rd.sample_row]
    if not recs:
        return Cuboids.empty()
    lids = label_ids(rd, code)
    cat = [
        code[rd.by["category"][rd.by["instance"][a["instance_token"]]["category_token"]]["name"]]
        for a in recs
    ]
    size = np.asarray([a["size"] for a in recs], dtype=np.float64)[:, [1, 0, 2]]
    cub = Cuboids.from_columns(
        frame=[rd.sample_row[a["sample_token"]] for a in recs], category=cat,
        label_id=[lids[a["instance_token"]] for a in recs],
        center=np.asarray([a["translation"] for a in recs], dtype=np.float64), size=size,
        quat=xyzw([a["rotation"] for a in recs]),
    )  # fmt: skip
    return cub.with_attributes(attributes_of(rd, recs))


def _read_points(rd: _Reader, poses: Poses) -> PointClouds:
    rows, data = [], []
    for j, (tok, sd) in enumerate(rd.lidar_sd.items()):
        p = rd.root / sd["filename"]
        if not p.is_file():
            continue
        raw = np.fromfile(p, dtype="<f4")
        if raw.size % 5:
            raise ConversionError(f"{p}: not N x 5 float32 (x y z intensity ring)")
        pts = raw.reshape(-1, 5)
        rows.append(rd.sample_row[tok])
        data.append(
            (
                sp.from_sensor(pts[:, :3].astype(np.float64), poses.position[j], poses.quat[j]),
                pts[:, 3],
            )
        )
    if not rows:
        return PointClouds.empty()
    offsets = np.concatenate([[0], np.cumsum([len(x) for x, _ in data])])
    return PointClouds.from_columns(
        frame=rows,
        offsets=offsets,
        xyz=np.concatenate([x for x, _ in data]),
        intensity=np.concatenate([i for _, i in data]),
    )


def _read_lidarseg(rd: _Reader, code: Mapping[str, int]) -> PointSegmentation:
    recs = rd.t.get("lidarseg", [])
    if not recs:
        return PointSegmentation.empty()
    lut = np.full(256, -1, dtype=np.int32)
    for c in rd.t["category"]:
        if c["name"] in code and "index" in c:
            lut[int(c["index"])] = code[c["name"]]
    sd_sample = {sd["token"]: tok for tok, sd in rd.lidar_sd.items()}
    rows, parts = [], []
    for r in recs:
        tok = sd_sample.get(r["sample_data_token"])
        if tok is None:
            continue
        rows.append(rd.sample_row[tok])
        parts.append(lut[np.fromfile(rd.root / r["filename"], dtype=np.uint8)])
    order = np.argsort(rows, kind="stable")
    parts = [parts[i] for i in order]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    return PointSegmentation.from_columns(
        frame=np.asarray(rows)[order],
        offsets=offsets,
        category=np.concatenate(parts) if parts else np.zeros(0, np.int32),
    )
