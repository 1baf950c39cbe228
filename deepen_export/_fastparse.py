"""Columnar parse of large Deepen label files, without per-label Python objects.

The file is scanned in blocks with numpy to find where each label object starts and ends (JSON
strings and escapes are tracked, so braces inside strings do not count). The label objects are
then handed to pyarrow's multi-threaded C++ JSON reader as newline-delimited JSON, and the
resulting Arrow columns become the model's numpy columns.

Anything unusual (label types other than box/polygon/lane/3d_bbox/scene, nested attribute values,
missing or odd geometry, NaN tokens, mixed types) makes :func:`try_parse_file` return ``None``, and
the caller uses the general path in :mod:`deepen_export.parse`, which reports such labels one by
one. Both paths give equal label sets (tested).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from deepen_export.model import Boxes, Cuboids, LabelSet, Polygons, Polylines, Scenes

_PREFIX = re.compile(rb'^\s*\{\s*"(labels|all_labels)"\s*:\s*([\[{])')
_KEY_BEFORE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$', re.S)
_BLOCK = 1 << 24
_FAST_TYPES = {"box", "polygon", "lane", "3d_bbox", "scene"}

_STRUCT = np.zeros(256, dtype=np.int8)
_DELTA = np.zeros(256, dtype=np.int64)
for _c, _d in ((b"{", 1), (b"[", 1), (b"}", -1), (b"]", -1)):
    _STRUCT[_c[0]] = 1
    _DELTA[_c[0]] = _d


class _Unsupported(Exception):
    pass


@dataclass
class Chunk:
    """Newline-delimited label objects, with the ``file_id`` key of each (dict-shaped responses)."""

    data: bytes
    keys: list[str] | None
    listed: list[str]


@dataclass
class _Scan:
    starts: np.ndarray
    ends: np.ndarray
    array_opens: np.ndarray
    form: str


def _scan(fh: BinaryIO, block: int = _BLOCK) -> _Scan | None:
    head = fh.read(256)
    m = _PREFIX.match(head)
    if not m:
        return None
    form = "list" if m.group(2) == b"[" else "dict"
    label_depth = 2 if form == "list" else 3
    fh.seek(0)
    depth = 0
    in_str = False
    bs_carry = 0
    pos = 0
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    opens: list[np.ndarray] = []
    while True:
        buf = fh.read(block)
        if not buf:
            break
        b = np.frombuffer(buf, dtype=np.uint8)
        q = np.flatnonzero(b == 34)
        bsm = b == 92
        if q.size and (bs_carry or bsm.any()):
            idx = np.arange(len(b), dtype=np.int64)
            last_non = np.maximum.accumulate(np.where(bsm, -1, idx))
            prev = q - 1
            run = np.where(prev >= 0, prev - last_non[np.maximum(prev, 0)], 0)
            run = run + np.where((prev < 0) | (last_non[np.maximum(prev, 0)] < 0), bs_carry, 0)
            q = q[run % 2 == 0]
        if bsm[-1]:
            tail = len(b) - 1 - int(np.flatnonzero(~bsm)[-1]) if (~bsm).any() else len(b) + bs_carry
            bs_carry = tail % 2
        else:
            bs_carry = 0
        s = np.flatnonzero(_STRUCT[b])
        inside = (np.searchsorted(q, s) % 2 == 1) ^ in_str
        s = s[~inside]
        delta = _DELTA[b[s]]
        after = depth + np.cumsum(delta)
        before = after - delta
        ch = b[s]
        starts.append(s[(ch == 123) & (before == label_depth)] + pos)
        ends.append(s[(ch == 125) & (after == label_depth)] + pos)
        if form == "dict":
            opens.append(s[(ch == 91) & (before == 2)] + pos)
        if len(after):
            depth = int(after[-1])
        in_str = bool((len(q) % 2 == 1) ^ in_str)
        pos += len(b)
        if depth <= 0 and len(after):
            break
    st = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    en = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    if len(st) != len(en) or (len(st) and np.any(en < st)):
        return None
    op = np.concatenate(opens) if opens else np.zeros(0, np.int64)
    return _Scan(st, en, op, form)


def _keys(fh: BinaryIO, opens: np.ndarray) -> list[str]:
    import json

    out = []
    for p in opens.tolist():
        lo = max(0, p - 4096)
        fh.seek(lo)
        window = fh.read(p - lo)
        m = _KEY_BEFORE.search(window)
        if not m:
            raise _Unsupported("file key not found")
        out.append(json.loads(b'"' + m.group(1) + b'"'))
    return out


def _chunk_bytes(fh: BinaryIO, starts: np.ndarray, ends: np.ndarray) -> bytes:
    base = int(starts[0])
    fh.seek(base)
    buf = np.frombuffer(bytearray(fh.read(int(ends[-1]) - base + 1)), dtype=np.uint8)
    buf[(buf == 10) | (buf == 13)] = 32
    gs = ends[:-1] + 1 - base
    ge = starts[1:] - base
    lengths = ge - gs
    if len(lengths):
        from deepen_export.model import _ranges

        buf[_ranges(gs, lengths)] = 32
        buf[gs] = 10
    return buf.tobytes()


def iter_label_chunks(
    path: str | os.PathLike[str], *, batch_size: int = 100_000
) -> Iterator[Chunk]:
    """Yield the labels of a response file as newline-delimited JSON, ``batch_size`` at a time."""
    with open(path, "rb") as fh:
        scan = _scan(fh)
        if scan is None:
            yield from _iter_fallback(path, batch_size)
            return
        keys_all: list[str] | None = None
        owner = None
        if scan.form == "dict":
            keys_all = _keys(fh, scan.array_opens)
            owner = np.searchsorted(scan.array_opens, scan.starts) - 1
        n = len(scan.starts)
        if n == 0:
            yield Chunk(b"", [] if keys_all is not None else None, keys_all or [])
            return
        for a in range(0, n, batch_size):
            b = min(n, a + batch_size)
            data = _chunk_bytes(fh, scan.starts[a:b], scan.ends[a:b])
            keys = None
            listed: list[str] = []
            if keys_all is not None and owner is not None:
                keys = [keys_all[i] for i in owner[a:b].tolist()]
                lo = 0 if a == 0 else int(owner[a - 1]) + 1
                hi = len(keys_all) if b == n else int(owner[b - 1]) + 1
                listed = keys_all[lo:hi]
            yield Chunk(data, keys, listed)


def _iter_fallback(path: str | os.PathLike[str], batch_size: int) -> Iterator[Chunk]:
    import orjson

    from deepen_export.parse import _Ctx, _iter_response, load_json

    obj = load_json(path)
    ctx = _Ctx()
    labels = list(_iter_response(obj, ctx, os.fspath(path)))
    listed = [f for _, f in ctx.listed_files]
    for a in range(0, max(len(labels), 1), batch_size):
        part = labels[a : a + batch_size]
        yield Chunk(b"\n".join(orjson.dumps(x) for x in part), None, listed if a == 0 else [])


def _read_ndjson(data: bytes) -> pa.Table:
    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=1 << 22))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pj.read_json(
            io.BytesIO(data), read_options=pj.ReadOptions(block_size=max(len(data), 1 << 20) + 1)
        )


def try_parse_file(
    path: str | os.PathLike[str],
    *,
    dataset_id: str = "",
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
) -> LabelSet | None:
    """Parse a labels file through Arrow, or return ``None`` when it needs the general path."""
    try:
        with open(path, "rb") as fh:
            scan = _scan(fh)
            if scan is None:
                return None
            keys = None
            listed: list[str] = []
            if scan.form == "dict":
                listed = _keys(fh, scan.array_opens)
                owner = np.searchsorted(scan.array_opens, scan.starts) - 1
                keys = [listed[i] for i in owner.tolist()]
            if len(scan.starts) == 0:
                table = pa.table({})
            else:
                table = _read_ndjson(_chunk_bytes(fh, scan.starts, scan.ends))
        return from_arrow_labels(
            table,
            keys=keys,
            listed=listed,
            dataset_id=dataset_id,
            categories=categories,
            files=files,
            path=os.fspath(path),
        )
    except (
        _Unsupported,
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        pa.ArrowTypeError,
        KeyError,
        ValueError,
    ):
        return None


def parse_ndjson_chunk(chunk: Chunk, *, dataset_id: str = "", path: str | None = None) -> LabelSet:
    """One batch of :func:`iter_label_chunks` as a LabelSet (general path when Arrow cannot)."""
    if not chunk.data:
        return _general(b"", chunk, dataset_id, path)
    try:
        table = _read_ndjson(chunk.data)
        return from_arrow_labels(
            table, keys=chunk.keys, listed=chunk.listed, dataset_id=dataset_id, path=path
        )
    except (
        _Unsupported,
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        pa.ArrowTypeError,
        KeyError,
        ValueError,
    ):
        return _general(chunk.data, chunk, dataset_id, path)


def _general(data: bytes, chunk: Chunk, dataset_id: str, path: str | None) -> LabelSet:
    import orjson

    from deepen_export.parse import _assemble, _collect, _Ctx

    labels = []
    for i, line in enumerate(data.split(b"\n") if data else []):
        lab = orjson.loads(line) if line.strip() else None
        if isinstance(lab, dict) and chunk.keys is not None and "file_id" not in lab:
            lab["file_id"] = chunk.keys[i]
        labels.append(lab)
    ctx = _Ctx(dataset_id=dataset_id)
    ctx.listed_files = [(dataset_id, k) for k in chunk.listed]
    raw = _collect(labels, ctx)
    return _assemble(raw, ctx, categories=(), files=None, meta={"source": path} if path else {})


# ---------------------------------------------------------------------------------------


def _col(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def _strings(arr: pa.ChunkedArray | pa.Array | None, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    if arr is None:
        out[:] = ""
        return out
    arr = pc.fill_null(arr.cast(pa.string()), "")
    enc = (
        pc.dictionary_encode(arr).combine_chunks()
        if isinstance(arr, pa.ChunkedArray)
        else pc.dictionary_encode(arr)
    )
    dictionary = enc.dictionary.to_numpy(zero_copy_only=False)
    out[:] = dictionary[enc.indices.to_numpy()] if len(dictionary) else ""
    return out


def _unique_strings(arr: pa.ChunkedArray | None, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    if arr is None:
        out[:] = ""
        return out
    out[:] = pc.fill_null(arr.cast(pa.string()), "").to_numpy(zero_copy_only=False)
    return out


def _ints(arr: pa.ChunkedArray | None, n: int) -> np.ndarray:
    if arr is None:
        return np.full(n, -1, dtype=np.int64)
    if pa.types.is_floating(arr.type):
        arr = pc.cast(arr, pa.int64(), safe=False)
    elif not pa.types.is_integer(arr.type):
        raise _Unsupported("time/version column is not numeric")
    return pc.fill_null(arr, -1).to_numpy().astype(np.int64, copy=False)


def _attributes(arr: pa.ChunkedArray | None) -> dict[str, np.ndarray]:
    if arr is None or pa.types.is_null(arr.type):
        return {}
    if not pa.types.is_struct(arr.type):
        raise _Unsupported("attributes are not objects")
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    out = {}
    for i, f in enumerate(arr.type):
        child = arr.field(i)
        if child.null_count == len(child):
            continue
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            vals = child.to_numpy(zero_copy_only=False)
            col = np.empty(len(child), dtype=object)
            col[:] = vals
            if arr.null_count:
                col[~arr.is_valid().to_numpy(zero_copy_only=False)] = None
        elif (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
        ):
            col = np.empty(len(child), dtype=object)
            col[:] = child.to_pylist()
            if arr.null_count:
                col[~arr.is_valid().to_numpy(zero_copy_only=False)] = None
        else:
            raise _Unsupported("nested attribute values")
        if all(v is None for v in col):
            continue
        out[f.name] = col
    return out


def _list_offsets(arr: pa.Array) -> np.ndarray:
    off = arr.offsets.to_numpy().astype(np.int64)
    return off - off[0]


def _ragged_polygons(arr: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = arr.combine_chunks()
    if a.null_count or not pa.types.is_list(a.type):
        raise _Unsupported("missing polygons")
    rings = a.flatten()
    if not pa.types.is_list(rings.type) or rings.null_count:
        raise _Unsupported("polygons are not lists of rings")
    pts = rings.flatten()
    if not pa.types.is_list(pts.type) or pts.null_count:
        raise _Unsupported("rings are not lists of points")
    vals = pts.flatten()
    if vals.null_count or not (pa.types.is_floating(vals.type) or pa.types.is_integer(vals.type)):
        raise _Unsupported("non-numeric coordinates")
    off, roff, poff = _list_offsets(a), _list_offsets(rings), _list_offsets(pts)
    if np.any(np.diff(poff) != 2) or np.any(np.diff(roff) == 0) or np.any(np.diff(off) == 0):
        raise _Unsupported("points are not [x, y] or rings are empty")
    coords = vals.to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(-1, 2)
    if not np.isfinite(coords).all():
        raise _Unsupported("non-finite coordinates")
    return off, roff, coords


def _open_rings(roff: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = roff[:-1], roff[1:] - 1
    closed = (ends > starts) & np.all(coords[starts] == coords[np.maximum(ends, 0)], axis=1)
    if not closed.any():
        return roff, coords
    keep = np.ones(len(coords), dtype=bool)
    keep[ends[closed]] = False
    counts = np.diff(roff) - closed
    new = np.zeros(len(roff), dtype=np.int64)
    np.cumsum(counts, out=new[1:])
    return new, coords[keep]


def from_arrow_labels(
    table: pa.Table,
    *,
    keys: Sequence[str] | None = None,
    listed: Sequence[str] = (),
    dataset_id: str = "",
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
    path: str | None = None,
) -> LabelSet:
    """Arrow table of Deepen labels (one row per label) -> LabelSet; raises when unsupported."""
    from deepen_export.parse import _Ctx, _frames_table, _order_categories, _ro

    n = table.num_rows
    file_id = _col(table, "file_id")
    if keys is not None:
        key_arr = pa.array(keys, pa.string())
        file_id = (
            pc.coalesce(file_id.combine_chunks().cast(pa.string()), key_arr)
            if file_id is not None
            else key_arr
        )
    if n and (file_id is None or file_id.null_count):
        raise _Unsupported("labels without file_id")
    lt_col = _col(table, "label_type")
    cat_col = _col(table, "label_category_id")
    if n and (lt_col is None or cat_col is None or lt_col.null_count or cat_col.null_count):
        raise _Unsupported("labels without label_type or category")
    lt = _strings(lt_col, n)
    types = set(lt.tolist())
    if not types <= _FAST_TYPES:
        raise _Unsupported(f"label types {types - _FAST_TYPES}")
    cats_raw = _strings(cat_col, n)
    if n and np.any(cats_raw == ""):
        raise _Unsupported("empty category")
    ds_col = _col(table, "dataset_id")
    ds = _strings(ds_col, n)
    if dataset_id:
        ds[ds == ""] = dataset_id
    sensor = _strings(_col(table, "sensor_id"), n)
    fid = _unique_strings(
        file_id
        if isinstance(file_id, pa.ChunkedArray) or file_id is None
        else pa.chunked_array([file_id]),
        n,
    )
    if n and np.any(fid == ""):
        raise _Unsupported("empty file_id")

    ctx = _Ctx(dataset_id=dataset_id)
    if n:
        joined = pc.binary_join_element_wise(
            pa.array(ds, pa.string()),
            pa.array(fid, pa.string()),
            pa.array(sensor, pa.string()),
            "\x1f",
        )
        enc = pc.dictionary_encode(joined)
        prov = enc.indices.to_numpy().astype(np.int64)
        ctx.frame_keys = {
            tuple(k.split("\x1f")): i for i, k in enumerate(enc.dictionary.to_pylist())
        }
    else:
        prov = np.zeros(0, dtype=np.int64)
    ctx.listed_files = [(dataset_id, k) for k in listed]
    used = set(cats_raw.tolist())
    cats = _order_categories(used, list(dict.fromkeys(categories)))
    cat_index = {c: i for i, c in enumerate(cats)}
    cat_codes = (
        np.array([cat_index[c] for c in cats_raw.tolist()], dtype=np.int32)
        if n
        else np.zeros(0, np.int32)
    )
    frames, remap = _frames_table(ctx, files)
    frame_rows = remap[prov] if n else prov

    common_all = {
        "frame": frame_rows,
        "category": cat_codes,
        "label_id": _unique_strings(_col(table, "label_id"), n),
        "stage": _strings(_col(table, "stage_id"), n),
        "label_set": _strings(_col(table, "label_set_id"), n),
        "labeller": _strings(_col(table, "labeller_email"), n),
        "create_time": _ints(_col(table, "create_time_millis"), n),
        "update_time": _ints(_col(table, "update_time_millis"), n),
        "version": _ints(_col(table, "version"), n),
    }
    attrs_tbl = _col(table, "attributes")

    def subset(mask: np.ndarray) -> tuple[dict[str, Any], pa.Table]:
        idx = np.flatnonzero(mask)
        sub = table.take(pa.array(idx))
        cols = {k: v[idx] for k, v in common_all.items()}
        cols["attributes"] = _attributes(_col(sub, "attributes")) if attrs_tbl is not None else {}
        return cols, sub

    tables: dict[str, Any] = {}
    m = lt == "box"
    if m.any():
        cols, sub = subset(m)
        box = sub.column("box").combine_chunks() if "box" in sub.column_names else None
        if box is None or box.null_count or not pa.types.is_list(box.type):
            raise _Unsupported("boxes without 'box'")
        if np.any(np.diff(_list_offsets(box)) != 4):
            raise _Unsupported("box is not [x, y, w, h]")
        xywh = box.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
        if not np.isfinite(xywh).all() or np.any(xywh[:, 2:] < 0):
            raise _Unsupported("non-finite or negative box")
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        tables["boxes"] = Boxes.from_columns(**cols, xyxy=xyxy)
    m = lt == "polygon"
    if m.any():
        cols, sub = subset(m)
        if "polygons" not in sub.column_names:
            raise _Unsupported("polygon without 'polygons'")
        off, roff, coords = _ragged_polygons(sub.column("polygons"))
        roff, coords = _open_rings(roff, coords)
        tables["polygons"] = Polygons.from_columns(
            **cols, offsets=off, ring_offsets=roff, coords=coords
        )
    m = lt == "lane"
    if m.any():
        cols, sub = subset(m)
        if "polygons" not in sub.column_names:
            raise _Unsupported("lane without 'polygons'")
        off, poff, coords = _ragged_polygons(sub.column("polygons"))
        lane_type = np.empty(int(m.sum()), dtype=object)
        lane_type[:] = "lane"
        tables["polylines"] = Polylines.from_columns(
            **cols, label_type=lane_type, offsets=off, part_offsets=poff, coords=coords
        )
    m = lt == "3d_bbox"
    if m.any():
        cols, sub = subset(m)
        if "three_d_bbox" not in sub.column_names:
            raise _Unsupported("3d_bbox without three_d_bbox")
        b = sub.column("three_d_bbox").combine_chunks()
        if b.null_count:
            raise _Unsupported("missing three_d_bbox")
        names = {f.name for f in b.type}

        def field(name: str) -> np.ndarray:
            if name not in names:
                raise _Unsupported(f"three_d_bbox.{name} missing")
            c = b.field(name)
            if c.null_count:
                raise _Unsupported(f"three_d_bbox.{name} null")
            return c.to_numpy(zero_copy_only=False).astype(np.float64)

        center = np.stack([field("cx"), field("cy"), field("cz")], axis=1)
        size = np.stack([field("l"), field("w"), field("h")], axis=1)
        k = len(center)
        quat = np.full((k, 4), np.nan)
        if "quaternion" in names:
            qa = b.field("quaternion")
            valid = qa.is_valid().to_numpy(zero_copy_only=False)
            for j, comp in enumerate("xyzw"):
                c = qa.field(comp)
                vals = (
                    pc.fill_null(c.cast(pa.float64()), np.nan)
                    .to_numpy(zero_copy_only=False)
                    .astype(np.float64)
                )
                quat[:, j] = np.where(valid, vals, np.nan)
        missing = np.isnan(quat).any(axis=1)
        if missing.any():
            if "rot_z" not in names:
                raise _Unsupported("no rotation")
            rz = (
                pc.fill_null(b.field("rot_z").cast(pa.float64()), np.nan)
                .to_numpy(zero_copy_only=False)
                .astype(np.float64)
            )
            if np.isnan(rz[missing]).any():
                raise _Unsupported("no rotation")
            quat[missing, 2] = np.sin(rz[missing] / 2)
            quat[missing, 3] = np.cos(rz[missing] / 2)
            quat[missing, :2] = 0.0
        if not (np.isfinite(center).all() and np.isfinite(size).all() and np.isfinite(quat).all()):
            raise _Unsupported("non-finite cuboid")
        if np.any(np.abs(np.linalg.norm(quat, axis=1) - 1.0) > 1e-6):
            raise _Unsupported("quaternion not normalised")
        tables["cuboids"] = Cuboids.from_columns(
            **cols, center=center, size=size, quat=quat, frame_of_reference="world"
        )
    m = lt == "scene"
    if m.any():
        cols, _ = subset(m)
        tables["scenes"] = Scenes.from_columns(**cols)
    for kind, t in list(tables.items()):
        tables[kind] = dataclasses.replace(t, frame=_ro(np.asarray(t.frame, dtype=np.int64).copy()))
    return LabelSet(
        frames=frames,
        categories=tuple(cats),
        meta={"source": path} if path else {},
        **tables,
    )
