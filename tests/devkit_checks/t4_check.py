"""Load T4 exports with t4-devkit and print their boxes as one JSON line.

Runs in the isolated devkit venv (tests/_isolated_env.py), never imports the project.
Usage: t4_check.py DATA_ROOT [DATA_ROOT ...]   (each holding annotation/)
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings

from _boxes import box_dict  # this folder is on sys.path: the script is run by path
from t4_devkit import Tier4


def check(root: str) -> dict:
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        t4 = Tier4("annotation", root, verbose=True)
    out: dict = {"warnings": [str(w.message) for w in caught], "load_output": printed.getvalue()}
    out["annotations"], out["object_ann"] = {}, {}
    for sample in t4.sample:
        lidar = next(tok for ch, tok in sample.data.items() if ch.startswith("LIDAR"))
        _, boxes, _ = t4.get_sample_data(lidar)
        for box in boxes:
            ann = t4.get("sample_annotation", box.token)
            out["annotations"][box.token] = {
                "global": box_dict(t4.get_box3d(box.token)),
                "lidar": box_dict(box),
                "num_lidar_pts": ann.num_lidar_pts,
                "instance_token": ann.instance_token,
                "visibility": t4.get("visibility", ann.visibility_token).level.value,
            }
        for tok in sample.ann_2ds:
            b = t4.get_box2d(tok)
            rec = t4.get("object_ann", tok)
            sd = t4.get("sample_data", rec.sample_data_token)
            out["object_ann"][tok] = {
                "roi": [b.xmin, b.ymin, b.xmax, b.ymax],
                "name": b.name,
                "instance_token": rec.instance_token,
                "channel": sd.channel,
                "mask_size": rec.mask["size"],
            }
    cams = {cs.token: cs for cs in t4.calibrated_sensor}
    out["distortion"] = {
        t4.get("sensor", cs.sensor_token).channel: cs.camera_distortion.tolist()
        for cs in cams.values()
    }
    out["instance_names"] = sorted(i.instance_name for i in t4.instance)
    return out


def main() -> None:
    print(json.dumps({root: check(root) for root in sys.argv[1:]}))


if __name__ == "__main__":
    main()
