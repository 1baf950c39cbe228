"""One label response -> LabelSet: the columnar path first, the general path when it cannot."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from deepen_export.model import (
    LabelSet,
)
from deepen_export.parse._assemble import _Ctx
from deepen_export.parse._columnar import try_parse_file
from deepen_export.parse._general import parse_general
from deepen_export.parse._shapes import _iter_response, load_json


def parse_labels(
    obj: Any,
    *,
    path: str | None = None,
    dataset_id: str = "",
    categories: Sequence[str] = (),
    files: Sequence[Mapping[str, Any]] | None = None,
    fast: bool = True,
) -> LabelSet:
    """Parse one Deepen label response (any documented shape) into a :class:`LabelSet`.

    Parameters
    ----------
    obj : dict, list, bytes, str or path
        The response: a parsed object, its JSON text or bytes, or a path to a JSON file.
    path : str, optional
        Name used in errors and report entries.
    dataset_id : str
        Dataset id for labels that do not carry one.
    categories : sequence of str
        Category order to start from (for example a labelling profile's); categories used by
        labels but not listed are appended in sorted order.
    files : list of dict, optional
        The dataset's files list (``GET /datasets/{id}/files``): files without labels become
        frames, with a review status when the file resource has one.
    fast : bool
        Try the columnar pyarrow path first for files (same result, much faster on large inputs).

    Returns
    -------
    LabelSet

    Raises
    ------
    ParseError
        When the input is not JSON or not one of the documented shapes. Problems with single
        labels never raise: they are listed in ``labels.issues``.

    Examples
    --------
    >>> ls = parse_labels({"all_labels": [{"file_id": "0.pcd", "label_id": "car: 4",
    ...     "label_category_id": "car", "label_type": "3d_bbox", "sensor_id": "lidar",
    ...     "three_d_bbox": {"cx": 1, "cy": 2, "cz": 3, "l": 4, "w": 2, "h": 1.5, "rot_z": 0}}]})
    >>> ls.cuboids.track.tolist(), ls.cuboids.size.tolist()
    ([4], [[4.0, 2.0, 1.5]])
    """
    if (
        fast
        and isinstance(obj, (str, os.PathLike))
        and not (isinstance(obj, str) and obj.lstrip()[:1] in "{[")
    ):
        result = try_parse_file(obj, dataset_id=dataset_id, categories=categories, files=files)
        if result is not None:
            return result
    if isinstance(obj, (bytes, bytearray, memoryview, str, os.PathLike)):
        if (
            path is None
            and isinstance(obj, os.PathLike | str)
            and not (isinstance(obj, str) and obj.lstrip()[:1] in "{[")
        ):
            path = os.fspath(obj)
        obj = load_json(obj, path=path)
    ctx = _Ctx(dataset_id=dataset_id)
    return parse_general(
        _iter_response(obj, ctx, path), ctx, categories=categories, files=files, path=path
    )
