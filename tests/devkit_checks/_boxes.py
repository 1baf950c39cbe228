"""What the checker scripts print of a devkit box (both devkits use nuScenes' Box)."""

from __future__ import annotations


def box_dict(box) -> dict:
    """Centre, ``wlh``, yaw and name of a ``nuscenes.utils.data_classes.Box``."""
    return {
        "center": box.center.tolist(),
        "wlh": box.wlh.tolist(),
        "yaw": float(box.orientation.yaw_pitch_roll[0]),
        "name": box.name,
    }
