"""Images by relative name from folders and zip files: the one image source.

The converters (KITTI copies the camera images), the previews (they draw on them) and the parser
(image sizes for ``--images``) all look images up here, in folders and zips alike (the dataset's
uploaded zip is one). A name is a relative POSIX path (``\\`` and a leading ``/`` are
normalised); a folder never serves a file outside itself.

Examples
--------
>>> import tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("RGB", (4, 3)).save(d / "a.png")
>>> with ImageSource(d) as src:
...     src.size("missing.png", "a.png"), src.open("sub/a.png") is None
((4, 3), True)
>>> with ImageSource(d, by_basename=True) as src:
...     src.open("sub/a.png").size
(4, 3)
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

__all__ = ["ImageSource", "ImageSources"]

ImageSources = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
"""Where images are looked up: a folder, a zip file (the dataset's upload), or a list of them."""


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
    """

    def __init__(self, sources: ImageSources, *, by_basename: bool = False) -> None:
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
                zf = zipfile.ZipFile(p)
                members: dict[str, str] = {}
                for n in zf.namelist():
                    if not n.endswith("/"):
                        members.setdefault(n, n)
                        if by_basename:
                            members.setdefault(PurePosixPath(n).name, n)
                self.zips.append((zf, members))

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

    def _open(self, *names: str) -> IO[bytes] | None:
        """A binary handle on the first of ``names`` that exists, or None."""
        for name in (n for n in names if n):
            for cand in self._candidates(name):
                for root in self.folders:
                    path = (root / cand).resolve()
                    if path.is_relative_to(root) and path.is_file():
                        return open(path, "rb")
                for zf, members in self.zips:
                    member = members.get(cand)
                    if member is not None:
                        return zf.open(member)
        return None

    def open(self, *names: str) -> Any:
        """The first of ``names`` found, as an RGB :class:`PIL.Image.Image`; None if none is."""
        from PIL import Image

        fh = self._open(*names)
        if fh is None:
            return None
        with fh, Image.open(io.BytesIO(fh.read())) as im:
            return im.convert("RGB")

    def size(self, *names: str) -> tuple[int, int] | None:
        """``(width, height)`` of the first of ``names`` found (header only); None if none is."""
        from PIL import Image, UnidentifiedImageError

        fh = self._open(*names)
        if fh is None:
            return None
        try:
            with fh, Image.open(fh) as im:
                return int(im.size[0]), int(im.size[1])
        except (UnidentifiedImageError, OSError):
            return None

    def copy(self, name: str, dest: str | os.PathLike[str]) -> bool:
        """Copy image ``name`` to ``dest`` byte for byte; False when it is not there."""
        fh = self._open(name)
        if fh is None:
            return False
        with fh, open(dest, "wb") as out:
            shutil.copyfileobj(fh, out)
        return True
