"""SemanticKITTI point labels: ``sequences/NN/labels/%06d.label`` (uint32 per point) + label map.

Output layout::

    dest/
      sequences/00/labels/000000.label     uint32 little-endian per point:
                                           semantic id (low 16 bits) | instance id << 16
      sequences/00/velodyne/000000.bin     float32 N x 4 LiDAR-frame points (when known)
      sequences/00/poses.txt               LiDAR pose of each scan relative to the first one,
                                           3x4 row-major per line (when device poses are known)
      sequences/00/calib.txt               Tr = identity (poses are already LiDAR poses)
      label_map.yaml                       semantic-kitti-api config (visualize.py --config,
                                           evaluate_semantics.py --datacfg): labels, color_map,
                                           learning_map(_inv), learning_ignore, split; and
                                           deepen_categories (name -> id)
      mapping.json                         sequence/frame -> dataset_id, file_id
      report.json

A sequence is one Deepen dataset; scans are numbered like :mod:`converters.kitti_tracking`
(every LiDAR frame of the dataset in order, painted or not); a label file is written for every
painted frame.

Semantic ids (``label_map``)
    Unpainted points get 0 (``unlabeled``). A category whose name is a SemanticKITTI class
    (``car``, ``road``, ``moving-car``, ...; case-insensitive, spaces and ``_`` read as ``-``;
    also ``pedestrian`` = ``person`` and ``cyclist`` = ``bicyclist``) gets that class's id from ``semantic-kitti.yaml``; any
    other category gets the next id from 100 up that SemanticKITTI does not use (100..251, then 260..999), in category order: below
    1000 like SemanticKITTI's own, so lookup tables sized by the largest id stay small.
    ``label_map`` (dict, JSON object or path of a YAML/JSON file,
    category name -> id in 1..65535) overrides the ids of the names it lists.

Config (``label_map.yaml``)
    ``learning_map`` maps 0 to class 0 (ignored in ``learning_ignore``) and each category's id
    to its own class 1..n (category order); ``learning_map_inv`` is its inverse;
    ``color_map`` gives each id a BGR colour (SemanticKITTI's own for its classes, the VOC
    colour map for others); ``split`` lists every sequence under ``train`` and ``valid``
    (evaluate_semantics.py evaluates ``valid`` by default) and none under ``test``.

Instance ids
    ``PointSegmentation.instance`` is written as is; -1 (none) becomes 0, SemanticKITTI's "no
    instance". Instance ids above 65535 cannot be held and raise ConversionError.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Frames, LabelSet, PointSegmentation
>>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 3], category=[0, -1, 1],
...                                      instance=[2, -1, -1])
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"]),
...               categories=("car", "road"), point_segmentation=seg)
>>> out = tempfile.mkdtemp() + "/sk"
>>> _ = write(ls, out)
>>> raw = np.fromfile(out + "/sequences/00/labels/000000.label", dtype="<u4")
>>> (raw & 0xFFFF).tolist(), (raw >> 16).tolist()
([10, 0, 40], [2, 0, 0])
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from converters import _layout3d as l3
from converters._base import dump_json
from converters._writer import Output, writer
from converters.masks import palette
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import Frames, LabelSet, PointSegmentation
from deepen_export.report import Report

__all__ = ["SEMANTIC_KITTI_LABELS", "read", "write"]

FORMAT = "semantickitti"
Array = npt.NDArray[Any]

SEMANTIC_KITTI_LABELS: dict[int, str] = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle",
    16: "on-rails", 18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist",
    32: "motorcyclist", 40: "road", 44: "parking", 48: "sidewalk", 49: "other-ground",
    50: "building", 51: "fence", 52: "other-structure", 60: "lane-marking", 70: "vegetation",
    71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign", 99: "other-object",
    252: "moving-car", 253: "moving-bicyclist", 254: "moving-person", 255: "moving-motorcyclist",
    256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck", 259: "moving-other-vehicle",
}  # fmt: skip
"""SemanticKITTI's ``labels`` table (``config/semantic-kitti.yaml`` of semantic-kitti-api)."""

_BY_NAME = {v: k for k, v in SEMANTIC_KITTI_LABELS.items()} | {"pedestrian": 30, "cyclist": 31}


_COLORS = {  # BGR, as in semantic-kitti-api config/semantic-kitti.yaml
    0: [0, 0, 0], 1: [0, 0, 255], 10: [245, 150, 100], 11: [245, 230, 100], 13: [250, 80, 100],
    15: [150, 60, 30], 16: [255, 0, 0], 18: [180, 30, 80], 20: [255, 0, 0], 30: [30, 30, 255],
    31: [200, 40, 255], 32: [90, 30, 150], 40: [255, 0, 255], 44: [255, 150, 255],
    48: [75, 0, 75], 49: [75, 0, 175], 50: [0, 200, 255], 51: [50, 120, 255], 52: [0, 150, 255],
    60: [170, 255, 150], 70: [0, 175, 0], 71: [0, 60, 135], 72: [80, 240, 150],
    80: [150, 240, 255], 81: [0, 0, 255], 99: [255, 255, 50], 252: [245, 150, 100],
    253: [200, 40, 255], 254: [30, 30, 255], 255: [90, 30, 150], 256: [255, 0, 0],
    257: [250, 80, 100], 258: [180, 30, 80], 259: [255, 0, 0],
}  # fmt: skip


def api_config(categories: tuple[str, ...], ids: Array, n_sequences: int) -> dict[str, Any]:
    """The ``label_map.yaml`` document: a semantic-kitti-api dataset config for these ids.

    Examples
    --------
    >>> doc = api_config(("car", "kerb"), np.array([10, 100]), 1)
    >>> doc["learning_map"], doc["learning_map_inv"], doc["split"]["valid"]
    ({0: 0, 10: 1, 100: 2}, {0: 0, 1: 10, 2: 100}, [0])
    """
    pal = palette(256)
    pairs = sorted(zip(ids.tolist(), categories, strict=True))
    learning = {0: 0} | {int(i): k + 1 for k, i in enumerate(ids.tolist())}
    return {
        "labels": {0: "unlabeled"} | {int(i): n for i, n in pairs},
        "color_map": {
            i: _COLORS.get(i, pal[1 + k % 255][::-1].tolist())
            for k, i in enumerate([0, *[int(i) for i, _ in pairs]])
        },
        "learning_map": learning,
        "learning_map_inv": {c: i for i, c in learning.items()},
        "learning_ignore": {c: c == 0 for c in learning.values()},
        "split": {
            "train": list(range(n_sequences)),
            "valid": list(range(n_sequences)),
            "test": [],
        },
        "deepen_categories": dict(zip(categories, ids.tolist(), strict=True)),
    }


def semantic_ids(categories: tuple[str, ...], label_map: dict[str, int]) -> Array:
    """Semantic id of every category code (module docstring for the rule)."""
    out = np.zeros(len(categories), dtype=np.int64)
    nxt = 100
    taken = set(label_map.values())
    for i, name in enumerate(categories):
        key = re.sub(r"[\s_]+", "-", name.strip().lower())
        if name in label_map:
            out[i] = label_map[name]
        elif key in _BY_NAME and _BY_NAME[key] not in taken:
            out[i] = _BY_NAME[key]
        else:
            while nxt in taken or nxt in SEMANTIC_KITTI_LABELS:
                nxt += 1
            out[i] = nxt
            nxt += 1
        taken.add(int(out[i]))
    if len(out) and (out.min() < 1 or out.max() > 0xFFFF):
        raise ConversionError("semantic ids must be in 1..65535", format=FORMAT)
    return out


def frame_layout(labels: LabelSet) -> tuple[l3.Layout, Array, Array, list[str]]:
    """LiDAR frames in order with their ``(sequence, scan number)`` and sequence dataset ids."""
    lay = l3.layout(labels, three_d=True)
    seq, fno, names = l3.sequences(labels, lay)
    return lay, seq, fno, names


def _first(frame: Array, n: int) -> Array:
    """The first row of a table in each of ``n`` Frames rows (-1 where none)."""
    out = np.full(n, -1, dtype=np.int64)
    rows, first = np.unique(frame, return_index=True)
    out[rows] = first
    return out


def _scan(labels: LabelSet, row: int, i: int, j: int, report: Report) -> Array:
    """LiDAR-frame float32 ``(N, 4)`` points of point cloud ``i`` of Frames row ``row``,
    moved by device pose ``j`` (as uploaded, and reported, when ``j < 0``)."""
    pc = labels.pointclouds
    a, b = pc.offsets[i], pc.offsets[i + 1]
    xyz = pc.xyz[a:b]
    if j >= 0:
        xyz = sp.to_sensor(xyz, labels.poses.position[j], labels.poses.quat[j])
    else:
        report.add(
            "changed",
            "no device pose: points written in the frame they were uploaded in",
            file_id=str(labels.frames.file_id[row]),
        )
    inten = np.nan_to_num(pc.intensity[a:b].astype(np.float32), nan=0.0)
    return np.column_stack([xyz.astype(np.float32), inten])


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    label_map: Mapping[str, int] | str | os.PathLike[str] | None = None,
    velodyne: bool | None = None,
) -> None:
    """Write the point segmentation of ``labels`` as SemanticKITTI sequences under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        With ``point_segmentation`` (and optionally ``pointclouds`` and ``poses``).
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with the other label kinds (cuboids, boxes, ...).
    label_map : dict, JSON str or path
        Category name -> semantic id overrides (module docstring).
    velodyne : bool or None
        Write the points too (None: when ``labels.pointclouds`` has them).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Frames, LabelSet, PointSegmentation
    >>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 2], category=[0, 0])
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("kerb",),
    ...               point_segmentation=seg)
    >>> out = tempfile.mkdtemp() + "/sk"
    >>> _ = write(ls, out, label_map={"kerb": 49})
    >>> np.fromfile(out + "/sequences/00/labels/000000.label", dtype="<u4").tolist()
    [49, 49]
    """
    report, tmp = out.report, out.folder
    ids = semantic_ids(labels.categories, l3.load_map(label_map))
    seg = labels.point_segmentation
    packed = _packed(seg, ids)
    lay, seq, fno, datasets = frame_layout(labels)
    pos = lay.position[seg.frame]
    for s in range(len(datasets)):
        (tmp / "sequences" / f"{s:02d}" / "labels").mkdir(parents=True)
    for i, p in enumerate(progress(pos.tolist(), description=".label files")):
        rel = f"sequences/{seq[p]:02d}/labels/{fno[p]:06d}.label"
        (tmp / rel).write_bytes(packed[seg.offsets[i] : seg.offsets[i + 1]].tobytes())
        report.files.append(rel)
    n_scans = _write_scans(labels, lay, seq, fno, tmp, report) if velodyne is not False else 0
    _write_poses(labels, lay, seq, len(datasets), tmp, report)
    doc = api_config(labels.categories, ids, len(datasets))
    (tmp / "label_map.yaml").write_text(
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    fr = labels.frames
    labelled = np.zeros(len(fr), dtype=bool)
    labelled[seg.frame] = True
    mapping = {
        "format": FORMAT,
        "sequences": [{"sequence": f"{s:02d}", "dataset_id": d} for s, d in enumerate(datasets)],
        "frames": [
            {
                "kitti": f"{seq[k]:02d}/{fno[k]:06d}",
                "dataset_id": str(fr.dataset_id[r]),
                "file_id": str(fr.file_id[r]),
                "sensor_id": str(fr.sensor_id[r]),
                "labelled": bool(labelled[r]),
            }
            for k, r in enumerate(lay.rows.tolist())
        ],
    }
    dump_json(mapping, tmp / "mapping.json", indent=1)
    report.files += ["label_map.yaml", "mapping.json"]
    report.written = {"frames": len(seg), "points": len(packed)}
    if n_scans:
        report.written["scans"] = n_scans


def _packed(seg: PointSegmentation, ids: Array) -> Array:
    """Every point's ``uint32`` label: semantic id in the low 16 bits, instance in the high 16."""
    inst = seg.instance.astype(np.int64)
    if len(inst) and inst.max() > 0xFFFF:
        raise ConversionError(
            f"instance id {int(inst.max())} does not fit SemanticKITTI's 16 bits", format=FORMAT
        )
    lut = np.concatenate([[0], ids])
    sem = lut[seg.category.astype(np.int64) + 1]
    return (sem.astype(np.uint32) | (np.maximum(inst, 0).astype(np.uint32) << 16)).astype("<u4")


def _write_scans(
    labels: LabelSet, lay: l3.Layout, seq: Array, fno: Array, tmp: Path, report: Report
) -> int:
    """``velodyne/*.bin`` of every frame with points; an error entry where counts disagree."""
    seg = labels.point_segmentation
    n = len(labels.frames)
    pc_of, pose_of, seg_of = (_first(t.frame, n) for t in (labels.pointclouds, labels.poses, seg))
    n_scans = 0
    for k, row in enumerate(progress(lay.rows.tolist(), description="velodyne scans")):
        if pc_of[row] < 0:
            continue
        pts = _scan(labels, row, int(pc_of[row]), int(pose_of[row]), report)
        rel = f"sequences/{seq[k]:02d}/velodyne/{fno[k]:06d}.bin"
        (tmp / rel).parent.mkdir(exist_ok=True)
        (tmp / rel).write_bytes(pts.astype("<f4").tobytes())
        report.files.append(rel)
        n_scans += 1
        h = int(seg_of[row])
        if h >= 0 and len(pts) != seg.offsets[h + 1] - seg.offsets[h]:
            report.add(
                "error",
                f"{len(pts)} points but {seg.offsets[h + 1] - seg.offsets[h]} point labels",
                file_id=str(labels.frames.file_id[row]),
                kind="point_segmentation",
            )
    return n_scans


def _write_poses(
    labels: LabelSet, lay: l3.Layout, seq: Array, n_seq: int, tmp: Path, report: Report
) -> None:
    pose_of = np.full(len(labels.frames), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    pi = pose_of[lay.rows]
    for s in range(n_seq):
        sel = np.flatnonzero(seq == s)
        if not len(sel) or np.any(pi[sel] < 0):
            continue
        pos, quat = labels.poses.position[pi[sel]], labels.poses.quat[pi[sel]]
        t, q = sp.relative_pose(pos, quat, pos[0], quat[0])
        m = sp.transform_matrix(t, q)[:, :3, :].reshape(len(sel), 12) + 0.0
        text = "".join(" ".join(f"{x:.12e}" for x in row) + "\n" for row in m.tolist())
        (tmp / "sequences" / f"{s:02d}" / "poses.txt").write_text(text, encoding="utf-8")
        eye = " ".join(f"{x:.12e}" for x in np.eye(3, 4).ravel().tolist())
        (tmp / "sequences" / f"{s:02d}" / "calib.txt").write_text(f"Tr: {eye}\n", encoding="utf-8")
        report.files += [f"sequences/{s:02d}/poses.txt", f"sequences/{s:02d}/calib.txt"]


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read SemanticKITTI label files (and ``label_map.yaml`` / ``mapping.json``) back.

    Semantic id 0 becomes an unpainted point (-1); other ids become categories named by
    ``label_map.yaml`` (else SemanticKITTI's own names, else the id as text); instance 0
    becomes -1.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Frames, LabelSet, PointSegmentation
    >>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 2], category=[0, -1], instance=[5, -1])
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car",),
    ...               point_segmentation=seg)
    >>> out = tempfile.mkdtemp() + "/sk"
    >>> _ = write(ls, out)
    >>> back = read(out).point_segmentation
    >>> back.category.tolist(), back.instance.tolist()
    ([0, -1], [5, -1])
    """
    root = Path(source)
    files = sorted(root.glob("sequences/*/labels/*.label"))
    if not files and not (root / "sequences").is_dir():
        raise ConversionError(f"{root} has no sequences/*/labels", format=FORMAT)
    names: dict[int, str] = {}
    listed: list[int] = []
    lm = root / "label_map.yaml"
    if lm.is_file():
        doc = yaml.safe_load(lm.read_text("utf-8")) or {}
        names = {int(v): str(k) for k, v in (doc.get("deepen_categories") or {}).items()}
        listed = list(names)
        for k, v in (doc.get("labels") or {}).items():
            names.setdefault(int(k), str(v))
    mapping_path = root / "mapping.json"
    info = {}
    if mapping_path.is_file():
        info = {m["kitti"]: m for m in json.loads(mapping_path.read_text("utf-8"))["frames"]}
    keys = [f"{p.parent.parent.name}/{p.stem}" for p in files]
    raw = [np.fromfile(p, dtype="<u4") for p in files]
    counts = np.array([len(r) for r in raw], dtype=np.int64)
    flat = np.concatenate(raw) if raw else np.zeros(0, dtype=np.uint32)
    sem = (flat & 0xFFFF).astype(np.int64)
    inst = (flat >> 16).astype(np.int64)
    present = [int(i) for i in np.unique(sem).tolist() if i != 0]
    order = listed + [i for i in present if i not in listed]
    cats = tuple(names.get(i, SEMANTIC_KITTI_LABELS.get(i, str(i))) for i in order)
    lut = np.full(max([0, *order]) + 1, -1, dtype=np.int32)
    lut[order] = np.arange(len(order))
    frames = Frames.from_columns(
        file_id=[info.get(k, {}).get("file_id", k) for k in keys],
        dataset_id=[info.get(k, {}).get("dataset_id", "") for k in keys],
        sensor_id=[info.get(k, {}).get("sensor_id", "lidar") for k in keys],
        index=[int(k.split("/")[1]) for k in keys],
    )
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    seg = PointSegmentation.from_columns(
        frame=np.arange(len(keys)),
        offsets=offsets,
        category=lut[sem],
        instance=np.where(inst > 0, inst, -1),
    )
    return LabelSet(
        frames=frames, categories=cats, point_segmentation=seg, meta={"source_format": FORMAT}
    )
