"""Parsing Deepen output into a :class:`~deepen_export.model.LabelSet`: pure functions, no HTTP.

Accepted label responses
------------------------
- ``{"labels": [label, ...]}`` (what the label endpoint returns in practice),
- ``{"all_labels": [label, ...]}`` (what Deepen's documentation shows),
- ``{"labels": {"<file_id>": [label, ...], ...}}`` (``labels_with_file_ids_order=true``; files with
  an empty list become frames with no labels),
- a bare list of labels (one file's labels), and the multi-dataset response of
  ``labels_of_dataset_ids`` whose labels carry ``dataset_id``.

Label geometry by ``label_type``
--------------------------------
=============== ============================================================================
``box``         ``box: [x, y, width, height]`` (pixels, top-left) -> ``Boxes.xyxy``
``polygon``     ``polygons: [[[x, y], ...], ...]`` (rings) -> ``Polygons``
``lane``        ``polygons`` (one polyline per entry); also ``polyline``/``points``/``lane``
``point``       undocumented by Deepen; accepted: ``point: [x, y]``, ``point: {"x", "y"}``,
                ``points: [[x, y], ...]``, ``polygons: [[[x, y], ...]]``, ``keypoints``
``scene``       no geometry -> ``Scenes``
``3d_bbox``     ``three_d_bbox: {cx, cy, cz, l, w, h}`` with ``rot_z`` (radians, right-handed
                yaw about +z, an assumption: Deepen does not document the sign) *or*
                ``quaternion: {x, y, z, w}`` -> ``Cuboids`` (world frame)
``3d_polyline`` undocumented; accepted under ``three_d_polyline``, ``polyline``, ``polylines``,
                ``points`` or ``polygons``, points as ``[x, y, z]`` or ``{"x", "y", "z"}``,
                one part or a list of parts
``3d_polygon``  undocumented; as ``3d_polyline`` (also ``three_d_polygon``, ``polygon``)
``3d_point``    undocumented as a vector label; ``three_d_point``/``point``/``points``
=============== ============================================================================

Anything else (an unknown ``label_type``, a missing or non-finite geometry, a label without a
``file_id``) is left out of the tables and recorded in ``LabelSet.issues`` with its ``file_id``
and ``label_id``: never a crash, never silence.

Other inputs
------------
- 3D paint labels (``.dpn`` + ``paint-metadata``): :func:`parse_paint_labels`.
- 2D semantic painting (``.npy`` per image + per-file category lists): :func:`parse_painting2d`.
- The uploaded 3D frames (``json_data.zip``: one JSON per frame): :func:`parse_frames_zip`.
- A snapshot folder written by ``deepen-export pull``: :func:`parse_snapshot`.

Speed
-----
Large ``{"labels": [...]}`` files of boxes, polygons, lanes and cuboids go through a columnar path
(:mod:`deepen_export._fastparse`, pyarrow's C++ JSON reader) that never builds per-label Python
objects; anything it cannot take falls back to the general path here, which gives the same result.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from deepen_export import _imagesizes
from deepen_export.errors import ParseError
from deepen_export.model import (
    Boxes,
    Cameras,
    Cuboids,
    Frames,
    FrameStatus,
    LabelSet,
    Masks2D,
    PointClouds,
    Points,
    Points3D,
    PointSegmentation,
    Polygons,
    Polygons3D,
    Polylines,
    Polylines3D,
    Poses,
    Scenes,
)
from deepen_export.report import Issue

__all__ = [
    "FramesData",
    "PaintLabels",
    "iter_label_batches",
    "load_json",
    "natural_key",
    "parse_frames_zip",
    "parse_labels",
    "parse_paint_labels",
    "parse_painting2d",
    "parse_snapshot",
    "parse_source",
    "yaw_to_quat",
]

LABEL_TYPES = (
    "box",
    "polygon",
    "lane",
    "polyline",
    "point",
    "scene",
    "3d_bbox",
    "3d_polyline",
    "3d_polygon",
    "3d_point",
)

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


def yaw_to_quat(yaw: Any) -> np.ndarray:
    """Quaternions ``(n, 4)`` as (x, y, z, w) for rotations by ``yaw`` radians about +z.

    Examples
    --------
    >>> yaw_to_quat([0.0]).tolist()
    [[0.0, 0.0, 0.0, 1.0]]
    """
    y = np.asarray(yaw, dtype=np.float64).reshape(-1)
    q = np.zeros((len(y), 4))
    q[:, 2] = np.sin(y / 2)
    q[:, 3] = np.cos(y / 2)
    return q


def load_json(source: Any, *, path: str | None = None) -> Any:
    """Parse JSON from a path, bytes or str, with a :class:`ParseError` naming the file on failure.

    Deepen bodies may contain the non-standard ``NaN``/``Infinity`` tokens; they are accepted
    (and caught later as non-finite coordinates).
    """
    if isinstance(source, (str, os.PathLike)) and not (
        isinstance(source, str) and source.lstrip()[:1] in "{["
    ):
        path = path or os.fspath(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ParseError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    else:
        data = source.encode() if isinstance(source, str) else bytes(source)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(data)
        except UnicodeDecodeError as exc2:
            raise ParseError(
                f"not valid UTF-8 at byte {exc2.start}; the file may be truncated or damaged: fetch it again",
                path=path or "<input>",
            ) from exc
        except json.JSONDecodeError as exc2:
            raise ParseError(
                f"not valid JSON ({exc2.msg} at line {exc2.lineno}, column {exc2.colno}); "
                "the file may be truncated: fetch it again",
                path=path or "<input>",
            ) from exc


# ---------------------------------------------------------------------------------------
# label JSON -> tables


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


def _iter_response(obj: Any, ctx: _Ctx, path: str | None) -> Iterator[Mapping[str, Any]]:
    if isinstance(obj, list):
        yield from obj
        return
    if not isinstance(obj, Mapping):
        raise ParseError(
            f"expected a JSON object with 'labels' or 'all_labels', got {type(obj).__name__}",
            path=path,
        )
    if "labels" in obj:
        labels = obj["labels"]
    elif "all_labels" in obj:
        labels = obj["all_labels"]
    elif "label_type" in obj:
        yield obj
        return
    else:
        raise ParseError(
            f"expected a JSON object with 'labels' or 'all_labels', found keys {sorted(obj)[:8]}",
            path=path,
        )
    if isinstance(labels, Mapping):
        for file_id, items in labels.items():
            ctx.listed_files.append((ctx.dataset_id, str(file_id)))
            if not isinstance(items, list):
                ctx.issue(f"labels of file {file_id!r} are not a list", {"file_id": file_id})
                continue
            for lab in items:
                if isinstance(lab, Mapping) and "file_id" not in lab:
                    lab = {**lab, "file_id": file_id}
                yield lab
    elif isinstance(labels, list):
        yield from labels
    elif labels is None:
        return
    else:
        raise ParseError(
            f"'labels' must be a list or an object, got {type(labels).__name__}", path=path
        )


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"not a number: {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"non-finite coordinate {v!r}")
    return f


def _point(p: Any, dim: int) -> list[float]:
    if isinstance(p, Mapping):
        keys = ("x", "y", "z")[:dim]
        if not all(k in p for k in keys):
            raise ValueError(f"point {p!r} lacks {'/'.join(keys)}")
        return [_num(p[k]) for k in keys]
    if isinstance(p, (list, tuple)) and len(p) >= dim:
        if len(p) > dim and dim == 2:
            raise ValueError(f"expected [x, y], got {len(p)} numbers")
        return [_num(c) for c in p[:dim]]
    raise ValueError(f"expected a point with {dim} coordinates, got {p!r}")


def _is_point(p: Any, dim: int) -> bool:
    if isinstance(p, Mapping):
        return "x" in p
    return (
        isinstance(p, (list, tuple))
        and len(p) >= dim
        and all(isinstance(c, (int, float)) for c in p)
    )


def _parts(obj: Any, dim: int) -> list[list[list[float]]]:
    """Normalise one point / a list of points / a list of lists of points to parts."""
    if _is_point(obj, dim):
        return [[_point(obj, dim)]]
    if not isinstance(obj, (list, tuple)) or not obj:
        raise ValueError(f"expected a list of points, got {obj!r}"[:120])
    if all(_is_point(p, dim) for p in obj):
        return [[_point(p, dim) for p in obj]]
    parts = []
    for part in obj:
        if not isinstance(part, (list, tuple)) or not all(_is_point(p, dim) for p in part):
            raise ValueError("expected a list of points or a list of lists of points")
        parts.append([_point(p, dim) for p in part])
    return parts


def _first(label: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        v = label.get(k)
        if v is not None:
            return v
    raise KeyError(f"no geometry: expected one of {', '.join(keys)}")


def _open_ring(ring: list[list[float]]) -> list[list[float]]:
    if len(ring) > 1 and ring[0] == ring[-1]:
        return ring[:-1]
    return ring


_GEOMETRY_KEYS = {
    "lane": ("polygons", "polyline", "polylines", "points", "lane"),
    "polyline": ("polygons", "polyline", "polylines", "points"),
    "point": ("point", "points", "keypoints", "polygons"),
    "3d_polyline": ("three_d_polyline", "polyline", "polylines", "points", "polygons"),
    "3d_polygon": ("three_d_polygon", "polygon", "polygons", "points"),
    "3d_point": ("three_d_point", "point", "points"),
}


def _geometry(lt: str, lab: Mapping[str, Any]) -> Any:
    if lt == "box":
        b = lab.get("box")
        if b is None:
            raise KeyError("no geometry: 'box' is missing")
        if not isinstance(b, (list, tuple)) or len(b) != 4:
            raise ValueError(f"'box' must be [x, y, width, height], got {b!r}"[:120])
        x, y, w, h = (_num(v) for v in b)
        return [min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)], (w < 0 or h < 0)
    if lt == "polygon":
        rings = lab.get("polygons")
        if rings is None:
            raise KeyError("no geometry: 'polygons' is missing")
        parts = _parts(rings, 2)
        return [_open_ring(r) for r in parts if r]
    if lt == "3d_bbox":
        b = lab.get("three_d_bbox")
        if not isinstance(b, Mapping):
            raise KeyError("no geometry: 'three_d_bbox' is missing")
        center = [_num(b[k]) for k in ("cx", "cy", "cz")]
        size = [_num(b[k]) for k in ("l", "w", "h")]
        q = b.get("quaternion")
        if q is not None:
            quat = [_num(q[k]) for k in ("x", "y", "z", "w")]
        elif b.get("rot_z") is not None:
            quat = yaw_to_quat(_num(b["rot_z"]))[0].tolist()
        else:
            raise KeyError("three_d_bbox has neither 'quaternion' nor 'rot_z'")
        return center, size, quat
    dim = 3 if lt.startswith("3d_") else 2
    parts = _parts(_first(lab, _GEOMETRY_KEYS[lt]), dim)
    if lt == "3d_polygon":
        parts = [_open_ring(r) for r in parts]
    return parts


def _attr_value(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _common(labs: list[Mapping[str, Any]], frames: list[int], cats: list[int]) -> dict[str, Any]:
    attrs: dict[str, list[Any]] = {}
    for i, lab in enumerate(labs):
        a = lab.get("attributes")
        if isinstance(a, Mapping):
            for k, v in a.items():
                col = attrs.get(k)
                if col is None:
                    col = attrs[k] = [None] * len(labs)
                col[i] = _attr_value(v)
    attrs = {k: v for k, v in attrs.items() if any(x is not None for x in v)}
    return {
        "frame": frames,
        "category": cats,
        "label_id": [_s(lab.get("label_id")) for lab in labs],
        "stage": [_s(lab.get("stage_id")) for lab in labs],
        "label_set": [_s(lab.get("label_set_id")) for lab in labs],
        "labeller": [_s(lab.get("labeller_email")) for lab in labs],
        "create_time": [_int(lab.get("create_time_millis")) for lab in labs],
        "update_time": [_int(lab.get("update_time_millis")) for lab in labs],
        "version": [_int(lab.get("version")) for lab in labs],
        "attributes": attrs,
    }


def _int(v: Any) -> int:
    try:
        return int(v) if v is not None else -1
    except (TypeError, ValueError):
        return -1


def _offsets(counts: Iterable[int]) -> np.ndarray:
    c = np.fromiter(counts, dtype=np.int64)
    out = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=out[1:])
    return out


def _ragged2(
    parts_per_label: list[list[list[list[float]]]], dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = _offsets(len(p) for p in parts_per_label)
    rings = [r for p in parts_per_label for r in p]
    ring_offsets = _offsets(len(r) for r in rings)
    coords = np.array([c for r in rings for c in r], dtype=np.float64).reshape(-1, dim)
    return offsets, ring_offsets, coords


@dataclass
class _Raw:
    """Per-kind accumulators of the general path, before frames and categories are final."""

    labels: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    geoms: dict[str, list[Any]] = field(default_factory=dict)
    frames: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, lab: Mapping[str, Any], geom: Any, frame: int) -> None:
        self.labels.setdefault(kind, []).append(lab)
        self.geoms.setdefault(kind, []).append(geom)
        self.frames.setdefault(kind, []).append(frame)


_KIND_OF = {
    "box": "boxes",
    "polygon": "polygons",
    "lane": "polylines",
    "polyline": "polylines",
    "point": "points",
    "scene": "scenes",
    "3d_bbox": "cuboids",
    "3d_polyline": "polylines3d",
    "3d_polygon": "polygons3d",
    "3d_point": "points3d",
}


def _collect(labels: Iterable[Any], ctx: _Ctx) -> _Raw:
    raw = _Raw()
    for lab in labels:
        if not isinstance(lab, Mapping):
            ctx.issue(f"a label must be a JSON object, got {type(lab).__name__}", None)
            continue
        lt = _s(lab.get("label_type")).strip()
        if not lab.get("file_id"):
            ctx.issue("label has no file_id", lab)
            continue
        if lt not in _KIND_OF:
            ctx.issue(f"unknown label_type {lt!r}" if lt else "label has no label_type", lab)
            continue
        if not _s(lab.get("label_category_id")):
            ctx.issue("label has no label_category_id", lab)
            continue
        try:
            geom = None if lt == "scene" else _geometry(lt, lab)
        except (KeyError, ValueError, TypeError) as exc:
            msg = exc.args[0] if exc.args else str(exc)
            ctx.issue(f"bad {lt} geometry: {msg}", lab)
            continue
        if lt == "box" and geom is not None and geom[1]:
            ctx.issue("negative box width or height: corners reordered", lab, action="repaired")
        raw.add(_KIND_OF[lt], lab, geom, ctx.frame(lab))
    return raw


def _build_tables(raw: _Raw, cat_index: Mapping[str, int]) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for kind, labs in raw.labels.items():
        geoms = raw.geoms[kind]
        cats = [cat_index[_s(lab.get("label_category_id"))] for lab in labs]
        common = _common(labs, raw.frames[kind], cats)
        if kind == "boxes":
            tables[kind] = Boxes.from_columns(
                **common, xyxy=np.array([g[0] for g in geoms], dtype=np.float64)
            )
        elif kind in ("polygons", "polygons3d", "polylines", "polylines3d"):
            dim = 3 if kind.endswith("3d") else 2
            off, inner, coords = _ragged2(geoms, dim)
            if kind.startswith("polygons"):
                cls: Any = Polygons if dim == 2 else Polygons3D
                tables[kind] = cls.from_columns(
                    **common, offsets=off, ring_offsets=inner, coords=coords
                )
            elif dim == 2:
                tables[kind] = Polylines.from_columns(
                    **common,
                    label_type=[_s(lab.get("label_type")) for lab in labs],
                    offsets=off,
                    part_offsets=inner,
                    coords=coords,
                )
            else:
                tables[kind] = Polylines3D.from_columns(
                    **common, offsets=off, part_offsets=inner, coords=coords
                )
        elif kind in ("points", "points3d"):
            dim = 3 if kind == "points3d" else 2
            flat = [[c for part in g for c in part] for g in geoms]
            off = _offsets(len(f) for f in flat)
            coords = np.array([c for f in flat for c in f], dtype=np.float64).reshape(-1, dim)
            cls = Points if dim == 2 else Points3D
            tables[kind] = cls.from_columns(**common, offsets=off, coords=coords)
        elif kind == "cuboids":
            q = np.array([g[2] for g in geoms], dtype=np.float64).reshape(-1, 4)
            tables[kind] = Cuboids.from_columns(
                **common,
                center=np.array([g[0] for g in geoms], dtype=np.float64).reshape(-1, 3),
                size=np.array([g[1] for g in geoms], dtype=np.float64).reshape(-1, 3),
                quat=q,
                frame_of_reference="world",
            )
        elif kind == "scenes":
            tables[kind] = Scenes.from_columns(**common)
    return tables


def _normalize_quats(tables: dict[str, Any], labels_of: Any, ctx: _Ctx) -> None:
    cub = tables.get("cuboids")
    if cub is None or not len(cub):
        return
    q = cub.quat
    norm = np.linalg.norm(q, axis=1)
    bad = ~(norm > 1e-9)
    off = np.abs(norm - 1.0) > 1e-6
    for i in np.flatnonzero(bad | off):
        lab = labels_of(i)
        ctx.issue(
            "quaternion of length 0: replaced by the identity"
            if bad[i]
            else f"quaternion of length {norm[i]:.6g}: normalised",
            lab,
            action="repaired",
        )
    if (bad | off).any():
        qn = np.where(bad[:, None], [0.0, 0.0, 0.0, 1.0], q / np.where(bad, 1.0, norm)[:, None])
        import dataclasses

        tables["cuboids"] = dataclasses.replace(cub, quat=_ro(qn))


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


def parse_labels(
    obj: Any,
    *,
    path: str | None = None,
    dataset_id: str = "",
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
    fast: bool = True,
) -> LabelSet:
    """Parse one Deepen label response (any documented shape) into a :class:`LabelSet`.

    Parameters
    ----------
    obj : dict, list, bytes, str or path
        The response: a parsed object, its JSON text or bytes, or a path to a JSON file.
    path : str, optional
        Name used in errors and report entries.
    dataset_id : str
        Dataset id for labels that do not carry one.
    categories : sequence of str
        Category order to start from (for example a labelling profile's); categories used by
        labels but not listed are appended in sorted order.
    files : list of dict, optional
        The dataset's files list (``GET /datasets/{id}/files``): files without labels become
        frames, with a review status when the file resource has one.
    fast : bool
        Try the columnar pyarrow path first for files (same result, much faster on large inputs).

    Returns
    -------
    LabelSet

    Raises
    ------
    ParseError
        When the input is not JSON or not one of the documented shapes. Problems with single
        labels never raise: they are listed in ``labels.issues``.

    Examples
    --------
    >>> ls = parse_labels({"all_labels": [{"file_id": "0.pcd", "label_id": "car: 4",
    ...     "label_category_id": "car", "label_type": "3d_bbox", "sensor_id": "lidar",
    ...     "three_d_bbox": {"cx": 1, "cy": 2, "cz": 3, "l": 4, "w": 2, "h": 1.5, "rot_z": 0}}]})
    >>> ls.cuboids.track.tolist(), ls.cuboids.size.tolist()
    ([4], [[4.0, 2.0, 1.5]])
    """
    if (
        fast
        and isinstance(obj, (str, os.PathLike))
        and not (isinstance(obj, str) and obj.lstrip()[:1] in "{[")
    ):
        from deepen_export import _fastparse

        result = _fastparse.try_parse_file(
            obj, dataset_id=dataset_id, categories=categories, files=files
        )
        if result is not None:
            return result
    if isinstance(obj, (bytes, bytearray, memoryview, str, os.PathLike)):
        if (
            path is None
            and isinstance(obj, os.PathLike | str)
            and not (isinstance(obj, str) and obj.lstrip()[:1] in "{[")
        ):
            path = os.fspath(obj)
        obj = load_json(obj, path=path)
    ctx = _Ctx(dataset_id=dataset_id)
    raw = _collect(_iter_response(obj, ctx, path), ctx)
    return _assemble(
        raw, ctx, categories=categories, files=files, meta={"source": path} if path else {}
    )


def _assemble(
    raw: _Raw,
    ctx: _Ctx,
    *,
    categories: Sequence[str],
    files: Sequence[Mapping[str, Any]] | None,
    meta: Mapping[str, Any],
) -> LabelSet:
    used = {_s(lab.get("label_category_id")) for labs in raw.labels.values() for lab in labs}
    cats = _order_categories(used, list(dict.fromkeys(categories)))
    cat_index = {c: i for i, c in enumerate(cats)}
    tables = _build_tables(raw, cat_index)
    if "cuboids" in raw.labels:
        labs = raw.labels["cuboids"]
        _normalize_quats(tables, lambda i: labs[i], ctx)
    frames, remap = _frames_table(ctx, files)
    for kind, t in list(tables.items()):
        import dataclasses

        tables[kind] = dataclasses.replace(t, frame=_ro(remap[t.frame]))
    return LabelSet(
        frames=frames, categories=tuple(cats), issues=tuple(ctx.issues), meta=dict(meta), **tables
    )


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


# ---------------------------------------------------------------------------------------
# 3D paint labels


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
    meta = json.loads(metadata) if isinstance(metadata, (str, bytes)) else dict(metadata)
    cats = tuple(str(c) for c in meta.get("paint_categories") or ())
    sizes = meta.get("frame_sizes") or frame_sizes
    if sizes is None:
        raise ParseError(
            "paint labels need frame_sizes (in paint-metadata or the dataset resource)", path=path
        )
    sizes = tuple(int(s) for s in sizes)
    try:
        data = zlib.decompress(body)
    except zlib.error:
        data = bytes(body)
    arr = np.frombuffer(data, dtype=np.uint8)
    n = sum(sizes)
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


# ---------------------------------------------------------------------------------------
# 3D upload frames (json_data.zip)


@dataclass
class FramesData:
    """What the uploaded 3D frames hold: per-frame device pose, cameras and points."""

    names: list[str]
    poses: list[dict[str, Any]]
    cameras: list[list[dict[str, Any]]]
    points: list[np.ndarray]
    intensity: list[np.ndarray]
    image_sizes: dict[str, tuple[int, int]]
    issues: list[Issue]


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return not (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in p.parts)


def _xyz(d: Any, keys: Sequence[str] = ("x", "y", "z")) -> list[float]:
    if isinstance(d, Mapping):
        return [float(d[k]) for k in keys]
    return [float(v) for v in d][: len(keys)]


def _points_array(pts: Any) -> tuple[np.ndarray, np.ndarray]:
    if not pts:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.float32)
    if isinstance(pts[0], Mapping):
        xyz = np.array([(p["x"], p["y"], p["z"]) for p in pts], dtype=np.float64)
        inten = np.array([p.get("i", np.nan) for p in pts], dtype=np.float32)
    else:
        a = np.array(pts, dtype=np.float64)
        xyz = a[:, :3]
        inten = (
            a[:, 3].astype(np.float32) if a.shape[1] > 3 else np.full(len(a), np.nan, np.float32)
        )
    return xyz, inten


def parse_frames_zip(source: str | os.PathLike[str] | bytes, *, points: bool = True) -> FramesData:
    """Read the uploaded 3D dataset zip: one JSON per frame at the root, sorted by name.

    Entries whose names are absolute or contain ``..`` are never read or extracted; each is
    listed in ``issues``. Frame order is the natural order of the JSON names (``2.json`` before
    ``10.json``), which equals Deepen's ascending order for zero-padded names.

    Parameters
    ----------
    source : path or bytes
        The zip (``json_data.zip`` or the dataset zip downloaded by ``pull --media``).
    points : bool
        Read the point clouds too (set False when only calibration is needed).

    Returns
    -------
    FramesData

    Examples
    --------
    >>> import io, json, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("0.json", json.dumps({"points": [{"x": 1, "y": 2, "z": 3}], "images": [],
    ...         "device_position": {"x": 0, "y": 0, "z": 0}, "device_heading": {"x": 0, "y": 0, "z": 0, "w": 1}}))
    >>> parse_frames_zip(buf.getvalue()).names
    ['0.json']
    """
    path = None if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    try:
        zf = zipfile.ZipFile(
            io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        )
    except (zipfile.BadZipFile, OSError) as exc:
        raise ParseError(f"not a readable zip: {exc}", path=path) from exc
    issues: list[Issue] = []
    with zf:
        members = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            if not _safe_member(info.filename):
                issues.append(
                    Issue(
                        "skipped",
                        f"zip entry {info.filename!r} points outside the archive folder: not read",
                        file_id=info.filename,
                    )
                )
                continue
            members[info.filename] = info
        jsons = [n for n in members if n.lower().endswith(".json") and "/" not in n.strip("/")]
        if not jsons:
            tops = {n.split("/")[0] for n in members if n.lower().endswith(".json")}
            if len(tops) == 1:
                top = tops.pop()
                jsons = [
                    n
                    for n in members
                    if n.lower().endswith(".json") and n.count("/") == 1 and n.startswith(top + "/")
                ]
        jsons.sort(key=lambda n: natural_key(PurePosixPath(n).name))
        data = FramesData([], [], [], [], [], {}, issues)
        for name in jsons:
            try:
                frame = orjson.loads(zf.read(members[name]))
            except orjson.JSONDecodeError as exc:
                raise ParseError(f"frame {name} is not valid JSON: {exc}", path=path) from exc
            if not isinstance(frame, Mapping):
                issues.append(Issue("skipped", "frame JSON is not an object", file_id=name))
                continue
            try:
                pose = {
                    "position": _xyz(frame.get("device_position") or {"x": 0, "y": 0, "z": 0}),
                    "quat": _xyz(
                        frame.get("device_heading") or {"x": 0, "y": 0, "z": 0, "w": 1},
                        ("x", "y", "z", "w"),
                    ),
                    "timestamp": float(frame.get("timestamp", math.nan) or math.nan),
                }
            except (KeyError, TypeError, ValueError) as exc:
                raise ParseError(
                    f"frame {name} has a bad device_position/device_heading: {exc}", path=path
                ) from exc
            cams = []
            for k, im in enumerate(frame.get("images") or []):
                try:
                    dist = [
                        float(im.get(c, 0.0) or 0.0) for c in ("k1", "k2", "p1", "p2", "k3", "k4")
                    ]
                    cams.append(
                        {
                            "sensor_id": f"camera_{k}",
                            "fx": float(im["fx"]),
                            "fy": float(im["fy"]),
                            "cx": float(im["cx"]),
                            "cy": float(im["cy"]),
                            "model": str(im.get("camera_model") or "pinhole"),
                            "distortion": dist,
                            "position": _xyz(im["position"]),
                            "quat": _xyz(im["heading"], ("x", "y", "z", "w")),
                            "image_path": str(im.get("image_url") or ""),
                            "timestamp": float(im.get("timestamp", math.nan) or math.nan),
                        }
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise ParseError(
                        f"frame {name}, image {k}: missing or bad field {exc}", path=path
                    ) from exc
            xyz, inten = (
                _points_array(frame.get("points") or [])
                if points
                else (np.zeros((0, 3)), np.zeros(0, np.float32))
            )
            data.names.append(name)
            data.poses.append(pose)
            data.cameras.append(cams)
            data.points.append(xyz)
            data.intensity.append(inten)
        wanted = {c["image_path"] for cams in data.cameras for c in cams}
        for name, info in members.items():
            if name in wanted or name.lower().endswith((".png", ".jpg", ".jpeg")):
                size = _image_size(zf, info)
                if size:
                    data.image_sizes[name] = size
    return data


def _image_size(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with zf.open(info) as fh, Image.open(fh) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, zipfile.BadZipFile):
        return None


def _frame_stem(file_id: str) -> str:
    return PurePosixPath(file_id).stem


def _attach_frames_data(labels: LabelSet, data: FramesData, dataset_id: str) -> LabelSet:
    """Add poses, cameras, points and image sizes from the uploaded frames to a LabelSet."""
    fr = labels.frames
    by_stem: dict[str, int] = {}
    keys = fr.keys()
    for i, (d, f, s) in enumerate(keys):
        if d == dataset_id and s in ("lidar", ""):
            by_stem.setdefault(_frame_stem(f), i)
    # one LiDAR frame per JSON; create missing frame rows (frames without labels)
    new_rows: list[tuple[str, str, str, int]] = []
    lidar_rows: list[int] = []
    for k, name in enumerate(data.names):
        stem = _frame_stem(name)
        if stem in by_stem:
            lidar_rows.append(by_stem[stem])
        else:
            lidar_rows.append(len(fr) + len(new_rows))
            new_rows.append((dataset_id, f"{stem}.pcd", "lidar", k))
    file_ids = list(fr.file_id) + [r[1] for r in new_rows]
    sensors = list(fr.sensor_id) + [r[2] for r in new_rows]
    datasets = list(fr.dataset_id) + [r[0] for r in new_rows]
    index = fr.index.copy().tolist() + [r[3] for r in new_rows]
    width = fr.width.tolist() + [-1] * len(new_rows)
    height = fr.height.tolist() + [-1] * len(new_rows)
    status = fr.status.tolist() + [int(FrameStatus.UNKNOWN)] * len(new_rows)
    stem_to_k = {_frame_stem(n): k for k, n in enumerate(data.names)}
    for i in range(len(file_ids)):
        if datasets[i] == dataset_id and _frame_stem(file_ids[i]) in stem_to_k:
            index[i] = stem_to_k[_frame_stem(file_ids[i])]
    cam_rows: dict[str, list[Any]] = {k: [] for k in Cameras.COLUMNS}
    for k, cams in enumerate(data.cameras):
        for cam in cams:
            size = data.image_sizes.get(cam["image_path"].lstrip("/"), (-1, -1))
            cam_rows["frame"].append(lidar_rows[k])
            for key in (
                "sensor_id",
                "fx",
                "fy",
                "cx",
                "cy",
                "model",
                "distortion",
                "position",
                "quat",
                "image_path",
                "timestamp",
            ):
                cam_rows[key].append(cam[key])
            cam_rows["width"].append(size[0])
            cam_rows["height"].append(size[1])
            # camera views of this frame take the image size
            fid = file_ids[lidar_rows[k]]
            for i in range(len(file_ids)):
                if (
                    datasets[i] == dataset_id
                    and file_ids[i] == fid
                    and sensors[i] == cam["sensor_id"]
                ):
                    width[i], height[i] = size
    frames = Frames.from_columns(
        file_id=file_ids,
        sensor_id=sensors,
        dataset_id=datasets,
        index=index,
        width=width,
        height=height,
        status=status,
    )
    poses = Poses.from_columns(
        frame=lidar_rows,
        position=np.array([p["position"] for p in data.poses], dtype=np.float64).reshape(-1, 3),
        quat=np.array([p["quat"] for p in data.poses], dtype=np.float64).reshape(-1, 4),
        timestamp=[p["timestamp"] for p in data.poses],
    )
    cameras = (
        Cameras.from_columns(
            **{
                k: (
                    np.asarray(v, dtype=np.float64).reshape(-1, *Cameras.COLUMNS[k].shape)
                    if Cameras.COLUMNS[k].shape
                    else v
                )
                for k, v in cam_rows.items()
            }
        )
        if cam_rows["frame"]
        else Cameras.empty()
    )
    pcs = PointClouds.from_columns(
        frame=lidar_rows,
        offsets=_offsets(len(p) for p in data.points),
        xyz=np.concatenate(data.points) if data.points else np.zeros((0, 3)),
        intensity=np.concatenate(data.intensity) if data.intensity else np.zeros(0, np.float32),
    )
    return labels.replace(
        frames=frames,
        poses=poses,
        cameras=cameras,
        pointclouds=pcs if len(pcs.xyz) else PointClouds.empty(),
        issues=(*labels.issues, *data.issues),
    )


def _lidar_frame_rows(labels: LabelSet, dataset_id: str) -> list[int]:
    fr = labels.frames
    rows = [
        i
        for i in range(len(fr))
        if fr.dataset_id[i] == dataset_id
        and (fr.sensor_id[i] in ("lidar", "") or str(fr.file_id[i]).endswith(".pcd"))
        and not str(fr.sensor_id[i]).startswith("camera")
    ]
    rows.sort(key=lambda i: (int(fr.index[i]), natural_key(str(fr.file_id[i]))))
    return rows


# ---------------------------------------------------------------------------------------
# 2D semantic painting


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
    meta = load_json(metas[0])
    labels = labels or LabelSet.empty()
    npys = {p.name: p for p in folder.glob("*.npy")}
    entries: list[tuple[str, str, list[str], Path]] = []
    issues: list[Issue] = []
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
    cats_all = list(labels.categories)
    for _, _, cats, _ in entries:
        for c in cats:
            if c not in cats_all:
                cats_all.append(c)
    if len(cats_all) > len(labels.categories):
        extra = sorted(cats_all[len(labels.categories) :])
        cats_all = [*labels.categories, *extra]
    cat_index = {c: i for i, c in enumerate(cats_all)}
    row_of: dict[tuple[str, str], int] = {}
    for i, (d, f, sensor) in enumerate(labels.frames.keys()):
        if not dataset_id or d == dataset_id:
            row_of.setdefault((f, sensor), i)
    fr = labels.frames
    file_ids, sensors, datasets = list(fr.file_id), list(fr.sensor_id), list(fr.dataset_id)
    width, height = fr.width.tolist(), fr.height.tolist()
    index, status = fr.index.tolist(), fr.status.tolist()
    rows, hs, ws, pix = [], [], [], []
    for sensor, file_id, cats, p in sorted(entries, key=lambda e: (e[0], natural_key(e[1]))):
        key = (file_id, sensor)
        if key not in row_of:
            row_of[key] = len(file_ids)
            file_ids.append(file_id)
            sensors.append(sensor)
            datasets.append(dataset_id)
            width.append(-1)
            height.append(-1)
            index.append(-1)
            status.append(int(FrameStatus.UNKNOWN))
        r = row_of[key]
        try:
            m = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ParseError(f"cannot read mask: {exc}", path=str(p)) from exc
        if m.ndim == 1:
            if width[r] <= 0 or height[r] <= 0 or width[r] * height[r] != m.size:
                issues.append(
                    Issue(
                        "skipped",
                        "flat 2D painting mask without a known image size",
                        file_id=file_id,
                    )
                )
                continue
            m = m.reshape(height[r], width[r])
        if m.ndim != 2:
            raise ParseError(f"mask must be 2-D, got shape {m.shape}", path=str(p))
        if int(m.max(initial=0)) > len(cats):
            raise ParseError(
                f"mask value {int(m.max())} is beyond the file's {len(cats)} categories",
                path=str(p),
            )
        lut = np.array([-1] + [cat_index[c] for c in cats], dtype=np.int32)
        rows.append(r)
        hs.append(m.shape[0])
        ws.append(m.shape[1])
        pix.append(lut[m.astype(np.int64).ravel()])
        if width[r] < 0:
            width[r], height[r] = m.shape[1], m.shape[0]
        if status[r] == int(FrameStatus.UNKNOWN):
            status[r] = int(FrameStatus.LABELLED)
    frames = Frames.from_columns(
        file_id=file_ids,
        sensor_id=sensors,
        dataset_id=datasets,
        index=index,
        width=width,
        height=height,
        status=status,
    )
    masks = Masks2D.from_columns(
        frame=rows,
        height=hs,
        width=ws,
        offsets=_offsets(len(p) for p in pix),
        pixels=np.concatenate(pix) if pix else np.zeros(0, np.int32),
    )
    return labels.replace(
        frames=frames, categories=tuple(cats_all), masks2d=masks, issues=(*labels.issues, *issues)
    )


# ---------------------------------------------------------------------------------------
# image sizes, snapshots, dispatch


def _with_image_sizes(
    labels: LabelSet,
    images: str | os.PathLike[str] | None,
    zip_sizes: Mapping[str, tuple[int, int]],
) -> LabelSet:
    from PIL import Image, UnidentifiedImageError

    fr = labels.frames
    width, height = fr.width.copy(), fr.height.copy()
    changed = False
    for i, fid in enumerate(fr.file_id):
        if width[i] > 0:
            continue
        size = zip_sizes.get(fid)
        if size is None and images is not None:
            for cand in (Path(images, fid), Path(images, fr.sensor_id[i], fid)):
                if cand.is_file():
                    try:
                        with Image.open(cand) as im:
                            size = im.size
                    except (UnidentifiedImageError, OSError):
                        size = None
                    break
        if size:
            width[i], height[i] = size
            changed = True
    if not changed:
        return labels
    import dataclasses

    return labels.replace(frames=dataclasses.replace(fr, width=_ro(width), height=_ro(height)))


def _read_json_if(path: Path) -> Any:
    return load_json(path) if path.is_file() else None


def parse_snapshot(
    folder: str | os.PathLike[str],
    *,
    frames: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    points: bool = True,
) -> LabelSet:
    """Read a snapshot folder written by ``deepen-export pull`` (or laid out the same way).

    Layout: ``manifest.json``, ``dataset.json``, ``files.json``, ``labels.json``, optional
    ``profile.json`` (category order), ``paint/3d_point.dpn`` + ``.json`` (or
    ``paint/3d_instance_point.*``), ``painting2d/`` and ``media/dataset.zip`` (frames and images).
    A folder of snapshot folders (``pull_many``) is read as one label set.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text(json.dumps({"labels": {"a.png": []}}))
    >>> parse_snapshot(d).frames.file_id.tolist()
    ['a.png']
    """
    folder = Path(folder)
    if not (folder / "labels.json").is_file():
        subs = (
            sorted(p for p in folder.iterdir() if (p / "labels.json").is_file())
            if folder.is_dir()
            else []
        )
        if subs:
            return LabelSet.concat(
                [parse_snapshot(p, frames=frames, images=images, points=points) for p in subs]
            )
        raise ParseError(
            "not a snapshot: no labels.json (run `deepen-export pull` first)", path=str(folder)
        )
    manifest = _read_json_if(folder / "manifest.json") or {}
    _check_manifest(folder, manifest)
    dataset = _read_json_if(folder / "dataset.json") or {}
    files_doc = _read_json_if(folder / "files.json")
    profile = _read_json_if(folder / "profile.json")
    dataset_id = _s(manifest.get("dataset_id") or dataset.get("dataset_id"))
    files = files_doc.get("files") if isinstance(files_doc, Mapping) else files_doc
    labels = parse_labels(
        folder / "labels.json",
        dataset_id=dataset_id,
        categories=categories_from_profile(profile),
        files=files if isinstance(files, list) else None,
    )
    zip_path = (
        Path(frames)
        if frames
        else next(iter(sorted((folder / "media").glob("*.zip"))), None)
        if (folder / "media").is_dir()
        else None
    )
    if images is None and (folder / "images").is_dir():
        images = folder / "images"
    labels = _finish(
        labels,
        dataset=dataset,
        dataset_id=dataset_id,
        zip_path=zip_path,
        images=images,
        points=points,
    )
    labels = _imagesizes.fill_sizes(labels, _imagesizes.snapshot_sizes(folder, files))
    paint_dir = folder / "paint"
    semantic, instance = paint_dir / "3d_point.dpn", paint_dir / "3d_instance_point.dpn"
    if semantic.is_file() or instance.is_file():
        labels = _add_paint(
            labels,
            semantic if semantic.is_file() else None,
            instance if instance.is_file() else None,
            dataset,
            dataset_id,
        )
    if (folder / "painting2d").is_dir():
        labels = parse_painting2d(folder / "painting2d", labels, dataset_id=dataset_id)
    meta = {
        "source": str(folder),
        "dataset_id": dataset_id,
        "dataset_type": dataset.get("dataset_type") or manifest.get("dataset_type"),
        "label_set": manifest.get("label_set"),
        "stage": manifest.get("stage"),
        "fetched_at": manifest.get("fetched_at"),
    }
    return labels.replace(meta={k: v for k, v in meta.items() if v is not None})


def _check_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is there with its recorded size (a cheap completeness check)."""
    listed = manifest.get("files") if isinstance(manifest, Mapping) else None
    if not isinstance(listed, Mapping):
        return
    for rel, info in listed.items():
        p = folder / rel
        if not p.is_file():
            raise ParseError(
                f"snapshot is incomplete: {rel} is listed in manifest.json but missing; pull again",
                path=str(folder),
            )
        size = info.get("bytes") if isinstance(info, Mapping) else None
        if isinstance(size, int) and p.stat().st_size != size:
            raise ParseError(
                f"snapshot file {rel} has {p.stat().st_size} bytes, manifest.json says {size}; "
                "it was changed or cut short: pull again",
                path=str(folder),
            )


def _finish(
    labels: LabelSet,
    *,
    dataset: Mapping[str, Any],
    dataset_id: str,
    zip_path: Path | None,
    images: str | os.PathLike[str] | None,
    points: bool,
) -> LabelSet:
    zip_sizes: dict[str, tuple[int, int]] = {}
    if zip_path is not None:
        data = parse_frames_zip(zip_path, points=points)
        if data.names:
            labels = _attach_frames_data(labels, data, dataset_id)
        zip_sizes = dict(data.image_sizes)
        if not data.names:
            labels = labels.replace(issues=(*labels.issues, *data.issues))
    return _imagesizes.add_image_frames(_with_image_sizes(labels, images, zip_sizes), images)


def _read_paint(body: Path, dataset: Mapping[str, Any], instance: bool | None) -> PaintLabels:
    meta_path = body.with_suffix(".json")
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
            "pull with --media (or pass --frames json_data.zip) so every frame is known",
            path=str(body),
        )
    seg = _paint_to_table(paint, rows, {c: i for i, c in enumerate(cats)}, str(body))
    return labels.replace(categories=tuple(cats), point_segmentation=seg)


def parse_source(
    source: Any,
    *,
    frames: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    points: bool = True,
    fast: bool = True,
) -> LabelSet:
    """Read any supported source: a labels JSON file, bytes, a parsed object or a snapshot folder.

    Parameters
    ----------
    source : path, bytes, dict or list
        What to read.
    frames : path, optional
        The dataset's uploaded zip (``json_data.zip``) for calibration, points and image sizes.
    images : path, optional
        A folder holding the images (by ``file_id``), for their sizes.
    points : bool
        Read point clouds from the frames zip (False: calibration only).
    fast : bool
        Allow the columnar fast path for large files.

    Returns
    -------
    LabelSet

    Examples
    --------
    >>> parse_source({"labels": []}).kinds_present()
    []
    """
    if isinstance(source, (str, os.PathLike)) and not (
        isinstance(source, str) and source.lstrip()[:1] in "{["
    ):
        p = Path(source)
        if p.is_dir():
            return parse_snapshot(p, frames=frames, images=images, points=points)
        if not p.exists():
            raise ParseError("no such file or folder", path=str(p))
        labels = parse_labels(p, fast=fast)
    else:
        labels = parse_labels(source, fast=False)
    if frames is not None or images is not None:
        labels = _finish(
            labels,
            dataset={},
            dataset_id="",
            zip_path=Path(frames) if frames else None,
            images=images,
            points=points,
        )
    return labels


def iter_label_batches(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 100_000,
    dataset_id: str = "",
    files: Sequence[Mapping[str, Any]] | None = None,
) -> Iterator[LabelSet]:
    """Parse a large labels JSON file in batches of about ``batch_size`` labels.

    Memory stays bounded by the batch, not the file: the file is scanned in blocks and each
    batch of labels is parsed on its own. Frame rows and category codes are local to each
    batch (use ``frames.file_id`` / ``categories`` names, not codes, to join batches).
    ``Frames.index`` is the file's position in ``files`` (the dataset's files list) when given,
    and -1 (unknown) otherwise: a batch alone cannot know a frame's place in the sequence.

    Examples
    --------
    >>> import tempfile, json, os
    >>> fd, p = tempfile.mkstemp(suffix=".json"); os.close(fd)
    >>> from pathlib import Path
    >>> _ = Path(p).write_text(json.dumps({"labels": [{"file_id": f"{i}.png", "label_id": f"a:{i}",
    ...     "label_category_id": "a", "label_type": "box", "box": [0, 0, 1, 1]} for i in range(5)]}))
    >>> [len(b) for b in iter_label_batches(p, batch_size=2)]
    [2, 2, 1]
    >>> next(iter_label_batches(p, batch_size=2, files=[{"file_id": "1.png"}, {"file_id": "0.png"}])).frames.index.tolist()
    [1, 0]
    """
    import dataclasses

    from deepen_export import _fastparse

    position = {_s(f.get("file_id")): i for i, f in enumerate(files or ())}
    for chunk in _fastparse.iter_label_chunks(path, batch_size=batch_size):
        batch = _fastparse.parse_ndjson_chunk(chunk, dataset_id=dataset_id, path=os.fspath(path))
        index = np.array([position.get(f, -1) for f in batch.frames.file_id], dtype=np.int64)
        yield batch.replace(frames=dataclasses.replace(batch.frames, index=_ro(index)))
