"""Arrow arrays as numpy arrays without copies, and strings as dictionaries.

pyarrow's own ``to_numpy``, ``pa.array`` and ``pa.scalar`` import pandas on first use (about
0.2 s); the columnar path only needs numbers viewed in place, bit masks unpacked and strings
as (distinct words, one code per label), so it does those here from the buffers.
"""

from __future__ import annotations

import functools
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NUMPY_OF: dict[pa.DataType, type[np.generic]] = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}

ArrowArray: TypeAlias = pa.Array | pa.ChunkedArray


@functools.cache
def pool() -> pa.MemoryPool:
    """The memory pool of the columnar path: jemalloc returning freed pages at once.

    The default pool (mimalloc) keeps what Arrow's parsing threads freed as resident memory
    for a while (about 0.2 GB per 100 MB of labels at the peak, measured); jemalloc with a zero
    decay gives it back. Only this pool's users see the decay setting.
    """
    try:
        jemalloc = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()
    pa.jemalloc_set_decay_ms(0)
    return jemalloc


class Coded:
    """A string column kept as (distinct words, code per row): ``col[idx]`` makes the objects.

    Examples
    --------
    >>> import numpy as np
    >>> Coded(np.array(["a", "b"], dtype=object), np.array([1, 0, 1]))[np.array([0, 2])].tolist()
    ['b', 'b']
    """

    def __init__(self, words: np.ndarray, codes: np.ndarray) -> None:
        self.words, self.codes = words, codes

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.words[self.codes[idx]]


def _chunks(arr: ArrowArray) -> list[pa.Array]:
    return arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]


def values(arr: ArrowArray) -> np.ndarray:
    """The numbers of a numeric array without nulls, viewed in place (one chunk) or joined.

    Examples
    --------
    >>> import pyarrow as pa
    >>> values(pa.chunked_array([[1, 2], [3]])).tolist()
    [1, 2, 3]
    """
    dtype = _NUMPY_OF.get(arr.type)
    if dtype is None or arr.null_count:
        return np.asarray(arr.to_numpy(zero_copy_only=False))
    size = np.dtype(dtype).itemsize
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * size)
        for c in _chunks(arr)
        if len(c)
    ]
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def mask(arr: ArrowArray) -> np.ndarray:
    """A boolean array without nulls (``is_valid()``, a comparison) as a numpy bool array.

    Examples
    --------
    >>> import pyarrow as pa
    >>> mask(pa.array([1, None, 3]).is_valid()).tolist()
    [True, False, True]
    """
    if arr.null_count or not pa.types.is_boolean(arr.type):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)
    parts = []
    for c in _chunks(arr):
        if len(c):
            bits = np.unpackbits(np.frombuffer(c.buffers()[1], np.uint8), bitorder="little")
            parts.append(bits[c.offset : c.offset + len(c)].view(bool))
    if not parts:
        return np.zeros(0, dtype=bool)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def strings(arr: ArrowArray) -> np.ndarray:
    """A string array as an object array of Python strings (``None`` where null)."""
    out = np.empty(len(arr), dtype=object)
    out[:] = arr.to_pylist()
    return out


def int64s(a: np.ndarray) -> pa.Array:
    """A numpy integer array as an Arrow int64 array over the same memory."""
    a = np.ascontiguousarray(a, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(a), [None, pa.py_buffer(a)])


def scalar(value: int | float | str) -> pa.Scalar:
    """An Arrow scalar (int64, float64 or string) for ``fill_null`` and comparisons."""
    if isinstance(value, str):
        data = value.encode()
        off = np.array([0, len(data)], dtype=np.int32)
        arr = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(off), pa.py_buffer(data)])
        return arr[0]
    if isinstance(value, float):
        buf = pa.py_buffer(np.array([value], dtype=np.float64))
        return pa.Array.from_buffers(pa.float64(), 1, [None, buf])[0]
    return int64s(np.array([value]))[0]


def dictionary(arr: ArrowArray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct strings of ``arr`` (``""`` for null or absent) and each row's code into them.

    Examples
    --------
    >>> import pyarrow as pa
    >>> words, codes = dictionary(pa.chunked_array([["a", None], ["b", "a", ""]]), 5)
    >>> words.tolist(), codes.tolist()
    (['a', '', 'b'], [0, 1, 2, 0, 1])
    """
    if n == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    if arr is None:
        return np.array([""], dtype=object), np.zeros(n, dtype=np.int64)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr, null_encoding="encode", memory_pool=pool())
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks(memory_pool=pool())
    words = ["" if w is None else w for w in enc.dictionary.to_pylist()]
    return unique_words(words, values(enc.indices).astype(np.int64, copy=False))


def unique_words(words: list[str], codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``words`` without repeats (a null and an empty string both became ``""``), codes remapped."""
    distinct = list(dict.fromkeys(words))
    if len(distinct) == len(words):
        out = np.empty(len(words), dtype=object)
        out[:] = words
        return out, codes
    first = {w: i for i, w in enumerate(distinct)}
    remap = np.array([first[w] for w in words], dtype=np.int64)
    out = np.empty(len(distinct), dtype=object)
    out[:] = distinct
    return out, remap[codes]
