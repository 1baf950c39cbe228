"""Parsing Deepen output into a :class:`~deepen_export.model.LabelSet`: pure functions, no HTTP.

Accepted label responses
------------------------
- ``{"labels": [label, ...]}`` (what the label endpoint returns in practice),
- ``{"all_labels": [label, ...]}`` (what Deepen's documentation shows),
- ``{"labels": {"<file_id>": [label, ...], ...}}`` (``labels_with_file_ids_order=true``; files with
  an empty list become frames with no labels),
- a bare list of labels (one file's labels), and the multi-dataset response of
  ``labels_of_dataset_ids`` whose labels carry ``dataset_id``.

Label geometry by ``label_type``
--------------------------------
=============== ============================================================================
``box``         ``box: [x, y, width, height]`` (pixels, top-left) -> ``Boxes.xyxy``
``polygon``     ``polygons: [[[x, y], ...], ...]`` (rings) -> ``Polygons``
``lane``        ``polygons`` (one polyline per entry); also ``polyline``/``points``/``lane``
``point``       undocumented by Deepen; accepted: ``point: [x, y]``, ``point: {"x", "y"}``,
                ``points: [[x, y], ...]``, ``polygons: [[[x, y], ...]]``, ``keypoints``
``scene``       no geometry -> ``Scenes``
``3d_bbox``     ``three_d_bbox: {cx, cy, cz, l, w, h}`` with ``rot_z`` (radians, right-handed
                yaw about +z, an assumption: Deepen does not document the sign) *or*
                ``quaternion: {x, y, z, w}`` -> ``Cuboids`` (world frame)
``3d_polyline`` undocumented; accepted under ``three_d_polyline``, ``polyline``, ``polylines``,
                ``points`` or ``polygons``, points as ``[x, y, z]`` or ``{"x", "y", "z"}``,
                one part or a list of parts
``3d_polygon``  undocumented; as ``3d_polyline`` (also ``three_d_polygon``, ``polygon``)
``3d_point``    undocumented as a vector label; ``three_d_point``/``point``/``points``
=============== ============================================================================

Anything else (an unknown ``label_type``, a missing or non-finite geometry, a label without a
``file_id``) is left out of the tables and recorded in ``LabelSet.issues`` with its ``file_id``
and ``label_id``: never a crash, never silence.

Other inputs
------------
- 3D paint labels (``.dpn`` + ``paint-metadata``): :func:`parse_paint_labels`.
- 2D semantic painting (``.npy`` per image + per-file category lists): :func:`parse_painting2d`.
- The uploaded 3D frames (``json_data.zip``: one JSON per frame): :func:`parse_frames_zip`.
- A snapshot folder written by ``deepen-export pull``: :func:`parse_snapshot`.

Speed
-----
Files of boxes, polygons, lanes, scenes and cuboids go through a columnar path that never builds
per-label Python objects but the label ids: a ``{"labels": [...]}`` file is read once, in parts,
and cut at a few label boundaries into lines ``{"l": [label, ...]}`` of about 2 MB (only quotes
are counted to find a boundary, by ``bytes.count``); pyarrow's multi-threaded JSON reader parses
one 64 MB part while a thread cuts the next (:func:`~deepen_export.parse._scan.read_batched`).
Repeating strings stay dictionary-encoded (one Python string per distinct value), numbers are
viewed in Arrow's buffers (:mod:`deepen_export.parse._arrays`), and Arrow's memory comes from
jemalloc, which hands freed pages back at once. A dict-shaped response, or a file Arrow refuses
as lines, goes the per-label byte scan (:mod:`deepen_export.parse._scan`); anything the columnar
path cannot take falls back to the general path (:mod:`deepen_export.parse._general`), which
gives the same result, issues included.

Modules
-------
``_shapes`` response shapes and JSON loading; ``_assemble`` the shared back end (parse context,
frames and their order, categories); ``_general`` the per-label path; ``_arrays`` (Arrow to
numpy), ``_scan`` + ``_columnar`` the columnar path; ``_labels`` the dispatch between them; ``paint``, ``frames_zip`` and
``painting2d`` the other Deepen inputs; ``_snapshot`` snapshot folders (layout in
:mod:`deepen_export.snapshot`); ``_source`` any source and batched reading. Imports go one way,
in that order (``tests/test_layers.py``).
"""

from __future__ import annotations

from deepen_export.model import KIND_OF_LABEL_TYPE as _KIND_OF_LABEL_TYPE
from deepen_export.parse._assemble import categories_from_profile, natural_key
from deepen_export.parse._general import yaw_to_quat
from deepen_export.parse._labels import parse_labels
from deepen_export.parse._shapes import load_json
from deepen_export.parse._snapshot import parse_snapshot
from deepen_export.parse._source import iter_label_batches, parse_source
from deepen_export.parse.frames_zip import FramesData, parse_frames_zip
from deepen_export.parse.paint import PaintLabels, parse_paint_labels
from deepen_export.parse.painting2d import parse_painting2d

__all__ = [
    "LABEL_TYPES",
    "FramesData",
    "PaintLabels",
    "categories_from_profile",
    "iter_label_batches",
    "load_json",
    "natural_key",
    "parse_frames_zip",
    "parse_labels",
    "parse_paint_labels",
    "parse_painting2d",
    "parse_snapshot",
    "parse_source",
    "yaw_to_quat",
]

LABEL_TYPES: tuple[str, ...] = tuple(_KIND_OF_LABEL_TYPE)
"""Deepen ``label_type`` values the parser takes (from :data:`deepen_export.model.KIND_SPECS`)."""
