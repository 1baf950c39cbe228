"""Converters: one module per output format, all with the same verbs.

Every format module ``converters.<name>`` exposes::

    write(labels, dest, /, *, on_unsupported="raise", ...) -> Report
    read(source, /, ...) -> LabelSet                # where the format can be read back

The registry below says which label kinds each format holds and imports a module only when it
is used. ``write`` and ``read`` here dispatch by format name.

Examples
--------
>>> import converters
>>> sorted(converters.get_format("coco").kinds)
['boxes', 'points', 'polygons']
>>> "kitti" in converters.names()
True
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from converters._registry import FORMATS, Format, get_format, names
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["FORMATS", "Format", "get", "get_format", "names", "read", "write"]


def get(name: str) -> ModuleType:
    """Import and return the module of format ``name``."""
    fmt = get_format(name)
    try:
        return importlib.import_module(fmt.module)
    except ModuleNotFoundError as exc:
        if exc.name == fmt.module:
            raise ConversionError(
                f"format {fmt.name!r} is not available in this build", format=fmt.name
            ) from exc
        raise


def write(labels: LabelSet, dest: Any, /, format: str, **options: Any) -> Report:
    """Write ``labels`` to ``dest`` in ``format``; see each format module for its options.

    ``on_unsupported`` defaults to ``"warn"`` here (as on the command line): the kinds the format
    cannot hold are left out, each named in a :class:`LossyConversionWarning` with a format that
    takes it; pass ``on_unsupported="raise"`` to make that an error.

    Examples
    --------
    >>> import tempfile, deepen_export
    >>> labels = deepen_export.read_labels({"labels": []})
    >>> report = write(labels, tempfile.mkdtemp() + "/out", "coco")
    >>> report.format
    'coco'
    """
    from converters._base import remote_destination

    module = get(format)
    if "filesystem" not in options:  # with a filesystem, dest is a path on it (Parquet)
        remote_destination(dest)  # before any work: a URI nothing can write is refused
    if "on_unsupported" in inspect.signature(module.write).parameters:
        # DESIGN's default: write what the format holds, one warning per left-out kind
        options.setdefault("on_unsupported", "warn")
    return module.write(labels, dest, **options)


def read(source: Any, /, format: str, **options: Any) -> LabelSet:
    """Read ``source`` written in ``format`` back into a :class:`LabelSet`."""
    fmt = get_format(format)
    if not fmt.readable:
        raise ConversionError(f"format {fmt.name!r} cannot be read back", format=fmt.name)
    return get(format).read(source, **options)
