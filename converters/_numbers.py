"""Numbers as the text formats write them: shortest exact, no float noise.

Arithmetic on coordinates leaves float noise (``83.05 + 26.06 - 83.05`` is
``26.060000000000002``); written with ``repr`` the noise reaches the file. Every text writer
passes its numbers through this module instead:

- :func:`shortest` rounds to 15 significant digits (``DBL_DIG``: every decimal of at most
  15 digits survives a float64 round trip, so nothing a user typed is lost) and returns floats
  whose shortest round-trip form (``repr``, orjson) is the short decimal: ``26.06``. JSON
  writers (COCO, OpenLABEL) store these floats; orjson writes them shortest.
- :func:`fixed` rounds to a format's own decimals (YOLO's 6, CULane's 3 ...) and clears
  ``-0``.
- :func:`texts` gives the text of each value for XML/text formats (VOC, CVAT): integers
  without a decimal point, other values in shortest form, all formatted in one call.

Text in bulk: :func:`fixed_cells` and :func:`int_cells` give the text of a whole column at
once as a byte matrix (one NUL-padded row per value, no Python string per number), and
:func:`join_cells` joins columns and separators into the bytes of every line at once, with the
offset of each line (the files are then cut out of one buffer by offsets); :func:`fixed_texts`
is :func:`fixed_cells` as an Arrow string array (KITTI joins its lines in Arrow).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
    "DIFFERENCE_DECIMALS",
    "DIGITS",
    "cells_text",
    "fixed",
    "fixed_cells",
    "fixed_texts",
    "int_cells",
    "join_cells",
    "shortest",
    "texts",
]

Array = npt.NDArray[Any]

DIGITS = 15
"""Significant digits kept by :func:`shortest` (float64's ``DBL_DIG``)."""

DIFFERENCE_DECIMALS = 9
"""Decimals of computed coordinates: differences of large values (a box width ``1080 - 1079.9``
is ``0.09999999999990905``) and intersections (a polygon clipped at ``y = 1080`` gets the vertex
``80.8681249999999``) carry absolute noise, ~1e-13 of the unit, which no number of significant
digits removes; 1e-9 of the unit (pixel, metre) is far below what any reader resolves."""


def shortest(values: npt.ArrayLike, digits: int = DIGITS, decimals: int | None = None) -> Array:
    """``values`` as float64 rounded to ``digits`` significant digits (NaN and inf kept).

    ``decimals`` first rounds to that many decimals: the absolute precision of a unit (metres
    to the nanometre, ``decimals=9``), for values computed from large ones (LiDAR positions
    relative to a world origin 80 km away keep only ~1e-11 m of the 15 digits).

    Examples
    --------
    >>> shortest([83.05 + 26.06 - 83.05, 272.09000000000003, -0.0, 1e300, 3]).tolist()
    [26.06, 272.09, 0.0, 1e+300, 3.0]
    >>> shortest([81500.196962 - 81500.0], decimals=9).tolist()
    [0.196962]
    """
    a = np.array(values, dtype=np.float64, order="C")  # C order: flat below is a view of a
    if decimals is not None:
        a = np.round(a, decimals)
    flat = a.reshape(-1)
    sel = np.flatnonzero(np.isfinite(flat) & (flat != 0))
    if len(sel):
        v = flat[sel]
        k = digits - 1 - np.floor(np.log10(np.abs(v))).astype(np.int64)  # decimals to keep
        res = np.empty_like(v)
        # an integer below 2**53 divided (or multiplied) by an exact power of ten is correctly
        # rounded: the float nearest to the short decimal, the one float("26.06") gives
        up = (k >= 0) & (k <= 22)
        p = 10.0 ** k[up]
        res[up] = np.round(v[up] * p) / p
        down = (k < 0) & (k >= -22)
        p = 10.0 ** (-k[down])
        res[down] = np.round(v[down] / p) * p
        rest = np.flatnonzero(~(up | down))  # beyond 1e±22: rare, done one by one
        res[rest] = [float(f"{x:.{digits}g}") for x in v[rest].tolist()]
        flat[sel] = res
    return a + 0.0  # -0.0 -> 0.0


def fixed(values: npt.ArrayLike, decimals: int) -> Array:
    """``values`` rounded to ``decimals`` decimals, ``-0`` cleared (for ``%.<decimals>f``).

    Examples
    --------
    >>> fixed([0.1234567, -0.0000001], 6).tolist()
    [0.123457, 0.0]
    """
    return np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0


def fixed_texts(values: npt.ArrayLike, decimals: int) -> Any:
    """:func:`fixed_cells` as a ``pyarrow`` string array (for formats that join lines in Arrow).

    Examples
    --------
    >>> fixed_texts([1.005, -0.001, -2.5, 1e20, float("nan")], 2).to_pylist()
    ['1.00', '0.00', '-2.50', '100000000000000000000.00', 'nan']
    >>> fixed_texts([-0.5, -1.5, 7.0], 0).to_pylist()
    ['0', '-2', '7']
    """
    import pyarrow as pa  # imported here: ~0.2 s that writers which never call this do not pay

    buf, offsets = join_cells([fixed_cells(values, decimals)])
    n = len(offsets) - 1
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(buf))
    )


def texts(
    values: npt.ArrayLike, digits: int = DIGITS, decimals: int | None = DIFFERENCE_DECIMALS
) -> list[str]:
    """Text of each value (flattened): integers without ``.0``, others shortest after rounding
    (to ``decimals``, default :data:`DIFFERENCE_DECIMALS`, then ``digits`` significant digits).

    The texts hold only digits, ``.``, ``-``, ``+``, ``e``, ``inf``, ``nan``: nothing XML
    needs escaped.

    Examples
    --------
    >>> texts([5.0, 26.060000000000002, -0.0, 0.5, float("nan"), 1e16])
    ['5', '26.06', '0', '0.5', 'nan', '10000000000000000']
    """
    flat = shortest(values, digits, decimals).ravel()
    if not len(flat):
        return []
    if (np.abs(flat) < 1e15).all() and (flat == np.trunc(flat)).all():  # whole pixels (VOC)
        return list(map(str, flat.astype(np.int64).tolist()))
    # orjson's shortest round-trip texts, for all values in one call
    out = orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")
    finite = np.isfinite(flat)
    whole = finite & (flat == np.trunc(flat))
    small = np.flatnonzero(whole & (np.abs(flat) < 1e15))
    if len(small):  # "5.0" -> "5": the integers' own text, all at once
        column = np.array(out, dtype=object)
        column[small] = flat[small].astype(np.int64).astype(str).astype(object)
        out = column.tolist()
    for i in np.flatnonzero((whole & (np.abs(flat) >= 1e15)) | ~finite).tolist():
        v = float(flat[i])
        out[i] = str(int(v)) if math.isfinite(v) else repr(v)
    return out


# -- text in bulk: one byte matrix per column ------------------------------------------------
#
# A column's texts are an ``(n, width)`` uint8 matrix, right-aligned, NUL (0) on the left where
# a text is shorter than the widest; :func:`join_cells` drops the NULs. Numbers are made of
# their digits by integer arithmetic and a table of the 1000 three-digit groups, so no Python
# string is built per number.

_PAIRS = np.array([b"%02d" % i for i in range(100)]).view(np.uint16)  # "07" as 2 bytes
_EXACT = 1e14  # |value * 10**decimals| below this: the integer and its digits are exact


def _pairs(a: Array, n_pairs: int) -> Array:
    """The ``2 * n_pairs`` decimal digits of each ``a >= 0`` (int64, leading zeros kept)."""
    out = np.empty((len(a), n_pairs), dtype=np.uint16)
    # a < 100**n_pairs: up to 8 digits fit uint32, whose division by a constant is cheaper
    # than int64's (and // then - is cheaper than divmod): 40% less time here
    rest = a.astype(np.uint32) if n_pairs <= 4 else a
    hundred = rest.dtype.type(100)
    for k in range(n_pairs - 1, -1, -1):  # two digits at a time, from the right
        q = rest // hundred
        out[:, k] = _PAIRS.take(rest - q * hundred)
        rest = q
    return out.view(np.uint8)  # each uint16 holds its two digit bytes in text order


def _digits(a: Array, neg: Array) -> Array:
    """Cells of the integers ``a >= 0`` (int64), with a ``-`` before those in ``neg``."""
    top = int(a.max()) if len(a) else 0
    signed = bool(neg.any())
    width = len(str(top)) + signed  # a sign column only when some value has a sign
    n_pairs = -(-width // 2)
    out = _pairs(a, n_pairs)[:, 2 * n_pairs - width :]
    if width - signed == 1 and not signed:
        return np.ascontiguousarray(out)
    # leading zeros (all but the last digit) become NUL; the sign goes just before the first digit
    n_digits = np.ones(len(a), dtype=np.int64)
    for k in range(1, width - signed):
        n_digits += a >= 10**k
    lead = np.arange(width)[None, :] < (width - n_digits)[:, None]
    out = np.where(lead, np.uint8(0), out)
    rows = np.flatnonzero(neg)
    out[rows, width - 1 - n_digits[rows]] = ord("-")
    return out


def _right_align(cells: Array, rows: Array, texts_: list[bytes]) -> Array:
    """``cells`` with rows ``rows`` replaced by ``texts_`` (widened when one is longer)."""
    width = max([cells.shape[1], *map(len, texts_)])
    if width > cells.shape[1]:
        cells = np.concatenate(
            [np.zeros((len(cells), width - cells.shape[1]), np.uint8), cells], axis=1
        )
    for r, t in zip(rows.tolist(), texts_, strict=True):
        cells[r] = 0
        cells[r, width - len(t) :] = np.frombuffer(t, np.uint8)
    return cells


def int_cells(values: npt.ArrayLike) -> Array:
    """Text of each integer (flattened) as a cells matrix: what ``"%d" % v`` writes.

    Examples
    --------
    >>> cells_text(int_cells([0, 7, -42, 1000]))
    ['0', '7', '-42', '1000']
    """
    v = np.asarray(values, dtype=np.int64).ravel()
    big = v == np.iinfo(np.int64).min  # |v| does not fit: written one by one
    a = np.abs(np.where(big, 0, v))
    cells = _digits(a, v < 0)
    if big.any():
        cells = _right_align(cells, np.flatnonzero(big), [b"%d" % x for x in v[big].tolist()])
    return cells


def fixed_cells(values: npt.ArrayLike, decimals: int) -> Array:
    """Text of each value (flattened) as ``"%.<decimals>f" % fixed(v, decimals)`` writes it.

    The same bytes as formatting the rounded values one by one: the value is rounded as
    :func:`fixed` rounds it (``rint(v * 10**decimals)``, ties to even on that product, ``-0``
    cleared), and that integer's digits are the text. NaN, infinities and values too large for
    exact integer digits are formatted one by one.

    Examples
    --------
    >>> cells_text(fixed_cells([0.1234565, -0.0000001, 12.5, 1 / 128, float("nan")], 6))
    ['0.123456', '0.000000', '12.500000', '0.007812', 'nan']
    >>> cells_text(fixed_cells([2.5, -3.5, 0.4], 0))
    ['2', '-4', '0']
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    with np.errstate(over="ignore", invalid="ignore"):  # those are formatted one by one
        n = np.rint(v * 10.0**decimals)
    ok = np.abs(n) < _EXACT  # False for NaN and infinities
    a = np.abs(np.where(ok, n, 0.0)).astype(np.int64)
    whole, frac = np.divmod(a, 10**decimals)
    cells = _digits(whole, ok & (n < 0))
    if decimals > 0:
        n_pairs = -(-decimals // 2)
        frac = frac * 10 ** (2 * n_pairs - decimals)  # left-aligned in whole pairs of digits
        point = np.full((len(v), 1), ord("."), dtype=np.uint8)
        cells = np.concatenate([cells, point, _pairs(frac, n_pairs)[:, :decimals]], axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        with np.errstate(over="ignore", invalid="ignore"):
            rounded = fixed(v[bad], decimals).tolist()
        cells = _right_align(cells, bad, [b"%.*f" % (decimals, x) for x in rounded])
    return cells


def cells_text(cells: Array) -> list[str]:
    """The text of each row of a cells matrix (for the few places that need Python strings).

    Examples
    --------
    >>> cells_text(int_cells([3, -12]))
    ['3', '-12']
    """
    if not len(cells):
        return []
    buf, offsets = join_cells([cells])
    text = buf.tobytes().decode("ascii")
    return [text[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def join_cells(parts: list[Array | bytes]) -> tuple[Array, Array]:
    """Rows of several cells matrices and constant separators joined: ``(bytes, offsets)``.

    ``parts`` are cells matrices of one row per line (the same number of rows) and ``bytes``
    put on every line (``b" "``, ``b"\\n"``). Returns every line's bytes one after the other
    (uint8) and the ``n + 1`` offsets where each line starts (and the last ends).

    Examples
    --------
    >>> buf, off = join_cells([int_cells([1, 23]), b" ", fixed_cells([0.5, 0.25], 2), b"\\n"])
    >>> buf.tobytes(), off.tolist()
    (b'1 0.50\\n23 0.25\\n', [0, 7, 15])
    """
    n = next(len(p) for p in parts if not isinstance(p, bytes))
    mats = [
        np.broadcast_to(np.frombuffer(p, np.uint8), (n, len(p))) if isinstance(p, bytes) else p
        for p in parts
    ]
    m = np.concatenate(mats, axis=1) if mats else np.zeros((n, 0), np.uint8)
    keep = m != 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    if keep.all():  # every text of every column as wide as its column: nothing to drop
        offsets[1:] = np.arange(1, n + 1) * m.shape[1]
        return m.reshape(-1), offsets
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return m[keep], offsets


def repr_cells(values: npt.ArrayLike, decimals: int) -> Array:
    """Text of each value rounded to ``decimals`` as ``repr`` (and ``json.dumps``) writes the
    rounded float: the fixed text without its trailing zeros (one decimal kept).

    The ``decimals``-decimal text of a value below 1e15 / 10**decimals is the shortest that
    gives the rounded float back, so only its trailing zeros differ from ``repr``; exponent
    forms (below 1e-4, from 1e16) and larger values are formatted one by one.

    Examples
    --------
    >>> cells_text(repr_cells([12.3456, -2, 0, 1e-5, 3.1], 2))
    ['12.35', '-2.0', '0.0', '0.0', '3.1']
    >>> cells_text(repr_cells([0.00005], 6))
    ['5e-05']
    """
    with np.errstate(over="ignore", invalid="ignore"):
        v = fixed(np.asarray(values, dtype=np.float64).ravel(), decimals)
    cells = fixed_cells(v, max(decimals, 1)).copy()
    stripping = np.ones(len(v), dtype=bool)
    for col in range(cells.shape[1] - 1, cells.shape[1] - max(decimals, 1), -1):
        stripping &= cells[:, col] == ord("0")
        cells[stripping, col] = 0
    a = np.abs(v)
    with np.errstate(over="ignore", invalid="ignore"):
        odd = ~(a * 10.0**decimals < _EXACT) | ((a > 0) & (a < 1e-4))
    if odd.any():
        rows = np.flatnonzero(odd)
        cells = _right_align(cells, rows, [repr(x).encode() for x in v[rows].tolist()])
    return cells
