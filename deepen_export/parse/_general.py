"""The general (per-label) path: any label type, each bad label reported on its own."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepen_export.geometry import spatial
from deepen_export.model import (
    KIND_OF_LABEL_TYPE,
    Boxes,
    Cuboids,
    LabelSet,
    Points,
    Points3D,
    Polygons,
    Polygons3D,
    Polylines,
    Polylines3D,
    Scenes,
)
from deepen_export.parse._assemble import (
    DEEPEN_FIELDS,
    _Ctx,
    _int,
    _offsets,
    _order_categories,
    _ro,
    _s,
    build_labelset,
    is_str_column,
)


def yaw_to_quat(yaw: Any) -> np.ndarray:
    """Quaternions ``(n, 4)`` as (x, y, z, w) for rotations by ``yaw`` radians about +z.

    The one formula is :func:`deepen_export.geometry.yaw_to_quat`; this keeps the ``(n, 4)``
    shape for scalars too.

    Examples
    --------
    >>> yaw_to_quat([0.0]).tolist()
    [[0.0, 0.0, 0.0, 1.0]]
    """
    return spatial.yaw_to_quat(np.asarray(yaw, dtype=np.float64).reshape(-1))


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


_GEOMETRY_KEYS = {
    "lane": ("polygons", "polyline", "polylines", "points", "lane"),
    "polyline": ("polygons", "polyline", "polylines", "points"),
    "point": ("point", "points", "keypoints", "polygons"),
    "3d_polyline": ("three_d_polyline", "polyline", "polylines", "points", "polygons"),
    "3d_polygon": ("three_d_polygon", "polygon", "polygons", "points"),
    "3d_point": ("three_d_point", "point", "points"),
}


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
        **{
            name: [(_s if is_str_column(name) else _int)(lab.get(key)) for lab in labs]
            for name, key in DEEPEN_FIELDS.items()
        },
        "attributes": attrs,
    }


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
        if isinstance(lab["file_id"], Mapping | list | bool):
            ctx.issue(f"file_id must be a string, got {type(lab['file_id']).__name__}", lab)
            continue
        if lt not in KIND_OF_LABEL_TYPE:
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
        raw.add(KIND_OF_LABEL_TYPE[lt], lab, geom, ctx.frame(lab))
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
        tables["cuboids"] = dataclasses.replace(cub, quat=_ro(qn))


def _assemble(
    raw: _Raw,
    ctx: _Ctx,
    *,
    categories: Sequence[str],
    files: Sequence[Mapping[str, Any]] | None,
    path: str | None,
) -> LabelSet:
    used = {_s(lab.get("label_category_id")) for labs in raw.labels.values() for lab in labs}
    cats = _order_categories(used, list(dict.fromkeys(categories)))
    cat_index = {c: i for i, c in enumerate(cats)}
    tables = _build_tables(raw, cat_index)
    if "cuboids" in raw.labels:
        labs = raw.labels["cuboids"]
        _normalize_quats(tables, lambda i: labs[i], ctx)
    return build_labelset(tables, ctx, cats, files, path)


def parse_general(
    labels: Iterable[Any],
    ctx: _Ctx,
    *,
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
    path: str | None = None,
) -> LabelSet:
    """Label objects -> LabelSet, one label at a time; every bad label becomes an issue."""
    return _assemble(_collect(labels, ctx), ctx, categories=categories, files=files, path=path)
