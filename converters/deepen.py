"""Deepen's own label JSON: what the label endpoints return and what ``POST .../labels`` takes.

Output folder::

    labels.json   {"labels": [label, ...]}  (or {"labels": {"<file_id>": [...]}} with layout="by_file")
    report.json   every label left out or changed

:func:`read` is :func:`deepen_export.read_labels`, so ``read(write(labels))`` gives the labels back.

Conventions (the shapes :mod:`deepen_export.parse` documents)
--------------------------------------------------------------
- ``box``: ``[x, y, width, height]`` in pixels, top-left corner; the width is chosen so that
  ``x + width`` is exactly the stored ``x_max`` again in float64 (same for the height).
- ``polygon``: ``polygons`` = list of open rings ``[[x, y], ...]`` in the model's order.
- ``lane`` / ``polyline`` (the model's ``label_type``): ``polygons`` = list of parts.
- ``point``: ``points`` = ``[[x, y], ...]``.
- ``scene``: no geometry.
- ``3d_bbox``: ``three_d_bbox`` = ``{cx, cy, cz, l, w, h, quaternion: {x, y, z, w}}`` in the
  cuboid table's frame (Deepen's JSON 3D datasets: the world frame of the uploaded points);
  ``rot_z=True`` writes ``rot_z`` (yaw about +z) instead, and reports every box that is not
  upright (its tilt is lost). Cuboids in a ``lidar`` or ``camera`` frame are refused: move them
  to the world frame first (``deepen-export push`` does, with the dataset's calibration).
- ``3d_polyline`` / ``3d_polygon`` / ``3d_point``: ``three_d_polyline`` (parts),
  ``three_d_polygon`` (rings), ``three_d_point`` (points), points as ``[x, y, z]``. Deepen does
  not document these shapes; they are the first keys :mod:`deepen_export.parse` looks for.
- Every label has ``file_id``, ``label_id`` (kept as it is, ``category:N``), ``label_type``,
  ``label_category_id``, ``attributes``, and ``sensor_id`` / ``stage_id`` /
  ``label_set_id`` / ``labeller_email`` / ``create_time_millis`` / ``update_time_millis`` /
  ``version`` when the model has them (``provenance=False`` leaves the last six out, as for a
  push); ``dataset_id`` when the labels span several datasets (``dataset_ids=True``: always).
- Labels are written kind by kind (boxes, polygons, polylines, points, cuboids, 3D polylines,
  3D polygons, 3D points, scenes), each in table order, so reading them back gives the same
  tables. Point segmentation and 2D painting are not label JSON (Deepen serves them as paint
  labels) and follow ``on_unsupported``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from converters._base import dump_json, pylist, record
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.model import (
    COMMON,
    LABEL_KINDS,
    LABEL_TYPE_OF_KIND,
    Cuboids,
    LabelSet,
    LabelTable,
)
from deepen_export.report import Report

__all__ = ["KINDS", "LABELS", "read", "to_records", "write"]

FORMAT = "deepen"
LABELS = "labels.json"
"""Name of the labels file inside the output folder."""

KINDS = frozenset(LABEL_KINDS)
"""Kinds Deepen's label JSON holds: every vector label kind."""

Array = npt.NDArray[Any]
Layout = Literal["list", "by_file"]

# (column, Deepen field, value meaning "unknown"): the model's common columns with a Deepen field
_PROVENANCE = tuple(
    (name, c.deepen, c.fill if c.missing is None else c.missing)
    for name, c in COMMON.items()
    if c.deepen and name != "label_id"  # written with the geometry
)


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    rot_z: bool = False,
    layout: Layout = "list",
    provenance: bool = True,
    dataset_ids: bool | None = None,
) -> None:
    """Write ``labels`` as Deepen label JSON at ``dest/labels.json``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with point segmentation and 2D painting (not label JSON).
    rot_z : bool
        Write cuboid rotations as ``rot_z`` (yaw) instead of ``quaternion``.
    layout : {"list", "by_file"}
        ``{"labels": [...]}`` (the default, labels in table order) or
        ``{"labels": {file_id: [...]}}``, which also lists the frames that have no labels.
    provenance : bool
        Keep stage, label set, labeller, times and version.
    dataset_ids : bool, optional
        Give every label its ``dataset_id``; by default only when the labels come from more
        than one dataset (a dataset's own label responses carry none, and readers attach a
        frames zip to labels without one).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile, deepen_export
    >>> src = {"labels": [{"file_id": "a.png", "label_id": "car:1", "label_category_id": "car",
    ...                    "label_type": "box", "box": [1.5, 2, 3, 4]}]}
    >>> out = tempfile.mkdtemp() + "/deepen"
    >>> report = write(deepen_export.read_labels(src), out)
    >>> read(out).boxes.xyxy.tolist()
    [[1.5, 2.0, 4.5, 6.0]]
    """
    if layout not in ("list", "by_file"):
        raise ValueError(f"layout must be 'list' or 'by_file', got {layout!r}")
    report = out.report
    if dataset_ids is None:
        dataset_ids = len(set(pylist(labels.frames.dataset_id))) > 1
    records, frame_of = _records_and_frames(
        labels, rot_z=rot_z, provenance=provenance, report=report, dataset_ids=dataset_ids
    )
    if layout == "by_file":
        doc: dict[str, Any] = {"labels": _by_file(labels, records, frame_of, report)}
    else:
        used = np.zeros(len(labels.frames), dtype=bool)
        used[np.asarray(frame_of, dtype=np.int64)] = True
        for i in np.flatnonzero(~used):
            report.add(
                "skipped",
                "frame has no labels: the list layout holds labels only (layout='by_file' keeps it)",
                file_id=str(labels.frames.file_id[i]),
            )
        doc = {"labels": records}
    dump_json(doc, out.folder / LABELS)
    report.files.append(LABELS)
    report.written = {"labels": len(records), "frames": len(set(frame_of))}


def read(source: Any, /, **kwargs: Any) -> LabelSet:
    """Read Deepen labels: a labels file, a folder holding ``labels.json`` or a snapshot.

    The same as :func:`deepen_export.read_labels`.

    Examples
    --------
    >>> read({"labels": []}).kinds_present()
    []
    """
    from deepen_export import read_labels

    return read_labels(source, **kwargs)


def to_records(
    labels: LabelSet,
    *,
    rot_z: bool = False,
    provenance: bool = True,
    report: Report | None = None,
) -> list[dict[str, Any]]:
    """The label dicts of ``labels`` in Deepen's JSON shape, kind by kind in table order.

    Labels that cannot be written (non-finite coordinates, no vertices) are left out and, with
    ``report``, recorded there.

    Examples
    --------
    >>> import deepen_export
    >>> ls = deepen_export.read_labels({"labels": [{"file_id": "0.pcd", "label_id": "car:1",
    ...     "label_category_id": "car", "label_type": "3d_bbox", "sensor_id": "lidar",
    ...     "three_d_bbox": {"cx": 1, "cy": 2, "cz": 3, "l": 4, "w": 2, "h": 1.5, "rot_z": 0}}]})
    >>> to_records(ls, rot_z=True, provenance=False)[0]["three_d_bbox"]
    {'cx': 1.0, 'cy': 2.0, 'cz': 3.0, 'l': 4.0, 'w': 2.0, 'h': 1.5, 'rot_z': 0.0}
    """
    records, _ = _records_and_frames(
        labels,
        rot_z=rot_z,
        provenance=provenance,
        report=report or Report(FORMAT),
        dataset_ids=False,
    )
    return records


def _records_and_frames(
    labels: LabelSet, *, rot_z: bool, provenance: bool, report: Report, dataset_ids: bool
) -> tuple[list[dict[str, Any]], list[int]]:
    labels = world_cuboids(labels)
    records: list[dict[str, Any]] = []
    frame_of: list[int] = []
    for kind in LABEL_KINDS:
        table = labels.table(kind)
        if not len(table):
            continue
        assert isinstance(table, LabelTable)
        geoms, ok = _GEOMETRY[kind](table, rot_z, report, labels)
        reason = "non-finite coordinates or no vertices: Deepen label JSON cannot hold it"
        record(report, labels, kind, ~ok, "dropped", reason)
        for i, rec in _common_records(labels, table, kind, provenance, dataset_ids):
            if ok[i]:
                rec.update(geoms[i])
                records.append(rec)
                frame_of.append(int(table.frame[i]))
    return records, frame_of


def world_cuboids(labels: LabelSet) -> LabelSet:
    """``labels`` with its cuboids in the world frame, moved with its own poses when needed.

    Cuboids in a ``lidar`` frame move with each frame's device pose (``labels.poses``), in a
    ``camera`` frame with the pose of the frame's camera (``labels.cameras``, matched by frame
    and sensor id); without them a ConversionError says what is missing.

    Examples
    --------
    >>> ls = LabelSet.empty()
    >>> world_cuboids(ls) is ls
    True
    """
    from deepen_export.geometry import spatial as sp

    cub = labels.cuboids
    ref = cub.frame_of_reference
    if not len(cub) or ref == "world":
        return labels
    poses: Any
    row_of: dict[Any, int]
    keys: list[Any]
    if ref == "lidar":
        poses = labels.poses
        row_of = {int(f): i for i, f in enumerate(poses.frame.tolist())}
        keys = cub.frame.tolist()
    else:
        poses = labels.cameras
        row_of = {
            (int(f), str(s)): i
            for i, (f, s) in enumerate(zip(poses.frame.tolist(), poses.sensor_id, strict=True))
        }
        keys = [(int(f), str(labels.frames.sensor_id[f])) for f in cub.frame.tolist()]
    missing = [k for k in keys if k not in row_of]
    if missing:
        raise ConversionError(
            f"cuboids are in the {ref} frame and {len(missing)} have no {ref} pose to move them "
            "into the world frame Deepen label JSON uses (push moves them with the dataset's "
            "calibration)",
            format=FORMAT,
        )
    rows = np.array([row_of[k] for k in keys], dtype=np.int64)
    center, quat = sp.cuboids_from_sensor(
        cub.center, cub.quat, poses.position[rows], poses.quat[rows]
    )
    moved = Cuboids.from_columns(
        **{**cub.columns(), "center": center, "quat": quat},
        attributes=dict(cub.attributes),
        frame_of_reference="world",
    )
    return labels.replace(cuboids=moved)


def _common_records(
    labels: LabelSet, table: LabelTable, kind: str, provenance: bool, dataset_ids: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    frames = labels.frames
    fr = table.frame
    file_ids = pylist(frames.file_id[fr])
    sensors = pylist(frames.sensor_id[fr])
    datasets = pylist(frames.dataset_id[fr])
    cats = [labels.categories[c] for c in table.category.tolist()]
    lids = pylist(table.label_id)
    ltypes = (
        pylist(table.label_type)  # type: ignore[attr-defined]
        if kind == "polylines"
        else [LABEL_TYPE_OF_KIND[kind]] * len(table)
    )
    attrs = {k: pylist(v) for k, v in table.attributes.items()}  # type: ignore[attr-defined]
    prov = [(key, pylist(getattr(table, col)), unset) for col, key, unset in _PROVENANCE]
    for i in range(len(table)):
        rec: dict[str, Any] = {"file_id": file_ids[i]}
        if dataset_ids and datasets[i]:
            rec["dataset_id"] = datasets[i]
        if sensors[i]:
            rec["sensor_id"] = sensors[i]
        rec["label_id"] = lids[i]
        rec["label_type"] = ltypes[i]
        rec["label_category_id"] = cats[i]
        rec["attributes"] = {k: v[i] for k, v in attrs.items() if v[i] is not None}
        if provenance:
            for key, values, unset in prov:
                if values[i] != unset:
                    rec[key] = values[i]
        yield i, rec


def exact_extent(lo: Array, hi: Array) -> Array:
    """``d`` with ``lo + d == hi`` exactly in float64 (where one exists within a few ulps).

    ``hi - lo`` alone is not always enough: ``lo + (hi - lo)`` can round to a neighbour of
    ``hi``, and a box read back would move by one ulp.

    Examples
    --------
    >>> lo, hi = np.array([0.1, 3.0]), np.array([0.7, 5.0])
    >>> bool(np.all(lo + exact_extent(lo, hi) == hi))
    True
    """
    d = hi - lo
    for _ in range(8):
        s = lo + d
        miss = s != hi
        if not miss.any():
            break
        d = np.where(miss, np.nextafter(d, np.where(s < hi, np.inf, -np.inf)), d)
    return d


def _box_geoms(t: Any, rot_z: bool, report: Report, labels: LabelSet) -> tuple[list[Any], Array]:
    xyxy = t.xyxy
    ok = np.isfinite(xyxy).all(axis=1)
    w = exact_extent(xyxy[:, 0], xyxy[:, 2])
    h = exact_extent(xyxy[:, 1], xyxy[:, 3])
    rows = np.column_stack([xyxy[:, 0], xyxy[:, 1], w, h]).tolist()
    return [{"box": r} for r in rows], ok


def _nested(offsets: Array, inner: Array, coords: Array) -> list[list[list[list[float]]]]:
    """Labels -> parts -> vertices as Python lists, split with one pass over each level."""
    flat = coords.tolist()
    bounds = inner.tolist()
    parts = [flat[a:b] for a, b in itertools.pairwise(bounds)]
    outer = offsets.tolist()
    return [parts[a:b] for a, b in itertools.pairwise(outer)]


def _finite_per_label(offsets: Array, coords: Array, inner: Array | None = None) -> Array:
    finite = np.isfinite(coords).all(axis=1) if len(coords) else np.zeros(0, dtype=bool)
    bad_v = np.concatenate([[0], np.cumsum(~finite)])
    per_vertex_bounds = inner[offsets] if inner is not None else offsets
    return np.asarray(bad_v[per_vertex_bounds[1:]] - bad_v[per_vertex_bounds[:-1]] == 0)


def _ragged_geoms(
    key: str, empty_ok: bool, rings: bool = False
) -> Callable[..., tuple[list[Any], Array]]:
    def build(t: Any, rot_z: bool, report: Report, labels: LabelSet) -> tuple[list[Any], Array]:
        inner = t.ring_offsets if hasattr(t, "ring_offsets") else t.part_offsets
        nested = _nested(t.offsets, inner, t.coords)
        if rings:  # the reader opens a ring whose last vertex repeats its first: close those
            for parts in nested:
                for ring in parts:
                    if len(ring) > 1 and ring[0] == ring[-1]:
                        ring.append(ring[0])
        ok = _finite_per_label(t.offsets, t.coords, inner)
        n_parts = np.diff(t.offsets)
        out = []
        for parts in nested:
            # a label with no rings is written as one empty ring, which reads back the same
            out.append({key: parts if parts else [[]]})
        if not empty_ok:
            ok &= n_parts > 0
        return out, ok

    return build


def _point_geoms(key: str) -> Callable[..., tuple[list[Any], Array]]:
    def build(t: Any, rot_z: bool, report: Report, labels: LabelSet) -> tuple[list[Any], Array]:
        flat = t.coords.tolist()
        off = t.offsets.tolist()
        out = [{key: flat[a:b] if b > a else [[]]} for a, b in itertools.pairwise(off)]
        return out, _finite_per_label(t.offsets, t.coords)

    return build


def _cuboid_geoms(t: Any, rot_z: bool, report: Report, labels: LabelSet) -> tuple[list[Any], Array]:
    c, s, q = t.center, t.size, t.quat
    ok = np.isfinite(c).all(axis=1) & np.isfinite(s).all(axis=1) & np.isfinite(q).all(axis=1)
    out: list[dict[str, Any]] = []
    if rot_z:
        yaw = t.yaw.tolist()
        tilted = np.abs(q[:, :2]).max(axis=1) > 1e-9
        reason = "cuboid is not upright: rot_z keeps its yaw only (write quaternions to keep it)"
        record(report, labels, "cuboids", tilted, "changed", reason)
    cl, sl, ql = c.tolist(), s.tolist(), q.tolist()
    for i in range(len(t)):
        (cx, cy, cz), (ln, wd, ht) = cl[i], sl[i]
        box: dict[str, Any] = {"cx": cx, "cy": cy, "cz": cz, "l": ln, "w": wd, "h": ht}
        if rot_z:
            box["rot_z"] = yaw[i]
        else:
            x, y, z, w = ql[i]
            box["quaternion"] = {"x": x, "y": y, "z": z, "w": w}
        out.append({"three_d_bbox": box})
    return out, ok


def _scene_geoms(t: Any, rot_z: bool, report: Report, labels: LabelSet) -> tuple[list[Any], Array]:
    return [{}] * len(t), np.ones(len(t), dtype=bool)


_GEOMETRY: dict[str, Callable[..., tuple[list[Any], Array]]] = {
    "boxes": _box_geoms,
    "polygons": _ragged_geoms("polygons", empty_ok=True, rings=True),
    "polylines": _ragged_geoms("polygons", empty_ok=False),
    "points": _point_geoms("points"),
    "cuboids": _cuboid_geoms,
    "polylines3d": _ragged_geoms("three_d_polyline", empty_ok=False),
    "polygons3d": _ragged_geoms("three_d_polygon", empty_ok=False, rings=True),
    "points3d": _point_geoms("three_d_point"),
    "scenes": _scene_geoms,
}


def _by_file(
    labels: LabelSet, records: list[dict[str, Any]], frame_of: list[int], report: Report
) -> dict[str, list[dict[str, Any]]]:
    datasets = set(pylist(labels.frames.dataset_id))
    if len(datasets) > 1:
        raise ConversionError(
            "layout='by_file' holds one dataset; these labels come from "
            f"{len(datasets)} (use the list layout)",
            format=FORMAT,
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for fid in pylist(labels.frames.file_id):
        out.setdefault(fid, [])
    for rec in records:
        out[rec["file_id"]].append(rec)
    return out
