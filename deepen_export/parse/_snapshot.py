"""A snapshot folder written by ``deepen-export pull`` -> LabelSet (layout: :mod:`deepen_export.snapshot`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepen_export.errors import ParseError
from deepen_export.model import (
    LabelSet,
)
from deepen_export.parse._assemble import _ro, _s, categories_from_profile
from deepen_export.parse._labels import parse_labels
from deepen_export.parse._shapes import load_json
from deepen_export.parse.frames_zip import _attach_frames_data, parse_frames_zip
from deepen_export.parse.paint import _add_paint
from deepen_export.parse.painting2d import parse_painting2d


def _with_image_sizes(
    labels: LabelSet,
    images: str | os.PathLike[str] | None,
    zip_sizes: Mapping[str, tuple[int, int]],
) -> LabelSet:
    from PIL import Image, UnidentifiedImageError

    fr = labels.frames
    width, height = fr.width.copy(), fr.height.copy()
    changed = False
    for i, fid in enumerate(fr.file_id):
        if width[i] > 0:
            continue
        size = zip_sizes.get(fid)
        if size is None and images is not None:
            for cand in (Path(images, fid), Path(images, fr.sensor_id[i], fid)):
                if cand.is_file():
                    try:
                        with Image.open(cand) as im:
                            size = im.size
                    except (UnidentifiedImageError, OSError):
                        size = None
                    break
        if size:
            width[i], height[i] = size
            changed = True
    if not changed:
        return labels
    return labels.replace(frames=dataclasses.replace(fr, width=_ro(width), height=_ro(height)))


def _read_json_if(path: Path) -> Any:
    return load_json(path) if path.is_file() else None


def parse_snapshot(
    folder: str | os.PathLike[str],
    *,
    frames: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    points: bool = True,
) -> LabelSet:
    """Read a snapshot folder written by ``deepen-export pull`` (or laid out the same way).

    Layout: ``manifest.json``, ``dataset.json``, ``files.json``, ``labels.json``, optional
    ``profile.json`` (category order), ``paint/3d_point.dpn`` + ``.json`` (or
    ``paint/3d_instance_point.*``), ``painting2d/`` and ``media/dataset.zip`` (frames and images).
    A folder of snapshot folders (``pull_many``) is read as one label set.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text(json.dumps({"labels": {"a.png": []}}))
    >>> parse_snapshot(d).frames.file_id.tolist()
    ['a.png']
    """
    folder = Path(folder)
    if not (folder / "labels.json").is_file():
        subs = (
            sorted(p for p in folder.iterdir() if (p / "labels.json").is_file())
            if folder.is_dir()
            else []
        )
        if subs:
            return LabelSet.concat(
                [parse_snapshot(p, frames=frames, images=images, points=points) for p in subs]
            )
        raise ParseError(
            "not a snapshot: no labels.json (run `deepen-export pull` first)", path=str(folder)
        )
    manifest = _read_json_if(folder / "manifest.json") or {}
    _check_manifest(folder, manifest)
    dataset = _read_json_if(folder / "dataset.json") or {}
    files_doc = _read_json_if(folder / "files.json")
    profile = _read_json_if(folder / "profile.json")
    dataset_id = _s(manifest.get("dataset_id") or dataset.get("dataset_id"))
    files = files_doc.get("files") if isinstance(files_doc, Mapping) else files_doc
    labels = parse_labels(
        folder / "labels.json",
        dataset_id=dataset_id,
        categories=categories_from_profile(profile),
        files=files if isinstance(files, list) else None,
    )
    zip_path = (
        Path(frames)
        if frames
        else next(iter(sorted((folder / "media").glob("*.zip"))), None)
        if (folder / "media").is_dir()
        else None
    )
    if images is None and (folder / "images").is_dir():
        images = folder / "images"
    labels = _finish(
        labels,
        dataset=dataset,
        dataset_id=dataset_id,
        zip_path=zip_path,
        images=images,
        points=points,
    )
    paint_dir = folder / "paint"
    semantic, instance = paint_dir / "3d_point.dpn", paint_dir / "3d_instance_point.dpn"
    if semantic.is_file() or instance.is_file():
        labels = _add_paint(
            labels,
            semantic if semantic.is_file() else None,
            instance if instance.is_file() else None,
            dataset,
            dataset_id,
        )
    if (folder / "painting2d").is_dir():
        labels = parse_painting2d(folder / "painting2d", labels, dataset_id=dataset_id)
    meta = {
        "source": str(folder),
        "dataset_id": dataset_id,
        "dataset_type": dataset.get("dataset_type") or manifest.get("dataset_type"),
        "label_set": manifest.get("label_set"),
        "stage": manifest.get("stage"),
        "fetched_at": manifest.get("fetched_at"),
    }
    return labels.replace(meta={k: v for k, v in meta.items() if v is not None})


def _check_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is there with its recorded size (a cheap completeness check)."""
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
    return _with_image_sizes(labels, images, zip_sizes)
