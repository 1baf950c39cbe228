"""JSON text from columns: one Arrow string per row, built by kernels, never one dict per row.

A writer that emits millions of small JSON objects (COCO's annotations, the id map) spends
most of its time building Python dicts for orjson to serialise. Here the same text is made
column by column: numbers are formatted by one ``orjson.dumps`` of a numpy array (the exact
text orjson gives a Python float or int: shortest round trip, ``NaN`` as ``null``) and cut
into rows by offsets, strings are quoted by Arrow kernels (escaped by orjson where needed),
and rows are put together with Arrow's element-wise joins. The result is byte for byte what
``orjson.dumps`` writes for the equivalent dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "as_text",
    "blob",
    "concat",
    "fields",
    "groups",
    "indented",
    "inner",
    "join_ragged",
    "numbers",
    "strings",
    "values",
]

Array = npt.NDArray[Any]
Text: TypeAlias = pa.StringArray  # one JSON text per row

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def groups(values: npt.ArrayLike, counts: npt.ArrayLike) -> Text:
    """Text of consecutive groups of ``counts[i]`` numbers, joined by ``,`` (no brackets).

    Examples
    --------
    >>> groups(np.array([1.5, 2.0, 1e-7, -0.0]), [3, 0, 1]).to_pylist()
    ['1.5,2.0,1e-7', '', '-0.0']
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    cnt = np.asarray(counts, dtype=np.int64)
    if not len(flat):
        return pa.array([""] * len(cnt), type=pa.string())
    raw = orjson.dumps(flat, option=_NUMPY)  # "[a,b,c]": every token ends at a "," or the "]"
    ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == 44)
    # token i spans raw[start_i : end_i + 1] with its separator; rows are runs of tokens
    bounds = np.empty(len(flat) + 1, dtype=np.int64)
    bounds[0] = 1
    bounds[1:-1] = ends + 1
    bounds[-1] = len(raw)
    tok = np.zeros(len(cnt) + 1, dtype=np.int64)
    np.cumsum(cnt, out=tok[1:])
    offsets = bounds[tok].astype(np.int32)
    with_sep = pa.StringArray.from_buffers(len(cnt), pa.py_buffer(offsets), pa.py_buffer(raw))
    return pc.utf8_slice_codeunits(with_sep, 0, -1)  # the separator after each run


def numbers(values: npt.ArrayLike) -> Text:
    """orjson's text of each number (float64: shortest round trip; ints as ints).

    Examples
    --------
    >>> numbers(np.array([26.06, 1e16, float("nan")])).to_pylist()
    ['26.06', '1e+16', 'null']
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    return groups(flat, np.ones(len(flat), dtype=np.int64))


def as_text(values: Sequence[Any] | Array) -> Text:
    """``str()`` of each value, as an Arrow string array (no nulls).

    Examples
    --------
    >>> as_text(np.array(["a", 3, None], dtype=object)).to_pylist()
    ['a', '3', 'None']
    """
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        arr = None
    if arr is None or arr.null_count:  # not all str: str() of each, as the writers do
        arr = pa.array([str(v) for v in values], type=pa.string())
    return arr


def strings(values: Sequence[Any] | Array) -> Text:
    """JSON string literal of ``str()`` of each value, escaped as orjson escapes.

    Examples
    --------
    >>> strings(np.array(["car:1", 'a"b', 7], dtype=object)).to_pylist()
    ['"car:1"', '"a\\\\"b"', '"7"']
    """
    return pc.binary_join_element_wise('"', inner(values), '"', "")


def inner(values: Sequence[Any] | Array) -> Text:
    """What :func:`strings` puts between the quotes: for columns that are never null, the
    quotes go into the constant parts around them (one copy of the text less).

    Examples
    --------
    >>> inner(np.array(["car:1", 'a"b'], dtype=object)).to_pylist()
    ['car:1', 'a\\\\"b']
    """
    arr = values if isinstance(values, pa.Array) else as_text(values)
    bad = _needs_escape(arr)
    if bad.any():
        mask = pa.array(bad)
        escaped = [orjson.dumps(s).decode()[1:-1] for s in arr.filter(mask).to_pylist()]
        arr = pc.replace_with_mask(arr, mask, pa.array(escaped, type=pa.string()))
    return arr


def _needs_escape(arr: pa.Array) -> Array:
    """Rows holding a character JSON escapes (control characters, ``"``, ``\\``), found on
    the bytes of the whole column at once."""
    if len(arr) == 0 or arr.buffers()[2] is None:
        return np.zeros(len(arr), dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    at = np.flatnonzero((data < 0x20) | (data == 0x22) | (data == 0x5C))
    bad = np.zeros(len(arr), dtype=bool)
    if len(at):
        bad[np.searchsorted(offsets, at + offsets[0], side="right") - 1] = True
    if arr.null_count:
        bad &= np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))
    return bad


def values(col: Sequence[Any] | Array) -> Text:
    """JSON text of any values (attribute columns); ``None`` stays null.

    Strings, floats, ints and bools are formatted by column; anything else (lists, dicts,
    numpy scalars) by orjson one value at a time, as :func:`converters._base.dump_json` would.

    Examples
    --------
    >>> values(np.array(["a", 1, 2.5, True, None, [1, "x"]], dtype=object)).to_pylist()
    ['"a"', '1', '2.5', 'true', None, '[1,"x"]']
    """
    from converters._base import _dumps

    col = np.asarray(col, dtype=object).reshape(-1)
    try:  # most attribute columns hold text (or nothing)
        return strings(pa.array(col, type=pa.string()))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    kind = np.array([_KIND.get(type(v), 5) for v in col.tolist()], dtype=np.int8)
    out: list[str | None] = [None] * len(col)
    texts: list[Iterable[str | None]] = [
        strings(col[kind == 0]).to_pylist(),
        numbers(col[kind == 1].astype(np.float64)).to_pylist(),
        _ints(col[kind == 2]),
        ["true" if v else "false" for v in col[kind == 3].tolist()],
        [None] * int((kind == 4).sum()),
        [_dumps(v).decode() for v in col[kind == 5].tolist()],
    ]
    for k, t in enumerate(texts):
        for i, s in zip(np.flatnonzero(kind == k).tolist(), t, strict=True):
            out[i] = s
    return pa.array(out, type=pa.string())


_KIND = {str: 0, float: 1, int: 2, bool: 3, type(None): 4}


def _ints(col: Array) -> list[str]:
    try:
        return numbers(col.astype(np.int64)).to_pylist()
    except OverflowError:  # beyond 64 bits: orjson cannot, the standard library can
        from converters._base import _dumps

        return [_dumps(v).decode() for v in col.tolist()]


def concat(*parts: Text | str) -> Text:
    """Row-wise concatenation of texts and constants (a null part makes the row null).

    Examples
    --------
    >>> concat("[", pa.array(["1", "2"]), "]").to_pylist()
    ['[1]', '[2]']
    """
    return pc.binary_join_element_wise(*parts, "")


def join_ragged(texts: Text, counts: npt.ArrayLike, sep: str = ",") -> Text:
    """Consecutive runs of ``counts[i]`` texts joined by ``sep``.

    Examples
    --------
    >>> join_ragged(pa.array(["[1]", "[2]", "[3]"]), [2, 1]).to_pylist()
    ['[1],[2]', '[3]']
    """
    cnt = np.asarray(counts, dtype=np.int64)
    off = np.zeros(len(cnt) + 1, dtype=np.int32)
    np.cumsum(cnt, out=off[1:])
    lists = pa.ListArray.from_arrays(pa.array(off), texts)
    return pc.binary_join(lists, sep)


def fields(pairs: Sequence[tuple[str, Text]]) -> Text:
    """Object members ``"name":value`` joined by ``,``; members whose value is null are left out.

    Examples
    --------
    >>> fields([("a", pa.array(["1", None])), ("b", pa.array(['"x"', '"y"']))]).to_pylist()
    ['"a":1,"b":"x"', '"b":"y"']
    """
    # each present member with a "," after it, the last "," cut off (binary_join_element_wise
    # with null_handling="skip" drops rows whose members are all null: pyarrow 26)
    members = [
        pc.fill_null(concat(orjson.dumps(name).decode() + ":", v, ","), "") for name, v in pairs
    ]
    return pc.utf8_slice_codeunits(concat(*members), 0, -1)


def blob(texts: Text, sep: bytes = b",") -> bytes:
    """The texts joined by ``sep``, as bytes.

    Examples
    --------
    >>> blob(pa.array(["{}", "[1]"]))
    b'{},[1]'
    """
    if len(texts) == 0:
        return b""
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), sep.decode()
    )
    return joined[0].as_buffer().to_pybytes()


def indented(compact: bytes, level: int) -> bytes:
    """Compact JSON values ``a,b,c`` as orjson's ``OPT_INDENT_2`` writes them inside an array
    nested ``level`` deep: one value per line, two spaces per level.

    Examples
    --------
    >>> print(indented(b'{"a":[1]},2', 1).decode())
      {
        "a": [
          1
        ]
      },
      2
    """
    from converters._base import _dumps

    try:
        items = orjson.loads(b"[" + compact + b"]")
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        import json

        items = json.loads(b"[" + compact + b"]")
    text = _dumps(items, indent=True)[2:-2]  # without "[\n" and "\n]"
    pad = b"  " * (level - 1)
    return pad + text.replace(b"\n", b"\n" + pad) if pad else text
