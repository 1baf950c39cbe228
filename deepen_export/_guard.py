"""Guards of the command entry points: outputs never overlap inputs, never replace what is not ours.

Three checks run before a command reads or writes anything:

* :func:`check_output` refuses an output folder that is, contains or lies inside any input
  (the labels file or snapshot, ``--images``, ``--media``, ``--id-map``), since replacing the
  output as a whole would delete the input;
* it also refuses to replace an existing folder deepen-export did not create: every output the
  commands write carries a marker file, :data:`MARKER`, listing the files written (see
  :func:`stamp`). A folder without the marker, or with files the marker does not list (images
  a user put into a YOLO output), is replaced only with ``--overwrite``;
* :func:`clean_leftovers` removes what killed runs left beside the destination (the
  converters' ``.<name>.*.tmp``, a pull's ``.<name>.pull-*``, the previous output set aside as
  ``.<name>.old-*``, which is first put back when the run was killed between its two renames).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from deepen_export.errors import ConversionError

__all__ = ["MARKER", "STALE_AFTER", "check_output", "clean_leftovers", "stamp", "unmarked"]

log = logging.getLogger("deepen_export")

#: The marker file in every folder the commands write (JSON, but not named ``*.json``: format
#: readers that glob ``*.json`` in an output, OpenLABEL's and TuSimple's, must not pick it up).
MARKER = ".deepen-export-output"

#: A temp folder untouched this long (seconds) is taken for a killed run's, when no pid tells.
STALE_AFTER = 900.0

_MKDTEMP = re.compile(r"[a-z0-9_]{8}\.tmp")

# Files that folders of these layouts gain from other runs writing other datasets beside them.
_SHARED_PARTS = ("_delta_log", "_reports", "_staging")


def _overlap(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def check_output(
    output: str | os.PathLike[str],
    inputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
    *,
    overwrite: bool = False,
    what: str = "output",
) -> str:
    """Refuse an ``output`` that overlaps an input or is a folder deepen-export did not create.

    Parameters
    ----------
    output : path-like or URI
        The ``-o`` of the command; URIs (``s3://...``) are not checked.
    inputs : iterable of (name, path or None)
        The inputs by the option that names them (``("SOURCE", path)``, ``("--images", dir)``).
    overwrite : bool
        Replace an existing folder without the marker, or with files the marker does not list.
    what : str
        The word for the output in messages.

    Returns
    -------
    str
        The output made absolute (a URI as given), for :func:`stamp` once written: a relative
        ``-o .`` would name nothing once the folder it was run from is replaced.

    Raises
    ------
    ConversionError
        One line naming the output, the input or the unexpected files, and what to do.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_output(d / "out", [("--images", d / "out" / "images")])
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: refusing to replace ...: the output contains --images ...
    >>> check_output(d / "new", [("SOURCE", d / "labels.json")]) == str(d / "new")
    True
    """
    if "://" in os.fspath(output) or os.fspath(output).startswith("s3:/"):
        return os.fspath(output)
    out = Path(output).resolve()
    for name, path in inputs:
        if path is None:
            continue
        inp = Path(path).resolve()
        how = _overlap(out, inp)
        if how is not None:
            raise ConversionError(
                f"refusing to replace {out}: the {what} {how} {name} {inp}, and writing it would "
                "replace the input; choose a new or empty folder apart from every input"
            )
    _recover_old(out)
    clean_leftovers(out)
    if not out.exists() or overwrite:
        return str(out)
    if not out.is_dir():
        raise ConversionError(f"{what} {out} is a file; choose a folder (or remove the file)")
    foreign = _foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise ConversionError(
            f"refusing to replace {out}: it holds files deepen-export did not write ({shown}); "
            "move them out (images go to a folder passed with --images), choose a new or empty "
            "folder, or pass --overwrite to replace the folder anyway"
        )
    return str(out)


def _written(out: Path) -> set[str] | None:
    """The files the marker says were written, or None when there is no readable marker."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = marker.get("files") if isinstance(marker, dict) else None
    if marker.get("tool") != "deepen-export" or not isinstance(files, list):
        return None
    return {str(f) for f in files}


def _listing(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != MARKER
    )


def _foreign_files(out: Path) -> list[str]:
    present = _listing(out)
    if not present and not any(out.iterdir()):
        return []
    written = _written(out)
    if written is None:
        return present or sorted(p.name for p in out.iterdir())
    return [
        f
        for f in present
        if f not in written
        and not any(part in _SHARED_PARTS or "=" in part for part in f.split("/")[:-1])
    ]


def stamp(output: str | os.PathLike[str], **extra: Any) -> None:
    """Write :data:`MARKER` into a finished output: the tool, its version and the files in it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x")
    >>> stamp(d, format="yolo")
    >>> json.loads((d / MARKER).read_text())["files"]
    ['a.txt']
    """
    if "://" in os.fspath(output) or os.fspath(output).startswith("s3:/"):
        return
    from deepen_export import __version__
    from deepen_export._io import atomic_file

    out = Path(output)
    if not out.is_dir():
        return
    body = {"tool": "deepen-export", "version": __version__, **extra, "files": _listing(out)}
    with atomic_file(out / MARKER, "w") as fh:
        json.dump(body, fh, indent=1)
        fh.write("\n")


@contextlib.contextmanager
def unmarked(output: str | os.PathLike[str]) -> Iterator[None]:
    """Take the marker out of ``output`` while a writer replaces it; put it back on failure.

    Writers check on their own that a folder they replace looks like theirs (a preview folder
    holds nothing but PNGs); the marker, checked already, must not stand in their way. A write
    that fails leaves the old output, so its marker returns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> stamp(d)
    >>> with unmarked(d):
    ...     (d / MARKER).exists()
    False
    >>> (d / MARKER).exists()  # the "write" replaced nothing: stamp() runs after a real one
    False
    """
    marker = Path(output) / MARKER
    try:
        saved = marker.read_bytes() if "://" not in os.fspath(output) else None
    except OSError:
        saved = None
    if saved is not None:
        marker.unlink()
    try:
        yield
    except BaseException:
        if saved is not None and marker.parent.is_dir() and not marker.exists():
            marker.write_bytes(saved)
        raise


def _recover_old(dest: Path) -> None:
    """Put back the previous output a run set aside and was killed before replacing."""
    if dest.exists() or not dest.parent.is_dir():
        return
    olds = sorted(
        (p for p in dest.parent.glob(f".{glob_escape(dest.name)}.old-*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    if olds:
        os.replace(olds[-1], dest)
        log.warning("restored the previous %s from %s (left by a killed run)", dest, olds[-1].name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, p.lstat().st_mtime)
    return newest


def _stale(dest: Path, p: Path, now: float) -> bool:
    rest = p.name[len(dest.name) + 2 :]
    if rest.startswith("pull-"):
        pid, _, tail = rest[5:].partition("-")
        if pid.isdigit() and tail:
            return int(pid) != os.getpid() and not _pid_alive(int(pid))
        return now - _newest_mtime(p) > STALE_AFTER
    if rest.startswith("old-"):
        return dest.exists()  # dest is in place: the set-aside copy is garbage
    if _MKDTEMP.fullmatch(rest):  # tempfile.mkdtemp's 8 characters, not a sibling's name
        return now - _newest_mtime(p) > STALE_AFTER
    return False


def clean_leftovers(dest: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed runs left beside ``dest``; return the folders removed.

    ``.<name>.pull-<pid>-*`` of a process that is gone; ``.<name>.old-*`` once ``dest`` is in
    place; the converters' ``.<name>.*.tmp`` (and pull folders without a pid) once nothing in
    them changed for :data:`STALE_AFTER` seconds (a run still writing touches its files).

    Examples
    --------
    >>> clean_leftovers("/nonexistent/out")
    []
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed: list[Path] = []
    now = time.time()
    for p in dest.parent.glob(f".{glob_escape(dest.name)}.*"):
        if p.is_dir() and not p.is_symlink() and _stale(dest, p, now):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            log.info("removed %s, left by an interrupted run", p)
    return removed
