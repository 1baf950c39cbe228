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
import pyarrow as pa
import pyarrow.compute as pc

from converters import _jsontext as jt
from converters._base import atomic_file
from deepen_export.errors import ConversionError

SECTIONS = ("categories", "images", "annotations")


class IdMap:
    """Ids by key for each section; see the module docstring.

    Each section is held as columns (keys as an Arrow string array, ids as int64), so a million
    annotation keys are looked up, assigned and written by kernels, not one dict entry each.

    Examples
    --------
    >>> m = IdMap({"categories": {"car": 3}})
    >>> m.assign("categories", ["bus", "car"]).tolist()
    [4, 3]
    """

    def __init__(self, data: dict[str, dict[str, int]] | None = None) -> None:
        data = data or {}
        self._keys: dict[str, pa.Array] = {}
        self._ids: dict[str, npt.NDArray[np.int64]] = {}
        for s in SECTIONS:
            items = data.get(s, {})
            self._keys[s] = pa.array([str(k) for k in items], type=pa.string())
            self._ids[s] = np.array([int(v) for v in items.values()], dtype=np.int64)

    @property
    def sections(self) -> dict[str, dict[str, int]]:
        """``{section: {key: id}}`` in the order keys were added."""
        return {
            s: dict(zip(self._keys[s].to_pylist(), self._ids[s].tolist(), strict=True))
            for s in SECTIONS
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

    def assign(
        self,
        section: str,
        keys: Sequence[str] | pa.Array,
        *,
        start: int = 1,
        distinct: bool = False,
    ) -> npt.NDArray[np.int64]:
        """Ids of ``keys`` (pinned ones kept, new ones appended after the largest).

        ``distinct=True`` promises the keys are all different (as :func:`unique_texts` makes
        them), which spares hashing them once more.

        Examples
        --------
        >>> IdMap().assign("images", ["a", "b", "a"]).tolist()
        [1, 2, 1]
        """
        keys = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
        old_keys, old_ids = self._keys[section], self._ids[section]
        nxt = int(old_ids.max()) + 1 if len(old_ids) else start
        out = np.empty(len(keys), dtype=np.int64)
        found = _index_in(keys, old_keys)
        known = found >= 0
        out[known] = old_ids[found[known]]
        new = keys.filter(pa.array(~known)) if len(old_keys) else keys
        # first appearance order: ids follow the order keys are met
        uniq = new if distinct else pc.unique(new)
        new_ids = np.arange(nxt, nxt + len(uniq), dtype=np.int64)
        # keys met once each (the usual case) take the new ids in order
        out[~known] = new_ids if len(uniq) == len(new) else new_ids[_index_in(new, uniq)]
        self._keys[section] = pa.concat_arrays([old_keys, uniq.cast(pa.string())])
        self._ids[section] = np.concatenate([old_ids, new_ids])
        return out

    def _sorted(self, section: str) -> tuple[pa.Array, npt.NDArray[np.int64]]:
        order = np.argsort(self._ids[section], kind="stable")
        return self._keys[section].take(pa.array(order)), self._ids[section][order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready map, keys sorted by id within each section."""
        out = {}
        for s in SECTIONS:
            keys, ids = self._sorted(s)
            out[s] = dict(zip(keys.to_pylist(), ids.tolist(), strict=True))
        return out

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), indent=1, ensure_ascii=False)``, built by column.

        The standard library indents with its pure-Python encoder, slow on a million
        annotation ids; every value here is a string key and an int id, so a line is simply
        ``  "key": id`` (orjson escapes strings exactly as ``json`` does with
        ``ensure_ascii=False``).

        Examples
        --------
        >>> m = IdMap({"categories": {"car": 3, "bus": 1}})
        >>> m.to_json() == json.dumps(m.to_dict(), indent=1, ensure_ascii=False)
        True
        """
        sections = []
        for name in SECTIONS:
            keys, ids = self._sorted(name)
            lines = jt.concat('  "', jt.inner(keys), '": ', jt.numbers(ids))
            body = jt.blob(lines, b",\n").decode("utf-8")
            sections.append(
                f" {encode_basestring(name)}: " + (f"{{\n{body}\n }}" if body else "{}")
            )
        return "{\n" + ",\n".join(sections) + "\n}"

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the map to ``path`` atomically."""
        text = self.to_json() + "\n"
        with atomic_file(path) as fh:
            fh.write(text.encode("utf-8"))


def _index_in(keys: pa.Array, table: pa.Array) -> npt.NDArray[np.int64]:
    """Position of each key in ``table`` (unique keys), -1 where absent."""
    if len(table) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    found = pc.index_in(keys, value_set=table)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def unique_texts(keys: pa.Array) -> pa.Array:
    """Keys made unique by suffixing repeats with ``#2``, ``#3``... in order of appearance
    (:func:`converters._prepare2d.unique_keys`, by column).

    Examples
    --------
    >>> unique_texts(pa.array(["a", "b", "a", "a"])).to_pylist()
    ['a', 'b', 'a#2', 'a#3']

    Keys that are already unique are returned as they are (the same object).
    """
    if len(keys) == 0 or len(pc.unique(keys)) == len(keys):
        return keys
    idx = np.asarray(pc.dictionary_encode(keys).indices.to_numpy(), dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    run = idx[order]
    first = np.ones(len(run), dtype=bool)
    first[1:] = run[1:] != run[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(run)), 0))
    occurrence = np.empty(len(run), dtype=np.int64)
    occurrence[order] = np.arange(len(run)) - start + 1
    repeat = occurrence > 1
    if not repeat.any():
        return keys
    suffix = jt.concat("#", jt.numbers(occurrence))
    return pc.if_else(pa.array(repeat), jt.concat(keys, suffix), keys)
