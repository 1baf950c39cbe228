"""Pascal VOC XML: one ``Annotations/<file_id>.xml`` per image (sub-folders kept).

Conventions
-----------
- VOC coordinates are 1-based inclusive pixel indices. A pixel-corner box ``[x0, y0, x1, y1]``
  is written ``xmin = x0 + 1, ymin = y0 + 1, xmax = x1, ymax = y1`` (the inverse of
  detectron2's reader, which subtracts 1 from ``xmin``/``ymin`` only): a box covering the whole
  W x H image is ``1, 1, W, H``. Values are written exactly (integers without a decimal point,
  other values in their shortest round-trip form).
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

from converters import _prepare2d as prep
from converters._base import (
    FileWriter,
    OnUnsupported,
    apply_policy,
    atomic_dir,
    finish,
    paused_gc,
    xml_escape_text,
)
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, FrameStatus, LabelSet
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "voc"


def _xml_path(file_id: str) -> str:
    return str(PurePosixPath("Annotations", PurePosixPath(file_id).with_suffix(".xml")))


def _num(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


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


def _object_texts(labels: LabelSet, rows: Any, clipped: Any, txt: Any) -> list[str]:
    """The ``<object>`` element (level 1) of each kept box, in ``rows`` order."""
    b = labels.boxes
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
) -> Report:
    """Write ``labels`` as Pascal VOC XML files under ``dest/Annotations``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds VOC cannot hold (everything but boxes).
    include_unlabelled : bool
        Also write frames whose status says they are not labelled yet (skipped and reported by
        default: an empty file would claim the image has no objects).
    clip : bool
        Clip boxes to the image (and mark them truncated).
    folder : str
        Text of each file's ``<folder>`` element.

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
    >>> import xml.etree.ElementTree as ET
    >>> box = ET.parse(out / "Annotations" / "a.xml").find("object/bndbox")
    >>> [box.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")]
    ['1', '2', '3', '4']
    """
    report = Report(FORMAT)
    from converters import get_format

    labels = apply_policy(labels, FORMAT, get_format(FORMAT).kinds, on_unsupported, report)
    frames = prep.image_frames(labels)
    frames = prep.skip_unlabelled(labels, frames, report, prep.flag(include_unlabelled), "XML file")
    f = labels.frames
    with atomic_dir(dest) as tmp:
        names = prep.image_names(labels, frames)
        prep.check_paths(names, tmp / "Annotations", ".xml")
        unknown = prep.report_unknown_sizes(
            labels, frames, report, "width/height written as 0, boxes not clipped"
        )
        pb = prep.prepare_boxes(labels, report, frames, clip=prep.flag(clip))
        b = labels.boxes
        by_frame: dict[int, list[int]] = {}
        for j, fr in enumerate(b.frame[pb.rows].tolist()):
            by_frame.setdefault(fr, []).append(j)
        # 1-based inclusive indices, formatted in bulk
        vocs = (pb.xyxy + np.array([1.0, 1.0, 0.0, 0.0])).tolist()
        txt = [[_num(v) for v in row] for row in vocs]
        objects = _object_texts(labels, pb.rows, pb.clipped, txt)
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
                _leaf("segmented", 0),
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
        report.written.update({"images": len(frames), "objects": len(pb.rows)})
        report.files = [*files, "report.json"]
        finish(report, tmp)
    return report


def _attr_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v.item() if isinstance(v, np.generic) else v)


def read(
    source: str | os.PathLike[str], /, *, categories: tuple[str, ...] | None = None
) -> LabelSet:
    """Read VOC XML files (``<source>/Annotations/**/*.xml``) into a LabelSet.

    Categories are ``categories`` when given, otherwise the object names in order of first
    appearance. Attribute values come back as strings (VOC has no types).

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
        for j, obj in enumerate(doc.iter("object")):
            name = obj.findtext("name") or ""
            if name not in cats:
                cats.append(name)
            vals = [
                float(obj.findtext(f"bndbox/{t}") or "nan")
                for t in ("xmin", "ymin", "xmax", "ymax")
            ]
            xyxy = [vals[0] - 1, vals[1] - 1, vals[2], vals[3]]
            attrs = {
                a.findtext("name") or "": a.findtext("value")
                for a in obj.findall("attributes/attribute")
            }
            rows.append((i, name, xyxy, obj.findtext("deepen_label_id") or f"{name}:{j}", attrs))
    keys = list(dict.fromkeys(k for r in rows for k in r[4]))
    frames = Frames.from_columns(**frames_cols)
    boxes = Boxes.from_columns(
        frame=[r[0] for r in rows],
        category=[cats.index(r[1]) for r in rows],
        label_id=[r[3] for r in rows],
        xyxy=np.asarray([r[2] for r in rows], dtype=np.float64).reshape(-1, 4),
        attributes={k: [r[4].get(k) for r in rows] for k in keys},
    )
    return LabelSet(
        frames=frames, categories=tuple(cats), boxes=boxes, meta={"source_format": FORMAT}
    )
