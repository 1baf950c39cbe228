"""KITTI tracking format: ``label_02/%04d.txt``, one file per sequence (= per Deepen dataset).

Output layout::

    dest/
      label_02/0000.txt          frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry
      calib/0000.txt             P0..P3, R_rect, Tr_velo_cam, Tr_imu_velo (tracking key spelling)
      velodyne/0000/000000.bin   float32 N x 4 LiDAR-frame points (when known)
      image_02/0000/000000.png   camera images (when ``media`` / ``images`` is given)
      mapping.json               sequence -> dataset_id, frame -> file_id, track_id -> label_id
      evaluate_tracking.seqmap.training   "0000 empty 000000 <frames>" per sequence (devkit's,
                                 what TrackEval's KITTI loader opens)
      report.json

Everything about a row's numbers (camera frame, dimensions, location, rotation_y, alpha, 2D box,
occlusion, objects outside the image, category map) is as in :mod:`converters.kitti`; this module
changes only what the tracking benchmark does differently:

- Sequences: the frames of one ``dataset_id``, in the order of :func:`converters._layout3d.layout`;
  ``frame`` is the 0-based position in the sequence (every frame counts, labelled or not).
- ``track_id``: Deepen's track number (``Cuboids.track``, parsed from ``label_id`` such as
  ``car:4``) when it names one label in the sequence. Deepen numbers tracks per category, so
  ``car:1`` and ``truck:1`` collide: then, and for labels without a number, the label gets the
  next free id (in order of first appearance) and the change is reported. ``mapping.json`` lists
  every ``track_id -> label_id``.
- ``truncated`` is an integer as in the tracking ground truth: 0 in the image, 1 partly outside,
  2 not in the image at all, and 2 for every row without a 2D box (``-1 -1 -1 -1``, e.g. with
  no camera): the tracking devkit's "ignored" value, so TrackEval does not count a box it cannot
  see as visible ground truth.
- Types are the tracking benchmark's classes: ``Car, Van, Truck, Pedestrian, Person`` (KITTI
  tracking's name for ``Person_sitting``), ``Cyclist, Tram, Misc, DontCare``. TrackEval's KITTI
  loader refuses a whole sequence file holding any other type, so other categories (``bus``,
  ``lane_marking``) are written as ``Misc`` (reported once per category; ``category_map``
  chooses otherwise) and ``mapping.json`` keeps each category (``categories``) and each track's
  category (``track_categories``), from which :func:`read` restores them.
- ``DontCare`` rows (categories mapped to ``DontCare``) get ``track_id -1`` and, with
  ``dontcare_style="gt"`` (default), the 3D slots of the real ground truth
  (``-1000 -1000 -1000 -10 -1 -1 -1``, formats.md §3.4); ``"devkit"`` writes the
  ``writeLabels.m`` defaults (``-1 -1 -1 -1000 -1000 -1000 -10``).
- Numbers have 6 decimals (as the ground truth; ``precision``).
- Calibration is written once per sequence from its first frame; a sequence whose LiDAR -> camera
  transform changes between frames is reported.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> frames = Frames.from_columns(file_id=["0.png", "1.png"], width=[100, 100], height=[50, 50])
>>> boxes = Boxes.from_columns(frame=[0, 1], category=[0, 0], label_id=["car:3", "car:3"],
...                            xyxy=[[10, 5, 30, 25], [12, 5, 32, 25]])
>>> out = tempfile.mkdtemp() + "/t"
>>> _ = write(LabelSet(frames=frames, categories=("car",), boxes=boxes), out, precision=2)
>>> print(Path(out, "label_02", "0000.txt").read_text(), end="")
0 3 Car 0 0 -10.00 10.00 5.00 30.00 25.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00
1 3 Car 0 0 -10.00 12.00 5.00 32.00 25.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from converters import _kitti_rows as kr
from converters import _layout3d as l3
from converters._base import dump_json
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "kitti_tracking"
Array = npt.NDArray[Any]
DontCareStyle = Literal["gt", "devkit"]

_GT_DONTCARE_3D = np.array([-1000.0, -1000.0, -1000.0, -10.0, -1.0, -1.0, -1.0])
_DEVKIT_3D = np.array([-1.0, -1.0, -1.0, -1000.0, -1000.0, -1000.0, -10.0])


def _free_ids(used: Array, n: int) -> Array:
    """``n`` track ids after the largest used one; the lowest unused ones when that passes int64."""
    start = int(used.max()) + 1 if len(used) else 0
    if start + n <= np.iinfo(np.int64).max:
        return start + np.arange(n, dtype=np.int64)
    # a Deepen track number near 2**63 (car:9223372036854775807): fill the gaps from 0 instead
    free = np.setdiff1d(np.arange(n + len(used), dtype=np.int64), used)
    return free[:n]


def _track_ids(
    labels: LabelSet, rows: kr.Rows, seq_of_row: Array, report: Report
) -> tuple[Array, dict[int, dict[int, str]]]:
    """Track id per row (-1 for DontCare) and ``{sequence: {track_id: label_id}}``."""
    tid = np.full(len(rows.frame), -1, dtype=np.int64)
    table: dict[int, dict[int, str]] = {}
    care = rows.type != "DontCare"
    for s in np.unique(seq_of_row[care]).tolist():
        sel = np.flatnonzero(care & (seq_of_row == s))
        lid = rows.label_id[sel].astype(str)
        uniq, first, inv = np.unique(lid, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # labels in order of first appearance
        track = rows.track[sel][first]
        # the first label carrying a Deepen track number keeps it; later ones are renumbered
        t_ord = track[order]
        _, first_use = np.unique(t_ord, return_index=True)
        keep_ord = np.zeros(len(order), dtype=bool)
        keep_ord[first_use] = True
        keep_ord &= t_ord >= 0
        ok = np.zeros(len(uniq), dtype=bool)
        ok[order] = keep_ord
        new = track.copy()
        redo = order[~keep_ord]
        new[redo] = _free_ids(track[ok], len(redo))
        tid[sel] = new[inv]
        table[s] = {int(new[j]): str(uniq[j]) for j in order.tolist()}
        for j in np.flatnonzero(~ok).tolist():
            r = sel[first[j]]
            why = (
                "has no track number"
                if track[j] < 0
                else f"shares track {track[j]} with another label"
            )
            report.add(
                "changed",
                f"{why} in its sequence: track_id {new[j]}",
                file_id=str(rows.file_id[r]),
                label_id=str(rows.label_id[r]),
                kind=str(rows.kind[r]),
            )
    return tid, table


SEQMAP = "evaluate_tracking.seqmap.training"
"""The KITTI tracking devkit's list of sequences and their lengths (TrackEval reads it)."""

TRACKING_TYPES = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
)
"""The classes TrackEval's KITTI 2D box loader accepts (any other refuses the sequence)."""

_BY_KEY = {t.lower(): t for t in TRACKING_TYPES} | {
    "person_sitting": "Person",
    "dont_care": "DontCare",
}


def _tracking_types(
    labels: LabelSet,
    rows: kr.Rows,
    category_map: Mapping[str, str | None] | None,
    report: Report,
) -> tuple[Array, dict[str, str]]:
    """Each row's type among :data:`TRACKING_TYPES` and ``{category: type}`` as written."""
    cmap = category_map or {}
    out = rows.type.astype(object).copy()
    written: dict[str, str] = {}
    cat_of = _row_categories(labels, rows)
    for t in sorted({str(x) for x in out.tolist()}):
        sel = out == t
        names = sorted({str(c) for c in cat_of[sel].tolist()})
        new = _BY_KEY.get(t.lower())
        if new is None:
            new = "Misc"
            if not any(n in cmap for n in names):
                report.add(
                    "changed",
                    f"category {', '.join(map(repr, names))} written as Misc: TrackEval's KITTI loader "
                    "reads only the KITTI classes (mapping.json keeps the category)",
                )
        out[sel] = new
        for n in names:
            written[n] = new
    return out, written


def _row_categories(labels: LabelSet, rows: kr.Rows) -> Array:
    cats = np.asarray((*labels.categories, ""), dtype=object)
    code = np.full(len(rows.frame), -1, dtype=np.int64)
    for kind in ("cuboids", "boxes"):
        sel = rows.kind == kind
        code[sel] = labels.table(kind).category[rows.source[sel].astype(np.int64)]  # type: ignore[attr-defined]
    return cats[code]


def _track_categories(labels: LabelSet, rows: kr.Rows, tid: Array, sel: Array) -> dict[str, str]:
    cats = _row_categories(labels, rows)
    return {
        str(t): str(c)
        for t, c in sorted(set(zip(tid[sel].tolist(), cats[sel].tolist(), strict=True)))
        if t >= 0
    }


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    camera: str | None = kr.DEFAULT_CAMERA,
    outside: kr.Outside = "keep",
    category_map: Mapping[str, str | None] | None = None,
    occlusion_attribute: str | None = None,
    occlusion_map: Mapping[str, int] | None = None,
    assume_identity_pose: bool = False,
    tilt_tolerance: float = 5.0,
    precision: int = 6,
    dontcare_style: DontCareStyle = "gt",
    box_source: kr.BoxSource = "projection",
    velodyne: bool | None = None,
    media: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``labels`` as KITTI tracking sequences under ``dest``.

    Options are those of :func:`converters.kitti.write` (including ``box_source``), plus
    ``dontcare_style`` (module docstring); ``precision`` defaults to 6 decimals.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.png"]), categories=("dontcare",),
    ...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["dontcare:1"],
    ...                                        xyxy=[[1, 2, 3, 4]]))
    >>> out = tempfile.mkdtemp() + "/t"
    >>> _ = write(ls, out, category_map={"dontcare": "DontCare"}, precision=2)
    >>> print(Path(out, "label_02", "0000.txt").read_text(), end="")
    0 -1 DontCare -1 -1 -10.00 1.00 2.00 3.00 4.00 -1000.00 -1000.00 -1000.00 -10.00 -1.00 -1.00 -1.00
    """
    if dontcare_style not in ("gt", "devkit"):
        raise ValueError(f"dontcare_style must be 'gt' or 'devkit', got {dontcare_style!r}")
    report, tmp = out.report, out.folder
    lay, cal, rows = kr.build_rows(
        labels,
        camera=camera,
        outside=outside,
        category_map=category_map,
        occlusion_attribute=occlusion_attribute,
        occlusion_map=occlusion_map,
        assume_identity_pose=assume_identity_pose,
        tilt_tolerance=tilt_tolerance,
        report=report,
        fmt=FORMAT,
        box_source=box_source,
    )
    seq, fno, datasets = l3.sequences(labels, lay)
    tid, tracks = _track_ids(labels, rows, seq[rows.frame], report)
    types, written_as = _tracking_types(labels, rows, category_map, report)
    lines = _lines(rows, fno, tid, types, precision, dontcare_style)
    row_seq = seq[rows.frame]
    n_seq = len(datasets)
    texts = kr.group_text(row_seq, lines, n_seq)
    kr.write_texts(tmp, "label_02", [f"label_02/{s:04d}.txt" for s in range(n_seq)], texts,
                   report, "label_02 files")  # fmt: skip
    if cal is not None:
        _write_calib(labels, lay, cal, seq, n_seq, tmp, report)
        pts = l3.lidar_points(labels, lay, cal) if velodyne is not False else {}
        scans = {i: f"velodyne/{seq[i]:04d}/{fno[i]:06d}.bin" for i in pts}
        kr.write_scans(tmp, scans, pts, report)
    sources = kr.image_sources(lay, cal, labels.frames)
    targets = [
        f"image_02/{seq[i]:04d}/{fno[i]:06d}{l3.image_ext(src)}" for i, src in enumerate(sources)
    ]
    kr.copy_images(media if media is not None else images, tmp, targets, sources, lay,
                   labels.frames, report)  # fmt: skip
    mapping = _mapping(labels, lay, cal, rows, camera, tid, tracks, written_as, sources)
    dump_json(mapping, tmp / "mapping.json", indent=1)
    report.files.append("mapping.json")
    _write_seqmap(tmp, seq, n_seq, report)
    report.written = {"sequences": n_seq, "frames": len(lay.rows), "objects": len(lines)}


def _mapping(
    labels: LabelSet,
    lay: l3.Layout,
    cal: l3.Calibration | None,
    rows: kr.Rows,
    camera: str | None,
    tid: Array,
    tracks: dict[int, dict[int, str]],
    written_as: dict[str, str],
    sources: list[str],
) -> dict[str, Any]:
    """``mapping.json``: sequences with their tracks, categories as written, frames."""
    seq, fno, datasets = l3.sequences(labels, lay)
    row_seq = seq[rows.frame]
    n_seq = len(datasets)
    return {
        "format": FORMAT,
        "camera": camera if lay.three_d else None,
        "sequences": [
            {
                "sequence": f"{s:04d}",
                "dataset_id": datasets[s],
                "tracks": {str(k): v for k, v in sorted(tracks.get(s, {}).items())},
                "track_categories": _track_categories(labels, rows, tid, row_seq == s),
            }
            for s in range(n_seq)
        ],
        "categories": written_as,
        "frames": kr.mapping_frames(
            [f"{seq[i]:04d}/{fno[i]:06d}" for i in range(len(lay.rows))],
            lay,
            cal,
            sources,
            labels.frames,
        ),
    }


def _lines(
    rows: kr.Rows, fno: Array, tid: Array, types: Array, precision: int, style: DontCareStyle
) -> Any:
    """The 17-column tracking lines of ``rows`` (module docstring: truncation, DontCare)."""
    values = rows.values.copy()
    values[:, kr.TRUNC] = rows.state
    no_box = (values[:, kr.X1 : kr.Y2 + 1] == -1).all(axis=1)
    values[no_box, kr.TRUNC] = 2
    dc = types == "DontCare"
    values[dc, kr.TRUNC] = -1
    values[dc, kr.OCC] = -1
    values[dc, kr.ALPHA] = -10
    values[dc, kr.H :] = _GT_DONTCARE_3D if style == "gt" else _DEVKIT_3D
    p = f"%.{precision}f"
    return kr.format_columns(
        # track ids as text: format_columns' %d goes through float64, which rounds ids past 2**53
        [fno[rows.frame], tid.astype(str), types.astype(str), *values.T],
        ["%d", "%s", "%s", "%d", "%d"] + [p] * 12,
    )


def _write_calib(
    labels: LabelSet,
    lay: l3.Layout,
    cal: l3.Calibration,
    seq: Array,
    n_seq: int,
    tmp: Path,
    report: Report,
) -> None:
    """One calib file per sequence (its first frame's, in the tracking devkit's key spelling)."""
    (tmp / "calib").mkdir()
    first = np.searchsorted(seq, np.arange(n_seq))
    tr = l3.velo_to_cam(cal)
    calib = kr.calib_text(cal)
    for s in range(n_seq):
        text = calib[first[s]].replace("R0_rect:", "R_rect")
        text = text.replace("Tr_velo_to_cam:", "Tr_velo_cam")
        text = text.replace("Tr_imu_to_velo:", "Tr_imu_velo")
        (tmp / "calib" / f"{s:04d}.txt").write_text(text, encoding="utf-8")
        report.files.append(f"calib/{s:04d}.txt")
        if np.abs(tr[seq == s] - tr[first[s]]).max() > 1e-6:
            report.add(
                "changed",
                f"LiDAR -> camera transform varies within sequence {s:04d}; "
                "calib holds its first frame's",
                file_id=str(labels.frames.file_id[lay.rows[first[s]]]),
            )


def _write_seqmap(tmp: Path, seq: Array, n_seq: int, report: Report) -> None:
    """The devkit's sequence map (TrackEval's KITTI loader needs it beside ``label_02/``).

    One line per sequence: its name, ``empty``, its first frame and its number of frames.
    """
    lengths = np.bincount(seq, minlength=n_seq) if len(seq) else np.zeros(n_seq, int)
    (tmp / SEQMAP).write_text(
        "".join(f"{s:04d} empty 000000 {int(n):06d}\n" for s, n in enumerate(lengths)),
        encoding="utf-8",
    )
    report.files.append(SEQMAP)


def _default_name(t: str) -> str:
    # the reader's default: KITTI classes lower-cased, other types with a lower-case first letter
    return t.lower() if t in (*kr.KITTI_TYPES, *TRACKING_TYPES) else t[:1].lower() + t[1:]


def read(
    source: str | os.PathLike[str],
    /,
    *,
    category_map: Mapping[str, str] | str | None = None,
    frame: Literal["lidar", "camera"] = "lidar",
) -> LabelSet:
    """Read a KITTI tracking folder back (``label_02`` + optional ``calib``, ``mapping.json``).

    Like :func:`converters.kitti.read`; label ids are ``<category>:<track_id>`` (the original
    Deepen label id when ``mapping.json`` lists it), and every sequence's frames are numbered up
    to its last labelled frame (or all frames listed in ``mapping.json``). ``truncated`` and
    ``occluded`` are accepted as integers or floats.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.png"]), categories=("car",),
    ...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:7"],
    ...                                        xyxy=[[1, 2, 3, 4]]))
    >>> out = tempfile.mkdtemp() + "/t"
    >>> _ = write(ls, out)
    >>> read(out).boxes.label_id.tolist()
    ['car:7']
    """
    root = Path(source)
    label_dir = root / "label_02"
    if not label_dir.is_dir():
        raise ConversionError(f"{root} has no label_02 folder", format=FORMAT)
    mapping_path = root / "mapping.json"
    mapping = json.loads(mapping_path.read_text("utf-8")) if mapping_path.is_file() else {}
    info = {m["kitti"]: m for m in mapping.get("frames", [])}
    track_names = {
        (m["sequence"], int(k)): v
        for m in mapping.get("sequences", [])
        for k, v in m.get("tracks", {}).items()
    }
    track_cats = {
        (m["sequence"], int(k)): v
        for m in mapping.get("sequences", [])
        for k, v in m.get("track_categories", {}).items()
    }
    camera = str(mapping.get("camera") or kr.DEFAULT_CAMERA)
    stems: list[str] = []
    parts = []
    calibs: list[dict[str, Array] | None] = []
    for p in sorted(label_dir.glob("*.txt")):
        types, values = kr.parse_lines(p.read_text("utf-8").splitlines(), 2)
        fno = values[:, 14].astype(np.int64)
        track = values[:, 15].astype(np.int64)
        listed = [k for k in info if k.startswith(p.stem + "/")]
        n_frames = max(len(listed), int(fno.max()) + 1 if len(fno) else 0)
        base = len(stems)
        stems += [f"{p.stem}/{i:06d}" for i in range(n_frames)]
        cpath = root / "calib" / f"{p.stem}.txt"
        cal = kr.parse_calib(cpath.read_text("utf-8")) if cpath.is_file() else None
        calibs += [cal] * n_frames
        parts.append((p.stem, types, values[:, :14], base + fno, track))
    types = np.concatenate([x[1] for x in parts]) if parts else np.zeros(0, dtype=object)
    values = np.concatenate([x[2] for x in parts]) if parts else np.zeros((0, 14))
    frames_of = np.concatenate([x[3] for x in parts]) if parts else np.zeros(0, dtype=np.int64)
    track = np.concatenate([x[4] for x in parts]) if parts else np.zeros(0, dtype=np.int64)
    seq_names = [x[0] for x in parts for _ in range(len(x[1]))]
    names = [track_names.get((sq, int(k))) for sq, k in zip(seq_names, track.tolist(), strict=True)]
    if track_cats and category_map is None:
        # categories written as Misc (or renamed) come back from mapping.json
        restored = [
            track_cats.get((sq, int(k))) for sq, k in zip(seq_names, track.tolist(), strict=True)
        ]
        cmap = {str(t): _default_name(str(t)) for t in set(types.tolist())}
        types = np.array(
            [f"\x00{c}" if c else t for c, t in zip(restored, types.tolist(), strict=True)],
            dtype=object,
        )
        cmap |= {str(t): str(t)[1:] for t in types.tolist() if str(t).startswith("\x00")}
        category_map = cmap
    ls = kr.rows_to_labelset(
        stems, info, camera, types, values, frames_of, calibs, category_map, frame, track, names
    )
    return ls.replace(meta={"source_format": FORMAT})
