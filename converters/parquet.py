"""(Geo)Parquet for analytics: typed tables that DuckDB, Polars, Spark and pandas read directly.

The tables and their columns are described in :mod:`deepen_export.arrow` and the README ("Parquet for analytics").
Two layouts:

``layout="files"`` (default)
    ``dest/labels.parquet``, ``dest/frames.parquet`` and, when present,
    ``point_segmentation.parquet``, ``masks2d.parquet``, ``poses.parquet``, ``cameras.parquet``,
    plus ``report.json``. The whole folder is replaced atomically.
``layout="hive"``
    A Hive-partitioned dataset: ``dest/labels/dataset_id=<id>/label_type=<type>/part-0.parquet``
    and ``dest/<table>/dataset_id=<id>/part-0.parquet`` for the others; reports go to
    ``dest/_reports/``. A write replaces the partitions of the datasets it writes (every table,
    every label type of those datasets) and leaves other datasets untouched, so datasets can be
    exported independently and in parallel into one folder.

``layout="delta"``
    Delta Lake tables ``dest/<table>/`` partitioned by ``dataset_id``, through delta-rs. A write
    replaces the rows of its datasets with one transaction per table (frames first, labels
    last); ``dest/_deepen/commit.json``, written last, names the table versions of the last
    complete export, which :func:`read` pins. A failed export undoes the tables it committed
    (a new commit with those datasets' previous rows); a killed one is undone by the next
    write, which finds its record in ``dest/_deepen/pending/``.

``dest`` is a local path or any URI pyarrow understands (``s3://bucket/labels``,
``gs://bucket/labels``, ``s3://bucket/x?endpoint_override=host:port&scheme=http``), or a path
with ``filesystem=`` a pyarrow or fsspec filesystem. Writes go to a staging location first
(locally a hidden folder inside ``dest``, renamed into place; on object stores a ``_staging/``
prefix whose objects are then moved, each object replaced whole), so a write that fails
before its commit changes nothing and readers never see a half-written file. On object stores
the commit of the plain layouts is a series of moves: meanwhile (and after a commit that failed
or was killed part-way, until the next write of that dataset) a reader can see some of the
dataset's tables or label types new and others old; a killed write's ``_staging/<id>/`` is
removed by the next write once :data:`STAGING_STALE_AFTER` seconds passed untouched.

Files are zstd-compressed, written with row groups of ``row_group_size`` rows (and per point rows
of point segmentation in groups of 1 Mi), and carry GeoParquet 1.1 ``geo`` metadata with
``crs: null`` (image pixels have no CRS; omitting ``crs`` would claim lon/lat, and DuckDB 2.0 reads
``null`` fine) and a ``deepen_export`` JSON key.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"], dataset_id=["ds"]),
...               categories=("car",),
...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"],
...                                        xyxy=[[1, 2, 3, 4]]))
>>> out = tempfile.mkdtemp() + "/labels"
>>> write(ls, out).written["labels"]
1
>>> read(out) == ls
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from converters._base import OnUnsupported, apply_policy, atomic_dir
from deepen_export import arrow
from deepen_export._progress import progress
from deepen_export.errors import ConversionError
from deepen_export.model import KIND_SPECS, LABEL_KINDS, Frames, Issue, LabelSet, natural_key
from deepen_export.parse._assemble import _order_categories
from deepen_export.report import Report

__all__ = ["WriteAgain", "read", "write", "write_stream"]

FORMAT = "parquet"
Layout = Literal["files", "hive", "delta"]

_ROW_GROUPS = {"point_segmentation": 1 << 20, "pointclouds": 1 << 20, "masks2d": 64}


# ---------------------------------------------------------------------------------------
# filesystems


_FOLDED_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?=[^/])")


def _resolve(dest: Any, filesystem: Any) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):  # an fsspec filesystem
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
        path = str(dest)
        if "://" in path:
            path = path.split("://", 1)[1]
        return filesystem, path.rstrip("/")
    text = os.fspath(dest) if isinstance(dest, os.PathLike) else str(dest)
    if isinstance(dest, PurePath):  # pathlib folds "s3://b/k" into "s3:/b/k": undo that
        text = _FOLDED_URI.sub(r"\1://", text)
    if "://" in text and not text.startswith("file://"):
        fs, path = pafs.FileSystem.from_uri(text)
        return fs, path.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://") :]
    return pafs.LocalFileSystem(), Path(text).absolute().as_posix()


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def _files_under(fs: pafs.FileSystem, root: str) -> list[str]:
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [root]
    sel = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(sel) if i.type == pafs.FileType.File)


def _quote(value: str) -> str:
    return quote(value, safe="")


# ---------------------------------------------------------------------------------------
# the sink: one ParquetWriter per output file, metadata completed on close


@dataclass
class _File:
    table: str
    writer: pq.ParquetWriter
    stream: Any
    schema: pa.Schema
    rows: int = 0
    geo: arrow.GeoSummary | None = None
    # rows waiting to fill a row group: written in whole groups, so slices give one table's bytes
    pending: list[pa.Table] = field(default_factory=list)
    held: int = 0
    started: bool = False


@dataclass
class _Sink:
    fs: pafs.FileSystem
    root: str
    layout: Layout
    compression: str
    row_group_size: int
    attribute_columns: bool
    dataset_id: str | None
    report: Report
    pointclouds: bool = False
    files: dict[str, _File] = field(default_factory=dict)
    categories: dict[str, None] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    keys: dict[str, dict[str, None]] = field(default_factory=dict)
    attribute_types: dict[str, pa.DataType] | None = None
    frames_seen: set[str] = field(default_factory=set)
    datasets: dict[str, None] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    meta_source: dict[str, Any] = field(default_factory=dict)
    frame_of_reference: str | None = None
    pool: Executor | None = None  # builds label slices (both cores)
    io: Executor | None = None  # one thread: encodes and writes row groups, in order
    queued: deque[Future[None]] = field(default_factory=deque)

    # -- batches ------------------------------------------------------------------------
    def add(self, labels: LabelSet) -> None:
        labels = self._fill_dataset_id(labels)
        self.categories.update(dict.fromkeys(labels.categories))
        if not self.meta_source:
            self.meta_source = dict(labels.meta)
        if len(labels.cuboids):
            fr = labels.cuboids.frame_of_reference
            if self.frame_of_reference not in (None, fr):
                raise ConversionError(
                    f"cuboids in frame {fr!r} after cuboids in {self.frame_of_reference!r}; "
                    "write them to separate outputs",
                    format=FORMAT,
                )
            self.frame_of_reference = fr
        self._update_encodings(labels)
        for kind, ks in arrow.attribute_keys(labels).items():
            self.keys.setdefault(kind, {}).update(dict.fromkeys(ks))
        if self.attribute_types is None:
            self.attribute_types = (
                arrow._typed_attribute_types(labels) if self.attribute_columns else {}
            )
        self._add_labels(labels)
        tables = arrow._other_tables(labels, self.pointclouds)
        frames = self._new_frames(tables["frames"])
        if frames is None:
            del tables["frames"]
        else:
            tables["frames"] = frames
        if not self.pointclouds and len(labels.pointclouds):
            reason = "point clouds are not written unless pointclouds=True (data, not labels)"
            fids = labels.frames.file_id[labels.pointclouds.frame]
            skipped = [Issue("skipped", reason, str(f), None, "pointclouds") for f in fids]
            self._report_later((2, 0, 0), skipped)
        for name, table in tables.items():
            for path, part in self._partitions(name, table):
                self._write(name, path, part)
            self.written[name] = self.written.get(name, 0) + len(table)
        self._flush()  # a batch ends its row groups: nothing is held back for the next

    def _add_labels(self, labels: LabelSet) -> None:
        """The ``labels`` rows, built slice by slice on the pool while earlier slices are written."""
        files = self.layout == "files"
        slices = arrow.label_slices(
            labels,
            self.encodings,
            self.attribute_types or {},
            row_group_size=self.row_group_size if files else None,
            pool=self.pool,
        )
        flags: dict[str, list[Any]] = {}
        parts = []
        for kind, table, f in slices:
            flags.setdefault(kind, []).append(f)
            self.kind = kind
            if files:
                self._write("labels", "labels.parquet", table)
            else:
                parts.append(table)
        if not flags:  # no labels: the (empty) table still creates the file with its schema
            parts = [arrow.label_schema(self.attribute_types or {}).empty_table()]
        if parts:
            table = pa.concat_tables(parts)
            for path, part in self._partitions("labels", table):
                self._write("labels", path, part)
        n = sum(len(labels.table(k)) for k in LABEL_KINDS)
        self.written["labels"] = self.written.get("labels", 0) + n
        for kind, spec in KIND_SPECS.items():  # the writers' parts/holes rule, reported once
            if spec.family == "polygon" and kind in flags:
                whole = tuple(np.concatenate(c) for c in zip(*flags[kind], strict=True))
                groups = arrow._rule_issues(labels, kind, whole)  # type: ignore[arg-type]
                for j, issues in enumerate(groups):
                    self._report_later((1, _KIND_ORDER[kind], j), issues)

    def _report_later(self, group: tuple[int, int, int], issues: list[Issue]) -> None:
        """Report entries of the writer; ``group`` orders them when a sink defers them."""
        self.report.extend(issues)

    def _fill_dataset_id(self, labels: LabelSet) -> LabelSet:
        ds = labels.frames.dataset_id
        empty = np.asarray([not d for d in ds], dtype=bool)
        if empty.any():
            if self.dataset_id is None:
                if self.layout == "hive":
                    raise ConversionError(
                        "frames without a dataset_id cannot go into a partitioned dataset; "
                        "pass dataset_id=... (CLI: -O dataset_id=ID)",
                        format=FORMAT,
                    )
                return labels
            new = ds.copy()
            new[empty] = self.dataset_id
            frames = dataclasses.replace(labels.frames, dataset_id=new)
            labels = labels.replace(frames=frames)
        return labels

    def _update_encodings(self, labels: LabelSet) -> None:
        for kind in LABEL_KINDS:
            t: Any = labels.table(kind)
            for k, v in t.attributes.items():
                present = v != None  # noqa: E711
                non_str = arrow._non_str(v[present])
                if k not in self.encodings:
                    self.encodings[k] = "json" if non_str.any() else "string"
                elif self.encodings[k] == "string" and non_str.any():
                    rows = np.flatnonzero(present)[non_str]
                    reason = (
                        f"attribute {k!r}: a non-string value after string values in "
                        "earlier batches is stored as its JSON text"
                    )
                    self._report_later((0, 0, 0), labels.row_issues(kind, rows, "changed", reason))

    def _new_frames(self, frames: pa.Table) -> pa.Table | None:
        keep = np.zeros(len(frames), dtype=bool)
        for i, key in enumerate(arrow._keystr(frames).to_pylist()):
            if key not in self.frames_seen:
                self.frames_seen.add(key)
                keep[i] = True
        return frames.filter(pa.array(keep)) if not keep.all() else frames

    def _partitions(self, name: str, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        if self.layout == "files":
            yield f"{name}.parquet", table
            return
        by = ["dataset_id", "label_type"] if name == "labels" else ["dataset_id"]
        if not len(table):
            return
        groups = table.group_by(by, use_threads=False).aggregate([]).to_pylist()
        for g in groups:
            mask = None
            for k in by:
                m = pc.equal(table.column(k), g[k])
                mask = m if mask is None else pc.and_(mask, m)
            part = table.filter(mask).drop_columns(by)
            self.datasets[g["dataset_id"]] = None
            segs = [f"{k}={_quote(g[k])}" for k in by]
            yield posixpath.join(name, *segs, "part-0.parquet"), part

    def _write(self, name: str, rel: str, table: pa.Table) -> None:
        """Queue ``table`` for file ``rel``; whole row groups go to the writer thread at once."""
        f = self._file(name, rel, table)
        table = table.cast(f.schema) if table.schema.remove_metadata() != f.schema else table
        f.pending.append(table)
        f.held += len(table)
        f.rows += len(table)
        size = _ROW_GROUPS.get(name, self.row_group_size)
        if f.held >= size:
            self._submit(f, (f.held // size) * size)

    def _flush(self) -> None:
        for f in self.files.values():
            if f.held or (f.pending and not f.started):
                self._submit(f, f.held)

    def _submit(self, f: _File, rows: int) -> None:
        """Hand the first ``rows`` held rows of ``f`` to the writer thread (in order)."""
        held = pa.concat_tables(f.pending) if len(f.pending) > 1 else f.pending[0]
        f.pending = [held.slice(rows)] if rows < len(held) else []
        f.held -= rows
        f.started = True
        chunk = held.slice(0, rows) if rows < len(held) else held
        size = _ROW_GROUPS.get(f.table, self.row_group_size)

        def write() -> None:
            f.writer.write_table(chunk, row_group_size=size)
            if f.geo is not None:
                f.geo.update(chunk)

        if self.io is None:
            write()
            return
        while len(self.queued) >= 2:  # bound what waits for the disk: about two row groups
            self.queued.popleft().result()
        self.queued.append(self.io.submit(write))

    def _drain(self) -> None:
        while self.queued:
            self.queued.popleft().result()

    def _file(self, name: str, rel: str, table: pa.Table) -> _File:
        f = self.files.get(rel)
        if f is None:
            path = posixpath.join(self.root, rel)
            self.fs.create_dir(posixpath.dirname(path), recursive=True)
            stream = self.fs.open_output_stream(path)
            writer = pq.ParquetWriter(
                stream,
                table.schema.remove_metadata(),
                compression=self.compression,
                store_schema=False,
                write_statistics=True,
            )
            geo = arrow.GeoSummary() if name == "labels" else None
            f = self.files[rel] = _File(
                name, writer, stream, table.schema.remove_metadata(), geo=geo
            )
        return f

    def close(self) -> None:
        self._flush()
        self._drain()
        for f in self.files.values():
            meta = arrow.table_metadata(
                f.table,
                categories=self.categories,
                frame_of_reference=self.frame_of_reference or "world",
                source=self.meta_source,
                attribute_encodings=self.encodings,
                attribute_keys=self.keys,
            )
            if f.geo is not None:
                meta |= f.geo.metadata()
            f.writer.add_key_value_metadata({k.decode(): v.decode() for k, v in meta.items()})
            f.writer.close()
            f.stream.close()

    def abort(self) -> None:
        for q in self.queued:
            with contextlib.suppress(BaseException):
                q.result()
        self.queued.clear()
        for f in self.files.values():
            with contextlib.suppress(Exception):
                f.writer.close()
            with contextlib.suppress(Exception):
                f.stream.close()


_KIND_ORDER = {k: i for i, k in enumerate(KIND_SPECS)}


class WriteAgain(ConversionError):
    """Batches that a whole-input write (``ordered`` / ``spill``) cannot take as they come.

    Raised by :func:`write_stream` before anything is committed; the caller writes again
    (:func:`deepen_export.pipeline.stream_parquet` does). ``spill`` says to hold the rows (a
    file out of sequence order under ``ordered=True``); ``decisions`` are the whole input's
    attribute columns and encodings when the first batch decided others (pass them as
    ``_decisions`` to the next write).

    Examples
    --------
    >>> WriteAgain("'2.png' comes after later files", spill=True).spill
    True
    """

    def __init__(self, message: str, *, spill: bool = False, decisions: Any = None) -> None:
        super().__init__(message, format=FORMAT)
        self.spill, self.decisions = spill, decisions


class _WholeSink(_Sink):
    """A sink whose output is that of the whole input written at once (``spill`` / ``ordered``).

    Frames of every batch are collected and written once on close, in the sequence order a
    parse of the whole input gives; categories get the whole input's order; report entries are
    listed in the order a single write lists them. Typed attribute columns and attribute
    encodings are decided on the first batch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frame_parts: list[Frames] = []
        self.sorted_categories = True
        self.profile_order: tuple[str, ...] = ()  # write_stream's categories=
        self.deferred: dict[tuple[int, int, int], list[Issue]] = {}
        self.stats = arrow._AttributeStats()

    def add(self, labels: LabelSet) -> None:
        labels = self._fill_dataset_id(labels)
        self.frame_parts.append(labels.frames)
        self.sorted_categories &= list(labels.categories) == sorted(labels.categories)
        self.stats.update(labels)
        super().add(labels)

    def _new_frames(self, frames: pa.Table) -> pa.Table | None:
        self.written.setdefault("frames", 0)  # (the key order of a single write's report)
        return None  # frames are written once, in their final order, on close

    def _report_later(self, group: tuple[int, int, int], issues: list[Issue]) -> None:
        self.deferred.setdefault(group, []).extend(issues)  # listed in a whole write's order

    def close(self) -> None:
        whole = (self.stats.types() if self.attribute_columns else {}, self.stats.encodings())
        if whole != (self.attribute_types or {}, self.encodings):
            raise WriteAgain("the first batch decided other attribute columns", decisions=whole)
        frames = _final_frames(self.frame_parts)
        cats = list(self.categories)
        if self.profile_order:  # the parse's rule: the profile's order, then the rest sorted
            cats = _order_categories(cats, self.profile_order)
        elif self.sorted_categories:
            cats = sorted(cats)
        self.categories = dict.fromkeys(cats)
        table = arrow._other_tables(LabelSet(frames=frames, categories=tuple(cats)), False)
        self.written["frames"] = len(table["frames"])
        self._finish(table["frames"], frames, cats)
        for group in sorted(self.deferred):
            self.report.extend(self.deferred[group])
        super().close()

    def _finish(self, frames_table: pa.Table, frames: Frames, cats: list[str]) -> None:
        for path, part in self._partitions("frames", frames_table):  # hive: per dataset
            self._write("frames", path, part)


class _OrderedSink(_WholeSink):
    """``ordered=True``: rows written as batches come, each frame's index known on arrival.

    Holds when every batch's new files sort after the files of earlier batches (natural order
    of the file ids, per dataset), as a labels file listed in sequence order gives them: a
    file's index is then the number of files before it. A batch out of that order raises
    :class:`WriteAgain` (before anything is committed).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rank: dict[tuple[str, str], int] = {}
        self.last: dict[str, tuple[Any, ...]] = {}  # per dataset: its last file so far
        self.count: dict[str, int] = {}  # per dataset: files so far

    def add(self, labels: LabelSet) -> None:
        super().add(self._placed(self._fill_dataset_id(labels)))

    def _placed(self, labels: LabelSet) -> LabelSet:
        fr = labels.frames
        if len(fr) and (fr.index >= 0).all():
            return labels  # the batch knows the sequence (a files listing)
        if (fr.index >= 0).any():
            raise WriteAgain("a batch mixes known and unknown frame indexes", spill=True)
        new: dict[str, set[str]] = {}
        for d, f in zip(fr.dataset_id, fr.file_id, strict=True):  # per frame, not per label
            if (d, f) not in self.rank:
                new.setdefault(d, set()).add(f)
        for d, fids in new.items():
            names = sorted(fids, key=natural_key)
            keys = [natural_key(f) for f in names]
            if (d in self.last and keys[0] <= self.last[d]) or len(set(keys)) < len(keys):
                raise WriteAgain(f"{names[0]!r} comes after later files", spill=True)
            base = self.count.get(d, 0)
            self.rank.update({(d, f): base + j for j, f in enumerate(names)})
            self.count[d], self.last[d] = base + len(names), keys[-1]
        index = [self.rank[(d, f)] for d, f in zip(fr.dataset_id, fr.file_id, strict=True)]
        frames = dataclasses.replace(fr, index=np.asarray(index, dtype=np.int64))
        return labels.replace(frames=frames)


class _SpillSink(_WholeSink):
    """``spill=True``: every batch's rows held in temporary Arrow IPC files until the last batch.

    Rows are built into Arrow as batches arrive (the expensive part), then spilled to disk, so
    memory stays bounded by a batch. On close the spilled rows get the final ``frame_index``
    and category codes and are written per kind in order: the files equal what :func:`write`
    of the whole set writes.
    """

    spilling = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spilled: dict[str, pa.ipc.RecordBatchStreamWriter] = {}
        self.spill_dir = tempfile.mkdtemp(prefix="deepen-parquet-")  # local, whatever dest is

    def _spill_path(self, key: str) -> str:
        return os.path.join(self.spill_dir, f"{key}.arrows")

    def _write(self, name: str, rel: str, table: pa.Table) -> None:
        if not self.spilling:
            super()._write(name, rel, table)
            return
        key = rel.removesuffix(".parquet") if name != "labels" else f"labels.{self.kind}"
        table = _plain_categories(table)
        w = self.spilled.get(key)
        if w is None:
            w = self.spilled[key] = pa.ipc.new_stream(self._spill_path(key), table.schema)
        w.write_table(table)

    def _finish(self, frames_table: pa.Table, frames: Frames, cats: list[str]) -> None:
        for w in self.spilled.values():
            w.close()
        self.spilling = False
        super()._finish(frames_table, frames, cats)
        index = arrow._int(frames.index)
        keys = arrow._keystr(frames_table)
        for key in sorted(self.spilled, key=_spill_order):
            name = key.split(".", 1)[0]
            rel = "labels.parquet" if name == "labels" else f"{key}.parquet"
            size = _ROW_GROUPS.get(name, self.row_group_size)
            f = self.files.get(rel)
            for piece in _aligned(self._read_spill(key), 0 if f is None else f.rows, size):
                self._write(name, rel, _fix_frames(piece, keys, index, cats))
            os.remove(self._spill_path(key))
        shutil.rmtree(self.spill_dir, ignore_errors=True)

    def _read_spill(self, key: str) -> Iterator[pa.Table]:
        with pa.OSFile(self._spill_path(key)) as fh:  # read, not mapped: bounded resident memory
            for batch in pa.ipc.open_stream(fh):
                yield pa.Table.from_batches([batch])

    def abort(self) -> None:
        for w in self.spilled.values():
            with contextlib.suppress(Exception):
                w.close()
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        super().abort()


def _spill_order(key: str) -> tuple[int, int]:
    name, _, kind = key.partition(".")
    return (0 if name == "labels" else 1, LABEL_KINDS.index(kind) if kind else 0)


def _plain_categories(table: pa.Table) -> pa.Table:
    """``category`` as plain strings: each batch has its own codes (re-coded on close)."""
    i = table.schema.get_field_index("category")
    if i < 0 or not pa.types.is_dictionary(table.schema.field(i).type):
        return table
    return table.set_column(i, "category", table.column(i).cast(pa.string()))


def _fix_frames(table: pa.Table, keys: pa.Array, index: pa.Array, cats: list[str]) -> pa.Table:
    """The final ``frame_index`` (by frame key) and category codes of spilled rows."""
    rows = pc.index_in(arrow._keystr(table), value_set=keys)
    i = table.schema.get_field_index("frame_index")
    table = table.set_column(i, "frame_index", index.take(rows))
    i = table.schema.get_field_index("category")
    if i >= 0:
        codes = pc.index_in(table.column(i), value_set=pa.array(cats, pa.string()))
        col = pa.DictionaryArray.from_arrays(
            codes.cast(pa.int32()).combine_chunks(), pa.array(cats, pa.string())
        )
        table = table.set_column(i, "category", col)
    return table.combine_chunks()


def _aligned(tables: Iterable[pa.Table], start: int, size: int) -> Iterator[pa.Table]:
    """The rows of ``tables`` re-cut at row-group boundaries (``start`` rows precede them)."""
    held: list[pa.Table] = []
    n = 0
    room = size - start % size
    for t in tables:
        held.append(t)
        n += len(t)
        while n >= room:
            whole = pa.concat_tables(held)
            yield whole.slice(0, room)
            rest = whole.slice(room)
            held, n, room = [rest], len(rest), size
    if n:
        yield pa.concat_tables(held)


def _final_frames(parts: list[Frames]) -> Frames:
    """The frames of all batches once each, in the sequence order a whole-input parse gives.

    The order of the parse: ``index`` is the file's place among its dataset's files (as the
    batches give it, or else by natural sort of the file ids), rows by dataset, index, sensor.
    """
    if not parts:
        return Frames.empty()
    every = Frames.concat(parts)
    row_of: dict[tuple[str, str, str], int] = {}
    for i, key in enumerate(every.keys()):  # one Python step per frame (not per label)
        row_of.setdefault(key, i)
    fr = every.take(np.fromiter(row_of.values(), dtype=np.int64, count=len(row_of)))
    keys = fr.keys()
    if (fr.index < 0).all():
        files = sorted({(d, f) for d, f, _ in keys}, key=lambda k: (k[0], natural_key(k[1])))
        rank: dict[tuple[str, str], int] = {}
        per_ds: dict[str, int] = {}
        for d, f in files:
            rank[(d, f)] = per_ds[d] = per_ds.get(d, -1) + 1
        index = np.asarray([rank[(d, f)] for d, f, _ in keys], dtype=np.int64)
        fr = dataclasses.replace(fr, index=index)
    order = sorted(range(len(fr)), key=lambda i: (fr.dataset_id[i], fr.index[i], fr.sensor_id[i]))
    return fr.take(np.asarray(order, dtype=np.int64))


# ---------------------------------------------------------------------------------------
# write


def write(
    labels: LabelSet,
    dest: Any,
    /,
    *,
    on_unsupported: OnUnsupported = "raise",
    layout: Layout = "files",
    dataset_id: str | None = None,
    attribute_columns: bool | None = None,
    compression: str = "zstd",
    row_group_size: int = 128 * 1024,
    filesystem: Any = None,
    pointclouds: bool = False,
    storage_options: dict[str, str] | None = None,
) -> Report:
    """Write ``labels`` as Parquet tables to ``dest`` (a folder, local or on an object store).

    Parameters
    ----------
    labels : LabelSet
    dest : str or os.PathLike
        Output folder or URI (``s3://bucket/prefix``).
    on_unsupported : {"raise", "warn", "drop"}
        Parquet holds every label kind; kept for the common converter signature.
    layout : {"files", "hive", "delta"}
        One file per table, a ``dataset_id=…/label_type=…`` partitioned dataset whose
        partitions of the written datasets are replaced and others kept, or Delta Lake tables
        (one per table, partitioned by ``dataset_id``; each write replaces the rows of the
        datasets it writes in one transaction per table, see the module docstring).
    dataset_id : str, optional
        Dataset id for frames that have none (required for ``hive`` when frames lack one).
    attribute_columns : bool, optional
        Add typed ``attr_<key>`` columns for attributes every label of some category has.
        Default: on for ``files``, off for ``hive`` (so every partition has the same schema and
        engines read the folder without ``union_by_name``).
    compression : str
        Parquet codec (``zstd``).
    row_group_size : int
        Rows per row group of the ``labels`` table.
    filesystem : pyarrow.fs.FileSystem or fsspec filesystem, optional
        Filesystem of ``dest`` (default: from the URI).
    pointclouds : bool
        Also write the LiDAR points (``pointclouds`` table, one row per point); otherwise each
        frame's points are left out and listed in the report as ``skipped``.
    storage_options : dict, optional
        ``layout="delta"`` only: options for delta-rs's object store (``AWS_ENDPOINT_URL``,
        ...); by default taken from ``filesystem`` or the URI and the environment.

    Returns
    -------
    Report
        ``written`` counts rows per table; ``files`` lists the files relative to ``dest``.

    Examples
    --------
    >>> import tempfile
    >>> write(LabelSet.empty(), tempfile.mkdtemp() + "/out").files
    ['frames.parquet', 'labels.parquet']
    """
    return write_stream(
        [labels],
        dest,
        on_unsupported=on_unsupported,
        layout=layout,
        dataset_id=dataset_id,
        attribute_columns=attribute_columns,
        compression=compression,
        row_group_size=row_group_size,
        filesystem=filesystem,
        pointclouds=pointclouds,
        storage_options=storage_options,
    )


def write_stream(
    batches: Iterable[LabelSet],
    dest: Any,
    /,
    *,
    on_unsupported: OnUnsupported = "raise",
    layout: Layout = "files",
    dataset_id: str | None = None,
    attribute_columns: bool | None = None,
    compression: str = "zstd",
    row_group_size: int = 128 * 1024,
    filesystem: Any = None,
    pointclouds: bool = False,
    storage_options: dict[str, str] | None = None,
    spill: bool = False,
    ordered: bool = False,
    categories: Sequence[str] = (),
    _decisions: tuple[dict[str, pa.DataType], dict[str, str]] | None = None,
) -> Report:
    """Write label sets one batch at a time, so memory is bounded by one batch.

    Each batch (for example from ``deepen_export.parse.iter_label_batches``) is converted and
    appended to open Parquet writers; file metadata (categories, geometry types, bbox) is
    completed when the last batch is written. Typed attribute columns are decided on the first
    batch. Frames repeated in later batches (same dataset, file and sensor) are written once.
    Options are those of :func:`write`, and:

    spill : bool
        ``layout="files"`` only. Hold each batch's rows (built into Arrow as it arrives) in
        temporary Arrow files until the last batch, then write them per kind with the frame
        order, ``frame_index`` and category order of the whole input: the same files as
        :func:`write` of the parse of the whole input (with ``iter_label_batches`` batches of
        one labels file). Without it, each batch is written as it comes (its own row groups)
        and a frame's ``frame_index`` is what its batch says (-1, null, when unknown).
    ordered : bool
        ``layout="files"`` or ``"hive"``. The frames, ``frame_index``, categories, metadata and
        report of ``spill=True``, with each batch's rows written as it comes (no temporary
        files; rows in batch order, row groups per batch): for batches whose new files sort
        after the files of earlier batches (a labels file in sequence order). Raises
        ``ConversionError`` on a batch out of that order, before anything is committed.
    categories : sequence of str
        ``spill`` / ``ordered`` only: the category order the input was parsed with (a labelling
        profile's, ``parse_labels(categories=...)``); the categories the batches use that it
        does not list follow in sorted order, as in a parse of the whole input.

    With ``spill`` or ``ordered``, typed ``attr_`` columns and attribute encodings are decided
    on the first batch as the rows must be built; when the whole input decides otherwise (a
    key that later turns numeric, a category whose later labels lack a key), the write raises
    ``ConversionError`` before anything is committed: :func:`deepen_export.pipeline.stream_parquet`
    then writes again with the whole input's decisions.

    Examples
    --------
    >>> import tempfile
    >>> report = write_stream([LabelSet.empty(), LabelSet.empty()], tempfile.mkdtemp() + "/o")
    >>> report.written["labels"]
    0
    """
    if layout not in ("files", "hive", "delta"):
        raise ValueError(f"layout must be 'files', 'hive' or 'delta', got {layout!r}")
    if (spill and layout != "files") or (ordered and layout == "delta"):
        raise ValueError(
            f"spill=True writes layout='files' (ordered=True also 'hive'), not {layout!r}"
        )
    if layout == "delta":
        return _write_delta(
            batches,
            dest,
            filesystem,
            storage_options,
            on_unsupported=on_unsupported,
            dataset_id=dataset_id,
            attribute_columns=bool(attribute_columns),
            compression=compression,
            row_group_size=row_group_size,
            pointclouds=pointclouds,
        )
    fs, root = _resolve(dest, filesystem)
    if not _is_local(fs):
        _clean_stale_staging(fs, root)
    elif layout == "hive":
        _recover_local_hive(root)
    report = Report(FORMAT)
    from converters import FORMATS

    supported = FORMATS[FORMAT].kinds
    if attribute_columns is None:
        attribute_columns = layout == "files"
    staging_ctx = _staging(fs, root, layout)
    threads = min(4, os.cpu_count() or 1)
    with (
        staging_ctx as staging,
        ThreadPoolExecutor(threads, thread_name_prefix="parquet-build") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="parquet-write") as io,
    ):
        sink_class = _SpillSink if spill else _OrderedSink if ordered else _Sink
        where = (fs, staging, layout, compression, row_group_size, attribute_columns, dataset_id)
        sink = sink_class(*where, report, pointclouds, pool=pool, io=io)
        if isinstance(sink, _WholeSink):
            sink.profile_order = tuple(categories)
        if _decisions is not None:  # a second pass: the whole input's attribute decisions
            sink.attribute_types, sink.encodings = dict(_decisions[0]), dict(_decisions[1])
        try:
            for batch in progress(batches, description="Parquet batches"):
                batch = apply_policy(batch, FORMAT, supported, on_unsupported, report)
                sink.add(batch)
                del batch  # hold one batch at a time: drop it before asking for the next
            if layout == "files":
                for name in ("labels", "frames"):
                    if not any(f.table == name for f in sink.files.values()):
                        empty = arrow.to_arrow(LabelSet.empty(), attribute_columns={})[name]
                        sink._write(name, f"{name}.parquet", empty)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        report.written = {k: v for k, v in sink.written.items()} | {"files": len(sink.files)}
        report.files = sorted(sink.files)
        _write_report(fs, staging, layout, report, sink)
        if layout == "hive":
            _commit_hive(fs, root, staging, list(sink.datasets))
        elif not _is_local(fs):
            _commit_remote_files(fs, root, staging)
    return report


def _report_name(datasets: list[str]) -> str:
    if len(datasets) == 1:
        return f"_reports/{_quote(datasets[0])}.json"
    digest = hashlib.sha1("\x1f".join(sorted(datasets)).encode()).hexdigest()[:16]
    return f"_reports/{digest}.json"


def _write_report(
    fs: pafs.FileSystem, staging: str, layout: Layout, report: Report, sink: _Sink
) -> None:
    rel = "report.json" if layout == "files" else _report_name(list(sink.datasets))
    path = posixpath.join(staging, rel)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    text = report.to_json() + "\n"
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


@contextlib.contextmanager
def _staging(fs: pafs.FileSystem, root: str, layout: Layout) -> Iterator[str]:
    if layout == "files" and _is_local(fs):
        with atomic_dir(root) as tmp:
            yield tmp.as_posix()
        return
    name = f".staging-{uuid.uuid4().hex}" if _is_local(fs) else f"_staging/{uuid.uuid4().hex}"
    staging = posixpath.join(root, name)
    fs.create_dir(staging, recursive=True)
    try:
        yield staging
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_dir(staging)
        if not _is_local(fs):
            with contextlib.suppress(FileNotFoundError, OSError):
                left = fs.get_file_info(pafs.FileSelector(posixpath.join(root, "_staging")))
                if not left:
                    fs.delete_dir(posixpath.join(root, "_staging"))


def _commit_hive(fs: pafs.FileSystem, root: str, staging: str, datasets: list[str]) -> None:
    tables = {
        posixpath.basename(i.path)
        for base in (root, staging)
        for i in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        if i.type == pafs.FileType.Directory
        and not posixpath.basename(i.path).startswith((".", "_"))
    }
    for ds in datasets:
        part = f"dataset_id={_quote(ds)}"
        for table in sorted(tables):
            new = posixpath.join(staging, table, part)
            old = posixpath.join(root, table, part)
            has_new = fs.get_file_info(new).type == pafs.FileType.Directory
            if _is_local(fs):
                _swap_local(old, new if has_new else None)
            else:
                _swap_remote(fs, old, new if has_new else None)
    new_reports = _files_under(fs, posixpath.join(staging, "_reports"))
    for path in new_reports:
        target = posixpath.join(root, posixpath.relpath(path, staging))
        fs.create_dir(posixpath.dirname(target), recursive=True)
        _move(fs, path, target)


def _move(fs: pafs.FileSystem, src: str, dst: str) -> None:
    if _is_local(fs):
        fs.move(src, dst)
        return
    # object stores: a server-side copy replaces the target object whole; not every pyarrow
    # filesystem implements move for files (GCS), every one implements copy
    fs.copy_file(src, dst)
    fs.delete_file(src)


def _swap_local(old: str, new: str | None) -> None:
    trash = None
    if os.path.exists(old):
        trash = f"{old}.old-{uuid.uuid4().hex}"
        os.replace(old, trash)
    if new is not None:
        os.makedirs(os.path.dirname(old), exist_ok=True)
        os.replace(new, old)
    if trash is not None:
        import shutil

        shutil.rmtree(trash, ignore_errors=True)


def _swap_remote(fs: pafs.FileSystem, old: str, new: str | None) -> None:
    fresh = _files_under(fs, new) if new is not None else []
    targets = {posixpath.join(old, posixpath.relpath(p, new)) for p in fresh} if new else set()
    for path in fresh:  # each object is replaced whole: readers see the old or the new file
        target = posixpath.join(old, posixpath.relpath(path, new))
        _move(fs, path, target)
    for path in _files_under(fs, old):
        if path not in targets:
            fs.delete_file(path)


def _commit_remote_files(fs: pafs.FileSystem, root: str, staging: str) -> None:
    fresh = _files_under(fs, staging)
    targets = {posixpath.join(root, posixpath.relpath(p, staging)) for p in fresh}
    for path in fresh:
        _move(fs, path, posixpath.join(root, posixpath.relpath(path, staging)))
    for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if i.type == pafs.FileType.File and i.path not in targets:
            name = posixpath.basename(i.path)
            if name.endswith(".parquet") or name == "report.json":
                fs.delete_file(i.path)


# ---------------------------------------------------------------------------------------
# object stores: stale staging of the plain layouts, and the Delta Lake layout

#: Staging prefixes untouched this long (seconds) belong to killed writes and are removed.
STAGING_STALE_AFTER = 900.0


def _clean_stale_staging(fs: pafs.FileSystem, root: str) -> None:
    """Remove ``_staging/<id>/`` prefixes of killed writes: no object newer than the bound."""
    import time

    base = posixpath.join(root, "_staging")
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return
    newest: dict[str, float] = {}
    for i in infos:
        if i.type != pafs.FileType.File:
            continue
        prefix = posixpath.relpath(i.path, base).split("/", 1)[0]
        mtime = i.mtime.timestamp() if i.mtime is not None else time.time()
        newest[prefix] = max(newest.get(prefix, 0.0), mtime)
    for prefix, mtime in newest.items():
        if time.time() - mtime > STAGING_STALE_AFTER:
            with contextlib.suppress(FileNotFoundError, OSError):
                fs.delete_dir(posixpath.join(base, prefix))


_TRASH = re.compile(r"^(.+)\.old-[0-9a-f]{32}$")


def _recover_local_hive(root: str) -> None:
    """Repair what a killed local hive write left: put back a partition set aside by a swap
    that did not finish, drop set-aside copies and ``.staging-*`` folders nobody touched for
    :data:`STAGING_STALE_AFTER` seconds."""
    import shutil
    import time

    base = Path(root)
    if not base.is_dir():
        return
    now = time.time()

    def stale(p: Path) -> bool:
        # another writer's staging can vanish while it is looked at (its commit): not stale
        try:
            newest = max([p.lstat().st_ctime] + [q.lstat().st_mtime for q in p.rglob("*")])
        except FileNotFoundError:
            return False
        return now - newest > STAGING_STALE_AFTER

    for p in base.glob(".staging-*"):
        if p.is_dir() and stale(p):
            shutil.rmtree(p, ignore_errors=True)
    for table in (t for t in base.iterdir() if t.is_dir() and not t.name.startswith((".", "_"))):
        for p in table.iterdir():
            m = _TRASH.match(p.name)
            if not (m and p.is_dir() and stale(p)):
                continue
            original = p.with_name(m.group(1))
            if original.exists():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.replace(p, original)  # killed between the two renames: the old one is it


_DELTA_META = "_deepen"  # commit.json (the consistent version set) and pending/<export>.json


def _need_deltalake() -> None:
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise ConversionError(
            "layout='delta' needs the deltalake package: pip install 'deepen-export[delta]'",
            format=FORMAT,
        ) from None


def _delta_location(
    fs: pafs.FileSystem, root: str, storage_options: dict[str, str] | None
) -> tuple[str, dict[str, str]]:
    """The table URI root and delta-rs storage options for a resolved destination."""
    extra = dict(storage_options or {})
    if _is_local(fs):
        return root, extra
    if isinstance(fs, pafs.S3FileSystem):
        kw = fs.__reduce__()[1][0]  # the options the filesystem was made with
        so: dict[str, str] = {}
        for key, name in (
            ("access_key", "AWS_ACCESS_KEY_ID"),
            ("secret_key", "AWS_SECRET_ACCESS_KEY"),
            ("session_token", "AWS_SESSION_TOKEN"),
            ("region", "AWS_REGION"),
        ):
            if kw.get(key):
                so[name] = str(kw[key])
        endpoint, scheme = kw.get("endpoint_override"), kw.get("scheme") or "https"
        if endpoint:
            so["AWS_ENDPOINT_URL"] = endpoint if "://" in endpoint else f"{scheme}://{endpoint}"
        if scheme == "http":
            so["AWS_ALLOW_HTTP"] = "true"
        # S3's conditional PUT (If-None-Match) makes each commit atomic without a lock table.
        so["conditional_put"] = "etag"
        return f"s3://{root}", so | extra
    if storage_options is None:
        raise ConversionError(
            f"layout='delta' on {type(fs).__name__}: pass storage_options=... for delta-rs "
            "(local folders and s3:// are configured automatically)",
            format=FORMAT,
        )
    return root, extra


def _delta_json(fs: pafs.FileSystem, path: str) -> Any:
    try:
        with fs.open_input_stream(path) as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, OSError, ValueError):
        return None


def _delta_put_json(fs: pafs.FileSystem, path: str, body: Any) -> None:
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(path) as out:  # one PUT on object stores: atomic
        out.write(json.dumps(body, indent=1).encode())


def _sql_in(values: Iterable[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))
    return f"dataset_id IN ({quoted})"


def _write_delta(
    batches: Iterable[LabelSet],
    dest: Any,
    filesystem: Any,
    storage_options: dict[str, str] | None,
    **options: Any,
) -> Report:
    """``layout="delta"``: stage as plain Parquet locally, then one Delta commit per table."""
    import tempfile

    _need_deltalake()
    fs, root = _resolve(dest, filesystem)
    uri, so = _delta_location(fs, root, storage_options)
    _delta_recover(fs, root, uri, so)
    with tempfile.TemporaryDirectory(prefix="deepen-delta-") as tmp:
        staged = posixpath.join(Path(tmp).as_posix(), "files")
        report = write_stream(batches, staged, layout="files", **options)
        tables = {
            name: pq.ParquetFile(posixpath.join(staged, f"{name}.parquet"))
            for name in arrow.TABLES
            if os.path.exists(posixpath.join(staged, f"{name}.parquet"))
        }
        datasets = sorted(
            {
                str(d)
                for name in ("frames", "labels")
                if name in tables
                for d in tables[name].read(columns=["dataset_id"]).column(0).to_pylist()
            }
        )
        if "" in datasets or None in datasets:
            raise ConversionError(
                "frames without a dataset_id cannot go into a Delta table partitioned by "
                "dataset_id; pass dataset_id=... (CLI: -O dataset_id=ID)",
                format=FORMAT,
            )
        _delta_commit(fs, root, uri, so, tables, datasets, report)
    return report


def _delta_version(uri: str, so: dict[str, str]) -> int | None:
    from deltalake import DeltaTable

    try:
        return int(DeltaTable(uri, storage_options=so).version())
    except Exception:  # no table there yet (delta-rs raises TableNotFoundError)
        return None


def _delta_commit(
    fs: pafs.FileSystem,
    root: str,
    uri: str,
    so: dict[str, str],
    tables: dict[str, pq.ParquetFile],
    datasets: list[str],
    report: Report,
) -> None:
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    export_id = uuid.uuid4().hex
    pointer = _delta_json(fs, posixpath.join(root, _DELTA_META, "commit.json")) or {}
    known = set(pointer.get("tables", {})) | set(tables)
    previous = {t: _delta_version(f"{uri}/{t}", so) for t in sorted(known)}
    pending = posixpath.join(root, _DELTA_META, "pending", f"{export_id}.json")
    _delta_put_json(
        fs, pending, {"export_id": export_id, "datasets": datasets, "previous": previous}
    )
    props = CommitProperties(custom_metadata={"deepen_export_id": export_id})
    where = _sql_in(datasets) if datasets else None
    done: list[str] = []
    try:
        # frames first, labels last: a reader of labels alone sees the whole new export
        order = sorted(known, key=lambda t: (t == "labels", t != "frames", t))
        for name in order:
            target = f"{uri}/{name}"
            if name in tables:
                pf = tables[name]
                reader = pa.RecordBatchReader.from_batches(
                    pf.schema_arrow.remove_metadata(), pf.iter_batches()
                )
                write_deltalake(
                    target,
                    reader,
                    mode="overwrite",
                    partition_by=["dataset_id"],
                    predicate=where if previous[name] is not None else None,
                    storage_options=so,
                    commit_properties=props,
                )
            elif previous[name] is not None and where is not None:
                DeltaTable(target, storage_options=so).delete(where, commit_properties=props)
            else:
                continue
            done.append(name)
        versions = {t: _delta_version(f"{uri}/{t}", so) for t in sorted(known)}
        meta = pointer.get("datasets", {})
        for ds in datasets:
            meta[ds] = {n: _schema_b64(pf.schema_arrow) for n, pf in tables.items()}
        _delta_put_json(
            fs,
            posixpath.join(root, _DELTA_META, "commit.json"),
            {
                "export_id": export_id,
                "tables": {t: v for t, v in versions.items() if v is not None},
                "datasets": meta,
            },
        )
    except BaseException:
        _delta_undo(uri, so, done, previous, datasets)
        with contextlib.suppress(Exception):
            fs.delete_file(pending)
        raise
    report_path = posixpath.join(root, _report_name(datasets or ["_"]))
    _delta_put_json(fs, report_path, json.loads(report.to_json()))
    with contextlib.suppress(FileNotFoundError, OSError):
        fs.delete_file(pending)


def _schema_b64(schema: pa.Schema) -> str:
    import base64

    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _delta_undo(
    uri: str,
    so: dict[str, str],
    tables: Iterable[str],
    previous: dict[str, int | None],
    datasets: list[str],
) -> None:
    """Put back the rows of ``datasets`` as they were before an export committed ``tables``.

    A new commit per table, not a restore: rows of other datasets written since stay.
    """
    from deltalake import DeltaTable, write_deltalake

    where = _sql_in(datasets) if datasets else None
    for name in tables:
        target = f"{uri}/{name}"
        before = previous.get(name)
        if before is None:
            DeltaTable(target, storage_options=so).delete(where)
            continue
        old = DeltaTable(target, version=before, storage_options=so).to_pyarrow_table(
            filters=[("dataset_id", "in", datasets)] if datasets else None
        )
        write_deltalake(
            target,
            old,
            mode="overwrite",
            partition_by=["dataset_id"],
            predicate=where,
            storage_options=so,
        )


def _delta_committed(
    fs: pafs.FileSystem, table: str, before: int | None, latest: int, export_id: str
) -> bool:
    """Whether a commit after ``before`` carries ``export_id`` (read from the log itself)."""
    first = 0 if before is None else before + 1
    for version in range(first, latest + 1):
        path = posixpath.join(table, "_delta_log", f"{version:020d}.json")
        try:
            with fs.open_input_stream(path) as fh:
                text = fh.read().decode("utf-8", "replace")
        except (FileNotFoundError, OSError):
            continue
        if export_id in text:
            return True
    return False


def _delta_recover(fs: pafs.FileSystem, root: str, uri: str, so: dict[str, str]) -> None:
    """Undo what a killed export committed (its pending record is still there)."""
    base = posixpath.join(root, _DELTA_META, "pending")
    sel = pafs.FileSelector(base, allow_not_found=True)
    pointer = _delta_json(fs, posixpath.join(root, _DELTA_META, "commit.json")) or {}
    for info in fs.get_file_info(sel):
        record = _delta_json(fs, info.path)
        if not isinstance(record, dict) or record.get("export_id") == pointer.get("export_id"):
            with contextlib.suppress(FileNotFoundError, OSError):
                fs.delete_file(info.path)  # finished (or unreadable): nothing to undo
            continue
        export_id, previous = record["export_id"], record.get("previous", {})
        committed = []
        for name, before in previous.items():
            version = _delta_version(f"{uri}/{name}", so)
            if version is None or version == before:
                continue
            if _delta_committed(fs, posixpath.join(root, name), before, version, export_id):
                committed.append(name)
        _delta_undo(uri, so, committed, previous, list(record.get("datasets", [])))
        fs.delete_file(info.path)


def _read_delta(
    fs: pafs.FileSystem,
    root: str,
    wanted: set[str] | None,
    storage_options: dict[str, str] | None,
) -> LabelSet:
    """Read the version set named by ``_deepen/commit.json`` (consistent across tables)."""
    import base64

    _need_deltalake()
    from deltalake import DeltaTable

    uri, so = _delta_location(fs, root, storage_options)
    pointer = _delta_json(fs, posixpath.join(root, _DELTA_META, "commit.json")) or {}
    sets = []
    for ds, schemas in sorted(pointer.get("datasets", {}).items()):
        if wanted is not None and ds not in wanted:
            continue
        tables = {}
        for name, b64 in schemas.items():
            version = pointer["tables"].get(name)
            if version is None:
                continue
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(b64)))
            t = DeltaTable(f"{uri}/{name}", version=version, storage_options=so)
            table = t.to_pyarrow_table(filters=[("dataset_id", "=", ds)])
            tables[name] = table.select(schema.names).cast(schema)
        sets.append(arrow.from_arrow(tables))
    if not sets:
        return LabelSet.empty()
    return sets[0] if len(sets) == 1 else LabelSet.concat(sets)


# ---------------------------------------------------------------------------------------
# read


def read(
    source: Any,
    /,
    *,
    dataset_ids: Iterable[str] | None = None,
    filesystem: Any = None,
    storage_options: dict[str, str] | None = None,
) -> LabelSet:
    """Read Parquet written by :func:`write` back into a :class:`LabelSet`.

    Parameters
    ----------
    source : str or os.PathLike
        A ``files`` folder, a ``hive`` dataset folder, or a single ``labels.parquet`` file
        (frames are then taken from the labels' keys); local or a URI.
    dataset_ids : iterable of str, optional
        Only these datasets (a hive dataset reads only their partitions).
    filesystem : pyarrow.fs.FileSystem or fsspec filesystem, optional
    storage_options : dict, optional
        For a ``delta`` layout: delta-rs object store options (see :func:`write`).

    Returns
    -------
    LabelSet
        Equal to what was written. From a hive dataset, datasets come in sorted ``dataset_id``
        order and labels grouped by kind (lanes before polylines).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/x"
    >>> _ = write(LabelSet.empty(), out)
    >>> read(out) == LabelSet.empty()
    True
    """
    fs, root = _resolve(source, filesystem)
    wanted = None if dataset_ids is None else set(dataset_ids)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise ConversionError(f"{source} does not exist", format=FORMAT)
    if info.type == pafs.FileType.File:
        table = pq.read_table(root, filesystem=fs)
        name = json.loads((table.schema.metadata or {}).get(b"deepen_export", b"{}")).get(
            "table", "labels"
        )
        return arrow.from_arrow({name: _only(table, wanted)})
    if fs.get_file_info(posixpath.join(root, "labels.parquet")).type == pafs.FileType.File:
        tables = {}
        for name in arrow.TABLES:
            path = posixpath.join(root, f"{name}.parquet")
            if fs.get_file_info(path).type == pafs.FileType.File:
                tables[name] = _only(pq.read_table(path, filesystem=fs), wanted)
        return arrow.from_arrow(tables)
    if (
        fs.get_file_info(posixpath.join(root, _DELTA_META, "commit.json")).type
        == pafs.FileType.File
    ):
        return _read_delta(fs, root, wanted, storage_options)
    return _read_hive(fs, root, wanted)


def _only(table: pa.Table, wanted: set[str] | None) -> pa.Table:
    if wanted is None:
        return table
    return table.filter(pc.is_in(table.column("dataset_id"), pa.array(sorted(wanted))))


def _read_hive(fs: pafs.FileSystem, root: str, wanted: set[str] | None) -> LabelSet:
    per_dataset: dict[str, dict[str, list[pa.Table]]] = {}
    for table_name in arrow.TABLES:
        for path in _files_under(fs, posixpath.join(root, table_name)):
            rel = posixpath.relpath(path, posixpath.join(root, table_name))
            segs = rel.split("/")
            if not segs[-1].endswith(".parquet") or segs[-1].startswith((".", "_")):
                continue
            keys = dict(p.split("=", 1) for p in segs[:-1] if "=" in p)
            keys = {k: unquote(v) for k, v in keys.items()}
            ds = keys.get("dataset_id", "")
            if wanted is not None and ds not in wanted:
                continue
            t = pq.read_table(path, filesystem=fs)
            meta = t.schema.metadata
            for k in ("label_type", "dataset_id"):
                if k in keys and k not in t.column_names:
                    t = t.add_column(0, k, pa.array([keys[k]] * len(t), pa.string()))
            per_dataset.setdefault(ds, {}).setdefault(table_name, []).append(
                t.replace_schema_metadata(meta)
            )
    if not per_dataset:
        return LabelSet.empty()
    sets = []
    for ds in sorted(per_dataset):
        tables = {}
        for name, parts in per_dataset[ds].items():
            meta = parts[0].schema.metadata
            order = arrow.label_schema().names if name == "labels" else None
            merged = pa.concat_tables(
                [p.replace_schema_metadata(None) for p in parts], promote_options="permissive"
            )
            if order is not None:
                merged = merged.select(
                    [c for c in order if c in merged.column_names]
                    + [c for c in merged.column_names if c not in order]
                )
            tables[name] = merged.replace_schema_metadata(meta)
        sets.append(arrow.from_arrow(tables))
    return sets[0] if len(sets) == 1 else LabelSet.concat(sets)
