"""Shared machinery of the format writers: the unsupported-kind policy, atomic output, safe paths.

Every writer follows the same steps::

    report = Report("coco")
    labels = apply_policy(labels, FORMAT, on_unsupported, report)   # drop what the format cannot hold
    with atomic_dir(dest) as tmp:                                    # all files go to a temp folder
        ... write files under tmp (safe_path(tmp, rel) for names that come from file_ids) ...
        finish(report, tmp)                                          # report.json beside the output
    return report                                                    # dest now holds the whole output
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from deepen_export._io import atomic_dir as _local_atomic_dir
from deepen_export._io import atomic_file, safe_path
from deepen_export._progress import status, task
from deepen_export.errors import ConversionError, LossyConversionWarning
from deepen_export.model import KINDS, LabelSet, Table
from deepen_export.report import Action, Report

__all__ = [
    "FileWriter",
    "OnUnsupported",
    "apply_policy",
    "atomic_dir",
    "atomic_file",
    "codes_by_value",
    "dump_json",
    "finish",
    "json_bytes",
    "json_chunks",
    "ordered_map",
    "paused_gc",
    "pylist",
    "record",
    "remote_destination",
    "safe_path",
    "texts_by_value",
    "unsupported_line",
    "write_files",
    "write_text",
    "xml_escape_attrib",
    "xml_escape_text",
    "xml_text",
]

OnUnsupported = Literal["raise", "warn", "drop"]
T = TypeVar("T")
R = TypeVar("R")


# -- destinations: a local folder, or any filesystem pyarrow (or fsspec) can write -----------------

# pathlib folds "s3://b/k" into "s3:/b/k"; this puts the second slash back
_FOLDED_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?=[^/])")
_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def _dest_text(dest: Any) -> str:
    text = os.fspath(dest) if isinstance(dest, os.PathLike) else str(dest)
    if isinstance(dest, PurePath):
        text = _FOLDED_URI.sub(r"\1://", text)
    return text


def remote_destination(dest: Any) -> tuple[Any, str] | None:
    """``(pyarrow filesystem, path)`` for a URI destination; ``None`` for a local folder.

    Any URI pyarrow opens (``s3://``, ``gs://``, ``hdfs://``, with ``?endpoint_override=...``)
    or, failing that, any fsspec protocol that is installed. A URI neither can open is refused
    here with one line, so a writer can check its destination before doing any work (a
    ``s3:`` folder created locally would be a silent failure).

    Examples
    --------
    >>> remote_destination("out/coco") is None and remote_destination("file:///tmp/x") is None
    True
    >>> remote_destination("nosuchscheme://bucket/x")
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: cannot write to 'nosuchscheme://bucket/x': ...
    """
    text = _dest_text(dest)
    match = _URI.match(text)
    if match is None or match.group(1).lower() == "file":
        return None
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        try:
            import fsspec

            fsys, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError, OSError) as exc2:
            reason = str(exc2) or str(exc)
            raise ConversionError(
                f"cannot write to {text!r}: {reason.splitlines()[0] if reason else 'unknown scheme'}"
                "; give a local folder or a URI pyarrow or fsspec can open (s3://, gs://, ...)"
            ) from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsys))
    return fs, path.rstrip("/")


@contextmanager
def atomic_dir(dest: Any) -> Iterator[Path]:
    """Yield a local temporary folder; on success its files become ``dest`` as a whole.

    A local ``dest`` is replaced by a rename (see :func:`deepen_export._io.atomic_dir`). A URI
    (``s3://bucket/coco``, ``gs://...``: see :func:`remote_destination`) is staged in a local
    temporary folder, uploaded under ``dest/_staging/<random>/`` and only then moved into
    place object by object; files of an earlier export that the new one does not have are
    removed last. A failure before the move leaves ``dest`` as it was. Every writer goes
    through here, so every format writes to any destination.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp(), "out")
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt']
    """
    remote = remote_destination(dest)
    if remote is None:
        with _local_atomic_dir(_local_path(dest)) as t:
            yield t
        return
    fs, root = remote
    old = _check_remote(fs, root, dest)
    local = Path(tempfile.mkdtemp(prefix="deepen-export-stage-"))
    try:
        yield local
        with status(f"uploading to {_dest_text(dest)}"):
            _upload_tree(fs, local, root, old)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _local_path(dest: Any) -> Any:
    text = _dest_text(dest)
    return text[len("file://") :] if text.startswith("file://") else dest


def _check_remote(fs: Any, root: str, dest: Any) -> set[str]:
    """The files under a remote ``root``; refused when they are not an earlier export."""
    old = _remote_files(fs, root)
    if old and "report.json" not in old:
        raise ConversionError(
            f"refusing to replace {_dest_text(dest)}: it holds files deepen-export did not write "
            "(no report.json) and the output replaces the whole prefix; choose a new prefix"
        )
    return old


def _remote_files(fs: Any, root: str, *, all_files: bool = False) -> set[str]:
    """Paths (relative to ``root``) of the files under ``root`` (but ``_staging/``, unless
    ``all_files``)."""
    import pyarrow.fs as pafs

    out = set()
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise ConversionError(f"cannot list {root!r} to write there: {exc}") from exc
    for info in infos:
        rel = posixpath.relpath(info.path, root)
        if info.type == pafs.FileType.File and (all_files or not rel.startswith("_staging/")):
            out.add(rel)
    return out


def _upload_tree(fs: Any, local: Path, root: str, old: set[str]) -> None:
    staging = posixpath.join(root, "_staging", uuid.uuid4().hex)
    rels = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    try:
        # object stores need no folders (pyarrow would write empty marker objects for them)
        folders = fs.type_name not in ("s3", "gcs")
        for rel in rels:
            target = posixpath.join(staging, rel)
            if folders:
                fs.create_dir(posixpath.dirname(target), recursive=True)
            with open(local / rel, "rb") as src, fs.open_output_stream(target) as out:
                shutil.copyfileobj(src, out, 1 << 22)
        # each object is replaced whole (a server-side copy): readers see the old or new file
        for rel in rels:
            target = posixpath.join(root, rel)
            if folders:
                fs.create_dir(posixpath.dirname(target), recursive=True)
            fs.copy_file(posixpath.join(staging, rel), target)
        for rel in sorted(old - set(rels)):
            fs.delete_file(posixpath.join(root, rel))
    finally:
        with contextlib.suppress(OSError):
            fs.delete_dir(staging)
        # pyarrow's S3 leaves an empty marker for the emptied parent: remove _staging/ too
        # when no other export is staging there (the marker left then is the folder itself)
        with contextlib.suppress(OSError):
            if not _remote_files(fs, posixpath.join(root, "_staging"), all_files=True):
                fs.delete_dir(posixpath.join(root, "_staging"))


def record(
    report: Report,
    labels: LabelSet,
    kind: str,
    rows: npt.ArrayLike,
    action: Action,
    reason: str,
) -> None:
    """Add one report entry per label in ``rows`` of table ``kind`` (file and label ids filled in).

    The entries are held as columns (:meth:`Report.add_rows`): what
    :meth:`LabelSet.row_issues` would make, without an ``Issue`` object per label until
    someone reads ``report.issues``.

    Examples
    --------
    >>> from deepen_export.model import Boxes, Frames
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("car",),
    ...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"],
    ...                                        xyxy=[[0, 0, 1, 1]]))
    >>> r = Report("yolo")
    >>> record(r, ls, "boxes", [0], "changed", "box written as a 4-point polygon")
    >>> r.issues == ls.row_issues("boxes", [0], "changed", "box written as a 4-point polygon")
    True
    """
    table = labels.table(kind)
    idx = np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if len(idx) == 0:
        return
    label_ids = getattr(table, "label_id", None)
    report.add_rows(
        action,
        reason,
        kind=kind,
        files=labels.frames.file_id,
        file_index=table.frame[idx],  # type: ignore[attr-defined]
        label_ids=None if label_ids is None else label_ids[idx],
    )


# what one row of each kind is, for the one-line summary of a left-out kind
_UNIT = {"point_segmentation": "frames", "masks2d": "painted images"}


def _takers(kind: str, format: str) -> list[str]:
    """Formats that hold ``kind``, most specific first (fewest kinds), never ``format`` itself."""
    from converters._registry import FORMATS

    found = [f for f in FORMATS.values() if kind in f.kinds and f.name != format]
    return [f.name for f in sorted(found, key=lambda f: len(f.kinds))][:2]  # stable: registry order


def unsupported_line(format: str, kind: str, n: int) -> str:
    """One line naming what ``format`` leaves out of ``kind`` and which formats take it.

    Examples
    --------
    >>> unsupported_line("kitti", "point_segmentation", 3)
    '3 point_segmentation frames not written: kitti holds none; --to semantickitti or lidarseg writes them'
    """
    takers = _takers(kind, format)
    where = f"; --to {' or '.join(takers)} writes them" if takers else ""
    return f"{n} {kind} {_UNIT.get(kind, 'labels')} not written: {format} holds none{where}"


def apply_policy(
    labels: LabelSet,
    format: str,
    supported: frozenset[str] | set[str],
    on_unsupported: OnUnsupported,
    report: Report,
) -> LabelSet:
    """Empty the kinds ``format`` cannot hold, following ``on_unsupported``.

    ``"raise"`` raises :class:`ConversionError` naming the kinds and counts, ``"warn"`` drops them
    with one :class:`LossyConversionWarning` per kind (its message is :func:`unsupported_line`:
    the count, and which format takes the kind), ``"drop"`` drops them quietly; every dropped
    label is recorded in ``report`` with its file and label id. The input's own issues (labels
    the parser could not take) go into the report here too, so every writer's ``report.json``
    lists them.

    Examples
    --------
    >>> from deepen_export.report import Report
    >>> r = Report("voc")
    >>> apply_policy(LabelSet.empty(), "voc", {"boxes"}, "raise", r) == LabelSet.empty()
    True
    """
    if on_unsupported not in ("raise", "warn", "drop"):
        raise ValueError(
            f"on_unsupported must be 'raise', 'warn' or 'drop', got {on_unsupported!r}"
        )
    unsupported = {
        k: len(labels.table(k)) for k in KINDS if k not in supported and len(labels.table(k))
    }
    report.extend(labels.issues)
    if not unsupported:
        return labels
    what = ", ".join(f"{n} {k}" for k, n in unsupported.items())
    if on_unsupported == "raise":
        raise ConversionError(
            f"{format} cannot hold {what}; pass on_unsupported='warn' (CLI: the default, or "
            "--on-unsupported warn) to write the rest, or choose a format that holds them "
            "(deepen-export formats)",
            format=format,
        )
    for kind, n in unsupported.items():
        line = unsupported_line(format, kind, n)
        record(
            report,
            labels,
            kind,
            np.arange(len(labels.table(kind))),
            "dropped",
            f"{format} cannot hold {kind}" + line.split("holds none", 1)[1],
        )
        if on_unsupported == "warn":
            warnings.warn(line, LossyConversionWarning, stacklevel=3)
    return labels.without(*unsupported)


_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dump_json(obj: Any, path: str | os.PathLike[str], *, indent: int | None = None) -> None:
    """Write JSON deterministically with orjson (UTF-8, keys in insertion order, ``\\n`` at the end).

    Compact documents use no spaces (``{"a":[1,2]}``) and are written piece by piece
    (:func:`json_chunks`), so a document of hundreds of MB is never held as one string; with
    ``indent`` (any value) the document is indented by two spaces, orjson's only indentation.
    Non-string keys become strings; NaN and infinities, which JSON cannot hold, are written as
    ``null``; integers beyond 64 bits go through the standard library instead.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp(), "a.json")
    >>> dump_json({"a": [1, 2.5, "é"]}, p)
    >>> p.read_text(encoding="utf-8")
    '{"a":[1,2.5,"é"]}\\n'
    >>> dump_json({"a": [1]}, p, indent=1)
    >>> p.read_text(encoding="utf-8")
    '{\\n  "a": [\\n    1\\n  ]\\n}\\n'
    """
    with status(f"writing {Path(path).name}"), open(path, "wb") as fh:
        if indent is not None:
            fh.write(_dumps(obj, indent=True))
        else:
            for chunk in json_chunks(obj):
                fh.write(chunk)
        fh.write(b"\n")


def json_chunks(obj: Any, depth: int = 3, batch: int = 2000) -> Iterator[bytes]:
    """Compact ``orjson.dumps(obj)`` in UTF-8 pieces that join to it.

    Dicts (with string keys) and lists down to ``depth`` levels are opened up; below that,
    and ``batch`` items at a time for longer ones, orjson does the work.

    Examples
    --------
    >>> doc = {"images": [{"id": 1}, {"id": 2}], "info": {}, "n": [1.5, None, True]}
    >>> b"".join(json_chunks(doc, batch=1)) == orjson.dumps(doc)
    True
    """
    if depth > 0 and type(obj) is dict and obj and all(type(k) is str for k in obj):
        sep = b"{"
        if len(obj) > batch:
            items = iter(obj.items())
            for _ in range(0, len(obj), batch):
                yield sep + _dumps(dict(islice(items, batch)))[1:-1]
                sep = b","
        else:
            for k, v in obj.items():
                yield sep + orjson.dumps(k) + b":"
                yield from json_chunks(v, depth - 1, batch)
                sep = b","
        yield b"}"
    elif depth > 0 and type(obj) is list and len(obj) > batch:
        sep = b"["
        for i in range(0, len(obj), batch):
            yield sep + _dumps(obj[i : i + batch])[1:-1]
            sep = b","
        yield b"]"
    else:
        yield _dumps(obj)


def json_bytes(obj: Any, *, indent: bool = False) -> bytes:
    """``obj`` as :func:`dump_json` writes it (without the final newline), as bytes.

    Examples
    --------
    >>> json_bytes({"a": [1]}, indent=True)
    b'{\\n  "a": [\\n    1\\n  ]\\n}'
    """
    return _dumps(obj, indent=indent)


def _dumps(obj: Any, *, indent: bool = False) -> bytes:
    try:
        return orjson.dumps(obj, option=_ORJSON | (orjson.OPT_INDENT_2 if indent else 0))
    except orjson.JSONEncodeError:
        # orjson stops at integers beyond 64 bits; the standard library writes them (same
        # layout; floats may be spelled differently, e.g. 1e-05)
        return json.dumps(
            obj,
            ensure_ascii=False,
            indent=2 if indent else None,
            separators=(",", ": ") if indent else (",", ":"),
            default=_plain,
        ).encode("utf-8")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic | np.ndarray):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} cannot be written as JSON")


def write_text(
    path: str | os.PathLike[str],
    *parts: str,
    chunk: int = 1 << 24,
    errors: str = "strict",
    newline: str | None = None,
) -> None:
    """Write ``parts`` one after the other as UTF-8, encoding at most ``chunk`` characters at once.

    ``errors`` and ``newline`` are those of :func:`open` (``Path.write_text`` defaults).

    For a document of hundreds of MB, ``write_text(a + b)`` holds the text, its concatenated
    copy and its encoded bytes at the same time; here only the text and one chunk are held.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp(), "a.json")
    >>> write_text(p, '{"a": 1}', "\\n", chunk=3)
    >>> p.read_text()
    '{"a": 1}\\n'
    """
    with open(path, "w", encoding="utf-8", errors=errors, newline=newline) as fh:
        for part in parts:
            for i in range(0, len(part), chunk):
                fh.write(part[i : i + chunk])


def pylist(col: npt.NDArray[Any]) -> list[Any]:
    """``col.tolist()`` with Python scalars also where an object column holds numpy scalars.

    Examples
    --------
    >>> pylist(np.array([np.int64(3), "a", None], dtype=object))
    [3, 'a', None]
    """
    values = col.tolist()
    if col.dtype != object or not any(issubclass(k, np.generic) for k in set(map(type, values))):
        return values
    return [v.item() if isinstance(v, np.generic) else v for v in values]


class FileWriter:
    """Writes many small files below ``root``, making each folder once (not once per file).

    Examples
    --------
    >>> import tempfile
    >>> w = FileWriter(tempfile.mkdtemp())
    >>> w.write("labels/a/1.txt", b"0 0.5 0.5 0.1 0.1\\n")
    >>> Path(w.root, "labels/a/1.txt").read_bytes()
    b'0 0.5 0.5 0.1 0.1\\n'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._made: set[str] = set()

    def write(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``root/rel`` (``rel`` already checked to stay below ``root``)."""
        path = os.path.join(self.root, rel)
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        with open(path, "wb") as fh:
            fh.write(data)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None, ahead: int = 2
) -> Iterator[R]:
    """``map(fn, items)`` computed in a thread pool, results in order, at most ``ahead``
    results per worker waiting: for kernels that release the GIL (Arrow, numpy, shapely,
    file writes) while the caller consumes the results one by one.

    ``workers`` defaults to the CPUs this process may use (at most 4); with one, no thread is
    started.

    Examples
    --------
    >>> list(ordered_map(lambda x: x * x, range(5), workers=2))
    [0, 1, 4, 9, 16]
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    n = workers if workers is not None else min(4, len(os.sched_getaffinity(0)))
    if n <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(n, thread_name_prefix="deepen-map") as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= n * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# value types whose equal values always have the same text (no -0.0 == 0.0, no unhashables)
_SAME_TEXT_TYPES = frozenset({str, bool, int, type(None), np.str_, np.bool_, np.int32, np.int64})


def texts_by_value(values: list[Any], text_of: Callable[[Any], str]) -> npt.NDArray[Any]:
    """``text_of(v)`` of each value (``""`` for None), as an object array, computed once per
    distinct value: attribute columns hold few distinct values among many labels.

    Examples
    --------
    >>> texts_by_value(["a", None, "a", "b"], lambda v: f"<{v}>").tolist()
    ['<a>', '', '<a>', '<b>']
    """
    codes, texts = codes_by_value(values, text_of)
    return np.array(texts, dtype=object)[codes]


def codes_by_value(
    values: list[Any], text_of: Callable[[Any], str]
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """``(codes, texts)``: ``texts[codes[i]]`` is ``text_of(values[i])`` (``""`` for None),
    each distinct text once and ``text_of`` called once per distinct value where equal values
    always have the same text (and once per value otherwise: floats, lists, dicts).

    Examples
    --------
    >>> codes, texts = codes_by_value(["a", None, "a", "b"], lambda v: f"<{v}>")
    >>> codes.tolist(), texts
    ([0, 1, 0, 2], ['<a>', '', '<b>'])
    """
    kinds = set(map(type, values)) - {type(None)}
    if len(kinds) <= 1 and kinds <= _SAME_TEXT_TYPES:  # one type: equal values, equal texts
        code_of = {v: i for i, v in enumerate(dict.fromkeys(values))}
        codes = np.fromiter(map(code_of.__getitem__, values), np.int64, len(values))
        return codes, ["" if v is None else text_of(v) for v in code_of]
    keyed: dict[Any, int] = {}
    texts: list[str] = []

    def one(v: Any) -> int:
        if v is None:
            key: Any = None
        elif type(v) not in _SAME_TEXT_TYPES:  # floats (-0.0 == 0.0), lists, dicts: each time
            key = ("text", text_of(v))
        else:
            key = (type(v), v)
        code = keyed.get(key)
        if code is None:
            code = keyed[key] = len(texts)
            texts.append("" if v is None else key[1] if key[0] == "text" else text_of(v))
        return code

    return np.fromiter(map(one, values), np.int64, len(values)), texts


WRITE_THREADS = int(os.environ.get("DEEPEN_EXPORT_WRITE_THREADS", "1"))
"""Threads of :func:`write_files` (``DEEPEN_EXPORT_WRITE_THREADS``). Creating small files waits
on the file system, not the CPU, and threads creating files in one folder contend for it: on
the 2-core test machine, 20,000 YOLO files took the same wall time from 1 or 2 threads, and 2
threads spent 60% more system time (4 threads more still). Raise it where the file system
gains from parallel writes (network file systems)."""


def write_files(
    root: str | os.PathLike[str],
    rels: Sequence[str],
    pieces: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    *,
    threads: int | None = None,
    description: str = "",
) -> None:
    """Write many files cut out of shared buffers: file ``i`` is the concatenation, over
    ``pieces``, of ``buf[starts[i]:ends[i]]`` for each ``(buf, starts, ends)``.

    ``rels`` are already checked to stay below ``root``. The files are written from a pool of
    ``threads`` threads (default :data:`WRITE_THREADS`; the file system's create and write
    calls release the GIL); folders are made once, first. ``description`` names the progress
    bar, advanced as files are written.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> buf = np.frombuffer(b"abcdef", np.uint8)
    >>> write_files(d, ["x/1.txt", "x/2.txt"], [(buf, np.array([0, 2]), np.array([2, 6]))])
    >>> Path(d, "x/2.txt").read_bytes()
    b'cdef'
    """
    paths = _new_paths(root, rels)
    sizes = sum((z - a for _, a, z in pieces), np.zeros(len(paths), np.int64)).tolist()
    views = [(np.ascontiguousarray(b).data, a.tolist(), z.tolist()) for b, a, z in pieces]

    def chunk(span: range) -> int:
        for i in span:
            _write_new(paths[i], [v[a[i] : z[i]] for v, a, z in views], sizes[i])
        return len(span)

    n = len(paths)
    threads = WRITE_THREADS if threads is None else threads
    with task(description, total=n) as advance:
        if threads <= 1 or n < 64:
            contents = (([v[a[i] : z[i]] for v, a, z in views], sizes[i]) for i in range(n))
            _write_in_turn(paths, contents, advance)
            return
        step = max(16, -(-n // (threads * 8)))  # a few chunks per thread: even finish
        spans = [range(a, min(a + step, n)) for a in range(0, n, step)]
        with ThreadPoolExecutor(threads) as pool:
            for done in pool.map(chunk, spans):
                advance(done)


def write_each(
    root: str | os.PathLike[str],
    rels: Sequence[str],
    blobs: Iterable[bytes],
    *,
    description: str = "",
) -> None:
    """Write file ``rels[i]`` with the ``i``-th of ``blobs``, each as it comes.

    For files made one at a time and large in all (VOC's XML: 600 bytes an object): only the
    file being written is held, not every file's bytes and their join. ``rels`` are already
    checked to stay below ``root``; folders are made once, first.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_each(d, ["x/1.txt", "2.txt"], (t.encode() for t in ("ab", "cd")))
    >>> Path(d, "x/1.txt").read_bytes(), Path(d, "2.txt").read_bytes()
    (b'ab', b'cd')
    """
    paths = _new_paths(root, rels)
    with task(description, total=len(paths)) as advance:
        _write_in_turn(paths, (([b], len(b)) for b in blobs), advance)


def _new_paths(root: str | os.PathLike[str], rels: Sequence[str]) -> list[str]:
    """The paths of ``rels`` below ``root``, their folders made (each once)."""
    base = os.fspath(root)
    if any(r.startswith("/") for r in rels):  # pragma: no cover - rels are checked relative
        paths = [os.path.join(base, r) for r in rels]
    else:
        prefix = os.path.join(base, "")
        paths = [prefix + r for r in rels]
    for parent in dict.fromkeys(p.rpartition("/")[0] for p in paths):
        os.makedirs(parent, exist_ok=True)
    return paths


def _write_in_turn(
    paths: list[str],
    contents: Iterable[tuple[list[Any], int]],
    advance: Callable[[int], None],
) -> None:
    """Write ``paths`` in this thread, each with its ``(parts, size)`` of ``contents``; the
    progress advanced every 256 files (a display update per file costs more than the file)
    and by the files written when one fails."""
    done = 0
    try:
        for path, (parts, size) in zip(paths, contents, strict=True):
            _write_new(path, parts, size)
            done += 1
            if done == 256:
                advance(done)
                done = 0
    finally:
        advance(done)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_BINARY", 0)


def _write_new(path: str, parts: list[Any], size: int) -> None:
    """``open(path, "wb").write(b"".join(parts))`` in three system calls, without the join:
    ``open()`` also asks whether the file is a terminal, stats it and seeks (tens of thousands
    of small files: a tenth of a second of CPU per 50,000 files). ``size`` is the parts' total."""
    fd = os.open(path, _NEW_FILE, 0o666)
    try:
        done = os.writev(fd, parts) if parts else 0
        if done < size:  # a short write (a regular file takes all at once): the rest in turn
            rest = memoryview(b"".join(parts))[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]
    finally:
        os.close(fd)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a writer builds large documents.

    Building a few million small dicts and lists (an OpenLABEL or COCO document) triggers
    collections that walk every object built so far again and again: up to half of the
    export time. These documents hold no reference cycles, so there is nothing to collect;
    reference counting still frees everything as usual.

    Examples
    --------
    >>> with paused_gc():
    ...     gc.isenabled()
    False
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def finish(report: Report, folder: str | os.PathLike[str]) -> Report:
    """Write ``report.json`` into ``folder`` (the output's temporary folder) and return the report."""
    report.write_json(Path(folder, "report.json"))
    return report


def frame_groups(table: Table) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(order, boundaries)`` to visit a table's rows grouped by frame, stable within a frame."""
    frame = table.frame  # type: ignore[attr-defined]
    order = np.argsort(frame, kind="stable")
    bounds = np.flatnonzero(np.diff(frame[order])) + 1
    return order, np.concatenate([[0], bounds, [len(order)]]).astype(np.int64)


# ElementTree's own escaping, so the text below matches ET.tostring byte for byte
xml_escape_text = ET._escape_cdata  # type: ignore[attr-defined]
xml_escape_attrib = ET._escape_attrib  # type: ignore[attr-defined]


def xml_text(root: ET.Element, *, indent: str | None = "  ") -> str:
    """``ET.indent(root, indent)`` then ``ET.tostring(root, encoding="unicode")``, but faster.

    ``ET.tostring`` writes each piece through a text stream (millions of small writes for a
    large document) and ``ET.indent`` walks the tree once more; here the pieces go to one list
    and the indentation is added on the way, with the same rules (whitespace-only text and
    tails are replaced, other text is kept). ``root`` is not modified. Plain trees only: no
    namespaces, comments or processing instructions (what the writers build).

    Examples
    --------
    >>> root = ET.fromstring('<a x="1&amp;2"><b>t</b><c/></a>')
    >>> xml_text(root)
    '<a x="1&amp;2">\\n  <b>t</b>\\n  <c />\\n</a>'
    >>> ET.indent(root); xml_text(root) == ET.tostring(root, encoding="unicode")
    True
    """
    out: list[str] = []
    w = out.append
    pads = ["\n"]

    def pad(level: int) -> str:
        while len(pads) <= level:
            pads.append(pads[-1] + (indent or ""))
        return pads[level]

    def ser(el: ET.Element, level: int) -> None:
        tag = el.tag
        w("<" + tag)
        for k, v in el.items():
            w(f' {k}="{xml_escape_attrib(v)}"')
        n = len(el)
        text = el.text
        if n and indent is not None and (not text or not text.strip()):
            text = pad(level + 1)
        if not (text or n):
            w(" />")
            return
        w(">")
        if text:
            w(xml_escape_text(text))
        for i, child in enumerate(el):
            ser(child, level + 1)
            tail = child.tail
            if indent is not None and (not tail or not tail.strip()):
                tail = pad(level + 1) if i < n - 1 else pad(level)
            if tail:
                w(xml_escape_text(tail))
        w("</" + tag + ">")

    ser(root, 0)
    if root.tail:
        w(xml_escape_text(root.tail))
    return "".join(out)
