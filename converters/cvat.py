"""CVAT for images 1.1 XML: ``annotations.xml`` with boxes, polygons, polylines, points and tags.

Conventions
-----------
- Characters XML 1.0 cannot hold (control characters) in a category, label id, attribute
  name or value are written as ``?`` and reported (:mod:`converters._names`); such a file id
  is refused.
- Coordinates are pixel-corner floats, as CVAT's own (``xtl ytl xbr ybr`` for boxes,
  ``x,y;x,y`` point lists), written exactly (integers without a decimal point, other values in
  their shortest form, :func:`converters._numbers.texts`).
- ``<meta><task><labels>`` lists every category in ``LabelSet.categories`` order (type
  ``any``) with the attributes its labels use (``input_type`` text).
- Each shape keeps its attributes as ``<attribute name="...">value</attribute>``, plus
  ``deepen_label_id`` and, when the label id has one, ``deepen_track`` (the track number;
  ``track_id`` is a name CVAT reserves and drops on import).
- Tracks: a label whose id appears on several images of one sensor of one dataset, with one
  shape on each (a box, a one-part polygon or polyline, a points label), is written as a
  ``<track id label>`` element after the images, holding one keyframe shape per image
  (``frame`` = the image ``id``, ``keyframe="1"``, ``outside="0"``) and an ``outside="1"``
  keyframe on the image after each run of images it is on (CVAT would interpolate across the
  gap otherwise). That is how CVAT and datumaro's ``cvat`` importer read tracks.
- Boxes and polygons are repaired and clipped to the image like the other 2D formats. A
  multi-part polygon (or polyline) is written as one element per part sharing a ``group_id``;
  polygon holes cannot be held by a CVAT polygon and are filled (reported as changed).
- Lanes and polylines are ``<polyline>`` (``deepen_label_type`` attribute: lane or polyline),
  clipped to the image (shapely intersection; a line leaving and re-entering the image becomes
  several parts sharing a ``group_id``; clipped labels are reported, labels left with nothing
  inside are dropped);
  2D points are ``<points>``; scene labels are ``<tag>``.
- Not written (CVAT has no place for them): stage, label set, labeller, create/update times
  and version of each label.
- Images are in frame order, ``id`` 0..n-1, ``name`` the relative image path; frames with no
  labels are written too, with their review status in ``deepen_status``.
- With ``copy_images=True`` the images go to ``images/<name>`` beside the XML (the layout of
  CVAT's dataset zips and of datumaro's ``cvat``); with ``split=...`` each subset is one task
  file, ``<subset>.xml``, in place of ``annotations.xml``.
"""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from converters import _prepare2d as prep
from converters._base import record, texts_by_value, write_text, xml_escape_text, xml_text
from converters._base import xml_escape_attrib as _xml_attr
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
from deepen_export._progress import status
from deepen_export.errors import ConversionError
from deepen_export.model import (
    Boxes,
    Frames,
    FrameStatus,
    LabelSet,
    Points,
    Polygons,
    Polylines,
    Scenes,
)
from deepen_export.report import Report

__all__ = ["ANNOTATIONS", "read", "write"]

FORMAT = "cvat"
ANNOTATIONS = "annotations.xml"
"""Name of the XML file inside the output folder."""

Array = npt.NDArray[Any]
_RESERVED = ("deepen_label_id", "deepen_track", "deepen_label_type")


def _nums(values: Array) -> list[str]:
    """Each value's text (:func:`converters._numbers.texts`): nothing XML needs escaped."""
    return texts(values)


def _points_texts(xy: Array, offsets: Array) -> list[str]:
    """``x,y;x,y`` text of each run ``offsets[i]:offsets[i + 1]`` of ``xy``, formatted in bulk."""
    t = _nums(xy)
    pairs = [f"{a},{b}" for a, b in zip(t[0::2], t[1::2], strict=True)]
    return [
        ";".join(pairs[a:z])
        for a, z in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v.item() if isinstance(v, np.generic) else v)


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    clip: bool = True,
    task_name: str = "deepen-export",
    split: str | dict[str, float] | None = None,
    seed: int = 0,
    copy_images: bool = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> None:
    """Write ``labels`` as CVAT for images 1.1 XML at ``dest/annotations.xml``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds CVAT for images cannot hold (3D labels, paintings).
    clip : bool
        Clip boxes and polygons to the image.
    task_name : str
        ``<meta><task><name>``.
    split : str or dict, optional
        ``"train:0.8,val:0.2"``: one task file per subset, ``train.xml``, ``val.xml``, instead
        of ``annotations.xml`` (datumaro names each subset after its file; deterministic by
        ``seed`` and file id, sequences kept whole).
    seed : int
        Seed of the split.
    copy_images : bool
        Put the images into ``images/`` beside ``annotations.xml`` (the layout of CVAT's
        dataset zips), hard links where possible, from ``images``.
    images : path, optional
        Folder or zip holding the images (the CLI passes ``--images`` or the snapshot's media).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[20], height=[10]),
    ...     categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 1, 3.5, 4]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "cvat")
    >>> _ = write(labels, out)
    >>> import xml.etree.ElementTree as ET
    >>> ET.parse(out / "annotations.xml").find("image/box").attrib["xbr"]
    '3.5'
    """
    report, tmp = out.report, out.folder
    labels = xml_safe_labels(labels, report, FORMAT)  # a control character makes XML unreadable
    frames = prep.image_frames(labels, report, "image entry")
    names = prep.image_names(labels, frames)
    prep.check_paths(names, "/")
    subsets = parse_split(split)
    parts = [(ANNOTATIONS, np.ones(len(frames), dtype=bool))]
    if subsets:  # one task file per subset, named after it (how datumaro names subsets)
        subset = np.array(assign_splits(labels, frames, subsets, int(seed)), dtype=object)
        parts = [(f"{n}.xml", subset == n) for n, _ in subsets]
    totals: dict[str, int] = {}
    for file_name, sel in parts:
        with status("building CVAT XML"):
            kept = [n for n, keep in zip(names, sel.tolist(), strict=True) if keep]
            text = to_xml(labels, report, frames[sel], kept, clip=clip, task_name=task_name)
        # as ET.tostring writes: no newline translation, unencodable characters as references
        write_text(
            tmp / file_name,
            '<?xml version="1.0" encoding="utf-8"?>\n',
            text,
            "\n",
            errors="xmlcharrefreplace",
            newline="\n",
        )
        for k, v in report.written.items():
            totals[k] = totals.get(k, 0) + v
        report.written.clear()
    report.written.update(totals)
    report.files = [name for name, _ in parts] + ["report.json"]
    if copy_images:
        fids = [str(x) for x in labels.frames.file_id[frames].tolist()]
        srcs = source_names(labels, frames)
        pairs = [(src, f"images/{n}", fid) for src, n, fid in zip(srcs, names, fids, strict=True)]
        report.written["image_files"] = place_images(images, pairs, tmp, report)


# The document is written as text, exactly as ``ET.indent`` + ``ET.tostring`` would write the
# same tree (with ElementTree's own escaping): building and serialising ~10 elements per label
# took most of the export time. Shapes sit at depth 2 (annotations > image > shape).
_SHAPE_PAD = "\n      "

_Shape = tuple[int, int, str, str, str, str, int]  # kind, row, tag, label, head, children, parts


class _Shapes:
    """The shapes of each frame, in the order they are added, and the group id counter."""

    def __init__(self, labels: LabelSet) -> None:
        self.by_frame: dict[int, list[_Shape]] = {}
        self.cats = [_xml_attr(c) for c in labels.categories]
        self.group = 0

    def add(self, frame: int, shape: _Shape) -> None:
        self.by_frame.setdefault(frame, []).append(shape)

    def next_group(self) -> str:
        self.group += 1
        return str(self.group)


def to_xml(
    labels: LabelSet,
    report: Report,
    frames: Array,
    names: list[str],
    *,
    clip: bool = True,
    task_name: str = "deepen-export",
) -> str:
    """The ``<annotations>`` document as text, without the XML declaration (see :func:`write`)."""
    unknown = prep.report_unknown_sizes(
        labels, frames, report, "width/height written as 0, labels not clipped"
    )
    shapes = _Shapes(labels)
    _add_boxes(labels, report, frames, clip, shapes)
    _add_polygons(labels, report, frames, clip, shapes)
    on = np.zeros(len(labels.frames), dtype=bool)
    on[frames] = True
    _add_polylines(labels, report, on, clip, shapes)
    _add_points_and_tags(labels, report, on, shapes)
    tracks = _tracks(labels, frames, shapes.by_frame)
    out = [_meta_text(labels, frames, unknown, task_name, bool(tracks))]
    n_shapes = _image_texts(labels, frames, names, unknown, shapes.by_frame, out)
    n_track_shapes = 0
    for tid, (tag, label, keyframes) in enumerate(tracks):
        out.append(f'\n  <track id="{tid}" label="{label}" source="manual">')
        for k, outside, head, kids in keyframes:
            lead = f'frame="{k}" outside="{outside}" occluded="0" keyframe="1" z_order="0"'
            out.append(f"\n    <{tag} {lead} {head}>{kids}\n    </{tag}>")
            n_track_shapes += 1 - outside
        out.append("\n  </track>")
    out.append("\n</annotations>")
    report.written.update({"images": len(frames), "shapes": n_shapes + n_track_shapes})
    if tracks:
        report.written["tracks"] = len(tracks)
    return "".join(out)


def _meta_text(
    labels: LabelSet, frames: Array, unknown: Array, task_name: str, tracks: bool
) -> str:
    """``<annotations>`` up to ``<meta>`` included (left open for the images)."""
    f = labels.frames
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for tag, text in (
        ("name", task_name),
        ("size", str(len(frames))),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("flipped", "False"),
    ):
        ET.SubElement(task, tag).text = text
    task.append(_labels_meta(labels))
    if tracks:
        # readers size track shapes by the task's frame size (datumaro refuses tracks without)
        known = [k for k, fr in enumerate(frames.tolist()) if not unknown[k]]
        if known:
            size = ET.SubElement(task, "original_size")
            ET.SubElement(size, "width").text = str(int(f.width[frames[known[0]]]))
            ET.SubElement(size, "height").text = str(int(f.height[frames[known[0]]]))
    # the images follow <meta>: the small head is serialised as a tree, then left open
    return xml_text(root).removesuffix("\n</annotations>")


def _image_texts(
    labels: LabelSet,
    frames: Array,
    names: list[str],
    unknown: Array,
    shapes: dict[int, list[_Shape]],
    out: list[str],
) -> int:
    """Append each ``<image>`` with its shapes to ``out``; returns the number of shapes."""
    f = labels.frames
    n_shapes = 0
    for k, fr in enumerate(frames.tolist()):
        attrib = {
            "id": str(k),
            "name": names[k],
            "width": str(0 if unknown[k] else int(f.width[fr])),
            "height": str(0 if unknown[k] else int(f.height[fr])),
            "deepen_file_id": str(f.file_id[fr]),
            "deepen_sensor_id": str(f.sensor_id[fr]),
            "deepen_dataset_id": str(f.dataset_id[fr]),
            "deepen_status": prep.STATUS_NAMES.get(int(f.status[fr]), "unknown"),
        }
        out.append("\n  <image")
        out.extend(f' {a}="{_xml_attr(v)}"' for a, v in attrib.items())
        items = sorted(shapes.get(fr, []), key=lambda t: (t[0], t[1]))
        if items:
            out.append(">")
            out.extend(f"\n    {_shape(*t[2:6])}" for t in items)
            out.append("\n  </image>")
        else:
            out.append(" />")
        n_shapes += len(items)
    return n_shapes


def _add_boxes(
    labels: LabelSet, report: Report, frames: Array, clip: bool, shapes: _Shapes
) -> None:
    pb = prep.prepare_boxes(labels, report, frames, clip=clip)
    b = labels.boxes
    t = np.array(_nums(pb.xyxy), dtype=object).reshape(-1, 4)
    heads = 'xtl="' + t[:, 0] + '" ytl="' + t[:, 1] + '" xbr="' + t[:, 2] + '" ybr="' + t[:, 3]
    cols = zip(
        pb.rows.tolist(),
        b.frame[pb.rows].tolist(),
        b.category[pb.rows].tolist(),
        (heads + '"').tolist(),
        _children(b, pb.rows),
        strict=True,
    )
    for r, fr, c, head, kids in cols:
        shapes.add(fr, (0, r, "box", shapes.cats[c], head, kids, 1))


def _add_polygons(
    labels: LabelSet, report: Report, frames: Array, clip: bool, shapes: _Shapes
) -> None:
    pp = prep.prepare_polygons(labels, report, frames, clip=clip)
    p = labels.polygons
    if not len(pp.rows):
        return
    parts, part_label = shapely.get_parts(pp.geoms, return_index=True)
    holes = np.bincount(
        part_label, weights=shapely.get_num_interior_rings(parts), minlength=len(pp.rows)
    )
    filled = "polygon holes filled (a CVAT polygon has no holes)"
    record(report, labels, "polygons", pp.rows[holes > 0], "changed", filled)
    coords, ring = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    last = np.r_[ring[1:] != ring[:-1], True]
    coords, ring = coords[~last], ring[~last]
    starts = np.flatnonzero(np.diff(ring, prepend=-1))
    texts_ = _points_texts(coords, np.r_[starts, len(ring)])
    part_of_chunk = ring[starts]
    n_parts = np.bincount(part_label, minlength=len(pp.rows)).tolist()
    rows = pp.rows.tolist()
    kids = _children(p, pp.rows)
    groups: dict[int, str] = {}
    for k, text in zip(part_label[part_of_chunk].tolist(), texts_, strict=True):
        r = rows[k]
        head = f'points="{text}"'
        if n_parts[k] > 1:
            if k not in groups:
                groups[k] = shapes.next_group()
            head += f' group_id="{groups[k]}"'
        label = shapes.cats[p.category[r]]
        shapes.add(int(p.frame[r]), (1, r, "polygon", label, head, kids[k], n_parts[k]))


def _add_polylines(
    labels: LabelSet, report: Report, on: Array, clip: bool, shapes: _Shapes
) -> None:
    pl = labels.polylines
    line_rows, line_parts = _clip_polylines(labels, report, np.flatnonzero(on[pl.frame]), clip)
    kids_of = _children(pl, np.asarray(line_rows, dtype=np.int64), label_type=True)
    for r, parts_xy, kids in zip(line_rows, line_parts, kids_of, strict=True):
        gid = shapes.next_group() if len(parts_xy) > 1 else None
        label = shapes.cats[pl.category[r]]
        for text in parts_xy:
            head = f'points="{text}"'
            if gid:
                head += f' group_id="{gid}"'
            shapes.add(int(pl.frame[r]), (2, r, "polyline", label, head, kids, len(parts_xy)))


def _add_points_and_tags(labels: LabelSet, report: Report, on: Array, shapes: _Shapes) -> None:
    pt = labels.points
    point_texts = _points_texts(pt.coords, pt.offsets)
    rows = np.flatnonzero(on[pt.frame])
    empty = pt.offsets[rows + 1] == pt.offsets[rows]
    record(report, labels, "points", rows[empty], "dropped", "point label has no points")
    rows = rows[~empty]
    for r, kids in zip(rows.tolist(), _children(pt, rows), strict=True):
        head = f'points="{point_texts[r]}"'
        shapes.add(int(pt.frame[r]), (3, r, "points", shapes.cats[pt.category[r]], head, kids, 1))
    sc = labels.scenes
    rows = np.flatnonzero(on[sc.frame])
    for r, kids in zip(rows.tolist(), _children(sc, rows), strict=True):
        shapes.add(int(sc.frame[r]), (4, r, "tag", shapes.cats[sc.category[r]], "", kids, 1))


def _shape(tag: str, label: str, head: str, children: str) -> str:
    if tag == "tag":
        return f'<tag label="{label}" source="manual">{children}\n    </tag>'
    return (
        f'<{tag} label="{label}" source="manual" occluded="0" z_order="0" {head}>'
        f"{children}\n    </{tag}>"
    )


_TABLES = ("boxes", "polygons", "polylines", "points")


def _tracks(
    labels: LabelSet,
    frames: Array,
    shapes: dict[int, list[tuple[int, int, str, str, str, str, int]]],
) -> list[tuple[str, str, list[tuple[int, int, str, str]]]]:
    """Take the shapes of labels seen on several images out of ``shapes``, as tracks.

    A track is one label id of one kind on images of one sensor of one dataset, with exactly one
    one-part shape on each image; returns ``(tag, label, [(image id, outside, head, kids)])``.
    """
    f = labels.frames
    image_of = {fr: k for k, fr in enumerate(frames.tolist())}
    seen: dict[tuple[str, str, int, str], list[tuple[int, tuple[Any, ...]]]] = {}
    bad: set[tuple[str, str, int, str]] = set()
    for fr, items in shapes.items():
        for t in items:
            kind, row = t[0], t[1]
            if kind > 3:
                continue
            lid = str(labels.table(_TABLES[kind]).label_id[row])  # type: ignore[attr-defined]
            key = (str(f.dataset_id[fr]), str(f.sensor_id[fr]), kind, lid)
            if t[6] != 1 or any(k == image_of[fr] for k, _ in seen.get(key, [])):
                bad.add(key)
            seen.setdefault(key, []).append((image_of[fr], t))
    out = []
    taken: set[tuple[int, int]] = set()  # (kind, row) written in a track
    for key in sorted(seen, key=lambda k: min(i for i, _ in seen[k])):
        entries = sorted(seen[key], key=lambda e: e[0])
        if key in bad or len(entries) < 2:
            continue
        keyframes = []
        for j, (k, t) in enumerate(entries):
            keyframes.append((k, 0, t[4], t[5]))
            taken.add((t[0], t[1]))
            nxt = entries[j + 1][0] if j + 1 < len(entries) else None
            if (nxt is None or nxt > k + 1) and k + 1 < len(frames):
                keyframes.append((k + 1, 1, t[4], ""))  # out of view until the next keyframe
        out.append((entries[0][1][2], entries[0][1][3], keyframes))
    for fr in list(shapes):
        shapes[fr] = [t for t in shapes[fr] if (t[0], t[1]) not in taken]
    return out


def _clip_polylines(
    labels: LabelSet, report: Report, rows: Array, clip: bool
) -> tuple[list[int], list[list[str]]]:
    """Rows of ``labels.polylines`` kept and the ``x,y;x,y`` text of each part, clipped."""
    pl = labels.polylines
    part_label = np.repeat(np.arange(len(pl)), np.diff(pl.offsets))
    if not clip or not len(rows):
        texts_ = _points_texts(pl.coords[:, :2], pl.part_offsets)
        per: dict[int, list[str]] = {}
        for part, lab in enumerate(part_label.tolist()):
            per.setdefault(lab, []).append(texts_[part])
        return rows.tolist(), [per.get(r, []) for r in rows.tolist()]
    w = labels.frames.width[pl.frame[rows]].astype(np.float64)
    h = labels.frames.height[pl.frame[rows]].astype(np.float64)
    geoms, has = _polyline_geoms(pl, rows, part_label)
    known = (w > 0) & (h > 0)
    box = shapely.box(0, 0, np.where(known, w, 1), np.where(known, h, 1))
    cut = np.where(known & has, shapely.intersection(geoms, box), geoms)
    changed = known & has & ~shapely.equals(cut, geoms)
    parts, of = shapely.get_parts(cut[has], return_index=True)
    of = np.flatnonzero(has)[of]
    line = shapely.get_type_id(parts) == 1  # LineStrings; touching points are left out
    parts, of = parts[line], of[line]
    xy, idx = shapely.get_coordinates(parts, return_index=True)
    offsets = np.r_[0, np.cumsum(np.bincount(idx, minlength=len(parts)))]
    texts_ = _points_texts(xy, offsets)
    per = {}
    for k, text in zip(of.tolist(), texts_, strict=True):
        per.setdefault(k, []).append(text)
    gone = np.array([k not in per for k in range(len(rows))], dtype=bool)
    clipped = "polyline clipped to the image"
    record(report, labels, "polylines", rows[changed & ~gone], "clipped", clipped)
    outside = "polyline lies outside the image or has fewer than 2 points"
    record(report, labels, "polylines", rows[gone], "dropped", outside)
    kept = np.flatnonzero(~gone)
    return rows[kept].tolist(), [per[k] for k in kept.tolist()]


def _polyline_geoms(pl: Polylines, rows: Array, part_label: Array) -> tuple[Array, Array]:
    """A MultiLineString of the parts of 2+ points of each row (None without), and which have one."""
    n_pts = np.diff(pl.part_offsets)
    pos = np.full(len(pl), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    ok = (pos[part_label] >= 0) & (n_pts >= 2)
    pt_part = np.repeat(np.arange(len(n_pts)), n_pts)
    sel = ok[pt_part]
    lines = np.full(len(n_pts), None, dtype=object)
    if sel.any():
        # shapely wants dense indices (0, 1, ... each present): renumber the kept parts
        dense = np.unique(pt_part[sel], return_inverse=True)[1]
        lines[ok] = shapely.linestrings(pl.coords[:, :2][sel], indices=dense)
    geoms = np.full(len(rows), None, dtype=object)
    has = np.zeros(len(rows), dtype=bool)
    owner = pos[part_label[ok]]
    has[owner] = True
    multi = (
        shapely.multilinestrings(lines[ok], indices=np.unique(owner, return_inverse=True)[1])
        if ok.any()
        else []
    )
    geoms[np.unique(owner)] = multi
    return geoms, has


def _attribute(name: str, value: str) -> str:
    name = _xml_attr(name)
    if not value:
        return f'{_SHAPE_PAD}<attribute name="{name}" />'
    return f'{_SHAPE_PAD}<attribute name="{name}">{xml_escape_text(value)}</attribute>'


def _attribute_of(name: str, value: Any) -> str:
    return _attribute(name, _value(value))


_PLAIN_XML = re.compile(r"[^&<>]*")


def _children(t: Any, rows: Array, *, label_type: bool = False) -> list[str]:
    """The ``<attribute>`` children of each row in ``rows``, as text, column by column
    (attribute values formatted once per distinct value)."""
    out = np.full(len(rows), "", dtype=object)
    for k, col in t.attributes.items():
        out = out + texts_by_value(col[rows].tolist(), functools.partial(_attribute_of, k))
    lids = [str(v) for v in t.label_id[rows].tolist()]
    text = np.empty(len(lids), dtype=object)
    if all(lids) and _PLAIN_XML.fullmatch("".join(lids)):  # nothing to escape, none empty
        text[:] = lids
        text = f'{_SHAPE_PAD}<attribute name="deepen_label_id">' + text + "</attribute>"
    else:
        text[:] = [_attribute("deepen_label_id", v) for v in lids]
    out = out + text
    track = t.track[rows]
    head = f'{_SHAPE_PAD}<attribute name="deepen_track">'
    out = out + np.where(track >= 0, head + track.astype(str).astype(object) + "</attribute>", "")
    if label_type:
        kinds = [str(v) for v in t.label_type[rows].tolist()]
        out = out + texts_by_value(kinds, functools.partial(_attribute, "deepen_label_type"))
    result: list[str] = out.tolist()
    return result


def _labels_meta(labels: LabelSet) -> ET.Element:
    keys: list[dict[str, None]] = [{} for _ in labels.categories]
    for kind in ("boxes", "polygons", "polylines", "points", "scenes"):
        t = labels.table(kind)
        for k, v in t.attributes.items():  # type: ignore[attr-defined]
            used = np.array([x is not None for x in v], dtype=bool)
            for c in np.unique(t.category[used]).tolist():  # type: ignore[attr-defined]
                keys[c][k] = None
    el = ET.Element("labels")
    for name, ks in zip(labels.categories, keys, strict=True):
        lab = ET.SubElement(el, "label")
        ET.SubElement(lab, "name").text = name
        ET.SubElement(lab, "type").text = "any"
        attrs = ET.SubElement(lab, "attributes")
        for k in [*ks, *_RESERVED]:
            a = ET.SubElement(attrs, "attribute")
            for tag, text in (
                ("name", k),
                ("mutable", "False"),
                ("input_type", "text"),
                ("default_value", ""),
                ("values", ""),
            ):
                ET.SubElement(a, tag).text = text
    return el


# -- reading -------------------------------------------------------------------------------


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read CVAT for images 1.1 XML (a file or a folder holding ``annotations.xml``).

    Elements sharing ``deepen_label_id`` (or ``group_id``) on one image are joined back into
    one multi-part label; each visible keyframe of a ``<track>`` is a label on its image.
    Attribute values come back as strings.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[20], height=[10]),
    ...     categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 1, 3.5, 4]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "cvat")
    >>> _ = write(labels, out)
    >>> read(out).boxes.label_id.tolist()
    ['car:1']
    """
    path = Path(source)
    if path.is_dir():
        subsets = sorted(p for p in path.glob("*.xml") if p.name != ANNOTATIONS)
        if not (path / ANNOTATIONS).exists() and subsets:  # a split: one file per subset
            return LabelSet.concat([read(p) for p in subsets])
        path = path / ANNOTATIONS
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConversionError(f"cannot read CVAT file {path}: {exc}", format=FORMAT) from exc
    cats = [lab.findtext("name") or "" for lab in root.iterfind("meta/task/labels/label")]
    status_of = {v: k for k, v in prep.STATUS_NAMES.items()}
    images = root.findall("image")
    frames = Frames.from_columns(
        file_id=[im.get("deepen_file_id") or im.get("name") or "" for im in images],
        sensor_id=[im.get("deepen_sensor_id", "") for im in images],
        dataset_id=[im.get("deepen_dataset_id", "") for im in images],
        width=[int(im.get("width") or 0) or -1 for im in images],
        height=[int(im.get("height") or 0) or -1 for im in images],
        status=[
            status_of.get(im.get("deepen_status", ""), int(FrameStatus.UNKNOWN)) for im in images
        ],
    )
    kinds = _read_shapes(root, images, cats)
    return _label_set(frames, tuple(cats), kinds)


_Entries = dict[str, dict[tuple[int, str], dict[str, Any]]]


def _read_shapes(root: ET.Element, images: list[ET.Element], cats: list[str]) -> _Entries:
    """Every shape of the images and visible track keyframes, joined per (image, label id)."""
    kinds: _Entries = {k: {} for k in ("box", "polygon", "polyline", "points", "tag")}
    placed: list[tuple[int, int, ET.Element, str | None]] = [  # image, position, shape, label
        (i, j, el, None) for i, im in enumerate(images) for j, el in enumerate(im)
    ]
    by_id = {int(im.get("id", i)): i for i, im in enumerate(images)}
    for t, tr in enumerate(root.iterfind("track")):
        for j, el in enumerate(tr):
            k = by_id.get(int(el.get("frame", -1)))
            if el.get("outside") != "1" and k is not None:
                placed.append((k, 10_000 + 1000 * t + j, el, tr.get("label", "")))
    for i, j, el, track_label in placed:
        if el.tag not in kinds:
            continue
        name = track_label if track_label is not None else el.get("label", "")
        if name not in cats:
            cats.append(name)
        attrs = {a.get("name", ""): a.text or "" for a in el.iterfind("attribute")}
        lid = attrs.pop("deepen_label_id", None) or (
            f"group:{el.get('group_id')}" if el.get("group_id") else f"{name}:{i}.{j}"
        )
        track = int(attrs.pop("deepen_track", "") or attrs.pop("track_id", "") or -1)
        ltype = attrs.pop("deepen_label_type", "lane")
        entry = kinds[el.tag].setdefault(
            (i, lid),
            {
                "frame": i,
                "category": cats.index(name),
                "label_id": lid,
                "track": track,
                "attrs": attrs,
                "parts": [],
                "label_type": ltype,
            },
        )
        if el.tag == "box":
            entry["parts"].append([float(el.get(k, "nan")) for k in ("xtl", "ytl", "xbr", "ybr")])
        elif el.tag != "tag":
            pts = el.get("points", "")
            entry["parts"].append([[float(v) for v in p.split(",")] for p in pts.split(";") if p])
    return kinds


def _common(entries: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for e in entries for k in e["attrs"]))
    return {
        "frame": [e["frame"] for e in entries],
        "category": [e["category"] for e in entries],
        "label_id": [e["label_id"] for e in entries],
        "track": [e["track"] for e in entries],
        "attributes": {k: [e["attrs"].get(k) for e in entries] for k in keys},
    }


def _ragged(entries: list[dict[str, Any]]) -> tuple[Array, Array, Array]:
    parts = [p for e in entries for p in e["parts"]]
    return (
        np.cumsum([0] + [len(e["parts"]) for e in entries]),
        np.cumsum([0] + [len(p) for p in parts]),
        np.asarray([xy for p in parts for xy in p], dtype=np.float64).reshape(-1, 2),
    )


def _label_set(frames: Frames, cats: tuple[str, ...], kinds: _Entries) -> LabelSet:
    bx = list(kinds["box"].values())
    boxes = Boxes.from_columns(
        **_common(bx),
        xyxy=np.asarray([e["parts"][0] for e in bx], dtype=np.float64).reshape(-1, 4),
    )
    pg = list(kinds["polygon"].values())
    g_off, g_roff, g_xy = _ragged(pg)
    polygons = Polygons.from_columns(**_common(pg), offsets=g_off, ring_offsets=g_roff, coords=g_xy)
    pl = list(kinds["polyline"].values())
    l_off, l_poff, l_xy = _ragged(pl)
    polylines = Polylines.from_columns(
        **_common(pl),
        label_type=[e["label_type"] for e in pl],
        offsets=l_off,
        part_offsets=l_poff,
        coords=l_xy,
    )
    ps = list(kinds["points"].values())
    point_xy = [np.asarray(e["parts"][0], dtype=np.float64).reshape(-1, 2) for e in ps]
    points = Points.from_columns(
        **_common(ps),
        offsets=np.cumsum([0] + [len(p) for p in point_xy]),
        coords=np.concatenate(point_xy) if point_xy else np.zeros((0, 2)),
    )
    scenes = Scenes.from_columns(**_common(list(kinds["tag"].values())))
    return LabelSet(
        frames=frames,
        categories=cats,
        boxes=boxes,
        polygons=polygons,
        polylines=polylines,
        points=points,
        scenes=scenes,
        meta={"source_format": FORMAT},
    )
