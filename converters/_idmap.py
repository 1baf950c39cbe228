"""Stable ids across exports: an id map file pins category, image and annotation ids.

The file is JSON::

    {"categories": {"car": 1, ...},
     "images": {"<dataset_id>|<sensor_id>|<file_id>": 1, ...},
     "annotations": {"<image key>|<label_id>": 1, ...}}

Keys already in the map keep their id; new keys get ids after the largest id of their section,
in the order the writer meets them. Keys that are no longer exported stay in the map, so their
ids are never reused for something else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters._base import atomic_file
from deepen_export.errors import ConversionError

SECTIONS = ("categories", "images", "annotations")


class IdMap:
    """Ids by key for each section; see the module docstring.

    Examples
    --------
    >>> m = IdMap({"categories": {"car": 3}})
    >>> m.assign("categories", ["bus", "car"]).tolist()
    [4, 3]
    """

    def __init__(self, data: dict[str, dict[str, int]] | None = None) -> None:
        data = data or {}
        self.sections: dict[str, dict[str, int]] = {
            s: {str(k): int(v) for k, v in data.get(s, {}).items()} for s in SECTIONS
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> IdMap:
        """Read the map at ``path``; an empty map when ``path`` is None or does not exist."""
        if path is None or not Path(path).exists():
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConversionError(f"cannot read id map {path}: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(data.get(s, {}), dict) for s in SECTIONS
        ):
            raise ConversionError(
                f"id map {path} must be a JSON object with {', '.join(SECTIONS)} objects"
            )
        return cls(data)

    def assign(self, section: str, keys: Sequence[str], *, start: int = 1) -> npt.NDArray[np.int64]:
        """Ids of ``keys`` (pinned ones kept, new ones appended after the largest)."""
        table = self.sections[section]
        nxt = max(table.values(), default=start - 1) + 1
        out = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            if k not in table:
                table[k] = nxt
                nxt += 1
            out[i] = table[k]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready map, keys sorted by id within each section."""
        return {s: dict(sorted(v.items(), key=lambda kv: kv[1])) for s, v in self.sections.items()}

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), indent=1, ensure_ascii=False)``, built line by line.

        The standard library indents with its pure-Python encoder, slow on a million
        annotation ids; every value here is a string key and an int id, so a line is simply
        ``  "key": id``.

        Examples
        --------
        >>> m = IdMap({"categories": {"car": 3, "bus": 1}})
        >>> m.to_json() == json.dumps(m.to_dict(), indent=1, ensure_ascii=False)
        True
        """
        sections = []
        for name, items in self.to_dict().items():
            body = ",\n".join([f"  {encode_basestring(k)}: {int(v)!r}" for k, v in items.items()])
            sections.append(
                f" {encode_basestring(name)}: " + (f"{{\n{body}\n }}" if body else "{}")
            )
        return "{\n" + ",\n".join(sections) + "\n}"

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the map to ``path`` atomically."""
        text = self.to_json() + "\n"
        with atomic_file(path) as fh:
            fh.write(text.encode("utf-8"))
