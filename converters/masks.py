"""Semantic masks: one indexed (palette) PNG per image plus a class table.

Output folder::

    masks/<image name>.png   mode "P", pixel value = class index, 0 = background
    classes.json             [{"index": 0, "name": "__background__", "color": [0, 0, 0]}, ...]
    frames.json              image name -> file_id, sensor, size, status (for read)
    report.json

Conventions
-----------
- Class index ``k + 1`` is ``LabelSet.categories[k]`` (every category is in the table, used or
  not); 0 is background (nothing painted). At most 255 categories fit in an 8-bit PNG.
- Colours follow the Pascal VOC colour map (index 0 black), stored as the PNG palette.
- Painter's order: the image's 2D semantic painting (``masks2d``) is the bottom layer; polygons
  are painted over it in label order (Deepen's order), each over what is below, so a later label
  wins where labels overlap. Polygons are repaired and clipped like in the other 2D formats and
  rasterised with pycocotools (pixel-corner; a pixel is painted when pycocotools' rasteriser
  puts it inside; holes stay unpainted). Each polygon is reported as changed (its instance
  becomes pixels of its class).
- Every image frame of known size gets a mask (all background when it has no labels); images of
  unknown size with no painting cannot be rasterised and are reported.
- Frames whose review status says *not labelled yet* (and that carry no label) get no file
  and are reported, unless ``include_unlabelled=True``: an empty file would claim "no objects".
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from converters import _prepare2d as prep
from converters._base import dump_json, record
from converters._writer import Output, writer
from deepen_export import geometry as geo
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, FrameStatus, LabelSet, Masks2D
from deepen_export.report import Report

__all__ = ["palette", "read", "write"]

FORMAT = "masks"
BACKGROUND = "__background__"
Array = npt.NDArray[Any]


def palette(n: int) -> Array:
    """The Pascal VOC colour map: ``(n, 3)`` uint8 colours, index 0 black.

    Examples
    --------
    >>> palette(4).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    """
    idx = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for c in range(3):
            cmap[:, c] |= ((idx >> (3 * (7 - shift) + c)) & 1) << shift
    return cmap.astype(np.uint8)


def _mask_path(name: str) -> str:
    return str(PurePosixPath("masks", PurePosixPath(name).with_suffix(".png")))


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    clip: bool = True,
    include_unlabelled: bool = False,
) -> None:
    """Write one indexed PNG mask per image and the class table to ``dest``.

    Parameters
    ----------
    labels : LabelSet
    dest : path
        Output folder (replaced as a whole on success).
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds a semantic mask cannot hold (boxes, lines, points, 3D).
    include_unlabelled : bool
        Also write frames whose status says they are not labelled yet (skipped and reported by
        default: an empty file would claim the image has no objects).
    clip : bool
        Clip polygons to the image (pixels outside are never painted either way).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from deepen_export.model import Frames, LabelSet, Polygons
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[4], height=[3]),
    ...     categories=("road",),
    ...     polygons=Polygons.from_columns(frame=[0], category=[0], label_id=["road:1"], offsets=[0, 1],
    ...                                    ring_offsets=[0, 4], coords=[[0, 1], [2, 1], [2, 3], [0, 3]]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "masks")
    >>> _ = write(labels, out)
    >>> np.asarray(Image.open(out / "masks" / "a.png")).tolist()
    [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    """
    report, tmp = out.report, out.folder
    if len(labels.categories) > 255:
        raise ConversionError(
            f"{len(labels.categories)} categories do not fit an 8-bit mask (at most 255)",
            format=FORMAT,
        )
    frames = prep.image_frames(labels)
    frames = prep.skip_unlabelled(labels, frames, report, include_unlabelled, "mask")
    names = prep.image_names(labels, frames)
    paint_of = {int(fr): i for i, fr in enumerate(labels.masks2d.frame.tolist())}
    height, width = _mask_sizes(labels, frames, paint_of)
    known = (height > 0) & (width > 0)
    for fid in labels.frames.file_id[frames[~known]]:
        report.add(
            "skipped", "image size unknown and no painting: no mask written", file_id=str(fid)
        )
    layers = _polygon_layers(labels, report, frames, known, height, width, clip=clip)
    prep.check_paths(names, tmp / "masks", ".png")
    colors = palette(256)
    files, side = [], []
    for k, fr in enumerate(progress(frames.tolist(), description="mask PNGs")):
        if not known[k]:
            continue
        rel = _mask_path(names[k])
        mask = _paint(labels, paint_of.get(fr), layers.get(k, []), int(height[k]), int(width[k]))
        _save_png(mask, colors, tmp / rel)
        files.append(rel)
        side.append({"name": names[k], **prep.frame_fields(labels.frames, fr)})
    classes = [{"index": 0, "name": BACKGROUND, "color": [0, 0, 0]}] + [
        {"index": i + 1, "name": name, "color": colors[i + 1].tolist()}
        for i, name in enumerate(labels.categories)
    ]
    dump_json(classes, tmp / "classes.json", indent=1)
    dump_json({"frames": side}, tmp / "frames.json", indent=1)
    report.written.update({"masks": len(files), "classes": len(labels.categories)})
    report.files = ["classes.json", "frames.json", *files, "report.json"]


def _mask_sizes(labels: LabelSet, frames: Array, paint_of: dict[int, int]) -> tuple[Array, Array]:
    """``(height, width)`` of each frame's mask: its painting's size, else the image's."""
    f, m2 = labels.frames, labels.masks2d
    height = np.array(
        [m2.height[paint_of[fr]] if fr in paint_of else f.height[fr] for fr in frames.tolist()],
        dtype=np.int64,
    )
    width = np.array(
        [m2.width[paint_of[fr]] if fr in paint_of else f.width[fr] for fr in frames.tolist()],
        dtype=np.int64,
    )
    return height, width


def _polygon_layers(
    labels: LabelSet,
    report: Report,
    frames: Array,
    known: Array,
    height: Array,
    width: Array,
    *,
    clip: bool,
) -> dict[int, list[tuple[Any, int]]]:
    """Per frame position: ``(RLE or None, class index)`` of its polygons in painter's order."""
    pp = prep.prepare_polygons(labels, report, frames, clip=clip)
    p = labels.polygons
    pos = np.full(len(labels.frames), -1, dtype=np.int64)
    pos[frames] = np.arange(len(frames))
    lab_pos = pos[p.frame[pp.rows]]
    ok = known[lab_pos] if len(lab_pos) else np.zeros(0, dtype=bool)
    record(
        report,
        labels,
        "polygons",
        pp.rows[~ok],
        "dropped",
        "image size unknown: polygon cannot be rasterised",
    )
    record(
        report,
        labels,
        "polygons",
        pp.rows[ok],
        "changed",
        "polygon rasterised into the semantic mask (instance identity lost)",
    )
    rles = geo.polygons_to_rle(pp.geoms[ok], height[lab_pos[ok]], width[lab_pos[ok]])
    classes = (p.category[pp.rows[ok]] + 1).tolist()
    layers: dict[int, list[tuple[Any, int]]] = {}
    for k, rle, c in zip(lab_pos[ok].tolist(), rles, classes, strict=True):
        layers.setdefault(k, []).append((rle, c))
    return layers


def _paint(
    labels: LabelSet, paint: int | None, layer: list[tuple[Any, int]], h: int, w: int
) -> Array:
    """A frame's mask: its 2D painting (row ``paint``) with its polygons painted over it."""
    if paint is not None:
        mask = (labels.masks2d.mask(paint) + 1).astype(np.uint8)
    else:
        mask = np.zeros((h, w), dtype=np.uint8)
    if not any(rle is not None for rle, _ in layer):
        return mask
    # painted run by run, in the pixels each polygon covers, not a decoded image-sized mask
    # per polygon; the runs' column-major positions (x * h + y) become row-major ones
    flat = mask.reshape(-1)
    rows = mask.shape[0]
    for rle, c in layer:  # painter's order: label order
        if rle is not None:
            starts, lengths = geo.rle_runs(rle)
            offsets = np.cumsum(lengths) - lengths
            at = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
            x, y = np.divmod(at, rows)
            flat[y * mask.shape[1] + x] = c
    return mask


def _save_png(mask: Array, colors: Array, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask, mode="P")
    im.putpalette(colors.ravel().tolist())
    im.save(path, format="PNG")


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read a masks folder written by :func:`write` back into a LabelSet with ``masks2d``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import Frames, LabelSet, Masks2D
    >>> labels = LabelSet(
    ...     frames=Frames.from_columns(file_id=["a.png"], width=[2], height=[1]),
    ...     categories=("sky",),
    ...     masks2d=Masks2D.from_columns(frame=[0], height=[1], width=[2], offsets=[0, 2], pixels=[-1, 0]),
    ... )
    >>> out = pathlib.Path(tempfile.mkdtemp(), "masks")
    >>> _ = write(labels, out)
    >>> read(out).masks2d.mask(0).tolist()
    [[-1, 0]]
    """
    from PIL import Image

    root = Path(source)
    classes = json.loads((root / "classes.json").read_text(encoding="utf-8"))
    cats = tuple(c["name"] for c in sorted(classes, key=lambda c: c["index"]) if c["index"] > 0)
    entries = json.loads((root / "frames.json").read_text(encoding="utf-8"))["frames"]
    status_of = {v: k for k, v in prep.STATUS_NAMES.items()}
    frames = Frames.from_columns(
        file_id=[e["file_id"] for e in entries],
        sensor_id=[e.get("sensor_id", "") for e in entries],
        dataset_id=[e.get("dataset_id", "") for e in entries],
        index=[e.get("index", -1) for e in entries],
        width=[e.get("width", -1) for e in entries],
        height=[e.get("height", -1) for e in entries],
        status=[status_of.get(e.get("status", ""), int(FrameStatus.UNKNOWN)) for e in entries],
    )
    masks = []
    for e in entries:
        with Image.open(root / _mask_path(e["name"])) as im:
            masks.append(np.asarray(im, dtype=np.int32) - 1)
    m2 = Masks2D.from_columns(
        frame=np.arange(len(masks)),
        height=[m.shape[0] for m in masks],
        width=[m.shape[1] for m in masks],
        offsets=np.cumsum([0] + [m.size for m in masks]),
        pixels=np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, np.int32),
    )
    return LabelSet(frames=frames, categories=cats, masks2d=m2, meta={"source_format": FORMAT})
