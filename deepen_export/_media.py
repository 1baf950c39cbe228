"""Images and their sizes: the one image source (lookup in folders and zips, header sizes).

Everything that looks an image up or asks its size comes here: the converters (``copy_images``,
KITTI's ``image_2/``), the previews (they draw on them), the parser (sizes for ``--images``, the
snapshot's files list, ``images.json``, its media zips) and ``pull`` (range requests read the
headers with :func:`size_from_header`).

Lookup (:class:`ImageSource`): a name is a relative POSIX path (``\\`` and a leading ``/`` are
normalised); it is looked up in each folder and zip given, in order. A folder never serves a file
outside itself: every lookup is resolved (symlinks followed) and refused unless the result is
still inside the folder, so ``../../x.png``, ``/abs/x.png`` and a symlink leading out all miss.
A zip member is found by its full name or by any tail of it (zips often hold one top folder:
``dataset/000001.png``).

Sizes: a frame's size comes from the first of these that knows it:

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
``VP8L``, ``VP8X``), BMP and GIF from their first bytes, without an image library; PIL is the
fallback for anything else.

Examples
--------
>>> import tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("RGB", (4, 3)).save(d / "a.png")
>>> with ImageSource(d) as src:
...     src.size("missing.png", "a.png"), src.open("sub/a.png") is None, src.size("../a.png")
((4, 3), True, None)
>>> with ImageSource(d, by_basename=True) as src:
...     src.open("sub/a.png").size
(4, 3)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

import numpy as np

from deepen_export import snapshot as layout
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, FrameStatus, LabelSet

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageSource",
    "ImageSources",
    "KnownSizes",
    "add_image_frames",
    "fill_sizes",
    "fill_sizes_from_images",
    "handle_size",
    "member_size",
    "read_images_json",
    "size_from_header",
    "sizes_from_files",
    "snapshot_sizes",
    "write_images_json",
    "zip_sizes",
]

ImageSources = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
"""Where images are looked up: a folder, a zip file (the dataset's upload), or a list of them."""

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


def handle_size(fh: IO[bytes]) -> Size | None:
    """``(width, height)`` of the image open in ``fh`` (seekable): its header, PIL else.

    Examples
    --------
    >>> import io
    >>> handle_size(io.BytesIO(b"GIF89a\\x03\\x00\\x02\\x00")), handle_size(io.BytesIO(b"x"))
    ((3, 2), None)
    """
    from PIL import Image, UnidentifiedImageError

    head = fh.read(1 << 16)
    size = size_from_header(head)
    if size is None and len(head) == 1 << 16:  # a JPEG with a large EXIF block: read on
        size = size_from_header(head + fh.read((1 << 20) - len(head)))
    if size is not None:
        return size
    try:  # a format the header sniffer does not know: let PIL read it
        fh.seek(0)
        with Image.open(fh) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError, zipfile.BadZipFile):
        return None


def member_size(zf: zipfile.ZipFile, info: zipfile.ZipInfo | str) -> Size | None:
    """``(width, height)`` of an image in a zip (see :func:`handle_size`); None if unreadable.

    Examples
    --------
    >>> import io
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("a.gif", b"GIF89a\\x03\\x00\\x02\\x00")
    >>> member_size(zipfile.ZipFile(buf), "a.gif")
    (3, 2)
    """
    try:
        with zf.open(info) as fh:
            return handle_size(fh)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
        return None  # a corrupt or unsupported member: its size stays unknown


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
    out: dict[str, Size] = {}
    for path in sorted(media.glob("*.zip")) if media.is_dir() else []:
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if PurePosixPath(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                        size = member_size(zf, info)
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


class KnownSizes:
    """Image sizes by name, with :func:`fill_sizes`'s name rule built once (for many batches).

    A frame's size is the one named by its file id, else by ``<sensor>/<file id>``, else by its
    file id's base name where that base name is unique among the names.

    Examples
    --------
    >>> KnownSizes({"x/a.png": (4, 3)})("a.png", "cam")
    (4, 3)
    """

    def __init__(self, sizes: Mapping[str, Size]) -> None:
        self.sizes = sizes
        self.table = _lookup(sizes)

    def __call__(self, name: str, sensor: str) -> Size | None:
        table = self.table
        return (
            table.get(name) or table.get(f"{sensor}/{name}") or table.get(PurePosixPath(name).name)
        )


def fill_sizes(labels: LabelSet, sizes: Mapping[str, Size] | KnownSizes) -> LabelSet:
    """Set the width and height of frames whose size is unknown, from ``sizes`` (by name).

    Examples
    --------
    >>> import deepen_export
    >>> ls = deepen_export.read_labels({"labels": {"x/a.png": []}})
    >>> fill_sizes(ls, {"a.png": (4, 3)}).frames.width.tolist()
    [4]
    """
    known = sizes if isinstance(sizes, KnownSizes) else KnownSizes(sizes)
    if not known.sizes or not len(labels.frames):
        return labels
    return _fill(labels, known)


def fill_sizes_from_images(
    labels: LabelSet, images: ImageSources, first: Mapping[str, Size] | None = None
) -> LabelSet:
    """Set unknown frame sizes from ``first`` (exact names), then from the images in ``images``.

    An image is looked up by the frame's file id, then as ``<sensor>/<file id>``, inside the
    folders and zips of ``images`` (never outside them; see :class:`ImageSource`).

    Examples
    --------
    >>> import tempfile, pathlib, deepen_export
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.gif").write_bytes(b"GIF89a\\x03\\x00\\x02\\x00")
    >>> ls = deepen_export.read_labels({"labels": {"a.gif": [], "b.png": []}})
    >>> fill_sizes_from_images(ls, d, {"b.png": (8, 6)}).frames.width.tolist()
    [3, 8]
    """
    known = first or {}
    with ImageSource(images) as source:
        return _fill(
            labels, lambda fid, sensor: known.get(fid) or source.size(fid, f"{sensor}/{fid}")
        )


def _fill(labels: LabelSet, size_of: Callable[[str, str], Size | None]) -> LabelSet:
    """Frames of unknown size get ``size_of(file_id, sensor_id)`` where that is not None."""
    fr = labels.frames
    width, height = fr.width.copy(), fr.height.copy()
    changed = False
    for i, (fid, sensor) in enumerate(zip(fr.file_id.tolist(), fr.sensor_id.tolist(), strict=True)):
        if width[i] > 0 and height[i] > 0:
            continue
        size = size_of(str(fid), str(sensor))
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
    the dataset too (negatives, or not yet labelled: nothing says which). Hidden files, files
    that are not images and symlinks leading out of the folder are left out; a 3D label set is
    left as it is (its images are camera views, not frames of their own).

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
    fr = labels.frames
    known = {str(f) for f in fr.file_id.tolist()}
    known |= {f"{s}/{f}" for s, f in zip(fr.sensor_id.tolist(), fr.file_id.tolist(), strict=True)}
    with ImageSource(images) as source:
        new = [rel for rel in source.folder_images() if rel not in known]
        sizes = [source.size(rel) or (-1, -1) for rel in new]
    if not new:
        return labels
    sensors = {str(s) for s in fr.sensor_id.tolist()}
    sensor = sensors.pop() if len(sensors) == 1 else ""
    datasets = {str(d) for d in fr.dataset_id.tolist()}
    dataset = datasets.pop() if len(datasets) == 1 else ""
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


def _clean(name: str) -> str:
    return name.replace("\\", "/").lstrip("/")


class ImageSource:
    """Images by relative name in folders and zip files, tried in the order given.

    Parameters
    ----------
    sources : path, list of paths or None
        Folders and zip files.
    by_basename : bool
        Also find an image by its base name alone (``sub/a.png`` -> ``a.png``), for previews
        of a loose folder of images.
    strict : bool
        Raise :class:`~deepen_export.errors.ConversionError` for a source that is neither a
        folder nor a zip (``copy_images``); otherwise such a source is passed over.

    Examples
    --------
    >>> import tempfile, zipfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(d / "up.zip", "w") as zf:
    ...     zf.writestr("top/images/a.png", b"x")
    >>> with ImageSource(d / "up.zip") as src:
    ...     src.copy("images/a.png", d / "out/a.png"), (d / "out/a.png").read_bytes()
    (True, b'x')
    """

    def __init__(
        self, sources: ImageSources, *, by_basename: bool = False, strict: bool = False
    ) -> None:
        if sources is None:
            sources = []
        elif isinstance(sources, str | os.PathLike):
            sources = [sources]
        self.by_basename = by_basename
        self.path: Path | None = Path(sources[0]) if sources else None
        """The first source given (named in "not found in ..." messages), None without one."""
        self.folders: list[Path] = []
        self.zips: list[tuple[zipfile.ZipFile, dict[str, str]]] = []
        for src in sources:
            p = Path(src)
            if p.is_dir():
                self.folders.append(p.resolve())
            elif p.is_file() and zipfile.is_zipfile(p):
                self.zips.append(_zip_members(zipfile.ZipFile(p)))
            elif strict:
                self.close()
                raise ConversionError(f"images: {p} is not a folder or a zip")

    @classmethod
    def of_snapshot(cls, folder: str | os.PathLike[str]) -> ImageSource | None:
        """The images of a snapshot folder: ``media/images/`` or ``media/dataset.zip``."""
        media = Path(folder, layout.MEDIA)
        for cand in (media / "images", media / "dataset.zip"):
            if cand.exists():
                return cls(cand)
        return None

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip files."""
        for zf, _ in self.zips:
            zf.close()

    def _candidates(self, name: str) -> list[str]:
        name = _clean(name)
        base = PurePosixPath(name).name
        return [name, base] if self.by_basename and base != name else [name]

    def _inside(self, root: Path, rel: str) -> Path | None:
        """``root / rel`` resolved (symlinks followed), if it is a file still inside ``root``."""
        try:
            path = (root / rel).resolve()
            return path if path.is_relative_to(root) and path.is_file() else None
        except (OSError, ValueError):  # a name too long for the file system, a NUL: not there
            return None

    def _find(self, *names: str) -> tuple[Path | None, tuple[zipfile.ZipFile, str] | None]:
        """Where the first of ``names`` that exists is: a file, or a zip and its member."""
        for name in (n for n in names if n):
            for cand in self._candidates(name):
                for root in self.folders:
                    path = self._inside(root, cand)
                    if path is not None:
                        return path, None
                for zf, members in self.zips:
                    member = members.get(cand)
                    if member is not None:
                        return None, (zf, member)
        return None, None

    def _open(self, *names: str) -> IO[bytes] | None:
        """A binary handle on the first of ``names`` that exists, or None."""
        path, member = self._find(*names)
        if path is not None:
            return open(path, "rb")
        return member[0].open(member[1]) if member is not None else None

    def open(self, *names: str) -> Any:
        """The first of ``names`` found, as an RGB :class:`PIL.Image.Image`; None if none is."""
        from PIL import Image

        fh = self._open(*names)
        if fh is None:
            return None
        with fh, Image.open(io.BytesIO(fh.read())) as im:
            return im.convert("RGB")

    def size(self, *names: str) -> Size | None:
        """``(width, height)`` of the first of ``names`` found (its header); None if none is."""
        fh = self._open(*names)
        if fh is None:
            return None
        with fh:
            return handle_size(fh)

    def copy(self, name: str, dest: str | os.PathLike[str], *, link: bool = False) -> bool:
        """Put image ``name`` at ``dest`` (its folder made); False when it is not there.

        ``link=True`` makes a hard link where the file system allows (no extra space) and a
        copy otherwise; a zip member is always copied out.
        """
        path, member = self._find(name)
        if path is None and member is None:
            return False
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        if path is not None:
            if link:
                try:
                    os.link(path, dest)
                    return True
                except OSError:
                    pass  # another file system, or links not allowed: copy
            shutil.copyfile(path, dest)
            return True
        assert member is not None
        with member[0].open(member[1]) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return True

    def folder_images(self) -> Iterator[str]:
        """Relative names of the image files in the folders (not hidden, not leading out)."""
        for root in self.folders:
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).as_posix()
                if any(part.startswith(".") for part in PurePosixPath(rel).parts):
                    continue
                if p.suffix.lower() in IMAGE_SUFFIXES and self._inside(root, rel) is not None:
                    yield rel


def _zip_members(zf: zipfile.ZipFile) -> tuple[zipfile.ZipFile, dict[str, str]]:
    """The zip and its lookup table: exact member names first, then every tail of each."""
    files = [n for n in zf.namelist() if not n.endswith("/")]
    members = {n: n for n in files}
    for name in files:  # one dict, not a scan per image
        parts = name.split("/")
        for k in range(1, len(parts)):
            members.setdefault("/".join(parts[k:]), name)
    return zf, members
