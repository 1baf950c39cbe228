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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["FORMATS", "Format", "get", "get_format", "names", "read", "write"]


@dataclass(frozen=True)
class Format:
    """One output format: its name, module, the label kinds it holds, and whether it reads back.

    Parameters
    ----------
    name : str
        Name used on the command line (``--to NAME``).
    module : str
        Import path of the module with ``write`` (and ``read``).
    kinds : frozenset of str
        Label kinds (see :data:`deepen_export.model.KINDS`) the format can hold.
    description : str
        One line for ``deepen-export formats``.
    readable : bool
        Whether ``read`` exists.
    """

    name: str
    module: str
    kinds: frozenset[str]
    description: str
    readable: bool = True


def _f(
    name: str,
    kinds: set[str],
    description: str,
    *,
    module: str | None = None,
    readable: bool = True,
) -> Format:
    return Format(name, module or f"converters.{name}", frozenset(kinds), description, readable)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        _f(
            "coco",
            {"boxes", "polygons", "points"},
            "COCO instances JSON (boxes, polygons/RLE, keypoints)",
        ),
        _f(
            "yolo",
            {"boxes", "polygons"},
            "Ultralytics YOLO detection / segmentation txt + data.yaml",
        ),
        _f(
            "voc", {"boxes", "polygons"}, "Pascal VOC XML, one file per image (+ segmentation PNGs)"
        ),
        _f(
            "cvat",
            {"boxes", "polygons", "polylines", "points", "scenes"},
            "CVAT for images 1.1 XML",
        ),
        _f("masks", {"polygons", "masks2d"}, "Semantic masks: indexed PNG per image + class table"),
        _f(
            "kitti",
            {"boxes", "cuboids"},
            "KITTI object: label_2, calib (3D with calibration, or 2D only)",
        ),
        _f(
            "kitti_tracking", {"boxes", "cuboids"}, "KITTI tracking: label_02/%04d.txt per sequence"
        ),
        _f(
            "openlabel",
            {
                "boxes",
                "polygons",
                "polylines",
                "points",
                "cuboids",
                "polylines3d",
                "polygons3d",
                "points3d",
                "scenes",
            },
            "ASAM OpenLABEL 1.0.0 JSON",
        ),
        _f(
            "semantickitti",
            {"point_segmentation"},
            "SemanticKITTI .label (uint32) per frame + label map",
        ),
        _f(
            "lidarseg",
            {"point_segmentation"},
            "nuScenes-style lidarseg .bin (uint8) + category table",
        ),
        _f("tusimple", {"polylines"}, "TuSimple lane JSON lines (h_samples)"),
        _f("culane", {"polylines"}, "CULane .lines.txt per image"),
        _f(
            "parquet",
            {
                "boxes",
                "polygons",
                "polylines",
                "points",
                "cuboids",
                "polylines3d",
                "polygons3d",
                "points3d",
                "scenes",
                "point_segmentation",
                "masks2d",
            },
            "(Geo)Parquet tables for analytics (DuckDB, Spark, Polars, pandas)",
        ),
    ]
}
"""Every built-in format by name."""


def names() -> list[str]:
    """Names of the registered formats."""
    return list(FORMATS)


def get_format(name: str) -> Format:
    """The :class:`Format` called ``name``; ConversionError listing the known names otherwise."""
    key = name.lower().replace("-", "_")
    if key not in FORMATS:
        raise ConversionError(
            f"unknown format {name!r}; known formats: {', '.join(FORMATS)}", format=name
        )
    return FORMATS[key]


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

    Examples
    --------
    >>> import tempfile, deepen_export
    >>> labels = deepen_export.read_labels({"labels": []})
    >>> report = write(labels, tempfile.mkdtemp() + "/out", "coco")
    >>> report.format
    'coco'
    """
    return get(format).write(labels, dest, **options)


def read(source: Any, /, format: str, **options: Any) -> LabelSet:
    """Read ``source`` written in ``format`` back into a :class:`LabelSet`."""
    fmt = get_format(format)
    if not fmt.readable:
        raise ConversionError(f"format {fmt.name!r} cannot be read back", format=fmt.name)
    return get(format).read(source, **options)
