"""Load a nuScenes export with nuscenes-devkit and print what it sees as one JSON line.

Runs in the isolated devkit venv (tests/_isolated_env.py), never imports the project.
Usage: nuscenes_check.py DATAROOT VERSION OUT_DIR [COLORMAP_JSON]
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _boxes import box_dict  # this folder is on sys.path: the script is run by path
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.data_io import load_bin_file
from nuscenes.utils.geometry_utils import points_in_box


def main() -> None:
    root, version, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    colormap = json.loads(Path(sys.argv[4]).read_text()) if len(sys.argv) > 4 else None
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        nusc = NuScenes(version=version, dataroot=root, verbose=True, colormap=colormap)
    result: dict = {
        "warnings": [str(w.message) for w in caught],
        "load_output": printed.getvalue(),
        "counts": {t: len(getattr(nusc, t)) for t in nusc.table_names},
        "annotations": {},
        "lidarseg": {},
        "renders": [],
        "velocity": {},
        "channels": {},
    }
    for sample in nusc.sample:
        result["channels"][sample["token"]] = sorted(sample["data"])
        lidar = sample["data"]["LIDAR_TOP"]
        path, boxes, _ = nusc.get_sample_data(lidar)
        pts = LidarPointCloud.from_file(path).points
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            result["annotations"][box.token] = {
                "sample_token": sample["token"],
                "global": box_dict(nusc.get_box(box.token)),
                "lidar": box_dict(box),
                "num_lidar_pts": ann["num_lidar_pts"],
                "devkit_points_in_box": int(points_in_box(box, pts[:3]).sum()),
                "category_name": ann["category_name"],
                "instance_token": ann["instance_token"],
                "attributes": [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]],
            }
            result["velocity"][box.token] = nusc.box_velocity(box.token).tolist()
        if "lidarseg" in nusc.table_names:
            rec = nusc.get("lidarseg", lidar)
            labels = load_bin_file(str(Path(root, rec["filename"])), type="lidarseg")
            names = [nusc.lidarseg_idx2name_mapping[int(i)] for i in labels]
            result["lidarseg"][lidar] = {"n_points": int(pts.shape[1]), "names": names}
    first = nusc.sample[0]
    renders = [("lidar", first["data"]["LIDAR_TOP"], {})]
    renders += [(ch, tok, {}) for ch, tok in sorted(first["data"].items()) if ch != "LIDAR_TOP"]
    if "lidarseg" in nusc.table_names:
        renders.append(
            ("lidarseg", first["data"]["LIDAR_TOP"], {"underlay_map": False, "show_lidarseg": True})
        )
    for name, tok, kw in renders:
        png = out / f"render_{name}.png"
        with contextlib.redirect_stdout(io.StringIO()):
            nusc.render_sample_data(tok, out_path=str(png), verbose=False, **kw)
        plt.close("all")
        result["renders"].append(str(png))
    # more of the devkit's own views and listings: each must run without an exception
    anns = first["anns"]
    more = {
        "render_sample": lambda: nusc.render_sample(
            first["token"], out_path=str(out / "render_sample.png"), verbose=False
        ),
        "render_annotation": lambda: nusc.render_annotation(
            anns[0], out_path=str(out / "render_annotation.png")
        ),
        "render_instance": lambda: nusc.render_instance(
            nusc.instance[0]["token"], out_path=str(out / "render_instance.png")
        ),
        "render_pointcloud_in_image": lambda: nusc.render_pointcloud_in_image(
            first["token"],
            camera_channel=sorted(c for c in first["data"] if c != "LIDAR_TOP")[0],
            out_path=str(out / "render_pointcloud_in_image.png"),
            verbose=False,
            show_lidarseg="lidarseg" in nusc.table_names,
        ),
        "list_scenes": nusc.list_scenes,
        "list_sample": lambda: nusc.list_sample(first["token"]),
        "list_categories": nusc.list_categories,
        "list_attributes": nusc.list_attributes,
    }
    if "lidarseg" in nusc.table_names:
        more["list_lidarseg_categories"] = nusc.list_lidarseg_categories
    result["devkit_calls"] = {}
    for name, call in more.items():
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                call()
            result["devkit_calls"][name] = "ok"
        except Exception as exc:  # reported to the test, which names the call
            result["devkit_calls"][name] = f"{type(exc).__name__}: {exc}"
        plt.close("all")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
