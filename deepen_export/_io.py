"""Writing files safely: atomic folders and files, and paths that cannot leave their folder.

Shared by the converters and by the preview and report writers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from deepen_export.errors import ConversionError

__all__ = ["atomic_dir", "atomic_file", "check_replaceable", "safe_path", "umask_mode"]


def umask_mode(mode: int) -> int:
    """``mode`` less the process umask: what ``open``/``mkdir`` would have given.

    ``tempfile.mkdtemp``/``mkstemp`` create 0700/0600 whatever the umask; outputs renamed from
    them into place get the umask's permissions back through this, as any other file would.

    Examples
    --------
    >>> old = os.umask(0o022); umask_mode(0o777) == 0o755; _ = os.umask(old)
    True
    """
    current = os.umask(0)
    os.umask(current)
    return mode & ~current


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
    >>> safe_path("/out", "./.")
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: file id './.' names no file
    """
    rel = relative.replace("\\", "/")
    parts = PurePosixPath(rel).parts
    if not rel.strip():
        raise ConversionError(
            f"file id {relative!r} is empty: a label without a file id cannot be written "
            "(fix the labels file)"
        )
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ConversionError(
            f"file id {relative!r} is not valid Unicode (a lone surrogate): it cannot be a file "
            "name (fix the labels file)"
        ) from None
    drive = bool(parts) and re.fullmatch(r"[A-Za-z]:.*", parts[0]) is not None
    if rel.startswith("/") or drive or ".." in parts:
        raise ConversionError(f"file id {relative!r} would write outside the output folder")
    kept = [p for p in parts if p not in ("", ".")]
    if not kept:
        raise ConversionError(f"file id {relative!r} names no file")
    if "\0" in rel or any(len(p.encode("utf-8", "surrogateescape")) > 200 for p in kept):
        raise ConversionError(
            f"file id {relative[:80]!r} cannot be a file name (a NUL byte or a part over 200 bytes)"
        )
    return Path(root, *kept)


def _ours(folder: Path) -> bool:
    """Whether ``folder`` is empty or looks like something deepen-export wrote."""
    import json

    entries = list(folder.iterdir())
    if not entries:
        return True
    for marker, key in (("report.json", "format"), ("manifest.json", "snapshot_version")):
        f = folder / marker
        if f.is_file():
            try:
                if key in json.loads(f.read_text(encoding="utf-8")):
                    return True
            except (ValueError, OSError):
                pass
    # a preview folder holds nothing but the PNGs it drew
    return all(p.suffix.lower() == ".png" for p in folder.rglob("*") if p.is_file())


def check_replaceable(dest: str | os.PathLike[str], what: str = "output") -> Path:
    """Resolve ``dest`` and refuse it when replacing it could destroy something that is not ours.

    A missing or empty folder, or one that deepen-export wrote before (it has a ``report.json``,
    a snapshot ``manifest.json``, or only preview PNGs), may be replaced; anything else, such as
    the folder holding the input labels, is refused before any work is done.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels.json").write_text("{}")
    >>> check_replaceable(d)
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: refusing to replace ... choose a new or empty folder
    """
    path = Path(dest).resolve()
    if path.exists() and (not path.is_dir() or not _ours(path)):
        kind = "a file" if not path.is_dir() else "a folder deepen-export did not write"
        raise ConversionError(
            f"refusing to replace {path}: it is {kind} and the {what} replaces the whole folder; "
            "choose a new or empty folder"
        )
    return path


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; on success it replaces ``dest`` as a whole.

    On an exception the temporary folder is removed and ``dest`` is left as it was. A ``dest``
    that exists and was not written by deepen-export is refused (see :func:`check_replaceable`).
    """
    dest = check_replaceable(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, umask_mode(0o777))  # the finished folder gets the umask, not mkdtemp's 0700
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
    os.chmod(tmp, umask_mode(0o666))  # as open() would create it, not mkstemp's 0600
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
