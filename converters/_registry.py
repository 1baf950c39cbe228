"""The format registry: which label kinds each format holds, and where its module is.

Kept apart from :mod:`converters` (which dispatches ``write``/``read`` by name) so that the shared
writer code in :mod:`converters._base` can read it without importing the package it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepen_export.errors import ConversionError
from deepen_export.model import KINDS, LABEL_KINDS

__all__ = ["FORMATS", "Format", "get_format", "names"]


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
    needs : frozenset of str
        Calibration tables the input must have besides labels (``{"poses"}``: the device poses
        of a 3D sequence, for nuScenes and T4); a label set without them cannot be written.
    """

    name: str
    module: str
    kinds: frozenset[str]
    description: str
    readable: bool = True
    needs: frozenset[str] = frozenset()


def _f(
    name: str,
    kinds: set[str],
    description: str,
    *,
    module: str | None = None,
    readable: bool = True,
    needs: frozenset[str] = frozenset(),
) -> Format:
    unknown = set(kinds) - set(KINDS)  # the model's kind registry is the one list of kinds
    if unknown:
        raise ValueError(f"format {name!r} names unknown kinds {sorted(unknown)}")
    return Format(
        name, module or f"converters.{name}", frozenset(kinds), description, readable, needs
    )


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
            set(LABEL_KINDS),
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
        _f(
            "nuscenes",
            {"cuboids", "point_segmentation"},
            "nuScenes v1.0 tables + scans, images, lidarseg (nuscenes-devkit)",
            needs=frozenset({"poses"}),
        ),
        _f(
            "t4",
            {"cuboids", "boxes", "polygons"},
            "TIER IV T4 dataset: nuScenes tables + object_ann/surface_ann (t4-devkit)",
            needs=frozenset({"poses"}),
        ),
        _f("tusimple", {"polylines"}, "TuSimple lane JSON lines (h_samples)"),
        _f("culane", {"polylines"}, "CULane .lines.txt per image"),
        _f(
            "parquet",
            set(KINDS),
            "(Geo)Parquet tables for analytics (DuckDB, Spark, Polars, pandas)",
        ),
        _f(
            "deepen",
            set(LABEL_KINDS),
            "Deepen label JSON (what the API serves and `push` sends)",
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
