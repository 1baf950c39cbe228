"""2D semantic painting (``.npy`` per image + per-file category lists) -> ``Masks2D``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepen_export.errors import ParseError
from deepen_export.model import (
    Frames,
    FrameStatus,
    LabelSet,
    Masks2D,
)
from deepen_export.parse._assemble import _offsets, natural_key
from deepen_export.parse._shapes import load_json
from deepen_export.report import Issue


def _sanitize(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def parse_painting2d(
    folder: str | os.PathLike[str], labels: LabelSet | None = None, *, dataset_id: str = ""
) -> LabelSet:
    """Add 2D semantic painting (``.npy`` per image + ``metadata.json``) to ``labels``.

    The metadata maps ``{sensor_id: {file_id: [category, ...]}}``; each mask value is a 1-based
    index into *that file's* list (0 = unpainted) and is remapped to the label set's categories.
    A mask stored flat (``h * w`` values) takes its shape from the frame's image size.

    Examples
    --------
    >>> import tempfile, json, numpy as np, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "Semantic Segmentation - metadata.json").write_text(json.dumps({"sensor1": {"a.png": ["sky", "road"]}}))
    >>> np.save(d / "Semantic Segmentation - sensor1 - a_png.npy", np.array([[0, 1], [2, 2]], np.uint8))
    >>> ls = parse_painting2d(d)
    >>> ls.categories, ls.masks2d.mask(0).tolist()
    (('road', 'sky'), [[-1, 1], [0, 0]])
    """
    folder = Path(folder)
    metas = sorted(folder.glob("*metadata.json"))
    if not metas:
        raise ParseError("no '... metadata.json' found for 2D painting", path=str(folder))
    labels = labels or LabelSet.empty()
    issues: list[Issue] = []
    entries = _entries(folder, load_json(metas[0]), issues)
    cats_all = _categories(labels.categories, entries)
    cat_index = {c: i for i, c in enumerate(cats_all)}
    row_of: dict[tuple[str, str], int] = {}
    for i, (d, f, sensor) in enumerate(labels.frames.keys()):
        if not dataset_id or d == dataset_id:
            row_of.setdefault((f, sensor), i)
    cols: dict[str, list[Any]] = {k: getattr(labels.frames, k).tolist() for k in Frames.COLUMNS}
    rows, hs, ws, pix = [], [], [], []
    for sensor, file_id, cats, p in sorted(entries, key=lambda e: (e[0], natural_key(e[1]))):
        r = row_of.get((file_id, sensor))
        if r is None:
            r = row_of[(file_id, sensor)] = len(cols["file_id"])
            new = {"file_id": file_id, "sensor_id": sensor, "dataset_id": dataset_id}
            for c, spec in Frames.COLUMNS.items():
                cols[c].append(new.get(c, spec.fill))
        m = _mask(p, cols["width"][r], cols["height"][r], len(cats))
        if m is None:
            issues.append(
                Issue(
                    "skipped", "flat 2D painting mask without a known image size", file_id=file_id
                )
            )
            continue
        lut = np.array([-1] + [cat_index[c] for c in cats], dtype=np.int32)
        rows.append(r)
        hs.append(m.shape[0])
        ws.append(m.shape[1])
        pix.append(lut[m.astype(np.int64).ravel()])
        if cols["width"][r] < 0:
            cols["width"][r], cols["height"][r] = m.shape[1], m.shape[0]
        if cols["status"][r] == int(FrameStatus.UNKNOWN):
            cols["status"][r] = int(FrameStatus.LABELLED)
    masks = Masks2D.from_columns(
        frame=rows,
        height=hs,
        width=ws,
        offsets=_offsets(len(p) for p in pix),
        pixels=np.concatenate(pix) if pix else np.zeros(0, np.int32),
    )
    return labels.replace(
        frames=Frames.from_columns(**cols),
        categories=tuple(cats_all),
        masks2d=masks,
        issues=(*labels.issues, *issues),
    )


def _entries(
    folder: Path, meta: Any, issues: list[Issue]
) -> list[tuple[str, str, list[str], Path]]:
    """``(sensor, file_id, categories, .npy path)`` per painted image the metadata lists."""
    npys = {p.name: p for p in folder.glob("*.npy")}
    entries = []
    for sensor, per_file in (meta or {}).items():
        if not isinstance(per_file, Mapping):
            continue
        for file_id, cats in per_file.items():
            want = _sanitize(f"{sensor} {file_id}")
            match = [p for n, p in npys.items() if _sanitize(n[: -len(".npy")]).endswith(want)]
            if not match:
                issues.append(
                    Issue(
                        "skipped",
                        "2D painting listed in metadata but its .npy is missing",
                        file_id=file_id,
                    )
                )
                continue
            entries.append((str(sensor), str(file_id), [str(c) for c in cats], match[0]))
    return entries


def _categories(known: Sequence[str], entries: list[tuple[str, str, list[str], Path]]) -> list[str]:
    """The label set's categories, then the painting's new ones in sorted order."""
    new = {c for _, _, cats, _ in entries for c in cats} - set(known)
    return [*known, *sorted(new)]


def _mask(p: Path, width: int, height: int, n_cats: int) -> np.ndarray | None:
    """The ``(h, w)`` mask in ``p``; None for a flat mask whose image size is unknown."""
    try:
        m = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ParseError(f"cannot read mask: {exc}", path=str(p)) from exc
    if m.ndim == 1:
        if width <= 0 or height <= 0 or width * height != m.size:
            return None
        m = m.reshape(height, width)
    if m.ndim != 2:
        raise ParseError(f"mask must be 2-D, got shape {m.shape}", path=str(p))
    if int(m.max(initial=0)) > n_cats:
        raise ParseError(
            f"mask value {int(m.max())} is beyond the file's {n_cats} categories", path=str(p)
        )
    return m
