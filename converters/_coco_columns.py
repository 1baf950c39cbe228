"""The COCO document as columns, and its JSON text made from them in batches.

:func:`build` decides everything :func:`converters.coco.write` writes (frames, ids, clipped
and repaired geometry, RLEs, report entries, in the order the report lists them) and keeps
it as numpy columns and shapely arrays, one :class:`Kind` per annotation kind. The JSON text
of images and annotations is then made batch by batch (:func:`annotation_texts`) with the
kernels of :mod:`converters._jsontext`: no dict per annotation is ever built, and only one
batch of text is held at a time. The text is byte for byte what ``orjson.dumps`` writes for
the dicts the earlier writer built (``tests/test_coco.py`` compares both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from converters import _jsontext as jt
from converters import _prepare2d as prep
from converters._base import _dumps, ordered_map, record
from converters._idmap import IdMap, unique_texts
from converters._numbers import DIFFERENCE_DECIMALS, shortest
from deepen_export import geometry as geo
from deepen_export.model import LabelSet
from deepen_export.report import Report

Array = npt.NDArray[Any]
Text: TypeAlias = pa.StringArray  # one JSON text per row

INFO = {"description": "Exported from Deepen AI by deepen-export", "version": "1.0"}
META = ("stage", "label_set", "labeller", "create_time", "update_time", "version")
BATCH = 20_000
"""Annotations formatted at once: text of a batch is a few MB."""


@dataclass
class Kind:
    """One kind's annotations (``box``, ``polygon``, ``points``), in (image, row) order.

    ``members(idx)`` gives the text from ``,"area"`` to the kind's last own member, and what
    follows the Deepen members (``,"deepen_rings"`` of polygons with holes), or ``""``.
    """

    name: str
    table: str
    rows: Array
    pos: Array
    members: Callable[[Array], tuple[list[Text | str], Text | str]]


@dataclass
class Columns:
    """Everything of a COCO document but its text."""

    labels: LabelSet
    frames: Array
    names: list[str]
    image_ids: Array
    width: Array
    height: Array
    cat_ids: Array
    categories: list[dict[str, Any]]
    kinds: list[Kind]
    seq: Array = field(default_factory=lambda: np.zeros(0, np.int8))  # kind of each annotation
    local: Array = field(default_factory=lambda: np.zeros(0, np.int64))  # index in its kind
    ann_ids: Array = field(default_factory=lambda: np.zeros(0, np.int64))
    ann_pos: Array = field(default_factory=lambda: np.zeros(0, np.int64))  # image position


def build(
    labels: LabelSet, report: Report, ids: IdMap, *, clip: bool = True, area: str = "polygon"
) -> Columns:
    """The columns of the COCO document of ``labels``; report entries added on the way."""
    if area not in ("polygon", "pixels"):
        raise ValueError(f"area must be 'polygon' or 'pixels', got {area!r}")
    frames = prep.image_frames(labels, report, "image entry")
    names = prep.image_names(labels, frames)
    prep.check_paths(names, "/")
    unknown = prep.report_unknown_sizes(
        labels,
        frames,
        report,
        "width/height written as 0, labels not clipped, polygon areas are geometric areas",
    )
    f = labels.frames
    keys = prep.frame_keys(labels, frames)
    pos_of_frame = np.full(len(f), -1, dtype=np.int64)
    pos_of_frame[frames] = np.arange(len(frames))
    kinds = [
        _boxes(labels, report, frames, pos_of_frame, clip=clip),
        _polygons(labels, report, frames, pos_of_frame, clip=clip, pixel_area=area == "pixels"),
    ]
    kp_count, points = _points(labels, report, frames, pos_of_frame)
    kinds.append(points)
    cat_ids = ids.assign("categories", list(labels.categories))
    cols = Columns(
        labels=labels,
        frames=frames,
        names=names,
        image_ids=ids.assign("images", keys),
        width=np.where(unknown, 0, f.width[frames]).astype(np.int64),
        height=np.where(unknown, 0, f.height[frames]).astype(np.int64),
        cat_ids=cat_ids,
        categories=_categories(labels, cat_ids, kp_count),
        kinds=kinds,
    )
    _order(cols, ids, pa.array(keys, type=pa.string()))
    report.written.update(
        {
            "images": len(frames),
            "annotations": len(cols.seq),
            "categories": len(cols.categories),
        }
    )
    return cols


def _order(cols: Columns, ids: IdMap, frame_keys: pa.Array) -> None:
    """Document order (image, kind, row) and annotation ids, keyed by image and label id."""
    pos = np.concatenate([k.pos for k in cols.kinds]).astype(np.int64)
    kind = np.concatenate([np.full(len(k.rows), i, np.int8) for i, k in enumerate(cols.kinds)])
    row = np.concatenate([k.rows for k in cols.kinds]).astype(np.int64)
    local = np.concatenate([np.arange(len(k.rows)) for k in cols.kinds]).astype(np.int64)
    order = np.lexsort((row, kind, pos))
    cols.seq, cols.local, cols.ann_pos = kind[order], local[order], pos[order]
    label_ids = []
    for k in cols.kinds:
        t = cols.labels.table(k.table)
        label_ids.append(jt.as_text(t.label_id[k.rows]))  # type: ignore[attr-defined]
    lid = (
        pa.concat_arrays(label_ids).take(pa.array(order))
        if len(order)
        else pa.array([], pa.string())
    )
    raw = jt.concat(frame_keys.take(pa.array(cols.ann_pos)), "|", lid)
    keys = unique_texts(raw)
    # unchanged keys were found distinct; suffixed ones (k#2) may meet a key spelled so
    cols.ann_ids = ids.assign("annotations", keys, distinct=keys is raw)


def _categories(labels: LabelSet, cat_ids: Array, kp_count: dict[int, int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for code, (name, cid) in enumerate(zip(labels.categories, cat_ids.tolist(), strict=True)):
        cat: dict[str, Any] = {"id": cid, "name": name, "supercategory": ""}
        if kp_count.get(code):
            cat["keypoints"] = [f"p{j}" for j in range(kp_count[code])]
            cat["skeleton"] = []
        out.append(cat)
    return out


def _in_image_order(pos: Array) -> Array:
    """Permutation putting labels (rows ascending) in (image position, row) order."""
    return np.argsort(pos, kind="stable")


def _starts(counts: Array) -> Array:
    """Start of each run of a ragged column with these run lengths."""
    out = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out


# -- boxes -----------------------------------------------------------------------------------


def _boxes(
    labels: LabelSet, report: Report, frames: Array, pos_of_frame: Array, *, clip: bool
) -> Kind:
    boxes = prep.prepare_boxes(labels, report, frames, clip=clip)
    report_slivers(labels, report, "boxes", boxes.rows, boxes.xyxy)
    pos = pos_of_frame[labels.boxes.frame[boxes.rows]]
    o = _in_image_order(pos)
    xyxy = boxes.xyxy[o]
    bbox = xywh(xyxy)
    area = shortest(geo.box_area(xyxy), decimals=DIFFERENCE_DECIMALS)
    corners = box_polygons(xyxy)

    def members(idx: Array) -> tuple[list[Text | str], str]:
        seg = _box_segmentation(corners[idx])
        return _geometry_members(jt.numbers(area[idx]), bbox[idx], seg), ""

    return Kind("box", "boxes", boxes.rows[o], pos[o], members)


def _box_segmentation(rounded: Array) -> list[Text | str]:
    """``[[x0,y0,x1,y0,x1,y1,x0,y1]]`` of boxes rounded by :func:`box_polygons`."""
    corners = rounded[:, [0, 1, 2, 1, 2, 3, 0, 3]]
    return ["[[", jt.groups(corners, np.full(len(corners), 8)), "]]"]


def _geometry_members(area: Text, bbox: Array, segmentation: list[Text | str]) -> list[Text | str]:
    """Parts of ``,"area":..,"bbox":[..],"iscrowd":0,"segmentation":..`` (joined once, by the
    caller, with the rest of the annotation: every join copies the text)."""
    return [
        ',"area":',
        area,
        ',"bbox":[',
        jt.groups(bbox, np.full(len(bbox), 4)),
        '],"iscrowd":0,"segmentation":',
        *segmentation,
    ]


def report_slivers(labels: LabelSet, report: Report, kind: str, rows: Array, xyxy: Array) -> None:
    """Report labels thinner than 2 px whose rasterised mask holds no pixel (kept as they are).

    pycocotools rasterises such a sliver (a box clipped to 0.1 px at the image edge) to an empty
    mask, which ``COCOeval(iouType="segm")`` can never match, not even with itself. ``xyxy``
    are the bounds of the labels as written; only the thin ones are rasterised.
    """
    if not len(rows):
        return
    fr = labels.table(kind).frame[rows]  # type: ignore[attr-defined]
    w, h = labels.frames.width[fr], labels.frames.height[fr]
    b = xyxy
    thin = np.flatnonzero(((b[:, 2] - b[:, 0] < 2) | (b[:, 3] - b[:, 1] < 2)) & (w > 0) & (h > 0))
    if not len(thin):
        return
    rles = geo.polygons_to_rle(shapely.box(*b[thin].T), h[thin], w[thin])
    _report_empty(labels, report, kind, rows[thin], rles)


def _report_empty(
    labels: LabelSet, report: Report, kind: str, rows: Array, rles: list[Any]
) -> None:
    empty = np.array([r is None for r in rles], dtype=bool)
    some = [r for r in rles if r is not None]
    if some:
        empty[~empty] = geo.rle_area(some) == 0
    record(
        report,
        labels,
        kind,
        rows[empty],
        "kept",
        "covers no pixel when rasterised: COCOeval segm cannot match it",
    )


def xywh(xyxy: Array) -> Array:
    """``[x, y, w, h]`` to 1e-9 px in shortest form (:data:`DIFFERENCE_DECIMALS`)."""
    out = geo.xyxy_to_xywh(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
    return shortest(out, decimals=DIFFERENCE_DECIMALS)


def box_polygons(xyxy: Array) -> Array:
    """Each box as the flat 4-corner polygon ``x0,y0, x1,y0, x1,y1, x0,y1`` (shortest numbers).

    Rounding is value by value, so the corners are gathered from the rounded box (4 values
    rounded per box, not 8)."""
    return shortest(np.asarray(xyxy).reshape(-1, 4), decimals=DIFFERENCE_DECIMALS)


# -- polygons --------------------------------------------------------------------------------


def _as_written(geoms: Array) -> Array:
    # vertices as written (to 1e-9 px), so area and bbox are those of the written polygon
    if not len(geoms):
        return geoms
    return shapely.transform(geoms, lambda xy: shortest(xy, decimals=DIFFERENCE_DECIMALS))


def _has_holes(geoms: Array) -> Array:
    if not len(geoms):
        return np.zeros(0, dtype=bool)
    parts, idx = shapely.get_parts(geoms, return_index=True)
    holes = shapely.get_num_interior_rings(parts)
    return np.bincount(idx, weights=holes, minlength=len(geoms)) > 0


def _polygons(
    labels: LabelSet,
    report: Report,
    frames: Array,
    pos_of_frame: Array,
    *,
    clip: bool,
    pixel_area: bool,
) -> Kind:
    prepared = prep.prepare_polygons(labels, report, frames, clip=clip)
    rows, geoms = prepared.rows, prepared.geoms
    del prepared
    fr = labels.polygons.frame[rows]
    w, h = labels.frames.width[fr], labels.frames.height[fr]
    known = (w > 0) & (h > 0)
    # which polygons have holes is only needed now where the image size is unknown (those
    # cannot get an RLE); the others find out from their rings, batch by batch
    no_rle = np.zeros(len(rows), dtype=bool)
    no_rle[~known] = _has_holes(geoms[~known])
    record(
        report,
        labels,
        "polygons",
        rows[no_rle],
        "dropped",
        "polygon with holes needs an RLE, which needs the image size (unknown)",
    )
    area = rle_text = None
    if pixel_area:  # every polygon is rasterised, now
        geoms = _as_written(geoms)
        some = np.flatnonzero(known)
        rles = geo.polygons_to_rle(geoms[some], h[some], w[some])
        area = _pixel_areas(labels, report, rows, geoms, known, some, rles)
        rle_text = _rle_texts(len(rows), some, rles)
    else:  # only polygons with holes need an RLE (their segmentation): made batch by batch
        _polygon_slivers(labels, report, rows, geoms, known)
    keep = ~no_rle
    pos = pos_of_frame[fr]
    o = np.flatnonzero(keep)[_in_image_order(pos[keep])]
    kind = Kind("polygon", "polygons", rows[o], pos[o], lambda idx: ([], ""))
    kind.members = _polygon_members(
        geoms[o],
        np.stack([h[o], w[o]], axis=1),
        None if rle_text is None else rle_text.take(pa.array(o)),
        None if area is None else area.take(pa.array(o)),
    )
    return kind


def _pixel_areas(
    labels: LabelSet,
    report: Report,
    rows: Array,
    geoms: Array,
    known: Array,
    some: Array,
    rles: list[Any],
) -> Text:
    """``area`` text of each polygon: pycocotools' pixel count, the geometric area where the
    image size is unknown; polygons covering no pixel centre are reported."""
    # one pycocotools call for all RLEs, not one per polygon
    rle_area = np.full(len(rows), -1, dtype=np.int64)
    have = np.array([r is not None for r in rles], dtype=bool)
    rle_area[some[have]] = geo.rle_area([r for r in rles if r is not None])
    record(
        report,
        labels,
        "polygons",
        rows[known & (rle_area == 0)],
        "kept",
        "polygon covers no pixel centre when rasterised (COCO area 0)",
    )
    shoelace = shapely.area(geoms) if len(geoms) else np.zeros(0)
    return pc.if_else(pa.array(known), jt.numbers(rle_area), jt.numbers(shoelace))


def _polygon_slivers(
    labels: LabelSet, report: Report, rows: Array, geoms: Array, known: Array
) -> None:
    """:func:`report_slivers` of polygons, on their vertices as written."""
    if not len(rows):
        return
    b = shapely.bounds(geoms)
    # rounding to the written vertices moves a bound by far less than 1e-6 px: only
    # candidates this thin need their written geometry
    slack = 1e-6 + 1e-13 * np.abs(b).max(axis=1)
    near = np.flatnonzero(
        ((b[:, 2] - b[:, 0] < 2 + slack) | (b[:, 3] - b[:, 1] < 2 + slack)) & known
    )
    if not len(near):
        return
    g = _as_written(geoms[near])
    b = shapely.bounds(g)
    thin = (b[:, 2] - b[:, 0] < 2) | (b[:, 3] - b[:, 1] < 2)
    fr = labels.polygons.frame[rows[near[thin]]]
    rles = geo.polygons_to_rle(g[thin], labels.frames.height[fr], labels.frames.width[fr])
    _report_empty(labels, report, "polygons", rows[near[thin]], rles)


def _rle_texts(n: int, some: Array, rles: list[Any]) -> Text:
    """``{"size":[h,w],"counts":"..."}`` of each polygon in ``some`` with an RLE, else null."""
    have = [j for j, r in enumerate(rles) if r is not None]
    out = pa.nulls(n, pa.string())
    if not have:
        return out
    rs = [rles[j] for j in have]
    size = np.array([r["size"] for r in rs], dtype=np.int64).reshape(-1, 2)
    counts = jt.strings([r["counts"] for r in rs])
    text = jt.concat('{"size":[', jt.groups(size, np.full(len(rs), 2)), '],"counts":', counts, "}")
    mask = np.zeros(n, dtype=bool)
    mask[some[have]] = True
    return pc.replace_with_mask(out, pa.array(mask), text)


def _polygon_members(
    geoms: Array, size: Array, rle: Text | None, area: Text | None
) -> Callable[[Array], tuple[list[Text | str], Text]]:
    """Members of polygon annotations: exterior rings as the segmentation, or the RLE and
    every ring (``deepen_rings``) when the polygon has holes. ``rle`` and ``area`` are given
    when areas are pixel counts (the geometries are then already as written)."""

    def members(idx: Array) -> tuple[list[Text | str], Text]:
        g, ragged = _ragged_as_written(geoms[idx], rounded=rle is not None)
        ext, every = _ring_texts(*ragged)
        has = _holes_of(ragged[2], ragged[3])
        if rle is not None:
            rles = rle.take(pa.array(idx))
        else:
            some = np.flatnonzero(has)
            rasters = geo.polygons_to_rle(g[some], size[idx[some], 0], size[idx[some], 1])
            rles = _rle_texts(len(idx), some, rasters)
        seg = pc.if_else(pa.array(has), rles, ext)
        if area is not None:
            a = area.take(pa.array(idx))
        else:
            a = jt.numbers(shortest(shapely.area(g), decimals=DIFFERENCE_DECIMALS))
        b = xywh(shapely.bounds(g)) if len(g) else np.zeros((0, 4))
        tail = pc.if_else(pa.array(has), jt.concat(',"deepen_rings":', every), "")
        return _geometry_members(a, b, [seg]), tail

    return members


def _ragged_as_written(geoms: Array, *, rounded: bool) -> tuple[Array, tuple[Any, ...]]:
    """The geometries with their vertices as written (:func:`_as_written`; already so when
    ``rounded``) and their ragged form (coordinates and offsets), from one decomposition."""
    if len(geoms) == 0:
        return geoms, (
            np.zeros((0, 2)),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
        )
    kind, coords, offsets = shapely.to_ragged_array(geoms)
    if not rounded:
        coords = shortest(coords, decimals=DIFFERENCE_DECIMALS)
        geoms = np.asarray(shapely.from_ragged_array(kind, coords, offsets), dtype=object)
    return geoms, (coords, *offsets)


def _holes_of(poly_off: Array, multi_off: Array) -> Array:
    """Whether each ragged MultiPolygon has a hole (a part with more than one ring)."""
    n = len(multi_off) - 1
    if n <= 0:
        return np.zeros(0, dtype=bool)
    part_of = np.repeat(np.arange(n), np.diff(multi_off))
    return np.bincount(part_of, weights=np.diff(poly_off) > 1, minlength=n) > 0


def _ring_texts(
    coords: Array, ring_off: Array, poly_off: Array, multi_off: Array
) -> tuple[Text, Text]:
    """Per geometry (ragged MultiPolygons) its exterior rings ``[[x,y,...],...]`` (open rings)
    and all its rings (exterior then holes, part by part)."""
    if len(multi_off) <= 1:
        empty = pa.array([], pa.string())
        return empty, empty
    ring_off = np.asarray(ring_off, dtype=np.int64)
    poly_off = np.asarray(poly_off, dtype=np.int64)
    multi_off = np.asarray(multi_off, dtype=np.int64)
    keep = np.ones(len(coords), dtype=bool)
    keep[ring_off[1:] - 1] = False  # open rings: the closing vertex is left out
    xy = np.asarray(coords)[keep, :2]
    rings = jt.concat("[", jt.groups(xy, 2 * (np.diff(ring_off) - 1)), "]")
    rings_per = np.diff(poly_off[multi_off])
    every = jt.concat("[", jt.join_ragged(rings, rings_per), "]")
    ext = rings.take(pa.array(poly_off[:-1]))
    exteriors = jt.concat("[", jt.join_ragged(ext, np.diff(multi_off)), "]")
    return exteriors, every


# -- points ----------------------------------------------------------------------------------


def _points(
    labels: LabelSet, report: Report, frames: Array, pos_of_frame: Array
) -> tuple[dict[int, int], Kind]:
    pt = labels.points
    rows = _usable_points(labels, report, frames)
    counts = np.diff(pt.offsets)
    kp_count: dict[int, int] = {}
    for c, n in zip(pt.category[rows].tolist(), counts[rows].tolist(), strict=True):
        kp_count[c] = max(kp_count.get(c, 0), n)
    xyxy = _point_boxes(pt.offsets, pt.coords, rows)
    thin = ((xyxy[:, 2] - xyxy[:, 0]) < 1) | ((xyxy[:, 3] - xyxy[:, 1]) < 1)
    record(
        report,
        labels,
        "points",
        rows[thin],
        "changed",
        "box of the points widened to 1 pixel (a zero-area box never matches in COCOeval)",
    )
    xyxy = np.where(thin[:, None], _widen(xyxy), xyxy)
    pos = pos_of_frame[pt.frame[rows]]
    o = _in_image_order(pos)
    rows, pos, xyxy = rows[o], pos[o], xyxy[o]
    bbox, corners = xywh(xyxy), box_polygons(xyxy)
    area = shortest(geo.box_area(xyxy), decimals=DIFFERENCE_DECIMALS)
    slots = np.array([kp_count.get(int(c), 0) for c in pt.category[rows].tolist()], dtype=np.int64)

    def members(idx: Array) -> tuple[list[Text | str], str]:
        kp = _keypoints(pt.offsets, pt.coords, rows[idx], slots[idx])
        seg = _box_segmentation(corners[idx])
        geom = _geometry_members(jt.numbers(area[idx]), bbox[idx], seg)
        n = jt.numbers(counts[rows[idx]])
        return [*geom, ',"keypoints":[', kp, '],"num_keypoints":', n], ""

    return kp_count, Kind("points", "points", rows, pos, members)


def _usable_points(labels: LabelSet, report: Report, frames: Array) -> Array:
    """Rows of point labels on ``frames`` with points, all finite; outside ones reported."""
    pt = labels.points
    on = np.isin(pt.frame, frames)
    counts = np.diff(pt.offsets)
    owner = np.repeat(np.arange(len(pt)), counts)
    bad = np.zeros(len(pt), dtype=np.int64)
    if len(pt.coords):
        np.add.at(bad, owner, ~np.isfinite(pt.coords).all(axis=1))
    record(report, labels, "points", on & (bad > 0), "dropped", "point has non-finite coordinates")
    record(report, labels, "points", on & (counts == 0), "dropped", "point label has no points")
    keep = on & (bad == 0) & (counts > 0)
    w = labels.frames.width[pt.frame].astype(np.float64)
    h = labels.frames.height[pt.frame].astype(np.float64)
    outside = np.zeros(len(pt), dtype=np.int64)
    if len(pt.coords):
        x, y = pt.coords[:, 0], pt.coords[:, 1]
        ow, oh = w[owner], h[owner]
        out_pt = ((ow > 0) & ((x < 0) | (x > ow))) | ((oh > 0) & ((y < 0) | (y > oh)))
        np.add.at(outside, owner, out_pt)
    record(
        report,
        labels,
        "points",
        keep & (outside > 0),
        "kept",
        "point(s) outside the image kept as they are",
    )
    return np.flatnonzero(keep)


def _ragged_take(offsets: Array, rows: Array) -> tuple[Array, Array]:
    """Flat element indices of ``rows`` of a ragged column, and each row's count."""
    starts, counts = offsets[rows], offsets[rows + 1] - offsets[rows]
    return np.repeat(starts - _starts(counts), counts) + np.arange(int(counts.sum())), counts


def _point_boxes(offsets: Array, coords: Array, rows: Array) -> Array:
    """Tight ``xyxy`` box of the points of each label in ``rows`` (pixel-corner)."""
    if not len(rows):
        return np.zeros((0, 4))
    idx, counts = _ragged_take(offsets, rows)
    xy = coords[idx]
    lo = np.minimum.reduceat(xy, _starts(counts), axis=0)
    hi = np.maximum.reduceat(xy, _starts(counts), axis=0)
    return np.concatenate([lo, hi], axis=1).astype(np.float64)


def _widen(xyxy: Array) -> Array:
    """Boxes grown about their centre to at least 1 pixel wide and high."""
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1.0) / 2
    return np.concatenate([c - half, c + half], axis=1)


def _keypoints(offsets: Array, coords: Array, rows: Array, slots: Array) -> Text:
    """``x,y,v,...`` of each label: its points (COCO pixel index, v=2), padded with ``0,0,0``
    to its category's number of keypoints."""
    idx, counts = _ragged_take(offsets, rows)
    at = np.repeat(_starts(slots) - _starts(counts), counts) + np.arange(len(idx))
    xy = np.zeros((int(slots.sum()), 2))
    vis = np.zeros(len(xy), dtype=np.int64)
    xy[at] = shortest(coords[idx] - 0.5, decimals=DIFFERENCE_DECIMALS)
    vis[at] = 2
    triples = jt.concat(jt.groups(xy, np.full(len(xy), 2)), ",", jt.numbers(vis))
    return jt.join_ragged(triples, slots)


# -- text ------------------------------------------------------------------------------------


def _finish(labels: LabelSet, kind: Kind, idx: Array) -> list[Text | str]:
    """The Deepen members of annotations ``idx`` of ``kind``: label id, type, track, attributes
    and the ``deepen`` object (stage, label set, labeller, times, version, when set)."""
    t = labels.table(kind.table)
    rows = kind.rows[idx]
    track = np.asarray(t.track[rows])  # type: ignore[attr-defined]
    track_text = pc.if_else(pa.array(track >= 0), jt.concat(',"track_id":', jt.numbers(track)), "")
    attributes = t.attributes  # type: ignore[attr-defined]
    attrs = (
        jt.fields([(k, jt.values(v[rows])) for k, v in attributes.items()]) if attributes else ""
    )
    meta = jt.fields([(name, _meta_text(getattr(t, name)[rows])) for name in META])
    meta_text = pc.if_else(pc.equal(meta, ""), "", jt.concat(',"deepen":{', meta, "}"))
    return [
        ',"deepen_label_id":"',
        jt.inner(t.label_id[rows]),  # type: ignore[attr-defined]
        f'","deepen_label_type":"{kind.name}"',
        track_text,
        ',"attributes":{',
        attrs,
        "}",
        meta_text,
    ]


def _meta_text(col: Array) -> Text:
    """JSON of each value, null where it is unset (``""`` or ``-1``)."""
    if col.dtype != object:
        text = jt.numbers(col)
        return pc.if_else(pa.array(col == -1), pa.nulls(len(col), pa.string()), text)
    try:
        arr = pa.array(col, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        arr = None
    if arr is not None and not arr.null_count:  # text: unset is ""
        unset = np.asarray(pc.equal(arr, "").to_numpy(zero_copy_only=False))
        text = jt.strings(arr)
    else:
        unset = np.array([v in ("", -1) for v in col.tolist()], dtype=bool)
        text = jt.values(col)
    return pc.if_else(pa.array(unset), pa.nulls(len(col), pa.string()), text)


def annotation_texts(cols: Columns, sel: Array) -> Text:
    """JSON object text of the annotations at document positions ``sel`` (ascending)."""
    parts, slots = [], np.empty(len(sel), dtype=np.int64)
    base = 0
    seq = cols.seq[sel]
    for k, kind in enumerate(cols.kinds):
        at = np.flatnonzero(seq == k)
        if not len(at):
            continue
        idx = cols.local[sel[at]]
        t = cols.labels.table(kind.table)
        cat = cols.cat_ids[t.category[kind.rows[idx]]]  # type: ignore[attr-defined]
        middle, tail = kind.members(idx)
        text = jt.concat(
            '{"id":',
            jt.numbers(cols.ann_ids[sel[at]]),
            ',"image_id":',
            jt.numbers(cols.image_ids[kind.pos[idx]]),
            ',"category_id":',
            jt.numbers(cat),
            *middle,
            *_finish(cols.labels, kind, idx),
            tail,
            "}",
        )
        parts.append(text)
        slots[at] = base + np.arange(len(at))
        base += len(at)
    if not parts:
        return pa.array([], pa.string())
    return pa.concat_arrays(parts).take(pa.array(slots))


def image_texts(cols: Columns, sel: Array) -> Text:
    """JSON object text of the images at positions ``sel``."""
    f, fr = cols.labels.frames, cols.frames[sel]
    status = [prep.STATUS_NAMES.get(s, "unknown") for s in f.status[fr].tolist()]
    return jt.concat(
        '{"id":',
        jt.numbers(cols.image_ids[sel]),
        ',"file_name":"',
        jt.inner([cols.names[i] for i in sel.tolist()]),
        '","width":',
        jt.numbers(cols.width[sel]),
        ',"height":',
        jt.numbers(cols.height[sel]),
        ',"deepen_file_id":"',
        jt.inner(f.file_id[fr]),
        '","deepen_sensor_id":"',
        jt.inner(f.sensor_id[fr]),
        '","deepen_dataset_id":"',
        jt.inner(f.dataset_id[fr]),
        '","deepen_frame_index":',
        jt.numbers(f.index[fr].astype(np.int64)),
        ',"deepen_status":"',
        jt.inner(status),
        '"}',
    )


def document_chunks(
    cols: Columns,
    images: Array,
    annotations: Array,
    *,
    indent: bool = False,
    categories_first: bool = False,
) -> Iterator[bytes]:
    """The COCO document (images at positions ``images``, annotations at document positions
    ``annotations``) as UTF-8 pieces: ``orjson.dumps`` of the document, or its
    ``OPT_INDENT_2`` form. The documents of a split have their categories before the images."""
    doc: dict[str, Any] = {"info": INFO, "licenses": []}
    if categories_first:
        doc["categories"] = cols.categories
    doc.update({"images": [], "annotations": [], "categories": cols.categories})
    skeleton = _dumps(doc, indent=indent)
    sep = b": [" if indent else b":["
    rest = skeleton
    for name, sel, texts in (
        ("images", images, image_texts),
        ("annotations", annotations, annotation_texts),
    ):
        at = rest.index(b'"' + name.encode() + b'"' + sep) + len(name) + 2 + len(sep)
        yield rest[:at]
        rest = rest[at:]
        yield from _array_body(cols, sel, texts, indent)
    yield rest


def _array_body(
    cols: Columns, sel: Array, texts: Callable[[Columns, Array], Text], indent: bool
) -> Iterator[bytes]:
    def batch(i: int) -> bytes:
        body = jt.blob(texts(cols, sel[i : i + BATCH]))
        if indent:
            return (b"\n" if i == 0 else b",\n") + jt.indented(body, 2)
        return (b"," if i else b"") + body

    # batches are formatted on every core (Arrow, numpy and shapely release the GIL) while
    # the caller writes the finished ones in order
    yield from ordered_map(batch, range(0, len(sel), BATCH))
    if indent and len(sel):
        yield b"\n  "
