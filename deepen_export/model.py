"""The normalized label model: one columnar, numpy-backed :class:`LabelSet` per export.

Every label kind is a small frozen table whose columns are numpy arrays. Columns are declared once
(:class:`Col` in each table's ``COLUMNS``); validation, selection, concatenation and equality are
derived from that declaration by :class:`Table`, never written per kind.

Layout of ragged kinds
----------------------
Ragged geometry is flat coordinates plus offsets, the GeoArrow / ``shapely.to_ragged_array``
layout. For polygons::

    offsets       (n + 1,)  label i owns rings   offsets[i] : offsets[i + 1]
    ring_offsets  (r + 1,)  ring j owns vertices ring_offsets[j] : ring_offsets[j + 1]
    coords        (m, 2)    float64 vertices

Rings are kept open (the first vertex is not repeated) and in Deepen's order. Polylines use
``offsets`` (label -> parts) and ``part_offsets`` (part -> vertices); points use ``offsets``
(label -> points). Offsets are int64 and start at 0.

Parts and holes of a polygon label (the rule)
---------------------------------------------
Deepen sends a polygon label as a list of rings. A ring that lies inside an odd number of the
label's other rings is a hole of the smallest ring containing it; every other ring is an outer
part (even-odd rule, as SVG's ``fill-rule: evenodd``). So one ring is a simple polygon, two
disjoint rings are a two-part polygon, and a ring inside another is a hole. The rule is applied
by :func:`deepen_export.geometry.polygons_to_shapely`; the model keeps the rings as given.

Coordinate conventions
----------------------
::

    image (2D labels)                   LiDAR / world (3D)            camera (KITTI)
    (0,0)────────► x                        z  x                         z (forward)
      │ ┌──┐  pixel (i, j) covers           │ ╱                          ╱
      │ └──┘  [i, i+1) × [j, j+1)           │╱                          ╱
      ▼ y                             y ◄───┘                          └────► x
                                                                       │
                                                                       ▼ y

- 2D: pixel-corner convention, origin at the top-left corner of the top-left pixel, x right,
  y down. Boxes are ``xyxy`` = ``[x_min, y_min, x_max, y_max]`` (Deepen's ``[x, y, w, h]`` is
  converted on the way in).
- 3D: right-handed, z up. LiDAR axes are x forward, y left, z up. Camera axes are x right, y down,
  z forward. Cuboids store their *centre* (not bottom centre), ``size = (l, w, h)`` along the
  box's own x (heading), y and z axes, and ``quat = (x, y, z, w)`` (scalar last), the rotation
  from box to the table's frame. ``Cuboids.frame_of_reference`` says which frame: ``"world"`` for
  Deepen's JSON 3D datasets (the frame of the uploaded points, often ~1e5 m from the origin:
  always float64), ``"lidar"`` or ``"camera"``.
- Poses (``Poses``, ``Cameras``) are sensor -> world: ``p_world = R(q) p_sensor + t``.

Examples
--------
>>> import numpy as np
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> frames = Frames.from_columns(file_id=["a.png"], sensor_id=["sensor1"])
>>> boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[1, 2, 3, 4]])
>>> labels = LabelSet(frames=frames, categories=("car",), boxes=boxes)
>>> len(labels)
1
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

__all__ = [
    "COMMON",
    "DISTORTION_NAMES",
    "KINDS",
    "LABEL_KINDS",
    "Action",
    "Boxes",
    "Cameras",
    "Col",
    "Cuboids",
    "FrameStatus",
    "Frames",
    "Issue",
    "LabelError",
    "LabelSet",
    "LabelTable",
    "Masks2D",
    "PointClouds",
    "PointSegmentation",
    "Points",
    "Points3D",
    "Polygons",
    "Polygons3D",
    "Polylines",
    "Polylines3D",
    "Poses",
    "Scenes",
    "Table",
    "parse_track",
]


class LabelError(ValueError):
    """In-memory label tables are inconsistent (shapes, dtypes, offsets, codes).

    The model imports nothing of the project, so this error is a plain ``ValueError`` and stands
    outside :class:`deepen_export.errors.DeepenExportError` (which re-exports it).
    """


Action = Literal["dropped", "clipped", "repaired", "changed", "skipped", "kept", "error"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One label (or file) that did not go through unchanged.

    Parameters
    ----------
    action : str
        What happened: ``dropped``, ``clipped``, ``repaired``, ``changed``, ``skipped``, ``kept``
        or ``error``.
    reason : str
        Why, in words a user can act on.
    file_id, label_id : str or None
        Which file and label; ``None`` when the issue concerns a whole file or the input.
    kind : str or None
        Label kind (``boxes``, ``polygons``, ``cuboids``, ...) or Deepen ``label_type``.

    Examples
    --------
    >>> Issue("dropped", "lane cannot be written to KITTI", file_id="0.png", label_id="lane:1").action
    'dropped'
    """

    action: Action
    reason: str
    file_id: str | None = None
    label_id: str | None = None
    kind: str | None = None


Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Col:
    """Declaration of one column.

    Parameters
    ----------
    dtype : str
        numpy dtype (``"O"`` for strings and other Python objects).
    shape : tuple of int
        Trailing shape of one row (``(4,)`` for ``xyxy``).
    level : int
        0 for one value per table row; ``k`` for one value per element of ragged level ``k``
        (for polygons: 1 = rings, 2 = vertices). Level ``k`` is indexed by the offsets column
        ``Table.OFFSETS[k - 1]``.
    fill : object
        Default when a column is not given (``None`` means the column is required).
    """

    dtype: str
    shape: tuple[int, ...] = ()
    level: int = 0
    fill: Any = None


class FrameStatus(enum.IntEnum):
    """Review status of a frame: tells labelled-and-empty from not yet labelled."""

    UNKNOWN = 0
    """Nothing says whether the frame was labelled (for example a bare labels file)."""
    UNLABELLED = 1
    """The frame exists but has not been labelled yet (its file status says so)."""
    EMPTY = 2
    """The frame was labelled and has no labels (a reviewed negative)."""
    LABELLED = 3
    """The frame has at least one label."""


_TRACK_RE = re.compile(r":\s*(-?\d+)\s*$")


def parse_track(label_ids: Iterable[str | None]) -> Array:
    """Track / instance numbers from Deepen label ids (``"car:4"`` and ``"car: 4"`` -> 4).

    Parameters
    ----------
    label_ids : iterable of str
        Deepen ``label_id`` values.

    Returns
    -------
    numpy.ndarray
        int64 numbers, -1 where a label id has no trailing ``:<int>``.

    Examples
    --------
    >>> parse_track(["car:4", "car: 12", "weird", None]).tolist()
    [4, 12, -1, -1]
    """
    out = []
    for s in label_ids:
        m = _TRACK_RE.search(s) if isinstance(s, str) else None
        out.append(int(m.group(1)) if m else -1)
    return np.asarray(out, dtype=np.int64)


def _ranges(starts: Array, counts: Array) -> Array:
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out_starts = np.cumsum(counts) - counts
    return np.repeat(starts - out_starts, counts) + np.arange(total, dtype=np.int64)


def _offsets_from_counts(counts: Array) -> Array:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _as_column(name: str, value: Any, col: Col) -> Array:
    if col.dtype == "O":
        if isinstance(value, np.ndarray) and value.dtype == object:
            arr = value
        else:
            seq = list(value)
            arr = np.empty(len(seq), dtype=object)
            arr[:] = seq
    else:
        arr = np.asarray(value, dtype=col.dtype)
        if arr.size == 0 and col.shape and arr.ndim != 1 + len(col.shape):
            arr = arr.reshape((0, *col.shape))
    if arr.shape[1:] != col.shape:
        raise LabelError(
            f"{name} must have shape (n, {', '.join(map(str, col.shape))}), got {arr.shape}"
        )
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _arrays_equal(a: Array, b: Array) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype == object or b.dtype == object:
        return all(_values_equal(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
    return bool(np.array_equal(a, b))


def _values_equal(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    return (bool(x == y) and type(x) is type(y)) or (x is None and y is None)


class Table:
    """Base of every table: columns declared in ``COLUMNS``, ragged levels in ``OFFSETS``.

    Subclasses are frozen dataclasses whose fields are the declared columns (plus, for label
    tables, ``attributes``). Construct them with :meth:`from_columns`, which fills defaults,
    converts dtypes and validates.
    """

    COLUMNS: ClassVar[dict[str, Col]] = {}
    OFFSETS: ClassVar[tuple[str, ...]] = ()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_columns(cls, **columns: Any) -> Self:
        """Build a table from columns, filling undeclared ones with their defaults.

        Examples
        --------
        >>> Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"]).width.tolist()
        [-1]
        """
        attrs = columns.pop("attributes", None)
        extra = {k: columns.pop(k) for k in cls._extra_fields() if k in columns}
        unknown = set(columns) - set(cls.COLUMNS)
        if unknown:
            raise LabelError(f"{cls.__name__} has no column(s) {sorted(unknown)}")
        n = cls._infer_length(columns)
        values: dict[str, Array] = {}
        for name, col in cls.COLUMNS.items():
            if name in columns:
                values[name] = _as_column(name, columns[name], col)
                continue
            length = cls._default_length(name, col, n, values)
            if col.fill is None:
                raise LabelError(f"{cls.__name__}.{name} is required")
            if name in cls.OFFSETS:
                values[name] = _as_column(name, np.zeros(length, dtype=np.int64), col)
            elif col.dtype == "O":
                values[name] = _as_column(name, [col.fill] * length, col)
            else:
                values[name] = _as_column(
                    name, np.full((length, *col.shape), col.fill, dtype=col.dtype), col
                )
        kwargs: dict[str, Any] = dict(values)
        kwargs.update(extra)
        if "attributes" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            kwargs["attributes"] = {
                k: _as_column(f"attributes[{k!r}]", v, Col("O")) for k, v in (attrs or {}).items()
            }
        table = cls(**kwargs)
        table.validate()
        return table

    @classmethod
    def _extra_fields(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def _infer_length(cls, columns: Mapping[str, Any]) -> int | None:
        for name, col in cls.COLUMNS.items():
            if col.level == 0 and name in columns and name not in cls.OFFSETS:
                return len(columns[name])
        if cls.OFFSETS and cls.OFFSETS[0] in columns:
            return len(columns[cls.OFFSETS[0]]) - 1
        return None

    @classmethod
    def _default_length(
        cls, name: str, col: Col, n: int | None, values: Mapping[str, Array]
    ) -> int:
        if name in cls.OFFSETS:
            k = cls.OFFSETS.index(name)
            base = n if k == 0 else None
            if k > 0 and cls.OFFSETS[k - 1] in values:
                base = int(values[cls.OFFSETS[k - 1]][-1]) if len(values[cls.OFFSETS[k - 1]]) else 0
            return (base or 0) + 1
        if col.level == 0:
            return n or 0
        parent = values.get(cls.OFFSETS[col.level - 1])
        return int(parent[-1]) if parent is not None and len(parent) else 0

    @classmethod
    def empty(cls) -> Self:
        """A table with no rows.

        Examples
        --------
        >>> len(Polygons.empty())
        0
        """
        cols: dict[str, Any] = {}
        for name, col in cls.COLUMNS.items():
            if name in cls.OFFSETS:
                cols[name] = np.zeros(1, dtype=np.int64)
            elif col.fill is None:
                cols[name] = np.zeros((0, *col.shape), dtype=col.dtype)
        for name in cls._extra_fields():
            cols[name] = cls._extra_default(name)
        return cls.from_columns(**cols)

    @classmethod
    def _extra_default(cls, name: str) -> Any:
        raise LabelError(f"{cls.__name__}.{name} has no default")

    # -- shape --------------------------------------------------------------------------
    def __len__(self) -> int:
        for name, col in self.COLUMNS.items():
            if col.level == 0 and name not in self.OFFSETS:
                return len(getattr(self, name))
        return len(getattr(self, self.OFFSETS[0])) - 1

    def _level_length(self, level: int) -> int:
        if level == 0:
            return len(self)
        off = getattr(self, self.OFFSETS[level - 1])
        return int(off[-1]) if len(off) else 0

    def columns(self) -> dict[str, Array]:
        """The declared columns by name (attributes not included)."""
        return {name: getattr(self, name) for name in self.COLUMNS}

    def validate(self) -> None:
        """Check lengths, dtypes, offsets and (for label tables) attributes; raise LabelError."""
        name_ = type(self).__name__
        for k, off_name in enumerate(self.OFFSETS):
            off = getattr(self, off_name)
            expected = self._level_length(k) + 1
            if len(off) != expected:
                raise LabelError(f"{name_}.{off_name} must have length {expected}, got {len(off)}")
            if off[0] != 0 or (len(off) > 1 and np.any(np.diff(off) < 0)):
                raise LabelError(f"{name_}.{off_name} must start at 0 and never decrease")
        for col_name, col in self.COLUMNS.items():
            if col_name in self.OFFSETS:
                continue
            arr = getattr(self, col_name)
            expected = self._level_length(col.level)
            if len(arr) != expected:
                raise LabelError(f"{name_}.{col_name} must have length {expected}, got {len(arr)}")
            if arr.dtype != np.dtype(col.dtype):
                raise LabelError(f"{name_}.{col_name} must have dtype {col.dtype}, got {arr.dtype}")

    # -- selection ----------------------------------------------------------------------
    def take(self, indices: npt.ArrayLike) -> Self:
        """Rows at ``indices`` (or where a boolean mask is true), ragged levels included.

        Examples
        --------
        >>> p = Points.from_columns(frame=[0, 0], category=[0, 1], label_id=["a:1", "b:1"],
        ...                         offsets=[0, 1, 3], coords=[[0, 0], [1, 1], [2, 2]])
        >>> p[[1]].coords.tolist()
        [[1.0, 1.0], [2.0, 2.0]]
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if len(idx) != len(self):
                raise LabelError(f"mask has length {len(idx)}, table has {len(self)} rows")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        per_level = [idx]
        new_offsets: list[Array] = []
        for off_name in self.OFFSETS:
            off = getattr(self, off_name)
            cur = per_level[-1]
            starts, counts = off[cur], off[cur + 1] - off[cur]
            new_offsets.append(_offsets_from_counts(counts))
            per_level.append(_ranges(starts, counts))
        cols: dict[str, Any] = {}
        for name, col in self.COLUMNS.items():
            if name in self.OFFSETS:
                cols[name] = new_offsets[self.OFFSETS.index(name)]
            else:
                cols[name] = getattr(self, name)[per_level[col.level]]
        attrs = getattr(self, "attributes", None)
        if attrs is not None:
            cols["attributes"] = {k: v[idx] for k, v in attrs.items()}
        for name in self._extra_fields():
            cols[name] = getattr(self, name)
        return type(self).from_columns(**cols)

    def __getitem__(self, key: Any) -> Self:
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        return self.take(key)

    @classmethod
    def concat(cls, tables: Sequence[Self], *, frame_shift: Sequence[int] | None = None) -> Self:
        """Stack tables of one kind; ``frame_shift`` adds an offset to each table's ``frame``.

        Attribute keys missing from a table are filled with ``None``.

        Examples
        --------
        >>> a = Scenes.from_columns(frame=[0], category=[0], label_id=["s:1"])
        >>> Scenes.concat([a, a], frame_shift=[0, 5]).frame.tolist()
        [0, 5]
        """
        tables = list(tables)
        if not tables:
            return cls.empty()
        cols: dict[str, Any] = {}
        for name, col in cls.COLUMNS.items():
            parts = [getattr(t, name) for t in tables]
            if name in cls.OFFSETS:
                shifted = [parts[0]]
                base = int(parts[0][-1])
                for p in parts[1:]:
                    shifted.append(p[1:] + base)
                    base += int(p[-1])
                cols[name] = np.concatenate(shifted)
            elif name == "frame" and frame_shift is not None:
                cols[name] = np.concatenate(
                    [p + s for p, s in zip(parts, frame_shift, strict=True)]
                )
            elif col.dtype == "O":
                out = np.empty(sum(len(p) for p in parts), dtype=object)
                out[:] = [x for p in parts for x in p]
                cols[name] = out
            else:
                cols[name] = np.concatenate(parts)
        if "attributes" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            keys = list(dict.fromkeys(k for t in tables for k in t.attributes))  # type: ignore[attr-defined]
            attrs = {}
            for k in keys:
                out = np.empty(sum(len(t) for t in tables), dtype=object)
                pos = 0
                for t in tables:
                    v = t.attributes.get(k)  # type: ignore[attr-defined]
                    if v is not None:
                        out[pos : pos + len(t)] = v
                    pos += len(t)
                attrs[k] = out
            cols["attributes"] = attrs
        for name in cls._extra_fields():
            vals = {getattr(t, name) for t in tables}
            if len(vals) > 1:
                raise LabelError(
                    f"cannot concatenate {cls.__name__} tables with different {name}: {vals}"
                )
            cols[name] = vals.pop()
        return cls.from_columns(**cols)

    # -- comparison ---------------------------------------------------------------------
    def equals(self, other: object) -> bool:
        """True when both tables hold the same values (NaN equal to NaN)."""
        if type(other) is not type(self):
            return False
        for name in self.COLUMNS:
            if not _arrays_equal(getattr(self, name), getattr(other, name)):
                return False
        for name in self._extra_fields():
            if getattr(self, name) != getattr(other, name):
                return False
        a, b = getattr(self, "attributes", {}), getattr(other, "attributes", {})
        if set(a) != set(b):
            return False
        return all(_arrays_equal(a[k], b[k]) for k in a)

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        cols = ", ".join(self.COLUMNS)
        return f"<{type(self).__name__}: {len(self)} rows; {cols}>"


# ---------------------------------------------------------------------------------------
# label tables

COMMON: dict[str, Col] = {
    "frame": Col("int64"),
    "category": Col("int32"),
    "label_id": Col("O", fill=None),
    "track": Col("int64", fill=-1),
    "stage": Col("O", fill=""),
    "label_set": Col("O", fill=""),
    "labeller": Col("O", fill=""),
    "create_time": Col("int64", fill=-1),
    "update_time": Col("int64", fill=-1),
    "version": Col("int64", fill=-1),
}
"""Columns every label table has: ``frame`` (row of :class:`Frames`), ``category`` (code into
``LabelSet.categories``), Deepen's ``label_id`` and the ``track`` number parsed from it (-1 when
absent), ``stage``, ``label_set``, ``labeller`` (e-mail), times in epoch milliseconds (-1 unknown)
and ``version`` (-1 unknown)."""


def _common(**extra: Col) -> dict[str, Col]:
    return {**COMMON, **extra}


@dataclass(frozen=True, eq=False, repr=False)
class LabelTable(Table):
    """Base of label tables: the common columns plus ``attributes`` (key -> object array)."""

    frame: Array
    category: Array
    label_id: Array
    track: Array
    stage: Array
    label_set: Array
    labeller: Array
    create_time: Array
    update_time: Array
    version: Array

    @classmethod
    def from_columns(cls, **columns: Any) -> Self:
        """Build the table; ``track`` is parsed from ``label_id`` when not given."""
        if "track" not in columns and "label_id" in columns:
            columns["track"] = parse_track(columns["label_id"])
        return super().from_columns(**columns)

    def validate(self) -> None:
        """Also check that every attribute column has one value per label."""
        super().validate()
        for k, v in self.attributes.items():  # type: ignore[attr-defined]
            if len(v) != len(self):
                raise LabelError(
                    f"{type(self).__name__}.attributes[{k!r}] must have length {len(self)}, got {len(v)}"
                )

    def with_attributes(self, attributes: Mapping[str, npt.ArrayLike]) -> Self:
        """A copy with ``attributes`` replaced."""
        return dataclasses.replace(  # type: ignore[call-arg]
            self, attributes={k: _as_column(k, v, Col("O")) for k, v in attributes.items()}
        )

    def attribute_records(self) -> list[dict[str, Any]]:
        """Per-label attribute dicts, leaving out keys whose value is ``None``."""
        keys = list(self.attributes)  # type: ignore[attr-defined]
        cols = [self.attributes[k] for k in keys]  # type: ignore[attr-defined]
        return [
            {k: c[i] for k, c in zip(keys, cols, strict=True) if c[i] is not None}
            for i in range(len(self))
        ]


@dataclass(frozen=True, eq=False, repr=False)
class Boxes(LabelTable):
    """2D boxes, ``xyxy (n, 4)`` float64 in pixel-corner coordinates."""

    COLUMNS: ClassVar[dict[str, Col]] = _common(xyxy=Col("float64", (4,)))
    xyxy: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Polygons(LabelTable):
    """2D polygons: ``offsets`` (label -> rings), ``ring_offsets`` (ring -> vertices), ``coords (m, 2)``.

    Rings are open and in Deepen's order; parts vs holes follow the even-odd rule in the module
    docstring.
    """

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        offsets=Col("int64", fill=0),
        ring_offsets=Col("int64", level=1, fill=0),
        coords=Col("float64", (2,), level=2),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets", "ring_offsets")
    offsets: Array
    ring_offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Polygons3D(LabelTable):
    """3D polygons (``3d_polygon``), same layout as :class:`Polygons` with ``coords (m, 3)``."""

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        offsets=Col("int64", fill=0),
        ring_offsets=Col("int64", level=1, fill=0),
        coords=Col("float64", (3,), level=2),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets", "ring_offsets")
    offsets: Array
    ring_offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Polylines(LabelTable):
    """2D lanes and polylines: ``offsets`` (label -> parts), ``part_offsets`` (part -> vertices).

    ``label_type`` keeps Deepen's type (``"lane"`` or ``"polyline"``).
    """

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        label_type=Col("O", fill="lane"),
        offsets=Col("int64", fill=0),
        part_offsets=Col("int64", level=1, fill=0),
        coords=Col("float64", (2,), level=2),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets", "part_offsets")
    label_type: Array
    offsets: Array
    part_offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Polylines3D(LabelTable):
    """3D polylines (``3d_polyline``), same layout as :class:`Polylines` with ``coords (m, 3)``."""

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        offsets=Col("int64", fill=0),
        part_offsets=Col("int64", level=1, fill=0),
        coords=Col("float64", (3,), level=2),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets", "part_offsets")
    offsets: Array
    part_offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Points(LabelTable):
    """2D points / keypoints: ``offsets`` (label -> points), ``coords (m, 2)``."""

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        offsets=Col("int64", fill=0),
        coords=Col("float64", (2,), level=1),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets",)
    offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Points3D(LabelTable):
    """3D vector points (``3d_point`` labels with coordinates): ``offsets``, ``coords (m, 3)``."""

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        offsets=Col("int64", fill=0),
        coords=Col("float64", (3,), level=1),
    )
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets",)
    offsets: Array
    coords: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class Cuboids(LabelTable):
    """3D boxes: ``center (n, 3)``, ``size (n, 3)`` = (l, w, h), ``quat (n, 4)`` = (x, y, z, w).

    ``frame_of_reference`` is ``"world"`` (Deepen JSON 3D datasets), ``"lidar"``, or ``"camera"``
    (KITTI labels read back without their calib files).
    """

    COLUMNS: ClassVar[dict[str, Col]] = _common(
        center=Col("float64", (3,)),
        size=Col("float64", (3,)),
        quat=Col("float64", (4,)),
    )
    center: Array
    size: Array
    quat: Array
    attributes: Mapping[str, Array] = field(default_factory=dict)
    frame_of_reference: str = "world"

    @classmethod
    def _extra_fields(cls) -> tuple[str, ...]:
        return ("frame_of_reference",)

    @classmethod
    def _extra_default(cls, name: str) -> Any:
        return "world"

    @property
    def yaw(self) -> Array:
        """Heading about +z in radians, from the quaternion (exact for upright boxes)."""
        x, y, z, w = self.quat.T
        return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@dataclass(frozen=True, eq=False, repr=False)
class Scenes(LabelTable):
    """Scene labels (``scene``): a category and attributes on a frame, no geometry."""

    COLUMNS: ClassVar[dict[str, Col]] = _common()
    attributes: Mapping[str, Array] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# frames, segmentation and calibration


@dataclass(frozen=True, eq=False, repr=False)
class Frames(Table):
    """One row per file and sensor: a LiDAR frame, a camera image of it, or an image.

    ``index`` is the frame's position in its dataset's sequence (shared by a LiDAR frame and
    its camera views; -1 unknown). ``width``/``height`` are -1 when unknown. ``status`` holds
    :class:`FrameStatus` values.
    """

    COLUMNS: ClassVar[dict[str, Col]] = {
        "file_id": Col("O"),
        "sensor_id": Col("O", fill=""),
        "dataset_id": Col("O", fill=""),
        "index": Col("int64", fill=-1),
        "width": Col("int32", fill=-1),
        "height": Col("int32", fill=-1),
        "status": Col("int8", fill=int(FrameStatus.UNKNOWN)),
    }
    file_id: Array
    sensor_id: Array
    dataset_id: Array
    index: Array
    width: Array
    height: Array
    status: Array

    def keys(self) -> list[tuple[str, str, str]]:
        """``(dataset_id, file_id, sensor_id)`` of every row."""
        return list(zip(self.dataset_id, self.file_id, self.sensor_id, strict=True))


@dataclass(frozen=True, eq=False, repr=False)
class PointSegmentation(Table):
    """Per-point classes (and instances) of LiDAR frames, all frames concatenated.

    Row ``i`` is one LiDAR frame (``frame[i]`` into :class:`Frames`) owning points
    ``offsets[i]:offsets[i + 1]``. ``category`` is a code into ``LabelSet.categories`` or -1 for
    unpainted points; ``instance`` is the instance (label) number, -1 when none.
    """

    COLUMNS: ClassVar[dict[str, Col]] = {
        "frame": Col("int64"),
        "offsets": Col("int64", fill=0),
        "category": Col("int32", level=1),
        "instance": Col("int32", level=1, fill=-1),
    }
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets",)
    frame: Array
    offsets: Array
    category: Array
    instance: Array


@dataclass(frozen=True, eq=False, repr=False)
class Masks2D(Table):
    """2D semantic painting: one ``height x width`` mask per frame, row-major, flattened.

    ``pixels`` are codes into ``LabelSet.categories`` or -1 for unpainted pixels.
    """

    COLUMNS: ClassVar[dict[str, Col]] = {
        "frame": Col("int64"),
        "height": Col("int32"),
        "width": Col("int32"),
        "offsets": Col("int64", fill=0),
        "pixels": Col("int32", level=1),
    }
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets",)
    frame: Array
    height: Array
    width: Array
    offsets: Array
    pixels: Array

    def mask(self, i: int) -> Array:
        """The ``(height, width)`` mask of row ``i``."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.pixels[a:b].reshape(int(self.height[i]), int(self.width[i]))


@dataclass(frozen=True, eq=False, repr=False)
class Poses(Table):
    """Per LiDAR frame: the device (LiDAR) pose in the world, ``p_world = R(quat) p + position``."""

    COLUMNS: ClassVar[dict[str, Col]] = {
        "frame": Col("int64"),
        "position": Col("float64", (3,)),
        "quat": Col("float64", (4,)),
        "timestamp": Col("float64", fill=np.nan),
    }
    frame: Array
    position: Array
    quat: Array
    timestamp: Array


DISTORTION_NAMES = ("k1", "k2", "p1", "p2", "k3", "k4")


@dataclass(frozen=True, eq=False, repr=False)
class Cameras(Table):
    """Per camera image of a LiDAR frame: intrinsics, distortion and camera -> world pose.

    ``frame`` is the LiDAR frame's row in :class:`Frames`; ``sensor_id`` is ``camera_<k>``.
    ``distortion`` holds ``(k1, k2, p1, p2, k3, k4)`` (fisheye / mod_kannala use k1..k4 in the
    k1, k2, k3, k4 slots and leave p1, p2 at 0). Camera axes: x right, y down, z forward.
    """

    COLUMNS: ClassVar[dict[str, Col]] = {
        "frame": Col("int64"),
        "sensor_id": Col("O"),
        "fx": Col("float64"),
        "fy": Col("float64"),
        "cx": Col("float64"),
        "cy": Col("float64"),
        "model": Col("O", fill="pinhole"),
        "distortion": Col("float64", (6,), fill=0.0),
        "position": Col("float64", (3,)),
        "quat": Col("float64", (4,)),
        "image_path": Col("O", fill=""),
        "width": Col("int32", fill=-1),
        "height": Col("int32", fill=-1),
        "timestamp": Col("float64", fill=np.nan),
    }
    frame: Array
    sensor_id: Array
    fx: Array
    fy: Array
    cx: Array
    cy: Array
    model: Array
    distortion: Array
    position: Array
    quat: Array
    image_path: Array
    width: Array
    height: Array
    timestamp: Array

    def intrinsic_matrix(self) -> Array:
        """``(n, 3, 3)`` camera matrices."""
        k = np.zeros((len(self), 3, 3))
        k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = (
            self.fx,
            self.fy,
            self.cx,
            self.cy,
            1.0,
        )
        return k


@dataclass(frozen=True, eq=False, repr=False)
class PointClouds(Table):
    """LiDAR points of each frame (world frame, as uploaded), concatenated: ``xyz (m, 3)``."""

    COLUMNS: ClassVar[dict[str, Col]] = {
        "frame": Col("int64"),
        "offsets": Col("int64", fill=0),
        "xyz": Col("float64", (3,), level=1),
        "intensity": Col("float32", level=1, fill=np.nan),
    }
    OFFSETS: ClassVar[tuple[str, ...]] = ("offsets",)
    frame: Array
    offsets: Array
    xyz: Array
    intensity: Array


LABEL_KINDS: tuple[str, ...] = (
    "boxes",
    "polygons",
    "polylines",
    "points",
    "cuboids",
    "polylines3d",
    "polygons3d",
    "points3d",
    "scenes",
)
"""Names of the vector label tables of a :class:`LabelSet`."""

KINDS: tuple[str, ...] = (*LABEL_KINDS, "point_segmentation", "masks2d")
"""Every kind of label a format may or may not hold."""

_TABLE_TYPES: dict[str, type[Table]] = {
    "boxes": Boxes,
    "polygons": Polygons,
    "polylines": Polylines,
    "points": Points,
    "cuboids": Cuboids,
    "polylines3d": Polylines3D,
    "polygons3d": Polygons3D,
    "points3d": Points3D,
    "scenes": Scenes,
    "point_segmentation": PointSegmentation,
    "masks2d": Masks2D,
    "poses": Poses,
    "cameras": Cameras,
    "pointclouds": PointClouds,
}


def _empty(name: str) -> Any:
    return field(default_factory=lambda: _TABLE_TYPES[name].empty())


@dataclass(frozen=True, eq=False)
class LabelSet:
    """Everything one export needs: frames, categories, one table per label kind, calibration.

    Parameters
    ----------
    frames : Frames
        One row per file and sensor; every table's ``frame`` column indexes it.
    categories : tuple of str
        Category names; every ``category`` column holds codes into it.
    boxes, polygons, polylines, points, cuboids, polylines3d, polygons3d, points3d, scenes
        Vector label tables (empty when absent).
    point_segmentation : PointSegmentation
        3D paint labels per LiDAR frame.
    masks2d : Masks2D
        2D semantic painting per image.
    poses, cameras, pointclouds : Poses, Cameras, PointClouds
        Calibration and points from the dataset's uploaded frames, when available.
    issues : tuple of Issue
        Input that could not be taken as it was (unknown label types, bad geometry), each naming
        its ``file_id`` and ``label_id``.
    meta : dict
        Free-form provenance (dataset ids, label set, stage, source path).

    Examples
    --------
    >>> LabelSet.empty().kinds_present()
    []
    """

    frames: Frames = field(default_factory=lambda: Frames.empty())
    categories: tuple[str, ...] = ()
    boxes: Boxes = _empty("boxes")
    polygons: Polygons = _empty("polygons")
    polylines: Polylines = _empty("polylines")
    points: Points = _empty("points")
    cuboids: Cuboids = _empty("cuboids")
    polylines3d: Polylines3D = _empty("polylines3d")
    polygons3d: Polygons3D = _empty("polygons3d")
    points3d: Points3D = _empty("points3d")
    scenes: Scenes = _empty("scenes")
    point_segmentation: PointSegmentation = _empty("point_segmentation")
    masks2d: Masks2D = _empty("masks2d")
    poses: Poses = _empty("poses")
    cameras: Cameras = _empty("cameras")
    pointclouds: PointClouds = _empty("pointclouds")
    issues: tuple[Issue, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        self.validate()

    @classmethod
    def empty(cls) -> LabelSet:
        """A label set with nothing in it."""
        return cls()

    def validate(self) -> None:
        """Check that frames and category codes are in range in every table."""
        nf, nc = len(self.frames), len(self.categories)
        for name in (*KINDS, "poses", "cameras", "pointclouds"):
            t = getattr(self, name)
            if not isinstance(t, _TABLE_TYPES[name]):
                raise LabelError(
                    f"LabelSet.{name} must be {_TABLE_TYPES[name].__name__}, got {type(t).__name__}"
                )
            fr = getattr(t, "frame")  # noqa: B009
            if len(fr) and (fr.min() < 0 or fr.max() >= nf):
                raise LabelError(f"LabelSet.{name}.frame has rows outside 0..{nf - 1}")
            codes = getattr(t, "category", None)
            if codes is not None and len(codes):
                lo = -1 if name in ("point_segmentation",) else 0
                if codes.min() < lo or codes.max() >= nc:
                    raise LabelError(f"LabelSet.{name}.category has codes outside {lo}..{nc - 1}")
        px = self.masks2d.pixels
        if len(px) and (px.min() < -1 or px.max() >= nc):
            raise LabelError(f"LabelSet.masks2d.pixels has codes outside -1..{nc - 1}")

    def __len__(self) -> int:
        """Number of labels of every kind: vector labels plus painted frames (3D and 2D)."""
        return sum(len(getattr(self, k)) for k in KINDS)

    def __iter__(self) -> Iterator[tuple[str, Table]]:
        """``(kind, table)`` pairs for every non-empty label kind."""
        for k in KINDS:
            t = getattr(self, k)
            if len(t):
                yield k, t

    def kinds_present(self) -> list[str]:
        """Names of the non-empty label kinds."""
        return [k for k, _ in self]

    def table(self, kind: str) -> Table:
        """The table of ``kind`` (one of :data:`KINDS`)."""
        if kind not in _TABLE_TYPES:
            raise LabelError(f"unknown kind {kind!r}; expected one of {', '.join(_TABLE_TYPES)}")
        return getattr(self, kind)

    def replace(self, **changes: Any) -> LabelSet:
        """A copy with some fields replaced (validated)."""
        return dataclasses.replace(self, **changes)

    def without(self, *kinds: str) -> LabelSet:
        """A copy with the given kinds emptied."""
        return self.replace(**{k: _TABLE_TYPES[k].empty() for k in kinds})

    def category_code(self, name: str) -> int:
        """Code of category ``name`` (LabelError if absent)."""
        try:
            return self.categories.index(name)
        except ValueError:
            raise LabelError(
                f"no category {name!r}; categories are {list(self.categories)}"
            ) from None

    def select_frames(self, mask: npt.ArrayLike) -> LabelSet:
        """Keep only the frames where ``mask`` is true, and the labels on them.

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a", "b"]), categories=("x",),
        ...               scenes=Scenes.from_columns(frame=[0, 1], category=[0, 0], label_id=["x:1", "x:2"]))
        >>> ls.select_frames([False, True]).scenes.label_id.tolist()
        ['x:2']
        """
        m = np.asarray(mask, dtype=bool)
        if len(m) != len(self.frames):
            raise LabelError(f"mask has length {len(m)}, there are {len(self.frames)} frames")
        new_index = np.full(len(m), -1, dtype=np.int64)
        new_index[m] = np.arange(int(m.sum()))
        changes: dict[str, Any] = {"frames": self.frames.take(m)}
        for name in (*KINDS, "poses", "cameras", "pointclouds"):
            t = getattr(self, name)
            if len(t) == 0:
                continue
            kept = t.take(m[t.frame])
            changes[name] = dataclasses.replace(kept, frame=_ro(new_index[kept.frame]))
        return self.replace(**changes)

    def equals(self, other: object, *, check_issues: bool = True) -> bool:
        """True when frames, categories, every table and (unless told not to) issues agree.

        Parameters
        ----------
        other : object
            Another :class:`LabelSet`.
        check_issues : bool
            Compare :attr:`issues` too (the default, so two parsers that report different
            problems for the same input are not equal); ``False`` compares the labels only, as
            for a round trip through a format that does not carry the input's issues.

        Examples
        --------
        >>> a = LabelSet(issues=(Issue("dropped", "unknown label_type"),))
        >>> a.equals(LabelSet()), a.equals(LabelSet(), check_issues=False)
        (False, True)
        """
        if not isinstance(other, LabelSet):
            return False
        if self.categories != other.categories or not self.frames.equals(other.frames):
            return False
        if check_issues and self.issues != other.issues:
            return False
        return all(
            getattr(self, k).equals(getattr(other, k))
            for k in (*KINDS, "poses", "cameras", "pointclouds")
        )

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k}={len(t)}" for k, t in self) or "no labels"
        return f"<LabelSet: {len(self.frames)} frames, {len(self.categories)} categories, {kinds}>"

    @classmethod
    def concat(cls, sets: Sequence[LabelSet]) -> LabelSet:
        """Merge label sets (for example of several datasets), remapping frames and categories.

        Categories are merged in order of first appearance; frames are stacked.
        """
        sets = list(sets)
        if not sets:
            return cls.empty()
        cats = list(dict.fromkeys(c for s in sets for c in s.categories))
        shifts = np.cumsum([0] + [len(s.frames) for s in sets[:-1]]).tolist()
        changes: dict[str, Any] = {
            "frames": Frames.concat([s.frames for s in sets]),
            "categories": tuple(cats),
        }
        for name in (*KINDS, "poses", "cameras", "pointclouds"):
            tables = []
            for s in sets:
                t = getattr(s, name)
                remap = np.asarray([cats.index(c) for c in s.categories] or [0], dtype=np.int32)
                if hasattr(t, "category") and len(t.category):
                    codes = t.category
                    new = np.where(codes >= 0, remap[np.maximum(codes, 0)], codes).astype(np.int32)
                    t = dataclasses.replace(t, category=_ro(new))
                if name == "masks2d" and len(t.pixels):
                    px = t.pixels
                    t = dataclasses.replace(
                        t,
                        pixels=_ro(
                            np.where(px >= 0, remap[np.maximum(px, 0)], px).astype(np.int32)
                        ),
                    )
                tables.append(t)
            changes[name] = _TABLE_TYPES[name].concat(tables, frame_shift=shifts)
        changes["issues"] = tuple(i for s in sets for i in s.issues)
        changes["meta"] = {"sources": [dict(s.meta) for s in sets]}
        return cls(**changes)


def _ro(a: Array) -> Array:
    a.flags.writeable = False
    return a
