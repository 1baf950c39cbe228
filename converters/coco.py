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
  and new items get ids after the largest; the file is updated once every file of the output
  is written (the last step before the output is put in place).
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
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from converters import _coco_columns as cc
from converters import _prepare2d as prep
from converters._dataset import (
    ImageSource,
    assign_splits,
    parse_split,
    place_images,
    source_names,
)
from converters._idmap import IdMap
from converters._writer import Output, writer
from deepen_export import geometry as geo
from deepen_export._progress import status
from deepen_export.errors import ConversionError
from deepen_export.model import (
    Boxes,
    Frames,
    FrameStatus,
    LabelSet,
    Points,
    Polygons,
)
from deepen_export.report import Report

__all__ = ["ANNOTATIONS", "documents", "from_dict", "read", "to_dict", "write"]

FORMAT = "coco"
ANNOTATIONS = "annotations.json"
"""Name of the COCO document inside the output folder."""

Array = npt.NDArray[Any]
Area = Literal["polygon", "pixels"]
Layout = Literal["datumaro", "flat"]

_META = ("stage", "label_set", "labeller", "create_time", "update_time", "version")
_STATUS = {v: k for k, v in prep.STATUS_NAMES.items()}


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    id_map: str | os.PathLike[str] | None = None,
    clip: bool = True,
    indent: int | None = None,
    area: Area = "polygon",
    layout: Layout = "datumaro",
    split: str | dict[str, float] | None = None,
    seed: int = 0,
    copy_images: bool = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> None:
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
    report, tmp = out.report, out.folder
    ids = IdMap.load(id_map)
    with status("building COCO annotations"):
        cols = cc.build(labels, report, ids, clip=clip, area=area)
    parts = _subsets(labels, cols, subsets, seed) if layout != "flat" else [("", None, None)]
    if layout != "flat":
        (tmp / "images").mkdir()
    files = []
    for name, imgs, anns in parts:
        rel = ANNOTATIONS if layout == "flat" else f"annotations/instances_{name}.json"
        _dump_document(cols, tmp / rel, imgs, anns, indent is not None, split=bool(subsets))
        files.append(rel)
        if layout != "flat":
            report.written[f"images_{name}"] = len(cols.frames if imgs is None else imgs)
        if copy_images:
            sub = "images/" if layout == "flat" or not subsets else f"images/{name}/"
            placed = _place(labels, cols, imgs, sub, images, tmp, report)
            report.written["image_files"] = report.written.get("image_files", 0) + placed
    if layout != "flat" and not subsets:
        report.written.pop("images_default", None)
    ids.dump(tmp / "id_map.json")
    report.files = [*files, "id_map.json", "report.json"]
    if id_map is not None:  # last: every file of the output is written by now
        ids.dump(id_map)


def _dump_document(
    cols: cc.Columns,
    path: Path,
    imgs: Array | None,
    anns: Array | None,
    indent: bool,
    *,
    split: bool = False,
) -> None:
    """Write one COCO document (every image and annotation when ``imgs`` is None)."""
    imgs = np.arange(len(cols.frames)) if imgs is None else imgs
    anns = np.arange(len(cols.seq)) if anns is None else anns
    path.parent.mkdir(parents=True, exist_ok=True)
    with status(f"writing {path.name}"), open(path, "wb") as fh:
        chunks = cc.document_chunks(cols, imgs, anns, indent=indent, categories_first=split)
        for chunk in chunks:
            fh.write(chunk)
        fh.write(b"\n")


def _subsets(
    labels: LabelSet, cols: cc.Columns, subsets: list[tuple[str, float]], seed: int
) -> list[tuple[str, Array | None, Array | None]]:
    """``(subset name, image positions, annotation positions)`` of each subset (``default``,
    everything, without a split)."""
    if not subsets:
        return [("default", None, None)]
    of_image = np.array(assign_splits(labels, cols.frames, subsets, seed), dtype=object)
    out: list[tuple[str, Array | None, Array | None]] = []
    for name, _ in subsets:
        mine = of_image == name
        out.append((name, np.flatnonzero(mine), np.flatnonzero(mine[cols.ann_pos])))
    return out


def _place(
    labels: LabelSet,
    cols: cc.Columns,
    imgs: Array | None,
    sub: str,
    images: str | os.PathLike[str] | ImageSource | None,
    tmp: Path,
    report: Report,
) -> int:
    """Copy (link) the images at positions ``imgs`` into ``sub`` as their file names."""
    imgs = np.arange(len(cols.frames)) if imgs is None else imgs
    srcs = source_names(labels, cols.frames)
    fids = labels.frames.file_id[cols.frames]
    pairs = [(srcs[i], sub + cols.names[i], str(fids[i])) for i in imgs.tolist()]
    return place_images(images, pairs, tmp, report)


def to_dict(
    labels: LabelSet,
    report: Report | None = None,
    *,
    ids: IdMap | None = None,
    clip: bool = True,
    area: Area = "polygon",
) -> dict[str, Any]:
    """The COCO document of ``labels`` (kinds COCO cannot hold are ignored; see :func:`write`).

    The document :func:`write` writes, as Python objects (JSON's ``null`` where a value was
    NaN).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> doc = to_dict(LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("car",)))
    >>> doc["categories"], doc["images"][0]["deepen_status"]
    ([{'id': 1, 'name': 'car', 'supercategory': ''}], 'unknown')
    """
    report = report if report is not None else Report(FORMAT)
    ids = ids if ids is not None else IdMap()
    cols = cc.build(labels, report, ids, clip=clip, area=area)
    text = b"".join(cc.document_chunks(cols, np.arange(len(cols.frames)), np.arange(len(cols.seq))))
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        return json.loads(text)


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
        return _common_columns(anns, frame_of, code_of)

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
    points = _points_of(groups["points"], common(groups["points"]))
    return LabelSet(
        frames=frames,
        categories=tuple(c["name"] for c in cats),
        boxes=boxes,
        polygons=polygons,
        points=points,
        meta={"source_format": FORMAT},
    )


def _common_columns(
    anns: list[dict[str, Any]], frame_of: dict[Any, int], code_of: dict[Any, int]
) -> dict[str, Any]:
    """The columns every label table has, from COCO annotations (Deepen members if present)."""
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


def _points_of(anns: list[dict[str, Any]], common: dict[str, Any]) -> Points:
    """Point labels from keypoint annotations (visible keypoints, back to pixel centres)."""
    pts = []
    for a in anns:
        kp = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        pts.append(kp[kp[:, 2] > 0, :2] + 0.5)
    return Points.from_columns(
        **common,
        offsets=np.concatenate([[0], np.cumsum([len(p) for p in pts])]).astype(np.int64),
        coords=np.concatenate(pts) if pts else np.zeros((0, 2)),
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
