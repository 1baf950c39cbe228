"""Any source (file, bytes, object, snapshot folder) and batched reading of large files."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepen_export.errors import ParseError
from deepen_export.model import (
    LabelSet,
)
from deepen_export.parse._assemble import _ro, _s
from deepen_export.parse._columnar import parse_ndjson_chunk
from deepen_export.parse._labels import parse_labels
from deepen_export.parse._scan import iter_label_chunks
from deepen_export.parse._snapshot import _finish, parse_snapshot


def parse_source(
    source: Any,
    *,
    frames: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    points: bool = True,
    fast: bool = True,
) -> LabelSet:
    """Read any supported source: a labels JSON file, bytes, a parsed object or a snapshot folder.

    Parameters
    ----------
    source : path, bytes, dict or list
        What to read.
    frames : path, optional
        The dataset's uploaded zip (``json_data.zip``) for calibration, points and image sizes.
    images : path, optional
        A folder holding the images (by ``file_id``), for their sizes.
    points : bool
        Read point clouds from the frames zip (False: calibration only).
    fast : bool
        Allow the columnar fast path for large files.

    Returns
    -------
    LabelSet

    Examples
    --------
    >>> parse_source({"labels": []}).kinds_present()
    []
    """
    if isinstance(source, (str, os.PathLike)) and not (
        isinstance(source, str) and source.lstrip()[:1] in "{["
    ):
        p = Path(source)
        if p.is_dir():
            return parse_snapshot(p, frames=frames, images=images, points=points)
        if not p.exists():
            raise ParseError("no such file or folder", path=str(p))
        labels = parse_labels(p, fast=fast)
    else:
        labels = parse_labels(source, fast=False)
    if frames is not None or images is not None:
        labels = _finish(
            labels,
            dataset={},
            dataset_id="",
            zip_path=Path(frames) if frames else None,
            images=images,
            points=points,
        )
    return labels


def iter_label_batches(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 100_000,
    dataset_id: str = "",
    files: Sequence[Mapping[str, Any]] | None = None,
) -> Iterator[LabelSet]:
    """Parse a large labels JSON file in batches of about ``batch_size`` labels.

    Memory stays bounded by the batch, not the file: the file is scanned in blocks and each
    batch of labels is parsed on its own. Frame rows and category codes are local to each
    batch (use ``frames.file_id`` / ``categories`` names, not codes, to join batches).
    ``Frames.index`` is the file's position in ``files`` (the dataset's files list) when given,
    and -1 (unknown) otherwise: a batch alone cannot know a frame's place in the sequence.

    Examples
    --------
    >>> import tempfile, json, os
    >>> fd, p = tempfile.mkstemp(suffix=".json"); os.close(fd)
    >>> from pathlib import Path
    >>> _ = Path(p).write_text(json.dumps({"labels": [{"file_id": f"{i}.png", "label_id": f"a:{i}",
    ...     "label_category_id": "a", "label_type": "box", "box": [0, 0, 1, 1]} for i in range(5)]}))
    >>> [len(b) for b in iter_label_batches(p, batch_size=2)]
    [2, 2, 1]
    >>> next(iter_label_batches(p, batch_size=2, files=[{"file_id": "1.png"}, {"file_id": "0.png"}])).frames.index.tolist()
    [1, 0]
    """
    position = {_s(f.get("file_id")): i for i, f in enumerate(files or ())}
    for chunk in iter_label_chunks(path, batch_size=batch_size):
        batch = parse_ndjson_chunk(chunk, dataset_id=dataset_id, path=os.fspath(path))
        index = np.array([position.get(f, -1) for f in batch.frames.file_id], dtype=np.int64)
        yield batch.replace(frames=dataclasses.replace(batch.frames, index=_ro(index)))
