"""2D geometry on the model's ragged arrays: boxes, polygons, polylines, masks."""

from __future__ import annotations

__all__: list[str] = []
