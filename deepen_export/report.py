"""The conversion ledger: what was written, and every label dropped, clipped, repaired or changed.

A :class:`Report` is returned by every ``converters.<format>.write`` and is also attached to a parsed
:class:`~deepen_export.model.LabelSet` (``labels.issues``) for input that could not be taken as it was.
Each :class:`Issue` names the ``file_id`` and ``label_id`` it is about, so nothing is lost silently.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from deepen_export.model import Action, Issue

__all__ = ["Action", "Issue", "Report"]


@dataclass
class Report:
    """What a conversion wrote and every label it did not carry over unchanged.

    Parameters
    ----------
    format : str
        Target format name.
    written : dict
        Counts of what was written, by kind (``{"images": 10, "annotations": 52}``).
    issues : list of Issue
        Every label dropped, clipped, repaired or changed.
    files : list of str
        Paths written, relative to the destination.

    Examples
    --------
    >>> r = Report("coco")
    >>> r.add("dropped", "cuboids have no COCO form", file_id="0.pcd", label_id="car:1", kind="cuboids")
    >>> r.counts()
    {'dropped': 1}
    """

    format: str
    written: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

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
        self.issues.append(Issue(action, reason, file_id, label_id, kind))

    def extend(self, issues: Iterable[Issue]) -> None:
        """Record several issues (for example the parse issues of the input)."""
        self.issues.extend(issues)

    def __iter__(self) -> Iterator[Issue]:
        return iter(self.issues)

    def __len__(self) -> int:
        return len(self.issues)

    def counts(self) -> dict[str, int]:
        """Number of issues per action."""
        return dict(Counter(i.action for i in self.issues))

    def by_reason(self) -> list[tuple[str, str, int]]:
        """``(action, reason, count)`` rows, most frequent first."""
        c = Counter((i.action, i.reason) for i in self.issues)
        return [(a, r, n) for (a, r), n in c.most_common()]

    def summary(self) -> str:
        """A few lines for the terminal."""
        parts = [
            f"{self.format}: wrote "
            + (", ".join(f"{n} {k}" for k, n in self.written.items()) or "nothing")
        ]
        if not self.issues:
            parts.append("no label was dropped or changed")
        for action, reason, n in self.by_reason()[:10]:
            parts.append(f"  {n:>7} {action}: {reason}")
        if len(self.by_reason()) > 10:
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
                for i in self.issues
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
        issues are formatted from a template: with ``indent`` the standard library falls back to
        its pure-Python encoder, which takes seconds on a few hundred thousand issues.

        Examples
        --------
        >>> r = Report("coco")
        >>> r.add("dropped", "no COCO form", file_id="0.pcd", kind="cuboids")
        >>> r.to_json() == json.dumps(r.to_dict(), indent=2, ensure_ascii=False)
        True
        """
        text = json.dumps(self._head(), indent=2, ensure_ascii=False)
        return f'{text[:-2]},\n  "issues": {_issues_json(self.issues)}\n}}'

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        os.replace(tmp, p)


_ISSUE_JSON = (
    '    {{\n      "action": {},\n      "reason": {},\n      "file_id": {},\n'
    '      "label_id": {},\n      "kind": {}\n    }}'
)


def _issues_json(issues: Sequence[Issue]) -> str:
    """The ``issues`` list of ``report.json`` as ``json.dumps(..., indent=2)`` nests it."""
    if not issues:
        return "[]"

    def enc(v: Any) -> str:
        if v is None:
            return "null"
        if type(v) is str:
            return encode_basestring(v)
        return json.dumps(v, ensure_ascii=False)

    memo: dict[str, str] = {}  # actions, reasons and kinds repeat: encode each once

    def same(v: Any) -> str:
        if type(v) is not str:
            return enc(v)
        text = memo.get(v)
        if text is None:
            text = memo[v] = encode_basestring(v)
        return text

    body = ",\n".join(
        [
            _ISSUE_JSON.format(
                same(i.action), same(i.reason), enc(i.file_id), enc(i.label_id), same(i.kind)
            )
            for i in issues
        ]
    )
    return f"[\n{body}\n  ]"
