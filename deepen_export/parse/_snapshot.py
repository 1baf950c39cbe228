"""A snapshot folder written by ``deepen-export pull`` -> LabelSet (layout: :mod:`deepen_export.snapshot`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepen_export._media import (
    add_image_frames,
    fill_sizes,
    fill_sizes_from_images,
    snapshot_sizes,
)
from deepen_export.errors import ParseError
from deepen_export.model import (
    LabelSet,
)
from deepen_export.parse._assemble import _s, categories_from_profile, mark_lidar
from deepen_export.parse._labels import parse_labels
from deepen_export.parse._shapes import load_json
from deepen_export.parse.frames_zip import _attach_frames_data, parse_frames_zip
from deepen_export.parse.paint import _add_paint
from deepen_export.parse.painting2d import parse_painting2d
from deepen_export.snapshot import Snapshot, check_manifest


def _read_json_if(path: Path) -> Any:
    return load_json(path) if path.is_file() else None


def _read_object_if(path: Path) -> dict[str, Any]:
    """A snapshot's JSON object (``manifest.json``, ``dataset.json``); {} when absent.

    Another JSON value there is one clear error naming the file, not an AttributeError later.
    """
    doc = _read_json_if(path)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ParseError(
            f"must hold a JSON object, not {type(doc).__name__} (re-run `deepen-export pull`)",
            path=str(path),
        )
    return dict(doc)


def parse_snapshot(
    folder: str | os.PathLike[str],
    *,
    frames: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    points: bool = True,
) -> LabelSet:
    """Read a snapshot folder written by ``deepen-export pull`` (or laid out the same way).

    Layout (:mod:`deepen_export.snapshot`): ``manifest.json``, ``dataset.json``, ``files.json``,
    ``labels.json``, optional ``profile.json`` (category order), ``paint/3d_point.dpn`` +
    ``.json`` (or ``paint/3d_instance_point.*``), ``painting2d/`` and ``media/dataset.zip``
    (frames and images). A folder of snapshot folders (``pull_many``) is read as one label set.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text(json.dumps({"labels": {"a.png": []}}))
    >>> parse_snapshot(d).frames.file_id.tolist()
    ['a.png']
    """
    snap = Snapshot(Path(folder))
    if not snap.is_snapshot():
        subs = snap.children()
        if subs:
            return LabelSet.concat(
                [parse_snapshot(c.root, frames=frames, images=images, points=points) for c in subs]
            )
        raise ParseError(
            "not a snapshot: no labels.json (run `deepen-export pull` first)", path=str(folder)
        )
    info = snapshot_info(snap)
    labels = parse_labels(
        snap.labels, dataset_id=info.dataset_id, categories=info.categories, files=info.files
    )
    labels = info.mark(labels)
    labels = _finish(
        labels,
        dataset=info.dataset,
        dataset_id=info.dataset_id,
        zip_path=Path(frames) if frames else snap.media_zip,
        images=images if images is not None else snap.images,
        points=points,
    )
    labels = fill_sizes(labels, info.sizes())
    labels = _snapshot_painting(labels, snap, info.dataset, info.dataset_id)
    return labels.replace(meta=info.meta)


@dataclass(frozen=True)
class SnapshotInfo:
    """The small pieces a snapshot adds to its labels file, read once (both read paths use them).

    ``dataset_id`` from the manifest or ``dataset.json``, the profile's category order, the
    files list, whether the dataset is 3D and the ``meta`` of the label set.
    """

    snap: Snapshot
    dataset: dict[str, Any]
    dataset_id: str
    is_3d: bool
    categories: list[str]
    files: list[Any] | None
    meta: dict[str, Any]

    def mark(self, labels: LabelSet) -> LabelSet:
        """``labels`` with this dataset's frames marked LiDAR frames when the dataset is 3D."""
        return mark_lidar(labels, self.dataset_id) if self.is_3d else labels

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Image sizes the snapshot knows (files list, ``images.json``, media zip)."""
        return snapshot_sizes(self.snap.root, self.files)


def snapshot_info(snap: Snapshot) -> SnapshotInfo:
    """Check the manifest and read the small files of one snapshot folder.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text("{}")
    >>> _ = (d / "dataset.json").write_text(json.dumps({"dataset_id": "ds", "dataset_type": "3D"}))
    >>> info = snapshot_info(Snapshot(d))
    >>> info.dataset_id, info.is_3d, info.meta["dataset_type"]
    ('ds', True, '3D')
    """
    manifest = _read_object_if(snap.manifest)
    check_manifest(snap.root, manifest)
    dataset = _read_object_if(snap.dataset)
    dataset_id = _s(manifest.get("dataset_id") or dataset.get("dataset_id"))
    dataset_type = dataset.get("dataset_type") or manifest.get("dataset_type")
    meta = {
        "source": str(snap.root),
        "dataset_id": dataset_id,
        "dataset_type": dataset_type,
        "label_set": manifest.get("label_set"),
        "stage": manifest.get("stage"),
        "fetched_at": manifest.get("fetched_at"),
    }
    return SnapshotInfo(
        snap=snap,
        dataset=dataset,
        dataset_id=dataset_id,
        is_3d=str(dataset_type or "").lower() == "3d",
        categories=categories_from_profile(_read_json_if(snap.profile)),
        files=_files_list(snap),
        meta={k: v for k, v in meta.items() if v is not None},
    )


def whole_read_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why the snapshot at ``folder`` must be read whole (not a batch at a time), or None.

    A labels file streams with its files list, profile, image sizes (files list,
    ``images.json``, ``images/``) and 3D marking; the pieces that attach data to frames or
    points across the whole set do not: the media zip (frames data, calibration, sizes), 3D
    point paint, 2D painting, and a folder of snapshots.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text("{}")
    >>> whole_read_reason(d) is None
    True
    >>> (d / "painting2d").mkdir()
    >>> whole_read_reason(d)
    'it has 2D painting (painting2d/)'
    """
    snap = Snapshot(Path(folder))
    if not snap.is_snapshot():
        return "it is a folder of snapshots" if snap.children() else "it has no labels.json"
    checks = [
        (snap.media_zip is not None, "it has a media zip (frames data, calibration, sizes)"),
        (snap.paint_semantic.is_file() or snap.paint_instance.is_file(), "it has 3D point paint"),
        (snap.painting2d is not None, "it has 2D painting (painting2d/)"),
    ]
    return next((reason for found, reason in checks if found), None)


def _files_list(snap: Snapshot) -> list[Any] | None:
    files_doc = _read_json_if(snap.files)
    files = files_doc.get("files") if isinstance(files_doc, Mapping) else files_doc
    return files if isinstance(files, list) else None


def _snapshot_painting(
    labels: LabelSet, snap: Snapshot, dataset: Mapping[str, Any], dataset_id: str
) -> LabelSet:
    semantic, instance = snap.paint_semantic, snap.paint_instance
    if semantic.is_file() or instance.is_file():
        labels = _add_paint(
            labels,
            semantic if semantic.is_file() else None,
            instance if instance.is_file() else None,
            dataset,
            dataset_id,
        )
    if snap.painting2d is not None:
        labels = parse_painting2d(snap.painting2d, labels, dataset_id=dataset_id)
    return labels


def _finish(
    labels: LabelSet,
    *,
    dataset: Mapping[str, Any],
    dataset_id: str,
    zip_path: Path | None,
    images: str | os.PathLike[str] | None,
    points: bool,
) -> LabelSet:
    zip_sizes: dict[str, tuple[int, int]] = {}
    if zip_path is not None:
        data = parse_frames_zip(zip_path, points=points)
        if data.names:
            labels = _attach_frames_data(labels, data, dataset_id)
        zip_sizes = dict(data.image_sizes)
        if not data.names:
            labels = labels.replace(issues=(*labels.issues, *data.issues))
    return add_image_frames(fill_sizes_from_images(labels, images, zip_sizes), images)
