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

import gc
import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from deepen_export._io import atomic_dir, atomic_file, safe_path
from deepen_export._progress import status
from deepen_export.errors import ConversionError, LossyConversionWarning
from deepen_export.model import KINDS, LabelSet, Table
from deepen_export.report import Action, Report

__all__ = [
    "FileWriter",
    "OnUnsupported",
    "apply_policy",
    "atomic_dir",
    "atomic_file",
    "dump_json",
    "finish",
    "json_chunks",
    "paused_gc",
    "pylist",
    "record",
    "safe_path",
    "write_text",
    "xml_escape_attrib",
    "xml_escape_text",
    "xml_text",
]

OnUnsupported = Literal["raise", "warn", "drop"]


def record(
    report: Report,
    labels: LabelSet,
    kind: str,
    rows: npt.ArrayLike,
    action: Action,
    reason: str,
) -> None:
    """Add one report entry per label in ``rows`` of table ``kind`` (file and label ids filled in)."""
    report.issues.extend(labels.row_issues(kind, rows, action, reason))


def apply_policy(
    labels: LabelSet,
    format: str,
    supported: frozenset[str] | set[str],
    on_unsupported: OnUnsupported,
    report: Report,
) -> LabelSet:
    """Empty the kinds ``format`` cannot hold, following ``on_unsupported``.

    ``"raise"`` raises :class:`ConversionError` naming the kinds and counts, ``"warn"`` drops them
    with a :class:`LossyConversionWarning`, ``"drop"`` drops them; every dropped label is recorded
    in ``report`` with its file and label id. The input's own issues (labels the parser could
    not take) go into the report here too, so every writer's ``report.json`` lists them.

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
            f"{format} cannot hold {what}; pass on_unsupported='drop' (CLI: --on-unsupported drop) "
            "to leave them out, or choose a format that holds them (deepen-export formats)",
            format=format,
        )
    for kind in unsupported:
        record(
            report,
            labels,
            kind,
            np.arange(len(labels.table(kind))),
            "dropped",
            f"{format} cannot hold {kind}",
        )
    if on_unsupported == "warn":
        warnings.warn(f"{format}: dropped {what}", LossyConversionWarning, stacklevel=3)
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
    if col.dtype != object:
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
