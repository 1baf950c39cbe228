"""Ultralytics YOLO detection / segmentation labels: one ``.txt`` per image plus ``data.yaml``.

Output folder (the layout Ultralytics and datumaro's ``yolo`` read)::

    data.yaml                 train/val: images, names: {0: car, ...}; no ``path:`` key, so
                              Ultralytics resolves the folders from the yaml's own folder,
                              whatever the current directory
    images/<name>             the images, with copy_images=True
    labels/<stem>.txt         one line per object
    frames.json               sidecar: image sizes, status and label ids of each line (for read)
    report.json

With ``split="train:0.8,val:0.2"`` images and labels go to ``images/<subset>/`` and
``labels/<subset>/`` and ``data.yaml`` names each subset (``train``, ``val``, ``test``).

Image names are flat: a file id's folders are joined with ``__`` (``camera_0/0000.png`` ->
``camera_0__0000.png``). Ultralytics finds a label by replacing the *last* ``/images/`` of the
image path with ``/labels/``, so any ``images`` folder inside a name sent it looking in the
wrong place (silently: every image counted as background); datumaro matches images and labels
by file stem one folder deep. Flat names satisfy both. ``frames.json`` maps each name back to
its file id. ``layout="nested"`` keeps the earlier layout (``labels/<file_id>.txt`` with the
file id's folders), which Ultralytics reads only when no folder is named ``images``.

Conventions
-----------
- Class ids are 0-based in ``LabelSet.categories`` order (every category is in ``names``).
- Coordinates are normalised by the image width (x) and height (y), written with 6 decimals
  (:func:`converters._numbers.fixed`); labels are clipped to the image first, so every value
  is in ``[0, 1]``.
- ``task="detect"``: ``class x_centre y_centre width height``. Polygons are written as the box
  of their final (repaired, clipped) geometry, reported as changed.
- ``task="segment"``: ``class x1 y1 ... xn yn`` (one polygon). Boxes become their 4 corners;
  a multi-part polygon becomes one line per part and holes are filled (YOLO has no holes);
  both are reported as changed.
- Images with no labels get an empty ``.txt`` (a negative example); images of unknown size get
  no file and are reported (YOLO cannot be normalised without a size).
- Frames whose review status says *not labelled yet* (and that carry no label) get no file
  and are reported, unless ``include_unlabelled=True``: an empty file would claim "no objects".
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
import yaml

from converters import _prepare2d as prep
from converters._base import codes_by_value, json_bytes, pylist, record, write_files
from converters._dataset import (
    ImageSource,
    assign_splits,
    parse_split,
    place_images,
    source_names,
)
from converters._numbers import fixed_cells, int_cells, join_cells
from converters._writer import Output, writer
from deepen_export import geometry as geo
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, FrameStatus, LabelSet, Polygons
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "yolo"
Array = npt.NDArray[Any]
Task = Literal["detect", "segment"]
Layout = Literal["flat", "nested"]


def _label_path(name: str, subset: str = "") -> str:
    """``labels/[<subset>/]<name>.txt``: where Ultralytics looks for ``images/[<subset>/]<name>``."""
    if name.startswith("/") or not _PLAIN_FOLDER.fullmatch(subset):
        return str(PurePosixPath("labels", subset, PurePosixPath(name).with_suffix(".txt")))
    return ("labels/" + subset + "/" if subset else "labels/") + prep.with_suffix(name, ".txt")


_PLAIN_FOLDER = re.compile(r"[\w-]*")  # a subset name pathlib would keep as it is


def _joined(subset: str, name: str) -> str:
    """``str(PurePosixPath(subset, name))``, without a path object for plain names."""
    odd = "//" in name or "/./" in name or name.startswith(("./", "/")) or name in ("", ".")
    if odd or name.endswith(("/", "/.")) or not _PLAIN_FOLDER.fullmatch(subset):
        return str(PurePosixPath(subset, name))  # pathlib normalises these
    return subset + "/" + name if subset else name


def _flat(name: str) -> str:
    return name.replace("/", "__")


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    task: Task = "detect",
    clip: bool = True,
    include_unlabelled: bool = False,
    layout: Layout = "flat",
    split: str | dict[str, float] | None = None,
    seed: int = 0,
    copy_images: bool = False,
    images: str | os.PathLike[str] | ImageSource | None = None,
) -> None:
    """Write ``labels`` as a YOLO dataset folder at ``dest``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds YOLO cannot hold.
    task : {"detect", "segment"}
        Line syntax (see the module docstring).
    include_unlabelled : bool
        Also write frames whose status says they are not labelled yet (skipped and reported by
        default: an empty file would claim the image has no objects).
    clip : bool
        Clip to the image before normalising (values outside [0, 1] otherwise).
    layout : {"flat", "nested"}
        Flat image names (default, see the module docstring) or the file ids' folders.
    split : str or dict, optional
        ``"train:0.8,val:0.2"``: per-subset folders (deterministic by ``seed`` and file id,
        sequences kept whole; see :mod:`converters._dataset`). Needs ``train`` and ``val``.
    seed : int
        Seed of the split.
    copy_images : bool
        Put the images into ``images/`` (hard links where possible), from ``images``.
    images : path, optional
        Folder or zip holding the images (the CLI passes ``--images`` or the snapshot's media).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[15], height=[10]),
    ...     categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 2, 4, 4]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "yolo")
    >>> _ = write(labels, out)
    >>> (out / "labels" / "a.txt").read_text()
    '0 0.133333 0.300000 0.266667 0.200000\\n'
    """
    if task not in ("detect", "segment"):
        raise ValueError(f"task must be 'detect' or 'segment', got {task!r}")
    if layout not in ("flat", "nested"):
        raise ValueError(f"layout must be 'flat' or 'nested', got {layout!r}")
    subsets = parse_split(split)
    if subsets and not {"train", "val"} <= {n for n, _ in subsets}:
        raise ConversionError("yolo: split needs a train and a val subset (data.yaml wants both)")
    report, tmp = out.report, out.folder
    plan = _plan(labels, report, tmp, include_unlabelled, layout, subsets, seed)
    written = plan.written
    lines = _lines(labels, report, written, task, clip)
    files = [_label_path(n, s) for n, s in zip(plan.names, plan.subsets, strict=True)]
    write_files(tmp, files, lines.pieces, description="YOLO label files")
    (tmp / "images").mkdir()
    for name, _ in subsets:  # every subset data.yaml names exists, even when empty
        (tmp / "images" / name).mkdir()
        (tmp / "labels" / name).mkdir(parents=True, exist_ok=True)
    if copy_images:
        src_names = source_names(labels, written)
        fids = labels.frames.file_id[written].tolist()
        pairs = [
            (src, str(PurePosixPath("images", s, n)), str(fid))
            for src, s, n, fid in zip(src_names, plan.subsets, plan.names, fids, strict=True)
        ]
        report.written["image_files"] = place_images(images, pairs, tmp, report)
    _data_yaml(labels, subsets, tmp)
    _sidecar(labels, plan, lines, task, layout, bool(subsets), tmp)
    report.written.update({"images": len(written), "objects": lines.count})
    report.files = ["data.yaml", "frames.json", *files, "report.json"]


@dataclass(frozen=True)
class _Plan:
    """The frames written (``written``, in order), each one's name and subset folder."""

    written: Array  # those of known size: the ones that get a file
    names: list[str]
    subsets: list[str]


def _plan(
    labels: LabelSet,
    report: Report,
    tmp: Path,
    include_unlabelled: bool,
    layout: Layout,
    subsets: list[tuple[str, float]],
    seed: int,
) -> _Plan:
    frames = prep.image_frames(labels)
    frames = prep.skip_unlabelled(labels, frames, report, include_unlabelled, "label file")
    names = prep.image_names(labels, frames)
    prep.check_paths(names, tmp / "images")  # also where copies are read from
    if layout == "flat":
        names = [_flat(n) for n in names]
    subset = assign_splits(labels, frames, subsets, int(seed)) if subsets else [""] * len(names)
    prep.check_paths(
        [_joined(s, n) for s, n in zip(subset, names, strict=True)],
        tmp / "labels",
        ".txt",
        [str(x) for x in labels.frames.file_id[frames]],
    )
    unknown = prep.report_unknown_sizes(
        labels,
        frames,
        report,
        "not written: YOLO needs the image size to normalise (pass --images)",
        drop_labels=True,
    )
    keep = np.flatnonzero(~unknown).tolist()
    return _Plan(frames[~unknown], [names[k] for k in keep], [subset[k] for k in keep])


def _data_yaml(labels: LabelSet, subsets: list[tuple[str, float]], tmp: Path) -> None:
    # no "path:": Ultralytics then resolves the folders from the yaml's folder (a relative
    # path: would be resolved against the current directory)
    data: dict[str, Any] = {"train": "images", "val": "images"}
    if subsets:
        data = {n: f"images/{n}" for n, _ in subsets}
    data["names"] = dict(enumerate(labels.categories))
    (tmp / "data.yaml").write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )


def _sidecar(
    labels: LabelSet,
    plan: _Plan,
    lines: _Lines,
    task: Task,
    layout: Layout,
    split: bool,
    tmp: Path,
) -> None:
    """``frames.json``: each file's image, sizes, status and the label of each line.

    The document is written as ``dump_json(..., indent=1)`` writes it; the ``labels`` lists,
    one entry per line of every file, are spliced in as text made column by column
    (:func:`_labels_text`) instead of one dict per line, and written a chunk of files at a
    time, so the whole document (hundreds of MB at a million labels) is never held.
    """
    f = labels.frames
    w = plan.written
    cols = zip(
        plan.names,
        plan.subsets,
        f.file_id[w].tolist(),
        f.sensor_id[w].tolist(),
        f.dataset_id[w].tolist(),
        f.index[w].tolist(),
        f.width[w].tolist(),
        f.height[w].tolist(),
        f.status[w].tolist(),
        strict=True,
    )
    sidecar = [
        {
            "name": name,
            **({"subset": subset} if split else {}),
            "file_id": str(fid),
            "sensor_id": str(sid),
            "dataset_id": str(did),
            "index": int(index),
            "width": int(width),
            "height": int(height),
            "status": prep.STATUS_NAMES.get(int(st), "unknown"),
            "labels": [],
        }
        for name, subset, fid, sid, did, index, width, height, st in cols
    ]
    doc = json_bytes({"task": task, "layout": layout, "frames": sidecar}, indent=True)
    # a key at this depth is its own line, and no JSON string holds a raw newline: each
    # occurrence is one frame's empty list
    cut = doc.decode("utf-8").split(_LABELS_KEY + "[]")
    if len(cut) != len(sidecar) + 1:  # pragma: no cover - the layout above guarantees it
        raise AssertionError("frames.json: unexpected layout")
    del doc, sidecar
    tables: list[tuple[Boxes | Polygons, str]] = [
        (labels.boxes, "box"),
        (labels.polygons, "polygon"),
    ]
    with open(tmp / "frames.json", "wb") as fh:
        fh.write(cut[0].encode("utf-8"))
        for a in range(0, len(w), _SIDECAR_FILES):
            z = min(a + _SIDECAR_FILES, len(w))
            fh.write(_labels_text(tables, lines, a, z, cut[a + 1 : z + 1]).encode("utf-8"))
        fh.write(b"\n")


_LABELS_KEY = '\n      "labels": '
_SIDECAR_FILES = 4000  # files per piece of frames.json: bounds the text held at once
_ENTRY_HEAD = '\n        {\n          "label_id": "'


def _labels_text(
    tables: list[tuple[Boxes | Polygons, str]], lines: _Lines, a: int, z: int, rests: list[str]
) -> str:
    """Files ``a`` to ``z`` of ``frames.json``: for each, its ``labels`` list (its boxes' entries,
    then its polygons') and the document text that follows it (``rests``)."""
    n_files = z - a
    per_table = []  # (entries, file of each entry, rank within the file's entries of the table)
    for (table, kind), text, first, last in zip(
        tables, lines.texts, lines.first, lines.last, strict=True
    ):
        counts = last[a:z] - first[a:z]
        at = np.repeat(first[a:z] - np.cumsum(counts) + counts, counts)
        pos = np.arange(len(at)) + at  # the lines of these files, file by file
        file = np.repeat(np.arange(n_files), counts)
        rank = pos - np.repeat(first[a:z], counts)
        per_table.append((_label_entries(table, kind, text.row[pos]), file, rank, counts))
    n_entries = sum(c for *_, c in per_table)
    # the pieces of file i: its opening, its entries' pieces, its closing and what follows
    size = 2 + sum(e.shape[1] * c for e, _, _, c in per_table)
    start = np.r_[0, np.cumsum(size)[:-1]]
    flat = np.empty(int(size.sum()), dtype=object)
    has = n_entries > 0
    flat[start] = np.where(has, _LABELS_KEY + "[", _LABELS_KEY + "[]").astype(object)
    flat[start + size - 1] = np.where(has, "\n      ]", "").astype(object) + np.asarray(
        rests, dtype=object
    )
    at = start + 1  # per file, where the entries of the next table go
    for entries, file, rank, counts in per_table:
        k = entries.shape[1]
        entries[(rank == 0) & (at[file] == start[file] + 1), 0] = _ENTRY_HEAD  # first: no ","
        flat[(at[file] + k * rank)[:, None] + np.arange(k)] = entries
        at = at + k * counts
    return "".join(flat.tolist())


def _json_value(v: Any, depth: int) -> str:
    """``v`` as it appears in an indented document at ``depth`` levels (2 spaces each)."""
    text = json_bytes(v, indent=True).decode("utf-8")
    return text.replace("\n", "\n" + "  " * depth) if "\n" in text else text


_PLAIN_TEXT = re.compile(r'[^\x00-\x1f"\\\ud800-\udfff]*')


def _json_inner(values: list[str]) -> list[str]:
    """JSON text of each string (orjson's) without its quotes; plain ones as they are."""
    if _PLAIN_TEXT.fullmatch("".join(values)):  # nothing to escape in any of them
        return values
    return [_json_value(v, 0)[1:-1] for v in values]


def _keyed_value(head: str, v: Any) -> str:
    return head + _json_value(v, 6)


_FEW_COMBOS = 4096  # attribute combinations made as a product rather than found by np.unique


def _label_entries(t: Boxes | Polygons, kind: str, rows: Array) -> Array:
    """The ``labels`` entry of the sidecar for each row in ``rows`` (text at depth 4), as three
    pieces: ``,`` and the entry's opening, its label id (in JSON, without its quotes), and the
    rest (type and attributes).

    The rest is made once per distinct combination of attribute values (attribute columns hold
    few distinct values among many labels).
    """
    ids = _json_inner(list(map(str, t.label_id[rows].tolist())))
    codes = np.zeros(len(rows), dtype=np.int64)
    combos: list[list[str]] = [[]]  # the attribute texts of each combination seen
    for k, col in t.attributes.items():
        head = "\n            " + _json_value(k, 0) + ": "
        value, texts = codes_by_value(pylist(col[rows]), functools.partial(_keyed_value, head))
        m = len(texts)
        if len(combos) * m <= _FEW_COMBOS:  # every combination: no sort of the codes
            codes = codes * m + value
            combos = [[*c, t] for c in combos for t in texts]
        else:  # the combinations that occur
            seen, codes = np.unique(codes * m + value, return_inverse=True)
            combos = [combos[c // m] + [texts[c % m]] for c in seen.tolist()]
    rests = []
    for combo in combos:
        present = [x for x in combo if x]
        attrs = ',\n          "attributes": {' + ",".join(present) + "\n          }"
        rests.append(f'",\n          "type": "{kind}"' + attrs * bool(present) + "\n        }")
    out = np.empty((len(rows), 3), dtype=object)
    out[:, 0] = "," + _ENTRY_HEAD  # the quotes around the label id are in the pieces beside it
    out[:, 1] = ids
    out[:, 2] = np.array(rests, dtype=object)[codes.reshape(-1)] if len(rows) else []
    return out


@dataclass(frozen=True)
class _Lines:
    """The label files' text: ``(buffer, starts, ends)`` pieces (file ``i`` is piece by piece
    ``buf[starts[i]:ends[i]]``: its boxes, then its polygons); per table (boxes, polygons) its
    lines and each file's first and last line + 1 among them; and the number of lines."""

    pieces: list[tuple[Array, Array, Array]]
    texts: list[_Text]
    first: list[Array]
    last: list[Array]
    count: int


@dataclass(frozen=True)
class _Text:
    """Lines of one table, sorted by (frame, row): their bytes, offsets, frame and row."""

    buf: Array
    offsets: Array
    frame: Array
    row: Array


def _lines(labels: LabelSet, report: Report, written: Array, task: Task, clip: bool) -> _Lines:
    on = np.zeros(len(labels.frames), dtype=bool)
    on[written] = True
    texts_ = [_box_lines(labels, report, written, on, task, clip)]
    texts_.append(_polygon_lines(labels, report, written, on, task, clip))
    pieces: list[tuple[Array, Array, Array]] = []
    firsts, lasts = [], []
    for t in texts_:
        # the lines of file i: those of frame written[i] (lines are sorted by frame)
        first = np.searchsorted(t.frame, written, side="left")
        last = np.searchsorted(t.frame, written, side="right")
        pieces.append((t.buf, t.offsets[first], t.offsets[last]))
        firsts.append(first)
        lasts.append(last)
    count = sum(len(t.row) for t in texts_)
    return _Lines(pieces, texts_, firsts, lasts, count)


def _table_lines(cat: Array, vals: Array, frame: Array, row: Array) -> _Text:
    """``class v1 ... vk`` lines (``k`` values each, 6 decimals), formatted column by column."""
    n, k = vals.shape
    cells = fixed_cells(vals, 6)
    cells = cells.reshape(n, k, cells.shape[1])
    parts: list[Array | bytes] = [int_cells(cat)]
    for j in range(k):
        parts += [b" ", cells[:, j]]
    buf, offsets = join_cells([*parts, b"\n"])
    return _Text(buf, offsets, frame, row)


def _by_frame(frame: Array, rows: Array) -> Array:
    """Order of lines sorted by frame, then label row.

    Examples
    --------
    >>> _by_frame(np.array([0, 0, 2]), np.array([1, 4, 5])).tolist()
    [0, 1, 2]
    >>> _by_frame(np.array([2, 0, 0]), np.array([1, 5, 4])).tolist()
    [2, 1, 0]
    """
    if (np.diff(frame) >= 0).all() and (np.diff(rows) > 0).all():  # labels come file by file
        return np.arange(len(frame))
    return np.lexsort((rows, frame))


def _box_lines(
    labels: LabelSet, report: Report, frames: Array, on: Array, task: Task, clip: bool
) -> _Text:
    f, b = labels.frames, labels.boxes
    pb = prep.prepare_boxes(labels, report, frames, clip=clip)
    keep = on[b.frame[pb.rows]]
    rows, xyxy = pb.rows[keep], pb.xyxy[keep]
    if task == "segment":
        record(report, labels, "boxes", rows, "changed", "box written as a 4-point polygon")
    order = _by_frame(b.frame[rows], rows)
    rows, xyxy = rows[order], xyxy[order]
    fr = b.frame[rows]
    w, h = f.width[fr], f.height[fr]
    if task == "detect":
        vals = geo.normalize_boxes(geo.xyxy_to_cxcywh(xyxy), w, h)
    else:
        vals = xyxy[:, [0, 1, 2, 1, 2, 3, 0, 3]] / np.tile(np.stack([w, h], axis=1), 4)
    return _table_lines(b.category[rows], vals, fr, rows)


def _polygon_lines(
    labels: LabelSet, report: Report, frames: Array, on: Array, task: Task, clip: bool
) -> _Text:
    f, p = labels.frames, labels.polygons
    pp = prep.prepare_polygons(labels, report, frames, clip=clip)
    keep = on[p.frame[pp.rows]]
    rows, geoms = pp.rows[keep], pp.geoms[keep]
    if task == "detect":
        record(report, labels, "polygons", rows, "changed", "polygon written as its bounding box")
    elif len(geoms):
        _report_segment_changes(labels, report, rows, geoms)
    order = _by_frame(p.frame[rows], rows)
    rows, geoms = rows[order], geoms[order]
    fr = p.frame[rows]
    w, h = f.width[fr].astype(np.float64), f.height[fr].astype(np.float64)
    if task == "detect":
        bounds = shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4))
        vals = geo.normalize_boxes(geo.xyxy_to_cxcywh(bounds), w, h)
        return _table_lines(p.category[rows], vals, fr, rows)
    return _segment_lines(p.category[rows], geoms, w, h, fr, rows)


def _report_segment_changes(labels: LabelSet, report: Report, rows: Array, geoms: Array) -> None:
    parts, part_label = shapely.get_parts(geoms, return_index=True)
    n_parts = np.bincount(part_label, minlength=len(geoms))
    n_holes = np.bincount(
        part_label, weights=shapely.get_num_interior_rings(parts), minlength=len(geoms)
    )
    multi = "multi-part polygon written as one line per part"
    record(report, labels, "polygons", rows[n_parts > 1], "changed", multi)
    holes = "polygon holes filled (YOLO has no holes)"
    record(report, labels, "polygons", rows[n_holes > 0], "changed", holes)


def _segment_lines(
    cat: Array, geoms: Array, w: Array, h: Array, frame: Array, rows: Array
) -> _Text:
    """One ``class x1 y1 ... xn yn`` line per part (exterior ring without its closing vertex)."""
    if not len(geoms):
        return _table_lines(cat[:0], np.zeros((0, 0)), frame, rows)
    parts, part_label = shapely.get_parts(geoms, return_index=True)
    coords, ring = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    last = np.r_[ring[1:] != ring[:-1], True]  # drop each ring's closing vertex
    coords, ring = coords[~last], ring[~last]
    lab = part_label[ring]
    values = fixed_cells(coords / np.stack([w[lab], h[lab]], axis=1), 6)
    n_vertices = np.bincount(ring, minlength=len(parts))
    line_part = np.flatnonzero(n_vertices)  # parts with no vertex get no line
    classes = int_cells(cat[part_label[line_part]])
    # one token per row: each line's class, then its values; a space after each token but
    # the last of a line, which gets the newline
    n_lines, n_values = len(line_part), len(values)
    width = max(values.shape[1], classes.shape[1])
    tokens = np.zeros((n_lines + n_values, width + 1), dtype=np.uint8)
    starts = np.arange(n_lines) + 2 * np.r_[0, np.cumsum(n_vertices[line_part])[:-1]]
    is_class = np.zeros(len(tokens), dtype=bool)
    is_class[starts] = True
    tokens[is_class, width - classes.shape[1] : width] = classes
    tokens[~is_class, width - values.shape[1] : width] = values
    tokens[:, width] = ord(" ")
    tokens[np.r_[starts[1:], len(tokens)] - 1, width] = ord("\n")
    buf, offsets = join_cells([tokens])
    owner = part_label[line_part]
    return _Text(buf, offsets[np.r_[starts, len(tokens)]], frame[owner], rows[owner])


# -- reading -------------------------------------------------------------------------------

_BoxRow = tuple[int, int, list[float], dict[str, Any]]
_PolyRows = dict[tuple[int, str], tuple[int, list[list[float]], dict[str, Any]]]


def read(
    source: str | os.PathLike[str], /, *, images: str | os.PathLike[str] | None = None
) -> LabelSet:
    """Read a YOLO folder written by :func:`write` (or any YOLO labels folder) into a LabelSet.

    Image sizes, label ids and attributes come from ``frames.json`` when it exists; otherwise
    the images are looked up under ``images`` (or ``<source>/images``) with Pillow. Lines with
    4 values are boxes, longer lines polygons; segment lines of one label written as several
    parts are joined back into one multi-part polygon.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[15], height=[10]),
    ...     categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 2, 4, 4]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "yolo")
    >>> _ = write(labels, out)
    >>> (read(out).boxes.xyxy.round(4) + 0.0).tolist()
    [[0.0, 2.0, 4.0, 4.0]]
    """
    root = Path(source)
    data = yaml.safe_load((root / "data.yaml").read_text(encoding="utf-8")) or {}
    names = data.get("names", {})
    categories = tuple(names[k] for k in sorted(names)) if isinstance(names, dict) else tuple(names)
    side = root / "frames.json"
    if side.exists():
        entries = json.loads(side.read_text(encoding="utf-8"))["frames"]
    else:
        entries = _entries_from_images(root, Path(images) if images else root / "images")
    status_of = {v: k for k, v in prep.STATUS_NAMES.items()}
    frames = Frames.from_columns(
        file_id=[e["file_id"] for e in entries],
        sensor_id=[e.get("sensor_id", "") for e in entries],
        dataset_id=[e.get("dataset_id", "") for e in entries],
        index=[e.get("index", -1) for e in entries],
        width=[e["width"] for e in entries],
        height=[e["height"] for e in entries],
        status=[status_of.get(e.get("status", ""), int(FrameStatus.UNKNOWN)) for e in entries],
    )
    box_rows: list[_BoxRow] = []
    poly_rows: _PolyRows = {}
    for i, e in enumerate(entries):
        _read_file(root, i, e, box_rows, poly_rows)
    boxes = Boxes.from_columns(
        **_common(box_rows),
        xyxy=np.asarray([r[2] for r in box_rows], dtype=np.float64).reshape(-1, 4),
    )
    prow = [(fr, cls, rings, info) for (fr, _), (cls, rings, info) in poly_rows.items()]
    rings_flat = [r for x in prow for r in x[2]]
    polygons = Polygons.from_columns(
        **_common(prow),
        offsets=np.cumsum([0] + [len(x[2]) for x in prow]),
        ring_offsets=np.cumsum([0] + [len(r) // 2 for r in rings_flat]),
        coords=np.asarray([v for r in rings_flat for v in r], dtype=np.float64).reshape(-1, 2),
    )
    return LabelSet(
        frames=frames,
        categories=categories,
        boxes=boxes,
        polygons=polygons,
        meta={"source_format": FORMAT},
    )


def _read_file(
    root: Path, i: int, e: dict[str, Any], box_rows: list[_BoxRow], poly_rows: _PolyRows
) -> None:
    """The lines of image ``i``'s label file, as box rows or polygon rings."""
    rel = _label_path(e.get("name", e["file_id"]), e.get("subset", ""))
    text = (root / rel).read_text(encoding="utf-8")
    infos = e.get("labels", [])
    wh = np.array([e["width"], e["height"]], dtype=np.float64)
    for j, line in enumerate(text.splitlines()):
        parts = line.split()
        if not parts:
            continue
        cls = int(parts[0])
        vals = np.asarray(parts[1:], dtype=np.float64)
        info = (
            infos[j]
            if j < len(infos)
            else {"label_id": f"{i}:{j}", "type": "box" if len(vals) == 4 else "polygon"}
        )
        if len(vals) == 4:
            xyxy = geo.cxcywh_to_xyxy(vals.reshape(1, 4) * np.tile(wh, 2))[0]
            if info.get("type") == "polygon":
                ring = xyxy[[0, 1, 2, 1, 2, 3, 0, 3]].tolist()
                _add_ring(poly_rows, i, cls, ring, info)
            else:
                box_rows.append((i, cls, xyxy.tolist(), info))
        else:
            ring = (vals.reshape(-1, 2) * wh).ravel().tolist()
            if info.get("type") == "box":
                xy = np.reshape(ring, (-1, 2))
                box_rows.append((i, cls, [*xy.min(0).tolist(), *xy.max(0).tolist()], info))
            else:
                _add_ring(poly_rows, i, cls, ring, info)


def _common(rows: list[Any]) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for r in rows for k in r[-1].get("attributes", {})))
    return {
        "frame": [r[0] for r in rows],
        "category": [r[1] for r in rows],
        "label_id": [r[-1]["label_id"] for r in rows],
        "attributes": {k: [r[-1].get("attributes", {}).get(k) for r in rows] for k in keys},
    }


def _add_ring(
    rows: _PolyRows,
    frame: int,
    cls: int,
    ring: list[float],
    info: dict[str, Any],
) -> None:
    key = (frame, info["label_id"])
    if key in rows:
        rows[key][1].append(ring)
    else:
        rows[key] = (cls, [ring], info)


def _entries_from_images(root: Path, images: Path) -> list[dict[str, Any]]:
    from PIL import Image

    entries = []
    labels_dir = root / "labels"
    for txt in sorted(labels_dir.rglob("*.txt")):
        rel = txt.relative_to(labels_dir).with_suffix("")
        found = sorted(images.glob(f"{rel.as_posix()}.*"))
        if not found:
            raise ConversionError(
                f"no image for {txt} under {images}; image sizes are needed", format=FORMAT
            )
        with Image.open(found[0]) as im:
            w, h = im.size
        entries.append(
            {"file_id": found[0].relative_to(images).as_posix(), "width": w, "height": h}
        )
    return entries
