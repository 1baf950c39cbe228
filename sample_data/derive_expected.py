"""Derive the expected values of the sample data from first principles; write ``expected.json``.

Independent of the ``deepen_export`` package (it must never import it) and of the generators
(``make_*.py``): it only reads the sample FILES (JSON, PNG headers, zip, .dpn, .npy) and applies
the textbook formulas written out below. README.md shows the same arithmetic by hand for the
worked examples.

    /work/venv/bin/python sample_data/derive_expected.py          # writes expected.json
    /work/venv/bin/python sample_data/derive_expected.py --trace  # also prints the worked steps

Conventions (see README.md "Conventions and assumptions"):

- Quaternion {x, y, z, w} (scalar last) is the rotation object -> world (box) or
  sensor -> world (device_heading, camera heading).
- ``rot_z`` is a yaw in radians about world +z, counter-clockwise positive (right-handed). This
  sign is OUR ASSUMPTION; deepen-api.md marks it unverified.
- ``p_lidar = R_d^T (p_world - t_d)``; ``p_cam = R_c^T (p_world - t_c)``.
- Camera axes x right, y down, z forward; pinhole ``u = fx x / z + cx``, ``v = fy y / z + cy``.
- KITTI: location = bottom centre (centre - h/2 along the box's up axis) in camera_0 coords;
  ``d = R_c^T R_box e_x``, ``rotation_y = atan2(-d_z, d_x)``; ``alpha = ry - atan2(x, z)``,
  both wrapped to [-pi, pi).
- A point is inside a cuboid when ``|R_box^T (p - c)| <= (l/2, w/2, h/2)`` component-wise.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
TRACE = "--trace" in sys.argv


def trace(*a: object) -> None:
    if TRACE:
        print(*a)


def rnd(x: object, nd: int = 6) -> object:
    """Round floats (recursively) for a stable, readable expected.json."""
    if isinstance(x, float):
        return round(x, nd) + 0.0  # +0.0 turns -0.0 into 0.0
    if isinstance(x, (list, tuple)):
        return [rnd(v, nd) for v in x]
    if isinstance(x, dict):
        return {k: rnd(v, nd) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return rnd(x.tolist(), nd)
    if isinstance(x, np.floating):
        return rnd(float(x), nd)
    if isinstance(x, np.integer):
        return int(x)
    return x


# ----------------------------------------------------------------------------------------------
# 2D geometry
# ----------------------------------------------------------------------------------------------
def shoelace(ring: list[list[float]]) -> float:
    """Signed area, positive for counter-clockwise in a y-up frame (clockwise on screen)."""
    s = 0.0
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return s / 2.0


def point_in_ring(p: list[float], ring: list[list[float]]) -> bool:
    """Even-odd ray casting (a horizontal ray to +x)."""
    x, y = p
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xc > x:
                inside = not inside
    return inside


def seg_intersection(a, b, c, d):  # noqa: ANN001, ANN201
    """Proper intersection point of segments ab and cd, or None."""
    r = (b[0] - a[0], b[1] - a[1])
    s = (d[0] - c[0], d[1] - c[1])
    den = r[0] * s[1] - r[1] * s[0]
    if den == 0:
        return None
    t = ((c[0] - a[0]) * s[1] - (c[1] - a[1]) * s[0]) / den
    u = ((c[0] - a[0]) * r[1] - (c[1] - a[1]) * r[0]) / den
    if 0 < t < 1 and 0 < u < 1:
        return (a[0] + t * r[0], a[1] + t * r[1]), t
    return None


def self_crossings(ring: list[list[float]]) -> list[tuple[int, int, tuple[float, float]]]:
    n = len(ring)
    out = []
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            hit = seg_intersection(ring[i], ring[(i + 1) % n], ring[j], ring[(j + 1) % n])
            if hit:
                out.append((i, j, hit[0]))
    return out


def split_once(ring: list[list[float]], i: int, j: int, x: tuple[float, float]) -> list[list]:
    """Split a ring with one crossing between edge i and edge j into two simple loops."""
    loop_a = [list(x)] + [ring[k] for k in range(i + 1, j + 1)]
    loop_b = [list(x)] + [ring[k % len(ring)] for k in range(j + 1, len(ring) + i + 1)]
    return [loop_a, loop_b]


def derive_image_dataset() -> dict:
    root = HERE / "image_dataset"
    labels = json.loads((root / "labels.json").read_text(encoding="utf-8"))["labels"]
    files = json.loads((root / "files.json").read_text(encoding="utf-8"))["files"]
    sizes = {}
    for f in files:
        with Image.open(root / "images" / f["file_id"]) as im:
            sizes[f["file_id"]] = list(im.size)  # (width, height)
    by_type: dict[str, int] = {}
    by_file_sensor: dict[str, int] = {}
    for f in files:
        for s in f["sensors"]:
            by_file_sensor[f"{f['file_id']}|{s}"] = 0
    boxes, polygons, lanes, points, scenes = {}, {}, {}, {}, {}
    for lab in labels:
        t = lab["label_type"]
        by_type[t] = by_type.get(t, 0) + 1
        key = f"{lab['file_id']}|{lab['sensor_id']}"
        by_file_sensor[key] = by_file_sensor.get(key, 0) + 1
        W, H = sizes[lab["file_id"]]
        ident = {"file_id": lab["file_id"], "sensor_id": lab["sensor_id"]}
        if t == "box":
            x, y, w, h = lab["box"]
            xyxy = [x, y, x + w, y + h]
            clipped = [min(max(xyxy[0], 0), W), min(max(xyxy[1], 0), H),
                       min(max(xyxy[2], 0), W), min(max(xyxy[3], 0), H)]
            boxes[lab["label_id"]] = {**ident, "xyxy": xyxy, "xyxy_clipped": clipped,
                                      "area": w * h,
                                      "area_clipped": (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]),
                                      "extends_past_edge": clipped != xyxy}
            trace(f"box {lab['label_id']}: [{x}, {y}, {w}, {h}] -> xyxy {xyxy}, clipped to {W}x{H}: {clipped}")
        elif t == "polygon":
            rings = lab["polygons"]
            signed = [shoelace(r) for r in rings]
            depth = [sum(point_in_ring(r[0], o) for j, o in enumerate(rings) if j != i)
                     for i, r in enumerate(rings)]
            is_hole = [d % 2 == 1 for d in depth]
            entry = {**ident, "n_rings": len(rings), "ring_signed_areas": signed, "ring_is_hole": is_hole}
            xs = [p[0] for r in rings for p in r]
            ys = [p[1] for r in rings for p in r]
            entry["bounds_xyxy"] = [min(xs), min(ys), max(xs), max(ys)]
            crossings = [self_crossings(r) for r in rings]
            if any(crossings):
                (i, j, xpt), = crossings[0]
                loops = split_once(rings[0], i, j, xpt)
                lobe = [abs(shoelace(lp)) for lp in loops]
                entry.update(self_intersecting=True, crossing_point=list(xpt), lobe_areas=lobe,
                             area_shoelace=abs(signed[0]), area_even_odd=sum(lobe))
                trace(f"bowtie {lab['label_id']}: signed shoelace {signed[0]}, crossing {xpt}, "
                      f"lobes {loops} areas {lobe} -> even-odd area {sum(lobe)}")
            else:
                area = sum(abs(a) * (-1 if hole else 1) for a, hole in zip(signed, is_hole, strict=True))
                entry.update(self_intersecting=False, n_parts=is_hole.count(False),
                             n_holes=is_hole.count(True), area=area)
                trace(f"polygon {lab['label_id']}: ring areas {signed}, holes {is_hole} -> area {area}")
            polygons[lab["label_id"]] = entry
        elif t == "lane":
            line = lab["polygons"][0]
            length = sum(math.dist(line[i], line[i + 1]) for i in range(len(line) - 1))
            outside = [p for p in line if not (0 <= p[0] <= W and 0 <= p[1] <= H)]
            lanes[lab["label_id"]] = {**ident, "n_parts": len(lab["polygons"]), "n_vertices": len(line),
                                      "length": length, "vertices_outside_image": outside}
        elif t == "point":
            pts = [lab["point"]] if "point" in lab else lab["points"]
            points[lab["label_id"]] = {**ident, "key": "point" if "point" in lab else "points",
                                       "points": pts}
        elif t == "scene":
            scenes[lab["label_id"]] = {**ident, "attributes": lab["attributes"]}
    attrs = {lab["label_id"]: ("<missing>" if "attributes" not in lab else lab["attributes"])
             for lab in labels}
    return {
        "n_labels": len(labels),
        "label_counts_by_type": dict(sorted(by_type.items())),
        "label_counts_by_file_sensor": by_file_sensor,
        "image_sizes_wh": sizes,
        "unlabelled_files": [f["file_id"] for f in files
                             if not any(lab["file_id"] == f["file_id"] for lab in labels)],
        "boxes": boxes, "polygons": polygons, "lanes": lanes, "points": points, "scenes": scenes,
        "attributes": attrs,
    }


def derive_painting2d() -> dict:
    root = HERE / "painting2d"
    meta = json.loads((root / "Semantic Segmentation - metadata.json").read_text(encoding="utf-8"))
    out = {}
    for sensor, per_file in meta.items():
        for fid, cats in per_file.items():
            npy = root / f"Semantic Segmentation - {sensor} - {fid.replace('/', '_').replace('.', '_')}.npy"
            arr = np.load(npy)
            with Image.open(HERE / "image_dataset" / "images" / fid) as im:
                w, h = im.size
            counts = np.bincount(arr, minlength=len(cats) + 1)
            out[f"{fid}|{sensor}"] = {"npy": npy.name, "width": w, "height": h,
                                      "categories": cats,
                                      "counts": {"unpainted": int(counts[0]),
                                                 **{c: int(counts[i + 1]) for i, c in enumerate(cats)}}}
    return out


# ----------------------------------------------------------------------------------------------
# 3D
# ----------------------------------------------------------------------------------------------
def quat_to_R(q: dict) -> np.ndarray:
    x, y, z, w = q["x"], q["y"], q["z"], q["w"]
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rot_z_to_R(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)  # counter-clockwise positive (our assumption)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def box_R(b: dict) -> np.ndarray:
    return quat_to_R(b["quaternion"]) if "quaternion" in b else rot_z_to_R(b["rot_z"])


def corners_local(l: float, w: float, h: float) -> np.ndarray:
    # order: top face (+z) then bottom face (-z); x front/back, y left/right
    return np.array([[sx * l / 2, sy * w / 2, sz * h / 2]
                     for sz in (1, -1) for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1))])


def derive_lidar_sequence() -> dict:
    root = HERE / "lidar_sequence"
    labels = json.loads((root / "labels.json").read_text())["labels"]
    with zipfile.ZipFile(root / "media" / "dataset.zip") as z:
        names = sorted(n for n in z.namelist() if "/" not in n and n.endswith(".json"))
        frames = {n: json.loads(z.read(n)) for n in names}
        with Image.open(z.open(frames[names[0]]["images"][0]["image_url"])) as im:
            cam0_size = im.size  # (width, height) of camera_0's image
    sem_meta = json.loads((root / "paint" / "3d_point.json").read_text())
    sem = np.frombuffer(zlib.decompress((root / "paint" / "3d_point.dpn").read_bytes()), np.uint8)
    inst_meta = json.loads((root / "paint" / "3d_instance_point.json").read_text())
    inst = np.frombuffer((root / "paint" / "3d_instance_point.dpn").read_bytes(), np.uint8)
    n_total = sum(sem_meta["frame_sizes"])
    icat, ilo, ihi = inst[:n_total], inst[n_total:2 * n_total], inst[2 * n_total:]
    iid = ilo.astype(np.int64) + 256 * ihi.astype(np.int64)

    out_frames = {}
    start = 0
    for fi, name in enumerate(names):
        fr = frames[name]
        file_id = Path(name).stem + ".pcd"
        P = np.array([[p["x"], p["y"], p["z"]] for p in fr["points"]], dtype=np.float64)
        n = len(P)
        t_d = np.array([fr["device_position"][a] for a in "xyz"])
        R_d = quat_to_R(fr["device_heading"])
        yaw_d = math.atan2(R_d[1, 0], R_d[0, 0])
        cam = fr["images"][0]
        R_c = quat_to_R(cam["heading"])
        t_c = np.array([cam["position"][a] for a in "xyz"])
        fx, fy, cx, cy = cam["fx"], cam["fy"], cam["cx"], cam["cy"]
        tr_R = R_c.T @ R_d
        tr_t = R_c.T @ (t_d - t_c)
        trace(f"\n== frame {file_id}: t_d {t_d}, yaw_d {math.degrees(yaw_d):.6f} deg, {n} points")
        trace(f"camera_0: t_c {t_c}, R_c =\n{R_c}\nTr_velo_to_cam R =\n{tr_R}\nt = {tr_t}")
        cuboids = {}
        seg = sem[start:start + n]
        for lab in labels.get(file_id, []):
            if lab["label_type"] != "3d_bbox":
                continue
            b = lab["three_d_bbox"]
            c = np.array([b["cx"], b["cy"], b["cz"]])
            l, w, h = b["l"], b["w"], b["h"]
            R_b = box_R(b)
            yaw_w = math.atan2(R_b[1, 0], R_b[0, 0])
            # LiDAR frame
            c_l = R_d.T @ (c - t_d)
            R_bl = R_d.T @ R_b
            yaw_l = math.atan2(R_bl[1, 0], R_bl[0, 0])
            # points in box (brute force over every point of the frame)
            loc = (P - c) @ R_b  # rows: R_b^T (p - c)
            inside = np.all(np.abs(loc) <= np.array([l, w, h]) / 2, axis=1)
            painted = {"unpainted" if v == 0 else sem_meta["paint_categories"][v - 1]: int(cnt)
                       for v, cnt in zip(*np.unique(seg[inside], return_counts=True), strict=True)}
            # KITTI camera_0
            up = R_b[:, 2]
            bottom_w = c - (h / 2) * up
            loc_cam = R_c.T @ (bottom_w - t_c)
            centre_cam = R_c.T @ (c - t_c)
            d = R_c.T @ R_b @ np.array([1.0, 0.0, 0.0])
            ry = wrap(math.atan2(-d[2], d[0]))
            alpha = wrap(ry - math.atan2(loc_cam[0], loc_cam[2]))
            corners_w = corners_local(l, w, h) @ R_b.T + c
            corners_c = (corners_w - t_c) @ R_c
            entry = {
                "label_id": lab["label_id"],
                "rotation_form": "quaternion" if "quaternion" in b else "rot_z",
                "lwh": [l, w, h],
                "centre_world": c,
                "yaw_world_deg": math.degrees(yaw_w),
                "centre_lidar": c_l,
                "yaw_lidar_deg": math.degrees(yaw_l),
                "yaw_lidar_rad": yaw_l,
                "points_inside": int(inside.sum()),
                "paint_of_points_inside": painted,
                "kitti_camera_0": {
                    "centre_cam": centre_cam,
                    "location_bottom_centre": loc_cam,
                    "dimensions_hwl": [h, w, l],
                    "rotation_y": ry,
                    "alpha": alpha,
                    "corners_cam_z_min": float(corners_c[:, 2].min()),
                },
            }
            kc = entry["kitti_camera_0"]
            if (corners_c[:, 2] > 0).all():
                u = fx * corners_c[:, 0] / corners_c[:, 2] + cx
                v = fy * corners_c[:, 1] / corners_c[:, 2] + cy
                raw = [float(u.min()), float(v.min()), float(u.max()), float(v.max())]
                W, H = cam0_size
                clipped = [max(raw[0], 0.0), max(raw[1], 0.0), min(raw[2], W), min(raw[3], H)]
                visible = clipped[0] < clipped[2] and clipped[1] < clipped[3]
                kc.update(in_front=True, bbox_unclipped=raw,
                          bbox_clipped=clipped if visible else None, overlaps_image=visible)
                if lab["label_id"] == "car:1" and fi == 0:
                    trace(f"car:1 corners world:\n{corners_w}\ncorners cam:\n{corners_c}\nu {u}\nv {v}")
            else:
                kc.update(in_front=False, behind_camera=bool((corners_c[:, 2] <= 0).all()))
            trace(f"{lab['label_id']} c_world {c} c-t_d {c - t_d} -> c_lidar {c_l}, yaw_w "
                  f"{math.degrees(yaw_w):.6f} yaw_l {math.degrees(yaw_l):.6f}; bottom {bottom_w}"
                  f" -> cam {loc_cam}; d {d} ry {ry:.6f} alpha {alpha:.6f}; inside {int(inside.sum())}")
            cuboids[lab["label_id"]] = entry
        # paint counts
        counts = np.bincount(seg, minlength=len(sem_meta["paint_categories"]) + 1)
        paint = {"unpainted": int(counts[0]),
                 **{cname: int(counts[i + 1]) for i, cname in enumerate(sem_meta["paint_categories"])}}
        ic, ii = icat[start:start + n], iid[start:start + n]
        inst_counts: dict[str, int] = {}
        for cv, idv in zip(ic, ii, strict=True):
            k = "unpainted" if cv == 0 else f"{inst_meta['paint_categories'][cv - 1]}/{idv}"
            inst_counts[k] = inst_counts.get(k, 0) + 1
        others = {}
        for lab in labels.get(file_id, []):
            if lab["label_type"] == "3d_polyline":
                V = np.array([[p["x"], p["y"], p["z"]] for p in lab["polyline"]])
                others[lab["label_id"] + "|3d_polyline"] = {"vertices_lidar": (V - t_d) @ R_d}
            elif lab["label_type"] == "box":
                x, y, w, h = lab["box"]
                others[lab["label_id"] + "|" + lab["sensor_id"] + "|box"] = {"xyxy": [x, y, x + w, y + h]}
        # distorted projection check for camera_1 (k1 != 0): centre of each cuboid in front of it
        cam1 = fr["images"][1]
        R_c1 = quat_to_R(cam1["heading"])
        t_c1 = np.array([cam1["position"][a] for a in "xyz"])
        cam1_proj = {}
        for lid, e in cuboids.items():
            pc = R_c1.T @ (np.array(e["centre_world"]) - t_c1)
            xn, yn = (pc[0] / pc[2], pc[1] / pc[2]) if pc[2] > 0 else (math.inf, math.inf)
            # only centres that land inside the 160x120 image (pinhole) are reported
            if 0 <= cam1["fx"] * xn + cam1["cx"] < 160 and 0 <= cam1["fy"] * yn + cam1["cy"] < 120:
                r2 = xn * xn + yn * yn
                f = 1 + cam1["k1"] * r2
                cam1_proj[lid] = {"centre_cam": pc, "uv_pinhole": [cam1["fx"] * xn + cam1["cx"],
                                                                   cam1["fy"] * yn + cam1["cy"]],
                                  "uv_distorted_k1": [cam1["fx"] * xn * f + cam1["cx"],
                                                      cam1["fy"] * yn * f + cam1["cy"]]}
        out_frames[file_id] = {
            "n_points": n,
            "device_position": t_d, "device_yaw_deg": math.degrees(yaw_d),
            "camera_0": {"position": t_c, "P2": [[fx, 0.0, cx, 0.0], [0.0, fy, cy, 0.0], [0.0, 0.0, 1.0, 0.0]],
                         "Tr_velo_to_cam_R": tr_R, "Tr_velo_to_cam_t": tr_t},
            "cuboids": cuboids,
            "other_labels": others,
            "camera_1_centre_projection": cam1_proj,
            "paint_counts": paint,
            "instance_counts": dict(sorted(inst_counts.items())),
        }
        start += n
    tracks: dict[str, list[str]] = {}
    for fid in sorted(labels):
        for lab in labels[fid]:
            if lab["label_type"] == "3d_bbox":
                tracks.setdefault(lab["label_id"], []).append(fid)
    types: dict[str, int] = {}
    for fid in labels:
        for lab in labels[fid]:
            types[lab["label_type"]] = types.get(lab["label_type"], 0) + 1
    return {
        "frame_order": [Path(n).stem + ".pcd" for n in names],
        "frame_sizes": sem_meta["frame_sizes"],
        "n_points_total": n_total,
        "dpn_decompressed_bytes": len(sem),
        "instance_dpn_bytes": len(inst),
        "label_counts_by_type": dict(sorted(types.items())),
        "tracks": tracks,
        "frames": out_frames,
    }


def main() -> None:
    expected = {
        "_note": "Derived by sample_data/derive_expected.py from the sample files with first-principles "
                 "formulas (no deepen_export import). Floats rounded to 6 decimals; compare with a "
                 "tolerance (1e-4 for lengths/angles, 1e-3 px for image coordinates).",
        "image_dataset": derive_image_dataset(),
        "painting2d": derive_painting2d(),
        "lidar_sequence": derive_lidar_sequence(),
    }
    text = json.dumps(rnd(expected), indent=1, ensure_ascii=False)
    (HERE / "expected.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
