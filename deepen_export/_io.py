"""Writing files safely: atomic folders and files, and paths that cannot leave their folder.

Shared by the converters and by the preview and report writers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from deepen_export.errors import ConversionError

__all__ = ["atomic_dir", "atomic_file", "safe_path"]


def safe_path(root: str | os.PathLike[str], relative: str) -> Path:
    """``root / relative``, refusing absolute paths, drive letters and ``..`` components.

    Examples
    --------
    >>> safe_path("/out", "inner/000059.png").as_posix()
    '/out/inner/000059.png'
    >>> safe_path("/out", "../x")
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: file id '../x' would write outside the output folder
    """
    rel = relative.replace("\\", "/")
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith("/") or ":" in (parts[0] if parts else "") or ".." in parts:
        raise ConversionError(f"file id {relative!r} would write outside the output folder")
    return Path(root, *[p for p in parts if p not in ("", ".")])


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; on success it replaces ``dest`` as a whole.

    On an exception the temporary folder is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``dest`` for writing; rename it onto ``dest`` on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
