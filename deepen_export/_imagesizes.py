"""Image sizes without the images: header sniffing, the files list, ``images.json``, ``--images``.

COCO, YOLO, VOC, CVAT and masks need each image's width and height; Deepen's labels carry none.
A frame's size comes from the first of these that knows it:

1. the dataset's files list (``files.json``), in any of the spellings servers use::

       {"file_id": "a.png", "width": 640, "height": 480}
       {"file_id": "a.png", "image_width": 640, "image_height": 480}
       {"file_id": "a.png", "image": {"width": 640, "height": 480}}

   (also ``img_width``/``img_height``, and ``dimensions``/``metadata``/``size`` objects holding
   ``width``/``height``; values may be integers, integral floats or digit strings);
2. ``images.json`` in a snapshot: what ``pull`` read from the headers of the uploaded zip's
   images through HTTP range requests, ``{"images": {"<zip member>": {"width", "height"}}}``;
3. the uploaded zip itself (``pull --media``) and an ``--images`` folder.

A zip member or image file matches a frame by its full relative name, or by its base name when
that is unique. Images in an ``--images`` folder that no label or file entry names are frames
too (status *unknown*), so a writer lists them as images.

Header sniffing (:func:`size_from_header`) reads PNG (``IHDR``), JPEG (``SOFn``), WebP (``VP8``,
``VP8L``, ``VP8X``), BMP and GIF from their first bytes, without an image library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from deepen_export import snapshot as layout
from deepen_export.model import Frames, FrameStatus, LabelSet

__all__ = [
    "IMAGE_SUFFIXES",
    "add_image_frames",
    "fill_sizes",
    "read_images_json",
    "size_from_header",
    "sizes_from_files",
    "snapshot_sizes",
    "write_images_json",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"})
"""Suffixes of the files taken as images (from a zip, a folder)."""

Size = tuple[int, int]

# SOF markers carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) do not
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def size_from_header(head: bytes) -> Size | None:
    """``(width, height)`` from the first bytes of a PNG, JPEG, WebP, BMP or GIF file.

    ``None`` when ``head`` is too short to tell (a JPEG with a large EXIF block needs more than
    a few KiB) or is not one of these formats.

    Examples
    --------
    >>> import struct
    >>> size_from_header(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0\\0\\0\\rIHDR" + struct.pack(">II", 640, 480))
    (640, 480)
    >>> size_from_header(b"GIF89a" + struct.pack("<HH", 3, 2))
    (3, 2)
    >>> size_from_header(b"not an image") is None
    True
    """
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", head[16:24]) if len(head) >= 24 else None
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:2] == b"BM" and len(head) >= 26:
        (dib,) = struct.unpack("<I", head[14:18])
        if dib == 12:
            return struct.unpack("<HH", head[18:22])
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    if head[:4] == b"GIF8" and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    return None


def _jpeg_size(head: bytes) -> Size | None:
    i, n = 2, len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None  # lost sync: not a JPEG we can read
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", head[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(head: bytes) -> Size | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        (bits,) = struct.unpack("<I", head[21:25])
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8X" and len(head) >= 30:
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    return None


def _dim(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v > 0 else None
    if isinstance(v, float) and v.is_integer() and v > 0:
        return int(v)
    if isinstance(v, str) and v.strip().isdigit() and int(v) > 0:
        return int(v)
    return None


_FLAT = (("width", "height"), ("image_width", "image_height"), ("img_width", "img_height"))
_NESTED = ("image", "dimensions", "metadata", "size", "image_size")


def _entry_size(entry: Mapping[str, Any]) -> Size | None:
    for wk, hk in _FLAT:
        w, h = _dim(entry.get(wk)), _dim(entry.get(hk))
        if w and h:
            return w, h
    for key in _NESTED:
        inner = entry.get(key)
        if isinstance(inner, Mapping):
            w, h = _dim(inner.get("width")), _dim(inner.get("height"))
            if w and h:
                return w, h
    return None


def sizes_from_files(files: Iterable[Any] | None) -> dict[str, Size]:
    """``file_id`` → ``(width, height)`` from a files list, in any accepted spelling.

    Examples
    --------
    >>> sizes_from_files([{"file_id": "a.png", "image_width": 640, "image_height": "480"},
    ...                   {"file_id": "b.png", "image": {"width": 20.0, "height": 10}},
    ...                   {"file_id": "c.png"}])
    {'a.png': (640, 480), 'b.png': (20, 10)}
    """
    out: dict[str, Size] = {}
    for f in files or ():
        if isinstance(f, Mapping) and f.get("file_id") is not None:
            size = _entry_size(f)
            if size:
                out[str(f["file_id"])] = size
    return out


def write_images_json(path: str | os.PathLike[str], sizes: Mapping[str, Size], source: str) -> None:
    """Write ``images.json``: ``{"source": ..., "images": {name: {"width", "height"}}}``."""
    doc = {
        "source": source,
        "images": {k: {"width": w, "height": h} for k, (w, h) in sorted(sizes.items())},
    }
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def read_images_json(path: str | os.PathLike[str]) -> dict[str, Size]:
    """The sizes :func:`write_images_json` wrote (entries that are not sizes are ignored)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    images = doc.get("images") if isinstance(doc, Mapping) else None
    if not isinstance(images, Mapping):
        return {}
    out = {}
    for name, v in images.items():
        size = _entry_size(v) if isinstance(v, Mapping) else None
        if size:
            out[str(name)] = size
    return out


def snapshot_sizes(folder: str | os.PathLike[str], files: Any) -> dict[str, Size]:
    """Sizes a snapshot knows: its files list first, then ``images.json``, then its media zip."""
    sizes = {
        **zip_sizes(Path(folder, layout.MEDIA)),
        **read_images_json(Path(folder, layout.IMAGE_SIZES)),
    }
    listed = sizes_from_files(files if isinstance(files, list) else None)
    return {**sizes, **listed}


def zip_sizes(media: Path) -> dict[str, Size]:
    """Member name → size of every image in the zips of ``media`` (their headers only)."""
    import zipfile

    out: dict[str, Size] = {}
    for path in sorted(media.glob("*.zip")) if media.is_dir() else []:
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if PurePosixPath(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                        with zf.open(info) as fh:
                            size = size_from_header(fh.read(1 << 20))
                        if size is not None:
                            out[info.filename] = size
        except (zipfile.BadZipFile, OSError):
            continue  # the frames zip reader reports a bad zip
    return out


def _lookup(sizes: Mapping[str, Size]) -> dict[str, Size]:
    """``sizes`` plus each name's base name where that base name is unique."""
    by_base: dict[str, list[Size]] = {}
    for name, size in sizes.items():
        by_base.setdefault(PurePosixPath(name).name, []).append(size)
    out = {b: s[0] for b, s in by_base.items() if len(s) == 1}
    out.update(sizes)
    return out


def fill_sizes(labels: LabelSet, sizes: Mapping[str, Size]) -> LabelSet:
    """Set the width and height of frames whose size is unknown, from ``sizes`` (by name).

    Examples
    --------
    >>> import deepen_export
    >>> ls = deepen_export.read_labels({"labels": {"x/a.png": []}})
    >>> fill_sizes(ls, {"a.png": (4, 3)}).frames.width.tolist()
    [4]
    """
    if not sizes or not len(labels.frames):
        return labels
    table = _lookup(sizes)
    fr = labels.frames
    width, height = fr.width.copy(), fr.height.copy()
    changed = False
    for i, fid in enumerate(fr.file_id.tolist()):
        if width[i] > 0 and height[i] > 0:
            continue
        name = str(fid)
        size = table.get(name) or table.get(f"{fr.sensor_id[i]}/{name}")
        if size is None:
            size = table.get(PurePosixPath(name).name)
        if size:
            width[i], height[i] = size
            changed = True
    if not changed:
        return labels
    return labels.replace(frames=dataclasses.replace(fr, width=_ro(width), height=_ro(height)))


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _is_3d(labels: LabelSet) -> bool:
    return bool(
        len(labels.cuboids)
        or len(labels.point_segmentation)
        or len(labels.poses)
        or len(labels.pointclouds)
    )


def add_image_frames(labels: LabelSet, images: str | os.PathLike[str] | None) -> LabelSet:
    """Add the images in ``images`` that no frame names as frames of unknown status.

    A labels file lists only the images that carry labels; the others in the folder are part of
    the dataset too (negatives, or not yet labelled: nothing says which). Hidden files and
    files that are not images are left out; a 3D label set is left as it is (its images are
    camera views, not frames of their own).

    Examples
    --------
    >>> import tempfile, pathlib, deepen_export
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "b.gif").write_bytes(b"GIF89a\\x03\\x00\\x02\\x00")
    >>> ls = add_image_frames(deepen_export.read_labels({"labels": {"a.png": []}}), d)
    >>> ls.frames.file_id.tolist(), ls.frames.width.tolist()
    (['a.png', 'b.gif'], [-1, 3])
    """
    if images is None or _is_3d(labels):
        return labels
    root = Path(images)
    fr = labels.frames
    known = {str(f) for f in fr.file_id.tolist()}
    known |= {f"{s}/{f}" for s, f in zip(fr.sensor_id.tolist(), fr.file_id.tolist(), strict=True)}
    new: list[str] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(part.startswith(".") for part in PurePosixPath(rel).parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and rel not in known:
            new.append(rel)
    if not new:
        return labels
    sensors = {str(s) for s in fr.sensor_id.tolist()}
    sensor = sensors.pop() if len(sensors) == 1 else ""
    datasets = {str(d) for d in fr.dataset_id.tolist()}
    dataset = datasets.pop() if len(datasets) == 1 else ""
    sizes = [_file_size(root / rel) or (-1, -1) for rel in new]
    start = int(fr.index.max()) + 1 if len(fr) else 0
    extra = Frames.from_columns(
        file_id=new,
        sensor_id=[sensor] * len(new),
        dataset_id=[dataset] * len(new),
        index=list(range(start, start + len(new))),
        width=[s[0] for s in sizes],
        height=[s[1] for s in sizes],
        status=[int(FrameStatus.UNKNOWN)] * len(new),
    )
    return labels.replace(frames=Frames.concat([fr, extra]))


def _file_size(path: Path) -> Size | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    size = size_from_header(head)
    if size is not None:
        return size
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError):
        return None
