"""Deprecated alias of :mod:`deepen_export.pipeline` (``export_many`` and its task moved there).

``from deepen_export.distributed import export_many`` (and every other name of the pipeline)
still works, with a :class:`DeprecationWarning` naming the new module.

Examples
--------
>>> import warnings
>>> from deepen_export import distributed, pipeline
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     distributed.export_many is pipeline.export_many
True
"""

from __future__ import annotations

import warnings
from typing import Any

from deepen_export import pipeline


def __getattr__(name: str) -> Any:
    # dunder lookups (doctest's __test__, copy's __reduce__...) are not pipeline names
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(pipeline, name)
    warnings.warn(
        f"deepen_export.distributed is deprecated: import {name} from deepen_export.pipeline",
        DeprecationWarning,
        stacklevel=2,
    )
    return value
