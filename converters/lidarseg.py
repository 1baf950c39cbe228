"""nuScenes-style lidarseg: ``lidarseg/<token>_lidarseg.bin`` (uint8 per point) + tables.

Output layout (nuscenes-devkit's: merge it into a nuScenes ``dataroot``)::

    dest/
      lidarseg/<version>/<token>_lidarseg.bin   one uint8 class index per point, in point order
      <version>/lidarseg.json         [{token, sample_data_token, filename, dataset_id, file_id}],
                                      filename = "lidarseg/<version>/<token>_lidarseg.bin"
      <version>/category.json         [{token, name, description, index}]
      colormap.json                   {name: [r, g, b]} for every category: pass it as
                                      NuScenes(..., colormap=json.load(open("colormap.json")));
                                      the devkit's default colormap knows only nuScenes names
      report.json

``version`` defaults to ``v1.0-trainval``. The devkit reads the tables from
``<dataroot>/<version>/`` and counts the files in ``<dataroot>/lidarseg/<version>/`` against
``lidarseg.json``. ``layout="flat"`` writes the earlier layout (tables at the top,
``lidarseg/<token>_lidarseg.bin``, no colormap); :func:`read` reads both.

As in nuScenes (``docs/instructions_lidarseg.md``) a point's byte is the ``index`` of its
category in ``category.json``. Index 0 is ``noise`` and holds Deepen's unpainted points; our
categories get 1, 2, ... in category order unless ``label_map`` (dict, JSON object or YAML/JSON
file path: name -> index in 1..255) sets them (unlisted names take the next free indices).
More than 255 categories cannot be held (ConversionError).

Tokens are the 32-hex MD5 of ``"<dataset_id>/<file_id>"`` (``sample_data_token`` is the same
value: there is no nuScenes sample table to point to), stable across exports. Instance ids are
not part of lidarseg; frames that carry them are reported (use SemanticKITTI for instances).

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Frames, LabelSet, PointSegmentation
>>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 3], category=[1, -1, 0])
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car", "road"),
...               point_segmentation=seg)
>>> out = tempfile.mkdtemp() + "/ls"
>>> _ = write(ls, out)
>>> entry = json.loads(Path(out, "v1.0-trainval", "lidarseg.json").read_text())[0]
>>> np.fromfile(Path(out, entry["filename"]), dtype=np.uint8).tolist()
[2, 0, 1]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from converters import _layout3d as l3
from converters._base import dump_json
from converters._nuscenes_tables import NOISE, token
from converters._writer import Output, writer
from converters.masks import palette
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet, PointSegmentation
from deepen_export.report import Report

__all__ = ["read", "token", "write"]

FORMAT = "lidarseg"
Array = npt.NDArray[Any]
Layout = Literal["devkit", "flat"]


def class_indices(categories: tuple[str, ...], label_map: dict[str, int]) -> Array:
    """``uint8`` index of every category code (module docstring for the rule)."""
    out = np.zeros(len(categories), dtype=np.int64)
    taken = {0, *label_map.values()}
    nxt = 1
    for i, name in enumerate(categories):
        if name in label_map:
            out[i] = label_map[name]
            continue
        while nxt in taken:
            nxt += 1
        out[i] = nxt
        taken.add(nxt)
    if len(out) and (out.min() < 1 or out.max() > 255):
        raise ConversionError(
            f"lidarseg indices must be in 1..255; {len(categories)} categories with label_map "
            f"{label_map} do not fit",
            format=FORMAT,
        )
    return out


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    label_map: Mapping[str, int] | str | os.PathLike[str] | None = None,
    version: str = "v1.0-trainval",
    layout: Layout = "devkit",
) -> None:
    """Write the point segmentation of ``labels`` as nuScenes-style lidarseg files under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        With ``point_segmentation``.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with the other label kinds.
    label_map : dict, JSON str or path
        Category name -> index overrides (module docstring).
    version : str
        nuScenes version folder (``v1.0-trainval``, ``v1.0-mini``...).
    layout : {"devkit", "flat"}
        The devkit's folders (default) or the earlier flat layout.

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Frames, LabelSet, PointSegmentation
    >>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 1], category=[0])
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car",),
    ...               point_segmentation=seg)
    >>> out = tempfile.mkdtemp() + "/ls"
    >>> write(ls, out).written
    {'frames': 1, 'points': 1}
    >>> [c["name"] for c in json.loads(Path(out, "v1.0-trainval", "category.json").read_text())]
    ['noise', 'car']
    """
    if layout not in ("devkit", "flat"):
        raise ValueError(f"layout must be 'devkit' or 'flat', got {layout!r}")
    if layout == "devkit" and (not version or "/" in version or version.strip(".") == ""):
        raise ConversionError(f"lidarseg: version must be a folder name, got {version!r}")
    report, tmp = out.report, out.folder
    tables = f"{version}/" if layout == "devkit" else ""
    bins = f"lidarseg/{version}" if layout == "devkit" else "lidarseg"
    idx = class_indices(labels.categories, l3.load_map(label_map))
    seg = labels.point_segmentation
    data = np.concatenate([[0], idx])[seg.category.astype(np.int64) + 1].astype(np.uint8)
    entries = _write_bins(labels, data, tmp, bins, report)
    order = np.argsort(idx, kind="stable")
    cats = [
        {
            "token": token("category", NOISE),
            "name": NOISE,
            "description": "unpainted in Deepen",
            "index": 0,
        }
    ]
    cats += [
        {
            "token": token("category", labels.categories[j]),
            "name": labels.categories[j],
            "description": "",
            "index": int(idx[j]),
        }
        for j in order.tolist()
    ]
    if tables:
        (tmp / tables).mkdir()
    dump_json(entries, tmp / f"{tables}lidarseg.json", indent=1)
    dump_json(cats, tmp / f"{tables}category.json", indent=1)
    report.files += [f"{tables}lidarseg.json", f"{tables}category.json"]
    if layout == "devkit":
        colors = palette(256)
        colormap = {str(c["name"]): colors[int(str(c["index"]))].tolist() for c in cats}
        dump_json(colormap, tmp / "colormap.json", indent=1)
        report.files.append("colormap.json")
    report.written = {"frames": len(entries), "points": len(data)}


def _write_bins(
    labels: LabelSet, data: Array, tmp: Path, bins: str, report: Report
) -> list[dict[str, str]]:
    """One ``<token>_lidarseg.bin`` per painted frame; the ``lidarseg.json`` records."""
    seg = labels.point_segmentation
    fr = labels.frames
    has_inst = np.add.reduceat(seg.instance >= 0, seg.offsets[:-1]) if len(seg.instance) else None
    entries = []
    (tmp / bins).mkdir(parents=True)
    for i, row in enumerate(progress(seg.frame.tolist(), description="lidarseg files")):
        tok = token(str(fr.dataset_id[row]), str(fr.file_id[row]))
        rel = f"{bins}/{tok}_lidarseg.bin"
        (tmp / rel).write_bytes(data[seg.offsets[i] : seg.offsets[i + 1]].tobytes())
        report.files.append(rel)
        entries.append(
            {
                "token": tok,
                "sample_data_token": tok,
                "filename": rel,
                "dataset_id": str(fr.dataset_id[row]),
                "file_id": str(fr.file_id[row]),
            }
        )
        a, b = seg.offsets[i], seg.offsets[i + 1]
        if has_inst is not None and a < b and has_inst[i] > 0:
            report.add(  # the frame's classes are written: a change, not a dropped label
                "changed",
                "lidarseg holds classes only: this frame's instance ids are not written",
                file_id=str(fr.file_id[row]),
                kind="point_segmentation",
            )
    return entries


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read lidarseg files back through ``lidarseg.json`` and ``category.json``.

    Index 0 (``noise``) becomes an unpainted point (-1); frames are named by the ``file_id``
    recorded in ``lidarseg.json`` (else the token).

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Frames, LabelSet, PointSegmentation
    >>> seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 2], category=[0, -1])
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car",),
    ...               point_segmentation=seg)
    >>> out = tempfile.mkdtemp() + "/ls"
    >>> _ = write(ls, out)
    >>> read(out).point_segmentation.category.tolist()
    [0, -1]
    """
    root = Path(source)
    tables = root
    if not (root / "lidarseg.json").is_file():
        found = sorted(root.glob("*/lidarseg.json"))
        tables = found[0].parent if found else root
    index_path, cat_path = tables / "lidarseg.json", tables / "category.json"
    if not index_path.is_file() or not cat_path.is_file():
        raise ConversionError(f"{root} has no lidarseg.json / category.json", format=FORMAT)
    entries = json.loads(index_path.read_text("utf-8"))
    cats = sorted(json.loads(cat_path.read_text("utf-8")), key=lambda c: int(c["index"]))
    named = [c for c in cats if int(c["index"]) != 0]
    lut = np.full(256, -1, dtype=np.int32)
    lut[[int(c["index"]) for c in named]] = np.arange(len(named))
    raw = [np.fromfile(root / e["filename"], dtype=np.uint8) for e in entries]
    counts = np.array([len(r) for r in raw], dtype=np.int64)
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.concatenate(raw) if raw else np.zeros(0, dtype=np.uint8)
    frames = Frames.from_columns(
        file_id=[e.get("file_id", e["token"]) for e in entries],
        dataset_id=[e.get("dataset_id", "") for e in entries],
        sensor_id=["lidar"] * len(entries),
    )
    seg = PointSegmentation.from_columns(
        frame=np.arange(len(entries)), offsets=offsets, category=lut[flat]
    )
    return LabelSet(
        frames=frames,
        categories=tuple(str(c["name"]) for c in named),
        point_segmentation=seg,
        meta={"source_format": FORMAT},
    )
