"""The documented shapes of a Deepen label response, and JSON loading (also used by the snapshot diff)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from deepen_export.errors import ParseError
from deepen_export.parse._assemble import _Ctx


def load_json(source: Any, *, path: str | None = None) -> Any:
    """Parse JSON from a path, bytes or str, with a :class:`ParseError` naming the file on failure.

    Deepen bodies may contain the non-standard ``NaN``/``Infinity`` tokens; they are accepted
    (and caught later as non-finite coordinates).
    """
    if isinstance(source, (str, os.PathLike)) and not (
        isinstance(source, str) and source.lstrip()[:1] in "{["
    ):
        path = path or os.fspath(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ParseError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    else:
        data = source.encode() if isinstance(source, str) else bytes(source)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(data)
        except UnicodeDecodeError as exc2:
            raise ParseError(
                f"not valid UTF-8 at byte {exc2.start}; the file may be truncated or damaged: fetch it again",
                path=path or "<input>",
            ) from exc
        except RecursionError:
            # orjson stops at 1024 levels; Python's json at the interpreter's stack
            raise ParseError(
                "JSON nested deeper than 1024 levels (an attribute value?): not a Deepen body",
                path=path or "<input>",
            ) from exc
        except json.JSONDecodeError as exc2:
            raise ParseError(
                f"not valid JSON ({exc2.msg} at line {exc2.lineno}, column {exc2.colno}); "
                "the file may be truncated: fetch it again",
                path=path or "<input>",
            ) from exc


def _iter_response(obj: Any, ctx: _Ctx, path: str | None) -> Iterator[Mapping[str, Any]]:
    if isinstance(obj, list):
        yield from obj
        return
    if not isinstance(obj, Mapping):
        raise ParseError(
            f"expected a JSON object with 'labels' or 'all_labels', got {type(obj).__name__}",
            path=path,
        )
    if "labels" in obj:
        labels = obj["labels"]
    elif "all_labels" in obj:
        labels = obj["all_labels"]
    elif "label_type" in obj:
        yield obj
        return
    else:
        raise ParseError(
            f"expected a JSON object with 'labels' or 'all_labels', found keys {sorted(obj)[:8]}",
            path=path,
        )
    if isinstance(labels, Mapping):
        for file_id, items in labels.items():
            ctx.listed_files.append((ctx.dataset_id, str(file_id)))
            if not isinstance(items, list):
                ctx.issue(f"labels of file {file_id!r} are not a list", {"file_id": file_id})
                continue
            for lab in items:
                if isinstance(lab, Mapping) and "file_id" not in lab:
                    lab = {**lab, "file_id": file_id}
                yield lab
    elif isinstance(labels, list):
        yield from labels
    elif labels is None:
        return
    else:
        raise ParseError(
            f"'labels' must be a list or an object, got {type(labels).__name__}", path=path
        )
