"""The conversion ledger: what was written, and every label dropped, clipped, repaired or changed.

A :class:`Report` is returned by every ``converters.<format>.write`` and is also attached to a parsed
:class:`~deepen_export.model.LabelSet` (``labels.issues``) for input that could not be taken as it was.
Each :class:`Issue` names the ``file_id`` and ``label_id`` it is about, so nothing is lost silently.

Writers record the issues they have about many labels at once (one reason for every polygon
written as a box, say) as columns (:meth:`Report.add_rows`): one :class:`IssueRows` holds the
file and label id arrays of the block, and its ``Issue`` objects are made only when someone
reads :attr:`Report.issues`; counts and ``report.json`` are made from the columns.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from deepen_export.model import Action, Issue

__all__ = ["Action", "Issue", "IssueGroup", "IssueRows", "Report"]


@dataclass(frozen=True, eq=False)
class IssueRows:
    """Issues of one action, reason and kind about many labels, held as columns.

    Parameters
    ----------
    action, reason, kind
        Shared by every issue of the block.
    files : ndarray
        File ids to pick from (a frames table's ``file_id`` column: each distinct id once).
    file_index : ndarray of int
        Per issue, its file's position in ``files``.
    label_ids : ndarray or None
        Per issue, its label id (``None``: the issues name no label).

    Examples
    --------
    >>> rows = IssueRows("changed", "box", "polygons", np.array(["a", "b"], dtype=object),
    ...                  np.array([1, 1]), np.array(["p:1", "p:2"], dtype=object))
    >>> [(i.file_id, i.label_id) for i in rows.issues()]
    [('b', 'p:1'), ('b', 'p:2')]
    """

    action: Action
    reason: str
    kind: str | None
    files: npt.NDArray[Any]
    file_index: npt.NDArray[np.integer[Any]]
    label_ids: npt.NDArray[Any] | None

    def __len__(self) -> int:
        return len(self.file_index)

    def file_ids(self) -> list[str]:
        """File id of each issue, as text."""
        return list(map(str, self.files[self.file_index].tolist()))

    def label_id_texts(self) -> list[str | None]:
        """Label id of each issue, as text (``None`` throughout when the block has none)."""
        if self.label_ids is None:
            return [None] * len(self)
        return list(map(str, self.label_ids.tolist()))

    def issues(self) -> list[Issue]:
        """The block as :class:`Issue` objects."""
        n = len(self)
        a, r, k = repeat(self.action, n), repeat(self.reason, n), repeat(self.kind, n)
        return list(map(Issue, a, r, self.file_ids(), self.label_id_texts(), k))


_Part = list[Issue] | IssueRows


class IssueGroup(NamedTuple):
    """Issues of one action, reason and kind: how many, how many name a label, and their files."""

    action: str
    reason: str
    kind: str | None
    issues: int
    labelled: int
    files: frozenset[str | None]


def _group_list(issues: list[Issue]) -> Iterator[IssueGroup]:
    by: dict[tuple[str, str, str | None], list[Issue]] = {}
    for i in issues:
        by.setdefault((i.action, i.reason, i.kind), []).append(i)
    for (a, r, k), rows in by.items():
        labelled = [i for i in rows if i.label_id]
        yield IssueGroup(a, r, k, len(rows), len(labelled), frozenset(i.file_id for i in labelled))


def _group_block(b: IssueRows, lo: int, hi: int) -> IssueGroup:
    index = b.file_index[lo:hi]
    n = len(index)
    if b.label_ids is None:
        return IssueGroup(b.action, b.reason, b.kind, n, 0, frozenset())
    ids = b.label_ids[lo:hi]
    # as issues() names them: the text of each label id (None is "None")
    named = np.fromiter((bool(str(v)) for v in ids.tolist()), dtype=bool, count=n)
    files = frozenset(map(str, b.files[np.unique(index[named])].tolist()))
    return IssueGroup(b.action, b.reason, b.kind, n, int(named.sum()), files)


class Report:
    """What a conversion wrote and every label it did not carry over unchanged.

    Parameters
    ----------
    format : str
        Target format name.
    written : dict
        Counts of what was written, by kind (``{"images": 10, "annotations": 52}``).
    issues : list of Issue
        Every label dropped, clipped, repaired or changed (blocks recorded with
        :meth:`add_rows` are turned into ``Issue`` objects when this is first read).
    files : list of str
        Paths written, relative to the destination.

    Examples
    --------
    >>> r = Report("coco")
    >>> r.add("dropped", "cuboids have no COCO form", file_id="0.pcd", label_id="car:1", kind="cuboids")
    >>> r.counts()
    {'dropped': 1}
    """

    def __init__(
        self,
        format: str,
        written: dict[str, int] | None = None,
        issues: list[Issue] | None = None,
        files: list[str] | None = None,
    ) -> None:
        self.format = format
        self.written: dict[str, int] = {} if written is None else written
        self.files: list[str] = [] if files is None else files
        # in the order recorded: lists of Issue objects and column blocks
        self._parts: list[_Part] = [[] if issues is None else issues]

    def __repr__(self) -> str:
        return (
            f"Report(format={self.format!r}, written={self.written!r}, "
            f"issues=<{len(self)} issues>, files=<{len(self.files)} files>)"
        )

    @property
    def issues(self) -> list[Issue]:
        """Every issue as an :class:`Issue` (column blocks are turned into objects here, once)."""
        head = cast(list[Issue], self._parts[0])  # the first part is always a list
        if len(self._parts) > 1:
            for part in self._parts[1:]:
                head.extend(part if isinstance(part, list) else part.issues())
            del self._parts[1:]
        return head

    @issues.setter
    def issues(self, value: list[Issue]) -> None:
        self._parts = [value]

    def add(
        self,
        action: Action,
        reason: str,
        *,
        file_id: str | None = None,
        label_id: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Record one issue."""
        self._tail().append(Issue(action, reason, file_id, label_id, kind))

    def extend(self, issues: Iterable[Issue]) -> None:
        """Record several issues (for example the parse issues of the input)."""
        self._tail().extend(issues)

    def add_rows(
        self,
        action: Action,
        reason: str,
        *,
        files: npt.ArrayLike,
        file_index: npt.ArrayLike,
        label_ids: npt.ArrayLike | None = None,
        kind: str | None = None,
    ) -> None:
        """Record one issue per entry of ``file_index``, held as columns until read.

        Parameters
        ----------
        action, reason, kind
            Shared by every issue recorded here.
        files : array_like
            File ids to pick from (typically ``labels.frames.file_id``, not copied).
        file_index : array_like of int
            Per issue, its file's position in ``files``.
        label_ids : array_like, optional
            Per issue, its label id.

        Examples
        --------
        >>> r = Report("yolo")
        >>> r.add_rows("changed", "polygon written as its bounding box", kind="polygons",
        ...            files=["a.png", "b.png"], file_index=[1, 0], label_ids=["p:1", "p:2"])
        >>> r.counts(), r.issues[0].file_id
        ({'changed': 2}, 'b.png')
        """
        index = np.asarray(file_index)
        if len(index) == 0:
            return
        lids = None if label_ids is None else np.asarray(label_ids, dtype=object)
        block = IssueRows(action, reason, kind, np.asarray(files, dtype=object), index, lids)
        self._parts.append(block)

    def _tail(self) -> list[Issue]:
        last = self._parts[-1]
        if isinstance(last, list):
            return last
        fresh: list[Issue] = []
        self._parts.append(fresh)
        return fresh

    def __iter__(self) -> Iterator[Issue]:
        return chain.from_iterable(p if isinstance(p, list) else p.issues() for p in self._parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def groups(self, start: int = 0, stop: int | None = None) -> list[IssueGroup]:
        """The issues ``start:stop`` grouped by action, reason and kind (blocks stay columns).

        Examples
        --------
        >>> r = Report("yolo")
        >>> r.add("dropped", "image size unknown", file_id="a.png", label_id="b:1")
        >>> r.add_rows("changed", "as box", files=["a.png", "b.png"], file_index=[1, 1],
        ...            label_ids=["p:1", "p:2"])
        >>> [(g.action, g.issues, sorted(g.files)) for g in r.groups(1)]
        [('changed', 2, ['b.png'])]
        """
        end = len(self) if stop is None else min(stop, len(self))
        out: list[IssueGroup] = []
        at = 0
        for p in self._parts:
            lo, hi = max(start - at, 0), min(end - at, len(p))
            at += len(p)
            if lo >= hi:
                continue
            if isinstance(p, list):
                out.extend(_group_list(p[lo:hi]))
            else:
                out.append(_group_block(p, lo, hi))
        return out

    def counts(self) -> dict[str, int]:
        """Number of issues per action."""
        c: Counter[str] = Counter()
        for p in self._parts:
            if isinstance(p, list):
                c.update(i.action for i in p)
            else:
                c[p.action] += len(p)
        return dict(c)

    def by_reason(self) -> list[tuple[str, str, int]]:
        """``(action, reason, count)`` rows, most frequent first."""
        c: Counter[tuple[str, str]] = Counter()
        for p in self._parts:
            if isinstance(p, list):
                c.update((i.action, i.reason) for i in p)
            else:
                c[p.action, p.reason] += len(p)
        return [(a, r, n) for (a, r), n in c.most_common()]

    def summary(self) -> str:
        """A few lines for the terminal."""
        parts = [
            f"{self.format}: wrote "
            + (", ".join(f"{n} {k}" for k, n in self.written.items()) or "nothing")
        ]
        if not len(self):
            parts.append("no label was dropped or changed")
        rows = self.by_reason()
        for action, reason, n in rows[:10]:
            parts.append(f"  {n:>7} {action}: {reason}")
        if len(rows) > 10:
            parts.append("  ... (see report.json for all)")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written to ``report.json``."""
        return {
            **self._head(),
            "issues": [
                {
                    "action": i.action,
                    "reason": i.reason,
                    "file_id": i.file_id,
                    "label_id": i.label_id,
                    "kind": i.kind,
                }
                for i in self
            ],
        }

    def _head(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "written": dict(self.written),
            "counts": self.counts(),
            "files": list(self.files),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text with ``indent=2`` (what :meth:`write_json` writes).

        Byte for byte ``json.dumps(self.to_dict(), indent=2, ensure_ascii=False)``, but the
        issues are formatted from a template (column blocks in bulk): with ``indent`` the
        standard library falls back to its pure-Python encoder, which takes seconds on a few
        hundred thousand issues.

        Examples
        --------
        >>> r = Report("coco")
        >>> r.add("dropped", "no COCO form", file_id="0.pcd", kind="cuboids")
        >>> r.to_json() == json.dumps(r.to_dict(), indent=2, ensure_ascii=False)
        True
        """
        return "".join(self._json_pieces())

    def _json_pieces(self) -> Iterator[str]:
        """:meth:`to_json` in pieces (one per block of issues), for writing without one string."""
        text = json.dumps(self._head(), indent=2, ensure_ascii=False)
        yield f'{text[:-2]},\n  "issues": '
        blocks = [p for p in self._parts if len(p)]
        if not blocks:
            yield "[]\n}"
            return
        memo: dict[str, str] = {}  # actions, reasons and kinds repeat: encode each once
        sep = "[\n"
        for part in blocks:
            yield sep
            if isinstance(part, list):
                yield from _issues_json(part, memo)
            else:
                yield from _rows_json(part, memo)
            sep = ",\n"
        yield "\n  ]\n}"

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` (and a newline) to ``path`` atomically, piece by piece."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for piece in self._json_pieces():
                fh.write(piece)
            fh.write("\n")
        os.replace(tmp, p)


_ISSUE_JSON = (
    '    {{\n      "action": {},\n      "reason": {},\n      "file_id": {},\n'
    '      "label_id": {},\n      "kind": {}\n    }}'
)
_BATCH = 50_000  # issues formatted per piece of report.json


def _enc(v: Any) -> str:
    if v is None:
        return "null"
    if type(v) is str:
        return encode_basestring(v)
    return json.dumps(v, ensure_ascii=False)


def _same(v: Any, memo: dict[str, str]) -> str:
    """:func:`_enc` of a value that repeats (action, reason, kind), each encoded once."""
    if type(v) is not str:
        return _enc(v)
    text = memo.get(v)
    if text is None:
        text = memo[v] = encode_basestring(v)
    return text


def _issues_json(issues: Sequence[Issue], memo: dict[str, str]) -> Iterator[str]:
    """Issue objects as entries of the ``issues`` list of ``report.json``, ``,\\n`` between."""
    for a in range(0, len(issues), _BATCH):
        chunk = issues[a : a + _BATCH]
        yield ",\n" * (a > 0) + ",\n".join(
            [
                _ISSUE_JSON.format(
                    _same(i.action, memo),
                    _same(i.reason, memo),
                    _enc(i.file_id),
                    _enc(i.label_id),
                    _same(i.kind, memo),
                )
                for i in chunk
            ]
        )


def _rows_json(rows: IssueRows, memo: dict[str, str]) -> Iterator[str]:
    """A column block as entries of the ``issues`` list, from a template filled in bulk.

    Each entry is ``head + file id + middle + label id + tail``; the file ids are encoded once
    per file, then picked per issue.
    """
    template = _ISSUE_JSON.format(
        _same(rows.action, memo), _same(rows.reason, memo), "\0", "\0", _same(rows.kind, memo)
    )
    head, middle, tail = template.split("\0")  # encoded text holds no raw NUL
    if len(rows.files) <= len(rows):  # each file's text once, then picked per issue
        files = np.array(list(map(encode_basestring, map(str, rows.files.tolist()))), dtype=object)
        file_texts = files[rows.file_index]
    else:
        file_texts = np.array(list(map(encode_basestring, rows.file_ids())), dtype=object)
    between = tail + ",\n" + head
    for a in range(0, len(rows), _BATCH):
        fid = file_texts[a : a + _BATCH].tolist()
        n = len(fid)
        if rows.label_ids is None:
            lid = ["null"] * n
        else:
            lid = list(map(encode_basestring, map(str, rows.label_ids[a : a + n].tolist())))
        seq: list[str] = [between] * (4 * n)
        seq[1::4] = fid
        seq[2::4] = [middle] * n
        seq[3::4] = lid
        seq[0] = head if a == 0 else between
        yield "".join(seq) + tail * (a + n == len(rows))
