"""Dataset layout shared by the 2D writers: train/val splits and images copied into the output.

- :func:`parse_split` / :func:`assign_splits`: ``split="train:0.8,val:0.2"`` puts each frame in
  one subset, deterministically: a frame's *group* (its sequence, i.e. its dataset, for 3D
  datasets, where frames of one sequence must not straddle train and val; the image itself
  for image datasets) is hashed with the seed (SHA-256 of ``"<seed>|<group>"``) to a number in
  [0, 1) that picks the subset by the cumulative fractions. The same seed, ids and fractions
  give the same split on any machine, and adding frames never moves the others.
- :func:`place_images`: ``copy_images=True`` puts each image into the output under the name the
  format expects, as a hard link where the file system allows (no extra space) and a copy
  otherwise, from ``--images DIR``, a snapshot's ``media/`` folder or its uploaded
  ``dataset.zip``, looked up by :class:`deepen_export._media.ImageSource` (re-exported here:
  the one image source; it never reads outside the folder given).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deepen_export._media import ImageSource
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["ImageSource", "assign_splits", "parse_split", "place_images", "source_names"]

Array = npt.NDArray[Any]


def parse_split(spec: str | dict[str, float] | None) -> list[tuple[str, float]]:
    """``"train:0.8,val:0.2"`` (or a dict) -> ``[("train", 0.8), ("val", 0.2)]``, checked.

    Fractions must be positive and add up to 1 (within 1e-9); names must be unique, non-empty
    and usable as a folder name.

    Examples
    --------
    >>> parse_split("train:0.8, val:0.2")
    [('train', 0.8), ('val', 0.2)]
    >>> parse_split(None)
    []
    """
    if spec is None or spec == "":
        return []
    items = list(spec.items()) if isinstance(spec, dict) else []
    if isinstance(spec, str):
        for part in spec.split(","):
            name, sep, frac = part.partition(":")
            try:
                items.append((name.strip(), float(frac)))
            except ValueError:
                sep = ""
            if not sep:
                raise ConversionError(
                    f"split: expected NAME:FRACTION pairs such as train:0.8,val:0.2, got {spec!r}"
                )
    out = [(str(n), float(f)) for n, f in items]
    names = [n for n, _ in out]
    if any(not n or "/" in n or n in (".", "..") for n in names) or len(set(names)) != len(names):
        raise ConversionError(f"split: subset names must be unique folder names, got {names}")
    if any(not f > 0 for _, f in out) or abs(sum(f for _, f in out) - 1) > 1e-9:
        raise ConversionError(f"split: fractions must be positive and add up to 1, got {spec!r}")
    return out


def _groups(labels: LabelSet, frames: Array) -> list[str]:
    f = labels.frames
    file_ids = [str(x) for x in f.file_id.tolist()]
    datasets = [str(x) for x in f.dataset_id.tolist()]
    # a sequence (a dataset with LiDAR frames) stays whole: the frame roles say which
    three_d = {datasets[r] for r in labels.lidar_frames().tolist()}
    three_d.update(str(labels.frames.dataset_id[fr]) for fr in labels.cameras.frame.tolist())
    return [
        datasets[fr] if datasets[fr] in three_d else f"{datasets[fr]}|{file_ids[fr]}"
        for fr in frames.tolist()
    ]


def assign_splits(
    labels: LabelSet, frames: Array, split: list[tuple[str, float]], seed: int = 0
) -> list[str]:
    """The subset name of each frame in ``frames`` (see the module docstring).

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> labels = LabelSet(frames=Frames.from_columns(file_id=[f"{i}.png" for i in range(1000)]))
    >>> subsets = assign_splits(labels, np.arange(1000), [("train", 0.8), ("val", 0.2)])
    >>> subsets.count("val")  # about 200
    194
    """
    bounds = np.cumsum([f for _, f in split])
    bounds[-1] = np.inf
    out = []
    for g in _groups(labels, frames):
        digest = hashlib.sha256(f"{seed}|{g}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        out.append(split[int(np.searchsorted(bounds, u, side="right"))][0])
    return out


def source_names(labels: LabelSet, frames: Array) -> list[str]:
    """Where each frame's image is in the images folder or zip: its camera's ``image_path``
    (camera views of LiDAR frames) or else its ``file_id`` (not the output name, which may have
    a sensor folder added to tell two sensors apart)."""
    f = labels.frames
    cams = labels.cameras
    lookup = {  # camera rows sit on their LiDAR frame; the image frame shares its file id
        (str(f.dataset_id[fr]), str(f.file_id[fr]), str(sid)): str(path)
        for fr, sid, path in zip(cams.frame, cams.sensor_id, cams.image_path, strict=True)
        if path
    }
    out = []
    for fr in frames.tolist():
        fid = str(f.file_id[fr])
        out.append(lookup.get((str(f.dataset_id[fr]), fid, str(f.sensor_id[fr])), fid))
    return out


def place_images(
    source: ImageSource | str | os.PathLike[str] | None,
    pairs: list[tuple[str, str, str]],
    root: Path,
    report: Report,
) -> int:
    """Put each image ``(name in source, path under root, file id)`` into the output.

    Images not found are reported (``skipped``) with their file id; returns how many were placed.
    Raises when there is no source at all (``copy_images`` without ``--images`` or media).
    """
    if source is None:
        raise ConversionError(
            "copy_images needs the images: pass --images DIR, or pull the snapshot with --media"
        )
    src = source if isinstance(source, ImageSource) else ImageSource(source, strict=True)
    n = 0
    try:
        for name, rel, fid in pairs:
            if src.copy(name, root / rel, link=True):
                n += 1
            else:
                report.add(
                    "skipped", f"image {name!r} not found in {src.path}: not copied", file_id=fid
                )
    finally:
        if src is not source:
            src.close()
    return n
