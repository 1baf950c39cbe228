"""datumaro (1.13, in its own cached venv: see ``tests/_isolated_env.py``) reading our outputs as written.

:func:`dump` imports a folder with ``Dataset.import_from(path, format)`` from a working directory
other than the folder and returns what datumaro saw, as plain JSON: per item its id, subset,
image path (and whether the file exists) and size, and per annotation its type, label name,
``get_bbox()`` (x, y, w, h), points and attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests._isolated_env import DATUMARO, run_tool

__all__ = ["dump"]

_SCRIPT = r"""
import json, sys, logging
logging.disable(logging.WARNING)
from datumaro.components.dataset import Dataset
from datumaro.components.annotation import AnnotationType
path, fmt = sys.argv[1], sys.argv[2]
ds = Dataset.import_from(path, fmt)
labels = ds.categories().get(AnnotationType.label)
names = [l.name for l in labels.items] if labels else []
items = []
for item in ds:
    media = item.media
    p = getattr(media, "path", None)
    size = None
    try:
        size = list(media.size) if media is not None and media.size else None
    except Exception:
        size = None
    anns = []
    for a in item.annotations:
        d = {"type": a.type.name, "label": names[a.label] if getattr(a, "label", None) is not None else None,
             "attributes": {k: v for k, v in a.attributes.items() if isinstance(v, (str, int, float, bool))}}
        if hasattr(a, "get_bbox"):
            d["bbox"] = [float(v) for v in a.get_bbox()]
        if hasattr(a, "points"):
            d["points"] = [float(v) for v in a.points]
        if a.type.name == "mask":
            import numpy as np
            d["pixels"] = int(np.asarray(a.image).astype(bool).sum())
        anns.append(d)
    items.append({"id": item.id, "subset": item.subset, "image": p,
                  "image_exists": bool(p) and __import__("os").path.isfile(p),
                  "size": size, "annotations": anns})
print(json.dumps({"labels": names, "items": items}))
"""


def dump(path: Path, fmt: str, *, cwd: Path) -> dict[str, Any]:
    """What datumaro imports from ``path`` as ``fmt`` (run from ``cwd``)."""
    out = run_tool(DATUMARO, _SCRIPT, str(path), fmt, cwd=cwd)
    assert isinstance(out, dict)
    return out
