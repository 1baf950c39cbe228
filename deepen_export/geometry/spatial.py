"""3D geometry: quaternions, cuboids, frame transforms, camera projection."""

from __future__ import annotations

__all__: list[str] = []
