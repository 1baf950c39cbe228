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
- :func:`fixed_texts` gives ``"%.<decimals>f" % v`` of :func:`fixed` values column-wise, as an
  Arrow string array (KITTI's label columns): no per-value Python formatting.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["DIFFERENCE_DECIMALS", "DIGITS", "fixed", "fixed_texts", "shortest", "texts"]

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


_FRACTIONS: dict[int, Any] = {}
"""``decimals`` -> Arrow array of the zero-padded fractions ``"00"`` .. ``"99"`` (``decimals <= 5``)."""


def fixed_texts(values: npt.ArrayLike, decimals: int) -> Any:
    """``"%.<decimals>f" % v`` of every value of :func:`fixed` ``(values, decimals)``, flattened,
    as a ``pyarrow`` string array; byte for byte what ``%`` writes.

    A value ``v`` rounded to ``d`` decimals is the float nearest to ``n / 10**d`` for the
    integer ``n = round(v * 10**d)`` as long as ``|n| < 2**52``; ``%`` then writes exactly that
    decimal, so the text is ``n``'s digits with a point ``d`` places from the right (sign from
    ``n``: ``fixed`` cleared ``-0``). Larger values, NaN and infinities go through ``%`` one by
    one.

    Examples
    --------
    >>> fixed_texts([1.005, -0.001, -2.5, 1e20, float("nan")], 2).to_pylist()
    ['1.00', '0.00', '-2.50', '100000000000000000000.00', 'nan']
    >>> fixed_texts([-0.5, -1.5, 7.0], 0).to_pylist()
    ['0', '-2', '7']
    """
    import pyarrow as pa  # imported here: ~0.2 s that writers which never call this do not pay
    import pyarrow.compute as pc

    x = fixed(values, decimals).ravel()
    if decimals > 15:  # 10**decimals past float64's digits: every value by %
        return pa.array([f"%.{decimals}f" % v for v in x.tolist()], pa.string())
    scale = 10**decimals
    exact = np.abs(x) < 2.0**52 / scale
    n = np.round(np.where(exact, x, 0.0) * scale).astype(np.int64)
    a = np.abs(n)
    whole = pc.cast(pa.array(a // scale), pa.string())
    sign = pc.if_else(pa.array(n < 0), "-", "")
    if decimals == 0:
        out = pc.binary_join_element_wise(sign, whole, "")
    else:
        table = _FRACTIONS.get(decimals)
        if table is None and decimals <= 5:
            table = _FRACTIONS[decimals] = pa.array([f"{k:0{decimals}d}" for k in range(scale)])
        frac = (
            table.take(pa.array(a % scale))
            if table is not None
            else pc.utf8_lpad(pc.cast(pa.array(a % scale), pa.string()), decimals, "0")
        )
        out = pc.binary_join_element_wise(sign, whole, ".", frac, "")
    if not exact.all():
        rest = [f"%.{decimals}f" % v for v in x[~exact].tolist()]
        out = pc.replace_with_mask(out, pa.array(~exact), pa.array(rest, pa.string()))
    return out


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
