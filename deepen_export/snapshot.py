"""The snapshot folder layout, in one place: ``pull`` writes through it, ``read_labels`` reads it.

Layout (version 1)::

    SNAPSHOT/manifest.json        snapshot_version, dataset_id, label_set, stage, query,
                                  fetched_at, tool_version, dataset_type,
                                  files: {relative path: {sha256, bytes}}
    SNAPSHOT/dataset.json         the DatasetResource as returned
    SNAPSHOT/files.json           the files list response as returned ({"files": [...]})
    SNAPSHOT/labels.json          GET /datasets/{id}/labels?labels_with_file_ids_order=true
                                  &final=true&labelSetId=..[&stageId=..], as returned
    SNAPSHOT/profile.json         the labelling profile, when the dataset names one
    SNAPSHOT/paint/3d_point.dpn   3D paint labels, raw body (absent when the server has none)
    SNAPSHOT/paint/3d_point.json  the parsed paint-metadata header
    SNAPSHOT/paint/3d_instance_point.dpn (+ .json)   instance paint, when present
    SNAPSHOT/painting2d/          2D semantic painting (``.npy`` + metadata), when present
    SNAPSHOT/images/              the dataset's images, when present
    SNAPSHOT/media/dataset.zip    the uploaded dataset zip (media=True; default for 3D)
    SNAPSHOT/images.json          image sizes read from the uploaded zip by range requests
                                  (image datasets without media; see deepen_export._media)

A folder whose sub-folders are snapshots (``pull_many``) is read as one label set.

Examples
--------
>>> import pathlib, tempfile
>>> d = Snapshot(pathlib.Path(tempfile.mkdtemp()))
>>> d.labels.name, d.paint_semantic.relative_to(d.root).as_posix(), d.is_snapshot()
('labels.json', 'paint/3d_point.dpn', False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepen_export.errors import ParseError

__all__ = [
    "DATASET",
    "FILES",
    "IMAGES",
    "IMAGE_SIZES",
    "LABELS",
    "MANIFEST",
    "MEDIA",
    "MEDIA_ZIP",
    "PAINTING2D",
    "PAINT_INSTANCE",
    "PAINT_SEMANTIC",
    "PROFILE",
    "SNAPSHOT_VERSION",
    "Snapshot",
    "check_manifest",
    "paint_metadata",
]

SNAPSHOT_VERSION = 1
"""Version of the layout written into ``manifest.json``."""

MANIFEST = "manifest.json"
DATASET = "dataset.json"
FILES = "files.json"
LABELS = "labels.json"
PROFILE = "profile.json"
PAINT_SEMANTIC = "paint/3d_point.dpn"
PAINT_INSTANCE = "paint/3d_instance_point.dpn"
PAINTING2D = "painting2d"
IMAGES = "images"
IMAGE_SIZES = "images.json"
MEDIA = "media"
MEDIA_ZIP = "media/dataset.zip"


def paint_metadata(body: str | os.PathLike[str]) -> Path:
    """Where the paint-metadata of a ``.dpn`` body is kept (same name, ``.json``).

    Examples
    --------
    >>> paint_metadata("snap/paint/3d_point.dpn").as_posix()
    'snap/paint/3d_point.json'
    """
    return Path(body).with_suffix(".json")


@dataclass(frozen=True)
class Snapshot:
    """The paths of one snapshot folder (whether or not they exist)."""

    root: Path

    def _at(self, rel: str) -> Path:
        return self.root / rel

    @property
    def manifest(self) -> Path:
        return self._at(MANIFEST)

    @property
    def dataset(self) -> Path:
        return self._at(DATASET)

    @property
    def files(self) -> Path:
        return self._at(FILES)

    @property
    def labels(self) -> Path:
        return self._at(LABELS)

    @property
    def profile(self) -> Path:
        return self._at(PROFILE)

    @property
    def paint_semantic(self) -> Path:
        return self._at(PAINT_SEMANTIC)

    @property
    def paint_instance(self) -> Path:
        return self._at(PAINT_INSTANCE)

    @property
    def painting2d(self) -> Path | None:
        """The 2D painting folder, when there is one."""
        p = self._at(PAINTING2D)
        return p if p.is_dir() else None

    @property
    def images(self) -> Path | None:
        """The images folder, when there is one."""
        p = self._at(IMAGES)
        return p if p.is_dir() else None

    @property
    def media_zip(self) -> Path | None:
        """The uploaded dataset zip (the first ``media/*.zip``), when there is one."""
        media = self._at(MEDIA)
        return next(iter(sorted(media.glob("*.zip"))), None) if media.is_dir() else None

    def is_snapshot(self) -> bool:
        """Whether the folder holds a snapshot (its ``labels.json``)."""
        return self.labels.is_file()

    def children(self) -> list[Snapshot]:
        """Snapshots one level down (a ``pull_many`` folder), in name order."""
        if not self.root.is_dir():
            return []
        return [Snapshot(p) for p in sorted(self.root.iterdir()) if (p / LABELS).is_file()]


def check_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is there with its recorded size (a cheap completeness check).

    Raises
    ------
    ParseError
        Naming the missing or changed file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text("{}")
    >>> check_manifest(d, {"files": {"labels.json": {"bytes": 2}}})  # complete: no error
    >>> check_manifest(d, {"files": {"files.json": {"bytes": 2}}})
    Traceback (most recent call last):
    ...
    deepen_export.errors.ParseError: ...files.json is listed in manifest.json but missing; pull again
    """
    listed = manifest.get("files") if isinstance(manifest, Mapping) else None
    if not isinstance(listed, Mapping):
        return
    for rel, info in listed.items():
        p = folder / rel
        if not p.is_file():
            raise ParseError(
                f"snapshot is incomplete: {rel} is listed in manifest.json but missing; pull again",
                path=str(folder),
            )
        size = info.get("bytes") if isinstance(info, Mapping) else None
        if isinstance(size, int) and p.stat().st_size != size:
            raise ParseError(
                f"snapshot file {rel} has {p.stat().st_size} bytes, manifest.json says {size}; "
                "it was changed or cut short: pull again",
                path=str(folder),
            )
