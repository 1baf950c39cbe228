"""KITTI rows shared by the KITTI object and tracking formats (``converters.kitti``,
``converters.kitti_tracking``): types, the 14 numeric columns of every object row (cuboids
projected into the chosen camera, 2D boxes as 2D-only rows), their text, the calibration text
and the reading of rows back into a :class:`LabelSet`.

The rules are documented in :mod:`converters.kitti`; the frame layout and calibration are
:mod:`converters._layout3d`'s.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from converters import _layout3d as l3
from converters._base import FileWriter, record
from converters._layout3d import Calibration, Layout
from converters._names import unique_names
from converters._numbers import fixed_texts
from deepen_export._media import ImageSource
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.geometry import spatial as sp
from deepen_export.model import (
    Boxes,
    Cameras,
    Cuboids,
    Frames,
    FrameStatus,
    LabelSet,
    Poses,
)
from deepen_export.report import Action, Report

FORMAT = "kitti"
DEFAULT_CAMERA = "camera_0"
NEAR_PLANE = 0.1
"""Metres in front of the camera where cuboid edges are cut before projection."""

Array = npt.NDArray[Any]
Outside = Literal["keep", "drop"]
BoxSource = Literal["projection", "label"]
_EDGES = sp.CUBOID_EDGES
# columns of the numeric part of a row
TRUNC, OCC, ALPHA, X1, Y1, X2, Y2, H, W, L, X, Y, Z, RY = range(14)
KITTI_TYPES = (
    "Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare",
)  # fmt: skip
"""The KITTI object classes; our categories matching one case-insensitively take its spelling."""
_KITTI_BY_KEY = {t.lower(): t for t in KITTI_TYPES} | {"dont_care": "DontCare"}
_DEFAULT_3D = np.array([-1.0, -1.0, -1.0, -1000.0, -1000.0, -1000.0, -10.0])  # h w l x y z ry

_HINT = (
    "KITTI 3D needs the device poses and camera calibration from the dataset's uploaded zip "
    "(CLI: --media json_data.zip); -O camera=null writes LiDAR-frame labels without a camera, "
    "and -O assume_identity_pose=true treats world coordinates as LiDAR coordinates"
)


# -- rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """KITTI rows of every label, sorted by KITTI frame (cuboids before boxes in a frame)."""

    frame: Array  # KITTI frame position
    type: Array  # KITTI type names
    values: Array  # (n, 14) TRUNC .. RY
    state: Array  # 0 fully in the image, 1 truncated, 2 not in the image / no camera
    kind: Array  # "cuboids" | "boxes"
    source: Array  # row in that table
    label_id: Array
    track: Array
    file_id: Array


def _types(
    labels: LabelSet, category_map: Mapping[str, str | None] | None, report: Report
) -> Array:
    cmap: Mapping[str, str | None] = category_map or {}
    out = np.empty(len(labels.categories), dtype=object)
    used = set()
    for _, table in labels:
        if hasattr(table, "category"):
            used.update(np.unique(table.category).tolist())
    auto = [i for i, name in enumerate(labels.categories) if name not in cmap and i in used]
    for i, name in enumerate(labels.categories):
        if name in cmap:  # the user's choice: several categories may share a type on purpose
            t = cmap[name]
            out[i] = None if t is None else re.sub(r"\s+", "_", str(t).strip())
            if out[i] == "":  # a blank first field would shift every column of the line
                raise ConversionError(
                    f"category_map maps {name!r} to the blank type {t!r}; give it a name or null",
                    format=FORMAT,
                )
        elif i not in used:  # written nowhere: nothing to report
            out[i] = _default_type(name)
    # the default names: one type field each (no blank, no whitespace), never two merged
    for i, t in zip(
        auto,
        unique_names(
            [labels.categories[i] for i in auto],
            _default_type,
            report,
            "category",
            inverse=default_category,
        ),
        strict=True,
    ):
        out[i] = t
    return out


def _default_type(name: str) -> str:
    """The KITTI type a category is written as without ``category_map``."""
    key = re.sub(r"[\s_-]+", "_", name.strip().lower())
    t = _KITTI_BY_KEY.get(key, name[:1].upper() + name[1:])
    return re.sub(r"\s+", "_", t.strip())


def default_category(t: str) -> str:
    """The category a KITTI type reads back as without ``category_map`` (inverse of the writer).

    Examples
    --------
    >>> default_category("Car"), default_category("My_Car")
    ('car', 'my_Car')
    """
    return t.lower() if t in KITTI_TYPES else t[:1].lower() + t[1:]


def _occlusion(
    table: Any,
    attribute: str | None,
    mapping: Mapping[str, int] | None,
) -> tuple[Array, Array]:
    """``(codes, bad)``: occlusion per label (0 default) and where a value could not be mapped."""
    n = len(table)
    if attribute is None or attribute not in table.attributes:
        return np.zeros(n), np.zeros(n, dtype=bool)
    m = mapping
    vals = np.array(
        ["" if v is None else str(v) for v in table.attributes[attribute]], dtype=object
    )
    uniq, inv = np.unique(vals.astype(str), return_inverse=True)
    codes = np.full(len(uniq), np.nan)
    for j, u in enumerate(uniq.tolist()):
        if m is not None and u in m:
            codes[j] = int(m[u])
        elif m is None and re.fullmatch(r"-?\d+", u):
            codes[j] = int(u)
    out = codes[inv]
    missing = vals == ""
    bad = np.isnan(out) & ~missing
    return np.where(np.isnan(out), -1.0, out), bad


def _project_boxes(corners: Array, cal: Calibration, f: Array) -> tuple[Array, Array]:
    """Unclipped image extents ``(n, 4)`` of cuboid corners ``(n, 8, 3)`` in camera ``f[i]``."""
    n = len(corners)
    distorted = np.any(cal.distortion[f] != 0, axis=1) | (cal.model[f] != "pinhole")
    a, b = corners[:, _EDGES[:, 0]], corners[:, _EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    cross = (za - NEAR_PLANE) * (zb - NEAR_PLANE) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(cross, (NEAR_PLANE - za) / (zb - za), 0.0)
    cut = a + tt[..., None] * (b - a)
    if distorted.any():
        # distorted edges are curves: sample them densely
        t = np.linspace(0.0, 1.0, 9)
        pts = a[:, :, None, :] + t[None, None, :, None] * (b - a)[:, :, None, :]
        pts = pts.reshape(n, -1, 3)
    else:
        pts = corners
    valid = np.concatenate([pts[..., 2] >= NEAR_PLANE, cross], axis=1)
    pts = np.concatenate([pts, cut], axis=1)
    uv, ok = sp.project_points(
        pts,
        cal.fx[f],
        cal.fy[f],
        cal.cx[f],
        cal.cy[f],
        model=cal.model[f],
        distortion=cal.distortion[f],
    )
    valid &= ok & np.isfinite(uv).all(axis=-1)
    lo = np.where(valid[..., None], uv, np.inf).min(axis=1)
    hi = np.where(valid[..., None], uv, -np.inf).max(axis=1)
    return np.concatenate([lo, hi], axis=1), np.asarray(valid.any(axis=1))


def _clip(
    xyxy: Array, width: Array, height: Array, pixel_index: bool
) -> tuple[Array, Array, Array]:
    """Clip boxes; return ``(clipped, truncation, visible)``; size <= 0 means unknown (no clip)."""
    d = 1.0 if pixel_index else 0.0
    known = (width > 0) & (height > 0)
    wmax = np.where(known, width - d, np.inf)
    hmax = np.where(known, height - d, np.inf)
    c = xyxy.copy()
    c[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, wmax[:, None])
    c[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, hmax[:, None])
    c = np.where(known[:, None], c, xyxy)
    area = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    cw, ch = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
    carea = np.clip(cw, 0, None) * np.clip(ch, 0, None)
    visible = (cw > 0) & (ch > 0) if len(c) else np.zeros(0, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        trunc = np.where(area > 0, 1.0 - carea / area, 0.0)
    return c, np.clip(trunc, 0.0, 1.0), visible


def cuboid_rows(
    labels: LabelSet,
    lay: Layout,
    cal: Calibration,
    types: Array,
    occ: Array,
    report: Report,
    tilt_tolerance: float,
) -> tuple[Array, Array, Array]:
    """``(frame, values (n, 14), state)`` of every cuboid (module docstring for the rules)."""
    cub: Cuboids = labels.cuboids
    f = lay.position[cub.frame]
    if cub.frame_of_reference not in ("world", "lidar"):
        raise ConversionError(
            f"{FORMAT}: cuboids in the {cub.frame_of_reference!r} frame cannot be placed; KITTI "
            "writes world- or LiDAR-frame cuboids (read KITTI with its calib files to get them)",
            format=FORMAT,
        )
    if cub.frame_of_reference == "lidar":
        cpos, cq = sp.relative_pose(cal.cam_pos, cal.cam_quat, cal.lidar_pos, cal.lidar_quat)
        center, quat = sp.cuboids_to_sensor(cub.center, cub.quat, cpos[f], cq[f])
    else:
        center, quat = sp.cuboids_to_sensor(cub.center, cub.quat, cal.cam_pos[f], cal.cam_quat[f])
    rot = sp.quat_to_matrix(quat)
    heading, up = rot[:, :, 0], rot[:, :, 2]
    size = cub.size
    v = np.zeros((len(cub), 14))
    v[:, OCC] = occ
    v[:, H], v[:, W], v[:, L] = size[:, 2], size[:, 1], size[:, 0]
    v[:, X], v[:, Y], v[:, Z] = center[:, 0], center[:, 1] + size[:, 2] / 2, center[:, 2]
    v[:, RY] = sp.wrap_angle(np.arctan2(-heading[:, 2], heading[:, 0]))
    v[:, ALPHA] = sp.wrap_angle(v[:, RY] - np.arctan2(center[:, 0], center[:, 2]))
    tilt = np.degrees(np.arccos(np.clip(-up[:, 1], -1.0, 1.0)))
    record(
        report, labels, "cuboids", np.flatnonzero(tilt > tilt_tolerance), "changed",
        f"box tilted more than {tilt_tolerance} deg from the camera's vertical: KITTI keeps the "
        "centre and the yaw about camera y, not the tilt",
    )  # fmt: skip
    if cal.virtual:  # no image: every object is "in view", bbox unknown
        v[:, X1 : Y2 + 1] = -1.0
        return f, v, np.zeros(len(cub), dtype=np.int64)
    corners = sp.cuboid_corners(center, size, quat)
    raw, front = _project_boxes(corners, cal, f)
    raw = np.where(front[:, None], raw, -1.0)
    clipped, trunc, visible = _clip(raw, cal.width[f], cal.height[f], pixel_index=True)
    visible &= front
    v[:, X1 : Y2 + 1] = np.where(visible[:, None], clipped, -1.0)
    v[:, TRUNC] = np.where(visible, trunc, 1.0)
    state = np.where(~visible, 2, np.where(trunc > 0, 1, 0))
    unknown = (cal.width[f] <= 0) | (cal.height[f] <= 0)
    record(
        report, labels, "cuboids", np.flatnonzero(unknown & visible), "changed",
        "image size unknown: 2D box not clipped, truncation not computed",
    )  # fmt: skip
    record(
        report, labels, "cuboids", np.flatnonzero(state == 1), "clipped",
        "projected 2D box clipped to the image (truncated = 1 - clipped / unclipped area)",
    )  # fmt: skip
    return f, v, state


def box_rows(
    labels: LabelSet, lay: Layout, widths: Array, heights: Array, occ: Array, report: Report
) -> tuple[Array, Array, Array]:
    """``(frame, values (n, 14), state)`` of 2D boxes as 2D-only rows."""
    b: Boxes = labels.boxes
    f = lay.position[b.frame]
    v = np.zeros((len(b), 14))
    v[:, OCC] = occ
    v[:, ALPHA] = -10.0
    v[:, H:] = _DEFAULT_3D
    clipped, trunc, visible = _clip(b.xyxy, widths, heights, pixel_index=False)
    v[:, X1 : Y2 + 1] = clipped
    v[:, TRUNC] = trunc
    state = np.where(~visible, 2, np.where(trunc > 0, 1, 0))
    record(
        report,
        labels,
        "boxes",
        np.flatnonzero(state == 1),
        "clipped",
        "2D box clipped to the image",
    )
    unknown = ~((widths > 0) & (heights > 0))
    record(
        report,
        labels,
        "boxes",
        np.flatnonzero(unknown & visible),
        "kept",
        "image size unknown: 2D box written as drawn, not clipped (pass --images)",
    )
    return f, v, state


def build_rows(
    labels: LabelSet,
    *,
    camera: str | None,
    outside: Outside,
    category_map: Mapping[str, str | None] | None,
    occlusion_attribute: str | None,
    occlusion_map: Mapping[str, int] | None,
    assume_identity_pose: bool,
    tilt_tolerance: float,
    report: Report,
    fmt: str = FORMAT,
    box_source: BoxSource = "projection",
    skip_unlabelled: bool = False,
) -> tuple[Layout, Calibration | None, Rows]:
    """Layout, calibration and KITTI rows of ``labels`` (shared by kitti and kitti_tracking)."""
    if outside not in ("keep", "drop"):
        raise ValueError(f"outside must be 'keep' or 'drop', got {outside!r}")
    if box_source not in ("projection", "label"):
        raise ValueError(f"box_source must be 'projection' or 'label', got {box_source!r}")
    lay = l3.layout(labels, skip_unlabelled=skip_unlabelled)
    for r in np.flatnonzero(
        (labels.frames.status == int(FrameStatus.UNLABELLED)) & (lay.position < 0)
    ).tolist():
        report.add("skipped", "frame not labelled yet", file_id=str(labels.frames.file_id[r]))
    cal = (
        l3.calibration(
            labels, lay, camera, assume_identity_pose=assume_identity_pose, fmt=FORMAT, hint=_HINT
        )
        if lay.three_d
        else None
    )
    # kitti_tracking renames the types again (and reports that): only KITTI's own names here
    types = _types(labels, category_map, report if fmt == FORMAT else Report(fmt))
    parts: list[tuple[str, Array, Array, Array, Array]] = []
    # cuboids
    cub = labels.cuboids
    occ_c, bad_c = _occlusion(cub, occlusion_attribute, occlusion_map)
    record(report, labels, "cuboids", bad_c, "changed", _unmapped_occlusion(occlusion_attribute))
    if len(cub) and cal is not None:
        f, v, st = cuboid_rows(labels, lay, cal, types, occ_c, report, tilt_tolerance)
        parts.append(("cuboids", np.arange(len(cub)), f, v, st))
    box_part = _box_part(labels, lay, cal, camera, occlusion_attribute, occlusion_map, report, fmt)
    if box_part is not None:
        parts.append(box_part)
    if len(parts) == 2:
        parts = _merge_boxes(labels, parts, box_source, report)
    rows = _assemble(labels, parts, types, outside, report, fmt)
    return lay, cal, rows


def _unmapped_occlusion(attribute: str | None) -> str:
    return f"{attribute!r} value not in occlusion_map: occluded = -1"


def _box_part(
    labels: LabelSet,
    lay: Layout,
    cal: Calibration | None,
    camera: str | None,
    occlusion_attribute: str | None,
    occlusion_map: Mapping[str, int] | None,
    report: Report,
    fmt: str,
) -> tuple[str, Array, Array, Array, Array] | None:
    """The 2D-only rows of the boxes written (3D data: the exported camera's boxes only)."""
    b = labels.boxes
    keep_b = np.ones(len(b), dtype=bool)
    if lay.three_d and len(b):
        on_cam = (
            (labels.frames.sensor_id[b.frame] == camera)
            if camera is not None
            else np.zeros(len(b), dtype=bool)
        )
        keep_b = on_cam & (lay.position[b.frame] >= 0)
        record(
            report, labels, "boxes", ~keep_b, "dropped",
            f"{fmt} holds the 2D boxes of the exported camera ({camera}) only",
        )  # fmt: skip
    if not keep_b.any():
        return None
    sub = labels.replace(boxes=b.take(keep_b))
    occ_b, bad_b = _occlusion(sub.boxes, occlusion_attribute, occlusion_map)
    record(report, sub, "boxes", bad_b, "changed", _unmapped_occlusion(occlusion_attribute))
    frame = sub.boxes.frame
    widths = labels.frames.width[frame].astype(np.int64)
    heights = labels.frames.height[frame].astype(np.int64)
    if lay.three_d and cal is not None:
        # the camera frame's own size first, else the calibration's
        widths = np.where(widths > 0, widths, cal.width[lay.position[frame]])
        heights = np.where(heights > 0, heights, cal.height[lay.position[frame]])
    f, v, st = box_rows(sub, lay, widths, heights, occ_b, report)
    return ("boxes", np.flatnonzero(keep_b), f, v, st)


def _merge_boxes(
    labels: LabelSet,
    parts: list[tuple[str, Array, Array, Array, Array]],
    box_source: BoxSource,
    report: Report,
) -> list[tuple[str, Array, Array, Array, Array]]:
    """One row per object: a camera box of a label that has a cuboid in the frame joins it."""
    (_, csrc, cf, cv, cst), (_, bsrc, bf, bv, bst) = parts

    def key(f: Array, ids: Array) -> Array:
        return np.char.add(np.char.add(f.astype(str), "\x00"), ids.astype(str))

    ckey = key(cf, labels.cuboids.label_id[csrc])
    bkey = key(bf, labels.boxes.label_id[bsrc])
    match = np.isin(bkey, ckey)
    if not match.any():
        return parts
    if box_source == "label":
        order = np.argsort(ckey, kind="stable")
        at = order[np.searchsorted(ckey[order], bkey[match])]
        cv, cst = cv.copy(), cst.copy()
        cv[at, X1 : Y2 + 1] = bv[match, X1 : Y2 + 1]
        cv[at, TRUNC] = bv[match, TRUNC]
        cst[at] = bst[match]
        action: Action = "changed"
        why = "2D box used as the bbox of its cuboid's row (box_source='label')"
    else:
        action, why = (
            "dropped",
            (
                "2D box of a label with a cuboid in this frame: its row has the projected cuboid's "
                "bbox (box_source='projection'; 'label' uses this box instead)"
            ),
        )
    record(report, labels, "boxes", bsrc[match], action, why)
    keep = ~match
    return [("cuboids", csrc, cf, cv, cst), ("boxes", bsrc[keep], bf[keep], bv[keep], bst[keep])]


_ROW_FIELDS = ("frame", "type", "values", "state", "kind", "source", "label_id", "track", "file_id")


def _assemble(
    labels: LabelSet,
    parts: list[tuple[str, Array, Array, Array, Array]],
    types: Array,
    outside: Outside,
    report: Report,
    fmt: str,
) -> Rows:
    """The rows of every part that are written, sorted by frame (stable: part order kept)."""
    if not parts:
        empty_obj = np.zeros(0, dtype=object)
        empty_int = np.zeros(0, np.int64)
        return Rows(
            empty_int, empty_obj, np.zeros((0, 14)), empty_int, empty_obj, empty_int,
            empty_obj, empty_int, empty_obj,
        )  # fmt: skip
    cols: dict[str, list[Array]] = {k: [] for k in _ROW_FIELDS}
    for kind, src, f, v, st in parts:
        table: Any = labels.table(kind)
        t = types[table.category[src]]
        keep = _kept(labels, kind, src, t, v, st, outside, report)
        cols["frame"].append(f[keep])
        cols["type"].append(t[keep])
        cols["values"].append(v[keep])
        cols["state"].append(st[keep])
        cols["kind"].append(np.full(int(keep.sum()), kind, dtype=object))
        cols["source"].append(src[keep])
        cols["label_id"].append(table.label_id[src[keep]])
        cols["track"].append(table.track[src[keep]])
        cols["file_id"].append(labels.frames.file_id[table.frame[src[keep]]])
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(cat["frame"], kind="stable")
    return Rows(**{k: v[order] for k, v in cat.items()})


def _kept(
    labels: LabelSet,
    kind: str,
    src: Array,
    t: Array,
    v: Array,
    st: Array,
    outside: Outside,
    report: Report,
) -> Array:
    """Which rows of a part are written; a report entry for every other (and for kept ones
    outside the image)."""
    unmapped = np.array([x is None for x in t], dtype=bool)
    record(
        report, labels, kind, src[unmapped], "dropped", "category mapped to null in category_map"
    )
    keep = ~unmapped
    bad = ~np.isfinite(v).all(axis=1) & keep
    record(report, labels, kind, src[bad], "dropped", "non-finite coordinates")
    keep &= ~bad
    if kind == "boxes":
        # a 2D-only row has nothing but its box: one outside the image or of zero area is
        # useless to a detector whatever the outside policy (COCO, YOLO and VOC drop it too)
        gone = (st == 2) & keep
        record(
            report, labels, kind, src[gone], "dropped", "2D box outside the image or of zero area"
        )
        keep &= ~gone
    if outside == "drop":
        out = (st == 2) & keep
        record(
            report, labels, kind, src[out], "dropped", "not in the camera image (outside='drop')"
        )
        keep &= st != 2
    else:
        record(
            report, labels, kind, src[(st == 2) & keep], "kept",
            "not in the camera image: bbox -1 -1 -1 -1, truncated 1 (outside='keep')",
        )  # fmt: skip
    return keep


# -- formatting -------------------------------------------------------------------------


def format_columns(columns: list[Array], fmts: list[str]) -> Any:
    """Lines of ``columns`` joined by spaces, each column with its printf format, formatted
    column-wise (a ``pyarrow`` string array; no per-label ``%``).

    ``"%.<d>f"`` columns are rounded to their decimals first (so ``-0.001`` is written ``0.00``,
    never ``-0.00``; :func:`converters._numbers.fixed_texts`), ``"%d"`` columns to integers,
    ``"%s"`` columns are text.

    Examples
    --------
    >>> cols = [np.array(["Car"]), np.array([-0.001]), np.array([2.0])]
    >>> format_columns(cols, ["%s", "%.2f", "%d"]).to_pylist()
    ['Car 0.00 2']
    """
    texts = []
    for col, fm in zip(columns, fmts, strict=True):
        m = re.fullmatch(r"%\.(\d+)f", fm)
        if m:
            texts.append(fixed_texts(col.astype(np.float64), int(m.group(1))))
        elif fm == "%d":
            whole = np.round(col.astype(np.float64)).astype(np.int64)
            texts.append(pc.cast(pa.array(whole), pa.string()))
        elif fm == "%s":
            texts.append(pa.array([str(x) for x in col.tolist()], pa.string()))
        else:
            raise ValueError(f"format_columns: unsupported format {fm!r}")
    return pc.binary_join_element_wise(*texts, " ")


def object_lines(rows: Rows, precision: int) -> Any:
    """The 15-column label lines of ``rows`` (a ``pyarrow`` string array)."""
    p = f"%.{precision}f"
    fmts = ["%s", p, "%d"] + [p] * 12
    return format_columns([rows.type, *rows.values.T], fmts)


def group_text(frame: Array, lines: Any, k: int) -> list[bytes]:
    """UTF-8 file contents per KITTI frame: the lines of frame ``i`` (sorted by frame), each
    ended by ``\\n`` (empty when none), cut from one buffer by the lines' offsets.

    Examples
    --------
    >>> group_text(np.array([0, 0, 2]), pa.array(["a", "b", "c"]), 4)
    [b'a\\nb\\n', b'', b'c\\n', b'']
    """
    text = pc.cast(pc.binary_join_element_wise(lines, "\n", ""), pa.large_string())
    if not isinstance(text, pa.Array):  # a scalar when there are no lines
        text = pa.array([], pa.large_string())
    _, off_buf, data_buf = text.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[text.offset : text.offset + len(text) + 1]
    data = data_buf.to_pybytes() if data_buf is not None else b""
    at = offsets[np.searchsorted(frame, np.arange(k + 1))].tolist() if len(text) else [0] * (k + 1)
    return [data[at[i] : at[i + 1]] for i in range(k)]


def _mat(m: Array) -> str:
    return " ".join(f"{x:.12e}" for x in (np.asarray(m, dtype=np.float64).ravel() + 0.0).tolist())


_E12 = " ".join(["%.12e"] * 12)
"""A 3x4 matrix, row-major, as KITTI's calib files write it (one ``%`` per matrix)."""


def calib_text(cal: Calibration) -> list[str]:
    """Contents of ``calib/%06d.txt`` per KITTI frame.

    ``P0`` .. ``P3`` are the same ``P2`` (formatted once per distinct camera matrix), ``R0_rect``
    and ``Tr_imu_to_velo`` identities; ``Tr_velo_to_cam`` is each frame's.
    """
    k = len(cal.fx)
    p = np.zeros((k, 12))
    if cal.virtual:
        p[:] = np.eye(3, 4).ravel()
    else:
        p[:, 0], p[:, 2], p[:, 5], p[:, 6], p[:, 10] = cal.fx, cal.cx, cal.fy, cal.cy, 1.0
    tr = (l3.velo_to_cam(cal).reshape(k, 12) + 0.0).tolist()
    fixed_lines = f"R0_rect: {_mat(np.eye(3))}\nTr_velo_to_cam: "
    imu = f"\nTr_imu_to_velo: {_mat(np.eye(3, 4))}\n"
    texts: dict[tuple[float, ...], str] = {}
    out = []
    for i, row in enumerate((p + 0.0).tolist()):
        key = tuple(row)
        pk = texts.get(key)
        if pk is None:
            m = _E12 % key
            pk = texts[key] = "".join(f"P{j}: {m}\n" for j in range(4))
        out.append(pk + fixed_lines + _E12 % tuple(tr[i]) + imu)
    return out


def mapping_frames(
    names: Sequence[str], lay: Layout, cal: Calibration | None, sources: Sequence[str], fr: Frames
) -> list[dict[str, Any]]:
    """``mapping.json`` rows: each KITTI name with the Deepen frame, image and size it came from."""
    return [
        {
            "kitti": names[i],
            "dataset_id": str(fr.dataset_id[r]),
            "file_id": str(fr.file_id[r]),
            "sensor_id": str(fr.sensor_id[r]),
            "image": sources[i],
            "width": int(cal.width[i]) if cal is not None else int(fr.width[r]),
            "height": int(cal.height[i]) if cal is not None else int(fr.height[r]),
        }
        for i, r in enumerate(lay.rows.tolist())
    ]


# -- files ------------------------------------------------------------------------------


def report_distortion(cal: Calibration | None, camera: str | None, report: Report) -> None:
    """Report once that ``P2`` cannot hold the camera's lens distortion (when it has any)."""
    if cal is not None and not cal.virtual and np.any(cal.distortion != 0):
        report.add(
            "changed",
            f"{camera} has lens distortion, which KITTI's P2 cannot hold; 2D boxes are in the distorted image",
            kind="cuboids",
        )


def write_texts(
    tmp: Path,
    folder: str,
    rels: Sequence[str],
    texts: Sequence[str | bytes],
    report: Report,
    what: str,
) -> None:
    """Create ``folder`` (even for no file) and write ``texts[i]`` to ``tmp / rels[i]`` (UTF-8)."""
    (tmp / folder).mkdir()
    files = FileWriter(tmp)
    for rel, text in progress(list(zip(rels, texts, strict=True)), description=what):
        files.write(rel, text if isinstance(text, bytes) else text.encode("utf-8"))
    report.files.extend(rels)


def write_scans(
    tmp: Path, rels: Mapping[int, str], points: Mapping[int, Array], report: Report
) -> None:
    """The ``velodyne`` scans: float32 little-endian ``x y z intensity`` per point."""
    files = FileWriter(tmp)
    for i, data in progress(sorted(points.items()), description="velodyne scans"):
        files.write(rels[i], data.astype("<f4").tobytes())
        report.files.append(rels[i])


def image_sources(lay: Layout, cal: Calibration | None, fr: Frames) -> list[str]:
    """The image of every KITTI frame: the camera's image path (3D), else the frame's file id."""
    if cal is not None:
        return [str(p) for p in cal.image_path.tolist()]
    return [str(f) for f in fr.file_id[lay.rows].tolist()]


def copy_images(
    media: str | os.PathLike[str] | None,
    tmp: Path,
    targets: Sequence[str],
    sources: Sequence[str],
    lay: Layout,
    fr: Frames,
    report: Report,
) -> int:
    """Copy ``sources[i]`` from ``media`` (a folder or zip) to ``tmp / targets[i]``; how many."""
    copied = 0
    with ImageSource(media) as src:
        if src.path is None:
            return 0
        for i, rel in enumerate(progress(list(sources), description="images")):
            target = tmp / targets[i]
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.copy(rel, target):
                copied += 1
                report.files.append(targets[i])
            else:
                report.add(
                    "skipped",
                    f"image {rel!r} not found in {src.path}",
                    file_id=str(fr.file_id[lay.rows[i]]),
                )
    return copied


# -- read -------------------------------------------------------------------------------


def parse_calib(text: str) -> dict[str, Array]:
    """Matrices of a KITTI calib file by key (object and tracking key spellings)."""
    out: dict[str, Array] = {}
    for line in text.splitlines():
        if ":" in line:
            key, vals = line.split(":", 1)
        elif line.strip():
            key, _, vals = line.strip().partition(" ")
        else:
            continue
        nums = np.array(vals.split(), dtype=np.float64)
        key = {
            "R_rect": "R0_rect",
            "Tr_velo_cam": "Tr_velo_to_cam",
            "Tr_imu_velo": "Tr_imu_to_velo",
        }.get(key.strip(), key.strip())
        out[key] = (
            nums.reshape(3, 3)
            if nums.size == 9
            else nums.reshape(3, 4)
            if nums.size == 12
            else nums
        )
    return out


def kitti_to_cuboids(values: Array) -> tuple[Array, Array, Array]:
    """``(center, size (l, w, h), quat)`` in camera coordinates from KITTI ``h w l x y z ry``."""
    h, w, l_, x, y, z, ry = values.T
    center = np.column_stack([x, y - h / 2, z])
    size = np.column_stack([l_, w, h])
    c, s = np.cos(ry), np.sin(ry)
    zero, one = np.zeros_like(ry), np.ones_like(ry)
    ax = np.stack([c, zero, -s], axis=-1)  # box +x (heading) in camera coordinates
    az = np.stack([zero, -one, zero], axis=-1)  # box up = camera -y
    ay = np.cross(az, ax)
    rot = np.stack([ax, ay, az], axis=-1)
    return center, size, sp.matrix_to_quat(rot)


def type_to_category(
    types: Array, category_map: Mapping[str, str] | str | None
) -> tuple[tuple[str, ...], Array]:
    """Categories (first appearance order) and codes from KITTI types."""
    m = json.loads(category_map) if isinstance(category_map, str) else (category_map or None)
    names = [(m.get(t, t) if m is not None else default_category(t)) for t in types.tolist()]
    cats = tuple(dict.fromkeys(names))
    index = {c: i for i, c in enumerate(cats)}
    return cats, np.array([index[n] for n in names], dtype=np.int32)


def parse_lines(lines: list[str], first: int) -> tuple[Array, Array]:
    """``(types, values (n, 14))`` of KITTI lines whose type is column ``first``."""
    split = [ln.split() for ln in lines if ln.strip()]
    if not split:
        return np.zeros(0, dtype=object), np.zeros((0, 14 + first))
    bad = [s for s in split if len(s) < first + 15]
    if bad:
        raise ConversionError(
            f"KITTI line with {len(bad[0])} columns, expected {first + 15}: {' '.join(bad[0])!r}"
        )
    arr = np.array([s[: first + 15] for s in split], dtype=object)
    types = arr[:, first]
    values = arr[:, first + 1 : first + 15].astype(np.float64)
    lead = arr[:, :first].astype(np.int64) if first else np.zeros((len(arr), 0), dtype=np.int64)
    return types, np.column_stack([values, lead]) if first else values


def has_3d(values: Array) -> Array:
    """Rows whose 3D fields are set (not the devkit defaults)."""
    return np.all(values[:, H : L + 1] >= 0, axis=1) & ~np.all(
        values[:, X : Z + 1] == -1000, axis=1
    )


def to_lidar(center: Array, quat: Array, tr: Array, r0: Array) -> tuple[Array, Array]:
    """Camera (rectified) cuboids into the LiDAR frame: ``X_velo = Tr^-1 R0^-1 X_rect``."""
    m = np.zeros((len(tr), 4, 4))
    m[:, :3, :3] = r0 @ tr[:, :, :3]
    m[:, :3, 3] = np.einsum("nij,nj->ni", r0, tr[:, :, 3])
    m[:, 3, 3] = 1.0
    inv = sp.invert_transform(m)
    c = sp.apply_transform(inv, center[:, None, :])[:, 0]
    q = sp.quat_multiply(sp.matrix_to_quat(inv[:, :3, :3]), quat)
    return c, np.where(q[:, 3:] < 0, -q, q)


def rows_to_labelset(
    stems: list[str],
    info: Mapping[str, Mapping[str, Any]],
    camera: str,
    types: Array,
    values: Array,
    frames_of: Array,
    calibs: list[dict[str, Array] | None],
    category_map: Mapping[str, str] | str | None,
    frame: str,
    track: Array | None = None,
    names: list[str | None] | None = None,
) -> LabelSet:
    """A LabelSet from parsed KITTI rows (shared by the object and tracking readers).

    ``stems`` name the KITTI frames, ``info`` their ``mapping.json`` entries, ``values`` the
    numeric columns ``(n, 14)`` of rows in frame ``frames_of``; rows with 3D fields become
    cuboids (moved into the LiDAR frame with ``calibs`` when ``frame == "lidar"``), the others
    2D boxes. ``track`` and ``names`` give label numbers and ids where known.
    """
    k = len(stems)
    meta = [info.get(s, {}) for s in stems]
    cats, codes = type_to_category(types, category_map)
    label_id = _label_ids(cats, codes, track, names)
    is3d = has_3d(values) & (types != "DontCare")
    center, size, quat = kitti_to_cuboids(values[is3d][:, H : RY + 1])
    with_calib = k > 0 and all(c is not None and "Tr_velo_to_cam" in c for c in calibs)
    ref = "camera"
    poses, cameras = Poses.empty(), Cameras.empty()
    box_frame = frames_of[~is3d]
    file_id = [str(m.get("file_id", s)) for m, s in zip(meta, stems, strict=True)]
    dataset_id = [str(m.get("dataset_id", "")) for m in meta]
    sensor_id = [str(m.get("sensor_id", "")) for m in meta]
    size_w = [int(m.get("width", -1)) for m in meta]
    size_h = [int(m.get("height", -1)) for m in meta]
    if with_calib and frame == "lidar":
        cal = [c for c in calibs if c is not None]
        tr = np.stack([c["Tr_velo_to_cam"] for c in cal])
        r0 = np.stack([c.get("R0_rect", np.eye(3)) for c in cal])
        center, quat = to_lidar(center, quat, tr[frames_of[is3d]], r0[frames_of[is3d]])
        ref = "lidar"
        poses, cameras = _calibration(cal, tr, r0, camera, size_w, size_h, meta)
        sensor_id = [s or "lidar" for s in sensor_id]
        if len(box_frame):
            # 2D-only rows belong to the camera's view of the frame
            box_frame = box_frame + k
            file_id, dataset_id = file_id * 2, dataset_id * 2
            sensor_id = sensor_id + [camera] * k
            size_w, size_h = [-1] * k + size_w, [-1] * k + size_h
    frames = Frames.from_columns(
        file_id=file_id, dataset_id=dataset_id, sensor_id=sensor_id,
        index=np.arange(len(file_id)) % max(k, 1), width=size_w, height=size_h,
    )  # fmt: skip
    sel3 = np.flatnonzero(is3d)
    cuboids = Cuboids.from_columns(
        frame=frames_of[sel3], category=codes[sel3], label_id=label_id[sel3],
        center=center, size=size, quat=quat, frame_of_reference=ref,
        **({} if track is None else {"track": track[sel3]}),
    )  # fmt: skip
    sel2 = np.flatnonzero(~is3d)
    boxes = Boxes.from_columns(
        frame=box_frame, category=codes[sel2], label_id=label_id[sel2],
        xyxy=values[sel2][:, X1 : Y2 + 1],
        **({} if track is None else {"track": track[sel2]}),
    )  # fmt: skip
    return LabelSet(
        frames=frames, categories=cats, cuboids=cuboids, boxes=boxes, poses=poses,
        cameras=cameras, meta={"source_format": FORMAT},
    )  # fmt: skip


def _calibration(
    cal: list[dict[str, Array]],
    tr: Array,
    r0: Array,
    camera: str,
    width: list[int],
    height: list[int],
    meta: list[Mapping[str, Any]],
) -> tuple[Poses, Cameras]:
    """Identity device poses and the camera's pose in the LiDAR frame, from KITTI calib files."""
    k = len(cal)
    m = np.zeros((k, 4, 4))
    m[:, :3, :3] = r0 @ tr[:, :, :3]
    m[:, :3, 3] = np.einsum("nij,nj->ni", r0, tr[:, :, 3])
    m[:, 3, 3] = 1.0
    cam_in_lidar = sp.invert_transform(m)
    p2 = np.stack([c.get("P2", np.eye(3, 4)) for c in cal])
    poses = Poses.from_columns(
        frame=np.arange(k), position=np.zeros((k, 3)), quat=np.tile([0, 0, 0, 1.0], (k, 1))
    )
    cameras = Cameras.from_columns(
        frame=np.arange(k), sensor_id=[camera] * k,
        fx=p2[:, 0, 0], fy=p2[:, 1, 1], cx=p2[:, 0, 2], cy=p2[:, 1, 2],
        position=cam_in_lidar[:, :3, 3], quat=sp.matrix_to_quat(cam_in_lidar[:, :3, :3]),
        width=width, height=height,
        image_path=[str(m.get("image", "")) for m in meta],
    )  # fmt: skip
    return poses, cameras


def _label_ids(
    cats: tuple[str, ...], codes: Array, track: Array | None, names: list[str | None] | None
) -> Array:
    """``names[i]``, else ``<category>:<track>``, else ``<category>:<n>`` numbered in file order."""
    label_num = np.zeros(len(codes), dtype=np.int64)
    for c in range(len(cats)):
        sel = codes == c
        label_num[sel] = np.arange(1, int(sel.sum()) + 1)
    if track is not None:
        label_num = np.where(track >= 0, track, label_num)
    return np.array(
        [
            n or f"{cats[c]}:{i}"
            for c, i, n in zip(
                codes.tolist(), label_num.tolist(), names or [None] * len(codes), strict=True
            )
        ],
        dtype=object,
    )
