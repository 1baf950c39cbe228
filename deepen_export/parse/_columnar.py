"""The columnar path: Arrow columns of label objects -> LabelSet, one short function per kind."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deepen_export.geometry import spatial
from deepen_export.model import (
    KIND_OF_LABEL_TYPE,
    Boxes,
    Cuboids,
    LabelSet,
    Polygons,
    Polylines,
    Scenes,
    Table,
    _ranges,
    parse_track,
)
from deepen_export.parse._arrays import (
    Coded,
    dictionary,
    int64s,
    mask,
    pool,
    scalar,
    strings,
    unique_words,
    values,
)
from deepen_export.parse._assemble import (
    DEEPEN_FIELDS,
    _Ctx,
    _order_categories,
    build_labelset,
    is_str_column,
)
from deepen_export.parse._general import parse_general
from deepen_export.parse._scan import Chunk, _read_ndjson, _Unsupported, _whole_file, read_batched
from deepen_export.parse._shapes import load_json

_GO_GENERAL = (
    _Unsupported,
    pa.ArrowInvalid,
    pa.ArrowNotImplementedError,
    pa.ArrowTypeError,
    pa.ArrowException,  # e.g. "Wrapping ... failed" on invalid UTF-8: the general path names it
    KeyError,
    ValueError,
    IndexError,
)
"""What makes the columnar path hand a file or batch to the general path (same result)."""


def try_parse_file(
    path: str | os.PathLike[str],
    *,
    dataset_id: str = "",
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
) -> LabelSet | None:
    """Parse a labels file through Arrow, or return ``None`` when it needs the general path."""
    try:
        table = read_batched(path)
        keys: list[str] | None = None
        listed: list[str] = []
        if table is None:  # not a plain labels array, or Arrow refused a line: label by label
            chunk = _whole_file(path)
            if chunk is None:
                return None
            keys, listed = chunk.keys, chunk.listed
            table = _read_ndjson(chunk.data) if len(chunk.data) else pa.table({})
            del chunk  # the file's bytes, before the columns are built (peak memory)
        return from_arrow_labels(
            table,
            keys=keys,
            listed=listed,
            dataset_id=dataset_id,
            categories=categories,
            files=files,
            path=os.fspath(path),
        )
    except _GO_GENERAL:
        return None


def parse_ndjson_chunk(chunk: Chunk, *, dataset_id: str = "", path: str | None = None) -> LabelSet:
    """One batch of :func:`iter_label_chunks` as a LabelSet (general path when Arrow cannot)."""
    if not len(chunk.data) or chunk.general:
        return _general(bytes(chunk.data), chunk, dataset_id, path)
    try:
        table = _read_ndjson(chunk.data)
        return from_arrow_labels(
            table, keys=chunk.keys, listed=chunk.listed, dataset_id=dataset_id, path=path
        )
    except _GO_GENERAL:
        return _general(bytes(chunk.data), chunk, dataset_id, path)


def _general(data: bytes, chunk: Chunk, dataset_id: str, path: str | None) -> LabelSet:
    labels = []
    for i, line in enumerate(data.split(b"\n") if data else []):
        # load_json: invalid UTF-8 or JSON is one ParseError naming the file, as for a whole file
        lab = load_json(line, path=path) if line.strip() else None
        if isinstance(lab, dict) and chunk.keys is not None and "file_id" not in lab:
            lab["file_id"] = chunk.keys[i]
        labels.append(lab)
    ctx = _Ctx(dataset_id=dataset_id)
    ctx.listed_files = [(dataset_id, k) for k in chunk.listed]
    return parse_general(labels, ctx, path=path)


def _col(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def _unique_strings(arr: pa.ChunkedArray | None, n: int) -> np.ndarray:
    if arr is None:
        out = np.empty(n, dtype=object)
        out[:] = ""
        return out
    return strings(pc.fill_null(arr.cast(pa.string()), scalar("")))


def _ints(arr: pa.ChunkedArray | None, n: int) -> np.ndarray:
    if arr is None:
        return np.full(n, -1, dtype=np.int64)
    if pa.types.is_floating(arr.type):
        inside = pc.and_(pc.greater_equal(arr, scalar(-(2.0**63))), pc.less(arr, scalar(2.0**63)))
        if pc.all(inside).as_py() is False:  # nulls are skipped
            # inf, NaN or past int64: the general path's _int makes those -1, one value at a time
            raise _Unsupported("time/version number outside int64")
        arr = pc.cast(arr, pa.int64(), safe=False)
    elif not pa.types.is_integer(arr.type):
        raise _Unsupported("time/version column is not numeric")
    elif arr.type == pa.uint64() and (pc.max(arr).as_py() or 0) >= 2**63:
        raise _Unsupported("time/version number outside int64")
    else:
        arr = pc.cast(arr, pa.int64())
    return values(pc.fill_null(arr, scalar(-1))).astype(np.int64, copy=False)


def _attributes(arr: pa.ChunkedArray | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per attribute: its values (object array, ``None`` where absent) and where it is present."""
    if arr is None or pa.types.is_null(arr.type):
        return {}
    if not pa.types.is_struct(arr.type):
        raise _Unsupported("attributes are not objects")
    arr = arr.combine_chunks(memory_pool=pool()) if isinstance(arr, pa.ChunkedArray) else arr
    out = {}
    for i, f in enumerate(arr.type):
        child = arr.field(i)
        present = child.is_valid()
        if arr.null_count:
            present = pc.and_(present, arr.is_valid())
        on = mask(present)
        if not on.any():
            continue
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            # attribute values repeat: one Python string per distinct value, not per label
            enc = pc.dictionary_encode(child, null_encoding="encode")
            lookup = np.empty(len(enc.dictionary), dtype=object)
            lookup[:] = enc.dictionary.to_pylist()
            col = lookup[values(enc.indices)]
        elif (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
        ):
            if pa.types.is_floating(f.type) and _has_integral(child):
                # pyarrow made JSON's 2 and 0.5 both doubles: only the general path keeps the 2
                raise _Unsupported("attribute mixes integer and float values")
            col = np.empty(len(child), dtype=object)
            col[:] = child.to_pylist()
        else:
            raise _Unsupported("nested attribute values")
        col[~on] = None
        out[f.name] = (col, on)
    return out


def _has_integral(child: pa.Array) -> bool:
    vals = values(child.drop_null())
    return bool(np.any(np.isfinite(vals) & (vals == np.round(vals))))


def _list_offsets(arr: pa.Array) -> np.ndarray:
    off = values(arr.offsets).astype(np.int64)
    return off - off[0]


def _ragged_polygons(
    arr: pa.ChunkedArray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = arr.combine_chunks(memory_pool=pool())
    if not pa.types.is_list(a.type) or not pa.types.is_list(a.type.value_type):
        raise _Unsupported("polygons are not lists of rings")
    if a.null_count and not mask(a.is_valid())[idx].all():
        raise _Unsupported("missing polygons")
    rings = a.values
    pts = rings.values
    if not pa.types.is_list(pts.type) or rings.null_count or pts.null_count:
        raise _Unsupported("rings are not lists of points")
    vals = pts.values
    if vals.null_count or not (pa.types.is_floating(vals.type) or pa.types.is_integer(vals.type)):
        raise _Unsupported("non-numeric coordinates")
    o = values(a.offsets).astype(np.int64)
    r = values(rings.offsets).astype(np.int64)
    p = values(pts.offsets).astype(np.int64)
    ring_cnt = o[idx + 1] - o[idx]
    whole = (
        len(idx) > 0
        and o[idx[0]] == 0
        and o[idx[-1] + 1] == len(r) - 1
        and bool(np.all(o[idx[1:]] == o[idx[:-1] + 1]))
        and r[0] == 0
        and bool(np.array_equal(p, np.arange(len(p), dtype=np.int64) * 2))
    )
    if whole:
        # the rows cover every ring of the column: use Arrow's buffers as they are
        pt_cnt = np.diff(r)
        if np.any(pt_cnt == 0) or np.any(ring_cnt == 0) or r[-1] * 2 != len(vals):
            raise _Unsupported("rings are empty")
        coords = values(vals).astype(np.float64, copy=False).reshape(-1, 2)
        if not np.isfinite(coords).all():
            raise _Unsupported("non-finite coordinates")
        off = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(ring_cnt, out=off[1:])
        return off, r.copy(), coords
    ring_sel = _ranges(o[idx], ring_cnt)
    pt_cnt = r[ring_sel + 1] - r[ring_sel]
    pt_sel = _ranges(r[ring_sel], pt_cnt)
    if np.any(p[pt_sel + 1] - p[pt_sel] != 2) or np.any(pt_cnt == 0) or np.any(ring_cnt == 0):
        raise _Unsupported("points are not [x, y] or rings are empty")
    v = values(vals).astype(np.float64, copy=False)
    first = p[pt_sel]
    coords = np.stack([v[first], v[first + 1]], axis=1)
    if not np.isfinite(coords).all():
        raise _Unsupported("non-finite coordinates")
    off = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(ring_cnt, out=off[1:])
    roff = np.zeros(len(ring_sel) + 1, dtype=np.int64)
    np.cumsum(pt_cnt, out=roff[1:])
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
    n = table.num_rows
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        # Arrow's kernels let go of the GIL: the common columns are read in a second thread
        # while this one numbers the frames and categories
        job = worker.submit(_common_columns, table, n)
        fid_words, fid_codes = _file_ids(table, keys, n)
        lt_words, lt_codes, cat_words, cat_codes = _types_and_categories(table, n)
        ctx = _Ctx(dataset_id=dataset_id)
        ctx.listed_files = [(dataset_id, k) for k in listed]
        prov = _frame_keys(table, fid_words, fid_codes, n, ctx)
        cats = _order_categories(set(cat_words.tolist()), list(dict.fromkeys(categories)))
        cat_index = {c: i for i, c in enumerate(cats)}
        remap = np.array([cat_index[c] for c in cat_words.tolist()], dtype=np.int32)
        codes = remap[cat_codes] if len(remap) else np.zeros(0, dtype=np.int32)
        attrs = _attributes(_col(table, "attributes"))
        common = {"frame": prov, "category": codes, **job.result()}
    code_of = {t: i for i, t in enumerate(lt_words.tolist())}
    tables: dict[str, Table] = {}
    for label_type, build in _KIND_PARSERS.items():
        if label_type not in code_of:
            continue
        idx = np.flatnonzero(lt_codes == code_of[label_type])
        cols: dict[str, Any] = {k: v[idx] for k, v in common.items()}
        cols["attributes"] = {k: v[idx] for k, (v, on) in attrs.items() if on[idx].any()}
        tables[KIND_OF_LABEL_TYPE[label_type]] = build(table, idx, cols)
    return build_labelset(tables, ctx, cats, files, path)


# -- the columns every label has ----------------------------------------------------------
# Strings that repeat (file, type, category, sensor, stage...) stay dictionary-encoded until
# the model's object columns are made: one Python string per distinct value, codes in numpy.


def _file_ids(table: pa.Table, keys: Sequence[str] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``file_id`` of every label as (distinct ids, code per label); a dict-shaped response
    gives it by key."""
    file_id = _col(table, "file_id")
    if keys is not None:
        key_arr = pa.array(keys, pa.string())
        file_id = (
            pc.coalesce(file_id.combine_chunks().cast(pa.string()), key_arr)
            if file_id is not None
            else pa.chunked_array([key_arr])
        )
    if n and (file_id is None or file_id.null_count):
        raise _Unsupported("labels without file_id")
    words, codes = dictionary(file_id, n)
    if "" in set(words.tolist()):
        raise _Unsupported("empty file_id")
    return words, codes


def _types_and_categories(
    table: pa.Table, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lt_col = _col(table, "label_type")
    cat_col = _col(table, "label_category_id")
    if n and (lt_col is None or cat_col is None or lt_col.null_count or cat_col.null_count):
        raise _Unsupported("labels without label_type or category")
    lt_words, lt_codes = dictionary(lt_col, n)
    types = set(lt_words.tolist())
    if not types <= _FAST_TYPES:
        raise _Unsupported(f"label types {types - _FAST_TYPES}")
    cat_words, cat_codes = dictionary(cat_col, n)
    if "" in set(cat_words.tolist()):
        raise _Unsupported("empty category")
    return lt_words, lt_codes, cat_words, cat_codes


def _frame_keys(
    table: pa.Table, fid_words: np.ndarray, fid_codes: np.ndarray, n: int, ctx: _Ctx
) -> np.ndarray:
    """Provisional frame number of every label, registering the frame keys in ``ctx``.

    A frame is a (dataset, file, sensor) triple: numbered in order of first appearance, as the
    general path's ``ctx.frame`` does, from the three dictionary codes (no per-label strings).
    """
    if not n:
        return np.zeros(0, dtype=np.int64)
    ds_words, ds_codes = dictionary(_col(table, "dataset_id"), n)
    if ctx.dataset_id:
        ds_words, ds_codes = unique_words(
            [w or ctx.dataset_id for w in ds_words.tolist()], ds_codes
        )
    s_words, s_codes = dictionary(_col(table, "sensor_id"), n)
    nf, ns = len(fid_words), len(s_words)
    pair = ds_codes * nf + fid_codes  # below n**2: fits while n < 2**31
    if len(ds_words) * nf * ns >= 2**62:
        pair = np.unique(pair, return_inverse=True)[1].reshape(-1)
    enc = pc.dictionary_encode(int64s(pair * ns + s_codes))
    prov = values(enc.indices).astype(np.int64)
    first = np.empty(len(enc.dictionary), dtype=np.int64)
    first[prov[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)  # the earliest row wins
    ctx.frame_keys = {
        key: i
        for i, key in enumerate(
            zip(
                ds_words[ds_codes[first]].tolist(),
                fid_words[fid_codes[first]].tolist(),
                s_words[s_codes[first]].tolist(),
                strict=True,
            )
        )
    }
    return prov


def _common_columns(table: pa.Table, n: int) -> dict[str, np.ndarray | Coded]:
    """The track and the common label columns read from their declared Deepen fields
    (``Col.deepen``)."""
    label_id = _col(table, "label_id")
    lid = pc.fill_null(label_id.cast(pa.string()), scalar("")) if label_id is not None else None
    if lid is not None and n:
        m = pc.extract_regex(lid, r":\s*(?P<n>-?\d+)\s*$")
        try:
            number = pc.cast(pc.struct_field(m, "n"), pa.int64())
            track = values(pc.fill_null(number, scalar(-1))).astype(np.int64, copy=False)
        except pa.ArrowInvalid:  # a track number past int64: parse_track makes it -1
            track = parse_track(lid.to_pylist())
    else:
        track = np.full(n, -1, dtype=np.int64)
    cols: dict[str, np.ndarray | Coded] = {"track": track}
    for name, key in DEEPEN_FIELDS.items():
        if name == "label_id":  # one value per label: a dictionary would not pay
            cols[name] = strings(lid) if lid is not None else _unique_strings(None, n)
        else:
            arr = _col(table, key)
            # strings stay coded: each kind's table makes its own objects (``Coded[idx]``)
            cols[name] = Coded(*dictionary(arr, n)) if is_str_column(name) else _ints(arr, n)
    return cols


# -- one function per kind ----------------------------------------------------------------


def _box_table(table: pa.Table, idx: np.ndarray, cols: dict[str, Any]) -> Table:
    if "box" not in table.column_names:
        raise _Unsupported("boxes without 'box'")
    box = pc.take(table.column("box"), int64s(idx), memory_pool=pool()).combine_chunks(
        memory_pool=pool()
    )
    if box.null_count or not pa.types.is_list(box.type):
        raise _Unsupported("boxes without 'box'")
    if not _numeric(box.type.value_type):
        raise _Unsupported("box values are not numbers")
    if np.any(np.diff(_list_offsets(box)) != 4):
        raise _Unsupported("box is not [x, y, w, h]")
    xywh = values(box.flatten()).astype(np.float64).reshape(-1, 4)
    if not np.isfinite(xywh).all() or np.any(xywh[:, 2:] < 0):
        raise _Unsupported("non-finite or negative box")
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return Boxes.from_columns(**cols, xyxy=xyxy)


def _polygon_table(table: pa.Table, idx: np.ndarray, cols: dict[str, Any]) -> Table:
    if "polygons" not in table.column_names:
        raise _Unsupported("polygon without 'polygons'")
    off, roff, coords = _ragged_polygons(table.column("polygons"), idx)
    roff, coords = _open_rings(roff, coords)
    return Polygons.from_columns(**cols, offsets=off, ring_offsets=roff, coords=coords)


def _lane_table(table: pa.Table, idx: np.ndarray, cols: dict[str, Any]) -> Table:
    if "polygons" not in table.column_names:
        raise _Unsupported("lane without 'polygons'")
    off, poff, coords = _ragged_polygons(table.column("polygons"), idx)
    lane_type = np.empty(len(idx), dtype=object)
    lane_type[:] = "lane"
    return Polylines.from_columns(
        **cols, label_type=lane_type, offsets=off, part_offsets=poff, coords=coords
    )


def _scene_table(table: pa.Table, idx: np.ndarray, cols: dict[str, Any]) -> Table:
    return Scenes.from_columns(**cols)


def _cuboid_table(table: pa.Table, idx: np.ndarray, cols: dict[str, Any]) -> Table:
    if "three_d_bbox" not in table.column_names:
        raise _Unsupported("3d_bbox without three_d_bbox")
    b = pc.take(table.column("three_d_bbox"), int64s(idx), memory_pool=pool())
    b = b.combine_chunks(memory_pool=pool())
    if b.null_count:
        raise _Unsupported("missing three_d_bbox")
    center = np.stack([_number_field(b, k) for k in ("cx", "cy", "cz")], axis=1)
    size = np.stack([_number_field(b, k) for k in ("l", "w", "h")], axis=1)
    quat = _quaternions(b, len(center))
    missing = np.isnan(quat).any(axis=1)
    if missing.any():
        rz = _rot_z(b)
        if np.isnan(rz[missing]).any():
            raise _Unsupported("no rotation")
        quat[missing] = spatial.yaw_to_quat(rz[missing])
    if not (np.isfinite(center).all() and np.isfinite(size).all() and np.isfinite(quat).all()):
        raise _Unsupported("non-finite cuboid")
    if np.any(np.abs(np.linalg.norm(quat, axis=1) - 1.0) > 1e-6):
        raise _Unsupported("quaternion not normalised")
    return Cuboids.from_columns(
        **cols, center=center, size=size, quat=quat, frame_of_reference="world"
    )


_KIND_PARSERS: dict[str, Callable[[pa.Table, np.ndarray, dict[str, Any]], Table]] = {
    "box": _box_table,
    "polygon": _polygon_table,
    "lane": _lane_table,
    "3d_bbox": _cuboid_table,
    "scene": _scene_table,
}
"""Deepen ``label_type`` -> its table builder; any other type goes the general way."""
_FAST_TYPES = frozenset(_KIND_PARSERS)


def _numeric(type_: pa.DataType) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_))


def _floats(c: pa.Array) -> np.ndarray:
    return values(pc.fill_null(c.cast(pa.float64()), scalar(float("nan")))).astype(float)


def _number_field(b: pa.StructArray, name: str) -> np.ndarray:
    if b.type.get_field_index(name) < 0:
        raise _Unsupported(f"three_d_bbox.{name} missing")
    c = b.field(name)
    if not _numeric(c.type):
        raise _Unsupported(f"three_d_bbox.{name} is not a number")
    if c.null_count:
        raise _Unsupported(f"three_d_bbox.{name} null")
    return values(c).astype(np.float64)


def _quaternions(b: pa.StructArray, k: int) -> np.ndarray:
    """``(k, 4)`` quaternions where ``three_d_bbox.quaternion`` is given, NaN elsewhere."""
    quat = np.full((k, 4), np.nan)
    if b.type.get_field_index("quaternion") < 0:
        return quat
    qa = b.field("quaternion")
    valid = mask(qa.is_valid())
    for j, comp in enumerate("xyzw"):
        c = qa.field(comp)
        if not _numeric(c.type):
            raise _Unsupported("quaternion component is not a number")
        if (valid & ~mask(c.is_valid())).any():
            raise _Unsupported("quaternion without all of x, y, z, w")
        quat[:, j] = np.where(valid, _floats(c), np.nan)
    return quat


def _rot_z(b: pa.StructArray) -> np.ndarray:
    if b.type.get_field_index("rot_z") < 0:
        raise _Unsupported("no rotation")
    if not _numeric(b.field("rot_z").type):
        raise _Unsupported("rot_z is not a number")
    return _floats(b.field("rot_z"))
