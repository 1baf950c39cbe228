"""The back end both parse paths share: the parse context, frames and their order, category order."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepen_export.model import (
    FrameRole,
    Frames,
    FrameStatus,
    LabelSet,
    LabelTable,
)
from deepen_export.report import Issue

_DONE = {"done", "finished", "completed", "complete", "labelled", "labeled", "accepted"}

_NOT_DONE = {"waiting", "ready", "in_progress", "not_started", "pending", "todo", "unlabelled"}


def natural_key(s: str) -> tuple[Any, ...]:
    """Sort key that orders ``"2.pcd"`` before ``"10.pcd"``.

    Examples
    --------
    >>> sorted(["10.pcd", "2.pcd", "1.pcd"], key=natural_key)
    ['1.pcd', '2.pcd', '10.pcd']
    """
    parts = _DIGITS.split(s)
    parts[1::2] = [int(t) for t in parts[1::2]]
    return tuple(parts)


_DIGITS = re.compile(r"(\d+)")

DEEPEN_FIELDS: dict[str, str] = {
    name: c.deepen for name, c in LabelTable.COLUMNS.items() if c.deepen is not None
}
"""Common label columns read from a Deepen label field of the same value (``Col.deepen``)."""


@dataclass
class _Ctx:
    issues: list[Issue] = field(default_factory=list)
    frame_keys: dict[tuple[str, str, str], int] = field(default_factory=dict)
    listed_files: list[tuple[str, str]] = field(default_factory=list)
    dataset_id: str = ""

    def issue(self, reason: str, label: Mapping[str, Any] | None, action: str = "dropped") -> None:
        lab = label if isinstance(label, Mapping) else {}
        self.issues.append(
            Issue(
                action,  # type: ignore[arg-type]
                reason,
                file_id=_s(lab.get("file_id")) or None,
                label_id=_s(lab.get("label_id")) or None,
                kind=_s(lab.get("label_type")) or None,
            )
        )

    def frame(self, label: Mapping[str, Any]) -> int:
        key = (
            _s(label.get("dataset_id")) or self.dataset_id,
            _s(label.get("file_id")),
            _s(label.get("sensor_id")),
        )
        idx = self.frame_keys.get(key)
        if idx is None:
            idx = self.frame_keys[key] = len(self.frame_keys)
        return idx


def _s(v: Any) -> str:
    return "" if v is None else str(v)


_INT64 = range(-(2**63), 2**63)


def _int(v: Any) -> int:
    """A time/version number; -1 (unknown) for a non-number, inf, NaN or one outside int64."""
    try:
        n = int(v) if v is not None else -1
    except (TypeError, ValueError, OverflowError):
        return -1
    return n if n in _INT64 else -1


def _offsets(counts: Iterable[int]) -> np.ndarray:
    c = np.fromiter(counts, dtype=np.int64)
    out = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=out[1:])
    return out


def _ro(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def categories_from_profile(profile: Mapping[str, Any] | None) -> list[str]:
    """Category names in the order a labelling profile lists them (features, then ids).

    Examples
    --------
    >>> categories_from_profile({"features": {"box": {"label_category_ids": ["car", "bus"]},
    ...                                       "polygon": {"label_category_ids": ["road", "car"]}}})
    ['car', 'bus', 'road']
    """
    if not profile:
        return []
    features = profile.get("features") or profile.get("profile", {}).get("features") or {}
    out: dict[str, None] = {}
    if isinstance(features, Mapping):
        for feat in features.values():
            if isinstance(feat, Mapping):
                for c in feat.get("label_category_ids") or []:
                    out[str(c)] = None
    return list(out)


def _order_categories(used: Iterable[str], profile_order: Sequence[str]) -> list[str]:
    rest = sorted(set(used) - set(profile_order))
    return [*profile_order, *rest]


def _file_status(f: Mapping[str, Any]) -> FrameStatus | None:
    for key in (
        "status",
        "labelling_status",
        "file_status",
        "current_stage_status",
        "stage_status",
    ):
        v = f.get(key)
        if isinstance(v, str):
            v = v.lower()
            if v in _DONE:
                return FrameStatus.EMPTY
            if v in _NOT_DONE:
                return FrameStatus.UNLABELLED
    return None


def _frames_table(
    ctx: _Ctx, files: Sequence[Mapping[str, Any]] | None
) -> tuple[Frames, np.ndarray]:
    """Frames of labelled views plus listed files without labels, in sequence order.

    Returns the table and the map from the context's provisional frame numbers to rows.
    """
    labelled = list(ctx.frame_keys)
    status: dict[tuple[str, str, str], FrameStatus] = dict.fromkeys(labelled, FrameStatus.LABELLED)
    order: dict[tuple[str, str], int] = {}
    with_labels = {(d, f) for d, f, _ in labelled}
    file_status: dict[tuple[str, str], FrameStatus | None] = {}
    if files:
        for i, f in enumerate(files):
            fid = _s(f.get("file_id"))
            if not fid:
                continue
            ds = _s(f.get("dataset_id")) or ctx.dataset_id
            order.setdefault((ds, fid), i)
            st = _file_status(f)
            file_status[(ds, fid)] = st
            if (ds, fid) not in with_labels:
                sensors = f.get("sensors") or [""]
                for s in sensors if isinstance(sensors, list) else [""]:
                    key = (ds, fid, _s(s))
                    status.setdefault(key, st or FrameStatus.UNKNOWN)
    known = {k[:2] for k in status}
    for ds, fid in ctx.listed_files:
        if (ds, fid) not in known:
            known.add((ds, fid))
            status[(ds, fid, "")] = file_status.get((ds, fid)) or FrameStatus.UNKNOWN
    if not order:
        names = sorted({(d, f) for d, f, _ in status}, key=lambda k: (k[0], natural_key(k[1])))
        order = {k: i for i, k in enumerate(names)}
    else:
        extra = sorted(
            {(d, f) for d, f, _ in status} - set(order), key=lambda k: (k[0], natural_key(k[1]))
        )
        for k in extra:
            order[k] = len(order)
    # index = position within its dataset's sequence
    per_ds: dict[str, list[tuple[int, str]]] = {}
    for (d, fid), pos in order.items():
        per_ds.setdefault(d, []).append((pos, fid))
    index = {(d, fid): i for d, items in per_ds.items() for i, (_, fid) in enumerate(sorted(items))}
    keys = sorted(status, key=lambda k: (k[0], index.get(k[:2], 0), k[2]))
    row = {k: i for i, k in enumerate(keys)}
    remap = np.array([row[k] for k in labelled], dtype=np.int64)
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    for f in files or ():
        w, h = f.get("width"), f.get("height")
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            sizes[(_s(f.get("dataset_id")) or ctx.dataset_id, _s(f.get("file_id")))] = (w, h)
    frames = Frames.from_columns(
        dataset_id=[k[0] for k in keys],
        file_id=[k[1] for k in keys],
        sensor_id=[k[2] for k in keys],
        index=[index.get(k[:2], -1) for k in keys],
        width=[sizes.get(k[:2], (-1, -1))[0] for k in keys],
        height=[sizes.get(k[:2], (-1, -1))[1] for k in keys],
        status=[int(status[k]) for k in keys],
    )
    return frames, remap


def _lidar_frame_rows(labels: LabelSet, dataset_id: str) -> list[int]:
    """The LiDAR frames of one dataset, in sequence order (what paint labels are laid over)."""
    rows = labels.lidar_frames()
    return [int(r) for r in rows if labels.frames.dataset_id[r] == dataset_id]


def mark_lidar(labels: LabelSet, dataset_id: str) -> LabelSet:
    """Record that ``dataset_id`` is a 3D dataset: its rows that are not camera views are LiDAR frames."""
    fr = labels.frames
    ours = (fr.dataset_id == dataset_id) & (fr.role != FrameRole.CAMERA)
    if not ours.any() or (fr.role[ours] == FrameRole.LIDAR).all():
        return labels
    role = np.where(ours, int(FrameRole.LIDAR), fr.role).astype(np.int8)
    return labels.replace(frames=dataclasses.replace(fr, role=_ro(role)))


def build_labelset(
    tables: Mapping[str, Any],
    ctx: _Ctx,
    categories: Sequence[str],
    files: Sequence[Mapping[str, Any]] | None,
    path: str | None,
) -> LabelSet:
    """The one back end of both parse paths: final frames, frame rows remapped, the LabelSet.

    ``tables`` hold provisional frame numbers (``ctx.frame``); here they become rows of the
    frames table, which also gets the listed files without labels and the sequence order.
    """
    frames, remap = _frames_table(ctx, files)
    final = {k: _reframe(t, remap) for k, t in tables.items()}
    return LabelSet(
        frames=frames,
        categories=tuple(categories),
        issues=tuple(ctx.issues),
        meta={"source": path} if path else {},
        **final,
    )


def _reframe(t: Any, remap: np.ndarray) -> Any:
    return dataclasses.replace(t, frame=_ro(remap[t.frame]))


def is_str_column(column: str) -> bool:
    """Whether common label column ``column`` holds strings (else int64, -1 unknown)."""
    return LabelTable.COLUMNS[column].dtype == "O"
