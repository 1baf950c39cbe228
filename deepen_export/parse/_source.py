"""Any source (file, bytes, object, snapshot folder) and batched reading of large files."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepen_export._media import (
    KnownSizes,
    _is_3d,
    add_image_frames,
    fill_sizes,
    fill_sizes_from_images,
)
from deepen_export.errors import ParseError
from deepen_export.model import _TABLES, Frames, FrameStatus, LabelSet, _remap_codes
from deepen_export.parse._assemble import _Ctx, _frames_table, _order_categories, _ro, _s
from deepen_export.parse._columnar import parse_ndjson_chunk
from deepen_export.parse._labels import parse_labels
from deepen_export.parse._scan import iter_label_chunks
from deepen_export.parse._snapshot import (
    SnapshotInfo,
    _finish,
    parse_snapshot,
    snapshot_info,
    whole_read_reason,
)
from deepen_export.snapshot import Snapshot


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
    categories: Sequence[str] = (),
) -> Iterator[LabelSet]:
    """Parse a large labels JSON file in batches of about ``batch_size`` labels.

    Memory stays bounded by the batch, not the file: the file is scanned in blocks and each
    batch of labels is parsed on its own. Frame rows and category codes are local to each
    batch (use ``frames.file_id`` / ``categories`` names, not codes, to join batches).
    ``Frames.index`` is the file's position in ``files`` (the dataset's files list) when given,
    and -1 (unknown) otherwise: a batch alone cannot know a frame's place in the sequence.
    ``categories`` is the order to start from (a profile's), as :func:`parse_labels` takes it:
    each batch's categories are those, then the batch's others sorted.

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
        batch = batch.replace(frames=dataclasses.replace(batch.frames, index=_ro(index)))
        yield _recoded(batch, categories) if categories else batch


def _recoded(labels: LabelSet, order: Sequence[str]) -> LabelSet:
    """``labels`` with the categories ``order`` lists first, its others after them, sorted."""
    cats = _order_categories(labels.categories, list(dict.fromkeys(order)))
    if cats == list(labels.categories):
        return labels
    code = {c: i for i, c in enumerate(cats)}
    remap = np.asarray([code[c] for c in labels.categories] or [0], dtype=np.int32)
    changes = {name: _remap_codes(getattr(labels, name), remap) for name in _TABLES}
    return labels.replace(categories=tuple(cats), **changes)


class NotStreamable(ParseError):
    """An input that needs the whole-file read: it cannot be written a batch at a time.

    Raised by :class:`SnapshotBatches` when it is made (a media zip, paint, an ``images/``
    folder without a files list: :func:`whole_read_reason`) or part-way through its batches
    (labels on a file its files list does not name: that file's place in the sequence depends
    on every other such file), and by :func:`deepen_export.pipeline.stream_parquet` for a
    ``hive`` input out of sequence order. The caller reads the input whole instead
    (``stream_parquet`` does); ``reason`` says why, in words for a status line.

    Examples
    --------
    >>> NotStreamable("it has 3D point paint", path="snap").reason
    'it has 3D point paint'
    """

    def __init__(self, reason: str, *, path: str | None = None) -> None:
        super().__init__(f"cannot be read a batch at a time: {reason}", path=path)
        self.reason = reason


@dataclasses.dataclass
class SnapshotBatches:
    """A snapshot folder read a batch of labels at a time, as :func:`parse_snapshot` reads it.

    Each batch of ``labels.json`` (:func:`iter_label_batches`) gets what the snapshot adds: the
    dataset id, the profile's category order first (``categories``, for the writer's final
    order), its frames' sequence index and sizes from the files list, sizes from the
    ``images/`` folder and ``images.json``, the 3D marking and the snapshot's ``meta``. After
    the last batch come batches of frames only: the listed files without labels (with their
    sensors, status and sizes), then the images of ``images/`` that no frame names. Every frame
    row equals its row in ``parse_snapshot``'s frames. Only for snapshots
    :func:`whole_read_reason` passes (no media zip or paint); an ``images/`` folder without a
    files list, or a label on a file the files list does not name, raises
    :class:`NotStreamable`.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text(json.dumps({"labels": [{"file_id": "b.png",
    ...     "label_id": "car:1", "label_category_id": "car", "label_type": "box",
    ...     "box": [0, 0, 1, 1]}]}))
    >>> _ = (d / "files.json").write_text(json.dumps({"files": [{"file_id": "a.png",
    ...     "width": 4, "height": 3}, {"file_id": "b.png", "width": 8, "height": 6}]}))
    >>> [(b.frames.file_id.tolist(), b.frames.index.tolist(), b.frames.width.tolist())
    ...  for b in SnapshotBatches(d)]
    [(['b.png'], [1], [8]), (['a.png'], [0], [4])]
    """

    folder: str | os.PathLike[str]
    batch_size: int = 100_000

    def __post_init__(self) -> None:
        reason = whole_read_reason(self.folder)
        if reason is not None:
            raise NotStreamable(reason, path=os.fspath(self.folder))
        self.info: SnapshotInfo = snapshot_info(Snapshot(Path(self.folder)))
        self.categories: list[str] = self.info.categories
        self._sizes = KnownSizes(self.info.sizes())  # the name rule built once, not per batch
        self._images = self.info.snap.images
        if self._images is not None and not self.info.files:
            # its images become frames after the last index, which only the whole read knows
            reason = "it has an images/ folder and no files list"
            raise NotStreamable(reason, path=os.fspath(self.folder))

    def __iter__(self) -> Iterator[LabelSet]:
        info = self.info
        listing = _Listing(info) if info.files else None
        seen: list[Frames] = []  # every frame so far, for the images no frame names
        three_d = False
        for batch in iter_label_batches(
            info.snap.labels,
            batch_size=self.batch_size,
            dataset_id=info.dataset_id,
            categories=info.categories,
        ):
            batch = self._finished(listing.place(batch) if listing is not None else batch)
            if self._images is not None:
                seen.append(batch.frames)
                three_d |= _is_3d(batch)
            yield batch
        if listing is None:
            return
        rest = self._finished(LabelSet(frames=listing.rest()))
        if len(rest.frames):
            seen.append(rest.frames)
            yield rest
        if self._images is not None and not three_d:  # a 3D set's images are camera views
            every = LabelSet(frames=Frames.concat(seen))
            added = add_image_frames(every, self._images).frames
            if len(added) > len(every.frames):
                extra = added.take(np.arange(len(every.frames), len(added)))
                # as parse_snapshot adds them: after the 3D marking and the images' sizes
                yield fill_sizes(LabelSet(frames=extra), self._sizes).replace(meta=info.meta)

    def _finished(self, labels: LabelSet) -> LabelSet:
        """What ``parse_snapshot`` does after the parse, for the pieces that stream."""
        labels = self.info.mark(labels)
        if self._images is not None:
            labels = fill_sizes_from_images(labels, self._images, {})
        labels = fill_sizes(labels, self._sizes)
        return labels.replace(meta=self.info.meta)


class _Listing:
    """The frames a files list gives (sequence index, sizes, status), and the labelled keys."""

    def __init__(self, info: SnapshotInfo) -> None:
        self.info = info
        frames, _ = _frames_table(_Ctx(dataset_id=info.dataset_id), info.files)
        self.row = {(d, f): i for i, (d, f, _) in enumerate(frames.keys())}
        self.frames = frames
        self.labelled: set[tuple[str, str, str]] = set()
        self.listed: dict[tuple[str, str], None] = {}  # files a dict-shaped labels file lists

    def place(self, batch: LabelSet) -> LabelSet:
        """The batch's labelled frames with the listing's index and sizes; listed-only ones out."""
        fr = batch.frames
        labelled = fr.status == int(FrameStatus.LABELLED)
        if not labelled.all():  # placed with the listing's frames after the last batch
            listed = zip(fr.dataset_id[~labelled], fr.file_id[~labelled], strict=True)
            self.listed.update(dict.fromkeys(listed))
            batch = batch.select_frames(labelled)
            fr = batch.frames
        rows = [self.row.get((d, f), -1) for d, f in zip(fr.dataset_id, fr.file_id, strict=True)]
        if -1 in rows:
            fid = fr.file_id[rows.index(-1)]
            raise NotStreamable(
                f"it has labels on {fid!r}, which files.json does not list",
                path=str(self.info.snap.files),
            )
        self.labelled.update(fr.keys())
        at = np.asarray(rows, dtype=np.int64)
        frames = dataclasses.replace(
            fr,
            index=_ro(self.frames.index[at]),
            width=_ro(self.frames.width[at]),
            height=_ro(self.frames.height[at]),
        )
        return batch.replace(frames=frames)

    def rest(self) -> Frames:
        """The frames of the whole parse that no batch labelled, in its order and with its rows."""
        ctx = _Ctx(dataset_id=self.info.dataset_id)
        ctx.frame_keys = dict.fromkeys(self.labelled, 0)
        ctx.listed_files = list(self.listed)
        frames, _ = _frames_table(ctx, self.info.files)
        keys = frames.keys()
        keep = [k not in self.labelled for k in keys]
        return frames.take(np.asarray(keep, dtype=bool))
