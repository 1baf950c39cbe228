"""2D geometry on the model's ragged arrays: boxes, polygons, RLE masks.

Conventions (see :mod:`deepen_export.model`): pixel-corner coordinates, origin at the top-left
corner of the top-left pixel, x right, y down; pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``.

Boxes
-----
Four encodings, all ``(n, 4)`` float64::

    xyxy     [x_min, y_min, x_max, y_max]        (the model's encoding)
    xywh     [x_min, y_min, width, height]       (COCO, Deepen)
    cxcywh   [x_centre, y_centre, width, height] (YOLO, divided by the image size)

Polygons
--------
A polygon label is a list of open rings (``offsets`` label -> rings, ``ring_offsets`` ring ->
vertices, ``coords``). :func:`polygons_to_shapely` turns every label into one shapely
``MultiPolygon`` with the even-odd rule: a ring inside an odd number of the label's other rings
is a hole of the smallest outer part containing it, every other ring is an outer part. The rest
of the pipeline works on those arrays of geometries with shapely 2's vectorized functions::

    polygons_to_shapely -> repair_polygons -> orient_polygons -> clip_polygons
        -> shapely_to_polygons (back to ragged arrays) | polygons_to_rle (pycocotools)

Rings with fewer than 3 vertices or with non-finite coordinates cannot bound an area; they are
left out (:func:`degenerate_rings` tells which labels had such rings). Repair uses GEOS
``make_valid(method="structure")``: overlapping parts are unioned, a self-intersecting
("bowtie") ring becomes the parts it encloses, collapsed parts are removed, and only polygonal
parts are kept. Orientation follows shapely: exterior rings counter-clockwise and holes
clockwise *in math coordinates* (signed shoelace area positive for exteriors); with y pointing
down in an image that looks clockwise on screen.

RLE
---
COCO run-length encoding through pycocotools: column-major (Fortran) ``uint8`` masks, counts as
``str`` so the result is JSON-ready. Polygon rasterisation is pycocotools' own (pixel-corner,
see ``formats.md`` section 2): a pixel belongs to a polygon when pycocotools says so, and a hole
removes the pixels its ring rasterises to.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely import GeometryType

__all__ = [
    "POLYGON_REPAIRED",
    "RING_LEFT_OUT",
    "box_area",
    "clip_boxes",
    "clip_polygons",
    "cxcywh_to_xyxy",
    "degenerate_rings",
    "denormalize_boxes",
    "normalize_boxes",
    "orient_polygons",
    "polygon_geometries",
    "polygon_pixel_mask",
    "polygonal_parts",
    "polygons_to_rle",
    "polygons_to_shapely",
    "repair_polygons",
    "rle_area",
    "rle_decode",
    "rle_encode",
    "rle_runs",
    "rle_to_bbox",
    "shapely_to_polygons",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
]

Array = npt.NDArray[Any]
RLE = dict[str, Any]


# -- boxes ---------------------------------------------------------------------------------


def _quiet_fp(fn: Any) -> Any:
    # GEOS raises floating-point flags (divide by zero) on subnormal coordinates such as 1e-300
    # while still returning the right geometry; numpy turns those flags into RuntimeWarnings.
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _boxes(a: npt.ArrayLike) -> Array:
    arr = np.asarray(a, dtype=np.float64)
    return arr.reshape(-1, 4) if arr.size == 0 else arr


def xyxy_to_xywh(xyxy: npt.ArrayLike) -> Array:
    """``[x_min, y_min, x_max, y_max]`` -> ``[x_min, y_min, width, height]``.

    Examples
    --------
    >>> xyxy_to_xywh([[1, 2, 4, 6]]).tolist()
    [[1.0, 2.0, 3.0, 4.0]]
    """
    b = _boxes(xyxy)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_xyxy(xywh: npt.ArrayLike) -> Array:
    """``[x_min, y_min, width, height]`` -> ``[x_min, y_min, x_max, y_max]``.

    Examples
    --------
    >>> xywh_to_xyxy([[1, 2, 3, 4]]).tolist()
    [[1.0, 2.0, 4.0, 6.0]]
    """
    b = _boxes(xywh)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_cxcywh(xyxy: npt.ArrayLike) -> Array:
    """``[x_min, y_min, x_max, y_max]`` -> ``[x_centre, y_centre, width, height]``.

    Examples
    --------
    >>> xyxy_to_cxcywh([[0, 2, 4, 4]]).tolist()
    [[2.0, 3.0, 4.0, 2.0]]
    """
    b = _boxes(xyxy)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def cxcywh_to_xyxy(cxcywh: npt.ArrayLike) -> Array:
    """``[x_centre, y_centre, width, height]`` -> ``[x_min, y_min, x_max, y_max]``.

    Examples
    --------
    >>> cxcywh_to_xyxy([[2, 3, 4, 2]]).tolist()
    [[0.0, 2.0, 4.0, 4.0]]
    """
    b = _boxes(cxcywh)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def _size_columns(width: npt.ArrayLike, height: npt.ArrayLike) -> Array:
    w = np.asarray(width, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)
    w, h = np.broadcast_arrays(w, h)
    return np.stack([w, h, w, h], axis=-1)


def normalize_boxes(boxes: npt.ArrayLike, width: npt.ArrayLike, height: npt.ArrayLike) -> Array:
    """Divide x columns (0, 2) by ``width`` and y columns (1, 3) by ``height``.

    Works for every encoding above (their columns alternate x, y, x, y). Sizes ``<= 0``
    (unknown) give ``nan``.

    Examples
    --------
    >>> normalize_boxes([[2, 3, 4, 2]], 15, 10).round(6).tolist()
    [[0.133333, 0.3, 0.266667, 0.2]]
    """
    b = _boxes(boxes)
    s = _size_columns(width, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, b / np.where(s > 0, s, 1.0), np.nan)


def denormalize_boxes(boxes: npt.ArrayLike, width: npt.ArrayLike, height: npt.ArrayLike) -> Array:
    """Inverse of :func:`normalize_boxes`.

    Examples
    --------
    >>> denormalize_boxes([[0.5, 0.5, 0.2, 0.1]], 100, 50).tolist()
    [[50.0, 25.0, 20.0, 5.0]]
    """
    return _boxes(boxes) * _size_columns(width, height)


def box_area(xyxy: npt.ArrayLike) -> Array:
    """Area of ``xyxy`` boxes (0 for inverted boxes).

    Examples
    --------
    >>> box_area([[0, 0, 2, 3], [5, 5, 4, 4]]).tolist()
    [6.0, 0.0]
    """
    b = _boxes(xyxy)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def clip_boxes(
    xyxy: npt.ArrayLike, width: npt.ArrayLike, height: npt.ArrayLike
) -> tuple[Array, Array]:
    """Clip ``xyxy`` boxes to the image rectangle ``[0, width] x [0, height]``.

    Parameters
    ----------
    xyxy : array_like, shape (n, 4)
        Boxes in pixel-corner coordinates.
    width, height : array_like, shape (n,) or scalar
        Image size of each box; a size ``<= 0`` means unknown and leaves the box as it is.

    Returns
    -------
    clipped : ndarray, shape (n, 4)
    changed : ndarray of bool, shape (n,)
        True where clipping moved a coordinate.

    Examples
    --------
    >>> b, changed = clip_boxes([[-5, 2, 30, 8], [1, 1, 2, 2]], 20, 10)
    >>> b.tolist(), changed.tolist()
    ([[0.0, 2.0, 20.0, 8.0], [1.0, 1.0, 2.0, 2.0]], [True, False])
    """
    b = _boxes(xyxy)
    s = _size_columns(width, height)
    s = np.broadcast_to(s, b.shape)
    upper = np.where(s > 0, s, np.inf)
    lower = np.where(s > 0, 0.0, -np.inf)
    clipped = np.clip(b, lower, upper)
    changed = np.any((clipped != b) & ~np.isnan(b), axis=-1)
    return clipped, changed


# -- polygons ------------------------------------------------------------------------------


def _label_of(offsets: Array) -> Array:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def _good_rings(ring_offsets: Array, coords: Array) -> Array:
    counts = np.diff(ring_offsets)
    bad = np.flatnonzero(~np.isfinite(coords).all(axis=1))
    ring_of_bad = np.searchsorted(ring_offsets, bad, side="right") - 1
    return (counts >= 3) & (np.bincount(ring_of_bad, minlength=len(counts)) == 0)


def degenerate_rings(
    offsets: npt.ArrayLike, ring_offsets: npt.ArrayLike, coords: npt.ArrayLike
) -> Array:
    """Per label, the number of rings that cannot bound an area (< 3 vertices, non-finite).

    Examples
    --------
    >>> degenerate_rings([0, 2], [0, 3, 5], [[0, 0], [1, 0], [1, 1], [0, 0], [1, 1]]).tolist()
    [1]
    """
    off = np.asarray(offsets, dtype=np.int64)
    roff = np.asarray(ring_offsets, dtype=np.int64)
    xy = _vertices(coords)
    bad = ~_good_rings(roff, xy)
    return np.bincount(_label_of(off), weights=bad, minlength=len(off) - 1).astype(np.int64)


def _vertices(coords: npt.ArrayLike) -> Array:
    a = np.asarray(coords, dtype=np.float64)
    return a if a.ndim == 2 and a.shape[1] in (2, 3) else a.reshape(-1, 2)


def _closed(ring_offsets: Array, coords: Array, keep: Array) -> tuple[Array, Array]:
    """Coordinates of the ``keep`` rings with each ring closed, and their ring offsets."""
    starts, counts = ring_offsets[:-1][keep], np.diff(ring_offsets)[keep]
    new_counts = counts + 1
    new_off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(new_counts, out=new_off[1:])
    local = np.arange(int(new_off[-1])) - np.repeat(new_off[:-1], new_counts)
    local = np.where(local == np.repeat(counts, new_counts), 0, local)
    return coords[np.repeat(starts, new_counts) + local], new_off


_EMPTY = shapely.MultiPolygon()


def _empty_multipolygons(n: int) -> Array:
    # geometries are immutable, so one empty MultiPolygon can fill every slot
    out = np.empty(n, dtype=object)
    out[:] = _EMPTY
    return out


_PAIRWISE = 32
"""Labels with at most this many rings test each pair of their rings; larger ones use a tree."""


def _containing_pairs(valid: Array, k: Array, lab: Array, area: Array) -> tuple[Array, Array]:
    """Pairs ``(a, b)`` of rings of one label where ``a`` covers ``b`` and is the bigger (by
    area, then index). Most labels have a few rings and test every pair; a label with many
    rings finds its candidates by an STR-tree query (n log n, not one test per pair)."""
    per = k[lab]
    kk = np.where(per <= _PAIRWISE, per, 0)
    first = np.concatenate([[0], np.cumsum(k)[:-1]])
    a = np.repeat(np.arange(len(lab)), kk)
    b = np.repeat(first[lab], kk) + (np.arange(len(a)) - np.repeat(np.cumsum(kk) - kk, kk))
    big = np.flatnonzero(per > _PAIRWISE)
    if len(big):
        qa, qb = shapely.STRtree(valid[big]).query(valid[big], predicate="covers")
        same = lab[big[qa]] == lab[big[qb]]
        a = np.concatenate([a, big[qa][same]])
        b = np.concatenate([b, big[qb][same]])
    keep = (a != b) & ((area[a] > area[b]) | ((area[a] == area[b]) & (a < b)))
    a, b = a[keep], b[keep]
    small = per[a] <= _PAIRWISE  # the tree's pairs are already known to cover
    inside = np.ones(len(a), dtype=bool)
    if small.any():
        inside[small] = shapely.covers(valid[a[small]], valid[b[small]])
    return a[inside], b[inside]


@_quiet_fp
def polygons_to_shapely(
    offsets: npt.ArrayLike, ring_offsets: npt.ArrayLike, coords: npt.ArrayLike
) -> Array:
    """One ``MultiPolygon`` per label, parts and holes by the even-odd rule.

    A ring that lies inside an odd number of the label's other rings is a hole of the smallest
    outer part containing it; every other ring is an outer part. Containment is tested on each ring
    made valid on its own (so a bowtie ring still contains what lies in its lobes); two equal
    rings count the earlier one as the container. Rings with fewer than 3 vertices or
    non-finite coordinates are left out. The result may be invalid (overlapping parts,
    self-intersections): pass it to :func:`repair_polygons`.

    Parameters
    ----------
    offsets : array_like, shape (n + 1,)
        Label -> rings.
    ring_offsets : array_like, shape (r + 1,)
        Ring -> vertices (rings open: the first vertex is not repeated).
    coords : array_like, shape (m, 2) or (m, 3)
        Vertices (3D polygons: containment is decided on x, y; the result keeps z).

    Returns
    -------
    ndarray of shapely.MultiPolygon, shape (n,)
        Empty where a label has no usable ring.

    Examples
    --------
    >>> square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    >>> hole = [[2, 2], [4, 2], [4, 4], [2, 4]]
    >>> g = polygons_to_shapely([0, 2], [0, 4, 8], square + hole)
    >>> float(g[0].area), len(g[0].geoms), len(g[0].geoms[0].interiors)
    (96.0, 1, 1)
    """
    off = np.asarray(offsets, dtype=np.int64)
    roff = np.asarray(ring_offsets, dtype=np.int64)
    xy = _vertices(coords)
    n = len(off) - 1
    if n <= 0:
        return np.empty(0, dtype=object)
    ring_label = _label_of(off)
    good = _good_rings(roff, xy)
    rings = np.flatnonzero(good)
    if len(rings) == 0:
        return _empty_multipolygons(n)
    closed, closed_off = _closed(roff, xy, good)
    lab = ring_label[rings]
    k = np.bincount(lab, minlength=n)
    # Containment is only tested between rings of one label, so the (costly) ring polygons,
    # validation and areas are only needed for rings of labels with more than one ring; most
    # have one.
    multi = k[lab] > 1
    valid = np.empty(len(rings), dtype=object)
    if multi.any():
        m_off = closed_off[:-1][multi]
        m_cnt = np.diff(closed_off)[multi]
        m_roff = np.zeros(len(m_off) + 1, dtype=np.int64)
        np.cumsum(m_cnt, out=m_roff[1:])
        m_xy = closed[np.repeat(m_off - m_roff[:-1], m_cnt) + np.arange(int(m_roff[-1])), :2]
        single = shapely.from_ragged_array(
            GeometryType.POLYGON, m_xy, (m_roff, np.arange(len(m_off) + 1))
        )
        valid[multi] = shapely.make_valid(single, method="structure", keep_collapsed=False)
    area = np.zeros(len(rings))
    area[multi] = shapely.area(valid[multi])

    a, b = _containing_pairs(valid, k, lab, area)
    depth = np.bincount(b, minlength=len(rings))
    hole = depth % 2 == 1
    # parent = smallest containing part (by area, then index) of each hole. With overlapping
    # rings the smallest container can be a hole itself; the largest container is a part, so
    # every hole has one (should rounding in the predicates leave one without, it is made a
    # part: a hole without its part would be sorted under another label's last part).
    a, b = a[~hole[a]], b[~hole[a]]
    order = np.lexsort((a, area[a], b))
    parent = np.arange(len(rings))
    if len(order):
        bs = b[order]
        firsts = np.concatenate([[True], bs[1:] != bs[:-1]])
        parent[bs[firsts]] = a[order][firsts]
    hole &= parent != np.arange(len(rings))
    part = np.where(hole, parent, np.arange(len(rings)))
    new = np.lexsort((np.arange(len(rings)), hole, part, lab))

    counts = np.diff(closed_off)[new]
    ring_off = np.zeros(len(new) + 1, dtype=np.int64)
    np.cumsum(counts, out=ring_off[1:])
    starts = closed_off[:-1][new]
    idx = np.repeat(starts - ring_off[:-1], counts) + np.arange(int(ring_off[-1]))
    is_part = ~hole[new]
    poly_off = np.append(np.flatnonzero(is_part), len(new))
    parts_per_label = np.bincount(lab[new][is_part], minlength=n)
    multi_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(parts_per_label, out=multi_off[1:])
    return np.asarray(
        shapely.from_ragged_array(
            GeometryType.MULTIPOLYGON, closed[idx], (ring_off, poly_off, multi_off)
        ),
        dtype=object,
    )


RING_LEFT_OUT = "ring(s) with fewer than 3 vertices or non-finite coordinates left out"
"""Report reason for a label that lost ring(s) under :func:`polygon_geometries`."""
POLYGON_REPAIRED = (
    "invalid polygon (self-intersection or overlapping parts) repaired with make_valid"
)
"""Report reason for a label whose polygon :func:`polygon_geometries` made valid."""


def polygon_geometries(
    offsets: npt.ArrayLike, ring_offsets: npt.ArrayLike, coords: npt.ArrayLike
) -> tuple[Array, Array, Array]:
    """The one parts/holes rule every consumer uses: even-odd, repaired, oriented.

    :func:`polygons_to_shapely` (even-odd rule; rings that cannot bound an area left out),
    then :func:`repair_polygons` and :func:`orient_polygons`. The 2D writers, the Parquet
    ``geometry`` column and the previews' fill all start from this, so they cannot disagree.
    A label of one strictly convex ring (most labels) is built straight from its vertices,
    reversed when clockwise: the same geometry, without GEOS validation and orientation.

    Returns
    -------
    geoms : ndarray of MultiPolygon
        One per label; empty where nothing with an area is left.
    rings_left_out : ndarray of bool
        Labels that lost at least one ring (report them with :data:`RING_LEFT_OUT`).
    repaired : ndarray of bool
        Labels whose polygon was invalid and was made valid.

    Examples
    --------
    >>> square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    >>> g, left_out, repaired = polygon_geometries([0, 2], [0, 4, 6], square + [[1, 1], [2, 2]])
    >>> float(g[0].area), left_out.tolist(), repaired.tolist()
    (100.0, [True], [False])
    """
    off = np.asarray(offsets, dtype=np.int64)
    roff = np.asarray(ring_offsets, dtype=np.int64)
    xy = _vertices(coords)
    left_out = degenerate_rings(off, roff, xy) > 0
    n = len(off) - 1
    # Most labels are one convex ring: valid, and oriented by reversing it when clockwise,
    # with no GEOS validation, repair or orientation; the rest take the general rule.
    one = np.flatnonzero(np.diff(off) == 1)
    ring = off[one]
    convex, ccw = _convex_rings(roff, xy)
    convex, ccw = convex[ring], ccw[ring]
    fast, ring = one[convex], ring[convex]
    geoms = _empty_multipolygons(n)
    repaired = np.zeros(n, dtype=bool)
    if len(fast):
        geoms[fast] = _convex_multipolygons(roff[ring], roff[ring + 1], ~ccw[convex], xy)
    rest = np.setdiff1d(np.arange(n), fast, assume_unique=True)
    if len(rest):
        sub_off, sub_roff, sub_xy = _take_labels(off, roff, xy, rest)
        g, repaired[rest] = repair_polygons(polygons_to_shapely(sub_off, sub_roff, sub_xy))
        geoms[rest] = orient_polygons(g)
    return geoms, left_out, repaired


_EXACT_SIGN = 1e-12
"""Relative size above which a floating-point orientation determinant has its exact sign
(Shewchuk's bound for orient2d is about 3.3e-16 of the summed magnitudes; this keeps a wide
margin)."""


def _convex_rings(ring_offsets: Array, xy: Array) -> tuple[Array, Array]:
    """Which rings (open, ``xy[ring_offsets[i]:ring_offsets[i + 1]]``) are strictly convex, and
    which of those are counter-clockwise (math coordinates).

    Strictly convex: at least 3 vertices, every turn provably the same way (each determinant
    away from 0 by far more than its rounding error, so its sign is exact) and one turn in
    all: the edge directions cross from the lower to the upper half-plane once, not twice as a
    star's do (signs of coordinate differences are exact). Such a ring is a valid polygon for
    GEOS; anything else (non-finite, repeated or collinear vertices, ...) is False.
    """
    counts = np.diff(ring_offsets)
    convex = np.zeros(len(counts), dtype=bool)
    if not len(xy) or not (counts >= 3).any():
        return convex, convex.copy()
    starts, ends = ring_offsets[:-1], ring_offsets[1:]
    x, y = xy[: ends[-1], 0], xy[: ends[-1], 1]  # sums per ring run to the last ring's end
    has = np.flatnonzero(counts > 0)
    with np.errstate(all="ignore"):
        # edge i goes from vertex i to the next of its ring (the last one back to the first)
        ex, ey = np.empty_like(x), np.empty_like(y)
        ex[:-1], ey[:-1] = x[1:] - x[:-1], y[1:] - y[:-1]
        last, first = ends[has] - 1, starts[has]
        ex[last], ey[last] = x[first] - x[last], y[first] - y[last]
        px, py = np.empty_like(ex), np.empty_like(ey)  # the edge before each vertex
        px[1:], py[1:] = ex[:-1], ey[:-1]
        px[first], py[first] = ex[last], ey[last]
        t1, t2 = px * ey, py * ex
        det = t1 - t2
        bound = _EXACT_SIGN * (np.abs(t1) + np.abs(t2))
        sure = (np.abs(det) > bound) & (bound > 1e-280) & (bound < np.inf)
    upper = (ey > 0) | ((ey == 0) & (ex > 0))
    crossing = upper != ((py > 0) | ((py == 0) & (px > 0)))
    at = starts[has]
    left = np.add.reduceat(sure & (det > 0), at)
    right = np.add.reduceat(sure & (det < 0), at)
    turns = np.add.reduceat(crossing, at)
    c = counts[has]
    ccw = np.zeros(len(counts), dtype=bool)
    convex[has] = (c >= 3) & ((left == c) | (right == c)) & (turns == 2)
    ccw[has] = convex[has] & (left == c)
    return convex, ccw


def _run_starts(counts: Array) -> Array:
    out = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out


def _convex_multipolygons(starts: Array, ends: Array, reverse: Array, xy: Array) -> Array:
    """One single-ring MultiPolygon per ring ``xy[starts[i]:ends[i]]``, closed; the ``reverse``
    ones reversed as GEOS orients a ring (``p0, p[n-1], ..., p1, p0``: the first vertex stays)."""
    c = ends - starts
    closed = c + 1
    ring_off = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(closed, out=ring_off[1:])
    idx = np.arange(int(ring_off[-1])) + np.repeat(starts - ring_off[:-1], closed)
    idx[ring_off[1:] - 1] = starts  # the closing vertex
    rev = np.flatnonzero(reverse)
    if len(rev):
        at = np.repeat(ring_off[rev], closed[rev])
        j = np.arange(int(closed[rev].sum())) - np.repeat(_run_starts(closed[rev]), closed[rev])
        cc = np.repeat(c[rev], closed[rev])
        idx[at + j] = np.repeat(starts[rev], closed[rev]) + (cc - j) % cc
    parts = np.arange(len(c) + 1)
    return np.asarray(
        shapely.from_ragged_array(GeometryType.MULTIPOLYGON, xy[idx], (ring_off, parts, parts)),
        dtype=object,
    )


def _take_labels(off: Array, roff: Array, xy: Array, labels: Array) -> tuple[Array, Array, Array]:
    """The ragged polygon arrays of the ``labels`` only."""
    nr = off[labels + 1] - off[labels]
    rings = np.repeat(off[labels] - _run_starts(nr), nr) + np.arange(int(nr.sum()))
    nv = roff[rings + 1] - roff[rings]
    verts = np.repeat(roff[rings] - _run_starts(nv), nv) + np.arange(int(nv.sum()))
    sub_off = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(nr, out=sub_off[1:])
    sub_roff = np.zeros(len(rings) + 1, dtype=np.int64)
    np.cumsum(nv, out=sub_roff[1:])
    return sub_off, sub_roff, xy[verts]


def polygon_pixel_mask(geom: Any, origin: tuple[int, int], shape: tuple[int, int]) -> Array:
    """Pixels of an ``(h, w)`` window at ``origin`` whose centres lie inside ``geom``.

    ``geom`` is a (Multi)Polygon as :func:`polygon_geometries` makes it: its rings are filled by
    parity, which for a valid polygon is exactly its interior. Each edge toggles every pixel to
    the right of where it crosses a row's centre line; a running sum along each row counts
    crossings.

    Examples
    --------
    >>> import shapely
    >>> polygon_pixel_mask(shapely.box(1, 0, 3, 2), (0, 0), (2, 4)).astype(int).tolist()
    [[0, 1, 1, 0], [0, 1, 1, 0]]
    """
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    if geom is None or shapely.is_empty(geom) or h == 0 or w == 0:
        return out
    rings = shapely.get_rings(shapely.get_parts(geom))
    coords, owner = shapely.get_coordinates(rings, return_index=True)
    coords = coords - np.asarray(origin, dtype=np.float64)
    # rings are closed: each vertex's edge goes to the next vertex of the same ring
    same = np.r_[owner[1:] == owner[:-1], False]
    a, b = coords[:-1][same[:-1]], coords[1:][same[:-1]]
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    # row r is crossed when its centre r + 0.5 lies in [lo, hi): half-open so a vertex counts once
    r0 = np.clip(np.ceil(lo - 0.5), 0, h).astype(np.int64)
    r1 = np.clip(np.ceil(hi - 0.5), 0, h).astype(np.int64)
    counts = np.maximum(r1 - r0, 0)
    edge = np.repeat(np.arange(len(a)), counts)
    if len(edge) == 0:
        return out
    row = np.repeat(r0 - np.cumsum(counts) + counts, counts) + np.arange(len(edge))
    yc = row + 0.5
    xa, ya, xb, yb = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
    xc = xa + (yc - ya) * (xb - xa) / (yb - ya)
    col = np.clip(np.ceil(xc - 0.5), 0, w).astype(np.int64)
    toggles = np.zeros((h, w + 1), dtype=np.int64)
    np.add.at(toggles, (row, col), 1)
    return (np.cumsum(toggles, axis=1)[:, :w] & 1).astype(bool)


def polygonal_parts(geoms: npt.ArrayLike) -> Array:
    """Keep only the polygonal parts of each geometry, as one ``MultiPolygon`` per input.

    Lines and points (what ``make_valid`` or an intersection can leave) are removed; a
    geometry with no polygonal part becomes an empty ``MultiPolygon``.

    Examples
    --------
    >>> from shapely import GeometryCollection, LineString, box
    >>> g = polygonal_parts([GeometryCollection([box(0, 0, 1, 1), LineString([(0, 0), (5, 5)])])])
    >>> g[0].geom_type, float(g[0].area)
    ('MultiPolygon', 1.0)
    """
    g = np.asarray(geoms, dtype=object)
    out = _empty_multipolygons(len(g))
    if len(g) == 0:
        return out
    parts, idx = shapely.get_parts(g, return_index=True)
    while True:
        nested = shapely.get_type_id(parts) >= 4  # multi-geometries and collections
        if not nested.any():
            break
        sub, sub_idx = shapely.get_parts(parts[nested], return_index=True)
        parts = np.concatenate([parts[~nested], sub])
        idx = np.concatenate([idx[~nested], idx[nested][sub_idx]])
        order = np.argsort(idx, kind="stable")
        parts, idx = parts[order], idx[order]
    keep = (shapely.get_type_id(parts) == GeometryType.POLYGON) & ~shapely.is_empty(parts)
    if keep.any():
        shapely.multipolygons(parts[keep], indices=idx[keep], out=out)
    return out


@_quiet_fp
def repair_polygons(geoms: npt.ArrayLike) -> tuple[Array, Array]:
    """Make polygons valid, keeping only their polygonal parts.

    Uses ``shapely.make_valid(method="structure", keep_collapsed=False)``: overlapping parts
    are unioned, self-intersecting rings are split into the parts they enclose, collapsed
    parts disappear.

    Returns
    -------
    repaired : ndarray of MultiPolygon
    changed : ndarray of bool
        True where the input was invalid (those labels should be reported as repaired).

    Examples
    --------
    >>> bowtie = polygons_to_shapely([0, 1], [0, 4], [[0, 0], [2, 2], [2, 0], [0, 2]])
    >>> fixed, changed = repair_polygons(bowtie)
    >>> changed.tolist(), float(fixed[0].area), len(fixed[0].geoms)
    ([True], 2.0, 2)
    """
    g = np.asarray(geoms, dtype=object)
    if len(g) == 0:
        return g.copy(), np.zeros(0, dtype=bool)
    changed = ~shapely.is_valid(g)
    out = _as_multipolygons(g)
    if changed.any():
        out[changed] = polygonal_parts(
            shapely.make_valid(g[changed], method="structure", keep_collapsed=False)
        )
    return out, changed


def orient_polygons(geoms: npt.ArrayLike) -> Array:
    """Exterior rings counter-clockwise, holes clockwise (math coordinates, y up).

    Examples
    --------
    >>> import shapely
    >>> g = orient_polygons([shapely.MultiPolygon([shapely.box(0, 0, 1, 1, ccw=False)])])
    >>> bool(g[0].geoms[0].exterior.is_ccw)
    True
    """
    return np.asarray(shapely.orient_polygons(np.asarray(geoms, dtype=object)), dtype=object)


@_quiet_fp
def clip_polygons(
    geoms: npt.ArrayLike, width: npt.ArrayLike, height: npt.ArrayLike
) -> tuple[Array, Array]:
    """Intersect polygons with their image rectangle ``[0, width] x [0, height]``.

    Parameters
    ----------
    geoms : array_like of (Multi)Polygon, shape (n,)
    width, height : array_like, shape (n,) or scalar
        Image sizes; ``<= 0`` means unknown and leaves the polygon as it is.

    Returns
    -------
    clipped : ndarray of MultiPolygon
        True intersection, polygonal parts only (empty when nothing is inside the image).
    changed : ndarray of bool
        True where the polygon was not inside the image.

    Examples
    --------
    >>> import shapely
    >>> g, changed = clip_polygons([shapely.box(-5, -5, 5, 5)], 10, 10)
    >>> float(g[0].area), changed.tolist()
    (25.0, [True])
    """
    g = np.asarray(geoms, dtype=object)
    w, h = np.broadcast_arrays(np.asarray(width, np.float64), np.asarray(height, np.float64))
    w = np.broadcast_to(w, g.shape)
    h = np.broadcast_to(h, g.shape)
    known = (w > 0) & (h > 0)
    # inside the rectangle exactly when the bounds are (what covers() says, without GEOS)
    with np.errstate(invalid="ignore"):
        b = shapely.bounds(g).reshape(-1, 4)
        inside = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
    changed = known & ~inside & ~shapely.is_empty(g)
    out = _as_multipolygons(g)
    if changed.any():
        rect = shapely.box(0.0, 0.0, w[changed], h[changed])
        out[changed] = polygonal_parts(shapely.intersection(g[changed], rect))
    return out, changed


def _as_multipolygons(g: Array) -> Array:
    # polygonal_parts rebuilds every geometry; MultiPolygons (what polygons_to_shapely makes)
    # are already in that form and are passed through
    multi = shapely.get_type_id(g) == GeometryType.MULTIPOLYGON
    if multi.all():
        return g.copy()
    out = g.copy()
    out[~multi] = polygonal_parts(g[~multi])
    return out


def shapely_to_polygons(geoms: npt.ArrayLike) -> tuple[Array, Array, Array]:
    """Ragged arrays of the model (open rings) from (Multi)Polygons, via ``to_ragged_array``.

    Each label's rings come part by part, the exterior first and then its holes, so reading
    them back with :func:`polygons_to_shapely` (even-odd rule) gives the same geometry.

    Returns
    -------
    offsets, ring_offsets : ndarray of int64
    coords : ndarray of float64, shape (m, 2)

    Examples
    --------
    >>> import shapely
    >>> off, roff, xy = shapely_to_polygons([shapely.box(0, 0, 1, 1)])
    >>> off.tolist(), roff.tolist(), len(xy)
    ([0, 1], [0, 4], 4)
    """
    g = polygonal_parts(geoms)
    if len(g) == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((0, 2))
    _, coords, (ring_off, poly_off, multi_off) = shapely.to_ragged_array(g)
    ring_off = np.asarray(ring_off, dtype=np.int64)
    keep = np.ones(len(coords), dtype=bool)
    keep[ring_off[1:] - 1] = False
    new_ring_off = ring_off - np.arange(len(ring_off))
    offsets = np.asarray(poly_off, dtype=np.int64)[np.asarray(multi_off, dtype=np.int64)]
    return offsets, new_ring_off, np.asarray(coords, dtype=np.float64)[keep][:, :2]


# -- RLE -----------------------------------------------------------------------------------


def _mask_api() -> Any:
    from pycocotools import mask

    return mask


def _decode(rles: Sequence[RLE]) -> Array:
    # pycocotools 2.0.x decode() triggers a numpy 2 DeprecationWarning about __array__(copy=)
    # inside its Cython code; it is harmless and not ours to fix, so it is silenced here only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return np.asarray(_mask_api().decode(rles))


def _rle_minus(keep: list[Any], cut: list[Any]) -> list[Any]:
    # keep[i] minus cut[i]: keep AND the complement of cut, the complement written straight
    # into cut's compressed counts (only their first values change), so no image-sized mask is
    # made and no count is decoded into Python
    if not keep:
        return []
    mask = _mask_api()
    return [
        mask.merge(
            [k, {"size": c["size"], "counts": _complement_counts(c["counts"])}], intersect=True
        )
        for k, c in zip(keep, cut, strict=True)
    ]


def _count_text(x: int) -> bytes:
    # one value of COCO's compressed counts (pycocotools' rleToString): 5 bits a character,
    # least significant first, 0x20 = more follow, 0x10 of the last = sign; offset by 48
    out = bytearray()
    more = True
    while more:
        c = x & 0x1F
        x >>= 5
        more = x != -1 if c & 0x10 else x != 0
        out.append((c | 0x20 if more else c) + 48)
    return bytes(out)


def _first_counts(s: bytes, k: int) -> tuple[list[int], int]:
    """The first ``k`` stored values of compressed counts and where the next one begins."""
    vals: list[int] = []
    p = 0
    while len(vals) < k and p < len(s):
        x = shift = 0
        while True:
            c = s[p] - 48
            x |= (c & 0x1F) << shift
            p += 1
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    x -= 1 << shift
                break
        vals.append(x)
    return vals, p


def _complement_counts(s: bytes) -> bytes:
    """Compressed counts of the complement of the mask with compressed counts ``s``.

    The complement's counts drop a leading 0 (``[c1, c2, ...]``) or add one (``[0, c0, ...]``).
    From the fourth on, a value is stored as the difference to the count two before it, and
    shifting the counts by one keeps those differences: only the first values are rewritten
    and the rest of ``s`` is kept as it is.
    """
    e, p = _first_counts(s, 4)
    if len(e) < 4:  # every value stored as it is: rewrite them all
        c = e[1:] if e and e[0] == 0 else [0, *e]
        return b"".join(_count_text(v - c[i - 2] if i > 2 else v) for i, v in enumerate(c))
    if e[0] == 0:  # [c1, c2, c3 = e3 + c1], then e4, e5, ...
        return _count_text(e[1]) + _count_text(e[2]) + _count_text(e[3] + e[1]) + s[p:]
    # [0, c0, c1, c2 - c0], then e3, e4, ...
    _, p3 = _first_counts(s, 3)
    head = _count_text(0) + _count_text(e[0]) + _count_text(e[1]) + _count_text(e[2] - e[0])
    return head + s[p3:]


def _str_counts(rles: Sequence[RLE]) -> list[RLE]:
    return [
        {
            "size": [int(s) for s in r["size"]],
            "counts": r["counts"].decode("ascii")
            if isinstance(r["counts"], bytes)
            else r["counts"],
        }
        for r in rles
    ]


def _bytes_counts(rles: Sequence[RLE]) -> list[RLE]:
    mask = _mask_api()
    out = []
    for r in rles:
        c = r["counts"]
        if isinstance(c, list):  # uncompressed RLE
            out.append(mask.frPyObjects(dict(r), *r["size"]))
        else:
            out.append(
                {"size": list(r["size"]), "counts": c.encode("ascii") if isinstance(c, str) else c}
            )
    return out


def rle_encode(masks: npt.ArrayLike) -> list[RLE]:
    """Compressed COCO RLEs of binary masks ``(h, w)`` or ``(n, h, w)``; counts as ``str``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((10, 5), np.uint8); m[:, :2] = 1
    >>> rle_encode(m)
    [{'size': [10, 5], 'counts': '0d0n0'}]
    """
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if len(m) == 0:
        return []
    stacked = np.asfortranarray(np.moveaxis(m != 0, 0, -1).astype(np.uint8))
    return _str_counts(_mask_api().encode(stacked))


def rle_runs(rle: RLE) -> tuple[Array, Array]:
    """Foreground runs of one RLE: start and length of each, as positions in the image's
    column-major order (COCO's, ``x * height + y``), without decoding an image-sized mask.

    The compressed counts are decoded in numpy (:func:`_rle_counts`).

    Examples
    --------
    >>> rle_runs({"size": [10, 5], "counts": "0d0n0"})
    (array([0]), array([20]))
    >>> rle_runs({"size": [2, 2], "counts": [1, 2, 1]})
    (array([1]), array([2]))
    """
    c = rle["counts"]
    if isinstance(c, list):
        counts = np.asarray(c, np.int64)
    else:
        counts = _rle_counts([c.encode("ascii") if isinstance(c, str) else c])[0]
    ends = np.cumsum(counts)
    return (ends - counts)[1::2], counts[1::2]


def _rle_counts(strings: Sequence[bytes]) -> list[Array]:
    # COCO's compressed counts (pycocotools' rleFrString), for many strings at once: 5-bit
    # groups, 0x20 = more groups follow, 0x10 in the last = negative, and from the fourth
    # count on each is stored as the difference to the count two before it.
    if not strings:
        return []
    buf = np.frombuffer(b"".join(strings), np.uint8).astype(np.int64) - 48
    end = np.flatnonzero((buf & 0x20) == 0)
    start = np.r_[0, end[:-1] + 1]
    nch = end - start + 1
    tok = np.repeat(np.arange(len(end)), nch)
    k = np.arange(len(buf)) - start[tok]
    vals = np.zeros(len(end), np.int64)
    np.add.at(vals, tok, (buf & 0x1F) << (5 * k))
    neg = (buf[end] & 0x10) != 0
    vals[neg] -= np.left_shift(1, 5 * nch[neg])
    bounds = np.searchsorted(end, np.cumsum([len(s) for s in strings]))
    out = []
    a = 0
    for b in bounds.tolist():
        x = vals[a:b].copy()
        x[1::2] = np.cumsum(x[1::2])
        x[2::2] = np.cumsum(x[2::2])
        out.append(x)
        a = b
    return out


def rle_decode(rles: Sequence[RLE]) -> Array:
    """Masks ``(n, h, w)`` uint8 from RLEs (compressed with str/bytes counts, or uncompressed).

    Examples
    --------
    >>> int(rle_decode([{"size": [10, 5], "counts": "0d0n0"}]).sum())
    20
    """
    if not rles:
        return np.zeros((0, 0, 0), dtype=np.uint8)
    if len({tuple(r["size"]) for r in rles}) != 1:
        raise ValueError("rle_decode needs RLEs of one size; decode each size separately")
    return np.moveaxis(_decode(_bytes_counts(rles)), -1, 0)


def rle_area(rles: Sequence[RLE]) -> Array:
    """Pixel counts of RLEs (int64).

    Examples
    --------
    >>> rle_area([{"size": [10, 5], "counts": "0d0n0"}]).tolist()
    [20]
    """
    if not rles:
        return np.zeros(0, dtype=np.int64)
    mask = _mask_api()
    objs = _bytes_counts(rles)
    # pycocotools 2.0.x area() fails on more than 255 RLEs at once under numpy 2 (it sizes an
    # internal uint8 array with the count), so it is called on chunks of 255
    return np.concatenate(
        [
            np.asarray(mask.area(objs[i : i + 255]), dtype=np.int64).reshape(-1)
            for i in range(0, len(objs), 255)
        ]
    )


def rle_to_bbox(rles: Sequence[RLE]) -> Array:
    """Tight ``xywh`` boxes (pixel-corner) of RLEs; ``[0, 0, 0, 0]`` for empty masks.

    Examples
    --------
    >>> rle_to_bbox([{"size": [10, 5], "counts": "0d0n0"}]).tolist()
    [[0.0, 0.0, 2.0, 10.0]]
    """
    if not rles:
        return np.zeros((0, 4))
    return np.asarray(_mask_api().toBbox(_bytes_counts(rles)), dtype=np.float64).reshape(-1, 4)


def polygons_to_rle(
    geoms: npt.ArrayLike, height: npt.ArrayLike, width: npt.ArrayLike
) -> list[RLE | None]:
    """Rasterise (Multi)Polygons to COCO RLEs with pycocotools, holes removed.

    Exterior rings of a label are rasterised and merged (union), hole rings likewise, and the
    hole pixels are removed from the exterior pixels. Labels on images of unknown size
    (``<= 0``) or with no polygonal area give ``None``.

    Parameters
    ----------
    geoms : array_like of (Multi)Polygon, shape (n,)
    height, width : array_like of int, shape (n,) or scalar
        Size of each label's image.

    Returns
    -------
    list of dict or None
        ``{"size": [h, w], "counts": str}`` per label.

    Examples
    --------
    >>> import shapely
    >>> outer = shapely.box(0, 0, 10, 10)
    >>> g = shapely.Polygon(outer.exterior, [shapely.box(2, 2, 6, 6).exterior])
    >>> rle_area(polygons_to_rle([g], 20, 20)).tolist()
    [84]
    """
    g = np.asarray(geoms, dtype=object)
    n = len(g)
    h = np.broadcast_to(np.asarray(height, dtype=np.int64), (n,))
    w = np.broadcast_to(np.asarray(width, dtype=np.int64), (n,))
    out: list[RLE | None] = [None] * n
    sized = np.flatnonzero((h > 0) & (w > 0))
    if len(sized) == 0:
        return out
    # only geometries with a known image size are taken apart into rings
    g = _empty_multipolygons(n)
    g[sized] = polygonal_parts(np.asarray(geoms, dtype=object)[sized])
    mask = _mask_api()
    polys, poly_label = shapely.get_parts(g, return_index=True)
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    is_ext = np.ones(len(rings), dtype=bool)
    is_ext[1:] = ring_poly[1:] != ring_poly[:-1]
    ring_label = poly_label[ring_poly]
    flat = _flat_rings(rings)
    ok = (h > 0) & (w > 0) & ~shapely.is_empty(g)
    for hh, ww in sorted({(int(a), int(b)) for a, b in zip(h[ok], w[ok], strict=True)}):
        sel = np.flatnonzero((ok & (h == hh) & (w == ww))[ring_label])
        rles = mask.frPyObjects([flat[i] for i in sel], hh, ww)
        # each polygon part is its exterior minus its own holes (an island standing in a hole
        # of another part is a part of its own and stays); a label is the union of its parts
        part_rle: dict[int, Any] = {}
        holes_of: dict[int, list[Any]] = {}
        for i, r in zip(sel.tolist(), rles, strict=True):
            if is_ext[i]:
                part_rle[int(ring_poly[i])] = r
            else:
                holes_of.setdefault(int(ring_poly[i]), []).append(r)
        holed = [p for p in part_rle if p in holes_of]
        cut = [_union(mask, holes_of[p]) for p in holed]
        for p, r in zip(holed, _rle_minus([part_rle[p] for p in holed], cut), strict=True):
            part_rle[p] = r
        parts_of: dict[int, list[Any]] = {}
        for p, r in part_rle.items():
            parts_of.setdefault(int(poly_label[p]), []).append(r)
        for lab, rs in parts_of.items():
            out[lab] = _str_counts([_union(mask, rs)])[0]
    return out


def _union(mask: Any, rles: list[Any]) -> Any:
    """The union of ``rles``, merged pairwise in rounds: pycocotools' merge of a list walks an
    ever longer running result, which is quadratic in the number of rings of one label."""
    while len(rles) > 1:
        rles = [mask.merge(rles[i : i + 2]) if i + 1 < len(rles) else rles[i]
                for i in range(0, len(rles), 2)]  # fmt: skip
    return rles[0]


def _flat_rings(rings: Array) -> list[Array]:
    # pycocotools wants [x1, y1, x2, y2, ...] with at least 3 points; rings here are closed
    # LinearRings of valid polygons (>= 4 coordinates), so the closing vertex is dropped.
    if len(rings) == 0:
        return []
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    bounds = np.flatnonzero(np.diff(idx)) + 1
    return [c[:-1].ravel() for c in np.split(coords, bounds)]
