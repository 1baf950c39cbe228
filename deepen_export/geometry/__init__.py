"""Vectorized geometry: numpy, shapely 2 and pycocotools, never a per-label Python loop.

- :mod:`deepen_export.geometry.planar`: 2D boxes, polygons (validity, repair, orientation, holes,
  clipping to the image), polylines, RLE masks.
- :mod:`deepen_export.geometry.spatial`: quaternions and yaw, cuboid corners, world / LiDAR /
  camera transforms, camera projection with distortion, points in cuboids.

Both work on the ragged layouts of :mod:`deepen_export.model` (flat coordinates + offsets).
"""

from deepen_export.geometry.planar import *  # noqa: F403
from deepen_export.geometry.planar import __all__ as _planar_all
from deepen_export.geometry.spatial import *  # noqa: F403
from deepen_export.geometry.spatial import __all__ as _spatial_all

__all__ = sorted([*_planar_all, *_spatial_all])
