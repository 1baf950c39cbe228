"""Reading any source: its format told from its files, COCO results files, and what a source lacks.

:func:`detect` names the format of a file or folder when only one fits (a COCO JSON, a YOLO
folder with ``data.yaml``, a KITTI folder with ``label_2``, a CVAT XML, an OpenLABEL JSON, a
Parquet folder, a Deepen labels file or snapshot, ...), :func:`read_source` reads it through the
format's reader, and :func:`source_gaps` says what the source format could not express.

COCO *results* files (a detector's output: ``[{"image_id", "category_id", "bbox", "score",
"segmentation"?}]``) are read by :func:`read_coco_results`, with the COCO instances file that
lists their images and categories (``gt``) when the ids are numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepen_export.errors import ConversionError, DeepenExportError
from deepen_export.model import KINDS, LabelSet

__all__ = [
    "COCO_RESULTS",
    "detect",
    "read_coco_results",
    "read_source",
    "readable_format",
    "source_gaps",
]

COCO_RESULTS = "coco_results"
"""Pseudo-format name of COCO results files (read only; not in the registry)."""

_JSON_PEEK = 256 << 20  # parse JSON files up to this size to tell their format


def _json_doc(path: Path) -> Any:
    if path.stat().st_size > _JSON_PEEK:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        try:  # JSON lines (TuSimple): the first line alone
            with path.open(encoding="utf-8") as fh:
                return {"__jsonl__": json.loads(fh.readline())}
        except (ValueError, UnicodeDecodeError):
            return None


def _json_format(doc: Any) -> str | None:
    if isinstance(doc, list):
        first = doc[0] if doc else {}
        if isinstance(first, dict) and "image_id" in first and "category_id" in first:
            return COCO_RESULTS
        return "deepen" if not doc or (isinstance(first, dict) and "label_type" in first) else None
    if not isinstance(doc, dict):
        return None
    if "__jsonl__" in doc:
        line = doc["__jsonl__"]
        return "tusimple" if isinstance(line, dict) and "h_samples" in line else None
    if "openlabel" in doc:
        return "openlabel"
    if "images" in doc and ("annotations" in doc or "categories" in doc):
        return "coco"
    if "labels" in doc or "all_labels" in doc or "label_type" in doc:
        return "deepen"
    return None


def _file_format(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        head = path.read_bytes()[:4096]
        return ["cvat"] if b"<annotations" in head else []
    if suffix == ".parquet":
        return ["parquet"]
    if suffix in (".json", ".jsonl", ".txt"):
        fmt = _json_format(_json_doc(path))
        return [fmt] if fmt else []
    return []


_FOLDER_RULES: list[tuple[str, Callable[[Path], bool]]] = [
    ("yolo", lambda p: (p / "data.yaml").is_file()),
    ("kitti", lambda p: (p / "label_2").is_dir()),
    ("kitti_tracking", lambda p: (p / "label_02").is_dir()),
    ("voc", lambda p: (p / "Annotations").is_dir()),
    ("cvat", lambda p: (p / "annotations.xml").is_file()),
    ("masks", lambda p: (p / "classes.json").is_file() and (p / "masks").is_dir()),
    ("semantickitti", lambda p: (p / "sequences").is_dir() and (p / "label_map.yaml").is_file()),
    ("lidarseg", lambda p: (p / "lidarseg").is_dir() and _lidarseg_tables(p)),
    ("culane", lambda p: any(p.rglob("*.lines.txt"))),
    ("parquet", lambda p: any(p.rglob("*.parquet"))),
    ("nuscenes", lambda p: any((d / "sample_annotation.json").is_file() for d in p.glob("v1.0-*"))),
    ("t4", lambda p: any(p.glob("*/annotation/sample_annotation.json"))),
]


def _lidarseg_tables(p: Path) -> bool:
    """A lidarseg export: ``category.json`` (flat, or in ``v1.0-*/``) and no nuScenes samples."""
    tables = [p, *p.glob("v1.0-*")]
    return any((t / "category.json").is_file() for t in tables) and not any(
        (t / "sample_annotation.json").is_file() for t in tables
    )


def detect(source: str | os.PathLike[str]) -> str:
    """The format of ``source`` when exactly one fits; ConversionError saying why otherwise.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "data.yaml").write_text("names: [car]")
    >>> detect(d)
    'yolo'
    """
    path = Path(source)
    if not path.exists():
        raise ConversionError(f"{path}: no such file or folder")
    if path.is_file():
        found = _file_format(path)
    else:
        found = [name for name, rule in _FOLDER_RULES if rule(path)]
        if (path / "labels.json").is_file():
            found.append("deepen")  # a snapshot or a deepen-format output folder
        for name in ("annotations.json", "label_data.json"):
            if (path / name).is_file():
                found += [f for f in _file_format(path / name) if f not in found]
        if not found:
            found = sorted({f for p in sorted(path.glob("*.json"))[:20] for f in _file_format(p)})
            if found != ["openlabel"]:
                found = [f for f in found if f == "openlabel"] or found
    found = list(dict.fromkeys(found))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConversionError(
            f"cannot tell the format of {path}; pass --from FORMAT "
            "(see `deepen-export formats`, or coco_results for a detector's results file)"
        )
    raise ConversionError(
        f"{path} looks like more than one format ({', '.join(found)}); pass --from FORMAT"
    )


def read_source(
    source: str | os.PathLike[str],
    format: str | None = None,
    /,
    *,
    images: str | os.PathLike[str] | None = None,
    frames: str | os.PathLike[str] | None = None,
    gt: str | os.PathLike[str] | None = None,
    min_score: float | None = None,
) -> tuple[LabelSet, str]:
    """Read ``source`` in ``format`` (detected when None); returns the labels and the format.

    ``images`` goes to readers that take it (YOLO: image sizes), ``frames`` to Deepen sources
    (calibration), ``gt`` and ``min_score`` to COCO results.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp(), "labels.json")
    >>> _ = p.write_text(json.dumps({"labels": [{"file_id": "a.png", "label_id": "car:1",
    ...     "label_category_id": "car", "label_type": "box", "box": [0, 0, 2, 2]}]}))
    >>> labels, fmt = read_source(p)
    >>> fmt, len(labels)
    ('deepen', 1)
    """
    import converters

    fmt = (format or detect(source)).lower().replace("-", "_")
    if fmt == COCO_RESULTS:
        return read_coco_results(source, gt=gt, min_score=min_score), fmt
    if min_score is not None:
        raise ConversionError("--min-score applies to COCO results files only")
    if fmt == "deepen":
        from deepen_export import read_labels

        path = Path(source)
        if path.is_dir() and (path / "labels.json").is_file() and not _is_snapshot(path):
            path = path / "labels.json"
        return read_labels(path, frames=frames, images=images), fmt
    readable_format(fmt)
    module = converters.get(fmt)
    import inspect

    kwargs: dict[str, Any] = {}
    takes_images = "images" in inspect.signature(module.read).parameters
    if images is not None and takes_images:
        kwargs["images"] = images
    try:
        labels = converters.read(source, fmt, **kwargs)
    except (
        DeepenExportError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        # a reader meeting files of another format: one line, not its traceback
        why = str(exc) if isinstance(exc, DeepenExportError) else f"{type(exc).__name__}: {exc}"
        raise ConversionError(
            f"cannot read {source} as {fmt} ({why}); "
            "is --from right? (`deepen-export formats` lists them)",
            format=fmt,
        ) from exc
    if images is not None and not takes_images and bool(np.any(labels.frames.width < 0)):
        from deepen_export._media import fill_sizes_from_images

        labels = fill_sizes_from_images(labels, images)  # sizes the format did not keep
    return labels, fmt


def readable_format(name: str) -> str:
    """``name`` normalised, when a reader exists for it; ConversionError listing them otherwise.

    Examples
    --------
    >>> readable_format("COCO-results")
    'coco_results'
    """
    import converters

    key = name.lower().replace("-", "_")
    readable = [f.name for f in converters.FORMATS.values() if f.readable] + [COCO_RESULTS]
    if key not in readable:
        raise ConversionError(f"unknown source format {name!r}; readable: {', '.join(readable)}")
    return key


def _is_snapshot(path: Path) -> bool:
    return any((path / n).is_file() for n in ("manifest.json", "dataset.json", "files.json"))


def read_coco_results(
    source: str | os.PathLike[str],
    /,
    *,
    gt: str | os.PathLike[str] | None = None,
    min_score: float | None = None,
) -> LabelSet:
    """A detector's COCO results file as labels: boxes, or polygons where a segmentation is given.

    Parameters
    ----------
    source : path
        ``[{"image_id", "category_id", "bbox", "score", "segmentation"?}, ...]``.
    gt : path, optional
        The COCO instances file (or folder) listing the images and categories the ids refer to;
        without it, ``image_id`` must be the image's file name and ``category_id`` is taken as
        the category name (map it with ``--map``).
    min_score : float, optional
        Keep only results scoring at least this.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp(), "res.json")
    >>> _ = p.write_text(json.dumps([{"image_id": "a.png", "category_id": "car",
    ...     "bbox": [1, 2, 3, 4], "score": 0.9}, {"image_id": "a.png", "category_id": "car",
    ...     "bbox": [0, 0, 1, 1], "score": 0.1}]))
    >>> read_coco_results(p, min_score=0.5).boxes.xyxy.tolist()
    [[1.0, 2.0, 4.0, 6.0]]
    """
    from converters import coco

    path = Path(source)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read COCO results {path}: {exc}") from exc
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ConversionError(f"{path}: a COCO results file is a JSON list of objects")
    for i, r in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in r]
        if missing and not ("segmentation" in r and "bbox" in missing and len(missing) == 1):
            raise ConversionError(f"{path}: result {i} has no {', '.join(missing)}")
    if min_score is not None:
        results = [r for r in results if float(r.get("score", 0.0)) >= min_score]
    images, categories = _results_context(results, gt, path)
    anns = [
        {
            **{k: v for k, v in r.items() if k in ("image_id", "category_id", "bbox")},
            **({"segmentation": r["segmentation"]} if r.get("segmentation") else {}),
            "id": i + 1,
        }
        for i, r in enumerate(results)
    ]
    doc = {"images": images, "categories": categories, "annotations": anns}
    labels = coco.from_dict(doc)
    return labels.replace(meta={"source_format": COCO_RESULTS, "source": str(path)})


def _results_context(
    results: list[dict[str, Any]], gt: str | os.PathLike[str] | None, path: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if gt is not None:
        g = Path(gt)
        from converters.coco import documents

        g = documents(g)[0]  # a folder written by coco.write: its (first) instances file
        try:
            doc = json.loads(g.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConversionError(f"cannot read COCO instances {g}: {exc}") from exc
        images, cats = doc.get("images", []), doc.get("categories", [])
        known_i = {im["id"] for im in images}
        known_c = {c["id"] for c in cats}
        bad_i = sorted({str(r["image_id"]) for r in results} - {str(i) for i in known_i})
        bad_c = sorted({str(r["category_id"]) for r in results} - {str(c) for c in known_c})
        if bad_i or bad_c:
            what = [f"image_id {', '.join(bad_i[:10])}" if bad_i else "",
                    f"category_id {', '.join(bad_c[:10])}" if bad_c else ""]  # fmt: skip
            raise ConversionError(
                f"{path}: {' and '.join(w for w in what if w)} not in {g}", format=COCO_RESULTS
            )
        return images, cats
    ids = list(dict.fromkeys(r["image_id"] for r in results))
    if any(not isinstance(i, str) for i in ids):
        raise ConversionError(
            f"{path}: image_id values are numbers; pass the COCO instances file that lists the "
            "images (--gt annotations.json)",
            format=COCO_RESULTS,
        )
    cat_ids = list(dict.fromkeys(r["category_id"] for r in results))
    images = [{"id": i, "file_name": i} for i in ids]
    cats = [{"id": c, "name": str(c)} for c in sorted(cat_ids, key=str)]
    return images, cats


# What each source format cannot express at all (beyond the kinds it holds).
_FIELD_GAPS: dict[str, tuple[str, ...]] = {
    "yolo": ("attributes", "label ids and tracks"),
    "voc": ("label ids and tracks",),
    "tusimple": ("attributes", "label ids and tracks", "categories"),
    "culane": ("attributes", "label ids and tracks", "categories"),
    COCO_RESULTS: ("attributes", "label ids and tracks", "sensor ids", "image sizes"),
}


def source_gaps(fmt: str, labels: LabelSet, target_kinds: frozenset[str] | set[str]) -> list[str]:
    """Sentences saying what the source (format ``fmt``, read as ``labels``) could not express.

    Examples
    --------
    >>> source_gaps("tusimple", LabelSet.empty(), {"boxes", "polylines"})
    ['tusimple holds no boxes: the output has none', 'tusimple has no attributes',
     'tusimple has no label ids and tracks', 'tusimple has no categories']
    """
    held = KINDS if fmt in ("deepen", "parquet") else _source_kinds(fmt)
    lacking = [k for k in KINDS if k in target_kinds and k not in held]
    out = [f"{fmt} holds no {', '.join(lacking)}: the output has none"] if lacking else []
    out += [f"{fmt} has no {what}" for what in _FIELD_GAPS.get(fmt, ())]
    sizes_known = not len(labels.frames) or bool(np.any(labels.frames.width >= 0))
    if not sizes_known and "image sizes" not in _FIELD_GAPS.get(fmt, ()):
        out.append(f"{fmt} source gives no image sizes (pass --images where the output needs them)")
    return out


def _source_kinds(fmt: str) -> frozenset[str]:
    import converters

    if fmt == COCO_RESULTS:
        return frozenset({"boxes", "polygons"})
    return converters.get_format(fmt).kinds
