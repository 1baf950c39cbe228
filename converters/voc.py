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

import os
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import shapely

from converters import _prepare2d as prep
from converters._base import (
    FileWriter,
    OnUnsupported,
    apply_policy,
    atomic_dir,
    finish,
    paused_gc,
    record,
    write_text,
    xml_escape_text,
)
from converters._dataset import (
    ImageSource,
    assign_splits,
    parse_split,
    place_images,
    source_names,
)
from converters._names import xml_safe_labels
from converters._numbers import texts
from converters.masks import palette
from deepen_export import geometry as geo
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, FrameStatus, LabelSet, Polygons
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "voc"


def _xml_path(file_id: str) -> str:
    return str(PurePosixPath("Annotations", PurePosixPath(file_id).with_suffix(".xml")))


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


def _object_texts(
    labels: LabelSet, b: Any, rows: Any, clipped: Any, txt: Any, kind: str = "box"
) -> list[str]:
    """The ``<object>`` element (level 1) of each kept label of table ``b``, in ``rows`` order."""
    names = [_leaf("name", c) for c in labels.categories]
    cats = b.category[rows].tolist()
    lids = b.label_id[rows].tolist()
    tracks = b.track[rows].tolist()
    cols = [(k, v[rows].tolist()) for k, v in b.attributes.items()]
    memo: dict[tuple[str, str], str] = {}  # attribute values repeat: each is escaped once

    def attribute(k: str, v: Any) -> str:
        key = (k, _attr_text(v))
        text = memo.get(key)
        if text is None:
            text = memo[key] = _node("attribute", [_leaf("name", k), _leaf("value", key[1])], 3)
        return text

    out = []
    for j, (cat, lid, track, trunc, (x0, y0, x1, y1)) in enumerate(
        zip(cats, lids, tracks, clipped.astype(int).tolist(), txt, strict=True)
    ):
        # numbers need no escaping and are never empty, so they go straight into the template
        parts = [
            f"<object>\n    {names[cat]}\n    <pose>Unspecified</pose>\n"
            f"    <truncated>{trunc}</truncated>\n    <difficult>0</difficult>\n"
            f"    <bndbox>\n      <xmin>{x0}</xmin>\n      <ymin>{y0}</ymin>\n"
            f"      <xmax>{x1}</xmax>\n      <ymax>{y1}</ymax>\n    </bndbox>\n"
            f"    {_leaf('deepen_label_id', lid)}"
        ]
        if kind != "box":
            parts.append(f"\n    <deepen_label_type>{kind}</deepen_label_type>")
        if track >= 0:
            parts.append(f"\n    <track_id>{track}</track_id>")
        attrs = [attribute(k, c[j]) for k, c in cols if c[j] is not None]
        if attrs:
            parts.append("\n    " + _node("attributes", attrs, 2))
        parts.append("\n  </object>")
        out.append("".join(parts))
    return out


@paused_gc()
def write(
    labels: LabelSet,
    dest: str | os.PathLike[str],
    /,
    *,
    on_unsupported: OnUnsupported = "raise",
    clip: bool | str = True,
    include_unlabelled: bool | str = False,
    folder: str = "",
    origin: int | str = 0,
    integer: bool | str = True,
    segmentation: bool | str = False,
    split: str | dict[str, float] | None = None,
    seed: int | str = 0,
    copy_images: bool | str = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> Report:
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
    report = Report(FORMAT)
    from converters import get_format

    labels = apply_policy(labels, FORMAT, get_format(FORMAT).kinds, on_unsupported, report)
    labels = xml_safe_labels(labels, report, FORMAT)  # a control character makes XML unreadable
    frames = prep.image_frames(labels)
    frames = prep.skip_unlabelled(labels, frames, report, prep.flag(include_unlabelled), "XML file")
    seg = prep.flag(segmentation)
    if seg and len(labels.categories) > 254:
        raise ConversionError(
            f"{len(labels.categories)} categories do not fit VOC's 8-bit class PNGs (at most 254)",
            format=FORMAT,
        )
    with atomic_dir(dest) as tmp:
        names = prep.image_names(labels, frames)
        prep.check_paths(names, tmp / "Annotations", ".xml")
        ids = [str(PurePosixPath(n).with_suffix("")) for n in names]
        subset = (
            assign_splits(labels, frames, subsets, int(seed)) if subsets else ["default"] * len(ids)
        )
        objects, by_frame = _objects(
            labels, report, frames, base, prep.flag(integer), prep.flag(clip)
        )
        files = _write_xml(labels, tmp, frames, names, objects, by_frame, folder, base, seg, report)
        for name in [n for n, _ in subsets] or ["default"]:  # every subset, even empty
            members = [i for i, s_ in zip(ids, subset, strict=True) if s_ == name]
            for task in ("Main", "Segmentation") if seg else ("Main",):
                rel = f"ImageSets/{task}/{name}.txt"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                write_text(tmp / rel, "".join(i + "\n" for i in members))
                files.append(rel)
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
        if seg:
            files += _write_masks(labels, report, tmp, frames, ids, prep.flag(clip))
        if prep.flag(copy_images):
            pairs = [
                (src, f"JPEGImages/{n}", str(fid))
                for src, n, fid in zip(
                    source_names(labels, frames),
                    names,
                    labels.frames.file_id[frames].tolist(),
                    strict=True,
                )
            ]
            report.written["image_files"] = place_images(images, pairs, tmp, report)
        report.files = [*files, "report.json"]
        finish(report, tmp)
    return report


def _objects(
    labels: LabelSet, report: Report, frames: Any, base: int, integer: bool, clip: bool
) -> tuple[list[str], dict[int, list[int]]]:
    """``<object>`` texts of the boxes then polygons (as boxes), and their indices per frame."""
    pb = prep.prepare_boxes(labels, report, frames, clip=clip)
    pp = prep.prepare_polygons(labels, report, frames, clip=clip)
    p = labels.polygons
    record(report, labels, "polygons", pp.rows, "changed", "polygon written as its bounding box")
    bounds = shapely.bounds(pp.geoms) if len(pp.geoms) else np.zeros((0, 4))
    objects: list[str] = []
    for kind, table, rows, xyxy, clipped in (
        ("boxes", labels.boxes, pb.rows, pb.xyxy, pb.clipped),
        ("polygons", p, pp.rows, bounds, pp.clipped),
    ):
        if integer:
            whole = np.concatenate([np.floor(xyxy[:, :2]), np.ceil(xyxy[:, 2:])], axis=1)
            moved = (whole != xyxy).any(axis=1)
            if kind == "boxes":
                record(
                    report,
                    labels,
                    kind,
                    rows[moved],
                    "changed",
                    "box corners rounded out to whole pixels",
                )
            xyxy = whole
        vals = xyxy + np.array([base, base, 0.0, 0.0])
        t = texts(vals)
        txt = [t[i : i + 4] for i in range(0, len(t), 4)]
        objects += _object_texts(
            labels, table, rows, clipped, txt, "box" if kind == "boxes" else "polygon"
        )
    by_frame: dict[int, list[int]] = {}  # objects of each frame: its boxes, then its polygons
    order = np.concatenate([labels.boxes.frame[pb.rows], p.frame[pp.rows]]).tolist()
    for j, fr in enumerate(order):
        by_frame.setdefault(fr, []).append(j)
    report.written["objects"] = len(objects)
    return objects, by_frame


def _write_xml(
    labels: LabelSet,
    tmp: Path,
    frames: Any,
    names: list[str],
    objects: list[str],
    by_frame: dict[int, list[int]],
    folder: str,
    base: int,
    seg: bool,
    report: Report,
) -> list[str]:
    f = labels.frames
    unknown = prep.report_unknown_sizes(
        labels, frames, report, "width/height written as 0, boxes not clipped"
    )
    files = []
    out = FileWriter(tmp)
    for k, fr in enumerate(progress(frames.tolist(), description="VOC XML files")):
        size = _node(
            "size",
            [
                _leaf("width", 0 if unknown[k] else int(f.width[fr])),
                _leaf("height", 0 if unknown[k] else int(f.height[fr])),
                _leaf("depth", 3),
            ],
            1,
        )
        children = [
            _leaf("folder", folder),
            _leaf("filename", names[k]),
            size,
            _leaf("segmented", int(seg and not unknown[k])),
            _leaf("deepen_box_origin", base),
            _leaf("deepen_status", prep.STATUS_NAMES.get(int(f.status[fr]), "unknown")),
            _leaf("deepen_file_id", f.file_id[fr]),
            _leaf("deepen_sensor_id", f.sensor_id[fr]),
            _leaf("deepen_dataset_id", f.dataset_id[fr]),
            *[objects[j] for j in by_frame.get(fr, [])],
        ]
        text = _node("annotation", children, 0)
        rel = _xml_path(names[k])
        out.write(rel, (text + "\n").encode("utf-8", "xmlcharrefreplace"))
        files.append(rel)
    report.written = {"images": len(frames), **report.written}  # images first in the summary
    return files


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
    rows: list[tuple[int, str, list[float], str, dict[str, Any]]] = []
    polys: list[tuple[int, str, list[float], str, dict[str, Any]]] = []
    status_of = {v: k for k, v in prep.STATUS_NAMES.items()}
    for i, path in enumerate(sorted(root.rglob("*.xml"))):
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
        for j, obj in enumerate(doc.iter("object")):
            name = obj.findtext("name") or ""
            if name not in cats:
                cats.append(name)
            vals = [
                float(obj.findtext(f"bndbox/{t}") or "nan")
                for t in ("xmin", "ymin", "xmax", "ymax")
            ]
            xyxy = [vals[0] - base, vals[1] - base, vals[2], vals[3]]
            attrs = {
                a.findtext("name") or "": a.findtext("value")
                for a in obj.findall("attributes/attribute")
            }
            lid = obj.findtext("deepen_label_id") or f"{name}:{j}"
            kind = obj.findtext("deepen_label_type") or "box"
            (polys if kind == "polygon" else rows).append((i, name, xyxy, lid, attrs))
    frames = Frames.from_columns(**frames_cols)

    def common(rs: list[tuple[int, str, list[float], str, dict[str, Any]]]) -> dict[str, Any]:
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
