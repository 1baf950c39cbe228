"""Pascal VOC: one ``Annotations/<id>.xml`` per image, in the layout datumaro's ``voc`` reads.

Output folder::

    Annotations/<id>.xml            one per image (``id`` = image name without its extension)
    ImageSets/Main/<subset>.txt     the ids of each subset (``default``; with split=..., one file
                                    per subset: train.txt, val.txt)
    labelmap.txt                    background + every category with its colour (VOC's own
                                    class list is not assumed)
    JPEGImages/<name>               the images, with copy_images=True
    SegmentationClass/<id>.png      with segmentation=True: class index per pixel (palette PNG,
    SegmentationObject/<id>.png     VOC colour map) and object index per pixel; ids listed in
    ImageSets/Segmentation/<subset>.txt

Conventions
-----------
- Characters XML 1.0 cannot hold (control characters) in a category, label id, attribute
  name or value are written as ``?`` and reported (:mod:`converters._names`); such a file id
  is refused.
- Boxes are written **zero-based, pixel-corner, in whole pixels** (``origin=0``,
  ``integer=True``): ``xmin = floor(x0)``, ``ymin = floor(y0)``, ``xmax = ceil(x1)``,
  ``ymax = ceil(y1)``, the smallest whole-pixel box holding the label. That is how datumaro
  reads VOC by default (``[xmin, ymin, xmax - xmin, ymax - ymin]``) and what survives mmdet's
  ``int(float(text))``; a box whose corners were not whole pixels is reported as changed.
  ``origin=1`` writes VOC's original 1-based inclusive indices (``xmin = x0 + 1``,
  ``xmax = x1``: what detectron2 and datumaro's ``voc-one-based`` mode read) and
  ``integer=False`` the exact values (shortest form, :mod:`converters._numbers`). The origin
  is recorded in ``<deepen_box_origin>`` so :func:`read` restores the boxes.
- Polygons are written as their bounding box (of the repaired, clipped geometry), reported as
  changed, as YOLO detection does; with ``segmentation=True`` they are also painted into the
  segmentation PNGs (in label order, later labels over earlier ones; holes unpainted).
- Boxes are clipped to the image; a clipped box gets ``<truncated>1</truncated>`` (and a report
  entry), others ``0``. ``difficult`` is 0, ``pose`` is ``Unspecified``.
- Attributes go to ``<attributes><attribute><name/><value/></attribute></attributes>`` (the
  layout CVAT's VOC exporter uses); the Deepen label id to ``<deepen_label_id>``; the track id,
  when the label id has one, to ``<track_id>``.
- Every image frame gets a file, with no ``<object>`` when it has no labels; its review status
  is in ``<deepen_status>``. An image of unknown size gets ``0`` for width and height (reported).
- Frames whose review status says *not labelled yet* (and that carry no label) get no file
  and are reported, unless ``include_unlabelled=True``: an empty file would claim "no objects".
"""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from converters import _prepare2d as prep
from converters._base import record, texts_by_value, write_each, write_text, xml_escape_text
from converters._dataset import (
    ImageSource,
    assign_splits,
    parse_split,
    place_images,
    source_names,
)
from converters._names import xml_safe_labels
from converters._numbers import texts
from converters._writer import Output, writer
from converters.masks import palette
from deepen_export import geometry as geo
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, FrameStatus, LabelSet, Polygons
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "voc"
Array = npt.NDArray[Any]
_Row = tuple[int, str, list[float], str, dict[str, Any]]  # frame, name, xyxy, label id, attributes


def _xml_path(name: str) -> str:
    return "Annotations/" + prep.with_suffix(name, ".xml")


# The XML is written as text, exactly as ``ET.indent`` + ``ET.tostring`` would write the same
# tree (building ~20 elements per box and serialising them took most of the export time).


def _leaf(tag: str, text: Any) -> str:
    t = str(text)
    return f"<{tag}>{xml_escape_text(t)}</{tag}>" if t else f"<{tag} />"


def _node(tag: str, children: list[str], level: int) -> str:
    if not children:
        return f"<{tag} />"
    pad = "\n" + "  " * (level + 1)
    return f"<{tag}>{pad}{pad.join(children)}\n{'  ' * level}</{tag}>"


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    clip: bool = True,
    include_unlabelled: bool = False,
    folder: str = "",
    origin: int = 0,
    integer: bool = True,
    segmentation: bool = False,
    split: str | dict[str, float] | None = None,
    seed: int = 0,
    copy_images: bool = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> None:
    """Write ``labels`` as a Pascal VOC folder at ``dest`` (see the module docstring).

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds VOC cannot hold (everything but boxes and polygons).
    include_unlabelled : bool
        Also write frames whose status says they are not labelled yet (skipped and reported by
        default: an empty file would claim the image has no objects).
    clip : bool
        Clip boxes to the image (and mark them truncated).
    folder : str
        Text of each file's ``<folder>`` element.
    origin : {0, 1}
        Zero-based pixel-corner boxes (datumaro, mmdet) or VOC's 1-based indices.
    integer : bool
        Whole-pixel boxes (the enclosing box) or exact values.
    segmentation : bool
        Also write ``SegmentationClass/`` and ``SegmentationObject/`` PNGs.
    split : str or dict, optional
        ``"train:0.8,val:0.2"``: one ``ImageSets/Main/<subset>.txt`` per subset (deterministic
        by ``seed`` and file id, sequences kept whole; see :mod:`converters._dataset`).
    seed : int
        Seed of the split.
    copy_images : bool
        Put the images into ``JPEGImages/`` (hard links where possible), from ``images``.
    images : path, optional
        Folder or zip holding the images (the CLI passes ``--images`` or the snapshot's media).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[20], height=[10]),
    ...     categories=("cat",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["cat:1"], xyxy=[[0, 1, 3, 4.5]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "voc")
    >>> _ = write(labels, out)
    >>> import xml.etree.ElementTree as ET
    >>> box = ET.parse(out / "Annotations" / "a.xml").find("object/bndbox")
    >>> [box.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")]
    ['0', '1', '3', '5']
    >>> (out / "ImageSets" / "Main" / "default.txt").read_text()
    'a\\n'
    """
    base = int(origin)
    if base not in (0, 1):
        raise ValueError(f"origin must be 0 or 1, got {origin!r}")
    subsets = parse_split(split)
    report, tmp = out.report, out.folder
    labels = xml_safe_labels(labels, report, FORMAT)  # a control character makes XML unreadable
    frames = prep.image_frames(labels)
    frames = prep.skip_unlabelled(labels, frames, report, include_unlabelled, "XML file")
    if segmentation and len(labels.categories) > 254:
        raise ConversionError(
            f"{len(labels.categories)} categories do not fit VOC's 8-bit class PNGs (at most 254)",
            format=FORMAT,
        )
    names = prep.image_names(labels, frames)
    prep.check_paths(names, tmp / "Annotations", ".xml")
    ids = [prep.with_suffix(n, "") for n in names]
    subset = (
        assign_splits(labels, frames, subsets, int(seed)) if subsets else ["default"] * len(ids)
    )
    objects = _objects(labels, report, frames, base, integer, clip)
    head = _Head(folder, base, segmentation)
    files = _write_xml(labels, tmp, frames, names, objects, head, report)
    files += _image_sets(tmp, ids, subset, [n for n, _ in subsets], segmentation)
    colors = palette(256)
    write_text(
        tmp / "labelmap.txt",
        "# label:color_rgb:parts:actions\n",
        *(
            f"{n}:{','.join(map(str, colors[k].tolist()))}::\n"
            for k, n in enumerate(("background", *labels.categories))
        ),
    )
    files.append("labelmap.txt")
    if segmentation:
        files += _write_masks(labels, report, tmp, frames, ids, clip)
    if copy_images:
        fids = labels.frames.file_id[frames].tolist()
        srcs = source_names(labels, frames)
        pairs = [
            (src, f"JPEGImages/{n}", str(fid))
            for src, n, fid in zip(srcs, names, fids, strict=True)
        ]
        report.written["image_files"] = place_images(images, pairs, tmp, report)
    report.files = [*files, "report.json"]


def _image_sets(
    tmp: Path, ids: list[str], subset: list[str], subsets: list[str], seg: bool
) -> list[str]:
    """``ImageSets/<task>/<subset>.txt``: the ids of each subset (every subset, even empty)."""
    files = []
    for name in subsets or ["default"]:
        members = [i for i, s_ in zip(ids, subset, strict=True) if s_ == name]
        for task in ("Main", "Segmentation") if seg else ("Main",):
            rel = f"ImageSets/{task}/{name}.txt"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write_text(tmp / rel, "".join(i + "\n" for i in members))
            files.append(rel)
    return files


@dataclass(frozen=True)
class _Objects:
    """``<object>`` texts of every kept label, as a matrix of pieces (row ``j``: the pieces of
    object ``j``, joined by ``"".join``), sorted by frame (boxes, then polygons, of each)."""

    pieces: Array
    frame: Array


def _objects(
    labels: LabelSet, report: Report, frames: Array, base: int, integer: bool, clip: bool
) -> _Objects:
    """``<object>`` pieces of the boxes then polygons (as boxes), grouped by frame."""
    pb = prep.prepare_boxes(labels, report, frames, clip=clip)
    pp = prep.prepare_polygons(labels, report, frames, clip=clip)
    p = labels.polygons
    record(report, labels, "polygons", pp.rows, "changed", "polygon written as its bounding box")
    bounds = shapely.bounds(pp.geoms) if len(pp.geoms) else np.zeros((0, 4))
    tables = []
    for kind, table, rows, xyxy, clipped in (
        ("box", labels.boxes, pb.rows, pb.xyxy, pb.clipped),
        ("polygon", p, pp.rows, bounds, pp.clipped),
    ):
        if integer:
            whole = np.concatenate([np.floor(xyxy[:, :2]), np.ceil(xyxy[:, 2:])], axis=1)
            moved = (whole != xyxy).any(axis=1)
            if kind == "box":
                corners = "box corners rounded out to whole pixels"
                record(report, labels, "boxes", rows[moved], "changed", corners)
            xyxy = whole
        numbers = np.array(texts(xyxy + np.array([base, base, 0.0, 0.0])), dtype=object)
        numbers = numbers.reshape(len(rows), 4)
        tables.append(_object_pieces(labels, table, rows, clipped, numbers, kind))
    frame = np.concatenate([labels.boxes.frame[pb.rows], p.frame[pp.rows]])
    order = np.argsort(frame, kind="stable")  # each frame's boxes, then its polygons
    report.written["objects"] = len(frame)
    width = max(t.shape[1] for t in tables)  # tables differ in their attribute columns
    padded = [np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values="") for t in tables]
    return _Objects(np.concatenate(padded)[order], frame[order])


def _leaves(tag: str, values: list[str]) -> Array:
    """``_leaf(tag, v)`` of each value, as an object array; plain values without a call each."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    if _PLAIN_XML.fullmatch("\x00".join(values)) and all(values):  # nothing to escape
        return f"<{tag}>" + out + f"</{tag}>"
    out[:] = [_leaf(tag, v) for v in values]
    return out


_PLAIN_XML = re.compile(r"[^&<>]*")


def _object_pieces(
    labels: LabelSet, t: Any, rows: Array, clipped: Array, numbers: Array, kind: str
) -> Array:
    """The pieces of the ``<object>`` element (level 1) of each row of table ``t``, column by
    column: numbers, names and label ids need no escaping or are escaped once per value."""
    names = np.array([_leaf("name", c) for c in labels.categories] or [""], dtype=object)
    track = t.track[rows]
    track_text = np.where(
        track >= 0, "\n    <track_id>" + track.astype(str).astype(object) + "</track_id>", ""
    )
    cols: list[Any] = [
        "\n  <object>\n    ",
        names[t.category[rows]],
        "\n    <pose>Unspecified</pose>\n    <truncated>",
        np.where(clipped, "1", "0"),
        "</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n      <xmin>",
        numbers[:, 0],
        "</xmin>\n      <ymin>",
        numbers[:, 1],
        "</ymin>\n      <xmax>",
        numbers[:, 2],
        "</xmax>\n      <ymax>",
        numbers[:, 3],
        "</ymax>\n    </bndbox>\n    ",
        _leaves("deepen_label_id", [str(v) for v in t.label_id[rows].tolist()]),
        "" if kind == "box" else f"\n    <deepen_label_type>{kind}</deepen_label_type>",
        track_text,
        *_attribute_pieces(t, rows),
        "\n  </object>",
    ]
    out = np.empty((len(rows), len(cols)), dtype=object)
    for j, c in enumerate(cols):
        out[:, j] = c
    return out


def _attribute_pieces(t: Any, rows: Array) -> list[Array | str]:
    """``<attributes>`` of each row as pieces: the opening, one piece per attribute, the end."""
    seen = np.zeros(len(rows), dtype=bool)
    pieces: list[Array | str] = []
    for k, col in t.attributes.items():
        entry = texts_by_value(col[rows].tolist(), functools.partial(_attribute_entry, k))
        pieces.append(entry)
        seen |= entry != ""
    if not pieces:
        return []
    opening = np.where(seen, "\n    <attributes>", "")
    return [opening, *pieces, np.where(seen, "\n    </attributes>", "")]


def _attribute_entry(k: str, v: Any) -> str:
    return "\n      " + _attribute_node(k, _attr_text(v))


def _attribute_node(k: str, text: str) -> str:
    return _node("attribute", [_leaf("name", k), _leaf("value", text)], 3)


@dataclass(frozen=True)
class _Head:
    """What every file's head holds besides the frame's own fields."""

    folder: str
    base: int
    seg: bool


def _write_xml(
    labels: LabelSet,
    tmp: Path,
    frames: Array,
    names: list[str],
    objects: _Objects,
    head: _Head,
    report: Report,
) -> list[str]:
    unknown = prep.report_unknown_sizes(
        labels, frames, report, "width/height written as 0, boxes not clipped"
    )
    files = [_xml_path(n) for n in names]
    blobs = _xml_texts(labels, frames, names, unknown, objects, head)
    write_each(tmp, files, blobs, description="VOC XML files")  # one file's bytes held at a time
    report.written = {"images": len(frames), **report.written}  # images first in the summary
    return files


def _xml_texts(
    labels: LabelSet,
    frames: Array,
    names: list[str],
    unknown: Array,
    objects: _Objects,
    head: _Head,
) -> Iterator[bytes]:
    """Each frame's XML file, made as it is written."""
    f = labels.frames
    first = np.searchsorted(objects.frame, frames, side="left").tolist()
    last = np.searchsorted(objects.frame, frames, side="right").tolist()
    cols = zip(
        frames.tolist(),
        names,
        unknown.tolist(),
        f.width[frames].tolist(),
        f.height[frames].tolist(),
        f.status[frames].tolist(),
        first,
        last,
        strict=True,
    )
    for fr, name, unk, w, h, st, a, z in cols:
        children = [
            _leaf("folder", head.folder),
            _leaf("filename", name),
            _node(
                "size",
                [
                    _leaf("width", 0 if unk else w),
                    _leaf("height", 0 if unk else h),
                    "<depth>3</depth>",
                ],
                1,
            ),
            _leaf("segmented", int(head.seg and not unk)),
            _leaf("deepen_box_origin", head.base),
            _leaf("deepen_status", prep.STATUS_NAMES.get(int(st), "unknown")),
            _leaf("deepen_file_id", f.file_id[fr]),
            _leaf("deepen_sensor_id", f.sensor_id[fr]),
            _leaf("deepen_dataset_id", f.dataset_id[fr]),
        ]
        text = "<annotation>\n  " + "\n  ".join(children)
        text += "".join(objects.pieces[a:z].ravel().tolist()) + "\n</annotation>\n"
        yield text.encode("utf-8", "xmlcharrefreplace")


def _write_masks(
    labels: LabelSet, report: Report, tmp: Path, frames: Any, ids: list[str], clip: bool
) -> list[str]:
    """SegmentationClass/ and SegmentationObject/ palette PNGs (VOC colour map, 0 background).

    Boxes are painted as rectangles and polygons as their shapes, in label order (boxes, then
    polygons); object index ``j`` is the j-th ``<object>`` of the image's XML, 1-based.
    """
    from PIL import Image

    f = labels.frames
    quiet = Report(FORMAT)  # the changes were reported once, by _objects
    pbx = prep.prepare_boxes(labels, quiet, frames, clip=clip)
    ppx = prep.prepare_polygons(labels, quiet, frames, clip=clip)
    geoms = np.concatenate(
        [shapely.box(*pbx.xyxy.T) if len(pbx.rows) else np.zeros(0, object), ppx.geoms]
    )
    frame = np.concatenate([labels.boxes.frame[pbx.rows], labels.polygons.frame[ppx.rows]])
    cat = np.concatenate([labels.boxes.category[pbx.rows], labels.polygons.category[ppx.rows]])
    w, h = f.width[frame], f.height[frame]
    known = (w > 0) & (h > 0)
    rles: list[Any] = [None] * len(geoms)
    sel = np.flatnonzero(known)
    for j, r in zip(sel.tolist(), geo.polygons_to_rle(geoms[sel], h[sel], w[sel]), strict=True):
        rles[j] = r
    colors = palette(256).ravel().tolist()
    files = []
    for k, fr in enumerate(frames.tolist()):
        if f.width[fr] <= 0 or f.height[fr] <= 0:
            report.add(
                "skipped", "image size unknown: no segmentation PNG", file_id=str(f.file_id[fr])
            )
            continue
        cls = np.zeros((int(f.height[fr]), int(f.width[fr])), dtype=np.uint8)
        obj = np.zeros_like(cls)
        for n, j in enumerate(np.flatnonzero(frame == fr).tolist(), start=1):
            if rles[j] is None:
                continue
            hit = geo.rle_decode([rles[j]])[0].astype(bool)
            cls[hit] = int(cat[j]) + 1
            obj[hit] = min(n, 254)
        for folder, mask in (("SegmentationClass", cls), ("SegmentationObject", obj)):
            rel = f"{folder}/{ids[k]}.png"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            im = Image.fromarray(mask, mode="P")
            im.putpalette(colors)
            im.save(tmp / rel, format="PNG")
            files.append(rel)
    return files


def _attr_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v.item() if isinstance(v, np.generic) else v)


def read(
    source: str | os.PathLike[str],
    /,
    *,
    categories: tuple[str, ...] | None = None,
    origin: int | None = None,
) -> LabelSet:
    """Read VOC XML files (``<source>/Annotations/**/*.xml``) into a LabelSet.

    Categories are ``categories`` when given, otherwise the object names in order of first
    appearance. Attribute values come back as strings (VOC has no types). Box corners are read
    with the origin each file records in ``<deepen_box_origin>``; files without it (written by
    other tools) are read as ``origin`` (default 1, the Pascal VOC devkit's convention).
    Polygons written as boxes (``<deepen_label_type>polygon``) come back as those rectangles.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[20], height=[10]),
    ...     categories=("cat",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["cat:1"], xyxy=[[0, 1, 3, 4]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "voc")
    >>> _ = write(labels, out)
    >>> read(out).boxes.xyxy.tolist()
    [[0.0, 1.0, 3.0, 4.0]]
    """
    root = Path(source) / "Annotations"
    if not root.is_dir():
        raise ConversionError(f"no Annotations folder in {source}", format=FORMAT)
    cats = list(categories or ())
    frames_cols: dict[str, list[Any]] = {
        "file_id": [],
        "sensor_id": [],
        "dataset_id": [],
        "width": [],
        "height": [],
        "status": [],
    }
    rows: list[_Row] = []
    polys: list[_Row] = []
    for i, path in enumerate(sorted(root.rglob("*.xml"))):
        _read_file(path, root, i, origin, cats, frames_cols, (rows, polys))
    frames = Frames.from_columns(**frames_cols)

    def common(rs: list[_Row]) -> dict[str, Any]:
        keys = list(dict.fromkeys(k for r in rs for k in r[4]))
        return {
            "frame": [r[0] for r in rs],
            "category": [cats.index(r[1]) for r in rs],
            "label_id": [r[3] for r in rs],
            "attributes": {k: [r[4].get(k) for r in rs] for k in keys},
        }

    boxes = Boxes.from_columns(
        **common(rows), xyxy=np.asarray([r[2] for r in rows], dtype=np.float64).reshape(-1, 4)
    )
    # polygons written as their boxes come back as those rectangles
    rect = np.asarray([r[2] for r in polys], dtype=np.float64).reshape(-1, 4)
    polygons = Polygons.from_columns(
        **common(polys),
        offsets=np.arange(len(polys) + 1),
        ring_offsets=np.arange(0, 4 * len(polys) + 1, 4),
        coords=rect[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2),
    )
    return LabelSet(
        frames=frames,
        categories=tuple(cats),
        boxes=boxes,
        polygons=polygons,
        meta={"source_format": FORMAT},
    )


def _read_file(
    path: Path,
    root: Path,
    i: int,
    origin: int | None,
    cats: list[str],
    frames_cols: dict[str, list[Any]],
    out: tuple[list[_Row], list[_Row]],
) -> None:
    """One XML file: its frame's columns, and its objects as box rows or polygon rows."""
    status_of = {v: k for k, v in prep.STATUS_NAMES.items()}
    doc = ET.parse(path).getroot()
    frames_cols["file_id"].append(
        doc.findtext("deepen_file_id")
        or doc.findtext("filename")
        or path.relative_to(root).as_posix()
    )
    frames_cols["sensor_id"].append(doc.findtext("deepen_sensor_id") or "")
    frames_cols["dataset_id"].append(doc.findtext("deepen_dataset_id") or "")
    frames_cols["width"].append(int(float(doc.findtext("size/width") or 0)) or -1)
    frames_cols["height"].append(int(float(doc.findtext("size/height") or 0)) or -1)
    frames_cols["status"].append(
        status_of.get(doc.findtext("deepen_status") or "", int(FrameStatus.UNKNOWN))
    )
    base = int(doc.findtext("deepen_box_origin") or (1 if origin is None else origin))
    rows, polys = out
    for j, obj in enumerate(doc.iter("object")):
        name = obj.findtext("name") or ""
        if name not in cats:
            cats.append(name)
        vals = [
            float(obj.findtext(f"bndbox/{t}") or "nan") for t in ("xmin", "ymin", "xmax", "ymax")
        ]
        xyxy = [vals[0] - base, vals[1] - base, vals[2], vals[3]]
        attrs = {
            a.findtext("name") or "": a.findtext("value")
            for a in obj.findall("attributes/attribute")
        }
        lid = obj.findtext("deepen_label_id") or f"{name}:{j}"
        kind = obj.findtext("deepen_label_type") or "box"
        (polys if kind == "polygon" else rows).append((i, name, xyxy, lid, attrs))
