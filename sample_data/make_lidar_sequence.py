"""Write the 3D LiDAR sequence sample (``sample_data/lidar_sequence/``) as a snapshot-like folder.

Seeded and deterministic: numpy ``default_rng(20240601)``, zip entries with fixed timestamps and
permissions, JSON with fixed key order and rounding, so re-running reproduces identical bytes
(given the same zlib). Standalone: numpy + Pillow only, never imports ``deepen_export``::

    /work/venv/bin/python sample_data/make_lidar_sequence.py

Scene (everything in the WORLD frame, z up, metres; ground plane at z = 33.2):

- LiDAR pose of frame k (k = 0, 1, 2): position (81500 + 1.5k, 50300 + 0.3k, 35.0), yaw 10 + 2k deg.
- car:1         frames 0-2, centre (81512 + k, 50302 + 0.5k, 34.05), l w h = 4.5 1.9 1.5, yaw 25 deg (quaternion)
- pedestrian:2  frames 0-1, centre (81508, 50297 + 0.3k, 34.15),    l w h = 0.6 0.6 1.7, yaw -80 deg (quaternion)
- car:4         frame 0,    centre (81491, 50299, 34.05),             l w h = 4.2 1.8 1.5, yaw 190 deg (quaternion, w < 0), behind camera_0
- cyclist:3     frames 1-2, centre (81502.2 + 0.8(k-1), 50306.6 + 0.4(k-1), 34.1), l w h = 1.8 0.6 1.6, rot_z = 0.5 rad
- Box bottoms are at z = 33.3, 10 cm above the ground points (33.2 +- 0.02), so no ground point
  is near a box face. Object points are sampled inside the box shrunk to 90 % (|local| <= 0.45 l
  etc.), so every points-in-box count is unambiguous.
- A static "vegetation" cluster at (81503 +- 0.5, 50292 +- 0.5, 33.5..36): 20 points painted
  vegetation, 10 unpainted. Every ground point whose index (before shuffling) is a multiple of 7
  is unpainted; the other ground points are painted road.

The expected values are NOT taken from this script: ``derive_expected.py`` re-derives them from
the written files.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
OUT = HERE / "lidar_sequence"
DATASET_ID = "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6"
CLIENT_ID = "cl1entSampleK7wQ"
T0_MS = 1717236000000
T0_S = 1717236000.0
ZIP_TIME = (2024, 6, 1, 0, 0, 0)
GROUND_Z = 33.2
W_IMG, H_IMG = 160, 120
N_GROUND = [320, 300, 310]
FRAMES = [0, 1, 2]
SEM_CATS = ["car", "road", "pedestrian", "cyclist", "vegetation"]  # 1-based in the .dpn
INST_CATS = ["pedestrian", "car", "cyclist"]  # different order on purpose
INSTANCE_ID = {"car:1": 1, "pedestrian:2": 2, "cyclist:3": 3, "car:4": 258}  # 258 = 2 + 256*1


def device_pose(k: int) -> tuple[np.ndarray, float]:
    return np.array([81500.0 + 1.5 * k, 50300.0 + 0.3 * k, 35.0]), math.radians(10 + 2 * k)


# (label_id, frames, centre(k), (l, w, h), rotation(kind, value), n_points, attributes)
OBJECTS = [
    ("car:1", [0, 1, 2], lambda k: (81512.0 + k, 50302.0 + 0.5 * k, 34.05), (4.5, 1.9, 1.5),
     ("quaternion", math.radians(25)), 60, {"occlusion": "none", "state": "moving"}),
    ("pedestrian:2", [0, 1], lambda k: (81508.0, 50297.0 + 0.3 * k, 34.15), (0.6, 0.6, 1.7),
     ("quaternion", math.radians(-80)), 25, {"occlusion": "partial", "state": "walking"}),
    ("car:4", [0], lambda k: (81491.0, 50299.0, 34.05), (4.2, 1.8, 1.5),
     ("quaternion", math.radians(190)), 40, {"occlusion": "none", "state": "parked"}),
    ("cyclist:3", [1, 2], lambda k: (81502.2 + 0.8 * (k - 1), 50306.6 + 0.4 * (k - 1), 34.1),
     (1.8, 0.6, 1.6), ("rot_z", 0.5), 30, {"occlusion": "none", "state": "moving"}),
]

# Cameras: offset in the LiDAR frame and camera->LiDAR rotation (columns = camera x, y, z axes
# expressed in LiDAR axes; camera x right, y down, z forward; LiDAR x forward, y left, z up).
CAMERAS = [
    {"offset": np.array([0.2, 0.0, -0.3]),
     "R_lc": np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # looks forward (+x)
     "fx": 100.0, "fy": 100.0, "cx": 80.0, "cy": 60.0, "k1": 0.0},
    {"offset": np.array([0.0, 0.3, -0.3]),
     "R_lc": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # looks left (+y)
     "fx": 90.0, "fy": 90.0, "cx": 80.0, "cy": 60.0, "k1": -0.05},
]


def rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quat_from_matrix(m: np.ndarray) -> dict:
    """Rotation matrix -> unit quaternion {x, y, z, w} (Shepperd's method)."""
    t = np.trace(m)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return {"x": round(x, 12), "y": round(y, 12), "z": round(z, 12), "w": round(w, 12)}


def yaw_quat(a: float) -> dict:
    """Pure yaw quaternion, written as-is (for 190 deg this has w < 0 on purpose)."""
    return {"x": 0.0, "y": 0.0, "z": round(math.sin(a / 2), 12), "w": round(math.cos(a / 2), 12)}


def r3(v: float, nd: int = 4) -> float:
    return round(float(v), nd)


def common(n: int, file_id: str, label_id: str, label_type: str, sensor: str, attrs: dict,
           email: str = "annotator@example.com") -> dict:
    cat = label_id.split(":")[0]
    return {
        "file_id": file_id,
        "label_category_id": cat,
        "label_id": label_id,
        "label_type": label_type,
        "stage_id": "QA",
        "attributes": attrs,
        "attributes_source": {a: {"state": "manual"} for a in attrs},
        "create_time_millis": T0_MS + 1000 * n,
        "label_set_id": "default",
        "labeller_email": email,
        "sensor_id": sensor,
        "update_time_millis": T0_MS + 1000 * n + 250,
        "user_id": "annotator@example.com",
        "version": 100 + n,
    }


def project_box(corners_world: np.ndarray, R_wc: np.ndarray, t_c: np.ndarray, cam: dict) -> list[float]:
    pc = (corners_world - t_c) @ R_wc  # rows: R_wc^T (p - t)
    u = cam["fx"] * pc[:, 0] / pc[:, 2] + cam["cx"]
    v = cam["fy"] * pc[:, 1] / pc[:, 2] + cam["cy"]
    return [float(u.min()), float(v.min()), float(u.max()), float(v.max())]


def png_bytes(arr: np.ndarray, rect: list[float] | None) -> bytes:
    im = Image.fromarray(arr, "RGB")
    if rect is not None:
        ImageDraw.Draw(im).rectangle([round(c) for c in rect], outline=(255, 255, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def main() -> None:
    rng = np.random.default_rng(20240601)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "paint").mkdir(exist_ok=True)
    (OUT / "media").mkdir(exist_ok=True)

    labels_by_file: dict[str, list[dict]] = {}
    zip_entries: list[tuple[str, bytes]] = []
    sem_all: list[np.ndarray] = []
    cat_all: list[np.ndarray] = []
    inst_all: list[np.ndarray] = []
    frame_sizes: list[int] = []
    n_label = 0

    for k in FRAMES:
        t_d, yaw_d = device_pose(k)
        R_d = rz(yaw_d)
        file_id = f"{k:04d}.pcd"
        labs: list[dict] = []
        pts: list[np.ndarray] = []
        sem: list[np.ndarray] = []
        icat: list[np.ndarray] = []
        iid: list[np.ndarray] = []

        # ground patch (axis-aligned in world around the device)
        ng = N_GROUND[k]
        g = np.column_stack([
            t_d[0] + rng.uniform(-15.0, 20.0, ng),
            t_d[1] + rng.uniform(-10.0, 10.0, ng),
            GROUND_Z + rng.uniform(-0.02, 0.02, ng),
        ])
        pts.append(g)
        s = np.full(ng, SEM_CATS.index("road") + 1, np.uint8)
        s[np.arange(ng) % 7 == 0] = 0
        sem.append(s)
        icat.append(np.zeros(ng, np.uint8))
        iid.append(np.zeros(ng, np.int64))

        cam_poses = []
        for cam in CAMERAS:
            R_wc = R_d @ cam["R_lc"]
            t_c = t_d + R_d @ cam["offset"]
            cam_poses.append((R_wc, t_c))

        box_cam0_car1 = None
        for label_id, frames, centre, (l, w, h), (rkind, rval), npts, attrs in OBJECTS:
            if k not in frames:
                continue
            c = np.array(centre(k))
            R_b = rz(rval)
            local = rng.uniform(-0.45, 0.45, (npts, 3)) * np.array([l, w, h])
            pts.append(local @ R_b.T + c)
            cat = label_id.split(":")[0]
            sem.append(np.full(npts, SEM_CATS.index(cat) + 1, np.uint8))
            icat.append(np.full(npts, INST_CATS.index(cat) + 1, np.uint8))
            iid.append(np.full(npts, INSTANCE_ID[label_id], np.int64))
            bbox = {"cx": r3(c[0]), "cy": r3(c[1]), "cz": r3(c[2]), "h": h, "l": l, "w": w}
            if rkind == "quaternion":
                bbox["quaternion"] = yaw_quat(rval)
            else:
                bbox["rot_z"] = rval
            email = "auto_interpolation" if (label_id == "car:1" and k == 1) else "annotator@example.com"
            n_label += 1
            lab = common(n_label, file_id, label_id, "3d_bbox", "lidar", attrs, email)
            lab["three_d_bbox"] = bbox
            labs.append(lab)
            if label_id == "car:1":
                sx = np.array([1, 1, 1, 1, -1, -1, -1, -1]) * l / 2
                sy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
                sz = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * h / 2
                corners = np.column_stack([sx, sy, sz]) @ R_b.T + c
                box_cam0_car1 = project_box(corners, *cam_poses[0], CAMERAS[0])

        # static vegetation cluster: 20 painted, 10 unpainted
        v = np.column_stack([81503.0 + rng.uniform(-0.5, 0.5, 30), 50292.0 + rng.uniform(-0.5, 0.5, 30),
                             rng.uniform(33.5, 36.0, 30)])
        pts.append(v)
        sv = np.full(30, SEM_CATS.index("vegetation") + 1, np.uint8)
        sv[20:] = 0
        sem.append(sv)
        icat.append(np.zeros(30, np.uint8))
        iid.append(np.zeros(30, np.int64))

        if k == 0:
            n_label += 1
            pl = common(n_label, file_id, "lane_marking:5", "3d_polyline", "lidar", {"style": "dashed"})
            pl["polyline"] = [{"x": 81495.0, "y": 50298.5, "z": 33.2},
                              {"x": 81505.0, "y": 50298.6, "z": 33.2},
                              {"x": 81520.0, "y": 50298.8, "z": 33.25}]
            labs.append(pl)
            assert box_cam0_car1 is not None
            x1, y1, x2, y2 = (max(0.0, box_cam0_car1[0]), max(0.0, box_cam0_car1[1]),
                              min(float(W_IMG), box_cam0_car1[2]), min(float(H_IMG), box_cam0_car1[3]))
            n_label += 1
            b2 = common(n_label, file_id, "car:1", "box", "camera_0", {"occlusion": "none"})
            b2["box"] = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]
            labs.append(b2)

        P = np.concatenate(pts)
        S = np.concatenate(sem)
        IC = np.concatenate(icat)
        II = np.concatenate(iid)
        perm = rng.permutation(len(P))
        P, S, IC, II = P[perm], S[perm], IC[perm], II[perm]
        inten = rng.integers(0, 256, len(P))
        frame_sizes.append(len(P))
        sem_all.append(S)
        cat_all.append(IC)
        inst_all.append(II)

        images = []
        for ci, (cam, (R_wc, t_c)) in enumerate(zip(CAMERAS, cam_poses, strict=True)):
            url = f"images/camera_{ci}/{k:04d}.png"
            yy, xx = np.mgrid[0:H_IMG, 0:W_IMG]
            arr = np.stack([xx * 255 // (W_IMG - 1), yy * 255 // (H_IMG - 1),
                            np.full_like(xx, 60 + 60 * ci + 20 * k)], axis=-1).astype(np.uint8)
            zip_entries.append((url, png_bytes(arr, box_cam0_car1 if ci == 0 else None)))
            images.append({
                "fx": cam["fx"], "fy": cam["fy"], "cx": cam["cx"], "cy": cam["cy"],
                "timestamp": round(T0_S + 0.1 * k + 0.01 * (ci + 1), 3),
                "image_url": url,
                "position": {"x": r3(t_c[0], 6), "y": r3(t_c[1], 6), "z": r3(t_c[2], 6)},
                "heading": quat_from_matrix(R_wc),
                "camera_model": "pinhole",
                "k1": cam["k1"], "k2": 0.0, "p1": 0.0, "p2": 0.0, "k3": 0.0, "k4": 0.0,
            })
        frame = {
            "images": images,
            "timestamp": round(T0_S + 0.1 * k, 3),
            "device_position": {"x": t_d[0], "y": t_d[1], "z": t_d[2]},
            "device_heading": yaw_quat(yaw_d),
            "points": [{"x": r3(p[0]), "y": r3(p[1]), "z": r3(p[2]), "i": int(i)}
                       for p, i in zip(P, inten, strict=True)],
        }
        zip_entries.append((f"{k:04d}.json", json.dumps(frame, separators=(",", ":")).encode()))
        labels_by_file[file_id] = labs

    # ---- media/dataset.zip: JSON frames at the root, images under images/camera_k/ -------------
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in sorted(zip_entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            z.writestr(info, data, compresslevel=9)
    (OUT / "media" / "dataset.zip").write_bytes(buf.getvalue())

    # ---- labels: labels_with_file_ids_order form ----------------------------------------------
    (OUT / "labels.json").write_text(json.dumps({"labels": labels_by_file}, indent=1) + "\n")

    # ---- paint labels --------------------------------------------------------------------------
    sem_bytes = np.concatenate(sem_all).astype(np.uint8).tobytes()
    (OUT / "paint" / "3d_point.dpn").write_bytes(zlib.compress(sem_bytes, 9))
    (OUT / "paint" / "3d_point.json").write_text(json.dumps(
        {"format": "pako_compressed", "paint_categories": SEM_CATS, "frame_sizes": frame_sizes}) + "\n")
    ids = np.concatenate(inst_all)
    inst = np.concatenate([np.concatenate(cat_all), (ids % 256).astype(np.uint8),
                           (ids // 256).astype(np.uint8)]).astype(np.uint8)
    (OUT / "paint" / "3d_instance_point.dpn").write_bytes(inst.tobytes())
    (OUT / "paint" / "3d_instance_point.json").write_text(json.dumps(
        {"paint_categories": INST_CATS, "frame_sizes": frame_sizes}) + "\n")

    # ---- dataset / files (older status form) ---------------------------------------------------
    dataset = {
        "dataset_id": DATASET_ID,
        "client_id": CLIENT_ID,
        "create_timestamp_millis": T0_MS - 86400000,
        "dataset_format": "json",
        "dataset_name": "sample lidar sequence",
        "dataset_type": "3d",
        "labelling_mode": "label_by_label",
        "files": [{"file_size": float((OUT / "media" / "dataset.zip").stat().st_size),
                   "file_type": "application/zip",
                   "resumable_upload_url": "https://www.googleapis.com/upload/storage/v1/b/url_for_file"}],
        "uploaded_files": ["dataset.zip"],
        "processing_status": "files_getting_labelled",
        "processing_status_message": "Processing Json Files",
        "pipeline_status": "in_progress",
        "pipeline_stage_status": {"Labelling": "done", "QA": "in_progress"},
        "status": {"finished": 2, "in_progress": 1, "total": 3},
        "fps": 10,
        "frame_sizes": frame_sizes,
        "sensor_config": {
            "primary_sensor_id": "lidar",
            "sensors": {
                "lidar": {"content": "lidar", "sensor_type": "lidar", "calibration": {},
                          "square_dimensions": [], "sensor_fusion": {}},
                "camera_0": {"content": "images/camera_0", "sensor_type": "camera", "extension": "png",
                             "calibration": {}, "square_dimensions": [], "sensor_fusion": {}},
                "camera_1": {"content": "images/camera_1", "sensor_type": "camera", "extension": "png",
                             "calibration": {}, "square_dimensions": [], "sensor_fusion": {}},
            },
        },
        "folder_path": f"{CLIENT_ID}/defaultproject/{DATASET_ID}",
        "pipeline_spec": [{"stage_id": "Labelling", "can_edit": True},
                          {"stage_id": "QA", "can_edit": False}],
        "tags": ["sample"],
    }
    (OUT / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")
    (HERE / "api" / "dataset_status_old.json").write_text(json.dumps(dataset, indent=1) + "\n")
    files = {"files": [{"file_id": f"{k:04d}.pcd", "sensors": ["lidar", "camera_0", "camera_1"]}
                       for k in FRAMES]}
    (OUT / "files.json").write_text(json.dumps(files, indent=1) + "\n")

    # ---- manifest (snapshot layout) ------------------------------------------------------------
    listed = ["dataset.json", "files.json", "labels.json", "media/dataset.zip",
              "paint/3d_point.dpn", "paint/3d_point.json",
              "paint/3d_instance_point.dpn", "paint/3d_instance_point.json"]
    manifest = {
        "snapshot_version": 1,
        "dataset_id": DATASET_ID,
        "label_set": "default",
        "stage": "QA",
        "query": {"final": True, "labels_with_file_ids_order": True, "labelSetId": "default",
                  "stageId": "QA", "sensor_id": "lidar"},
        "fetched_at": "2024-06-01T12:00:00Z",
        "tool_version": "0.1.0",
        "dataset_type": "3d",
        "files": {},
    }
    for rel in listed:
        data = (OUT / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
