"""Deprecated alias of :mod:`deepen_export.pipeline` (``export_many`` and its task moved there).

``import deepen_export.distributed`` still works and is the very same module object, so
``deepen_export.distributed.export_many`` and monkeypatching its names behave as before.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from deepen_export import distributed, pipeline
>>> distributed.export_many is pipeline.export_many
True
"""

from __future__ import annotations

import sys
import warnings

from deepen_export import pipeline

warnings.warn(
    "deepen_export.distributed is deprecated: import deepen_export.pipeline instead",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = pipeline
