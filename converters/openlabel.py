"""ASAM OpenLABEL 1.0.0 JSON: one file per Deepen dataset.

:func:`to_dict` / :func:`to_dicts` build the documents and :func:`from_dict` reads one, without
files (like :func:`converters.coco.to_dict`); :func:`write` and :func:`read` are them plus the
folder.

Output layout::

    dest/
      <dataset_id>.json     {"openlabel": {...}} (``openlabel.json`` when the dataset id is empty)
      report.json

What goes where
    - ``metadata``: ``schema_version "1.0.0"``, ``annotator "deepen-export"``, ``name`` = the
      dataset id, and ``categories`` (our category list, so a reader keeps their order).
    - ``frames``: numbered 0, 1, ... per dataset: the LiDAR frames in sequence order for 3D
      datasets (camera labels of a LiDAR frame belong to its frame), the images for image
      datasets (:func:`converters._layout3d.layout` order). ``frame_properties.streams`` gives each
      frame's file: the LiDAR ``file_id`` and each camera's image path; ``timestamp`` the device
      pose's; ``transforms.lidar_to_world`` the device pose (LiDAR -> world, quaternion
      ``x, y, z, w`` + translation); ``camera_k_to_lidar`` appears in a frame only where a camera's
      mounting differs from the static one.
    - ``coordinate_systems`` (3D): ``world`` (root, the frame of Deepen's labels) -> ``lidar``
      -> ``camera_k``; ``pose_wrt_parent`` is child -> parent (VCD's convention ``pose_src_wrt_dst
      = transform_src_to_dst``), static values from the dataset's first frame. Image datasets get
      one root coordinate system per sensor.
    - ``streams``: ``lidar`` (type lidar) and every camera (type camera) with
      ``intrinsics_pinhole`` (``camera_matrix`` 3x4 row-major ``[fx 0 cx 0; 0 fy cy 0; 0 0 1 0]``,
      ``distortion_coeffs`` = Deepen's ``k1 k2 p1 p2 k3 k4``, OpenCV order) or, for fisheye /
      mod_kannala cameras, ``intrinsics_fisheye`` (``lens_coeffs`` = ``k1 k2 k3 k4``, plus
      ``model`` naming Deepen's camera model: the Kannala-Brandt coefficients are not VCD's own
      fisheye polynomial).
    - ``objects``: one per Deepen label id of a dataset (a track across frames: the cuboid and the
      camera boxes of ``car:1`` are one object), ``name`` = label id, ``type`` = category. Keys
      are ``"0"``, ``"1"``, ... in order of first appearance (``uids="uuid"``: a UUID5 of dataset
      id and label id, stable across exports). ``frame_intervals`` are the closed runs of frames
      holding the object; ``object_data_pointers`` list every data name with its type, frames
      and attribute types.
    - Geometry, per frame in ``frames[f].objects[uid].object_data``:

      ============  ===========  ===============================================================
      kind          type / name  ``val``
      ============  ===========  ===============================================================
      cuboids       cuboid       ``x y z qx qy qz qw sx sy sz`` (centre, quaternion scalar last,
                    ``cuboid``   sizes l w h along the box axes); ``coordinate_system`` world or
                                 lidar (``cuboid_frame``)
      boxes         bbox         ``cx cy w h``, **centre**-based (OpenLABEL), pixel-corner
                    ``bbox``     coordinates of the model; ``coordinate_system`` = sensor
      polygons      poly2d       one closed ``MODE_POLY2D_ABSOLUTE`` entry per ring, in Deepen's
                    ``polygon``  order; holes follow the model's even-odd rule
      polylines     poly2d       one open entry per part; the name is Deepen's label type
                    ``lane`` /
                    ``polyline``
      points        point2d      one entry per point, ``id`` = its index
      polylines3d   poly3d       open, per part, ``polyline3d``
      polygons3d    poly3d       closed, per ring, ``polygon3d``
      points3d      point3d      per point, ``point3d``
      ============  ===========  ===============================================================

      Deepen attributes ride on each entry as ``attributes``: ``boolean`` for booleans, ``num``
      for numbers, ``text`` otherwise (non-scalar values as their JSON text).
    - Scene labels become ``contexts`` with their attributes as ``context_data``.

Labels with non-finite coordinates are reported and left out (JSON has no NaN).

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], sensor_id=["sensor1"]),
...               categories=("car",), boxes=Boxes.from_columns(
...                   frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 20, 30, 60]]))
>>> out = tempfile.mkdtemp() + "/ol"
>>> _ = write(ls, out)
>>> doc = json.loads(Path(out, "openlabel.json").read_text())["openlabel"]
>>> doc["frames"]["0"]["objects"]["0"]["object_data"]["bbox"][0]["val"]
[20.0, 40.0, 20.0, 40.0]
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from converters import _layout3d as l3
from converters._base import dump_json, record, safe_path
from converters._numbers import DIFFERENCE_DECIMALS, shortest
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import (
    Boxes,
    Cameras,
    Cuboids,
    Frames,
    LabelSet,
    Points,
    Points3D,
    Polygons,
    Polygons3D,
    Polylines,
    Polylines3D,
    Poses,
    Scenes,
)
from deepen_export.report import Report

__all__ = ["SCHEMA_VERSION", "from_dict", "read", "to_dict", "to_dicts", "write"]

FORMAT = "openlabel"
SCHEMA_VERSION = "1.0.0"
Array = npt.NDArray[Any]
_UID_NS = uuid.UUID("6f1c9a34-2b7e-5d7a-9c1e-0d3e5e2a4b10")
_3D_KINDS = ("cuboids", "polylines3d", "polygons3d", "points3d")


# -- frames -----------------------------------------------------------------------------


def _frames(labels: LabelSet) -> tuple[Array, Array, list[str], list[Array], bool]:
    """``(seq_of_row, frame_of_row, datasets, base rows per sequence, three_d)``."""
    three_d = bool(len(labels.poses) or any(len(labels.table(k)) for k in _3D_KINDS))
    lay = l3.layout(labels, three_d=three_d)
    seq, fno, datasets = l3.sequences(labels, lay)
    n = len(labels.frames)
    seq_of_row = np.full(n, -1, dtype=np.int64)
    frame_of_row = np.full(n, -1, dtype=np.int64)
    ok = lay.position >= 0
    seq_of_row[ok] = seq[lay.position[ok]]
    frame_of_row[ok] = fno[lay.position[ok]]
    bases = [lay.rows[seq == s] for s in range(len(datasets))]
    return seq_of_row, frame_of_row, datasets, bases, three_d


def _intervals(frames: list[int]) -> list[dict[str, int]]:
    # plain Python: called once per object and data name on a handful of frames, where numpy's
    # per-call overhead dominated the whole export
    if len(frames) == 1:  # most objects: one label in one frame
        return [{"frame_start": frames[0], "frame_end": frames[0]}]
    f = sorted(set(frames))
    out: list[dict[str, int]] = []
    for x in f:
        if out and x == out[-1]["frame_end"] + 1:
            out[-1]["frame_end"] = x
        else:
            out.append({"frame_start": x, "frame_end": x})
    return out


def _attributes(rec: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for k, v in rec.items():
        if isinstance(v, bool):
            out.setdefault("boolean", []).append({"name": k, "val": v})
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out.setdefault("num", []).append({"name": k, "val": v})
        else:
            out.setdefault("text", []).append({"name": k, "val": str(v)})
    return out


class _AttributeCache:
    """:func:`_attributes` of each label of a table, one shared dict per distinct record.

    Most labels repeat a few attribute combinations, so building (and holding) one dict per
    label was wasted time and memory. Records are shared only when every attribute column
    holds strings (or None): a cache key of numbers would equate ``0.0`` with ``-0.0`` and
    ``1`` with ``True``.
    """

    def __init__(self, t: Any) -> None:
        cols = [v.tolist() for v in t.attributes.values()]
        self.keys = list(t.attributes)
        self.rows = list(zip(*cols, strict=True)) if cols else []
        self.shared = all(type(v) is str or v is None for c in cols for v in c)
        self.cache: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}

    def __call__(self, i: int) -> dict[str, list[dict[str, Any]]]:
        if not self.keys:
            return {}
        values = self.rows[i]
        if self.shared:
            out = self.cache.get(values)
            if out is None:
                out = self.cache[values] = self._build(values)
            return out
        return self._build(values)

    def _build(self, values: tuple[Any, ...]) -> dict[str, list[dict[str, Any]]]:
        rec = {k: v for k, v in zip(self.keys, values, strict=True) if v is not None}
        return _attributes(rec) if rec else {}


_METRES = 9  # decimals of positions and sizes in metres: to the nanometre
_QUAT = 12  # decimals of unit-quaternion components


def _pose(position: Array, quat: Array) -> dict[str, list[float]]:
    return {
        "quaternion": shortest(quat, decimals=_QUAT).tolist(),
        "translation": shortest(position, decimals=_METRES).tolist(),
    }


# -- geometry entries ---------------------------------------------------------------------


def _flat(coords: Array, offsets: Array) -> list[list[float]]:
    flat = coords.reshape(-1).tolist()
    d = coords.shape[1]
    return [
        flat[a * d : b * d]
        for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]


def _entries(
    labels: LabelSet, kind: str, cuboid_frame: str, report: Report
) -> list[tuple[int, str, dict[str, Any]]]:
    """``(row, type, entry)`` per geometry entry of table ``kind`` (entry without attributes)."""
    if kind == "cuboids":
        return _cuboid_entries(labels, cuboid_frame, report)
    if kind == "boxes":
        return _box_entries(labels, report)
    t: Any = labels.table(kind)
    coords = t.coords
    owner = _owner_of_vertex(t)
    if kind in ("polylines3d", "polygons3d", "points3d") and cuboid_frame == "lidar":
        coords = _points_to_lidar(labels, t.frame[owner], coords)
    coords = shortest(coords, decimals=_METRES if coords.shape[1] == 3 else DIFFERENCE_DECIMALS)
    finite_v = np.isfinite(coords).all(axis=1)
    bad_labels = np.bincount(owner[~finite_v], minlength=len(t)) > 0
    record(report, labels, kind, bad_labels, "dropped", "non-finite coordinates")
    css, bad = _css(labels, kind), bad_labels.tolist()
    if kind in ("points", "points3d"):
        return _point_entries(t, kind, coords.tolist(), css, bad)
    return _part_entries(labels, t, kind, coords, css, bad)


def _cuboid_entries(
    labels: LabelSet, cuboid_frame: str, report: Report
) -> list[tuple[int, str, dict[str, Any]]]:
    cub: Cuboids = labels.cuboids
    center, quat = cub.center, sp.quat_normalize(cub.quat)
    cs = cub.frame_of_reference
    if cuboid_frame == "lidar" and cs == "world":
        center, quat = _to_lidar(labels, cub.frame, center, quat)
        cs = "lidar"
    vals = np.column_stack(
        [
            shortest(center, decimals=_METRES),
            shortest(quat, decimals=_QUAT),
            shortest(cub.size, decimals=_METRES),
        ]
    )
    bad = np.asarray(~np.isfinite(vals).all(axis=1))
    record(report, labels, "cuboids", bad, "dropped", "non-finite cuboid values")
    return [
        (i, "cuboid", {"name": "cuboid", "val": v, "coordinate_system": cs})
        for i, (v, is_bad) in enumerate(zip(vals.tolist(), bad.tolist(), strict=True))
        if not is_bad
    ]


def _box_entries(labels: LabelSet, report: Report) -> list[tuple[int, str, dict[str, Any]]]:
    b: Boxes = labels.boxes
    x0, y0, x1, y1 = b.xyxy.T
    vals = shortest(
        np.column_stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]),
        decimals=DIFFERENCE_DECIMALS,
    )
    bad = np.asarray(~np.isfinite(vals).all(axis=1))
    record(report, labels, "boxes", bad, "dropped", "non-finite box values")
    sensors = labels.frames.sensor_id[b.frame].tolist()
    return [
        (i, "bbox", {"name": "bbox", "val": v, "coordinate_system": str(sensors[i])})
        for i, (v, is_bad) in enumerate(zip(vals.tolist(), bad.tolist(), strict=True))
        if not is_bad
    ]


def _point_entries(
    t: Any, kind: str, per: list[list[float]], css: list[str], bad: list[bool]
) -> list[tuple[int, str, dict[str, Any]]]:
    """One entry per point, ``id`` = its index in the label."""
    dtype, name = ("point2d", "point") if kind == "points" else ("point3d", "point3d")
    out: list[tuple[int, str, dict[str, Any]]] = []
    for i, (a, b_) in enumerate(zip(t.offsets[:-1].tolist(), t.offsets[1:].tolist(), strict=True)):
        if bad[i]:
            continue
        cs = css[i]
        for j in range(a, b_):
            out.append(
                (i, dtype, {"name": name, "val": per[j], "id": j - a, "coordinate_system": cs})
            )
    return out


def _part_entries(
    labels: LabelSet, t: Any, kind: str, coords: Array, css: list[str], bad: list[bool]
) -> list[tuple[int, str, dict[str, Any]]]:
    """One poly2d / poly3d entry per ring or part."""
    closed = kind in ("polygons", "polygons3d")
    parts = _flat(coords, t.ring_offsets if closed else t.part_offsets)
    out: list[tuple[int, str, dict[str, Any]]] = []
    for i, (a, b_) in enumerate(zip(t.offsets[:-1].tolist(), t.offsets[1:].tolist(), strict=True)):
        if bad[i]:
            continue
        cs = css[i]
        if kind == "polygons":
            dtype, name = "poly2d", "polygon"
        elif kind == "polylines":
            dtype, name = "poly2d", str(labels.polylines.label_type[i])
        else:
            dtype, name = "poly3d", ("polygon3d" if closed else "polyline3d")
        for j in range(a, b_):
            e: dict[str, Any] = {"name": name, "val": parts[j], "closed": closed}
            if dtype == "poly2d":
                e["mode"] = "MODE_POLY2D_ABSOLUTE"
            e["coordinate_system"] = cs
            out.append((i, dtype, e))
    return out


def _css(labels: LabelSet, kind: str) -> list[str]:
    """Coordinate system of each label of table ``kind``."""
    t: Any = labels.table(kind)
    if kind in ("polylines3d", "polygons3d", "points3d"):
        return ["world"] * len(t)
    return [str(x) for x in labels.frames.sensor_id[t.frame].tolist()]


def _owner_of_vertex(t: Any) -> Array:
    if hasattr(t, "ring_offsets") or hasattr(t, "part_offsets"):
        inner = t.ring_offsets if hasattr(t, "ring_offsets") else t.part_offsets
        part_owner = np.repeat(np.arange(len(t)), np.diff(t.offsets))
        return np.repeat(part_owner, np.diff(inner))
    return np.repeat(np.arange(len(t)), np.diff(t.offsets))


def _pose_rows(labels: LabelSet, frames: Array) -> tuple[Array, Array]:
    pose_of = np.full(len(labels.frames), -1, dtype=np.int64)
    pose_of[labels.poses.frame] = np.arange(len(labels.poses))
    fr = labels.frames
    # camera rows share their LiDAR frame's pose
    lay = l3.layout(labels, three_d=True)
    base = lay.rows[np.maximum(lay.position[frames], 0)]
    pi = pose_of[base]
    if np.any(pi < 0):
        ids = ", ".join(sorted({str(fr.file_id[r]) for r in base[pi < 0]})[:5])
        raise ConversionError(
            f"{FORMAT}: cuboid_frame='lidar' needs the device pose of {ids}", format=FORMAT
        )
    return labels.poses.position[pi], labels.poses.quat[pi]


def _to_lidar(labels: LabelSet, frames: Array, center: Array, quat: Array) -> tuple[Array, Array]:
    pos, q = _pose_rows(labels, frames)
    return sp.cuboids_to_sensor(center, quat, pos, q)


def _points_to_lidar(labels: LabelSet, frames: Array, coords: Array) -> Array:
    pos, q = _pose_rows(labels, frames)
    return sp.to_sensor(coords, pos, q)


# -- write ------------------------------------------------------------------------------

CuboidFrame = Literal["world", "lidar"]
Uids = Literal["int", "uuid"]
_KINDS = (
    "cuboids", "boxes", "polygons", "polylines", "points", "polylines3d", "polygons3d", "points3d",
)  # fmt: skip
Entry = tuple[int, int, str, str, str, dict[str, Any]]
"""``(sequence, frame, label id, category, data type, entry)`` of one geometry entry."""


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    cuboid_frame: CuboidFrame = "world",
    uids: Uids = "int",
    indent: int | None = None,
) -> None:
    """Write ``labels`` as OpenLABEL 1.0.0 JSON, one file per dataset, under ``dest``.

    The documents are :func:`to_dicts`'s.

    Parameters
    ----------
    labels : LabelSet
        Any vector labels, scenes and calibration.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with point segmentation and 2D masks (not held).
    cuboid_frame : {"world", "lidar"}
        Coordinate system of cuboids and 3D vectors: Deepen's world frame as given, or each
        frame's LiDAR frame (needs the device poses).
    uids : {"int", "uuid"}
        Object keys: ``"0", "1", ...`` by first appearance, or UUID5s of dataset id and label id.
    indent : int, optional
        Pretty-print (any value: two-space indentation); default compact.

    Returns
    -------
    Report
    """
    report = out.report
    docs = to_dicts(labels, report, cuboid_frame=cuboid_frame, uids=uids)
    for d, doc in docs.items():
        name = f"{d}.json" if d else "openlabel.json"
        dump_json(doc, safe_path(out.folder, name), indent=indent)
        report.files.append(name)
    report.written = {
        "files": len(docs),
        "objects": sum(len(doc["openlabel"].get("objects", {})) for doc in docs.values()),
        "frames": sum(len(doc["openlabel"]["frames"]) for doc in docs.values()),
    }


def to_dict(
    labels: LabelSet,
    report: Report | None = None,
    *,
    cuboid_frame: CuboidFrame = "world",
    uids: Uids = "int",
) -> dict[str, Any]:
    """The OpenLABEL document ``{"openlabel": {...}}`` of a label set of one dataset.

    Kinds OpenLABEL cannot hold are ignored; labels it leaves out are entries of ``report``
    (see :func:`write` for the options, the module docstring for the layout). A label set of
    several datasets has one document each: :func:`to_dicts`.

    Examples
    --------
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], sensor_id=["cam"]),
    ...               categories=("car",), boxes=Boxes.from_columns(
    ...                   frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 0, 4, 2]]))
    >>> doc = to_dict(ls)["openlabel"]
    >>> doc["objects"]["0"], doc["frames"]["0"]["objects"]["0"]["object_data"]["bbox"][0]["val"]
    ({'name': 'car:1', 'type': 'car', 'frame_intervals': [{'frame_start': 0, 'frame_end': 0}], \
'object_data_pointers': {'bbox': {'type': 'bbox', 'frame_intervals': [{'frame_start': 0, \
'frame_end': 0}]}}}, [2.0, 1.0, 4.0, 2.0])
    >>> from_dict(to_dict(ls)).boxes.xyxy.tolist()
    [[0.0, 0.0, 4.0, 2.0]]
    """
    docs = to_dicts(labels, report, cuboid_frame=cuboid_frame, uids=uids)
    if len(docs) > 1:
        raise ConversionError(
            f"{FORMAT}: the labels hold {len(docs)} datasets ({', '.join(map(repr, docs))}); "
            "to_dicts gives one document per dataset",
            format=FORMAT,
        )
    if docs:
        return next(iter(docs.values()))
    return {"openlabel": _skeleton(labels, "", np.zeros(0, dtype=np.int64), np.zeros(0), False)}


def to_dicts(
    labels: LabelSet,
    report: Report | None = None,
    *,
    cuboid_frame: CuboidFrame = "world",
    uids: Uids = "int",
) -> dict[str, dict[str, Any]]:
    """``{dataset id: OpenLABEL document}``: :func:`to_dict` for every dataset of ``labels``.

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png", "b.png"], dataset_id=["x", "y"]))
    >>> {d: doc["openlabel"]["metadata"]["name"] for d, doc in to_dicts(ls).items()}
    {'x': 'x', 'y': 'y'}
    """
    if cuboid_frame not in ("world", "lidar"):
        raise ValueError(f"cuboid_frame must be 'world' or 'lidar', got {cuboid_frame!r}")
    if uids not in ("int", "uuid"):
        raise ValueError(f"uids must be 'int' or 'uuid', got {uids!r}")
    report = report if report is not None else Report(FORMAT)
    seq_of_row, frame_of_row, datasets, bases, three_d = _frames(labels)
    docs = [_skeleton(labels, d, bases[s], frame_of_row, three_d) for s, d in enumerate(datasets)]
    entries, used_cs = _all_entries(
        labels, seq_of_row, frame_of_row, len(datasets), cuboid_frame, report
    )
    objects = _place(entries, docs, datasets, uids)
    del entries
    for doc, objs, used in zip(docs, objects, used_cs, strict=True):
        if objs:
            doc["objects"] = objs
        _declare(doc, used)
    _contexts(labels, docs, seq_of_row, frame_of_row, datasets, report)
    for doc in docs:
        doc["frames"] = {k: doc["frames"][k] for k in sorted(doc["frames"], key=int)}
    return {d: {"openlabel": doc} for d, doc in zip(datasets, docs, strict=True)}


def _all_entries(
    labels: LabelSet,
    seq_of_row: Array,
    frame_of_row: Array,
    n_seq: int,
    cuboid_frame: str,
    report: Report,
) -> tuple[list[Entry], list[set[Any]]]:
    """Every geometry entry with its attributes, and the coordinate systems each sequence names."""
    out: list[Entry] = []
    used_cs: list[set[Any]] = [set() for _ in range(n_seq)]
    for kind in _KINDS:
        t: Any = labels.table(kind)
        if not len(t):
            continue
        entries = _entries(labels, kind, cuboid_frame, report)
        # sequence, frame, label id and category of every entry looked up in bulk
        rows = np.array([i for i, _, _ in entries], dtype=np.int64)
        seqs = seq_of_row[t.frame[rows]].tolist()
        fnos = frame_of_row[t.frame[rows]].tolist()
        lids = [str(x) for x in t.label_id[rows].tolist()]
        cats = [str(labels.categories[c]) for c in t.category[rows].tolist()]
        attr_of = _AttributeCache(t)
        outside = []
        for (i, dtype, e), s, f, lid, cat in zip(entries, seqs, fnos, lids, cats, strict=True):
            if s < 0:
                outside.append(i)
                continue
            a = attr_of(i)
            if a:
                e["attributes"] = a
            out.append((s, f, lid, cat, dtype, e))
            used_cs[s].add(e.get("coordinate_system"))
        record(report, labels, kind, outside, "dropped", "frame not part of any exported sequence")
    return out, used_cs


_Draft = tuple[str, dict[str, Any], list[int], dict[str, Any]]
"""Per (sequence, label id): uid, object, its frames and its data pointer drafts."""


def _place(
    entries: list[Entry], docs: list[dict[str, Any]], datasets: list[str], uids: str
) -> list[dict[str, Any]]:
    """Put every entry into its frame's object; the objects of every sequence, finished."""
    objects: list[dict[str, Any]] = [{} for _ in datasets]
    state_of: list[dict[str, _Draft]] = [{} for _ in datasets]
    frames_of = [d["frames"] for d in docs]
    pairs_of: dict[int, list[tuple[str, str]]] = {}
    # (plain get-or-insert rather than setdefault: no throw-away default dict per entry)
    for s, f, lid, cat, dtype, e in entries:
        st = state_of[s].get(lid)
        if st is None:
            u = (
                str(uuid.uuid5(_UID_NS, f"{datasets[s]}/{lid}"))
                if uids == "uuid"
                else str(len(state_of[s]))
            )
            st = state_of[s][lid] = (u, {"name": lid, "type": cat}, [], {})
            objects[s][u] = st[1]
        u, _, obj_frames, ptrs = st
        _frame_object(frames_of[s], f, u, dtype, e)
        obj_frames.append(f)
        p = ptrs.get(e["name"])
        if p is None:
            p = ptrs[e["name"]] = {"type": dtype, "frames": [], "attribute_pointers": {}}
        p["frames"].append(f)
        attrs = e.get("attributes")
        if attrs:
            # (name, type) pairs once per attribute dict (they are shared between labels, and
            # all alive here, so their ids are unique keys)
            pairs = pairs_of.get(id(attrs))
            if pairs is None:
                pairs = pairs_of[id(attrs)] = [
                    (a["name"], atype) for atype, items in attrs.items() for a in items
                ]
            p["attribute_pointers"].update(pairs)
    for drafts in state_of:
        for _, obj, obj_frames, ptrs in drafts.values():
            _pointers(obj, obj_frames, ptrs)
    return objects


def _frame_object(frames: dict[str, Any], f: int, u: str, dtype: str, e: dict[str, Any]) -> None:
    """Append entry ``e`` to ``frames[f].objects[u].object_data[dtype]``, creating the levels."""
    fkey = str(f)
    fdoc: dict[str, Any] | None = frames.get(fkey)
    if fdoc is None:
        fdoc = frames[fkey] = {}
    fobjs: dict[str, Any] | None = fdoc.get("objects")
    if fobjs is None:
        fobjs = fdoc["objects"] = {}
    fobj: dict[str, Any] | None = fobjs.get(u)
    if fobj is None:
        fobj = fobjs[u] = {"object_data": {}}
    data = fobj["object_data"].get(dtype)
    if data is None:
        fobj["object_data"][dtype] = [e]
    else:
        data.append(e)


def _pointers(obj: dict[str, Any], obj_frames: list[int], ptrs: dict[str, Any]) -> None:
    """An object's ``frame_intervals`` and ``object_data_pointers`` from its drafts."""
    intervals = obj["frame_intervals"] = _intervals(obj_frames)
    # a data name seen in every frame of its object (the usual case) shares the object's
    # interval list: same JSON, one list less per object
    obj["object_data_pointers"] = {
        name: {
            "type": p["type"],
            "frame_intervals": (
                intervals if p["frames"] == obj_frames else _intervals(p["frames"])
            ),
            **(
                {"attribute_pointers": dict(sorted(p["attribute_pointers"].items()))}
                if p["attribute_pointers"]
                else {}
            ),
        }
        for name, p in ptrs.items()
    }


def _skeleton(
    labels: LabelSet, dataset: str, base: Array, frame_of_row: Array, three_d: bool
) -> dict[str, Any]:
    """The document of one dataset before its objects: metadata, frames, streams, calibration."""
    doc: dict[str, Any] = {
        "metadata": {
            "schema_version": SCHEMA_VERSION,
            "annotator": "deepen-export",
            "name": dataset,
            "categories": list(labels.categories),
        },
        "coordinate_systems": {},
        "streams": {},
        "frames": {},
    }
    for r in base.tolist():
        doc["frames"][str(int(frame_of_row[r]))] = {"frame_properties": {"streams": {}}}
    n = len(base)
    doc["frame_intervals"] = [{"frame_start": 0, "frame_end": n - 1}] if n else []
    if three_d:
        _lidar_skeleton(labels, doc, base, frame_of_row)
    else:
        _image_skeleton(labels, doc, base, frame_of_row)
    return doc


def _lidar_skeleton(
    labels: LabelSet, doc: dict[str, Any], base: Array, frame_of_row: Array
) -> None:
    """Coordinate systems world -> lidar -> cameras, streams and frame properties (3D)."""
    fr = labels.frames
    cs = doc["coordinate_systems"]
    cs["world"] = {"type": "scene_cs", "parent": "", "children": ["lidar"]}
    cs["lidar"] = {"type": "sensor_cs", "parent": "world", "children": []}
    doc["streams"]["lidar"] = {"type": "lidar", "description": "LiDAR frames (file_id)"}
    pose_of = {int(f): j for j, f in enumerate(labels.poses.frame.tolist())}
    first_pose = next((pose_of[r] for r in base.tolist() if r in pose_of), None)
    if first_pose is not None:
        cs["lidar"]["pose_wrt_parent"] = _pose(
            labels.poses.position[first_pose], labels.poses.quat[first_pose]
        )
    rows_in = np.isin(np.arange(len(fr)), base)
    _cameras(labels, doc, rows_in, frame_of_row, pose_of)
    poses = labels.poses
    for r in base.tolist():
        props = doc["frames"][str(int(frame_of_row[r]))]["frame_properties"]
        props["streams"] = {
            "lidar": {"uri": str(fr.file_id[r])},
            **dict(sorted(props["streams"].items())),
        }
        if r in pose_of:
            p = pose_of[r]
            ts = float(poses.timestamp[p])
            if math.isfinite(ts):
                props["timestamp"] = ts
            props.setdefault("transforms", {})
            props["transforms"] = {
                "lidar_to_world": {
                    "src": "lidar",
                    "dst": "world",
                    "transform_src_to_dst": _pose(poses.position[p], poses.quat[p]),
                },
                **props["transforms"],
            }
    # image sensors with labels but no calibration (camera views of the LiDAR frames, or
    # the images of a dataset mixing images and LiDAR): every coordinate system an object
    # names must be declared, whatever the sensor is called
    for r in np.flatnonzero(
        np.isin(frame_of_row, [int(frame_of_row[b]) for b in base]) & ~rows_in
    ).tolist():
        name = str(fr.sensor_id[r])
        if name and name not in doc["streams"] and name not in cs:
            doc["streams"][name] = {"type": "camera"}
            cs[name] = {"type": "sensor_cs", "parent": "lidar", "children": []}
            cs["lidar"]["children"].append(name)


def _cameras(
    labels: LabelSet,
    doc: dict[str, Any],
    rows_in: Array,
    frame_of_row: Array,
    pose_of: Mapping[int, int],
) -> None:
    """Camera streams and coordinate systems (static: the first frame's mounting) and, per
    frame, each camera's image and its ``<camera>_to_lidar`` where the mounting differs."""
    cams, fr, cs = labels.cameras, labels.frames, doc["coordinate_systems"]
    sel = np.flatnonzero(rows_in[cams.frame]) if len(cams) else np.zeros(0, dtype=np.int64)
    static: dict[str, tuple[Array, Array]] = {}
    for j in sel.tolist():
        r, name = int(cams.frame[j]), str(cams.sensor_id[j])
        props = doc["frames"][str(int(frame_of_row[r]))]["frame_properties"]
        props["streams"][name] = {"uri": str(cams.image_path[j]) or str(fr.file_id[r])}
        if r not in pose_of:
            continue
        p = pose_of[r]
        t, q = sp.relative_pose(
            cams.position[j], cams.quat[j], labels.poses.position[p], labels.poses.quat[p]
        )
        if name not in static:
            static[name] = (t, q)
            cs["lidar"]["children"].append(name)
            cs[name] = {
                "type": "sensor_cs",
                "parent": "lidar",
                "children": [],
                "pose_wrt_parent": _pose(t, q),
            }
            doc["streams"][name] = _camera_stream(cams, j)
        elif (
            np.abs(t - static[name][0]).max() > 1e-9
            or np.abs(np.abs(np.dot(q, static[name][1])) - 1) > 1e-12
        ):
            props.setdefault("transforms", {})[f"{name}_to_lidar"] = {
                "src": name,
                "dst": "lidar",
                "transform_src_to_dst": _pose(t, q),
            }


def _image_skeleton(
    labels: LabelSet, doc: dict[str, Any], base: Array, frame_of_row: Array
) -> None:
    """One root coordinate system and camera stream per sensor (image datasets)."""
    fr = labels.frames
    for r in base.tolist():
        name = str(fr.sensor_id[r]) or "camera"
        doc["frames"][str(int(frame_of_row[r]))]["frame_properties"]["streams"] = {
            name: {"uri": str(fr.file_id[r])}
        }
        if name not in doc["streams"]:
            doc["streams"][name] = {"type": "camera"}
            doc["coordinate_systems"][name] = {"type": "sensor_cs", "parent": "", "children": []}
        w, h = int(fr.width[r]), int(fr.height[r])
        if w > 0 and h > 0 and "stream_properties" not in doc["streams"][name]:
            doc["streams"][name]["stream_properties"] = {
                "intrinsics_custom": {"width_px": w, "height_px": h}
            }


def _declare(doc: dict[str, Any], used: set[Any]) -> None:
    """Declare every coordinate system an object names (vcd and the schema require it).

    An undeclared one is an image sensor without calibration (the images of a dataset that
    mixes images and LiDAR): a camera stream and a sensor coordinate system under ``lidar``
    (under the root when there is no LiDAR).
    """
    cs = doc["coordinate_systems"]
    for name in sorted(str(n) for n in used if n):
        if name in cs:
            continue
        parent = "lidar" if "lidar" in cs else ""
        cs[name] = {"type": "sensor_cs", "parent": parent, "children": []}
        if parent:
            cs[parent]["children"].append(name)
        doc["streams"].setdefault(name, {"type": "camera"})


def _camera_stream(cams: Cameras, j: int) -> dict[str, Any]:
    model = str(cams.model[j])
    w, h = int(cams.width[j]), int(cams.height[j])
    size = {"width_px": w, "height_px": h} if w > 0 and h > 0 else {}
    d = (cams.distortion[j] + 0.0).tolist()
    if model == "pinhole":
        k = [
            float(cams.fx[j]),
            0.0,
            float(cams.cx[j]),
            0.0,
            0.0,
            float(cams.fy[j]),
            float(cams.cy[j]),
            0.0,
            0.0,
            0.0,
            1.0,
            0.0,
        ]
        intr: dict[str, Any] = {**size, "camera_matrix": k, "distortion_coeffs": d}
        return {"type": "camera", "stream_properties": {"intrinsics_pinhole": intr}}
    intr = {
        **size,
        "focal_length_x": float(cams.fx[j]),
        "focal_length_y": float(cams.fy[j]),
        "center_x_px": float(cams.cx[j]),
        "center_y_px": float(cams.cy[j]),
        "lens_coeffs": [d[0], d[1], d[4], d[5]],
        "model": model,
    }
    return {"type": "camera", "stream_properties": {"intrinsics_fisheye": intr}}


def _contexts(
    labels: LabelSet,
    docs: list[dict[str, Any]],
    seq_of_row: Array,
    frame_of_row: Array,
    datasets: list[str],
    report: Report,
) -> None:
    sc: Scenes = labels.scenes
    if not len(sc):
        return
    attrs = sc.attribute_records()
    ctx: list[dict[str, dict[str, Any]]] = [{} for _ in datasets]
    frames_of: list[dict[str, list[int]]] = [defaultdict(list) for _ in datasets]
    uid_of: list[dict[str, str]] = [{} for _ in datasets]
    for i in range(len(sc)):
        r = int(sc.frame[i])
        s, f = int(seq_of_row[r]), int(frame_of_row[r])
        if s < 0:
            record(
                report, labels, "scenes", [i], "dropped", "frame not part of any exported sequence"
            )
            continue
        lid = str(sc.label_id[i])
        u = uid_of[s].get(lid)
        if u is None:
            u = uid_of[s][lid] = str(len(ctx[s]))
            ctx[s][u] = {"name": lid, "type": str(labels.categories[sc.category[i]])}
        frames_of[s][u].append(f)
        data = _attributes(attrs[i])
        fctx = docs[s]["frames"].setdefault(str(f), {}).setdefault("contexts", {})
        fctx[u] = {"context_data": data} if data else {}
    for s in range(len(datasets)):
        for u, c in ctx[s].items():
            c["frame_intervals"] = _intervals(frames_of[s][u])
        if ctx[s]:
            docs[s]["contexts"] = ctx[s]


# -- read -------------------------------------------------------------------------------


def _attr_values(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for items in (attrs or {}).values():
        for a in items:
            if "name" in a:
                out[str(a["name"])] = a.get("val")
    return out


def _quat_of(val: list[float]) -> tuple[list[float], list[float], list[float]]:
    if len(val) == 10:
        return val[:3], val[3:7], val[7:10]
    return val[:3], sp.euler_zyx_to_quat(*val[3:6]).tolist(), val[6:9]


def _read_doc(
    doc: Mapping[str, Any],
    rows: dict[tuple[str, str, str], int],
    frame_list: list[tuple[str, str, str, int]],
    acc: dict[str, list[Any]],
    cats: list[str],
    ds_name: str,
) -> None:
    ol = doc["openlabel"]
    streams = ol.get("streams", {})
    lidar = any(v.get("type") == "lidar" for v in streams.values())
    for c in ol.get("metadata", {}).get("categories") or []:
        if c not in cats:
            cats.append(str(c))

    def row(key: tuple[str, str, str], index: int) -> int:
        if key not in rows:
            rows[key] = len(frame_list)
            frame_list.append((*key, index))
        return rows[key]

    frame_rows = _read_frames(ol, lidar, row, acc, ds_name)
    objects = ol.get("objects", {})
    for fk, frame in ol.get("frames", {}).items():
        per = frame_rows[fk]
        for u, fo in frame.get("objects", {}).items():
            obj = objects.get(u, {"name": u, "type": "object"})
            lid, cat = str(obj["name"]), str(obj["type"])
            if cat not in cats:
                cats.append(cat)
            for dtype, items in fo.get("object_data", {}).items():
                for e in items:
                    cs = str(e.get("coordinate_system", ""))
                    r = per.get(cs)
                    if r is None:
                        r = next(iter(per.values())) if per else row((ds_name, fk, cs), int(fk))
                    acc["entries"].append((r, lid, cat, dtype, e, cs))
        for u, fc in frame.get("contexts", {}).items():
            c = ol.get("contexts", {}).get(u, {"name": u, "type": "scene"})
            if str(c["type"]) not in cats:
                cats.append(str(c["type"]))
            r = next(iter(per.values())) if per else row((ds_name, fk, ""), int(fk))
            acc["scenes"].append(
                (r, str(c["name"]), str(c["type"]), _attr_values(fc.get("context_data")))
            )
    # static calibration
    cs_all = ol.get("coordinate_systems", {})
    for name, s in streams.items():
        props = s.get("stream_properties") or {}
        if s.get("type") == "camera" and name in cs_all and "pose_wrt_parent" in cs_all[name]:
            acc["cameras_static"].append((ds_name, name, props, cs_all[name]["pose_wrt_parent"]))


def _read_frames(
    ol: Mapping[str, Any],
    lidar: bool,
    row: Callable[[tuple[str, str, str], int], int],
    acc: dict[str, list[Any]],
    ds_name: str,
) -> dict[str, dict[str, int]]:
    """``{frame key: {stream or coordinate system: Frames row}}``; poses and image paths."""
    frame_rows: dict[str, dict[str, int]] = {}
    for fk, frame in sorted(ol.get("frames", {}).items(), key=lambda kv: int(kv[0])):
        props = frame.get("frame_properties", {})
        st = props.get("streams", {})
        index = int(fk)
        per: dict[str, int] = {}
        if lidar:
            base = str(st.get("lidar", {}).get("uri", fk))
            per["lidar"] = row((ds_name, base, "lidar"), index)
            per["world"] = per["lidar"]
            for name, s in st.items():
                if name != "lidar":
                    per[name] = row((ds_name, base, name), index)
                    acc["image_path"].append((per[name], name, str(s.get("uri", ""))))
            tr = props.get("transforms", {}).get("lidar_to_world")
            if tr:
                acc["poses"].append(
                    (per["lidar"], tr["transform_src_to_dst"], props.get("timestamp"))
                )
            for tname, t in props.get("transforms", {}).items():
                if tname.endswith("_to_lidar"):
                    acc["cam_tr"].append((per["lidar"], t["src"], t["transform_src_to_dst"]))
        else:
            for name, s in st.items():
                per[name] = row((ds_name, str(s.get("uri", fk)), name), index)
        frame_rows[fk] = per
    return frame_rows


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read OpenLABEL JSON written by :func:`write` (or similar files) back into a LabelSet.

    ``source`` is one ``.json`` file or a folder of them (one per dataset). Geometry comes back by
    data type and name (table in the module docstring); 9-value cuboids are read with VCD's ZYX
    Euler convention; ``camera_matrix_3x4`` / ``distortion_coeffs_1xN`` (VCD's KITTI export) are
    accepted too. Device poses and camera calibration are rebuilt from the coordinate systems and
    frame transforms when present.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], sensor_id=["sensor1"]),
    ...               categories=("car",), boxes=Boxes.from_columns(
    ...                   frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 20, 30, 60]]))
    >>> out = tempfile.mkdtemp() + "/ol"
    >>> _ = write(ls, out)
    >>> read(out).boxes.xyxy.tolist()
    [[10.0, 20.0, 30.0, 60.0]]
    """
    src = Path(source)
    files = (
        sorted(p for p in src.glob("*.json") if p.name != "report.json") if src.is_dir() else [src]
    )
    docs = []
    for p in files:
        doc = json.loads(p.read_text("utf-8"))
        if "openlabel" not in doc:
            raise ConversionError(
                f"{p} is not an OpenLABEL file (no 'openlabel' key)", format=FORMAT
            )
        docs.append(doc)
    return _from_docs(docs)


def from_dict(doc: Mapping[str, Any]) -> LabelSet:
    """A LabelSet from one OpenLABEL document ``{"openlabel": {...}}`` (see :func:`read`).

    Examples
    --------
    >>> doc = {"openlabel": {"metadata": {"schema_version": "1.0.0", "categories": ["car"]},
    ...        "frames": {"0": {"frame_properties": {"streams": {"cam": {"uri": "a.png"}}}}}}}
    >>> ls = from_dict(doc)
    >>> ls.categories, ls.frames.file_id.tolist(), ls.frames.sensor_id.tolist()
    (('car',), ['a.png'], ['cam'])
    """
    if "openlabel" not in doc:
        raise ConversionError("not an OpenLABEL document (no 'openlabel' key)", format=FORMAT)
    return _from_docs([doc])


def _from_docs(docs: list[Mapping[str, Any]]) -> LabelSet:
    """One LabelSet of several documents (one per dataset): frames, categories, tables."""
    rows: dict[tuple[str, str, str], int] = {}
    frame_list: list[tuple[str, str, str, int]] = []
    acc: dict[str, list[Any]] = defaultdict(list)
    cats: list[str] = []
    for doc in docs:
        name = str(doc["openlabel"].get("metadata", {}).get("name", ""))
        _read_doc(doc, rows, frame_list, acc, cats, name)
    frames = Frames.from_columns(
        dataset_id=[f[0] for f in frame_list], file_id=[f[1] for f in frame_list],
        sensor_id=[f[2] for f in frame_list], index=[f[3] for f in frame_list],
    )  # fmt: skip
    code = {c: i for i, c in enumerate(cats)}
    tables = _tables(acc["entries"], code)
    scenes = _scenes(acc["scenes"], code)
    poses, cameras = _calibration(acc, frame_list)
    return LabelSet(
        frames=frames,
        categories=tuple(cats),
        scenes=scenes,
        poses=poses,
        cameras=cameras,
        meta={"source_format": FORMAT},
        **tables,
    )


def _common(
    items: list[tuple[int, str, str, dict[str, Any]]], code: Mapping[str, int]
) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for it in items for k in it[3]))
    return {
        "frame": np.array([it[0] for it in items], dtype=np.int64),
        "category": np.array([code[it[2]] for it in items], dtype=np.int32),
        "label_id": [it[1] for it in items],
        "attributes": {k: [it[3].get(k) for it in items] for k in keys},
    }


_KIND_OF_TYPE = {"cuboid": "cuboids", "bbox": "boxes", "point2d": "points", "point3d": "points3d"}
_MULTI = ("polygons", "polylines", "points", "points3d", "polylines3d", "polygons3d")
_Group = tuple[tuple[Any, ...], list[dict[str, Any]]]


def _tables(
    entries: list[tuple[int, str, str, str, dict[str, Any], str]], code: Mapping[str, int]
) -> dict[str, Any]:
    """The label tables of the read entries: one label per (kind, frame, label id, ...) group."""
    out: dict[str, Any] = {}
    for kind, items in _groups(entries).items():
        common = _common(
            [(k[1], k[2], es[0]["_cat"], _attr_values(es[0].get("attributes"))) for k, es in items],
            code,
        )
        if kind == "cuboids":
            out[kind] = _read_cuboids(items, common)
        elif kind == "boxes":
            v = np.array([es[0]["val"] for _, es in items], dtype=np.float64).reshape(-1, 4)
            half = v[:, 2:] / 2
            xyxy = np.column_stack([v[:, 0] - half[:, 0], v[:, 1] - half[:, 1],
                                    v[:, 0] + half[:, 0], v[:, 1] + half[:, 1]])  # fmt: skip
            out[kind] = Boxes.from_columns(**common, xyxy=xyxy)
        elif kind in ("points", "points3d"):
            out[kind] = _read_points(kind, items, common)
        else:
            out[kind] = _read_parts(kind, items, common)
    return out


def _groups(
    entries: list[tuple[int, str, str, str, dict[str, Any], str]],
) -> dict[str, list[_Group]]:
    """Entries grouped into labels, by kind: a label's rings, parts or points are one group."""
    groups: dict[tuple[str, int, str, str, str], list[dict[str, Any]]] = {}
    for r, lid, cat, dtype, e, cs in entries:
        name = str(e.get("name", dtype))
        kind = _KIND_OF_TYPE.get(dtype)
        if dtype == "poly2d":
            kind = "polygons" if e.get("closed") else "polylines"
        elif dtype == "poly3d":
            kind = "polygons3d" if e.get("closed") else "polylines3d"
        if kind is None or e.get("val") is None:
            continue
        key = (
            (kind, r, lid, name if kind == "polylines" else "", cs)
            if kind in _MULTI
            else (kind, r, lid, str(len(groups)), cs)
        )
        groups.setdefault(key, []).append({**e, "_cat": cat, "_cs": cs})
    by_kind: dict[str, list[_Group]] = defaultdict(list)
    for key, es in groups.items():
        by_kind[key[0]].append((key, es))
    return by_kind


def _read_cuboids(items: list[_Group], common: dict[str, Any]) -> Cuboids:
    parts = [_quat_of(es[0]["val"]) for _, es in items]
    css = {es[0]["_cs"] for _, es in items}
    if len(css) > 1:
        raise ConversionError(
            f"{FORMAT}: cuboids in several coordinate systems {sorted(css)}", format=FORMAT
        )
    return Cuboids.from_columns(
        **common, center=[p[0] for p in parts], quat=[p[1] for p in parts],
        size=[p[2] for p in parts], frame_of_reference=css.pop(),
    )  # fmt: skip


def _read_points(kind: str, items: list[_Group], common: dict[str, Any]) -> Points | Points3D:
    d = 2 if kind == "points" else 3
    pts = [sorted(es, key=lambda e: int(e.get("id", 0))) for _, es in items]
    counts = [len(p) for p in pts]
    coords = np.array([e["val"] for p in pts for e in p], dtype=np.float64).reshape(-1, d)
    cls = Points if kind == "points" else Points3D
    return cls.from_columns(**common, offsets=np.r_[0, np.cumsum(counts)], coords=coords)


def _read_parts(kind: str, items: list[_Group], common: dict[str, Any]) -> Any:
    """Polygons (rings) and polylines (parts), 2D or 3D."""
    d = 2 if kind in ("polygons", "polylines") else 3
    counts = [len(es) for _, es in items]
    vcounts = [len(e["val"]) // d for _, es in items for e in es]
    coords = np.array([x for _, es in items for e in es for x in e["val"]], dtype=np.float64)
    coords = coords.reshape(-1, d)
    inner = np.r_[0, np.cumsum(vcounts)]
    outer = np.r_[0, np.cumsum(counts)]
    if kind == "polygons":
        return Polygons.from_columns(**common, offsets=outer, ring_offsets=inner, coords=coords)
    if kind == "polygons3d":
        return Polygons3D.from_columns(**common, offsets=outer, ring_offsets=inner, coords=coords)
    if kind == "polylines":
        return Polylines.from_columns(
            **common,
            label_type=[k[3] or "polyline" for k, _ in items],
            offsets=outer,
            part_offsets=inner,
            coords=coords,
        )
    return Polylines3D.from_columns(**common, offsets=outer, part_offsets=inner, coords=coords)


def _scenes(items: list[tuple[int, str, str, dict[str, Any]]], code: Mapping[str, int]) -> Scenes:
    if not items:
        return Scenes.empty()
    return Scenes.from_columns(**_common(items, code))


def _calibration(
    acc: Mapping[str, list[Any]], frame_list: list[tuple[str, str, str, int]]
) -> tuple[Poses, Cameras]:
    poses_in = acc.get("poses", [])
    if not poses_in:
        return Poses.empty(), Cameras.empty()
    pose_rows = np.array([p[0] for p in poses_in], dtype=np.int64)
    pos = np.array([p[1]["translation"] for p in poses_in], dtype=np.float64)
    quat = np.array([p[1]["quaternion"] for p in poses_in], dtype=np.float64)
    ts = [float(p[2]) if isinstance(p[2], (int, float)) else math.nan for p in poses_in]
    poses = Poses.from_columns(frame=pose_rows, position=pos, quat=quat, timestamp=ts)
    static = {(ds, name): (props, pose) for ds, name, props, pose in acc.get("cameras_static", [])}
    per_frame = {(r, name): t for r, name, t in acc.get("cam_tr", [])}
    pose_of = {int(r): j for j, r in enumerate(pose_rows.tolist())}
    rows_c: dict[str, list[Any]] = defaultdict(list)
    lidar_rows: dict[tuple[str, str], int] = {}
    for i, f in enumerate(frame_list):
        if f[2] == "lidar":
            lidar_rows.setdefault((f[0], f[1]), i)  # the first, as a scan of the list found it
    for r, name, uri in acc.get("image_path", []):
        ds, base_file = frame_list[r][0], frame_list[r][1]
        lidar_row = lidar_rows.get((ds, base_file))
        if lidar_row is None or lidar_row not in pose_of or (ds, name) not in static:
            continue
        props, pose = static[(ds, name)]
        pose = per_frame.get((lidar_row, name), pose)
        p = pose_of[lidar_row]
        cpos, cq = (
            sp.from_sensor(np.asarray(pose["translation"], dtype=np.float64), pos[p], quat[p]),
            sp.quat_multiply(quat[p], np.asarray(pose["quaternion"], dtype=np.float64)),
        )
        intr = _intrinsics(props)
        if intr is None:
            continue
        fx, fy, cx, cy, dist, model, size = intr
        rows_c["frame"].append(lidar_row)
        rows_c["sensor_id"].append(name)
        rows_c["fx"].append(fx)
        rows_c["fy"].append(fy)
        rows_c["cx"].append(cx)
        rows_c["cy"].append(cy)
        rows_c["model"].append(model)
        rows_c["distortion"].append((dist + [0.0] * 6)[:6])
        rows_c["position"].append(cpos)
        rows_c["quat"].append(cq)
        rows_c["image_path"].append(uri)
        rows_c["width"].append(int(size.get("width_px", -1)))
        rows_c["height"].append(int(size.get("height_px", -1)))
    cameras = Cameras.from_columns(**rows_c) if rows_c else Cameras.empty()
    return poses, cameras


def _intrinsics(props: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """``(fx, fy, cx, cy, distortion, model, size)`` of a camera stream's properties."""
    pin = props.get("intrinsics_pinhole")
    fish = props.get("intrinsics_fisheye")
    if pin:
        k = np.asarray(
            pin.get("camera_matrix", pin.get("camera_matrix_3x4")), dtype=np.float64
        ).reshape(3, -1)
        dist = list(pin.get("distortion_coeffs", pin.get("distortion_coeffs_1xN", [])))[:6]
        return k[0, 0], k[1, 1], k[0, 2], k[1, 2], dist, "pinhole", pin
    if fish:
        lc = list(fish.get("lens_coeffs", [])) + [0.0] * 4
        return (
            fish["focal_length_x"], fish["focal_length_y"], fish["center_x_px"],
            fish["center_y_px"], [lc[0], lc[1], 0.0, 0.0, lc[2], lc[3]],
            str(fish.get("model", "fisheye")), fish,
        )  # fmt: skip
    return None
