"""Names in text formats: transform for a format's rules, report each change, never merge two.

Every text writer that changes a category name, attribute value or file name goes through here, so
the rule is one: each transformation is a ``changed`` report entry naming the old and the new text,
and two different names that the transformation would merge are **disambiguated** (the later one,
in input order, gets ``_2``, ``_3`` ... and a report entry) rather than silently written as one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet, LabelTable
from deepen_export.report import Report

__all__ = ["check_list_names", "unique_names", "xml_safe_labels", "xml_text"]

# XML 1.0 allows tab, newline and carriage return but no other C0 control, no lone surrogate
# and not U+FFFE/U+FFFF: a document holding one is refused by every parser (expat, lxml)
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by ``?``.

    Examples
    --------
    >>> xml_text("car\\x01x")
    'car?x'
    """
    return _XML_BAD.sub("?", text)


def unique_names(
    names: Sequence[str],
    transform: Callable[[str], str],
    report: Report,
    what: str,
    *,
    inverse: Callable[[str], str] | None = None,
) -> list[str]:
    """``transform`` of every name, each change reported, collisions disambiguated.

    A name the transformation leaves empty or blank becomes ``unnamed``. When two different inputs end
    up equal, the first keeps the name and each later one gets ``_2``, ``_3`` ... (also reported),
    so a reader sees as many names as were written. ``inverse`` is what the format's reader makes
    of a written name: a change it undoes (``car`` written ``Car``, read ``car``) is not reported.

    Examples
    --------
    >>> r = Report("kitti")
    >>> unique_names(["car", "Car", " "], str.capitalize, r, "category")
    ['Car', 'Car_2', 'Unnamed']
    >>> len(r)
    3
    """
    out: list[str] = []
    taken: set[str] = set()
    seen: dict[str, str] = {}
    for name in names:
        if name in seen:  # the same input twice keeps one output
            out.append(seen[name])
            continue
        new = transform(name)
        if not new.strip():  # an empty or blank field would not read back as a name
            new = transform("unnamed").strip() or "unnamed"
        base, k = new, 2
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        if (inverse(new) if inverse is not None else new) != name:
            why = f" (as {base!r} is already written for another {what})" if new != base else ""
            report.add("changed", f"{what} {name!r} written as {new!r}{why}")
        taken.add(new)
        seen[name] = new
        out.append(new)
    return out


def xml_safe_labels(labels: LabelSet, report: Report, fmt: str) -> LabelSet:
    """``labels`` with categories, label ids, attribute names and values XML can hold.

    Each changed category or attribute name is one report entry; each changed label id or value
    one entry per label (file and label ids filled in). A file id XML cannot hold is refused: it
    names the image, so writing it changed would lose the link to it.

    Examples
    --------
    >>> from deepen_export.model import Frames
    >>> r = Report("voc")
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["a.png"]), categories=("c\\x07",))
    >>> xml_safe_labels(ls, r, "voc").categories
    ('c?',)
    """
    for f in labels.frames.file_id.tolist():
        if _XML_BAD.search(str(f)):
            raise ConversionError(
                f"{fmt}: file id {f!r} holds a character XML cannot hold; rename the file",
                format=fmt,
            )
    cats = tuple(unique_names(labels.categories, xml_text, report, "category"))
    changes: dict[str, Any] = {"categories": cats} if cats != tuple(labels.categories) else {}
    for kind, table in labels:
        if isinstance(table, LabelTable):
            new = _xml_safe_table(labels, kind, table, report)
            if new is not table:
                changes[kind] = new
    return labels.replace(**changes) if changes else labels


def _xml_safe_table(labels: LabelSet, kind: str, table: LabelTable, report: Report) -> Any:
    """``table`` with label ids and attributes XML can hold (itself when nothing changes)."""
    ids = [str(v) for v in table.label_id.tolist()]
    bad = np.array([_XML_BAD.search(v) is not None for v in ids], dtype=bool)
    if bad.any():  # CVAT joins elements by label id: two ids never become one
        report.issues.extend(
            labels.row_issues(kind, bad, "changed", "label id: characters XML cannot hold as '?'")
        )
        new_ids = unique_names(ids, xml_text, Report(report.format), "label id")
        table = dataclasses.replace(table, label_id=np.array(new_ids, dtype=object))
    attrs: dict[str, Any] = dict(getattr(table, "attributes", None) or {})
    if not attrs:
        return table
    keys = unique_names(list(attrs), xml_text, report, f"{kind} attribute name")
    new_attrs: dict[str, Any] = {}
    dirty = keys != list(attrs)
    for key, (old_key, col) in zip(keys, attrs.items(), strict=True):
        vals = list(col)
        bad = np.array([isinstance(v, str) and _XML_BAD.search(v) is not None for v in vals])
        if bad.any():
            dirty = True
            vals = [xml_text(v) if b else v for v, b in zip(vals, bad.tolist(), strict=True)]
            report.issues.extend(
                labels.row_issues(
                    kind,
                    bad,
                    "changed",
                    f"attribute {old_key!r}: characters XML cannot hold as '?'",
                )
            )
        new_attrs[key] = vals
    return table.with_attributes(new_attrs) if dirty else table


def check_list_names(names: Sequence[str], fmt: str) -> None:
    """Refuse file names a one-name-per-line list (whitespace-separated) cannot hold.

    CULane-style lists split each line at whitespace, so a name with a space, tab or newline
    would read back as another file (or several). Renaming the image would break the link to it,
    so the name is refused with a clear message instead.

    Examples
    --------
    >>> check_list_names(["a/b.jpg"], "culane")
    >>> check_list_names(["a b.jpg"], "culane")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: culane: file id 'a b.jpg' holds whitespace, ...
    """
    for n in names:
        if re.search(r"\s", n) or _XML_BAD.search(n):
            raise ConversionError(
                f"{fmt}: file id {n!r} holds whitespace, which list/*.txt cannot hold "
                "(its reader splits lines at whitespace); rename the file",
                format=fmt,
            )
