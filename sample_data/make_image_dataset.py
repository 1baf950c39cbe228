"""Write the image-dataset sample, the recorded API responses, the 2D painting sample and the
bad inputs under ``sample_data/``.

Deterministic (no randomness, fixed timestamps), standalone: needs numpy and Pillow only, never
imports ``deepen_export``. Run from anywhere::

    /work/venv/bin/python sample_data/make_image_dataset.py

The label geometry below is hand-chosen; the expected values derived from it are in README.md and
expected.json (computed by ``derive_expected.py``, which reads the written files, not this module).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
IMG = HERE / "image_dataset"
API = HERE / "api"
P2D = HERE / "painting2d"
BAD = HERE / "bad"

CLIENT_ID = "cl1entSampleK7wQ"  # invented; real client ids are opaque strings
IMAGE_DATASET_ID = "Xq7Lm2PzR4tN8vB1cD6fG3hJ"  # invented, in the style of real 24-char ids
LIDAR_DATASET_ID = "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6"
OTHER_DATASET_ID = "Rt5Yu8Io0Pa2Sd4Fg6Hj8Kl1"
PROFILE_ID = "prof1leSampleImg01"
T0 = 1717236000000  # 2024-06-01T10:00:00Z in ms

# file_id -> (width, height, sensors). The same file_id "000001.png" exists on sensor1 and sensor2.
IMAGES = {
    "000001.png": (64, 48, ["sensor1", "sensor2"]),
    "inner_kitty/000059.png": (80, 60, ["sensor1"]),
    "000002.png": (80, 60, ["sensor1"]),
    "000003.png": (64, 48, ["sensor1"]),  # no labels; file status says "done" (reviewed, empty)
    "000004.png": (64, 48, ["sensor1"]),  # no labels; file status says "waiting" (not labelled yet)
}


def dump(path: Path, obj: object, *, ascii_only: bool = False, indent: int | None = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only, allow_nan=True)
    path.write_text(text + "\n", encoding="utf-8")


def label(n: int, file_id: str, label_type: str, category: str, track: int, **extra: object) -> dict:
    """One label with realistic common fields (key order as in real exports)."""
    base: dict = {
        "file_id": file_id,
        "label_category_id": category,
        "label_id": f"{category}:{track}",
        "label_type": label_type,
        "stage_id": "QA",
        "attributes": {},
        "attributes_source": {},
        "create_time_millis": T0 + 1000 * n,
        "label_set_id": "default",
        "labeller_email": "annotator@example.com",
        "sensor_id": "sensor1",
        "update_time_millis": T0 + 1000 * n + 500,
        "user_id": "annotator@example.com",
        "version": 10 + n,
    }
    base.update(extra)
    if isinstance(base.get("attributes"), dict):
        base["attributes_source"] = {k: {"state": "manual"} for k in base["attributes"]}
    else:
        base.pop("attributes_source")
    return base


def image_labels() -> list[dict]:
    L: list[dict] = []
    # ---- 000001.png (64x48), sensor1 ------------------------------------------------------
    L.append(label(1, "000001.png", "box", "car", 1, box=[10, 8, 20, 12],
                   attributes={"occlusion": "none", "color": "red"}))
    # extends past the right and bottom image edges (64x48)
    L.append(label(2, "000001.png", "box", "car", 2, box=[50.5, 30.0, 20.0, 25.0],
                   attributes={"occlusion": "partial", "comment": "Straße – 駐車中 🚗"}))
    # polygon with a hole: outer 40x24 rectangle, inner 10x10 square fully inside
    L.append(label(3, "000001.png", "polygon", "road", 1,
                   polygons=[[[2, 20], [42, 20], [42, 44], [2, 44]],
                             [[12, 26], [22, 26], [22, 36], [12, 36]]],
                   attributes={"surface": "asphalt"}))
    # lane: one polyline, inside the image
    L.append(label(4, "000001.png", "lane", "lane", 1,
                   polygons=[[[5, 47], [15, 30], [25, 15], [30, 5]]],
                   attributes={"lane_type": "solid"}))
    # ---- 000001.png, sensor2 (same file_id, other sensor) ------------------------------------
    L.append(label(5, "000001.png", "box", "car", 3, box=[4, 6, 16, 10], sensor_id="sensor2",
                   attributes={"occlusion": "none"}))
    # 2D point, single-point form: "point": [x, y]   (Deepen's shape is undocumented)
    L.append(label(6, "000001.png", "point", "pole", 1, point=[33.5, 12.25], sensor_id="sensor2",
                   attributes={}))
    # ---- inner_kitty/000059.png (80x60), sensor1 ---------------------------------------------
    # multi-part polygon: two disjoint rings (a 20x15 rectangle and a triangle)
    L.append(label(7, "inner_kitty/000059.png", "polygon", "building", 1,
                   polygons=[[[5, 5], [25, 5], [25, 20], [5, 20]],
                             [[40, 10], [60, 10], [50, 30]]],
                   attributes={"floors": "2"}))
    # self-intersecting bowtie; edges (10,30)-(30,50) and (30,30)-(10,50) cross at (20,40)
    L.append(label(8, "inner_kitty/000059.png", "polygon", "vegetation", 1,
                   polygons=[[[10, 30], [30, 50], [30, 30], [10, 50]]],
                   attributes={"kind": "bush"}))
    # lane whose first and last points are outside the 80x60 image
    L.append(label(9, "inner_kitty/000059.png", "lane", "lane", 2,
                   polygons=[[[-5, 55], [20, 40], [60, 20], [90, -3]]],
                   attributes={"lane_type": "dashed"}))
    # 2D points, multi-point form: "points": [[x, y], ...]
    L.append(label(10, "inner_kitty/000059.png", "point", "pole", 2,
                   points=[[12, 14], [70.5, 44.5]], attributes={}))
    # scene label: no geometry field
    L.append(label(11, "inner_kitty/000059.png", "scene", "weather", 1,
                   attributes={"weather": "rain", "time_of_day": "day"}))
    # ---- 000002.png (80x60), sensor1 ---------------------------------------------------------
    L.append(label(12, "000002.png", "box", "pedestrian", 1, box=[60, 10, 8.5, 30], attributes=None))
    no_attr = label(13, "000002.png", "box", "car", 4, box=[0, 35, 30, 20],
                    labeller_email="auto_interpolation")
    del no_attr["attributes"]
    del no_attr["attributes_source"]
    L.append(no_attr)
    return L


def write_images() -> None:
    for fid, (w, h, _) in IMAGES.items():
        p = IMG / "images" / fid
        p.parent.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                        np.full_like(xx, 128)], axis=-1).astype(np.uint8)
        Image.fromarray(arr, "RGB").save(p, optimize=False)


def files_resource() -> dict:
    files = []
    for i, (fid, (w, h, sensors)) in enumerate(IMAGES.items()):
        status = "waiting" if fid == "000004.png" else "done"
        stage = "Labelling" if fid == "000004.png" else "QA"
        files.append({
            "file_id": fid,
            "sensors": sensors,
            # below: INVENTED fields (FileResource's documented body was not retrievable)
            "file_size": 200 + 17 * i,
            "file_type": "image/png",
            "width": w,
            "height": h,
            "current_stage": stage,
            "current_stage_status": status,
        })
    return {"files": files}


def dataset_new(dataset_id: str, name: str, dtype: str, mode: str, n_files: int) -> dict:
    return {
        "dataset_id": dataset_id,
        "client_id": CLIENT_ID,
        "create_timestamp_millis": T0 - 86400000,
        "dataset_format": "default",
        "dataset_name": name,
        "dataset_type": dtype,
        "labelling_mode": mode,
        "files": [{"file_size": 5321.0, "file_type": "application/zip",
                   "resumable_upload_url": "https://www.googleapis.com/upload/storage/v1/b/url_for_file"}],
        "uploaded_files": ["images.zip"],
        "fps": 10,
        "frame_sizes": [],
        "sensor_config": {
            "primary_sensor_id": "sensor1",
            "sensors": {
                "sensor1": {"content": "sensor1", "sensor_type": "camera", "extension": "png",
                            "calibration": {}, "square_dimensions": [], "sensor_fusion": {}},
                "sensor2": {"content": "sensor2", "sensor_type": "camera", "extension": "png",
                            "calibration": {}, "square_dimensions": [], "sensor_fusion": {}},
            },
        },
        "folder_path": f"{CLIENT_ID}/defaultproject/{dataset_id}",
        "tags": ["sample"],
        "pipeline_spec": [{"stage_id": "Labelling", "can_edit": True},
                          {"stage_id": "QA", "can_edit": False}],
        "current_stage": "QA",
        "current_stage_status": "done",
        "pipeline_status_by_label_set_id": {"default": {
            "Labelling": {"done": n_files, "failed": 0, "in_progress": 0, "ready": 0, "waiting": 0},
            "QA": {"done": n_files - 1, "failed": 0, "in_progress": 0, "ready": 0, "waiting": 1}}},
        "user_scopes": [{"email": "annotator@example.com", "scopes": ["labeller"]}],
        "user_group_scopes": [],
    }


def profile() -> dict:
    # categories in deliberately non-alphabetical order; "truck" (box) is used by no label
    feat = {
        "box": {"attributes": {"occlusion": {"type": "select", "values": ["none", "partial", "full"]}},
                "label_category_ids": ["pedestrian", "truck", "car"]},
        "polygon": {"attributes": {}, "label_category_ids": ["vegetation", "road", "building"]},
        "lane": {"attributes": {}, "label_category_ids": ["lane"]},
        "point": {"attributes": {}, "label_category_ids": ["pole"]},
        "scene": {"attributes": {}, "label_category_ids": ["weather"]},  # "scene" key: assumed
    }
    return {
        "profile_id": PROFILE_ID,
        "profile_name": "sample image profile",
        "client_id": CLIENT_ID,
        "features": feat,
        "instructions": "",
        "notification_url": "",
        "pipeline_spec": [{"stage_id": "Labelling", "can_edit": True, "skills": {"box": {}, "polygon": {}}},
                          {"stage_id": "QA", "can_edit": False, "skills": {}}],
        "preferences": {},
        "create_timestamp_millis": T0 - 2 * 86400000,
    }


def write_image_dataset() -> list[dict]:
    labels = image_labels()
    dump(IMG / "labels.json", {"labels": labels})
    by_file: dict[str, list] = {}
    for lab in labels:
        by_file.setdefault(lab["file_id"], []).append(lab)
    dump(IMG / "labels_by_file.json", {"labels": by_file})
    # same content, written with \u escapes (ensure_ascii) and no indentation, as a server would
    dump(IMG / "all_labels.json", {"all_labels": labels}, ascii_only=True, indent=None)
    dump(IMG / "files.json", files_resource())
    ds = dataset_new(IMAGE_DATASET_ID, "sample images", "images", "frame_by_frame", len(IMAGES))
    ds["labelling_profile_id"] = PROFILE_ID
    dump(IMG / "dataset.json", ds)
    dump(IMG / "profile.json", profile())
    write_images()
    return labels


def write_api(labels: list[dict]) -> None:
    new = dataset_new(IMAGE_DATASET_ID, "sample images", "images", "frame_by_frame", len(IMAGES))
    dump(API / "dataset_status_new.json", new)
    # api/dataset_status_old.json (the lidar dataset, older status form) is written by
    # make_lidar_sequence.py so that its frame_sizes match the lidar sample.
    dump(API / "files.json", files_resource())
    dump(API / "file_status.json", files_resource()["files"][1])
    # api/datasets.json and api/datasets_ids.json belong to the fetch tests (api/README.md).
    mixed = []
    for lab in labels[:3]:
        x = copy.deepcopy(lab)
        x = {"dataset_id": IMAGE_DATASET_ID, **x}
        mixed.append(x)
    y = copy.deepcopy(labels[0])
    y.update(file_id="frame_0001.png", label_id="car:1", version=3)
    mixed.append({"dataset_id": OTHER_DATASET_ID, **y})
    z = copy.deepcopy(labels[11])
    z.update(file_id="frame_0002.png", label_id="pedestrian:7", version=4)
    mixed.append({"dataset_id": OTHER_DATASET_ID, **z})
    dump(API / "labels_of_two_datasets.json", {"labels": mixed})
    dump(API / "profile.json", profile())
    dump(API / "create_dataset_response.json", {
        "dataset_id": OTHER_DATASET_ID,
        "files": [{"file_size": 1048576.0, "file_type": "application/zip",
                   "resumable_upload_url": "https://storage.googleapis.com/upload/storage/v1/b/deepen-sample-bucket/o?uploadType=resumable&name=Rt5Yu8Io0Pa2Sd4Fg6Hj8Kl1%2Fimages.zip&upload_id=ADPycdsSampleUploadId0123456789"}],
        "dataset_name": "sample images 2",
        "dataset_type": "images",
    })


def write_painting2d() -> None:
    # 000001.png 64x48: list ["road", "car"]; inner_kitty/000059.png 80x60: ["car", "sky", "road"]
    m1 = np.zeros((48, 64), np.uint8)
    m1[30:48, :] = 1  # road: rows 30..47
    m1[8:20, 10:30] = 2  # car: rows 8..19, cols 10..29
    m2 = np.zeros((60, 80), np.uint8)
    m2[0:15, :] = 2  # sky: rows 0..14
    m2[40:60, :] = 3  # road: rows 40..59
    m2[25:40, 20:50] = 1  # car: rows 25..39, cols 20..49
    P2D.mkdir(parents=True, exist_ok=True)
    np.save(P2D / "Semantic Segmentation - sensor1 - 000001_png.npy", m1.reshape(-1))
    np.save(P2D / "Semantic Segmentation - sensor1 - inner_kitty_000059_png.npy", m2.reshape(-1))
    dump(P2D / "Semantic Segmentation - metadata.json", {"sensor1": {
        "000001.png": ["road", "car"],
        "inner_kitty/000059.png": ["car", "sky", "road"]}})
    dump(P2D / "colors.json", {"format": ["b", "g", "r"], "road": [128, 64, 128],
                               "car": [142, 0, 0], "sky": [180, 130, 70]})


def zip_with(path: Path, entries: list[tuple[str, bytes]]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(filename="x", date_time=(2024, 6, 1, 0, 0, 0))
            info.filename = name  # bypass any normalisation: keep "../" and leading "/"
            info.orig_filename = name
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    path.write_bytes(buf.getvalue())


def write_bad(labels: list[dict]) -> None:
    BAD.mkdir(parents=True, exist_ok=True)
    full = json.dumps({"labels": labels[:3]}, indent=1, ensure_ascii=False)
    (BAD / "truncated.json").write_text(full[: len(full) // 2], encoding="utf-8")
    miss = copy.deepcopy(labels[0])
    del miss["box"]
    dump(BAD / "missing_geometry.json", {"labels": [copy.deepcopy(labels[4]), miss]})
    nb = copy.deepcopy(labels[0])
    nb["box"] = [float("nan"), 8, 20, 12]
    npoly = copy.deepcopy(labels[2])
    npoly["polygons"][0][1] = [float("nan"), float("nan")]
    dump(BAD / "nan_coordinates.json", {"labels": [nb, npoly]})
    unk = copy.deepcopy(labels[0])
    unk["label_type"] = "2d_ellipse"
    unk["ellipse"] = {"cx": 20, "cy": 14, "rx": 10, "ry": 6}
    dump(BAD / "unknown_label_type.json", {"labels": [copy.deepcopy(labels[4]), unk]})
    # paint labels whose decompressed size (100) disagrees with sum(frame_sizes) (40+50 = 90)
    d = BAD / "dpn_size_mismatch"
    d.mkdir(parents=True, exist_ok=True)
    (d / "3d_point.dpn").write_bytes(zlib.compress(bytes([1, 2, 0, 1] * 25), 9))
    dump(d / "3d_point.json", {"format": "pako_compressed", "paint_categories": ["car", "road"],
                               "frame_sizes": [40, 50]})
    frame = json.dumps({"images": [], "timestamp": 1717236000.0,
                        "device_position": {"x": 0.0, "y": 0.0, "z": 0.0},
                        "device_heading": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
                        "points": [{"x": 1.0, "y": 2.0, "z": 0.5, "i": 10}]}).encode()
    zip_with(BAD / "zip_slip_parent.zip", [("0000.json", frame), ("../escape.json", frame)])
    zip_with(BAD / "zip_slip_absolute.zip", [("0000.json", frame), ("/tmp/abs.json", frame)])


def main() -> None:
    labels = write_image_dataset()
    write_api(labels)
    write_painting2d()
    write_bad(labels)


if __name__ == "__main__":
    main()
