"""3D paint labels (``.dpn`` body + ``paint-metadata``) -> per-point classes and instances."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepen_export.errors import ParseError
from deepen_export.model import (
    LabelSet,
    PointSegmentation,
)
from deepen_export.parse._assemble import _lidar_frame_rows, _offsets
from deepen_export.parse._shapes import load_json
from deepen_export.snapshot import paint_metadata


@dataclass(frozen=True)
class PaintLabels:
    """Decoded 3D paint labels: per point, a 1-based category (0 unpainted) and an instance id."""

    categories: tuple[str, ...]
    frame_sizes: tuple[int, ...]
    category: np.ndarray
    instance: np.ndarray | None


def parse_paint_labels(
    body: bytes,
    metadata: Mapping[str, Any] | str | bytes,
    *,
    frame_sizes: Sequence[int] | None = None,
    instance: bool | None = None,
    path: str | None = None,
) -> PaintLabels:
    """Decode a ``.dpn`` paint-label body (zlib/pako compressed or raw).

    Parameters
    ----------
    body : bytes
        The response body or ``.dpn`` file content.
    metadata : dict or JSON str
        The ``paint-metadata`` header: ``paint_categories`` and usually ``frame_sizes``.
    frame_sizes : sequence of int, optional
        Points per frame when the metadata does not carry them (``DatasetResource.frame_sizes``).
    instance : bool, optional
        Force the 3-bytes-per-point instance layout (category, label id low byte, high byte);
        by default it is chosen when the body holds three bytes per point.
    path : str, optional
        Name used in errors.

    Returns
    -------
    PaintLabels

    Raises
    ------
    ParseError
        When the size disagrees with ``frame_sizes`` or a category index is out of range.

    Examples
    --------
    >>> import zlib
    >>> p = parse_paint_labels(zlib.compress(bytes([0, 1, 2, 1])), {"paint_categories": ["car", "road"],
    ...                        "frame_sizes": [3, 1], "format": "pako_compressed"})
    >>> p.category.tolist(), p.frame_sizes
    ([0, 1, 2, 1], (3, 1))
    """
    meta = _metadata(metadata, path)
    cats = _categories(meta.get("paint_categories"), path)
    sizes = _frame_sizes(meta.get("frame_sizes") or frame_sizes, path)
    n = sum(sizes)
    data = _inflate(body, 3 * n, path)
    arr = np.frombuffer(data, dtype=np.uint8)
    if instance is None:
        instance = len(arr) == 3 * n and len(arr) != n
    expected = 3 * n if instance else n
    if len(arr) != expected:
        raise ParseError(
            f"paint labels hold {len(arr)} bytes but frame_sizes add up to {n} points"
            + (" (3 bytes per point for instance paint)" if instance else "")
            + f" over {len(sizes)} frames",
            path=path,
        )
    cat = arr[:n]
    if len(cat) and int(cat.max()) > len(cats):
        raise ParseError(
            f"paint category index {int(cat.max())} is beyond the {len(cats)} paint_categories",
            path=path,
        )
    inst = None
    if instance:
        inst = arr[n : 2 * n].astype(np.int32) + 256 * arr[2 * n :].astype(np.int32)
    return PaintLabels(cats, sizes, cat, inst)


def _inflate(body: bytes, limit: int, path: str | None) -> bytes:
    """The body decompressed (raw when it is not zlib), never more than ``limit`` + 1 bytes:
    instance paint is 3 bytes a point, so more than that is refused before it fills memory."""
    d = zlib.decompressobj()
    try:
        data = d.decompress(body, limit + 1)
    except zlib.error:
        return bytes(body)
    if len(data) > limit or d.unconsumed_tail:
        raise ParseError(
            f"paint labels decompress to more than the {limit:,} bytes frame_sizes allow "
            "(3 per point): refused (wrong frame_sizes, or not a paint body)",
            path=path,
        )
    return data


def _metadata(metadata: Mapping[str, Any] | str | bytes, path: str | None) -> dict[str, Any]:
    """The paint-metadata as an object; anything else is one clear error naming the file."""
    try:
        meta = json.loads(metadata) if isinstance(metadata, (str, bytes)) else metadata
    except ValueError as exc:  # JSONDecodeError and a body that is not UTF-8
        raise ParseError(f"paint-metadata is not valid JSON: {exc}", path=path) from exc
    if not isinstance(meta, Mapping):
        raise ParseError(
            f"paint-metadata must be a JSON object, not {type(meta).__name__}", path=path
        )
    return dict(meta)


def _categories(raw: Any, path: str | None) -> tuple[str, ...]:
    """``paint_categories``: a list of names (a bare string is not split into its letters)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ParseError(
            f"paint-metadata paint_categories must be a list of names, not {raw!r:.60}", path=path
        )
    return tuple(raw)


def _frame_sizes(raw: Any, path: str | None) -> tuple[int, ...]:
    """``frame_sizes``: a list of point counts, one per frame (each a non-negative integer)."""
    if raw is None:
        raise ParseError(
            "paint labels need frame_sizes (in paint-metadata or the dataset resource)", path=path
        )
    ok = isinstance(raw, (list, tuple)) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw
    )
    if not ok:
        raise ParseError(
            f"frame_sizes must be a list of non-negative point counts, not {raw!r:.60}", path=path
        )
    return tuple(int(s) for s in raw)


def _paint_to_table(
    paint: PaintLabels, frame_rows: Sequence[int], cat_index: Mapping[str, int], path: str | None
) -> PointSegmentation:
    if len(frame_rows) != len(paint.frame_sizes):
        raise ParseError(
            f"paint labels cover {len(paint.frame_sizes)} frames but the dataset has {len(frame_rows)} LiDAR frames",
            path=path,
        )
    lut = np.array([-1] + [cat_index[c] for c in paint.categories], dtype=np.int32)
    inst = paint.instance
    return PointSegmentation.from_columns(
        frame=list(frame_rows),
        offsets=_offsets(paint.frame_sizes),
        category=lut[paint.category],
        instance=np.where(inst > 0, inst, -1).astype(np.int32)
        if inst is not None
        else np.full(len(paint.category), -1, np.int32),
    )


def _read_paint(body: Path, dataset: Mapping[str, Any], instance: bool | None) -> PaintLabels:
    meta_path = paint_metadata(body)
    meta = load_json(meta_path) if meta_path.is_file() else {}
    return parse_paint_labels(
        body.read_bytes(),
        meta,
        frame_sizes=dataset.get("frame_sizes"),
        instance=instance,
        path=str(body),
    )


def _add_paint(
    labels: LabelSet,
    semantic: Path | None,
    instance: Path | None,
    dataset: Mapping[str, Any],
    dataset_id: str,
) -> LabelSet:
    """Semantic paint gives the classes; instance paint (3 bytes a point) adds instance ids."""
    sem = _read_paint(semantic, dataset, None) if semantic is not None else None
    inst = _read_paint(instance, dataset, True) if instance is not None else None
    paint = sem or inst
    assert paint is not None
    body = semantic or instance
    if sem is not None and inst is not None:
        if sem.frame_sizes != inst.frame_sizes:
            raise ParseError(
                f"semantic and instance paint labels disagree on frame_sizes "
                f"({sum(sem.frame_sizes)} vs {sum(inst.frame_sizes)} points)",
                path=str(instance),
            )
        paint = PaintLabels(sem.categories, sem.frame_sizes, sem.category, inst.instance)
    cats = list(labels.categories)
    extra = sorted(set(paint.categories) - set(cats))
    cats += extra
    rows = _lidar_frame_rows(labels, dataset_id)
    if len(rows) < len(paint.frame_sizes) and not len(labels.poses):
        raise ParseError(
            f"paint labels cover {len(paint.frame_sizes)} frames but only {len(rows)} LiDAR frames are known; "
            "pull with --media (or pass --media json_data.zip to convert) so every frame is known",
            path=str(body),
        )
    seg = _paint_to_table(paint, rows, {c: i for i, c in enumerate(cats)}, str(body))
    return labels.replace(categories=tuple(cats), point_segmentation=seg)
