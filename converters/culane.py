"""CULane lane annotations: ``<image path without extension>.lines.txt`` per image.

Output layout::

    dest/
      <file_id stem>.lines.txt   one lane per line: "x y x y ..." bottom-up, y decreasing by 10
      list/train_gt.txt          "/<image path>" per image (CULane list style, what lanedet
      list/test.txt              opens for training and testing; the same images in both)
      list/all.txt               the same list (earlier name)
      report.json

Lanes are selected, clipped to the image and resampled exactly as in
:mod:`converters.tusimple` (first crossing of a row, clipped lanes reported, lanes left to right),
but on CULane's rows: ``y = H, H - step, ..., >= 0`` bottom-up (CULane's 590, 580, ... for its
1640 x 590 images; ``rows`` fixes them for every image), and only the rows a lane reaches are
written (CULane has no ``-2``). x has ``decimals`` decimals (3, as CULane's ground truth), y is an
integer. Since lanes are clipped first, x never leaves the image (CULane's own ground truth
extrapolates beyond it). Images without lanes get an empty file; frames not labelled yet are
reported and skipped. A file id with several sensors is written under ``<sensor_id>/``.
A file id holding whitespace is refused (the lists are split at whitespace by their readers), and
a lane whose category is not ``lane`` is a ``changed`` report entry (CULane has no categories).

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Frames, LabelSet, Polylines
>>> frames = Frames.from_columns(file_id=["d/a.jpg"], width=[100], height=[30])
>>> lanes = Polylines.from_columns(frame=[0], category=[0], label_id=["lane:1"], offsets=[0, 1],
...                                part_offsets=[0, 2], coords=[[10, 30], [40, 0]])
>>> out = tempfile.mkdtemp() + "/cu"
>>> _ = write(LabelSet(frames=frames, categories=("lane",), polylines=lanes), out)
>>> print(Path(out, "d", "a.lines.txt").read_text(), end="")
10.000 30 20.000 20 30.000 10 40.000 0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from converters._base import safe_path, write_files
from converters._names import check_list_names
from converters._numbers import fixed, fixed_cells, int_cells, join_cells
from converters._writer import Output, writer
from converters.tusimple import prepare, report_lane_categories
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet, Polylines

__all__ = ["read", "write"]

FORMAT = "culane"
Array = npt.NDArray[Any]


def lines_name(image: str) -> str:
    """``a/b.jpg`` -> ``a/b.lines.txt``."""
    p = PurePosixPath(image.replace("\\", "/"))
    return str(p.with_suffix("")) + ".lines.txt"


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    rows: Sequence[int] | None = None,
    step: int = 10,
    decimals: int = 3,
) -> None:
    """Write the lanes of ``labels`` as CULane ``.lines.txt`` files under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        Image frames (with sizes) and lane polylines.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds other than polylines.
    rows : list of int, optional
        Fixed rows for every image (default ``H, H - step, ..., 0`` per image).
    step : int
        Row spacing of the default rows.
    decimals : int
        Decimals of x.

    Returns
    -------
    Report
    """
    report, tmp = out.report, out.folder
    p = prepare(labels, report, rows, step, FORMAT, bottom_up=True)
    for n in p["names"]:
        safe_path("/", n)  # refuse names that leave the folder or name no file, before deriving
    check_list_names(p["names"], FORMAT)  # list/*.txt is split at whitespace by its readers
    names = [lines_name(n) for n in p["names"]]
    if len(set(names)) != len(names):
        raise ConversionError(
            f"{FORMAT}: two images map to the same .lines.txt name", format=FORMAT
        )
    report_lane_categories(p, p["order"], report, FORMAT)
    for name in names:
        safe_path(tmp, name)
    buf, starts, ends = _lines_text(p, decimals)
    write_files(tmp, names, [(buf, starts, ends)], description="CULane .lines.txt files")
    report.files += names
    (tmp / "list").mkdir(exist_ok=True)
    listing = "".join(f"/{n}\n" for n in p["names"])
    # lanedet opens list/train_gt.txt (training) and list/test.txt (evaluation); with no
    # segmentation PNGs written, each line is the image path alone, which it accepts
    for lst in ("all.txt", "train_gt.txt", "test.txt"):
        (tmp / "list" / lst).write_text(listing, encoding="utf-8")
        report.files.append(f"list/{lst}")
    report.written = {"images": len(names), "lanes": len(p["order"])}


def _lines_text(p: dict[str, Any], decimals: int) -> tuple[Array, Array, Array]:
    """Every image's ``x y x y ...`` lines, formatted column-wise: ``(bytes, starts, ends)``.

    One token ``x y`` per row a lane reaches, followed by a space, or a newline after the
    lane's last; lanes in ``p["order"]`` (grouped by image, left to right).
    """
    order = p["order"]
    lanes_pos = p["lanes_pos"][order]
    x = fixed(p["x"][order], decimals)
    k = np.array([len(g) for g in p["grid"]], dtype=np.int64)
    grid = np.zeros((len(k), x.shape[1]), dtype=np.int64)
    for i, g in enumerate(p["grid"]):
        grid[i, : len(g)] = g
    valid = ~np.isnan(x) & (np.arange(x.shape[1])[None, :] < k[lanes_pos][:, None])
    per_lane = valid.sum(axis=1)
    lane_end = np.cumsum(per_lane)  # tokens end of each lane
    sep = np.full((int(valid.sum()), 1), ord(" "), dtype=np.uint8)
    sep[lane_end[per_lane > 0] - 1] = ord("\n")
    ys = np.broadcast_to(grid[lanes_pos], x.shape)[valid]
    buf, offsets = join_cells([fixed_cells(x[valid], decimals), b" ", int_cells(ys), sep])
    bounds = np.searchsorted(lanes_pos, np.arange(len(p["rows"]) + 1))  # lanes of each image
    lane_start = np.r_[0, lane_end]
    return buf, offsets[lane_start[bounds[:-1]]], offsets[lane_start[bounds[1:]]]


def read(
    source: str | os.PathLike[str], /, *, category: str = "lane", image_ext: str = ".jpg"
) -> LabelSet:
    """Read CULane ``.lines.txt`` files under ``source`` back into lanes (category ``category``).

    Image names come from ``list/all.txt`` when present, else the ``.lines.txt`` path with
    ``image_ext``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.lines.txt").write_text("10.5 30 20 20\\n")
    >>> ls = read(d)
    >>> ls.frames.file_id.tolist(), ls.polylines.coords.tolist()
    (['a.jpg'], [[10.5, 30.0], [20.0, 20.0]])
    """
    root = Path(source)
    listed: dict[str, str] = {}
    lst = root / "list" / "all.txt"
    if lst.is_file():
        for line in lst.read_text("utf-8").splitlines():
            name = line.strip().split(" ")[0].lstrip("/")
            if name:
                listed[lines_name(name)] = name
    found = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.lines.txt"))}
    rels = [r for r in listed if r in found] + [r for r in found if r not in listed]
    files = [found[r] for r in rels]
    names = [listed.get(r, r[: -len(".lines.txt")] + image_ext) for r in rels]
    coords_l, counts, frame = [], [], []
    for i, p in enumerate(files):
        for line in p.read_text("utf-8").splitlines():
            vals = np.array(line.split(), dtype=np.float64)
            if not len(vals):
                continue
            coords_l.append(vals.reshape(-1, 2))
            counts.append(len(vals) // 2)
            frame.append(i)
    n = len(coords_l)
    part_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=part_offsets[1:])
    lanes = Polylines.from_columns(
        frame=np.asarray(frame, dtype=np.int64),
        category=np.zeros(n, dtype=np.int32),
        label_id=[f"{category}:{j + 1}" for j in range(n)],
        label_type=["lane"] * n,
        offsets=np.arange(n + 1),
        part_offsets=part_offsets,
        coords=np.concatenate(coords_l) if coords_l else np.zeros((0, 2)),
    )
    return LabelSet(
        frames=Frames.from_columns(file_id=names), categories=(category,), polylines=lanes,
        meta={"source_format": FORMAT},
    )  # fmt: skip
