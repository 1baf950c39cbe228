"""The normalized label model: one columnar, numpy-backed :class:`LabelSet` per export.

Every label kind is a small frozen table whose columns are numpy arrays. Columns are declared once
(a :func:`col` field of a :func:`table` class; ``COLUMNS`` is derived from them); validation,
selection, concatenation, equality, the parsers' Deepen fields and the Arrow mapping are derived
from that declaration, never written per kind.

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
disjoint rings are a two-part polygon, and a ring inside another is a hole. A ring that cannot
bound an area (fewer than 3 vertices, non-finite) is left out and reported. The rule lives once,
in :func:`deepen_export.geometry.polygon_geometries`, which every writer, Parquet and the
previews use; the model keeps the rings as given.

Frames and kinds
----------------
Every frame has a role (:class:`FrameRole`: LiDAR frame, camera image, image), decided once
when its :class:`LabelSet` is built (:func:`frame_roles`) and kept by later copies;
:meth:`LabelSet.lidar_frames`, :meth:`LabelSet.images`, :meth:`LabelSet.sequence_order` and
:meth:`LabelSet.image_names` answer from it. The label kinds are one registry,
:data:`KIND_SPECS`; each column is declared once, with :func:`col` in its :func:`table` class.

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
from itertools import repeat
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal, Self, TypeVar, dataclass_transform

import numpy as np
import numpy.typing as npt

__all__ = [
    "COMMON",
    "DISTORTION_NAMES",
    "KINDS",
    "KIND_OF_LABEL_TYPE",
    "KIND_SPECS",
    "LABEL_KINDS",
    "LABEL_TYPE_OF_KIND",
    "POINT_CLOUD_SUFFIXES",
    "Action",
    "Boxes",
    "Cameras",
    "Col",
    "Cuboids",
    "FrameRole",
    "FrameStatus",
    "Frames",
    "Issue",
    "KindSpec",
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
    "col",
    "frame_roles",
    "natural_key",
    "parse_track",
    "table",
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
    """Declaration of one column: everything the model, the parsers and Arrow derive from.

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
    offsets : bool
        The column is an offsets column (one more value than its parent level); ``OFFSETS`` is
        the tuple of these, in declaration order.
    missing : object
        The value that means "unknown" (``-1`` for times and counts); Arrow writes it as null
        and reads null back as it. ``None``: every value is a real value.
    codes : bool
        The column holds codes into ``LabelSet.categories`` (validated to be in range, and
        remapped by :meth:`LabelSet.concat`); ``missing`` (-1) is allowed when declared.
    deepen : str or None
        Deepen label field the parsers read this column from (common label columns only).
    arrow : str or None
        Name of the column in the Arrow / Parquet ``labels`` table (common label columns only).
    arrow_type : str
        Arrow type of that column: ``"string"``, ``"int64"``, ``"timestamp[ms]"`` or
        ``"dictionary"``; empty derives it from ``dtype`` (``O`` string, codes dictionary).
    note : str
        What the Arrow column holds, when its name does not say (written as field metadata).
    """

    dtype: str
    shape: tuple[int, ...] = ()
    level: int = 0
    fill: Any = None
    offsets: bool = False
    missing: Any = None
    codes: bool = False
    deepen: str | None = None
    arrow: str | None = None
    arrow_type: str = ""
    note: str = ""

    @property
    def arrow_kind(self) -> str:
        """The Arrow type name of :attr:`arrow_type`, derived from the dtype when not given."""
        if self.arrow_type:
            return self.arrow_type
        if self.codes:
            return "dictionary"
        return "string" if self.dtype == "O" else self.dtype


def col(
    dtype: str,
    shape: tuple[int, ...] = (),
    *,
    level: int = 0,
    fill: Any = None,
    offsets: bool = False,
    missing: Any = None,
    codes: bool = False,
    deepen: str | None = None,
    arrow: str | None = None,
    arrow_type: str = "",
    note: str = "",
) -> Any:
    """Declare a table column (a dataclass field carrying its :class:`Col`); see :func:`table`.

    Examples
    --------
    >>> @table
    ... class Marks(Table):
    ...     frame: Array = col("int64")
    ...     score: Array = col("float64", fill=0.0)
    >>> Marks.from_columns(frame=[0, 3]).score.tolist()
    [0.0, 0.0]
    >>> list(Marks.COLUMNS)
    ['frame', 'score']
    """
    spec = Col(dtype, shape, level, fill, offsets, missing, codes, deepen, arrow, arrow_type, note)
    return field(metadata={"col": spec})


_T = TypeVar("_T", bound="type[Table]")


@dataclass_transform(frozen_default=True, eq_default=False, field_specifiers=(col, field))
def table(cls: _T) -> _T:
    """Make ``cls`` a frozen table: ``COLUMNS`` and ``OFFSETS`` come from its :func:`col` fields.

    The field declarations are the only place a column is named; validation, selection,
    concatenation, equality, repr and the Arrow mapping all read ``COLUMNS``.

    Examples
    --------
    >>> Polygons.OFFSETS, Polygons.COLUMNS["coords"].level
    (('offsets', 'ring_offsets'), 2)
    """
    made: Any = dataclass(frozen=True, eq=False, repr=False)(cls)
    cols = {f.name: f.metadata["col"] for f in dataclasses.fields(made) if "col" in f.metadata}
    made.COLUMNS = cols
    made.OFFSETS = tuple(name for name, c in cols.items() if c.offsets)
    return made


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


class FrameRole(enum.IntEnum):
    """What a frame is, decided once (when its :class:`LabelSet` is built): see :func:`frame_roles`."""

    UNSET = -1
    """Not decided yet: a :class:`LabelSet` decides it from its tables when it is built."""
    IMAGE = 0
    """An image of an image dataset."""
    LIDAR = 1
    """A LiDAR frame of a 3D dataset (cuboids, 3D lines, paint, poses and points hang on it)."""
    CAMERA = 2
    """A camera image of a LiDAR frame (``sensor_id`` ``camera_<k>``)."""


POINT_CLOUD_SUFFIXES = frozenset({".pcd", ".bin", ".ply", ".las", ".laz", ".npy", ".json"})
"""File suffixes that name LiDAR frames, never images."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(s: str) -> tuple[Any, ...]:
    """Sort key that orders ``"2.pcd"`` before ``"10.pcd"``.

    Examples
    --------
    >>> sorted(["10.pcd", "2.pcd", "1.pcd"], key=natural_key)
    ['1.pcd', '2.pcd', '10.pcd']
    """
    parts: list[Any] = _DIGITS.split(s)
    parts[1::2] = [int(t) for t in parts[1::2]]
    return tuple(parts)


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
        n = int(m.group(1)) if m else -1
        # a number past int64 is no usable track id: -1, as for an id without one
        out.append(n if -(2**63) <= n < 2**63 else -1)
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


@table
class LabelTable(Table):
    """Base of label tables: the common columns plus ``attributes`` (key -> object array).

    Common columns: ``frame`` (row of :class:`Frames`), Deepen's ``label_id`` and the ``track``
    number parsed from it (-1 when absent), ``category`` (code into ``LabelSet.categories``),
    ``stage``, ``label_set``, ``labeller`` (e-mail), ``user`` (Deepen's ``user_id``), times in
    epoch milliseconds (-1 unknown) and ``version`` (-1 unknown). Each declaration also names
    the Deepen field it is parsed from and its Arrow column, so a new common column is one line
    here.
    """

    frame: Array = col("int64")
    label_id: Array = col("O", deepen="label_id", arrow="label_id")
    track: Array = col(
        "int64", fill=-1, missing=-1, arrow="track_id", note="number after ':' in label_id"
    )
    category: Array = col("int32", codes=True, arrow="category")
    stage: Array = col("O", fill="", deepen="stage_id", arrow="stage")
    label_set: Array = col("O", fill="", deepen="label_set_id", arrow="label_set")
    labeller: Array = col("O", fill="", deepen="labeller_email", arrow="labeller")
    user: Array = col("O", fill="", deepen="user_id", arrow="user")
    create_time: Array = col(
        "int64", fill=-1, missing=-1, deepen="create_time_millis", arrow="create_time",
        arrow_type="timestamp[ms]",
    )  # fmt: skip
    update_time: Array = col(
        "int64", fill=-1, missing=-1, deepen="update_time_millis", arrow="update_time",
        arrow_type="timestamp[ms]",
    )  # fmt: skip
    version: Array = col("int64", fill=-1, missing=-1, deepen="version", arrow="version")

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


COMMON: dict[str, Col] = dict(LabelTable.COLUMNS)
"""The common columns of every label table (see :class:`LabelTable`), by name."""


def _attributes() -> Any:
    return field(default_factory=dict)


@table
class Boxes(LabelTable):
    """2D boxes, ``xyxy (n, 4)`` float64 in pixel-corner coordinates."""

    xyxy: Array = col("float64", (4,))
    attributes: Mapping[str, Array] = _attributes()


@table
class Polygons(LabelTable):
    """2D polygons: ``offsets`` (label -> rings), ``ring_offsets`` (ring -> vertices), ``coords (m, 2)``.

    Rings are open and in Deepen's order; parts vs holes follow the even-odd rule in the module
    docstring.
    """

    offsets: Array = col("int64", fill=0, offsets=True)
    ring_offsets: Array = col("int64", level=1, fill=0, offsets=True)
    coords: Array = col("float64", (2,), level=2)
    attributes: Mapping[str, Array] = _attributes()


@table
class Polygons3D(LabelTable):
    """3D polygons (``3d_polygon``), same layout as :class:`Polygons` with ``coords (m, 3)``."""

    offsets: Array = col("int64", fill=0, offsets=True)
    ring_offsets: Array = col("int64", level=1, fill=0, offsets=True)
    coords: Array = col("float64", (3,), level=2)
    attributes: Mapping[str, Array] = _attributes()


@table
class Polylines(LabelTable):
    """2D lanes and polylines: ``offsets`` (label -> parts), ``part_offsets`` (part -> vertices).

    ``label_type`` keeps Deepen's type (``"lane"`` or ``"polyline"``).
    """

    label_type: Array = col("O", fill="lane")
    offsets: Array = col("int64", fill=0, offsets=True)
    part_offsets: Array = col("int64", level=1, fill=0, offsets=True)
    coords: Array = col("float64", (2,), level=2)
    attributes: Mapping[str, Array] = _attributes()


@table
class Polylines3D(LabelTable):
    """3D polylines (``3d_polyline``), same layout as :class:`Polylines` with ``coords (m, 3)``."""

    offsets: Array = col("int64", fill=0, offsets=True)
    part_offsets: Array = col("int64", level=1, fill=0, offsets=True)
    coords: Array = col("float64", (3,), level=2)
    attributes: Mapping[str, Array] = _attributes()


@table
class Points(LabelTable):
    """2D points / keypoints: ``offsets`` (label -> points), ``coords (m, 2)``."""

    offsets: Array = col("int64", fill=0, offsets=True)
    coords: Array = col("float64", (2,), level=1)
    attributes: Mapping[str, Array] = _attributes()


@table
class Points3D(LabelTable):
    """3D vector points (``3d_point`` labels with coordinates): ``offsets``, ``coords (m, 3)``."""

    offsets: Array = col("int64", fill=0, offsets=True)
    coords: Array = col("float64", (3,), level=1)
    attributes: Mapping[str, Array] = _attributes()


@table
class Cuboids(LabelTable):
    """3D boxes: ``center (n, 3)``, ``size (n, 3)`` = (l, w, h), ``quat (n, 4)`` = (x, y, z, w).

    ``frame_of_reference`` is ``"world"`` (Deepen JSON 3D datasets), ``"lidar"``, or ``"camera"``
    (KITTI labels read back without their calib files).
    """

    center: Array = col("float64", (3,))
    size: Array = col("float64", (3,))
    quat: Array = col("float64", (4,))
    attributes: Mapping[str, Array] = _attributes()
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
        from deepen_export.geometry.spatial import quat_to_yaw

        return quat_to_yaw(self.quat, normalize=False)


@table
class Scenes(LabelTable):
    """Scene labels (``scene``): a category and attributes on a frame, no geometry."""

    attributes: Mapping[str, Array] = _attributes()


# ---------------------------------------------------------------------------------------
# frames, segmentation and calibration


@table
class Frames(Table):
    """One row per file and sensor: a LiDAR frame, a camera image of it, or an image.

    ``index`` is the frame's position in its dataset's sequence (shared by a LiDAR frame and
    its camera views; -1 unknown). ``width``/``height`` are -1 when unknown. ``status`` holds
    :class:`FrameStatus` values, ``role`` :class:`FrameRole` values.
    """

    file_id: Array = col("O")
    sensor_id: Array = col("O", fill="")
    dataset_id: Array = col("O", fill="")
    index: Array = col("int64", fill=-1, missing=-1)
    width: Array = col("int32", fill=-1, missing=-1)
    height: Array = col("int32", fill=-1, missing=-1)
    status: Array = col("int8", fill=int(FrameStatus.UNKNOWN))
    role: Array = col("int8", fill=int(FrameRole.UNSET), missing=int(FrameRole.UNSET))

    def keys(self) -> list[tuple[str, str, str]]:
        """``(dataset_id, file_id, sensor_id)`` of every row."""
        return list(zip(self.dataset_id, self.file_id, self.sensor_id, strict=True))


@table
class PointSegmentation(Table):
    """Per-point classes (and instances) of LiDAR frames, all frames concatenated.

    Row ``i`` is one LiDAR frame (``frame[i]`` into :class:`Frames`) owning points
    ``offsets[i]:offsets[i + 1]``. ``category`` is a code into ``LabelSet.categories`` or -1 for
    unpainted points; ``instance`` is the instance (label) number, -1 when none.
    """

    frame: Array = col("int64")
    offsets: Array = col("int64", fill=0, offsets=True)
    category: Array = col("int32", level=1, codes=True, missing=-1)
    instance: Array = col("int32", level=1, fill=-1, missing=-1)


@table
class Masks2D(Table):
    """2D semantic painting: one ``height x width`` mask per frame, row-major, flattened.

    ``pixels`` are codes into ``LabelSet.categories`` or -1 for unpainted pixels.
    """

    frame: Array = col("int64")
    height: Array = col("int32")
    width: Array = col("int32")
    offsets: Array = col("int64", fill=0, offsets=True)
    pixels: Array = col("int32", level=1, codes=True, missing=-1)

    def mask(self, i: int) -> Array:
        """The ``(height, width)`` mask of row ``i``."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.pixels[a:b].reshape(int(self.height[i]), int(self.width[i]))


@table
class Poses(Table):
    """Per LiDAR frame: the device (LiDAR) pose in the world, ``p_world = R(quat) p + position``."""

    frame: Array = col("int64")
    position: Array = col("float64", (3,))
    quat: Array = col("float64", (4,))
    timestamp: Array = col("float64", fill=np.nan)


DISTORTION_NAMES = ("k1", "k2", "p1", "p2", "k3", "k4")


@table
class Cameras(Table):
    """Per camera image of a LiDAR frame: intrinsics, distortion and camera -> world pose.

    ``frame`` is the LiDAR frame's row in :class:`Frames`; ``sensor_id`` is ``camera_<k>``.
    ``distortion`` holds ``(k1, k2, p1, p2, k3, k4)`` (fisheye / mod_kannala use k1..k4 in the
    k1, k2, k3, k4 slots and leave p1, p2 at 0). Camera axes: x right, y down, z forward.
    """

    frame: Array = col("int64")
    sensor_id: Array = col("O")
    fx: Array = col("float64")
    fy: Array = col("float64")
    cx: Array = col("float64")
    cy: Array = col("float64")
    model: Array = col("O", fill="pinhole")
    distortion: Array = col("float64", (6,), fill=0.0)
    position: Array = col("float64", (3,))
    quat: Array = col("float64", (4,))
    image_path: Array = col("O", fill="")
    width: Array = col("int32", fill=-1, missing=-1)
    height: Array = col("int32", fill=-1, missing=-1)
    timestamp: Array = col("float64", fill=np.nan)

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


@table
class PointClouds(Table):
    """LiDAR points of each frame (world frame, as uploaded), concatenated: ``xyz (m, 3)``."""

    frame: Array = col("int64")
    offsets: Array = col("int64", fill=0, offsets=True)
    xyz: Array = col("float64", (3,), level=1)
    intensity: Array = col("float32", level=1, fill=np.nan)


# ---------------------------------------------------------------------------------------
# the kind registry


@dataclass(frozen=True)
class KindSpec:
    """One label kind: its :class:`LabelSet` table and where it comes from in Deepen.

    Parameters
    ----------
    name : str
        The kind's name, also the :class:`LabelSet` field (``"boxes"``).
    table : type
        Its table class.
    label_types : tuple of str
        Deepen ``label_type`` values parsed into it; the first is the one written back
        (polylines keep their own in ``Polylines.label_type``). Empty for painting.
    dim : int
        2 for image-plane labels, 3 for LiDAR / world labels.
    family : str
        Geometry family: ``box``, ``polygon``, ``polyline``, ``point``, ``cuboid``, ``scene``
        or ``raster`` (per-point / per-pixel classes).
    """

    name: str
    table: type[Table]
    label_types: tuple[str, ...]
    dim: int
    family: str

    @property
    def vector(self) -> bool:
        """A vector label kind (one row per label, with the common columns)."""
        return issubclass(self.table, LabelTable)

    @property
    def label_table(self) -> type[LabelTable]:
        """:attr:`table` of a vector kind (LabelError for painting kinds)."""
        if not issubclass(self.table, LabelTable):
            raise LabelError(f"{self.name} is not a vector label kind")
        return self.table


KIND_SPECS: dict[str, KindSpec] = {
    k.name: k
    for k in (
        KindSpec("boxes", Boxes, ("box",), 2, "box"),
        KindSpec("polygons", Polygons, ("polygon",), 2, "polygon"),
        KindSpec("polylines", Polylines, ("lane", "polyline"), 2, "polyline"),
        KindSpec("points", Points, ("point",), 2, "point"),
        KindSpec("cuboids", Cuboids, ("3d_bbox",), 3, "cuboid"),
        KindSpec("polylines3d", Polylines3D, ("3d_polyline",), 3, "polyline"),
        KindSpec("polygons3d", Polygons3D, ("3d_polygon",), 3, "polygon"),
        KindSpec("points3d", Points3D, ("3d_point",), 3, "point"),
        KindSpec("scenes", Scenes, ("scene",), 2, "scene"),
        KindSpec("point_segmentation", PointSegmentation, (), 3, "raster"),
        KindSpec("masks2d", Masks2D, (), 2, "raster"),
    )
}
"""The one registry of label kinds, in :class:`LabelSet` order: parse, Arrow, the format
registry and previews read it. A new kind is one line here plus its table and parser lines."""

KINDS: tuple[str, ...] = tuple(KIND_SPECS)
"""Every kind of label a format may or may not hold."""

LABEL_KINDS: tuple[str, ...] = tuple(k for k, spec in KIND_SPECS.items() if spec.vector)
"""Names of the vector label tables of a :class:`LabelSet`."""

KIND_OF_LABEL_TYPE: dict[str, str] = {
    lt: spec.name for spec in KIND_SPECS.values() for lt in spec.label_types
}
"""Model kind of each Deepen ``label_type``."""

LABEL_TYPE_OF_KIND: dict[str, str] = {
    k: spec.label_types[0] for k, spec in KIND_SPECS.items() if spec.label_types
}
"""Deepen ``label_type`` of each model kind (polylines keep their own: ``lane`` or ``polyline``)."""

_TABLE_TYPES: dict[str, type[Table]] = {
    **{k: spec.table for k, spec in KIND_SPECS.items()},
    "poses": Poses,
    "cameras": Cameras,
    "pointclouds": PointClouds,
}
_TABLES: tuple[str, ...] = tuple(_TABLE_TYPES)
"""Every table field of a :class:`LabelSet` but ``frames``."""


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
        if np.any(self.frames.role == int(FrameRole.UNSET)):
            # roles are decided here, once; later copies (replace, select_frames) keep them
            roles = np.where(
                self.frames.role == FrameRole.UNSET, frame_roles(self), self.frames.role
            )
            object.__setattr__(
                self, "frames", dataclasses.replace(self.frames, role=_ro(roles.astype(np.int8)))
            )

    # -- frame roles ----------------------------------------------------------------------
    def lidar_frames(self) -> Array:
        """Rows of :attr:`frames` that are LiDAR frames, in sequence order.

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["1.pcd", "0.pcd", "a.png"]))
        >>> ls.lidar_frames().tolist()
        [1, 0]
        """
        return self.sequence_order(np.flatnonzero(self.frames.role == FrameRole.LIDAR))

    def images(self) -> Array:
        """Rows of :attr:`frames` that are images (of an image dataset, or camera views), in row
        order; a LiDAR frame that carries 2D labels counts too, so none of them is lost.

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd", "0.pcd", "a.png"],
        ...                                          sensor_id=["lidar", "camera_0", "s1"]))
        >>> ls.images().tolist()
        [1, 2]
        """
        has2d = self._on_frames(k for k, spec in KIND_SPECS.items() if spec.dim == 2)
        return np.flatnonzero((self.frames.role != FrameRole.LIDAR) | has2d)

    def sequence_order(self, rows: npt.ArrayLike) -> Array:
        """``rows`` of :attr:`frames` sorted by dataset, sequence index, file id (natural order)
        and sensor: the order of a dataset's sequence.

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["10.png", "9.png", "b.png"],
        ...                                          index=[-1, -1, 0]))
        >>> ls.sequence_order([0, 1, 2]).tolist()
        [1, 0, 2]
        """
        fr = self.frames
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        keys = [
            (
                str(fr.dataset_id[r]),
                int(fr.index[r]),
                natural_key(str(fr.file_id[r])),
                str(fr.sensor_id[r]),
            )
            for r in rows.tolist()
        ]
        return rows[sorted(range(len(rows)), key=keys.__getitem__)] if len(rows) else rows

    def image_names(self, rows: npt.ArrayLike) -> list[str]:
        """Relative image path of each frame in ``rows``, unique among them.

        The name is the frame's ``file_id``; a camera view of a LiDAR frame takes its camera's
        ``image_path`` (from the uploaded frames) or else ``<sensor_id>/<file_id>``. When a name
        is still shared (one ``file_id`` labelled on several sensors, or several datasets), every
        frame with that name is put under ``<sensor_id>/`` (and ``<dataset_id>/`` if that is not
        enough).

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png", "a.png"], sensor_id=["s1", "s2"]))
        >>> ls.image_names([0, 1])
        ['s1/a.png', 's2/a.png']
        """
        f = self.frames
        frames = np.asarray(rows, dtype=np.int64).reshape(-1).tolist()
        names = [str(x) for x in f.file_id[frames]]
        cams = self.cameras
        lookup = {
            (str(f.dataset_id[fr]), str(f.file_id[fr]), str(sid)): str(path)
            for fr, sid, path in zip(cams.frame, cams.sensor_id, cams.image_path, strict=True)
            if path
        }
        for k, fr in enumerate(frames):
            key = (str(f.dataset_id[fr]), str(f.file_id[fr]), str(f.sensor_id[fr]))
            names[k] = lookup.get(key, names[k])
            if _suffix(names[k]) in POINT_CLOUD_SUFFIXES:
                names[k] = f"{f.sensor_id[fr]}/{names[k]}"
        for prefix in (f.sensor_id, f.dataset_id):
            counts: dict[str, int] = {}
            for n in names:
                counts[n] = counts.get(n, 0) + 1
            names = [
                f"{prefix[fr]}/{n}" if counts[n] > 1 and prefix[fr] else n
                for n, fr in zip(names, frames, strict=True)
            ]
        return names

    def _on_frames(self, kinds: Iterable[str]) -> Array:
        """Frames that some table of ``kinds`` has a row on."""
        hit = np.zeros(len(self.frames), dtype=bool)
        for k in kinds:
            hit[getattr(self, k).frame] = True
        return hit

    @classmethod
    def empty(cls) -> LabelSet:
        """A label set with nothing in it."""
        return cls()

    def validate(self) -> None:
        """Check that frames and category codes are in range in every table."""
        nf, nc = len(self.frames), len(self.categories)
        for name in _TABLES:
            t = getattr(self, name)
            if not isinstance(t, _TABLE_TYPES[name]):
                raise LabelError(
                    f"LabelSet.{name} must be {_TABLE_TYPES[name].__name__}, got {type(t).__name__}"
                )
            fr = getattr(t, "frame")  # noqa: B009
            if len(fr) and (fr.min() < 0 or fr.max() >= nf):
                raise LabelError(f"LabelSet.{name}.frame has rows outside 0..{nf - 1}")
            for col_name, spec in t.COLUMNS.items():
                codes = getattr(t, col_name)
                lo = -1 if spec.missing == -1 else 0
                if spec.codes and len(codes) and (codes.min() < lo or codes.max() >= nc):
                    raise LabelError(f"LabelSet.{name}.{col_name} has codes outside {lo}..{nc - 1}")

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

    def row_issues(
        self, kind: str, rows: npt.ArrayLike, action: Action, reason: str
    ) -> list[Issue]:
        """One :class:`Issue` per label at ``rows`` (indices or mask) of table ``kind``.

        Examples
        --------
        >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("x",),
        ...               scenes=Scenes.from_columns(frame=[0], category=[0], label_id=["x:1"]))
        >>> ls.row_issues("scenes", [True], "dropped", "no scenes here")[0].label_id
        'x:1'
        """
        table = self.table(kind)
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if len(idx) == 0:
            return []
        n = len(idx)
        file_ids = [str(f) for f in self.frames.file_id[table.frame[idx]].tolist()]  # type: ignore[attr-defined]
        label_ids = getattr(table, "label_id", None)
        lids = [None] * n if label_ids is None else [str(x) for x in label_ids[idx].tolist()]
        # one map() over the columns instead of a constructor call per label in Python
        return list(
            map(Issue, repeat(action, n), repeat(reason, n), file_ids, lids, repeat(kind, n))
        )

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
        for name in _TABLES:
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
        return all(getattr(self, k).equals(getattr(other, k)) for k in _TABLES)

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
        for name in _TABLES:
            tables = []
            for s in sets:
                remap = np.asarray([cats.index(c) for c in s.categories] or [0], dtype=np.int32)
                tables.append(_remap_codes(getattr(s, name), remap))
            changes[name] = _TABLE_TYPES[name].concat(tables, frame_shift=shifts)
        changes["issues"] = tuple(i for s in sets for i in s.issues)
        changes["meta"] = {"sources": [dict(s.meta) for s in sets]}
        return cls(**changes)


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def frame_roles(labels: LabelSet) -> Array:
    """The role (:class:`FrameRole`) of every frame of ``labels``: the one rule.

    A ``camera*`` sensor row is a camera view of a LiDAR frame. Any other row is a LiDAR frame
    when 3D data hangs on it (a 3D label kind, paint, poses, cameras or points), or when its
    sensor is ``lidar*`` or its file a point cloud (``.pcd``, ``.bin``...) and it carries no 2D
    label. Everything else is an image.

    Examples
    --------
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd", "0.pcd", "a.png"],
    ...                                          sensor_id=["lidar", "camera_0", "s1"]))
    >>> [FrameRole(r).name for r in ls.frames.role]
    ['LIDAR', 'CAMERA', 'IMAGE']
    """
    fr = labels.frames
    has3d = labels._on_frames(
        [*(k for k, spec in KIND_SPECS.items() if spec.dim == 3), "poses", "cameras", "pointclouds"]
    )
    has2d = labels._on_frames(k for k, spec in KIND_SPECS.items() if spec.dim == 2)
    sensor = [str(s).lower() for s in fr.sensor_id]
    camera = np.array([s.startswith("camera") for s in sensor], dtype=bool)
    lidarish = np.array(
        [s.startswith("lidar") or _suffix(str(f)) in POINT_CLOUD_SUFFIXES
         for s, f in zip(sensor, fr.file_id, strict=True)],
        dtype=bool,
    )  # fmt: skip
    lidar = ~camera & (has3d | (lidarish & ~has2d))
    roles = np.full(len(fr), int(FrameRole.IMAGE), dtype=np.int8)
    roles[camera] = FrameRole.CAMERA
    roles[lidar] = FrameRole.LIDAR
    return roles


def _remap_codes(t: Table, remap: Array) -> Table:
    """``t`` with every category-code column mapped through ``remap`` (missing codes kept)."""
    changes = {}
    for name, spec in t.COLUMNS.items():
        codes = getattr(t, name)
        if spec.codes and len(codes):
            new = np.where(codes >= 0, remap[np.maximum(codes, 0)], codes).astype(codes.dtype)
            changes[name] = _ro(new)
    return dataclasses.replace(t, **changes) if changes else t  # type: ignore[type-var]


def _ro(a: Array) -> Array:
    a.flags.writeable = False
    return a
