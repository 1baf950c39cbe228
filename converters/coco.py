"""COCO instances JSON: boxes, polygons (RLE when they have holes) and 2D points as keypoints.

Output folder (the layout datumaro's ``coco_instances`` and most training code read)::

    annotations/instances_default.json   the COCO document (one per subset with split=...:
                                         instances_train.json, instances_val.json)
    images/                              the images with copy_images=True (images/<subset>/
                                         with a split), as each image's file_name
    id_map.json        ids pinned by this export (pass it back with id_map=... to keep them)
    report.json        every label dropped, clipped or repaired

``layout="flat"`` writes the earlier layout instead: one ``annotations.json`` at the top (no
split there). :func:`read` reads both.

Conventions
-----------
- Coordinates are pixel-corner (COCO's own: ``bbox=[0, 0, 1, 1]`` encloses the first pixel),
  ``bbox = [x, y, width, height]``.
- Ids: category ids start at 1 in ``LabelSet.categories`` order (every category is written,
  used or not); image ids follow the frames, annotation ids follow the images (boxes, then
  polygons, then points of each image). With ``id_map=PATH`` ids already in that file are kept
  and new items get ids after the largest; the file is updated after a successful write.
- Every image frame is written, labelled or not, with ``deepen_status`` = ``"labelled"``,
  ``"empty"`` (reviewed, no labels), ``"unlabelled"`` or ``"unknown"``.
- Boxes: clipped to the image; ``area = width * height``; ``segmentation`` is the box as a
  4-corner polygon (what ``COCO.loadRes`` gives box results; ``COCOeval(iouType="segm")``
  needs a segmentation on every ground-truth annotation).
- Numbers are written shortest-exact (:mod:`converters._numbers`): ``26.06``, never
  ``26.060000000000002``.
- Polygons: repaired (``make_valid``), clipped to the image by intersection; ``bbox`` from the
  final geometry. Without holes ``segmentation`` is a list of polygons (one per part); with holes
  it is a compressed RLE (``counts`` as a string) with ``iscrowd: 0`` and the exact rings kept in
  ``deepen_rings``. ``area`` is the geometric area of the written polygon (holes subtracted),
  which differs from ``annToMask(ann).sum()`` by at most the polygon's perimeter plus one pixel
  (the boundary pixels; a polygon smaller than a pixel can still cover a pixel centre);
  ``area="pixels"`` writes the pixel count of pycocotools' rasterisation instead, equal to
  ``annToMask(ann).sum()``. Polygons with holes on images of unknown size are dropped (no RLE
  without a size).
- Points: one annotation per point label with ``keypoints = [x, y, 2, ...]`` and the category's
  ``keypoints`` names ``p0 .. p{k-1}`` (k = most points of a label of that category; shorter
  labels are padded with ``0, 0, 0``). Keypoint coordinates follow COCO's pixel-index
  convention: ``x_coco = x - 0.5`` (detectron2's conversion), so a point at the centre of pixel
  (3, 4), (3.5, 4.5) in the model, is written as (3, 4). ``bbox`` is the tight box of the
  points (pixel-corner), widened to at least 1 pixel in each direction about its centre: a
  one-point label's zero-area box would never match itself in ``COCOeval`` (IoU 0), and mmdet
  and detectron2 drop such boxes. Widened boxes are reported as ``changed``. ``area`` is the
  box's area and ``segmentation`` the box as a polygon.
- Every annotation keeps ``deepen_label_id``, ``deepen_label_type`` (``box``, ``polygon``,
  ``points``), ``track_id`` (when the label id has one), ``attributes`` and, when set, a
  ``deepen`` object (stage, label set, labeller, times, version), so :func:`read` restores them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from converters import _prepare2d as prep
from converters._base import (
    OnUnsupported,
    apply_policy,
    atomic_dir,
    dump_json,
    finish,
    paused_gc,
    pylist,
    record,
)
from converters._dataset import (
    ImageSource,
    assign_splits,
    parse_split,
    place_images,
    source_names,
)
from converters._idmap import IdMap
from converters._numbers import DIFFERENCE_DECIMALS, shortest
from deepen_export import geometry as geo
from deepen_export._progress import status
from deepen_export.errors import ConversionError
from deepen_export.model import (
    Boxes,
    Frames,
    FrameStatus,
    LabelSet,
    LabelTable,
    Points,
    Polygons,
)
from deepen_export.report import Report

__all__ = ["ANNOTATIONS", "documents", "from_dict", "read", "to_dict", "write"]

FORMAT = "coco"
ANNOTATIONS = "annotations.json"
"""Name of the COCO document inside the output folder."""

Array = npt.NDArray[Any]

_META = ("stage", "label_set", "labeller", "create_time", "update_time", "version")
_STATUS = {v: k for k, v in prep.STATUS_NAMES.items()}


@paused_gc()
def write(
    labels: LabelSet,
    dest: str | os.PathLike[str],
    /,
    *,
    on_unsupported: OnUnsupported = "raise",
    id_map: str | os.PathLike[str] | None = None,
    clip: bool | str = True,
    indent: int | str | None = None,
    area: str = "polygon",
    layout: str = "datumaro",
    split: str | dict[str, float] | None = None,
    seed: int | str = 0,
    copy_images: bool | str = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> Report:
    """Write ``labels`` as a COCO instances folder at ``dest``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds COCO cannot hold (cuboids, polylines, scenes, ...).
    id_map : path, optional
        Id map file pinning ids across exports (see :mod:`converters._idmap`); read when it
        exists, updated after the write.
    clip : bool
        Clip boxes and polygons to the image.
    area : {"polygon", "pixels"}
        ``area`` of polygon annotations: the geometric area of the final (repaired, clipped)
        polygon, holes subtracted; or the pixel count of pycocotools' rasterisation, equal to
        ``annToMask(ann).sum()`` but one rasterisation per polygon (about 20 µs each).
    indent : int, optional
        Pretty-print the JSON (any value: two-space indentation).
    layout : {"datumaro", "flat"}
        ``annotations/instances_<subset>.json`` beside ``images/`` (default), or the earlier
        single ``annotations.json``.
    split : str or dict, optional
        ``"train:0.8,val:0.2"``: one ``instances_<subset>.json`` per subset, deterministic by
        ``seed`` and file id, sequences kept whole (see :mod:`converters._dataset`).
    seed : int
        Seed of the split.
    copy_images : bool
        Put the images into ``images/`` (hard links where possible), from ``images``.
    images : path, optional
        Folder or zip holding the images (the CLI passes ``--images`` or the snapshot's media).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[10], height=[10]),
    ...     categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[1, 2, 5, 6]]),
    ... )
    >>> out = tempfile.mkdtemp() + "/coco"
    >>> write(labels, out).written
    {'images': 1, 'annotations': 1, 'categories': 1}
    >>> sorted(p.name for p in Path(out, "annotations").iterdir())
    ['instances_default.json']
    >>> read(out).boxes.xyxy.tolist()
    [[1.0, 2.0, 5.0, 6.0]]
    """
    if layout not in ("datumaro", "flat"):
        raise ValueError(f"layout must be 'datumaro' or 'flat', got {layout!r}")
    subsets = parse_split(split)
    if subsets and layout == "flat":
        raise ConversionError("coco: split needs layout='datumaro' (one file per subset)")
    report = Report(FORMAT)
    from converters import get_format

    labels = apply_policy(labels, FORMAT, get_format(FORMAT).kinds, on_unsupported, report)
    ids = IdMap.load(id_map)
    with status("building COCO annotations"):
        doc = to_dict(labels, report, ids=ids, clip=prep.flag(clip), area=area)
    ind = None if indent is None else int(indent)
    with atomic_dir(dest) as tmp:
        files = []
        if layout == "flat":
            dump_json(doc, tmp / ANNOTATIONS, indent=ind)
            files.append(ANNOTATIONS)
            if prep.flag(copy_images):
                srcs = source_names(labels, prep.written_images(labels))
                pairs = [
                    (src, "images/" + im["file_name"], im["deepen_file_id"])
                    for src, im in zip(srcs, doc["images"], strict=True)
                ]
                report.written["image_files"] = place_images(images, pairs, tmp, report)
        else:
            (tmp / "images").mkdir()
            # images are written in frame order: the i-th image is the i-th image frame
            src_of = dict(
                zip(
                    [im["id"] for im in doc["images"]],
                    source_names(labels, prep.written_images(labels)),
                    strict=True,
                )
            )
            for name, part in _subset_docs(labels, doc, subsets, int(seed)):
                rel = f"annotations/instances_{name}.json"
                (tmp / "annotations").mkdir(exist_ok=True)
                dump_json(part, tmp / rel, indent=ind)
                files.append(rel)
                report.written[f"images_{name}"] = len(part["images"])
                if prep.flag(copy_images):
                    sub = f"images/{name}/" if subsets else "images/"
                    pairs = [
                        (src_of[im["id"]], sub + im["file_name"], im["deepen_file_id"])
                        for im in part["images"]
                    ]
                    report.written["image_files"] = report.written.get(
                        "image_files", 0
                    ) + place_images(images, pairs, tmp, report)
            if not subsets:
                report.written.pop("images_default", None)
        ids.dump(tmp / "id_map.json")
        report.files = [*files, "id_map.json", "report.json"]
        finish(report, tmp)
    if id_map is not None:
        ids.dump(id_map)
    return report


def _subset_docs(
    labels: LabelSet, doc: dict[str, Any], subsets: list[tuple[str, float]], seed: int
) -> list[tuple[str, dict[str, Any]]]:
    """``(subset name, document)`` of each subset (``default`` without a split)."""
    if not subsets:
        return [("default", doc)]
    frames = prep.written_images(labels)
    of_frame = dict(zip(frames.tolist(), assign_splits(labels, frames, subsets, seed), strict=True))
    # images are written in frame order: the i-th image is the i-th image frame
    subset_of_image = {
        im["id"]: of_frame[int(fr)] for im, fr in zip(doc["images"], frames.tolist(), strict=True)
    }
    out = []
    for name, _ in subsets:
        part = {k: v for k, v in doc.items() if k not in ("images", "annotations")}
        part["images"] = [im for im in doc["images"] if subset_of_image[im["id"]] == name]
        part["annotations"] = [
            a for a in doc["annotations"] if subset_of_image[a["image_id"]] == name
        ]
        part["categories"] = doc["categories"]
        out.append((name, part))
    return out


def to_dict(
    labels: LabelSet,
    report: Report | None = None,
    *,
    ids: IdMap | None = None,
    clip: bool = True,
    area: str = "polygon",
) -> dict[str, Any]:
    """The COCO document of ``labels`` (kinds COCO cannot hold are ignored; see :func:`write`).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> doc = to_dict(LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("car",)))
    >>> doc["categories"], doc["images"][0]["deepen_status"]
    ([{'id': 1, 'name': 'car', 'supercategory': ''}], 'unknown')
    """
    if area not in ("polygon", "pixels"):
        raise ValueError(f"area must be 'polygon' or 'pixels', got {area!r}")
    report = report if report is not None else Report(FORMAT)
    ids = ids if ids is not None else IdMap()
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
    image_ids = ids.assign("images", keys)
    cat_ids = ids.assign("categories", list(labels.categories))
    width = np.where(unknown, 0, f.width[frames]).astype(np.int64)
    height = np.where(unknown, 0, f.height[frames]).astype(np.int64)
    images = [
        {
            "id": i,
            "file_name": name,
            "width": w,
            "height": h,
            "deepen_file_id": str(fid),
            "deepen_sensor_id": str(s),
            "deepen_dataset_id": str(d),
            "deepen_frame_index": x,
            "deepen_status": prep.STATUS_NAMES.get(st, "unknown"),
        }
        for i, name, fid, w, h, s, d, x, st in zip(
            image_ids.tolist(),
            names,
            f.file_id[frames],
            width.tolist(),
            height.tolist(),
            f.sensor_id[frames],
            f.dataset_id[frames],
            f.index[frames].tolist(),
            f.status[frames].tolist(),
            strict=True,
        )
    ]
    image_of_frame = np.full(len(f), -1, dtype=np.int64)
    image_of_frame[frames] = image_ids
    key_of_frame = np.empty(len(f), dtype=object)
    key_of_frame[frames] = keys

    anns: list[tuple[int, int, int, dict[str, Any]]] = []  # (image position, kind, row, ann)
    pos_of_frame = np.full(len(f), -1, dtype=np.int64)
    pos_of_frame[frames] = np.arange(len(frames))

    boxes = prep.prepare_boxes(labels, report, frames, clip=clip)
    b = labels.boxes
    _report_slivers(labels, report, "boxes", boxes.rows, shapely.box(*boxes.xyxy.T))
    xywh = _xywh(boxes.xyxy)
    box_area = shortest(geo.box_area(boxes.xyxy), decimals=DIFFERENCE_DECIMALS)
    fin = _Finisher(b, "box")
    for pos, r, bb, a, seg in zip(
        pos_of_frame[b.frame[boxes.rows]].tolist(),
        boxes.rows.tolist(),
        xywh.tolist(),
        box_area.tolist(),
        _box_polygons(boxes.xyxy),
        strict=True,
    ):
        # id, image_id and category_id first (filled in below, once ids are known)
        ann = {
            "id": 0,
            "image_id": 0,
            "category_id": 0,
            "area": a,
            "bbox": bb,
            "iscrowd": 0,
            "segmentation": [seg],
        }
        anns.append((pos, 0, r, fin(ann, r)))

    anns.extend(
        _polygon_annotations(
            labels, report, frames, pos_of_frame, clip=clip, pixel_area=area == "pixels"
        )
    )
    kp_count, point_anns = _point_annotations(labels, report, frames, pos_of_frame)
    anns.extend(point_anns)

    anns.sort(key=lambda t: t[:3])
    tables: list[LabelTable] = [labels.boxes, labels.polygons, labels.points]
    # frame, category and label id of every annotation gathered per table, not per label
    kind = np.array([a[1] for a in anns], dtype=np.int64)
    row = np.array([a[2] for a in anns], dtype=np.int64)
    frame = np.zeros(len(anns), dtype=np.int64)
    category = np.zeros(len(anns), dtype=np.int64)
    label_id = np.empty(len(anns), dtype=object)
    for k, t in enumerate(tables):
        m = kind == k
        frame[m] = t.frame[row[m]]
        category[m] = t.category[row[m]]
        label_id[m] = t.label_id[row[m]]
    ann_keys = prep.unique_keys(
        [
            f"{fk}|{lid}"
            for fk, lid in zip(key_of_frame[frame].tolist(), label_id.tolist(), strict=True)
        ]
    )
    ann_ids = ids.assign("annotations", ann_keys).tolist()
    annotations = []
    for a, aid, im, cid in zip(
        anns, ann_ids, image_of_frame[frame].tolist(), cat_ids[category].tolist(), strict=True
    ):
        d = a[3]
        d["id"], d["image_id"], d["category_id"] = aid, im, cid
        annotations.append(d)

    categories: list[dict[str, Any]] = []
    for code, (name, cid) in enumerate(zip(labels.categories, cat_ids.tolist(), strict=True)):
        cat: dict[str, Any] = {"id": cid, "name": name, "supercategory": ""}
        if kp_count.get(code):
            cat["keypoints"] = [f"p{j}" for j in range(kp_count[code])]
            cat["skeleton"] = []
        categories.append(cat)
    report.written.update(
        {"images": len(images), "annotations": len(annotations), "categories": len(categories)}
    )
    return {
        "info": {"description": "Exported from Deepen AI by deepen-export", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


class _Finisher:
    """Adds the Deepen fields (label id, type, track, attributes, meta) to annotations of ``t``.

    The table's columns are turned into Python lists once: indexing numpy arrays label by
    label is what made this step slow.
    """

    def __init__(self, t: LabelTable, kind: str) -> None:
        self.kind = kind
        self.label_id = t.label_id.tolist()
        self.track = t.track.tolist()
        self.attributes = [(k, pylist(v)) for k, v in t.attributes.items()]  # type: ignore[attr-defined]
        self.meta = [(name, pylist(getattr(t, name))) for name in _META]

    def __call__(self, ann: dict[str, Any], r: int) -> dict[str, Any]:
        ann["deepen_label_id"] = str(self.label_id[r])
        ann["deepen_label_type"] = self.kind
        if self.track[r] >= 0:
            ann["track_id"] = self.track[r]
        ann["attributes"] = {k: v[r] for k, v in self.attributes if v[r] is not None}
        meta = {name: col[r] for name, col in self.meta if col[r] not in ("", -1)}
        if meta:
            ann["deepen"] = meta
        return ann


def _report_slivers(labels: LabelSet, report: Report, kind: str, rows: Array, geoms: Array) -> None:
    """Report labels thinner than 2 px whose rasterised mask holds no pixel (kept as they are).

    pycocotools rasterises such a sliver (a box clipped to 0.1 px at the image edge) to an empty
    mask, which ``COCOeval(iouType="segm")`` can never match, not even with itself.
    """
    if not len(rows):
        return
    fr = labels.table(kind).frame[rows]  # type: ignore[attr-defined]
    w, h = labels.frames.width[fr], labels.frames.height[fr]
    b = shapely.bounds(geoms)
    thin = np.flatnonzero(((b[:, 2] - b[:, 0] < 2) | (b[:, 3] - b[:, 1] < 2)) & (w > 0) & (h > 0))
    if not len(thin):
        return
    rles = geo.polygons_to_rle(geoms[thin], h[thin], w[thin])
    empty = np.array([r is None for r in rles], dtype=bool)
    some = [r for r in rles if r is not None]
    if some:
        empty[~empty] = geo.rle_area(some) == 0
    record(
        report,
        labels,
        kind,
        rows[thin[empty]],
        "kept",
        "covers no pixel when rasterised: COCOeval segm cannot match it",
    )


def _xywh(xyxy: Array) -> Array:
    """``[x, y, w, h]`` to 1e-9 px in shortest form (:data:`DIFFERENCE_DECIMALS`)."""
    out = geo.xyxy_to_xywh(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
    return shortest(out, decimals=DIFFERENCE_DECIMALS)


def _box_polygons(xyxy: Array) -> list[list[float]]:
    """Each box as the flat 4-corner polygon ``x0,y0, x1,y0, x1,y1, x0,y1`` (shortest numbers)."""
    corners = np.asarray(xyxy).reshape(-1, 4)[:, [0, 1, 2, 1, 2, 3, 0, 3]]
    return shortest(corners, decimals=DIFFERENCE_DECIMALS).tolist()


def _ring_lists(geoms: Array) -> tuple[list[list[list[float]]], list[list[list[float]]], Array]:
    """Per geometry: exterior rings (flat, open), all rings (exterior then holes), has-holes."""
    n = len(geoms)
    if n == 0:
        return [], [], np.zeros(0, dtype=bool)
    _, coords, (ring_off, poly_off, multi_off) = shapely.to_ragged_array(geoms)
    ring_off = np.asarray(ring_off, dtype=np.int64)
    poly_off = np.asarray(poly_off, dtype=np.int64)
    multi_off = np.asarray(multi_off, dtype=np.int64)
    xy = shortest(np.asarray(coords)[:, :2].ravel(), decimals=DIFFERENCE_DECIMALS).tolist()
    # open rings: the closing vertex is left out
    flat = [
        xy[2 * a : 2 * z - 2]
        for a, z in zip(ring_off[:-1].tolist(), ring_off[1:].tolist(), strict=True)
    ]
    is_ext = np.zeros(len(flat), dtype=bool)
    is_ext[poly_off[:-1]] = True
    ring_label = np.repeat(np.arange(n), np.diff(poly_off[multi_off]))
    exteriors: list[list[list[float]]] = [[] for _ in range(n)]
    every: list[list[list[float]]] = [[] for _ in range(n)]
    for ring, lab, ext in zip(flat, ring_label.tolist(), is_ext.tolist(), strict=True):
        every[lab].append(ring)
        if ext:
            exteriors[lab].append(ring)
    has_holes = np.bincount(ring_label, weights=~is_ext, minlength=n) > 0
    return exteriors, every, has_holes


def _polygon_annotations(
    labels: LabelSet,
    report: Report,
    frames: Array,
    pos_of_frame: Array,
    *,
    clip: bool,
    pixel_area: bool,
) -> list[tuple[int, int, int, dict[str, Any]]]:
    p = labels.polygons
    prepared = prep.prepare_polygons(labels, report, frames, clip=clip)
    rows, geoms = prepared.rows, prepared.geoms
    if len(geoms):
        # vertices as written (to 1e-9 px), so area and bbox are those of the written polygon
        geoms = shapely.transform(geoms, lambda xy: shortest(xy, decimals=DIFFERENCE_DECIMALS))
    fr = p.frame[rows]
    w = labels.frames.width[fr]
    h = labels.frames.height[fr]
    exteriors, every, has_holes = _ring_lists(geoms)
    known = (w > 0) & (h > 0)
    no_rle = has_holes & ~known
    record(
        report,
        labels,
        "polygons",
        rows[no_rle],
        "dropped",
        "polygon with holes needs an RLE, which needs the image size (unknown)",
    )
    shoelace = shapely.area(geoms) if len(geoms) else np.zeros(0)
    # only polygons with holes need an RLE (their segmentation), unless areas are pixel counts
    rasterise = known if pixel_area else has_holes & known
    rles: list[Any] = [None] * len(geoms)
    some = np.flatnonzero(rasterise)
    for j, r in zip(some.tolist(), geo.polygons_to_rle(geoms[some], h[some], w[some]), strict=True):
        rles[j] = r
    if pixel_area:
        # one pycocotools call for all RLEs, not one per polygon
        rle_area = np.full(len(rles), -1, dtype=np.int64)
        rle_area[[r is not None for r in rles]] = geo.rle_area([r for r in rles if r is not None])
        area = [
            int(a) if k else float(g) for a, k, g in zip(rle_area, known, shoelace, strict=True)
        ]
        record(
            report,
            labels,
            "polygons",
            rows[known & (rle_area == 0)],
            "kept",
            "polygon covers no pixel centre when rasterised (COCO area 0)",
        )
    else:
        area = shortest(shoelace, decimals=DIFFERENCE_DECIMALS).tolist()
    if not pixel_area:  # (pixel areas report these themselves)
        _report_slivers(labels, report, "polygons", rows, geoms)
    bounds = shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4))
    bbox = _xywh(bounds).tolist()
    out = []
    fin = _Finisher(p, "polygon")
    pos = pos_of_frame[fr].tolist()
    skip, holes = no_rle.tolist(), has_holes.tolist()
    for j, r in enumerate(rows.tolist()):
        if skip[j]:
            continue
        ann: dict[str, Any] = {
            "id": 0,
            "image_id": 0,
            "category_id": 0,
            "area": area[j],
            "bbox": bbox[j],
            "iscrowd": 0,
        }
        if holes[j]:
            ann["segmentation"] = rles[j]
            ann = fin(ann, r)
            ann["deepen_rings"] = every[j]
        else:
            ann["segmentation"] = exteriors[j]
            ann = fin(ann, r)
        out.append((pos[j], 1, r, ann))
    return out


def _point_annotations(
    labels: LabelSet, report: Report, frames: Array, pos_of_frame: Array
) -> tuple[dict[int, int], list[tuple[int, int, int, dict[str, Any]]]]:
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
    kp_count: dict[int, int] = {}
    for c, n in zip(pt.category[keep].tolist(), counts[keep].tolist(), strict=True):
        kp_count[c] = max(kp_count.get(c, 0), n)
    rows = np.flatnonzero(keep)
    xyxy = _point_boxes(pt, rows)
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
    bbox = _xywh(xyxy).tolist()
    box_area = shortest(geo.box_area(xyxy), decimals=DIFFERENCE_DECIMALS).tolist()
    segs = _box_polygons(xyxy)
    out = []
    fin = _Finisher(pt, "points")
    for j, r in enumerate(rows.tolist()):
        xy = pt.coords[pt.offsets[r] : pt.offsets[r + 1]]
        k = kp_count[int(pt.category[r])]
        kp = np.zeros((k, 3))
        kp[: len(xy), :2] = shortest(xy - 0.5, decimals=DIFFERENCE_DECIMALS)
        kp[: len(xy), 2] = 2
        ann: dict[str, Any] = {
            "id": 0,
            "image_id": 0,
            "category_id": 0,
            "area": box_area[j],
            "bbox": bbox[j],
            "iscrowd": 0,
            "segmentation": [segs[j]],
            "keypoints": _kp_values(kp),
            "num_keypoints": len(xy),
        }
        out.append((int(pos_of_frame[pt.frame[r]]), 2, r, fin(ann, r)))
    return kp_count, out


def _point_boxes(pt: Points, rows: Array) -> Array:
    """Tight ``xyxy`` box of the points of each label in ``rows`` (pixel-corner)."""
    out = np.zeros((len(rows), 4))
    for j, r in enumerate(rows.tolist()):
        xy = pt.coords[pt.offsets[r] : pt.offsets[r + 1]]
        out[j, :2], out[j, 2:] = xy.min(axis=0), xy.max(axis=0)
    return out


def _widen(xyxy: Array) -> Array:
    """Boxes grown about their centre to at least 1 pixel wide and high."""
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1.0) / 2
    return np.concatenate([c - half, c + half], axis=1)


def _kp_values(kp: Array) -> list[float | int]:
    vals: list[float | int] = []
    for x, y, v in kp.tolist():
        vals.extend([x, y, int(v)])
    return vals


# -- reading -------------------------------------------------------------------------------


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read a COCO instances file, or a folder written by :func:`write` (either layout; every
    ``annotations/instances_<subset>.json`` of a split), into a LabelSet.

    Annotations carrying ``deepen_label_type`` come back as the kind they were written from;
    others are boxes when they have no segmentation, points when they have keypoints, and
    polygons otherwise (an RLE without ``deepen_rings`` becomes the exact outline of its pixels).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp(), "a.json")
    >>> _ = p.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png", "width": 4, "height": 4}],
    ...     "categories": [{"id": 7, "name": "car"}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2]}]}))
    >>> read(p).boxes.xyxy.tolist()
    [[0.0, 0.0, 2.0, 2.0]]
    """
    labels = [from_dict(_load(p)) for p in documents(source)]
    return labels[0] if len(labels) == 1 else LabelSet.concat(labels)


def documents(source: str | os.PathLike[str]) -> list[Path]:
    """The COCO instances files of ``source``: itself (a file), or those of a folder :func:`write`
    wrote (``annotations/instances_<subset>.json``, or the flat layout's ``annotations.json``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "annotations").mkdir(); _ = (d / "annotations" / "instances_val.json").write_text("{}")
    >>> [p.relative_to(d).as_posix() for p in documents(d)]
    ['annotations/instances_val.json']
    """
    path = Path(source)
    if not path.is_dir():
        return [path]
    found = sorted((path / "annotations").glob("instances_*.json"))
    return found if found and not (path / ANNOTATIONS).exists() else [path / ANNOTATIONS]


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read COCO file {path}: {exc}", format=FORMAT) from exc
    if not isinstance(doc, dict):
        raise ConversionError(f"{path} is not a COCO document (not a JSON object)", format=FORMAT)
    return doc


def from_dict(doc: dict[str, Any]) -> LabelSet:
    """A LabelSet from a COCO document (see :func:`read`).

    Examples
    --------
    >>> from_dict({"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}]}).categories
    ('car',)
    """
    cats = sorted(doc.get("categories", []), key=lambda c: c["id"])
    code_of = {c["id"]: i for i, c in enumerate(cats)}
    images = doc.get("images", [])
    frame_of = {im["id"]: i for i, im in enumerate(images)}
    frames = Frames.from_columns(
        file_id=[im.get("deepen_file_id", im["file_name"]) for im in images],
        sensor_id=[im.get("deepen_sensor_id", "") for im in images],
        dataset_id=[im.get("deepen_dataset_id", "") for im in images],
        index=[im.get("deepen_frame_index", -1) for im in images],
        width=[im.get("width") or -1 for im in images],
        height=[im.get("height") or -1 for im in images],
        status=[
            _STATUS.get(im.get("deepen_status", ""), int(FrameStatus.UNKNOWN)) for im in images
        ],
    )
    groups: dict[str, list[dict[str, Any]]] = {"box": [], "polygon": [], "points": []}
    for a in doc.get("annotations", []):
        kind = a.get("deepen_label_type")
        if kind not in groups:
            seg = a.get("segmentation")
            kind = "points" if a.get("keypoints") else ("polygon" if seg else "box")
        groups[kind].append(a)

    def common(anns: list[dict[str, Any]]) -> dict[str, Any]:
        cols: dict[str, Any] = {
            "frame": [frame_of[a["image_id"]] for a in anns],
            "category": [code_of[a["category_id"]] for a in anns],
            "label_id": [str(a.get("deepen_label_id", a["id"])) for a in anns],
            "track": [a.get("track_id", -1) for a in anns],
        }
        for name in _META:
            default = "" if name in ("stage", "label_set", "labeller") else -1
            cols[name] = [a.get("deepen", {}).get(name, default) for a in anns]
        keys = list(dict.fromkeys(k for a in anns for k in a.get("attributes", {})))
        cols["attributes"] = {k: [a.get("attributes", {}).get(k) for a in anns] for k in keys}
        return cols

    boxes = Boxes.from_columns(
        **common(groups["box"]),
        xyxy=geo.xywh_to_xyxy([a["bbox"] for a in groups["box"]]).reshape(-1, 4),
    )
    rings_per = [_rings_of(a, images[frame_of[a["image_id"]]]) for a in groups["polygon"]]
    ring_lens = [len(r) // 2 for rs in rings_per for r in rs]
    flat = [v for rs in rings_per for r in rs for v in r]
    polygons = Polygons.from_columns(
        **common(groups["polygon"]),
        offsets=np.concatenate([[0], np.cumsum([len(rs) for rs in rings_per])]).astype(np.int64),
        ring_offsets=np.concatenate([[0], np.cumsum(ring_lens)]).astype(np.int64),
        coords=np.asarray(flat, dtype=np.float64).reshape(-1, 2),
    )
    pts = []
    for a in groups["points"]:
        kp = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        pts.append(kp[kp[:, 2] > 0, :2] + 0.5)
    points = Points.from_columns(
        **common(groups["points"]),
        offsets=np.concatenate([[0], np.cumsum([len(p) for p in pts])]).astype(np.int64),
        coords=np.concatenate(pts) if pts else np.zeros((0, 2)),
    )
    return LabelSet(
        frames=frames,
        categories=tuple(c["name"] for c in cats),
        boxes=boxes,
        polygons=polygons,
        points=points,
        meta={"source_format": FORMAT},
    )


def _rings_of(ann: dict[str, Any], image: dict[str, Any]) -> list[list[float]]:
    if "deepen_rings" in ann:
        return [list(r) for r in ann["deepen_rings"]]
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        return [list(r) for r in seg]
    if isinstance(seg, dict):
        rle = seg
        if isinstance(seg.get("counts"), list):
            rle = geo.rle_encode(geo.rle_decode([seg]))[0]
        return _mask_outline(geo.rle_decode([rle])[0])
    return []


def _mask_outline(mask: Array) -> list[list[float]]:
    """Exact outline (with holes) of a mask's pixels: the union of its vertical runs."""
    d = np.diff(np.pad(mask.T.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    x, y0 = np.nonzero(d == 1)
    _, y1 = np.nonzero(d == -1)
    if len(x) == 0:
        return []
    union = shapely.union_all(shapely.box(x, y0, x + 1, y1))
    _, roff, xy = geo.shapely_to_polygons([union])
    return [r.ravel().tolist() for r in np.split(xy, roff[1:-1])]
