"""A dataset folder made into the zip Deepen takes, checked first.

``datasets create FOLDER`` zips the folder's files (paths relative to it, sorted). Before any
byte is zipped or uploaded:

- hidden files and folders (``.DS_Store``, ``.git/``...) and OS clutter (``Thumbs.db``,
  ``desktop.ini``, ``__MACOSX/``) are left out;
- a symbolic link is taken only when it points to a file inside the folder; one pointing
  outside (or to a folder) is left out and named, so nothing outside the folder is uploaded;
- an image dataset needs at least one image; a 3D JSON dataset needs at least one frame JSON,
  and every frame JSON is checked (an object with ``points`` of numeric ``x, y, z``; a
  ``device_position``/``device_heading`` and ``images`` entries with ``fx, fy, cx, cy``,
  ``position``, ``heading`` when given, each ``image_url`` a file in the folder);
- any other dataset needs at least one file.

Each refusal is one :class:`FolderError` line naming the file and what is wrong.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from deepen_export._media import IMAGE_SUFFIXES
from deepen_export.errors import DeepenExportError

__all__ = ["FolderError", "FolderPlan", "plan_folder", "zip_folder"]

_OS_FILES = {"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", "__macosx"}


class FolderError(DeepenExportError, ValueError):
    """A dataset folder that cannot be uploaded as it is."""


@dataclass
class FolderPlan:
    """The files to zip (relative path → file) and what was left out, with why."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Bytes of the files to zip."""
        return sum(p.stat().st_size for p in self.files.values())


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _OS_FILES


def plan_folder(folder: str | os.PathLike[str]) -> FolderPlan:
    """The files of ``folder`` to upload: no hidden or OS files, no link out of the folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.png").write_bytes(b"x"); _ = (d / ".DS_Store").write_bytes(b"x")
    >>> sorted(plan_folder(d).files), plan_folder(d).skipped
    (['a.png'], [('.DS_Store', 'hidden or OS file')])
    """
    root = Path(folder).resolve()
    plan = FolderPlan(root)
    for here, dirs, names in os.walk(root, followlinks=False):
        base = Path(here)
        rel_dir = base.relative_to(root).as_posix()
        for d in sorted(dirs):
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if _hidden(d):
                plan.skipped.append((rel + "/", "hidden or OS folder"))
            elif (base / d).is_symlink():
                plan.skipped.append((rel + "/", "a link to a folder (not followed)"))
        dirs[:] = sorted(d for d in dirs if not _hidden(d) and not (base / d).is_symlink())
        for name in sorted(names):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = base / name
            if _hidden(name):
                plan.skipped.append((rel, "hidden or OS file"))
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    plan.skipped.append((rel, "a link to outside the folder (not followed)"))
                    continue
            if path.is_file():
                plan.files[rel] = path
    return plan


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _vec(obj: Any, keys: str) -> bool:
    return isinstance(obj, Mapping) and all(_num(obj.get(k)) for k in keys)


def check_frame(rel: str, body: bytes, files: Mapping[str, Path]) -> None:
    """Raise :class:`FolderError` when the frame JSON ``rel`` is not a Deepen 3D frame.

    Examples
    --------
    >>> check_frame("0.json", b'{"points": [{"x": 1, "y": 2, "z": 3}]}', {})
    >>> check_frame("0.json", b'{"points": [{"x": 1}]}', {})
    Traceback (most recent call last):
    ...
    deepen_export.api._folder.FolderError: 0.json: points[0] needs numeric x, y, z
    """
    try:
        frame = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FolderError(f"{rel}: not valid JSON ({exc})") from None
    if not isinstance(frame, Mapping):
        raise FolderError(f"{rel}: a frame JSON must be an object with 'points'")
    points = frame.get("points")
    if not isinstance(points, list):
        raise FolderError(f"{rel}: no 'points' list (a 3D JSON frame holds its LiDAR points)")
    for i, p in enumerate(points):
        if not _vec(p, "xyz"):
            raise FolderError(f"{rel}: points[{i}] needs numeric x, y, z")
    for key, keys in (("device_position", "xyz"), ("device_heading", "xyzw")):
        if key in frame and not _vec(frame[key], keys):
            raise FolderError(f"{rel}: {key} needs numeric {', '.join(keys)}")
    images = frame.get("images", [])
    if not isinstance(images, list):
        raise FolderError(f"{rel}: 'images' must be a list")
    for k, im in enumerate(images):
        where = f"{rel}: images[{k}]"
        if not isinstance(im, Mapping) or not all(
            _num(im.get(c)) for c in ("fx", "fy", "cx", "cy")
        ):
            raise FolderError(f"{where} needs numeric fx, fy, cx, cy")
        if not _vec(im.get("position"), "xyz") or not _vec(im.get("heading"), "xyzw"):
            raise FolderError(f"{where} needs position (x, y, z) and heading (x, y, z, w)")
        url = im.get("image_url")
        local = isinstance(url, str) and url and "://" not in url
        if local and PurePosixPath(str(url)).as_posix().lstrip("./") not in files:
            raise FolderError(f"{where}: image_url {url!r} is not a file in the folder")


def _frame_jsons(files: Mapping[str, Path]) -> list[str]:
    top = [r for r in files if r.lower().endswith(".json") and "/" not in r]
    return top or [r for r in files if r.lower().endswith(".json") and r.count("/") == 1]


def zip_folder(
    folder: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    dataset_type: str,
    dataset_format: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> FolderPlan:
    """Check ``folder`` for a ``dataset_type`` upload, then zip it into ``dest``.

    Parameters
    ----------
    dataset_type : str
        ``images``, ``3d`` or ``video``.
    dataset_format : str, optional
        ``json`` for 3D JSON frames.
    progress : callable, optional
        ``progress(bytes_zipped, total_bytes)``.

    Returns
    -------
    FolderPlan
        What was zipped and what was left out.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("x")
    >>> zip_folder(d, d / "x.zip", dataset_type="images")
    Traceback (most recent call last):
    ...
    deepen_export.api._folder.FolderError: no images in ...: found 1 other file(s); ...
    """
    plan = plan_folder(folder)
    shown = str(folder)
    if not plan.files:
        left = f" ({len(plan.skipped)} hidden/OS file(s) or outside link(s) left out)"
        raise FolderError(f"{shown} holds no files to upload{left if plan.skipped else ''}")
    has_images = any(PurePosixPath(r).suffix.lower() in IMAGE_SUFFIXES for r in plan.files)
    if dataset_type == "images" and not has_images:
        raise FolderError(
            f"no images in {shown}: found {len(plan.files)} other file(s); an image dataset "
            f"needs {', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    is_json_3d = dataset_type == "3d" and (dataset_format or "json") == "json"
    if is_json_3d:
        frames = _frame_jsons(plan.files)
        if not frames:
            raise FolderError(
                f"no frame JSON in {shown}: a 3D JSON dataset needs one .json file per frame "
                "(0.json, 1.json, ...) with its points; found "
                f"{', '.join(sorted(plan.files)[:3])}{' ...' if len(plan.files) > 3 else ''}"
            )
        for rel in frames:
            check_frame(f"{shown.rstrip('/')}/{rel}", plan.files[rel].read_bytes(), plan.files)
    total, done = plan.total_bytes, 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for rel, path in sorted(plan.files.items()):
            # images are compressed already: store them, deflate the rest
            stored = PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES
            zf.write(path, rel, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
            done += path.stat().st_size
            if progress is not None:
                progress(done, total)
    return plan
