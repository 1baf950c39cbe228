"""LabelSet <-> Arrow tables: typed, self-describing, GeoParquet-ready.

One :class:`~deepen_export.model.LabelSet` maps to up to six Arrow tables (:data:`TABLES`):

``labels``
    One row per vector label of *every* kind (box, polygon, lane/polyline, point, 3D box, 3D
    polyline/polygon/point, scene), so "labels per category", "labels per labeller" and
    "tracks longer than N frames" are one ``GROUP BY`` on one table. ``label_type`` is Deepen's
    label type and ``kind`` the model table; the geometry columns of other kinds are null.
``frames``
    One row per file and sensor with its review status, so empty frames (reviewed, no labels)
    can be told from unlabelled ones.
``point_segmentation``
    One row per LiDAR point (not one list per frame): category counts and filters run 2-4x
    faster in DuckDB and Polars on this layout (see the README, "Parquet for analytics", for the measurement).
``masks2d``
    One row per painted image, ``pixels`` a row-major ``list<int32>`` of category codes.
``poses``, ``cameras``
    Calibration per LiDAR frame and per camera image.

Every table carries the frame key ``dataset_id, file_id, sensor_id, frame_index``. Geometry in
``labels``:

- ``geometry`` (WKB, GeoParquet 1.1 primary column, ``crs: null`` = image pixels, undefined CRS):
  box -> Polygon, polygon -> Polygon/MultiPolygon (parts and holes by the model's even-odd rule,
  exterior counter-clockwise in raw coordinates), lane/polyline -> (Multi)LineString, point ->
  (Multi)Point; null for 3D kinds and scenes.
- ``bbox`` struct<xmin, ymin, xmax, ymax>: the GeoParquet covering of ``geometry``; for boxes it
  *is* the box.
- ``xy`` list<list<struct<x, y>>>: the label's vertices exactly as Deepen sent them (polygon rings,
  open, in Deepen's order; polyline parts; a point label's points as one part). GeoArrow layout,
  lossless: :func:`from_arrow` reads geometry back from here, never from WKB.
- ``xyz`` list<list<struct<x, y, z>>> and ``geometry_3d`` (WKB Z): the same for 3D polylines,
  polygons and points (world or LiDAR metres, float64).
- ``cuboid`` struct<cx, cy, cz, l, w, h, qx, qy, qz, qw, yaw> (float64; ``yaw`` derived).

Attributes are ``map<string, string>`` (string values verbatim; a key with any non-string value
has *all* its values JSON-encoded and is listed as ``"json"`` in the metadata, so types survive
the round trip). Optionally (``attribute_columns=True``) each key that every label of some
category has also gets a typed column ``attr_<key>`` (bool, int64, float64 or string).

Integers that the model marks unknown with -1 (``track_id``, ``frame_index``, ``version``,
times, width, height) are null in Arrow; times are ``timestamp[ms, UTC]``.

Schema metadata key ``deepen_export`` holds JSON: schema version, table name, categories (codes
of ``masks2d.pixels`` index them), coordinate conventions, cuboid frame of reference, attribute
encodings, tool version and the source. ``geo`` holds GeoParquet 1.1 metadata.

Examples
--------
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], dataset_id=["ds"]),
...               categories=("car",),
...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"],
...                                        xyxy=[[1, 2, 3, 4]]))
>>> tables = to_arrow(ls)
>>> tables["labels"].select(["label_type", "category", "track_id"]).to_pylist()
[{'label_type': 'box', 'category': 'car', 'track_id': 1}]
>>> from_arrow(tables) == ls
True
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from deepen_export.errors import ConversionError, ParseError
from deepen_export.geometry.planar import POLYGON_REPAIRED, RING_LEFT_OUT, polygon_geometries
from deepen_export.model import (
    KIND_OF_LABEL_TYPE,
    KIND_SPECS,
    LABEL_KINDS,
    LABEL_TYPE_OF_KIND,
    Cameras,
    Frames,
    FrameStatus,
    Issue,
    LabelSet,
    LabelTable,
    Masks2D,
    PointClouds,
    PointSegmentation,
    Poses,
)

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_docs_and_api.py checks
    "CONVENTIONS",
    "GeoSummary",
    "KIND_OF_LABEL_TYPE",
    "LABEL_TYPE_OF_KIND",
    "NO_AREA_LEFT",
    "SCHEMA_VERSION",
    "TABLES",
    "attribute_keys",
    "from_arrow",
    "geometry_issues",
    "label_schema",
    "label_slices",
    "table_metadata",
    "to_arrow",
]

SCHEMA_VERSION = 1
"""Version of the Parquet/Arrow schema described here (bumped on any incompatible change)."""

TABLES: tuple[str, ...] = (
    "labels",
    "frames",
    "point_segmentation",
    "masks2d",
    "poses",
    "cameras",
    "pointclouds",
)
"""Names of the tables :func:`to_arrow` produces."""

CONVENTIONS = {
    "image": "pixel-corner coordinates, origin top-left, x right, y down",
    "bbox": "xmin, ymin, xmax, ymax in pixels (boxes: the box itself)",
    "world": "right-handed, z up, metres; LiDAR x forward, y left, z up",
    "cuboid": "centre (cx, cy, cz); l, w, h along the box's x (heading), y, z; "
    "quaternion (qx, qy, qz, qw) box -> frame; yaw about +z in radians",
    "pose": "sensor -> world: p_world = R(q) p_sensor + position",
    "time": "timestamp[ms, UTC]",
}

_XY = pa.struct([pa.field("x", pa.float64(), False), pa.field("y", pa.float64(), False)])
_XYZ = pa.struct(
    [
        pa.field("x", pa.float64(), False),
        pa.field("y", pa.float64(), False),
        pa.field("z", pa.float64(), False),
    ]
)
_BBOX = pa.struct([pa.field(k, pa.float64(), False) for k in ("xmin", "ymin", "xmax", "ymax")])
_CUBOID_FIELDS = ("cx", "cy", "cz", "l", "w", "h", "qx", "qy", "qz", "qw", "yaw")
_CUBOID = pa.struct([pa.field(k, pa.float64(), False) for k in _CUBOID_FIELDS])
_QUAT = pa.struct([pa.field(k, pa.float64(), False) for k in ("x", "y", "z", "w")])
_DISTORTION_FIELDS = ("k1", "k2", "p1", "p2", "k3", "k4")
_DISTORTION = pa.struct([pa.field(k, pa.float64(), False) for k in _DISTORTION_FIELDS])
_TS = pa.timestamp("ms", tz="UTC")
_I64 = pa.int64()
_STATUS_NAMES = {int(s): s.name.lower() for s in FrameStatus}

_KEY_FIELDS = [
    pa.field("dataset_id", pa.string()),
    pa.field("file_id", pa.string()),
    pa.field("sensor_id", pa.string()),
    pa.field("frame_index", pa.int64()),
]


def _enc(encoding: str, **more: Any) -> dict[bytes, bytes]:
    return {b"encoding": json.dumps({"encoding": encoding, **more}).encode()}


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": _I64,
    "int32": pa.int32(),
    "timestamp[ms]": _TS,
    "dictionary": pa.dictionary(pa.int32(), pa.string()),
}
_COMMON_COLUMNS = {name: c for name, c in LabelTable.COLUMNS.items() if c.arrow}
"""Model column -> declaration of the common label columns the ``labels`` table holds."""
_COMMON_FIELDS = [
    pa.field(c.arrow, _ARROW_TYPES[c.arrow_kind], metadata=_enc(c.note) if c.note else None)
    for c in _COMMON_COLUMNS.values()
    if c.arrow
]


_LABEL_FIELDS = [
    pa.field("dataset_id", pa.string()),
    pa.field("label_type", pa.string(), metadata=_enc("Deepen label_type")),
    pa.field("kind", pa.string(), metadata=_enc("deepen_export.model table name")),
    *_KEY_FIELDS[1:],
    *_COMMON_FIELDS,
    pa.field(
        "attributes",
        pa.map_(pa.string(), pa.string()),
        metadata=_enc("strings verbatim; keys listed as json in metadata hold JSON text"),
    ),
    pa.field("geometry", pa.binary(), metadata=_enc("WKB", crs=None, space="image pixels")),
    pa.field("bbox", _BBOX, metadata=_enc("GeoParquet bbox covering of geometry")),
    pa.field(
        "xy",
        pa.list_(pa.list_(_XY)),
        metadata=_enc("GeoArrow nested lists: rings / parts / points of one label, as sent"),
    ),
    pa.field(
        "xyz",
        pa.list_(pa.list_(_XYZ)),
        metadata=_enc("GeoArrow nested lists: rings / parts / points of one 3D label, as sent"),
    ),
    pa.field("geometry_3d", pa.binary(), metadata=_enc("WKB Z", crs=None, space="world metres")),
    pa.field("cuboid", _CUBOID, metadata=_enc("cuboid: centre, size l/w/h, quaternion xyzw, yaw")),
    pa.field("n_parts", pa.int32(), metadata=_enc("parts of the geometry (even-odd rule)")),
    pa.field("n_holes", pa.int32(), metadata=_enc("holes of a polygon (even-odd rule)")),
]


def label_schema(attribute_types: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """Arrow schema of the ``labels`` table (plus typed ``attr_<key>`` columns).

    Examples
    --------
    >>> label_schema().field("cuboid").type.names[:3]
    ['cx', 'cy', 'cz']
    """
    extra = [pa.field(f"attr_{k}", t) for k, t in (attribute_types or {}).items()]
    return pa.schema([*_LABEL_FIELDS, *extra])


_OTHER_SCHEMAS: dict[str, pa.Schema] = {
    "frames": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("status", pa.dictionary(pa.int8(), pa.string())),
        ]
    ),
    "point_segmentation": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("point_index", pa.int32()),
            pa.field("category", pa.dictionary(pa.int32(), pa.string())),
            pa.field("instance", pa.int32()),
        ]
    ),
    "masks2d": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("height", pa.int32()),
            pa.field("width", pa.int32()),
            pa.field(
                "pixels",
                pa.list_(pa.int32()),
                metadata=_enc("row-major category codes into metadata categories, -1 unpainted"),
            ),
        ]
    ),
    "pointclouds": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("point_index", pa.int32()),
            pa.field("x", pa.float64()),
            pa.field("y", pa.float64()),
            pa.field("z", pa.float64()),
            pa.field("intensity", pa.float32()),
        ]
    ),
    "poses": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("position", _XYZ),
            pa.field("quat", _QUAT),
            pa.field("timestamp", pa.float64()),
        ]
    ),
    "cameras": pa.schema(
        [
            *_KEY_FIELDS,
            pa.field("camera_id", pa.string()),
            pa.field("fx", pa.float64()),
            pa.field("fy", pa.float64()),
            pa.field("cx", pa.float64()),
            pa.field("cy", pa.float64()),
            pa.field("model", pa.string()),
            pa.field("distortion", _DISTORTION),
            pa.field("position", _XYZ),
            pa.field("quat", _QUAT),
            pa.field("image_path", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("timestamp", pa.float64()),
        ]
    ),
}

Array = npt.NDArray[Any]


# ---------------------------------------------------------------------------------------
# small builders


def _str(values: Array) -> pa.Array:
    return pa.array(values, type=pa.string())


def _int(values: Array, type_: pa.DataType = _I64) -> pa.Array:
    values = np.asarray(values)
    return pa.array(values, type=type_, mask=values == -1)


def _time(ms: Array) -> pa.Array:
    ms = np.asarray(ms, dtype=np.int64)
    return pa.array(ms, type=pa.int64(), mask=ms == -1).cast(_TS)


def _float(values: Array) -> pa.Array:
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values))


def _struct(columns: Iterable[Array], type_: pa.StructType, mask: Array | None = None) -> pa.Array:
    arrays = [pa.array(np.ascontiguousarray(c, dtype=np.float64)) for c in columns]
    return pa.StructArray.from_arrays(
        arrays, fields=list(type_), mask=None if mask is None else pa.array(mask)
    )


def _nulls(n: int, type_: pa.DataType) -> pa.Array:
    if pa.types.is_struct(type_):  # children are "not null": give them zeros under a null parent
        zeros = np.zeros((type_.num_fields, n))
        return _struct(zeros, type_, mask=np.ones(n, dtype=bool))
    return pa.nulls(n, type_)


def _offsets32(offsets: Array) -> pa.Array:
    if len(offsets) and offsets[-1] > np.iinfo(np.int32).max:
        raise ConversionError(
            "more than 2**31 vertices in one table; write in smaller batches (write_stream)",
            format="parquet",
        )
    return pa.array(np.asarray(offsets, dtype=np.int32))


def _nested(coords: Array, inner: Array, outer: Array) -> pa.Array:
    """list<list<struct>> from flat coordinates and two offset levels (GeoArrow layout)."""
    type_ = _XY if coords.shape[1] == 2 else _XYZ
    pts = _struct(coords.T, type_)
    return pa.ListArray.from_arrays(
        _offsets32(outer), pa.ListArray.from_arrays(_offsets32(inner), pts)
    )


def _dictionary(codes: Array, names: Iterable[str]) -> pa.Array:
    codes = np.asarray(codes, dtype=np.int32)
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, mask=codes < 0), pa.array(list(names), type=pa.string())
    )


# ---------------------------------------------------------------------------------------
# geometry (derived, for GeoParquet readers)


def _finite_per(coords: Array, offsets: Array) -> Array:
    bad = ~np.isfinite(coords).all(axis=1)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return np.bincount(owner[bad], minlength=len(offsets) - 1) == 0


def _even_odd(geoms: Array) -> Array:
    """(Multi)Polygons per label from the one parts/holes rule's output; None where no area is left.

    ``geoms`` come from :func:`deepen_export.geometry.polygon_geometries`, the rule the 2D
    writers use; :func:`geometry_issues` reports the labels it changes.
    """
    out = np.full(len(geoms), None, dtype=object)
    keep = ~shapely.is_empty(geoms) if len(geoms) else np.zeros(0, dtype=bool)
    g = geoms[keep]
    one = shapely.get_num_geometries(g) == 1
    g[one] = shapely.get_geometry(g[one], 0)
    out[keep] = g
    return out


NO_AREA_LEFT = (
    "polygon has no area left (degenerate rings): geometry, bbox, n_parts and n_holes are null"
)


def geometry_issues(labels: LabelSet) -> list[Issue]:
    """Report entries for the polygons whose ``geometry`` differs from the rings as sent.

    Under the one parts/holes rule (:func:`deepen_export.geometry.polygon_geometries`): labels
    that lost a ring, labels that were repaired, and labels with no area left (their row stays,
    with null geometry). The 2D writers report the same labels with the same reasons.

    Examples
    --------
    >>> from deepen_export.model import Frames, Polygons
    >>> sq = [[0, 0], [10, 0], [10, 10], [0, 10]]
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("road",),
    ...     polygons=Polygons.from_columns(frame=[0], category=[0], label_id=["road:1"],
    ...         offsets=[0, 2], ring_offsets=[0, 4, 6], coords=sq + [[1, 1], [2, 2]]))
    >>> [(i.action, i.label_id) for i in geometry_issues(ls)]
    [('repaired', 'road:1')]
    """
    out: list[Issue] = []
    for kind in (k for k, spec in KIND_SPECS.items() if spec.family == "polygon"):
        t: Any = labels.table(kind)
        if len(t):
            geoms, left_out, repaired = polygon_geometries(t.offsets, t.ring_offsets, t.coords)
            flags = (left_out, repaired, shapely.is_empty(geoms))
            out += [i for group in _rule_issues(labels, kind, flags) for i in group]
    return out


def _rule_issues(
    labels: LabelSet, kind: str, flags: tuple[Array, Array, Array]
) -> list[list[Issue]]:
    """Report entries of one polygon table from the rule's flags: rings left out, repaired,
    no area left (three groups, in the order the report lists them)."""
    left_out, repaired, empty = flags
    return [
        labels.row_issues(kind, left_out, "repaired", RING_LEFT_OUT),
        labels.row_issues(kind, repaired, "repaired", POLYGON_REPAIRED),
        labels.row_issues(kind, empty, "changed", NO_AREA_LEFT),
    ]


def _ranges(starts: Array, counts: Array) -> Array:
    total = int(counts.sum())
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)


def _subset(coords: Array, inner: Array, outer: Array, keep: Array) -> tuple[Array, Array, Array]:
    """Coordinates and offsets of the labels where ``keep`` is true (two ragged levels)."""
    labels = np.flatnonzero(keep)
    nparts = outer[labels + 1] - outer[labels]
    parts = _ranges(outer[labels], nparts)
    nverts = inner[parts + 1] - inner[parts]
    verts = _ranges(inner[parts], nverts)
    return coords[verts], np.r_[0, np.cumsum(nverts)], np.r_[0, np.cumsum(nparts)]


def _lines(coords: Array, part_offsets: Array, offsets: Array) -> Array:
    n = len(offsets) - 1
    out = np.full(n, None, dtype=object)
    counts = np.diff(part_offsets)
    nparts = np.diff(offsets)
    part_label = np.repeat(np.arange(n), nparts)
    ok_part = (counts >= 2) & _finite_per(coords, part_offsets)
    ok = (nparts > 0) & (np.bincount(part_label[~ok_part], minlength=n) == 0)
    if not ok.any():
        return out
    geoms = shapely.from_ragged_array(
        shapely.GeometryType.MULTILINESTRING, *_split(_subset(coords, part_offsets, offsets, ok))
    )
    one = shapely.get_num_geometries(geoms) == 1
    geoms[one] = shapely.get_geometry(geoms[one], 0)
    out[ok] = geoms
    return out


def _split(sub: tuple[Array, Array, Array]) -> tuple[Array, tuple[Array, Array]]:
    return sub[0], (sub[1], sub[2])


def _points(coords: Array, offsets: Array) -> Array:
    n = len(offsets) - 1
    out = np.full(n, None, dtype=object)
    ok = (np.diff(offsets) > 0) & _finite_per(coords, offsets)
    if not ok.any():
        return out
    geoms = shapely.from_ragged_array(shapely.GeometryType.MULTIPOINT, coords, (offsets,))[ok]
    one = shapely.get_num_geometries(geoms) == 1
    geoms[one] = shapely.get_geometry(geoms[one], 0)
    out[ok] = geoms
    return out


_BOX_WKB = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"), ("xy", "<f8", (10,))]
)
"""One box as ISO WKB: a little-endian Polygon of one closed ring of 5 points (93 bytes)."""


def _box_wkb(xyxy: Array) -> pa.Array:
    """WKB Polygons of boxes, assembled in numpy; null where a coordinate is not finite.

    The bytes ``shapely.to_wkb(shapely.box(x0, y0, x1, y1, ccw=True))`` writes (the ring starts
    at (x1, y0) and runs counter-clockwise), without a GEOS object per box.
    """
    n = len(xyxy)
    ok = np.isfinite(xyxy).all(axis=1)
    x0, y0, x1, y1 = (xyxy[ok, k] for k in range(4))
    rec = np.empty(int(ok.sum()), dtype=_BOX_WKB)
    rec["order"], rec["type"], rec["rings"], rec["points"] = 1, 3, 1, 5
    rec["xy"] = np.stack([x1, y0, x1, y1, x0, y1, x0, y0, x1, y0], axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(ok * _BOX_WKB.itemsize, out=offsets[1:])
    valid = pa.array(ok).buffers()[1]
    buffers = [valid, pa.py_buffer(offsets), pa.py_buffer(rec.tobytes())]
    return pa.Array.from_buffers(pa.binary(), n, buffers, null_count=n - len(rec))


_len = np.frompyfunc(len, 1, 1)


def _wkb(geoms: Array, dim: int) -> pa.Array:
    """ISO WKB of each geometry (null for None) as one Arrow buffer: the bytes joined in C, not
    converted object by object (half the time of ``pa.array`` on the bytes objects)."""
    wkb = np.asarray(shapely.to_wkb(geoms, output_dimension=dim, flavor="iso"), dtype=object)
    ok = wkb != None  # noqa: E711 - elementwise on an object array
    lengths = np.zeros(len(wkb), dtype=np.int64)
    lengths[ok] = _len(wkb[ok]).astype(np.int64)
    offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.py_buffer(b"".join(wkb[ok].tolist()))
    if offsets[-1] > np.iinfo(np.int32).max:  # beyond 2 GiB in one batch: let Arrow chunk it
        return pa.array(wkb, type=pa.binary())
    buffers = [pa.array(ok).buffers()[1], pa.py_buffer(offsets.astype(np.int32)), data]
    return pa.Array.from_buffers(pa.binary(), len(wkb), buffers, null_count=int((~ok).sum()))


def _bbox(geoms: Array) -> pa.Array:
    b = shapely.bounds(geoms)
    return _struct(b.T, _BBOX, mask=np.isnan(b).any(axis=1))


# ---------------------------------------------------------------------------------------
# labels


def _attribute_encodings(tables: Iterable[LabelTable]) -> dict[str, str]:
    enc: dict[str, str] = {}
    for t in tables:
        for k, v in t.attributes.items():  # type: ignore[attr-defined]
            present = [x for x in v if x is not None]
            is_str = all(type(x) is str for x in present)
            enc[k] = "json" if enc.get(k) == "json" or not is_str else "string"
    return enc


def _json(value: Any) -> str:
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_plain
    )


def _plain(value: Any) -> Any:
    # attributes built in Python may hold numpy scalars; they are stored as the plain number
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"attribute value of type {type(value).__name__} cannot be stored")


def _attributes_map(t: LabelTable, encodings: Mapping[str, str]) -> pa.Array:
    attrs: Mapping[str, Array] = t.attributes  # type: ignore[attr-defined]
    n = len(t)
    keys = list(attrs)
    if not keys:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        )
    mat = np.empty((n, len(keys)), dtype=object)
    for j, k in enumerate(keys):
        mat[:, j] = attrs[k]
    present = mat != None  # noqa: E711 - elementwise comparison with None on an object array
    counts = present.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    key_arr = np.broadcast_to(np.asarray(keys, dtype=object), mat.shape)[present]
    vals = mat[present]
    is_json = np.asarray([encodings.get(k) == "json" for k in keys])
    jmask = np.broadcast_to(is_json, mat.shape)[present]
    jmask = jmask | _non_str(vals)
    if jmask.any():
        vals = vals.copy()
        vals[jmask] = [_json(v) for v in vals[jmask]]
    return pa.MapArray.from_arrays(
        pa.array(offsets), pa.array(key_arr, pa.string()), pa.array(vals, pa.string())
    )


def _typed_attribute_types(labels: LabelSet) -> dict[str, pa.DataType]:
    """Keys every label of some category has, with one scalar type: their Arrow types."""
    stats = _AttributeStats()
    stats.update(labels)
    return stats.types()


class _AttributeStats:
    """What decides the attribute columns and encodings, summed over batches of one input.

    :meth:`types` and :meth:`encodings` are what :func:`_typed_attribute_types` and a single
    Parquet write decide for the whole input, whatever the batches (counts are kept by category
    name, so batches with their own category codes add up).
    """

    def __init__(self) -> None:
        self.found: dict[str, set[type]] = {}
        self.total: dict[tuple[str, str], int] = {}
        self.with_key: dict[tuple[str, str, str], int] = {}
        self.non_str: dict[tuple[str, str], bool] = {}

    def update(self, labels: LabelSet) -> None:
        """Add one batch."""
        names = labels.categories
        for kind in LABEL_KINDS:
            t: Any = labels.table(kind)
            if not len(t):
                continue
            total = np.bincount(t.category, minlength=len(names))
            for c in np.flatnonzero(total):
                key = (kind, names[c])
                self.total[key] = self.total.get(key, 0) + int(total[c])
            for k, v in t.attributes.items():
                present = v != None  # noqa: E711
                has = np.bincount(t.category[present], minlength=len(names))
                for c in np.flatnonzero(has):
                    hk = (kind, names[c], k)
                    self.with_key[hk] = self.with_key.get(hk, 0) + int(has[c])
                types = _type_of(v[present])
                self.found.setdefault(k, set()).update(set(types))
                seen = self.non_str.get((kind, k), False)
                strings = np.isin(types, np.asarray([str], dtype=object))
                self.non_str[(kind, k)] = seen or not strings.all()

    def types(self) -> dict[str, pa.DataType]:
        """Typed ``attr_`` columns: keys every label of some category (of one kind) has."""
        complete = {k for (kind, cat, k), n in self.with_key.items() if n == self.total[kind, cat]}
        out: dict[str, pa.DataType] = {}
        for k, ts in self.found.items():
            if k not in complete:
                continue
            if ts == {bool}:
                out[k] = pa.bool_()
            elif ts == {int}:
                out[k] = pa.int64()
            elif ts and ts <= {int, float}:
                out[k] = pa.float64()
            elif ts == {str}:
                out[k] = pa.string()
        return dict(sorted(out.items()))

    def encodings(self) -> dict[str, str]:
        """Per key: ``json`` when its first kind holding it has a non-string value."""
        out: dict[str, str] = {}
        for kind in LABEL_KINDS:
            for (kd, k), non_str in self.non_str.items():
                if kd == kind and k not in out:
                    out[k] = "json" if non_str else "string"
        return out


_frompyfunc_type = np.frompyfunc(type, 1, 1)


def _type_of(values: Array) -> Array:
    """The type of each value of an object column: one C loop (no Python loop per value)."""
    return np.asarray(_frompyfunc_type(values), dtype=object)


def _non_str(values: Array) -> Array:
    """Where an object column holds anything but a ``str`` (bool mask, without a Python loop)."""
    return ~np.isin(_type_of(values), np.asarray([str], dtype=object))


def _typed_column(values: Array | None, n: int, type_: pa.DataType) -> pa.Array:
    if values is None:
        return pa.nulls(n, type_)
    ok = {pa.bool_(): (bool,), pa.int64(): (int,), pa.float64(): (int, float), pa.string(): (str,)}
    # exact types: a bool is not an int64 value, None and other types become null
    keep = np.isin(_type_of(values), np.asarray(ok[type_], dtype=object))
    vals = values
    if not keep.all():
        vals = values.copy()
        vals[~keep] = None
    return pa.array(vals, type=type_)


_Flags = tuple[Array, Array, Array]
"""The parts/holes rule's per-label flags: rings left out, repaired, no area left."""


def _label_table(
    labels: LabelSet,
    kind: str,
    encodings: Mapping[str, str],
    attribute_types: Mapping[str, pa.DataType],
    frame_keys: Mapping[str, pa.Array] | None = None,
    rows: tuple[int, int] | None = None,
) -> tuple[pa.Table, _Flags | None]:
    """The ``labels`` rows of one kind (``rows``: a range of its labels), and (polygons) the
    rule's flags for the report."""
    t: Any = labels.table(kind)
    if rows is not None and rows != (0, len(t)):
        t = t.take(np.arange(*rows))
    n = len(t)
    if kind == "polylines":
        label_type = _str(t.label_type)
    else:
        label_type = pa.repeat(pa.scalar(LABEL_TYPE_OF_KIND[kind], pa.string()), n)
    keys = _keys(labels, t.frame, frame_keys)
    cols: dict[str, pa.Array] = {
        "dataset_id": keys["dataset_id"],
        "label_type": label_type,
        "kind": pa.repeat(pa.scalar(kind, pa.string()), n),
        **{k: keys[k] for k in ("file_id", "sensor_id", "frame_index")},
        **_common_to_arrow(t, labels.categories),
        "attributes": _attributes_map(t, encodings),
    }
    spec = KIND_SPECS[kind]
    geom2d: Array | None = None
    geom3d: Array | None = None
    flags: _Flags | None = None
    if spec.family == "box":
        cols["geometry"] = _box_wkb(t.xyxy)
        cols["bbox"] = _struct(t.xyxy.T, _BBOX)  # the box itself, even where it is not finite
    elif spec.family == "cuboid":
        cols["cuboid"] = _struct([*t.center.T, *t.size.T, *t.quat.T, t.yaw], _CUBOID)
    elif spec.family in ("polygon", "polyline", "point"):
        shapes, nested, flags = _vector_geometry(t, spec.family, n)
        if spec.dim == 2:
            geom2d, cols["xy"] = shapes, nested
        else:
            geom3d, cols["xyz"] = shapes, nested
    geom = geom2d if geom2d is not None else geom3d
    if geom is not None:
        parts = shapely.get_num_geometries(geom)
        cols["n_parts"] = pa.array(parts, pa.int32(), mask=geom == None)  # noqa: E711
        if spec.family == "polygon":
            each, owner = shapely.get_parts(geom, return_index=True)
            rings = shapely.get_num_interior_rings(each)
            holes = np.bincount(owner, weights=rings, minlength=n).astype(np.int32)
            cols["n_holes"] = pa.array(holes, pa.int32(), mask=geom == None)  # noqa: E711
    if geom2d is not None:
        cols["geometry"] = _wkb(geom2d, 2)
        cols["bbox"] = _bbox(geom2d)
    if geom3d is not None:
        cols["geometry_3d"] = _wkb(geom3d, 3)
    for k, type_ in attribute_types.items():
        cols[f"attr_{k}"] = _typed_column(t.attributes.get(k), n, type_)
    schema = label_schema(attribute_types)
    arrays = [cols[f.name] if f.name in cols else _nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema), flags


def _cuts(start: int, n: int, every: int | None) -> list[tuple[int, int]]:
    """``[0, n)`` cut where row ``start + i`` is a multiple of ``every`` (a row-group boundary)."""
    if not every:
        return [(0, n)]
    first = -start % every
    edges = [0, *range(first or every, n, every), n]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def label_slices(
    labels: LabelSet,
    encodings: Mapping[str, str],
    attribute_types: Mapping[str, pa.DataType],
    *,
    start: int = 0,
    row_group_size: int | None = None,
    pool: Executor | None = None,
) -> Iterator[tuple[str, pa.Table, _Flags | None]]:
    """The ``labels`` table of ``labels`` in order, as slices built in parallel on ``pool``.

    Each kind is cut where a row-group boundary of the file falls (``start`` rows are already
    in it), so writing the slices in order gives the row groups (and bytes) of one table: the
    columns are built in bulk per slice, a thread per slice (GEOS and the Arrow kernels release
    the GIL). Yields ``(kind, table, flags)``; ``flags`` are the parts/holes rule's (polygons).

    Examples
    --------
    >>> from deepen_export.model import Boxes
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("car",),
    ...     boxes=Boxes.from_columns(frame=[0, 0, 0], category=[0, 0, 0],
    ...                              label_id=["car:1", "car:2", "car:3"], xyxy=[[0, 0, 1, 1]] * 3))
    >>> [len(t) for _, t, _ in label_slices(ls, {}, {}, start=1, row_group_size=2)]
    [1, 2]
    """
    keys = _frame_key_arrays(labels)
    jobs: list[tuple[str, tuple[int, int]]] = []
    pos = start
    for kind in LABEL_KINDS:
        n = len(labels.table(kind))
        jobs += [(kind, ab) for ab in _cuts(pos, n, row_group_size)]
        pos += n

    def build(job: tuple[str, tuple[int, int]]) -> tuple[str, pa.Table, _Flags | None]:
        kind, ab = job
        return (kind, *_label_table(labels, kind, encodings, attribute_types, keys, ab))

    if pool is None:
        yield from map(build, jobs)
        return
    ahead: deque[Future[tuple[str, pa.Table, _Flags | None]]] = deque()
    for job in jobs:  # at most two slices ahead of the consumer: memory stays bounded
        ahead.append(pool.submit(build, job))
        if len(ahead) > 2:
            yield ahead.popleft().result()
    while ahead:
        yield ahead.popleft().result()


def _common_to_arrow(t: LabelTable, categories: Sequence[str]) -> dict[str, pa.Array]:
    """The common columns of ``t`` as Arrow arrays, by Arrow name, from their declarations."""
    out: dict[str, pa.Array] = {}
    for name, c in _COMMON_COLUMNS.items():
        values = getattr(t, name)
        kind = c.arrow_kind
        if kind == "dictionary":
            out[str(c.arrow)] = _dictionary(values, categories)
        elif kind == "timestamp[ms]":
            out[str(c.arrow)] = _time(values)
        elif kind == "string":
            out[str(c.arrow)] = _str(values)
        else:
            out[str(c.arrow)] = _int(values, _ARROW_TYPES[kind])
    return out


def _common_from_arrow(t: pa.Table, cat_index: Mapping[str, int]) -> dict[str, Array]:
    """The common columns of a ``labels`` table slice back as model columns (nulls -> missing)."""
    out: dict[str, Array] = {}
    for name, c in _COMMON_COLUMNS.items():
        arr = t.column(str(c.arrow))
        kind = c.arrow_kind
        if kind == "dictionary":
            out[name] = np.asarray([cat_index[v] for v in _obj(arr)], dtype=c.dtype)
        elif kind == "string":
            out[name] = _obj(arr)
        else:
            if kind == "timestamp[ms]":
                arr = arr.cast(pa.int64())
            out[name] = _np(arr, fill=c.missing)
    return out


def _vector_geometry(t: Any, family: str, n: int) -> tuple[Array, pa.Array, _Flags | None]:
    """Shapely geometries, the lossless nested coordinates and (polygons) the rule's flags."""
    if family == "point":
        nested = _nested(t.coords, t.offsets, np.arange(n + 1))
        return _points(t.coords, t.offsets), nested, None
    if family == "polyline":
        nested = _nested(t.coords, t.part_offsets, t.offsets)
        return _lines(t.coords, t.part_offsets, t.offsets), nested, None
    geoms, left_out, repaired = polygon_geometries(t.offsets, t.ring_offsets, t.coords)
    flags = (left_out, repaired, shapely.is_empty(geoms))
    return _even_odd(geoms), _nested(t.coords, t.ring_offsets, t.offsets), flags


def _frame_key_arrays(labels: LabelSet) -> dict[str, pa.Array]:
    """The key columns of every frame as Arrow arrays, for :func:`_keys` to take rows from.

    Examples
    --------
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], dataset_id=["ds"]))
    >>> _frame_key_arrays(ls)["file_id"].to_pylist()
    ['a.png']
    """
    fr = labels.frames
    return {
        "dataset_id": _str(fr.dataset_id),
        "file_id": _str(fr.file_id),
        "sensor_id": _str(fr.sensor_id),
        "frame_index": _int(fr.index),
    }


def _keys(
    labels: LabelSet, rows: Array, frame_keys_: Mapping[str, pa.Array] | None = None
) -> dict[str, pa.Array]:
    # strings are converted once per frame, then taken per row in C (not once per label)
    per_frame = frame_keys_ if frame_keys_ is not None else _frame_key_arrays(labels)
    take = pa.array(np.asarray(rows, dtype=np.int64))
    return {k: v.take(take) for k, v in per_frame.items()}


def _frames_table(labels: LabelSet) -> pa.Table:
    fr = labels.frames
    cols = _frame_key_arrays(labels)
    cols["width"] = _int(fr.width, pa.int32())
    cols["height"] = _int(fr.height, pa.int32())
    names = [_STATUS_NAMES[i] for i in range(len(_STATUS_NAMES))]
    cols["status"] = pa.DictionaryArray.from_arrays(pa.array(fr.status, pa.int8()), names)
    return pa.table(cols, schema=_OTHER_SCHEMAS["frames"])


def _segmentation_table(labels: LabelSet) -> pa.Table:
    seg = labels.point_segmentation
    counts = np.diff(seg.offsets)
    rows = np.repeat(seg.frame, counts)
    cols = _keys(labels, rows)
    cols["point_index"] = pa.array(
        (np.arange(len(rows)) - np.repeat(seg.offsets[:-1], counts)).astype(np.int32)
    )
    cols["category"] = _dictionary(seg.category, labels.categories)
    cols["instance"] = _int(seg.instance, pa.int32())
    return pa.table(cols, schema=_OTHER_SCHEMAS["point_segmentation"])


def _pointclouds_table(labels: LabelSet) -> pa.Table:
    pc_ = labels.pointclouds
    counts = np.diff(pc_.offsets)
    cols = _keys(labels, np.repeat(pc_.frame, counts))
    cols["point_index"] = pa.array(
        (np.arange(int(counts.sum())) - np.repeat(pc_.offsets[:-1], counts)).astype(np.int32)
    )
    for i, k in enumerate("xyz"):
        cols[k] = pa.array(np.ascontiguousarray(pc_.xyz[:, i]))
    cols["intensity"] = pa.array(pc_.intensity, mask=np.isnan(pc_.intensity))
    return pa.table(cols, schema=_OTHER_SCHEMAS["pointclouds"])


def _masks_table(labels: LabelSet) -> pa.Table:
    m = labels.masks2d
    cols = _keys(labels, m.frame)
    cols["height"] = pa.array(m.height, pa.int32())
    cols["width"] = pa.array(m.width, pa.int32())
    cols["pixels"] = pa.ListArray.from_arrays(_offsets32(m.offsets), pa.array(m.pixels))
    return pa.table(cols, schema=_OTHER_SCHEMAS["masks2d"])


def _poses_table(labels: LabelSet) -> pa.Table:
    p = labels.poses
    cols = _keys(labels, p.frame)
    cols["position"] = _struct(p.position.T, _XYZ)
    cols["quat"] = _struct(p.quat.T, _QUAT)
    cols["timestamp"] = _float(p.timestamp)
    return pa.table(cols, schema=_OTHER_SCHEMAS["poses"])


def _cameras_table(labels: LabelSet) -> pa.Table:
    c = labels.cameras
    cols = _keys(labels, c.frame)
    cols["camera_id"] = _str(c.sensor_id)
    for k in ("fx", "fy", "cx", "cy"):
        cols[k] = pa.array(getattr(c, k), pa.float64())
    cols["model"] = _str(c.model)
    cols["distortion"] = _struct(c.distortion.T, _DISTORTION)
    cols["position"] = _struct(c.position.T, _XYZ)
    cols["quat"] = _struct(c.quat.T, _QUAT)
    cols["image_path"] = _str(c.image_path)
    cols["width"] = _int(c.width, pa.int32())
    cols["height"] = _int(c.height, pa.int32())
    cols["timestamp"] = _float(c.timestamp)
    return pa.table(cols, schema=_OTHER_SCHEMAS["cameras"])


def to_arrow(
    labels: LabelSet,
    *,
    attribute_columns: bool | Mapping[str, pa.DataType] = False,
    attribute_encodings: Mapping[str, str] | None = None,
    pointclouds: bool = False,
) -> dict[str, pa.Table]:
    """Arrow tables of a label set: ``labels``, ``frames`` and the non-empty others.

    Parameters
    ----------
    labels : LabelSet
    attribute_columns : bool or mapping of str to pyarrow.DataType
        Add typed ``attr_<key>`` columns: ``True`` infers them (keys every label of some category
        has, of one scalar type), a mapping fixes them (used when streaming, so every batch has
        the same schema).
    attribute_encodings : mapping of str to str, optional
        ``"string"`` or ``"json"`` per attribute key; inferred from ``labels`` when omitted.
    pointclouds : bool
        Also a ``pointclouds`` table (one row per LiDAR point: x, y, z, intensity), joinable to
        ``point_segmentation`` on the frame key and ``point_index``.

    Returns
    -------
    dict of str to pyarrow.Table
        ``labels`` and ``frames`` always; ``point_segmentation``, ``masks2d``, ``poses`` and
        ``cameras`` when non-empty. Schema metadata: see :func:`table_metadata`.

    Examples
    --------
    >>> sorted(to_arrow(LabelSet.empty()))
    ['frames', 'labels']
    """
    tables = [labels.table(k) for k in LABEL_KINDS]
    enc = dict(attribute_encodings or _attribute_encodings(tables))  # type: ignore[arg-type]
    if attribute_columns is True:
        types = _typed_attribute_types(labels)
    elif attribute_columns is False:
        types = {}
    else:
        types = dict(attribute_columns)
    keys = _frame_key_arrays(labels)
    parts = [
        _label_table(labels, k, enc, types, keys)[0] for k in LABEL_KINDS if len(labels.table(k))
    ] or [label_schema(types).empty_table()]
    meta = _labels_metadata(
        labels, "labels", attribute_encodings=enc, attribute_keys=attribute_keys(labels)
    )
    out = {"labels": pa.concat_tables(parts).replace_schema_metadata(meta)}
    return out | _other_tables(labels, pointclouds)


def _other_tables(labels: LabelSet, pointclouds: bool) -> dict[str, pa.Table]:
    """``frames`` and the non-empty tables other than ``labels`` (see :func:`to_arrow`)."""
    out = {
        "frames": _frames_table(labels).replace_schema_metadata(_labels_metadata(labels, "frames"))
    }
    for name, build in (
        ("point_segmentation", _segmentation_table),
        ("masks2d", _masks_table),
        ("poses", _poses_table),
        ("cameras", _cameras_table),
        ("pointclouds", _pointclouds_table),
    ):
        if name == "pointclouds" and not pointclouds:
            continue
        if len(labels.table(name)):
            out[name] = build(labels).replace_schema_metadata(_labels_metadata(labels, name))
    return out


def attribute_keys(labels: LabelSet) -> dict[str, list[str]]:
    """Attribute keys of each non-empty label table, in order (kept even when all ``None``).

    Examples
    --------
    >>> from deepen_export.model import Frames, Scenes
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a"]), categories=("s",),
    ...               scenes=Scenes.from_columns(frame=[0], category=[0], label_id=["s:1"],
    ...                                          attributes={"weather": [None]}))
    >>> attribute_keys(ls)
    {'scenes': ['weather']}
    """
    return {
        k: list(labels.table(k).attributes)  # type: ignore[attr-defined]
        for k in LABEL_KINDS
        if labels.table(k).attributes  # type: ignore[attr-defined]
    }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def table_metadata(
    table: str,
    *,
    categories: Iterable[str] = (),
    frame_of_reference: str = "world",
    source: Mapping[str, Any] | None = None,
    attribute_encodings: Mapping[str, str] | None = None,
    attribute_keys: Mapping[str, Iterable[str]] | None = None,
) -> dict[bytes, bytes]:
    """The ``deepen_export`` schema metadata of one table (JSON, deterministic).

    Examples
    --------
    >>> json.loads(table_metadata("frames")[b"deepen_export"])["schema_version"]
    1
    """
    from deepen_export import __version__

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "table": table,
        "tool": f"deepen-export {__version__}",
        "categories": list(categories),
        "conventions": CONVENTIONS,
        "cuboids_frame_of_reference": frame_of_reference,
        "source": _jsonable(dict(source or {})),
    }
    schema = label_schema() if table == "labels" else _OTHER_SCHEMAS.get(table)
    if schema is not None:  # Parquet has no per-column metadata: describe the columns here
        meta["columns"] = {
            f.name: json.loads(f.metadata[b"encoding"])
            for f in schema
            if f.metadata and b"encoding" in f.metadata
        }
    if table == "labels":
        meta["attributes"] = dict(sorted((attribute_encodings or {}).items()))
        meta["attribute_keys"] = {k: list(v) for k, v in (attribute_keys or {}).items()}
    return {b"deepen_export": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()}


def _labels_metadata(labels: LabelSet, table: str, **more: Any) -> dict[bytes, bytes]:
    return table_metadata(
        table,
        categories=labels.categories,
        frame_of_reference=labels.cuboids.frame_of_reference,
        source=labels.meta,
        **more,
    )


def _wkb_type_codes(wkb: pa.Array) -> set[int]:
    """ISO WKB geometry type codes (1 Point ... 7 GeometryCollection) from the 5-byte headers."""
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32)[wkb.offset : wkb.offset + len(wkb)]
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8)
    starts = offsets[_np(wkb.is_valid()).astype(bool)]
    little = data[starts] == 1
    b = [data[starts + k].astype(np.uint32) for k in range(1, 5)]
    code = np.where(
        little,
        b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24,
        b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24,
    )
    return {int(c) for c in np.unique(code % 1000)}


class GeoSummary:
    """Accumulates GeoParquet 1.1 ``geo`` metadata (geometry types, bbox) over written batches.

    Examples
    --------
    >>> g = GeoSummary()
    >>> g.update(to_arrow(LabelSet.empty())["labels"])
    >>> json.loads(g.metadata()[b"geo"])["primary_column"]
    'geometry'
    """

    _COLUMNS = (("geometry", 2), ("geometry_3d", 3))

    def __init__(self) -> None:
        self.types: dict[str, set[int]] = {c: set() for c, _ in self._COLUMNS}
        self.bounds: dict[str, Array] = {}

    def update(self, table: pa.Table) -> None:
        """Add the geometry columns of one ``labels`` batch (read from the WKB headers and the
        bbox / xyz columns, without decoding the geometries again)."""
        for col, dim in self._COLUMNS:
            wkb = table.column(col).combine_chunks()
            if wkb.null_count == len(wkb):
                continue
            self.types[col].update(_wkb_type_codes(wkb))
            valid = pa.array(wkb.is_valid())
            if dim == 2:
                bb = table.column("bbox").combine_chunks().filter(valid)
                lo = [_np(bb.field(k)).min() for k in ("xmin", "ymin")]
                hi = [_np(bb.field(k)).max() for k in ("xmax", "ymax")]
            else:
                pts = table.column("xyz").combine_chunks().filter(valid).flatten().flatten()
                xyz = [_np(pts.field(k)) for k in "xyz"]
                lo, hi = [v.min() for v in xyz], [v.max() for v in xyz]
            b = np.asarray([*lo, *hi], dtype=np.float64)
            old = self.bounds.get(col)
            h = len(b) // 2
            self.bounds[col] = (
                b if old is None else np.r_[np.fmin(old[:h], b[:h]), np.fmax(old[h:], b[h:])]
            )

    def metadata(self) -> dict[bytes, bytes]:
        """The ``geo`` key: version 1.1.0, ``crs: null`` (image / local frames, no CRS)."""
        names = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint"}
        names |= {5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}
        columns: dict[str, Any] = {}
        for col, dim in self._COLUMNS:
            suffix = " Z" if dim == 3 else ""
            entry: dict[str, Any] = {
                "encoding": "WKB",
                "geometry_types": [names[t] + suffix for t in sorted(self.types[col])],
                "crs": None,
                "edges": "planar",
            }
            if col == "geometry":
                entry["orientation"] = "counterclockwise"
                entry["covering"] = {
                    "bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
                }
            if col in self.bounds and np.isfinite(self.bounds[col]).all():
                entry["bbox"] = [float(x) for x in self.bounds[col]]
            columns[col] = entry
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": columns}
        return {b"geo": json.dumps(geo).encode()}


# ---------------------------------------------------------------------------------------
# back to a LabelSet


def _meta(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(b"deepen_export")
    return json.loads(raw) if raw else {}


def _np(arr: pa.ChunkedArray | pa.Array, fill: Any = None) -> Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if fill is not None:
        arr = arr.fill_null(fill)
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    return arr.to_numpy(zero_copy_only=False)


def _obj(arr: pa.ChunkedArray | pa.Array) -> Array:
    values = _np(arr)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _keystr(table: pa.Table) -> pa.Array:
    cols = []
    for c in ("dataset_id", "file_id", "sensor_id"):
        a = table.column(c) if c in table.column_names else pa.nulls(len(table), pa.string())
        if pa.types.is_dictionary(a.type):
            a = a.cast(pa.string())
        cols.append(pc.fill_null(a, ""))
    return pc.binary_join_element_wise(*cols, "\x1f")


def _frame_rows(table: pa.Table, frame_keys: pa.Array, name: str) -> Array:
    idx = pc.index_in(_keystr(table), value_set=frame_keys)
    if idx.null_count:
        raise ParseError(f"{name} has rows whose (dataset_id, file_id, sensor_id) is not a frame")
    return _np(idx).astype(np.int64)


def _unnest(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, Array]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    counts = _np(pc.list_value_length(col), fill=0)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return col.flatten(), offsets


def _coords(col: pa.ChunkedArray | pa.Array, levels: int) -> tuple[Array, list[Array]]:
    offs = []
    cur: Any = col
    for _ in range(levels):
        cur, off = _unnest(cur)
        offs.append(off)
    names = [f.name for f in cur.type]
    coords = np.stack([_np(cur.field(k)).astype(np.float64) for k in names], axis=1)
    return coords.reshape(-1, len(names)), offs


def _struct_np(col: pa.ChunkedArray | pa.Array, names: Iterable[str]) -> Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.stack([_np(col.field(k)).astype(np.float64) for k in names], axis=1)


def _attributes_back(
    table: pa.Table, encodings: Mapping[str, str], keys_in_order: Iterable[str] | None
) -> dict[str, Array]:
    col = table.column("attributes").combine_chunks()
    n = len(col)
    o = np.asarray(col.offsets, dtype=np.int64)
    row = np.repeat(np.arange(n), np.diff(o))
    keys = _obj(col.keys.slice(o[0], o[-1] - o[0]))
    vals = _obj(col.items.slice(o[0], o[-1] - o[0]))
    out: dict[str, Array] = {}
    for k in dict.fromkeys([*(keys_in_order or ()), *keys.tolist()]):
        m = keys == k
        column = np.full(n, None, dtype=object)
        v = vals[m]
        if encodings.get(k) == "json":
            decoded = [json.loads(x) for x in v]
            v = np.empty(len(decoded), dtype=object)
            v[:] = decoded
        column[row[m]] = v
        out[k] = column
    return out


_GEOM_BUILD = {
    "polygons": ("xy", 2, ("offsets", "ring_offsets")),
    "polylines": ("xy", 2, ("offsets", "part_offsets")),
    "points": ("xy", 2, ("outer", "offsets")),
    "polygons3d": ("xyz", 2, ("offsets", "ring_offsets")),
    "polylines3d": ("xyz", 2, ("offsets", "part_offsets")),
    "points3d": ("xyz", 2, ("outer", "offsets")),
}


def _labels_back(
    table: pa.Table, frame_keys: pa.Array, categories: list[str], meta: Mapping[str, Any]
) -> dict[str, LabelTable]:
    encodings = meta.get("attributes", {})
    kinds = _obj(table.column("kind"))
    cat_index = {c: i for i, c in enumerate(categories)}
    out: dict[str, LabelTable] = {}
    for kind in LABEL_KINDS:
        mask = kinds == kind
        if not mask.any():
            keys = meta.get("attribute_keys", {}).get(kind)
            if keys:  # an empty table that had attribute columns
                empty = KIND_SPECS[kind].label_table.empty()
                out[kind] = empty.with_attributes({k: np.empty(0, dtype=object) for k in keys})
            continue
        t = table.filter(pa.array(mask))
        cols: dict[str, Any] = {
            **_common_from_arrow(t, cat_index),
            "frame": _frame_rows(t, frame_keys, "labels"),
            "attributes": _attributes_back(t, encodings, meta.get("attribute_keys", {}).get(kind)),
        }
        if kind == "boxes":
            cols["xyxy"] = _struct_np(t.column("bbox"), ("xmin", "ymin", "xmax", "ymax"))
        elif kind == "cuboids":
            cub = _struct_np(t.column("cuboid"), _CUBOID_FIELDS)
            cols["center"], cols["size"], cols["quat"] = cub[:, :3], cub[:, 3:6], cub[:, 6:10]
            cols["frame_of_reference"] = meta.get("cuboids_frame_of_reference", "world")
        elif kind in _GEOM_BUILD:
            col, levels, (outer, inner) = _GEOM_BUILD[kind]
            coords, (off_outer, off_inner) = _coords(t.column(col), levels)
            cols["coords"] = coords
            cols[inner] = off_inner
            if outer != "outer":
                cols[outer] = off_outer
        if kind == "polylines":
            cols["label_type"] = _obj(t.column("label_type"))
        out[kind] = KIND_SPECS[kind].label_table.from_columns(**cols)
    return out


def from_arrow(
    tables: Mapping[str, pa.Table], *, categories: Iterable[str] | None = None
) -> LabelSet:
    """The :class:`LabelSet` of tables made by :func:`to_arrow` (or read back from Parquet).

    Geometry comes from the lossless columns (``bbox`` for boxes, ``xy``/``xyz``, ``cuboid``),
    never from WKB. Frames are matched by ``(dataset_id, file_id, sensor_id)``.

    Parameters
    ----------
    tables : mapping of str to pyarrow.Table
        At least ``frames`` (or ``labels``); see :data:`TABLES`.
    categories : iterable of str, optional
        Category order; default from the ``deepen_export`` metadata, else sorted names.

    Examples
    --------
    >>> from_arrow(to_arrow(LabelSet.empty())) == LabelSet.empty()
    True
    """
    labels_t = tables.get("labels")
    meta = _meta(labels_t) if labels_t is not None else {}
    if not meta and "frames" in tables:
        meta = _meta(tables["frames"])
    cats = list(categories) if categories is not None else _categories_of(tables, meta)
    frames_t = tables.get("frames")
    if frames_t is None:
        frames_t = _frames_from(tables)
    keys = _keystr(frames_t)
    parts: dict[str, Any] = {}
    if labels_t is not None:
        parts.update(_labels_back(labels_t, keys, cats, meta))
    cat_index = {c: i for i, c in enumerate(cats)}
    for name, back in _TABLES_BACK.items():
        t = tables.get(name)
        if t is not None and len(t):
            parts[name] = back(t, _frame_rows(t, keys, name), cat_index)
    source = meta.get("source", {})
    return LabelSet(
        frames=_frames_back(frames_t),
        categories=tuple(cats),
        meta=source if isinstance(source, dict) else {},
        **parts,
    )


def _categories_of(tables: Mapping[str, pa.Table], meta: Mapping[str, Any]) -> list[str]:
    """Category order from the metadata, then any other names used, sorted."""
    cats = list(meta.get("categories", []))
    for name in ("labels", "point_segmentation"):
        t = tables.get(name)
        if t is not None and len(t):
            seen = pc.unique(t.column("category").cast(pa.string())).drop_null()
            cats += sorted(set(seen.to_pylist()) - set(cats))
    return cats


def _frames_back(frames_t: pa.Table) -> Frames:
    status_names = {v: k for k, v in _STATUS_NAMES.items()}
    none = np.full(len(frames_t), -1, dtype=np.int32)
    names = frames_t.column_names
    status = _obj(frames_t.column("status")) if "status" in names else None
    return Frames.from_columns(
        file_id=_obj(frames_t.column("file_id")),
        sensor_id=_obj(frames_t.column("sensor_id").fill_null("")),
        dataset_id=_obj(frames_t.column("dataset_id").fill_null("")),
        index=_np(frames_t.column("frame_index"), fill=-1),
        width=_np(frames_t.column("width"), fill=-1) if "width" in names else none,
        height=_np(frames_t.column("height"), fill=-1) if "height" in names else none,
        status=np.zeros(len(frames_t), np.int8)
        if status is None
        else np.asarray([status_names[s] for s in status], dtype=np.int8),
    )


def _runs(rows: Array) -> tuple[Array, Array]:
    """Frame rows of consecutive runs of one frame, and the offsets of the runs."""
    starts = np.r_[True, rows[1:] != rows[:-1]]
    counts = np.diff(np.r_[np.flatnonzero(starts), len(rows)])
    return rows[starts], np.r_[0, np.cumsum(counts)]


def _segmentation_back(t: pa.Table, rows: Array, cat_index: Mapping[str, int]) -> Any:
    frame, offsets = _runs(rows)
    names = _obj(t.column("category"))
    return PointSegmentation.from_columns(
        frame=frame,
        offsets=offsets,
        category=np.asarray([-1 if c is None else cat_index[c] for c in names], dtype=np.int32),
        instance=_np(t.column("instance"), fill=-1).astype(np.int32),
    )


def _masks_back(t: pa.Table, rows: Array, cat_index: Mapping[str, int]) -> Any:
    px, offs = _unnest(t.column("pixels"))
    return Masks2D.from_columns(
        frame=rows,
        height=_np(t.column("height")),
        width=_np(t.column("width")),
        offsets=offs,
        pixels=_np(px).astype(np.int32),
    )


def _poses_back(t: pa.Table, rows: Array, cat_index: Mapping[str, int]) -> Any:
    return Poses.from_columns(
        frame=rows,
        position=_struct_np(t.column("position"), "xyz"),
        quat=_struct_np(t.column("quat"), "xyzw"),
        timestamp=_np(t.column("timestamp"), fill=np.nan),
    )


def _cameras_back(t: pa.Table, rows: Array, cat_index: Mapping[str, int]) -> Any:
    return Cameras.from_columns(
        frame=rows,
        sensor_id=_obj(t.column("camera_id")),
        **{k: _np(t.column(k)) for k in ("fx", "fy", "cx", "cy")},
        model=_obj(t.column("model")),
        distortion=_struct_np(t.column("distortion"), _DISTORTION_FIELDS),
        position=_struct_np(t.column("position"), "xyz"),
        quat=_struct_np(t.column("quat"), "xyzw"),
        image_path=_obj(t.column("image_path")),
        width=_np(t.column("width"), fill=-1),
        height=_np(t.column("height"), fill=-1),
        timestamp=_np(t.column("timestamp"), fill=np.nan),
    )


def _pointclouds_back(t: pa.Table, rows: Array, cat_index: Mapping[str, int]) -> Any:
    frame, offsets = _runs(rows)
    return PointClouds.from_columns(
        frame=frame,
        offsets=offsets,
        xyz=np.stack([_np(t.column(k)).astype(np.float64) for k in "xyz"], axis=1),
        intensity=_np(t.column("intensity"), fill=np.nan).astype(np.float32),
    )


_TABLES_BACK = {
    "point_segmentation": _segmentation_back,
    "masks2d": _masks_back,
    "poses": _poses_back,
    "cameras": _cameras_back,
    "pointclouds": _pointclouds_back,
}
"""Table name -> its reader (Arrow table, frame rows, category codes -> model table)."""


def _frames_from(tables: Mapping[str, pa.Table]) -> pa.Table:
    """Frames implied by the other tables' keys (a lone labels file without its frames table)."""
    keyed = [
        t.select(["dataset_id", "file_id", "sensor_id", "frame_index"]) for t in tables.values()
    ]
    unified = pa.concat_tables(
        [t.cast(pa.schema(_KEY_FIELDS)) if t.schema != pa.schema(_KEY_FIELDS) else t for t in keyed]
    )
    keys = _keystr(unified)
    _, first = np.unique(_obj(keys), return_index=True)
    return unified.take(pa.array(np.sort(first)))
