"""Shared steps of the 2D writers (COCO, YOLO, VOC, CVAT, masks): which frames are images, and
boxes and polygons made ready for an image-based format, every change recorded in the report.

Frame status decides what happens to a frame, in every 2D writer alike (the one rule):

- *reviewed and empty* (``FrameStatus.EMPTY``: labelled, no label on it) is written as a
  negative: an image entry with no annotations, an empty label file, an empty mask;
- *not labelled yet* (``FrameStatus.UNLABELLED`` and no label) is left out and reported as
  ``skipped`` (writing it would claim "no objects"), unless the writer is asked to include it;
- *unknown* (``FrameStatus.UNKNOWN``: a bare labels file, or an image of ``--images`` that no
  label names) is written like an empty frame: nothing says it is not a negative;
- frames with labels are written.

Boxes: clipped to the image (when its size is known); boxes left with no area are dropped.
Polygons: rings combined by the even-odd rule, repaired with ``make_valid`` (polygonal parts
only), oriented, clipped to the image by true intersection; labels left with no area are
dropped. Boxes and areas of the output are computed from these *final* geometries.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from converters._base import ordered_map, record, safe_path
from deepen_export import geometry as geo
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, FrameStatus, LabelSet
from deepen_export.report import Action, Report

Array = npt.NDArray[Any]

_2D_TABLES = ("boxes", "polygons", "polylines", "points", "masks2d")

STATUS_NAMES = {int(s): s.name.lower() for s in FrameStatus}
"""``FrameStatus`` value -> the name written into outputs (``"empty"``, ``"unlabelled"``...)."""


def flag(value: Any) -> bool:
    """Booleans given on the command line as ``-O clip=false`` arrive as strings."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {value!r}")
    return bool(value)


def image_frames(labels: LabelSet, report: Report | None = None, what: str = "image") -> Array:
    """Rows of ``labels.frames`` that are images, in frame order (:meth:`LabelSet.images`).

    Frames without any label are kept: empty images are part of a dataset. With ``report``,
    the frame-status rule of this module is applied too (:func:`skip_unlabelled`): frames not
    labelled yet are left out and reported.
    """
    frames = labels.images()
    if report is None:
        return frames
    return skip_unlabelled(labels, frames, report, False, what)


def unlabelled(labels: LabelSet, frames: Array) -> Array:
    """Mask over ``frames``: not labelled yet and carrying no 2D label (the frame-status rule)."""
    labelled = np.zeros(len(labels.frames), dtype=bool)
    for name in _2D_TABLES:
        labelled[labels.table(name).frame] = True  # type: ignore[attr-defined]
    return (labels.frames.status[frames] == int(FrameStatus.UNLABELLED)) & ~labelled[frames]


def written_images(labels: LabelSet) -> Array:
    """The image frames a 2D writer writes: :func:`image_frames` under the frame-status rule."""
    frames = labels.images()
    return frames[~unlabelled(labels, frames)]


def skip_unlabelled(
    labels: LabelSet, frames: Array, report: Report, include: bool, what: str
) -> Array:
    """Leave out frames not labelled yet (an empty label file would claim "no objects")."""
    if include:
        return frames
    unl = unlabelled(labels, frames)
    for fid in labels.frames.file_id[frames[unl]]:
        report.add("skipped", f"image not labelled yet: no {what} written", file_id=str(fid))
    return frames[~unl]


def image_names(labels: LabelSet, frames: Array) -> list[str]:
    """Relative image path of each frame in ``frames``, unique (:meth:`LabelSet.image_names`)."""
    return labels.image_names(frames)


def check_paths(
    names: list[str], root: Any, suffix: str | None = None, file_ids: list[str] | None = None
) -> None:
    """Refuse, before anything is written, names that would leave the output folder or collide.

    With ``suffix`` (``a.png`` -> ``a.txt``), two images whose names differ only in their
    extension would write one file; that is refused naming both, never silently overwritten.
    """
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        if not _plainly_safe(name):
            safe_path(root, name)
        final = name
        if suffix is not None:
            final = with_suffix(name, suffix)
            if not _plainly_safe(final):
                safe_path(root, final)
        other = seen.setdefault(final, name)
        if other != name:
            ids = file_ids or names
            raise ConversionError(
                f"images {other!r} and {name!r} would both be written as {final!r}"
                + (f" (file ids {ids[names.index(other)]!r}, {ids[i]!r})" if file_ids else "")
                + ": the format names its files after the image without its extension"
            )


def with_suffix(name: str, suffix: str) -> str:
    """``str(PurePosixPath(name).with_suffix(suffix))``, without building a path per name.

    Examples
    --------
    >>> with_suffix("a/b.c.png", ".txt"), with_suffix("a/.hidden", ".txt"), with_suffix("x.", ".txt")
    ('a/b.c.txt', 'a/.hidden.txt', 'x..txt')
    """
    tail = name.rpartition("/")[2]
    if "//" in name or "/./" in name or name.startswith("./") or tail in ("", ".", ".."):
        return str(PurePosixPath(name).with_suffix(suffix))  # paths pathlib would normalise
    dot = tail.rfind(".")
    if 0 < dot < len(tail) - 1:  # pathlib's suffix: a dot neither first nor last
        return name[: len(name) - len(tail) + dot] + suffix
    return name + suffix


_PLAIN = re.compile(r"[A-Za-z0-9_.,+=@~()\[\] /-]{1,200}")


def _plainly_safe(name: str) -> bool:
    """Whether ``safe_path`` surely accepts ``name``; only the others pay for its parsing.

    Short ASCII names without a drive, a backslash or a NUL, not absolute, with no ``..`` and
    not made of dots and slashes only: every rule of ``safe_path`` holds for them.
    """
    return (
        _PLAIN.fullmatch(name) is not None
        and name[0] != "/"
        and ".." not in name
        and name.strip("./") != ""
    )


def report_unknown_sizes(
    labels: LabelSet, frames: Array, report: Report, what: str, *, drop_labels: bool = False
) -> Array:
    """Report once per image whose size is unknown; returns the mask of such images.

    With ``drop_labels`` the images are not written at all: the image and every 2D box and
    polygon on it are reported as dropped.
    """
    w, h = labels.frames.width[frames], labels.frames.height[frames]
    unknown = (w <= 0) | (h <= 0)
    action: Action = "dropped" if drop_labels else "kept"
    for f in labels.frames.file_id[frames[unknown]]:
        report.add(action, f"image size unknown: {what}", file_id=str(f))
    if drop_labels and unknown.any():
        gone = frames[unknown]
        for kind in ("boxes", "polygons"):
            table = labels.table(kind)
            record(
                report,
                labels,
                kind,
                np.flatnonzero(np.isin(table.frame, gone)),  # type: ignore[attr-defined]
                "dropped",
                f"image size unknown: {what}",
            )
    return unknown


@dataclass(frozen=True)
class PreparedBoxes:
    """Rows of ``labels.boxes`` kept, their final ``xyxy`` and whether clipping changed them."""

    rows: Array
    xyxy: Array
    clipped: Array


@dataclass(frozen=True)
class PreparedPolygons:
    """Rows of ``labels.polygons`` kept, final geometry (``MultiPolygon``), clipped or not."""

    rows: Array
    geoms: Array
    clipped: Array


def _on_images(labels: LabelSet, kind: str, frames: Array) -> Array:
    keep = np.zeros(len(labels.frames), dtype=bool)
    keep[frames] = True
    return keep[labels.table(kind).frame]  # type: ignore[attr-defined]


def prepare_boxes(
    labels: LabelSet, report: Report, frames: Array, *, clip: bool = True
) -> PreparedBoxes:
    """Boxes on ``frames`` clipped to their image; non-finite or empty boxes dropped."""
    b = labels.boxes
    on = _on_images(labels, "boxes", frames)
    xyxy = b.xyxy
    w = labels.frames.width[b.frame].astype(np.float64)
    h = labels.frames.height[b.frame].astype(np.float64)
    if clip:
        xyxy, changed = geo.clip_boxes(xyxy, w, h)
    else:
        changed = np.zeros(len(b), dtype=bool)
    finite = np.isfinite(xyxy).all(axis=1)
    empty = finite & (geo.box_area(xyxy) <= 0)
    record(report, labels, "boxes", on & ~finite, "dropped", "box has non-finite coordinates")
    record(
        report,
        labels,
        "boxes",
        on & empty & changed,
        "dropped",
        "box lies outside the image (nothing left after clipping)",
    )
    record(report, labels, "boxes", on & empty & ~changed, "dropped", "box has zero area")
    keep = on & finite & ~empty
    record(report, labels, "boxes", keep & changed, "clipped", "box clipped to the image")
    rows = np.flatnonzero(keep)
    return PreparedBoxes(rows, xyxy[rows], changed[rows])


def prepare_polygons(
    labels: LabelSet, report: Report, frames: Array, *, clip: bool = True
) -> PreparedPolygons:
    """Polygons on ``frames``: even-odd rings, repaired, oriented, clipped; empty ones dropped."""
    on = _on_images(labels, "polygons", frames)
    geoms, bad_rings, repaired, clipped = polygon_geometries(labels, clip=clip)
    record(report, labels, "polygons", on & bad_rings, "repaired", geo.RING_LEFT_OUT)
    record(report, labels, "polygons", on & repaired, "repaired", geo.POLYGON_REPAIRED)
    area = shapely.area(geoms) if len(geoms) else np.zeros(0)
    empty = ~(area > 0)
    record(
        report,
        labels,
        "polygons",
        on & empty & clipped,
        "dropped",
        "polygon lies outside the image (nothing left after clipping)",
    )
    record(
        report,
        labels,
        "polygons",
        on & empty & ~clipped,
        "dropped",
        "polygon has no area (degenerate)",
    )
    keep = on & ~empty
    record(report, labels, "polygons", keep & clipped, "clipped", "polygon clipped to the image")
    rows = np.flatnonzero(keep)
    return PreparedPolygons(rows, geoms[rows], clipped[rows])


_CHUNK = 25_000
"""Polygon labels per piece of :func:`polygon_geometries` work."""


def polygon_geometries(labels: LabelSet, *, clip: bool = True) -> tuple[Array, Array, Array, Array]:
    """Every polygon label's geometry under the one parts/holes rule
    (:func:`deepen_export.geometry.polygon_geometries`), clipped to its image when ``clip``.

    Labels are independent, so large tables are cut into pieces computed on every core (GEOS
    releases the GIL); the result is the same as in one piece.

    Returns
    -------
    geoms, rings_left_out, repaired, clipped : ndarray
        One entry per row of ``labels.polygons``.
    """
    p = labels.polygons
    w = labels.frames.width[p.frame].astype(np.float64)
    h = labels.frames.height[p.frame].astype(np.float64)

    def piece(a: int, b: int) -> tuple[Array, Array, Array, Array]:
        off = p.offsets[a : b + 1]
        roff = p.ring_offsets[off[0] : off[-1] + 1]
        xy = p.coords[roff[0] : roff[-1]]
        # the one parts/holes rule (Parquet and previews use it too)
        geoms, bad, repaired = geo.polygon_geometries(off - off[0], roff - roff[0], xy)
        if clip:
            geoms, clipped = geo.clip_polygons(geoms, w[a:b], h[a:b])
        else:
            clipped = np.zeros(b - a, dtype=bool)
        return geoms, bad, repaired, clipped

    n = len(p)
    if n <= _CHUNK:
        return piece(0, n)
    cuts = [*range(0, n, _CHUNK), n]
    parts = list(ordered_map(lambda ab: piece(*ab), itertools.pairwise(cuts)))
    return (
        np.concatenate([q[0] for q in parts]),
        np.concatenate([q[1] for q in parts]),
        np.concatenate([q[2] for q in parts]),
        np.concatenate([q[3] for q in parts]),
    )


def frame_fields(frames: Frames, fr: int) -> dict[str, Any]:
    """What a 2D writer's ``frames.json`` sidecar keeps of frame ``fr`` (ids, size, status)."""
    return {
        "file_id": str(frames.file_id[fr]),
        "sensor_id": str(frames.sensor_id[fr]),
        "dataset_id": str(frames.dataset_id[fr]),
        "index": int(frames.index[fr]),
        "width": int(frames.width[fr]),
        "height": int(frames.height[fr]),
        "status": STATUS_NAMES.get(int(frames.status[fr]), "unknown"),
    }


def unique_keys(keys: list[str]) -> list[str]:
    """Make keys unique by suffixing repeats with ``#2``, ``#3``... in order of appearance."""
    seen: dict[str, int] = {}
    out = []
    for k in keys:
        n = seen.get(k, 0) + 1
        seen[k] = n
        out.append(k if n == 1 else f"{k}#{n}")
    return out


def frame_keys(labels: LabelSet, frames: Array) -> list[str]:
    """``dataset_id|sensor_id|file_id`` of each frame: the key images are pinned by."""
    f = labels.frames
    return unique_keys(
        [
            f"{d}|{s}|{i}"
            for d, s, i in zip(
                f.dataset_id[frames], f.sensor_id[frames], f.file_id[frames], strict=True
            )
        ]
    )
