"""TuSimple lane JSON lines: one ``{"lanes", "h_samples", "raw_file"}`` object per image.

Output layout::

    dest/
      label_data.json     one JSON object per line (TuSimple ``label_data_*.json`` style)
      classes.json        category of each class number (with ``classes=True``)
      report.json

Rules
    - Lanes are ``LabelSet.polylines`` with ``label_type == "lane"``; other polylines are reported
      and left out. A lane's parts are one lane (a dashed marking drawn in pieces).
    - Each lane is first clipped to its image ``[0, W] x [0, H]`` (shapely intersection; the
      clipped labels are reported), then resampled by linear interpolation at the rows
      ``h_samples``: ``x`` where the lane crosses row ``y``, ``-2`` where it does not. If a lane
      crosses a row more than once the first crossing in drawing order is kept. Values are rounded
      to integers (``decimals=0``, as TuSimple's ground truth; ``decimals=k`` keeps k decimals).
    - ``h_samples`` default per image: the rows ``start, start + step, ... < H`` with
      ``step = 10`` and ``start = ceil(H * 160 / 720 / step) * step``: TuSimple's own
      ``160, 170, ..., 710`` for its 1280 x 720 images, the same band of the image for other
      heights. Pass ``h_samples`` (list of rows) to use fixed rows for every image.
    - Lanes are listed left to right by their x at the lowest sampled row (then label order);
      lanes that cover none of the rows are reported and left out.
    - At most ``max_lanes=5`` lanes per image (TuSimple's limit): the official scorer
      (``LaneEval.bench``) divides by ``min(4, len(gt))`` after dropping one lane of five, so a
      sixth lane pushes an image's accuracy above 1. The lanes nearest the image centre (at
      their lowest sampled row) are kept; the others are dropped and reported.
      ``max_lanes=0`` writes every lane.
    - Images without lanes are left out and reported (``skipped``): the scorer gives such an
      image accuracy 0 whatever is predicted, so a ground truth listing them can never score 1.
      ``empty=True`` writes them (``"lanes": []``). Frames whose status says they are not
      labelled yet are always left out (reported ``skipped``).
    - ``raw_file`` is ``raw_prefix + file_id`` (``<sensor_id>/<file_id>`` when one file has
      several sensors).
    - Without ``classes=True``, each written lane whose category is not ``lane`` is a ``changed``
      report entry (the reader gives every lane ``lane``).
    - ``classes=True`` adds the ``"classes"`` list of the TuSimple-category extension: per lane
      its category number, 1-based in the order of ``classes.json``.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Frames, LabelSet, Polylines
>>> frames = Frames.from_columns(file_id=["a.jpg"], width=[100], height=[45])
>>> lanes = Polylines.from_columns(frame=[0], category=[0], label_id=["lane:1"], offsets=[0, 1],
...                                part_offsets=[0, 2], coords=[[10, 45], [40, 0]])
>>> out = tempfile.mkdtemp() + "/ts"
>>> _ = write(LabelSet(frames=frames, categories=("lane",), polylines=lanes), out)
>>> print(Path(out, "label_data.json").read_text(), end="")
{"lanes": [[33, 27, 20, 13]], "h_samples": [10, 20, 30, 40], "raw_file": "a.jpg"}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from converters._base import record
from converters._numbers import fixed, int_cells, join_cells, repr_cells
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, FrameStatus, LabelSet, Polylines
from deepen_export.report import Report

__all__ = ["default_h_samples", "image_frames", "read", "sample_lanes", "write"]

FORMAT = "tusimple"
MISSING = -2
Array = npt.NDArray[Any]


def default_h_samples(height: int, step: int = 10) -> list[int]:
    """TuSimple-style rows for an image ``height`` px high (module docstring).

    Examples
    --------
    >>> r = default_h_samples(720); r[0], r[-1], len(r)
    (160, 710, 56)
    """
    start = math.ceil(height * 160 / 720 / step) * step
    return list(range(start, height, step))


def image_frames(labels: LabelSet) -> Array:
    """Rows of ``labels.frames`` that are images (not LiDAR frames), in sequence order."""
    return labels.sequence_order(labels.images())


def _fixed_rows(values: Any, fmt: str) -> list[int]:
    """``-O h_samples`` / ``-O rows``: pixel rows, each a finite number >= 0 (sorted)."""
    name = "rows" if fmt == "culane" else "h_samples"
    seq = values if isinstance(values, (list, tuple)) else [values]
    ok = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 2**31 for v in seq
    )  # a comparison is False for NaN, so NaN and inf fail here too
    if not ok:
        raise ConversionError(
            f"{fmt}: -O {name} must list pixel rows (numbers from 0), got {values!r:.60}",
            format=fmt,
        )
    return sorted(int(v) for v in seq)


def _without_single_points(lanes: Polylines) -> tuple[Array, tuple[Array, Array]]:
    """Coords and offsets without the one-vertex parts (GEOS refuses them as lines).

    Such a part crosses no row; a lane made only of them is then reported as covering none.
    """
    counts = np.diff(lanes.part_offsets)
    keep = counts != 1
    coords = lanes.coords[np.repeat(keep, counts)]
    part_offsets = np.r_[0, np.cumsum(counts[keep])].astype(np.int64)
    lane_offsets = np.r_[0, np.cumsum(keep)].astype(np.int64)[lanes.offsets]
    return coords, (part_offsets, lane_offsets)


def clip_lanes(lanes: Polylines, width: Array, height: Array) -> tuple[Array, Array, Array, Array]:
    """Clip lanes to their images; return ``(coords, segment_lane, seg_start, changed)``.

    ``coords`` are the clipped vertices of all pieces, ``segment_lane[j]`` the lane of segment
    ``coords[seg_start[j]] -> coords[seg_start[j] + 1]`` (segments in drawing order),
    ``changed[i]`` whether lane ``i`` lost anything to the clip. Size <= 0 means no clipping.
    """
    n = len(lanes)
    geoms = shapely.from_ragged_array(
        shapely.GeometryType.MULTILINESTRING, *_without_single_points(lanes)
    ) if n else np.zeros(0, dtype=object)  # fmt: skip
    known = (width > 0) & (height > 0)
    boxes = shapely.box(0, 0, np.where(known, width, 1), np.where(known, height, 1))
    clipped = np.where(known, shapely.intersection(geoms, boxes), geoms) if n else geoms
    # an empty lane (one-vertex parts only) lost nothing to the clip
    inside = (
        shapely.covers(boxes, geoms) | shapely.is_empty(geoms) | ~known
        if n
        else np.zeros(0, dtype=bool)
    )
    parts, lane_of_part = shapely.get_parts(clipped, return_index=True)
    is_line = shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING
    parts, lane_of_part = parts[is_line], lane_of_part[is_line]
    coords, part_of_pt = shapely.get_coordinates(parts, return_index=True)
    last = np.r_[part_of_pt[1:] != part_of_pt[:-1], True]
    seg_start = np.flatnonzero(~last)
    return coords, lane_of_part[part_of_pt[seg_start]], seg_start, ~inside


def sample_lanes(
    coords: Array, seg_lane: Array, seg_start: Array, n_lanes: int, rows: Array
) -> tuple[Array, Array]:
    """x of every lane at its rows: ``(x (n_lanes, k), multiple (n_lanes,))``, NaN = no crossing.

    ``rows`` is ``(n_lanes, k)`` (NaN-padded); ``multiple`` flags lanes crossing a row twice.
    """
    k = rows.shape[1] if rows.ndim == 2 else 0
    x = np.full((n_lanes, k), np.nan)
    multiple = np.zeros(n_lanes, dtype=bool)
    if not len(seg_start) or k == 0:
        return x, multiple
    p0, p1 = coords[seg_start], coords[seg_start + 1]
    y = rows[seg_lane]  # (S, k)
    lo = np.minimum(p0[:, 1], p1[:, 1])[:, None]
    hi = np.maximum(p0[:, 1], p1[:, 1])[:, None]
    dy = (p1[:, 1] - p0[:, 1])[:, None]
    hit = (y >= lo) & (y <= hi) & (dy != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - p0[:, 1:2]) / dy
    xs = p0[:, 0:1] + t * (p1[:, 0] - p0[:, 0])[:, None]
    # a row through the vertex joining two segments is one crossing: count it on the second
    continues = np.isin(seg_start + 1, seg_start)[:, None]
    crossing = hit & ~(continues & (y == p1[:, 1:2]))
    # first hitting segment per (lane, row); segments are in drawing order within a lane
    order = np.lexsort((np.arange(len(seg_lane)), seg_lane))
    seg_lane, hit, xs, crossing = seg_lane[order], hit[order], xs[order], crossing[order]
    starts = np.flatnonzero(np.r_[True, seg_lane[1:] != seg_lane[:-1]])
    idx = np.where(hit, np.arange(len(seg_lane))[:, None], len(seg_lane))
    first = np.minimum.reduceat(idx, starts, axis=0)
    lanes = seg_lane[starts]
    ok = first < len(seg_lane)
    x[lanes] = np.where(ok, xs[np.minimum(first, len(seg_lane) - 1), np.arange(k)], np.nan)
    multiple[lanes] = np.any(np.add.reduceat(crossing.astype(np.int64), starts, axis=0) > 1, axis=1)
    return x, multiple


def _lane_table(labels: LabelSet, report: Report) -> Polylines:
    pl = labels.polylines
    not_lane = pl.label_type != "lane"
    record(
        report,
        labels,
        "polylines",
        not_lane,
        "dropped",
        f"{FORMAT} holds lanes only (label_type 'lane')",
    )
    owner = np.repeat(np.repeat(np.arange(len(pl)), np.diff(pl.offsets)), np.diff(pl.part_offsets))
    bad = np.bincount(owner[~np.isfinite(pl.coords).all(axis=1)], minlength=len(pl)) > 0
    bad &= ~not_lane
    record(report, labels, "polylines", bad, "dropped", "non-finite coordinates")
    return pl.take(~not_lane & ~bad)


def _image_rows(
    labels: LabelSet,
    rows: Array,
    height: Array,
    h_samples: Sequence[int] | None,
    step: int,
    fmt: str,
    bottom_up: bool,
) -> list[list[int]]:
    """The sampled pixel rows of each image: fixed ``h_samples``, or the default of its height."""
    fr = labels.frames
    if h_samples is None:
        unknown = rows[height <= 0]
        if len(unknown):
            ids = ", ".join(str(fr.file_id[r]) for r in unknown[:5])
            raise ConversionError(
                f"{fmt}: image size unknown for {ids}; pass the images (CLI: --images DIR) or "
                "fixed rows with -O h_samples=[...]",
                format=fmt,
            )
        per_image = [
            (list(range(int(h), -1, -step)) if bottom_up else default_h_samples(int(h), step))
            for h in height.tolist()
        ]
    else:
        per_image = [_fixed_rows(h_samples, fmt)] * len(rows)
        if bottom_up:
            per_image = [s[::-1] for s in per_image]
    return per_image


def prepare(
    labels: LabelSet,
    report: Report,
    h_samples: Sequence[int] | None,
    step: int,
    fmt: str,
    bottom_up: bool = False,
) -> dict[str, Any]:
    """Clip, resample and order the lanes of every image (shared with CULane)."""
    rows = image_frames(labels)
    fr = labels.frames
    status = fr.status[rows]
    todo = status != int(FrameStatus.UNLABELLED)
    for r in rows[~todo].tolist():
        report.add("skipped", "frame not labelled yet", file_id=str(fr.file_id[r]))
    rows = rows[todo]
    pos = np.full(len(fr), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    lanes = _lane_table(labels, report)
    sub = labels.replace(polylines=lanes)
    lanes_pos = pos[lanes.frame]
    width = fr.width[rows].astype(np.int64)
    height = fr.height[rows].astype(np.int64)
    per_image = _image_rows(labels, rows, height, h_samples, step, fmt, bottom_up)
    k = max((len(s) for s in per_image), default=0)
    grid = np.full((len(rows), k), np.nan)
    for i, s in enumerate(per_image):
        grid[i, : len(s)] = s
    keep = lanes_pos >= 0
    lanes, lanes_pos = lanes.take(keep), lanes_pos[keep]
    sub = sub.replace(polylines=lanes)
    coords, seg_lane, seg_start, changed = clip_lanes(lanes, width[lanes_pos], height[lanes_pos])
    record(report, sub, "polylines", changed, "clipped", "lane clipped to the image")
    x, multiple = sample_lanes(coords, seg_lane, seg_start, len(lanes), grid[lanes_pos])
    record(
        report,
        sub,
        "polylines",
        multiple,
        "changed",
        "lane crosses a sampled row more than once: first crossing kept",
    )
    empty = np.all(np.isnan(x), axis=1) if x.shape[1] else np.ones(len(lanes), dtype=bool)
    record(report, sub, "polylines", empty, "dropped", "lane covers none of the sampled rows")
    # left to right by x at the lowest row the lane reaches, then label order
    rows_l = grid[lanes_pos]
    lowest = np.where(np.isnan(x), -np.inf, rows_l)
    j = np.argmax(lowest, axis=1) if x.shape[1] else np.zeros(len(lanes), dtype=np.int64)
    key_x = x[np.arange(len(lanes)), j] if x.shape[1] else np.zeros(len(lanes))
    order = np.lexsort((np.arange(len(lanes)), key_x, lanes_pos))
    order = order[~empty[order]]
    return {
        "rows": rows,
        "names": labels.image_names(rows),  # the names COCO and the other 2D formats use
        "grid": per_image,
        "lanes": lanes,
        "lanes_pos": lanes_pos,
        "x": x,
        "order": order,
        "sub": sub,
    }


def report_lane_categories(
    p: dict[str, Any], lanes: Array, report: Report, fmt: str, hint: str = ""
) -> None:
    """One ``changed`` entry per written lane whose category the file cannot carry.

    Read back, every lane of a category-less lane file is ``lane``: a lane of any other category
    would otherwise lose it in silence.
    """
    cats = np.asarray(p["sub"].categories, dtype=object)
    code = p["lanes"].category[lanes]
    for c in np.unique(code).tolist():
        if cats[c] != "lane":
            record(
                report,
                p["sub"],
                "polylines",
                lanes[code == c],
                "changed",
                f"lane category {cats[c]!r} not written: {fmt} lanes carry no category "
                f"(read back as 'lane'){hint}",
            )


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    h_samples: Sequence[int] | None = None,
    step: int = 10,
    decimals: int = 0,
    raw_prefix: str = "",
    classes: bool = False,
    max_lanes: int = 5,
    empty: bool = False,
) -> None:
    """Write the lanes of ``labels`` as TuSimple JSON lines under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        Image frames (with sizes) and lane polylines.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds other than polylines.
    h_samples : list of int, optional
        Fixed rows for every image (default: per image, module docstring).
    step : int
        Row spacing of the default rows.
    decimals : int
        0 writes integers (TuSimple's ground truth); more keeps decimals.
    raw_prefix : str
        Prefix of ``raw_file`` (for example ``"clips/"``).
    max_lanes : int
        Lanes kept per image (nearest the centre); 0 keeps all.
    empty : bool
        Also write images without lanes (the official scorer gives them 0).
    classes : bool
        Add the per-lane ``"classes"`` list and ``classes.json``.

    Returns
    -------
    Report
    """
    report, tmp = out.report, out.folder
    p = prepare(labels, report, h_samples, step, FORMAT)
    x = fixed(p["x"], decimals)
    kept = _kept_lanes(labels, p, report, x, int(max_lanes), empty)
    lanes_text = _lanes_text(x, kept, p["grid"], decimals)
    out_lines = []
    for (i, sel), lanes in zip(kept, lanes_text, strict=True):
        obj: dict[str, Any] = {"lanes": [], "h_samples": p["grid"][i]}
        obj["raw_file"] = raw_prefix + p["names"][i]
        if classes:
            obj["classes"] = (p["lanes"].category[sel] + 1).tolist()
        # the lanes, formatted in bulk, take the place of the empty list json wrote
        head, rest = json.dumps(obj, ensure_ascii=False).split('"lanes": []', 1)
        out_lines.append(f'{head}"lanes": {lanes}{rest}')
    if not classes:
        written = np.concatenate([s for _, s in kept]) if kept else np.zeros(0, dtype=np.int64)
        report_lane_categories(p, written, report, FORMAT, "; classes=true keeps it")
    (tmp / "label_data.json").write_text("".join(f"{s}\n" for s in out_lines), encoding="utf-8")
    report.files.append("label_data.json")
    if classes:
        (tmp / "classes.json").write_text(
            json.dumps(
                {str(i + 1): c for i, c in enumerate(labels.categories)},
                ensure_ascii=False,
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        report.files.append("classes.json")
    report.written = {"images": len(out_lines), "lanes": sum(len(s) for _, s in kept)}


def _kept_lanes(
    labels: LabelSet, p: dict[str, Any], report: Report, x: Array, limit: int, keep_empty: bool
) -> list[tuple[int, Array]]:
    """``(image, lanes)`` of each image written: at most ``limit`` lanes (nearest the centre),
    images without lanes left out unless ``keep_empty``; every left-out lane and image reported."""
    lanes_pos, order = p["lanes_pos"], p["order"]
    bounds = np.searchsorted(lanes_pos[order], np.arange(len(p["rows"]) + 1))
    kept = []
    for i in range(len(p["names"])):
        sel = order[bounds[i] : bounds[i + 1]]
        k = len(p["grid"][i])
        fid = str(labels.frames.file_id[p["rows"][i]])
        if limit and len(sel) > limit:
            sel = _nearest_centre(sel, x[:, :k], float(labels.frames.width[p["rows"][i]]), limit)
            gone = np.setdiff1d(order[bounds[i] : bounds[i + 1]], sel)
            many = f"more than {limit} lanes in the image: TuSimple scores at most {limit}"
            record(report, p["sub"], "polylines", gone, "dropped", many)
        if not len(sel) and not keep_empty:
            report.add(
                "skipped",
                "image without lanes left out: TuSimple's scorer gives it accuracy 0 (empty=true writes it)",
                file_id=fid,
            )
            continue
        kept.append((i, sel))
        if len(sel) > 5:
            report.add(
                "changed",
                f"{len(sel)} lanes in one image; TuSimple evaluates at most 5",
                file_id=fid,
            )
    return kept


def _lanes_text(
    x: Array, kept: list[tuple[int, Array]], grid: list[list[int]], decimals: int
) -> list[str]:
    """The ``[[x, ...], ...]`` text of each written image, its numbers formatted in bulk
    (``-2`` where a lane misses a row), as ``json.dumps`` writes the lists."""
    lane = np.concatenate([s for _, s in kept]) if kept else np.zeros(0, dtype=np.int64)
    k = np.repeat([len(grid[i]) for i, _ in kept], [len(s) for _, s in kept]).astype(np.int64)
    valid = np.arange(x.shape[1])[None, :] < k[:, None]
    vals = np.where(np.isnan(x[lane]), MISSING, x[lane])[valid]
    cells = int_cells(vals.astype(np.int64)) if decimals == 0 else repr_cells(vals, decimals)
    n = len(vals)
    ends = np.cumsum(k)
    sep = np.zeros((n, 2), dtype=np.uint8)
    sep[:] = np.frombuffer(b", ", np.uint8)
    sep[ends[k > 0] - 1] = np.frombuffer(b"]\x00", np.uint8)  # a lane's last number
    opening = np.zeros((n, 1), dtype=np.uint8)
    opening[(ends - k)[k > 0]] = ord("[")
    buf, offsets = join_cells([opening, cells, sep])
    text = buf.tobytes().decode("ascii")
    lane_start = offsets[np.r_[0, ends]].tolist()
    out, j = [], 0
    for _, sel in kept:
        parts = [text[lane_start[j + m] : lane_start[j + m + 1]] or "[]" for m in range(len(sel))]
        out.append("[" + ", ".join(parts) + "]")
        j += len(sel)
    return out


def _nearest_centre(sel: Array, x: Array, width: float, limit: int) -> Array:
    """The ``limit`` lanes of ``sel`` whose x at their lowest sampled row is nearest the centre,
    in their left-to-right order."""
    xs = x[sel]
    last = xs.shape[1] - 1 - np.argmax(~np.isnan(xs[:, ::-1]), axis=1)
    bottom = xs[np.arange(len(sel)), last]
    near = np.argsort(np.abs(bottom - width / 2), kind="stable")[:limit]
    return sel[np.sort(near)]


def read(source: str | os.PathLike[str], /, *, category: str = "lane") -> LabelSet:
    """Read TuSimple JSON lines (a file, or a folder of ``*.json`` files) back into lanes.

    Each lane becomes one polyline through its ``(x, y)`` samples with ``x != -2`` (in row
    order); ``raw_file`` becomes the ``file_id``. With ``classes`` (and ``classes.json``) lanes
    get those categories, otherwise ``category``.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp(), "t.json")
    >>> _ = p.write_text('{"lanes": [[-2, 5, 7]], "h_samples": [10, 20, 30], "raw_file": "a.jpg"}\\n')
    >>> read(p).polylines.coords.tolist()
    [[5.0, 20.0], [7.0, 30.0]]
    """
    src = Path(source)
    files = sorted(src.glob("*.json")) if src.is_dir() else [src]
    files = [f for f in files if f.name not in ("classes.json", "report.json")]
    class_names: dict[int, str] = {}
    cpath = (src if src.is_dir() else src.parent) / "classes.json"
    if cpath.is_file():
        class_names = {int(k): str(v) for k, v in json.loads(cpath.read_text("utf-8")).items()}
    names: list[str] = []
    xs, ys, lane_frame, lane_cls = [], [], [], []
    for f in files:
        for line in f.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            names.append(str(obj["raw_file"]))
            h = np.asarray(obj["h_samples"], dtype=np.float64)
            cls = obj.get("classes") or [None] * len(obj["lanes"])
            for lane, c in zip(obj["lanes"], cls, strict=True):
                lx = np.asarray(lane, dtype=np.float64)
                ok = lx != MISSING
                xs.append(lx[ok])
                ys.append(h[: len(lx)][ok])
                lane_frame.append(len(names) - 1)
                lane_cls.append(class_names.get(int(c), str(c)) if c is not None else category)
    cats = tuple(dict.fromkeys(lane_cls)) or (category,)
    counts = np.array([len(v) for v in xs], dtype=np.int64)
    coords = np.column_stack([np.concatenate(xs), np.concatenate(ys)]) if xs else np.zeros((0, 2))
    part_offsets = np.zeros(len(xs) + 1, dtype=np.int64)
    np.cumsum(counts, out=part_offsets[1:])
    n_per = {c: 0 for c in cats}
    label_ids = []
    for c in lane_cls:
        n_per[c] += 1
        label_ids.append(f"{c}:{n_per[c]}")
    lanes = Polylines.from_columns(
        frame=np.asarray(lane_frame, dtype=np.int64),
        category=[cats.index(c) for c in lane_cls],
        label_id=label_ids,
        label_type=["lane"] * len(xs),
        offsets=np.arange(len(xs) + 1),
        part_offsets=part_offsets,
        coords=coords,
    )
    return LabelSet(
        frames=Frames.from_columns(file_id=names),
        categories=cats,
        polylines=lanes,
        meta={"source_format": FORMAT},
    )
