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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["DIFFERENCE_DECIMALS", "DIGITS", "fixed", "shortest", "texts"]

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
    # orjson's shortest round-trip texts, for all values in one call
    out = orjson.dumps(flat, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")
    finite = np.isfinite(flat)
    whole = finite & (flat == np.trunc(flat))
    for i in np.flatnonzero(whole & (np.abs(flat) < 1e15)).tolist():
        out[i] = out[i][:-2]  # "5.0" -> "5"
    for i in np.flatnonzero((whole & (np.abs(flat) >= 1e15)) | ~finite).tolist():
        v = float(flat[i])
        out[i] = str(int(v)) if math.isfinite(v) else repr(v)
    return out
