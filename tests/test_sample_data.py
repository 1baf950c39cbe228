"""The sample data is internally consistent and its expected values hold.

These tests check the files under ``sample_data/`` themselves (not the library): sizes, hashes,
frame sizes, points inside cuboids (brute force, independent of ``derive_expected.py``), paint
counts, the three label response forms, the bad inputs, and that the generators and the
derivation reproduce what is committed. Nothing here imports ``deepen_export``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
IMG = SAMPLE / "image_dataset"
LIDAR = SAMPLE / "lidar_sequence"
EXPECTED: dict[str, Any] = json.loads((SAMPLE / "expected.json").read_text(encoding="utf-8"))
EXP_IMG = EXPECTED["image_dataset"]
EXP_3D = EXPECTED["lidar_sequence"]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def frames_from_zip() -> dict[str, dict[str, Any]]:
    with zipfile.ZipFile(LIDAR / "media" / "dataset.zip") as z:
        names = sorted(n for n in z.namelist() if "/" not in n and n.endswith(".json"))
        return {n[:-5] + ".pcd": json.loads(z.read(n)) for n in names}


def quat_matrix(q: dict[str, float]) -> np.ndarray:
    # written independently of derive_expected.py: R = I + 2w[v]x + 2[v]x^2 for unit (v, w)
    v = np.array([q["x"], q["y"], q["z"]], dtype=np.float64)
    w = float(q["w"])
    n = math.sqrt(float(v @ v) + w * w)
    v, w = v / n, w / n
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + 2 * w * vx + 2 * vx @ vx


def box_rotation(b: dict[str, Any]) -> np.ndarray:
    if "quaternion" in b:
        return quat_matrix(b["quaternion"])
    a = b["rot_z"]  # counter-clockwise positive about +z: the sample's documented assumption
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


# ---------------------------------------------------------------------------------------------
# image dataset
# ---------------------------------------------------------------------------------------------
def test_three_label_forms_have_identical_content() -> None:
    flat = load(IMG / "labels.json")["labels"]
    by_file = load(IMG / "labels_by_file.json")["labels"]
    all_labels = load(IMG / "all_labels.json")["all_labels"]
    assert isinstance(flat, list) and isinstance(by_file, dict)
    assert all_labels == flat
    assert [lab for labs in by_file.values() for lab in labs] == flat
    assert all(lab["file_id"] == fid for fid, labs in by_file.items() for lab in labs)


def test_image_labels_cover_the_documented_cases() -> None:
    labels = load(IMG / "labels.json")["labels"]
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab["label_type"]] = counts.get(lab["label_type"], 0) + 1
    assert counts == EXP_IMG["label_counts_by_type"]
    assert len(labels) == EXP_IMG["n_labels"]
    # attributes: one null, one missing, one non-ASCII value
    assert sum(lab.get("attributes", 0) is None for lab in labels) == 1
    assert sum("attributes" not in lab for lab in labels) == 1
    assert any(
        any(not str(v).isascii() for v in (lab.get("attributes") or {}).values()) for lab in labels
    )
    # the same file_id on two sensors
    sensors_of = {(lab["file_id"], lab["sensor_id"]) for lab in labels}
    assert {("000001.png", "sensor1"), ("000001.png", "sensor2")} <= sensors_of
    # the exact 2D point keys chosen for this sample
    pts = [lab for lab in labels if lab["label_type"] == "point"]
    assert sorted(k for lab in pts for k in ("point", "points") if k in lab) == ["point", "points"]
    for lab in labels:
        assert set(lab) >= {"file_id", "label_category_id", "label_id", "label_type", "stage_id"}
        assert lab["label_id"].split(":")[0] == lab["label_category_id"]


def test_boxes_and_polygons_match_expected_by_independent_arithmetic() -> None:
    labels = {lab["label_id"]: lab for lab in load(IMG / "labels.json")["labels"]}
    for lid, exp in EXP_IMG["boxes"].items():
        x, y, w, h = labels[lid]["box"]
        assert exp["xyxy"] == pytest.approx([x, y, x + w, y + h])
    for lid, exp in EXP_IMG["polygons"].items():
        rings = labels[lid]["polygons"]
        # Green's theorem on each ring: sum of x_i y_(i+1) - x_(i+1) y_i, halved
        areas = []
        for r in rings:
            a, b = np.array(r, dtype=float), np.roll(np.array(r, dtype=float), -1, axis=0)
            areas.append(float((a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]).sum() / 2))
        assert exp["ring_signed_areas"] == pytest.approx(areas)
    assert EXP_IMG["polygons"]["road:1"]["area"] == 860.0
    assert EXP_IMG["polygons"]["building:1"]["area"] == 500.0
    assert EXP_IMG["polygons"]["vegetation:1"]["area_shoelace"] == 0.0
    assert EXP_IMG["polygons"]["vegetation:1"]["area_even_odd"] == 200.0


def test_images_have_the_stated_sizes_and_every_file_is_listed() -> None:
    files = load(IMG / "files.json")["files"]
    labels = load(IMG / "labels.json")["labels"]
    listed = {f["file_id"] for f in files}
    assert {lab["file_id"] for lab in labels} < listed
    assert EXP_IMG["unlabelled_files"] == ["000003.png", "000004.png"]
    for f in files:
        with Image.open(IMG / "images" / f["file_id"]) as im:
            assert list(im.size) == EXP_IMG["image_sizes_wh"][f["file_id"]]
            assert im.size == (f["width"], f["height"])
    assert {tuple(s) for s in EXP_IMG["image_sizes_wh"].values()} == {(64, 48), (80, 60)}


def test_profile_lists_an_unused_category_in_non_alphabetical_order() -> None:
    profile = load(IMG / "profile.json")
    used = {lab["label_category_id"] for lab in load(IMG / "labels.json")["labels"]}
    box_cats = profile["features"]["box"]["label_category_ids"]
    assert box_cats != sorted(box_cats)
    declared = {c for f in profile["features"].values() for c in f["label_category_ids"]}
    assert declared - used == {"truck"}
    assert used <= declared


def test_painting2d_masks() -> None:
    root = SAMPLE / "painting2d"
    for key, exp in EXPECTED["painting2d"].items():
        arr = np.load(root / exp["npy"])
        assert arr.dtype == np.uint8 and arr.shape == (exp["width"] * exp["height"],)
        assert int(arr.max()) <= len(exp["categories"])
        counts = np.bincount(arr, minlength=len(exp["categories"]) + 1)
        assert counts[0] == exp["counts"]["unpainted"], key
        for i, c in enumerate(exp["categories"]):
            assert counts[i + 1] == exp["counts"][c]
    meta = load(root / "Semantic Segmentation - metadata.json")["sensor1"]
    assert meta["000001.png"].index("car") != meta["inner_kitty/000059.png"].index("car")


# ---------------------------------------------------------------------------------------------
# lidar sequence
# ---------------------------------------------------------------------------------------------
def test_frame_sizes_agree_everywhere() -> None:
    frames = frames_from_zip()
    sizes = [len(fr["points"]) for fr in frames.values()]
    sem_meta = load(LIDAR / "paint" / "3d_point.json")
    inst_meta = load(LIDAR / "paint" / "3d_instance_point.json")
    assert sizes == sem_meta["frame_sizes"] == inst_meta["frame_sizes"] == EXP_3D["frame_sizes"]
    assert load(LIDAR / "dataset.json")["frame_sizes"] == sizes
    assert load(SAMPLE / "api" / "dataset_status_old.json")["frame_sizes"] == sizes
    sem = zlib.decompress((LIDAR / "paint" / "3d_point.dpn").read_bytes())
    assert len(sem) == sum(sizes)
    assert (LIDAR / "paint" / "3d_instance_point.dpn").stat().st_size == 3 * sum(sizes)
    assert list(frames) == [f["file_id"] for f in load(LIDAR / "files.json")["files"]]


def test_frames_zip_layout() -> None:
    with zipfile.ZipFile(LIDAR / "media" / "dataset.zip") as z:
        names = set(z.namelist())
        assert {"0000.json", "0001.json", "0002.json"} <= names
        assert all(i.date_time == (2024, 6, 1, 0, 0, 0) for i in z.infolist())
        for n in ("0000.json", "0001.json", "0002.json"):
            fr = json.loads(z.read(n))
            assert set(fr) == {"images", "timestamp", "points", "device_position", "device_heading"}
            assert 300 <= len(fr["points"]) <= 600
            assert 8e4 < fr["device_position"]["x"] < 9e4
            assert [im["image_url"] for im in fr["images"]] == [
                f"images/camera_{c}/{n[:4]}.png" for c in (0, 1)
            ]
            assert fr["images"][0]["k1"] == 0.0 and fr["images"][1]["k1"] != 0.0
            for im in fr["images"]:
                with Image.open(z.open(im["image_url"])) as png:
                    assert png.size == (160, 120)


def test_points_in_cuboids_brute_force() -> None:
    frames = frames_from_zip()
    labels = load(LIDAR / "labels.json")["labels"]
    checked = 0
    for file_id, fr in frames.items():
        pts = np.array([[p["x"], p["y"], p["z"]] for p in fr["points"]], dtype=np.float64)
        for lab in labels[file_id]:
            if lab["label_type"] != "3d_bbox":
                continue
            b = lab["three_d_bbox"]
            half = np.array([b["l"], b["w"], b["h"]]) / 2
            rot = box_rotation(b)
            n_inside = 0
            for p in pts:  # deliberately slow and obvious
                d = rot.T @ (p - np.array([b["cx"], b["cy"], b["cz"]]))
                n_inside += bool(
                    abs(d[0]) <= half[0] and abs(d[1]) <= half[1] and abs(d[2]) <= half[2]
                )
            assert (
                n_inside == EXP_3D["frames"][file_id]["cuboids"][lab["label_id"]]["points_inside"]
            )
            checked += 1
    assert checked == 8


def test_cuboid_centres_in_lidar_frame() -> None:
    frames = frames_from_zip()
    labels = load(LIDAR / "labels.json")["labels"]
    for file_id, fr in frames.items():
        t = np.array([fr["device_position"][a] for a in "xyz"])
        rot_d = quat_matrix(fr["device_heading"])
        for lab in labels[file_id]:
            if lab["label_type"] != "3d_bbox":
                continue
            b = lab["three_d_bbox"]
            exp = EXP_3D["frames"][file_id]["cuboids"][lab["label_id"]]
            c = rot_d.T @ (np.array([b["cx"], b["cy"], b["cz"]]) - t)
            assert c == pytest.approx(exp["centre_lidar"], abs=1e-5)
            r = rot_d.T @ box_rotation(b)
            assert math.degrees(math.atan2(r[1, 0], r[0, 0])) == pytest.approx(
                exp["yaw_lidar_deg"], abs=1e-5
            )
    # the hand-derived headline numbers (README): car:1 yaw 25 - (10, 12, 14) degrees
    yaws = [EXP_3D["frames"][f]["cuboids"]["car:1"]["yaw_lidar_deg"] for f in frames]
    assert yaws == pytest.approx([15.0, 13.0, 11.0], abs=1e-6)


def test_paint_counts_and_consistency_with_cuboids() -> None:
    meta = load(LIDAR / "paint" / "3d_point.json")
    assert meta["format"] == "pako_compressed"
    sem = np.frombuffer(zlib.decompress((LIDAR / "paint" / "3d_point.dpn").read_bytes()), np.uint8)
    n = sum(meta["frame_sizes"])
    inst = np.frombuffer((LIDAR / "paint" / "3d_instance_point.dpn").read_bytes(), np.uint8)
    ids = inst[n : 2 * n].astype(np.int64) + 256 * inst[2 * n :].astype(np.int64)
    assert int(ids.max()) > 255
    start = 0
    for file_id, size in zip(EXP_3D["frame_order"], meta["frame_sizes"], strict=True):
        seg = sem[start : start + size]
        exp = EXP_3D["frames"][file_id]
        counts = np.bincount(seg, minlength=len(meta["paint_categories"]) + 1)
        assert counts[0] == exp["paint_counts"]["unpainted"] > 0
        for i, cat in enumerate(meta["paint_categories"]):
            assert counts[i + 1] == exp["paint_counts"][cat]
        n_car_inside = sum(
            c["points_inside"] for lid, c in exp["cuboids"].items() if lid.startswith("car:")
        )
        assert exp["paint_counts"]["car"] == n_car_inside
        # instance plane: every "car" point of car:1 carries instance 1
        frame_ids = ids[start : start + size]
        assert int((frame_ids == 1).sum()) == exp["cuboids"]["car:1"]["points_inside"]
        start += size


def test_camera_box_label_matches_the_projection_of_car_1() -> None:
    f0 = EXP_3D["frames"]["0000.pcd"]
    label_box = f0["other_labels"]["car:1|camera_0|box"]["xyxy"]
    proj = f0["cuboids"]["car:1"]["kitti_camera_0"]["bbox_clipped"]
    assert label_box == pytest.approx(proj, abs=0.02)
    assert f0["cuboids"]["car:4"]["kitti_camera_0"]["behind_camera"] is True


def test_manifest_hashes() -> None:
    manifest = load(LIDAR / "manifest.json")
    assert manifest["snapshot_version"] == 1
    assert manifest["dataset_type"] == load(LIDAR / "dataset.json")["dataset_type"] == "3d"
    assert set(manifest["files"]) >= {"labels.json", "media/dataset.zip", "paint/3d_point.dpn"}
    for rel, info in manifest["files"].items():
        data = (LIDAR / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"], rel
        assert len(data) == info["bytes"]


# ---------------------------------------------------------------------------------------------
# bad inputs, size budget, reproducibility
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_are_bad_in_the_intended_way() -> None:
    bad = SAMPLE / "bad"
    with pytest.raises(json.JSONDecodeError):
        load(bad / "truncated.json")
    assert "box" not in load(bad / "missing_geometry.json")["labels"][1]
    nan = load(bad / "nan_coordinates.json")["labels"]
    assert math.isnan(nan[0]["box"][0]) and math.isnan(nan[1]["polygons"][0][1][0])
    assert load(bad / "unknown_label_type.json")["labels"][1]["label_type"] == "2d_ellipse"
    meta = load(bad / "dpn_size_mismatch" / "3d_point.json")
    raw = zlib.decompress((bad / "dpn_size_mismatch" / "3d_point.dpn").read_bytes())
    assert len(raw) != sum(meta["frame_sizes"])
    with zipfile.ZipFile(bad / "zip_slip_parent.zip") as z:
        assert "../escape.json" in z.namelist()
    with zipfile.ZipFile(bad / "zip_slip_absolute.zip") as z:
        assert "/tmp/abs.json" in z.namelist()


def test_sample_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 1_500_000


def _derive_module() -> Any:
    spec = importlib.util.spec_from_file_location("_derive_expected", SAMPLE / "derive_expected.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_expected_json_is_what_the_derivation_produces() -> None:
    for line in (SAMPLE / "derive_expected.py").read_text(encoding="utf-8").splitlines():
        assert not line.lstrip().startswith(("import deepen_export", "from deepen_export")), line
    mod = _derive_module()
    fresh = {
        "image_dataset": mod.derive_image_dataset(),
        "painting2d": mod.derive_painting2d(),
        "lidar_sequence": mod.derive_lidar_sequence(),
    }
    assert json.loads(json.dumps(mod.rnd(fresh))) == {
        k: v for k, v in EXPECTED.items() if not k.startswith("_")
    }


@pytest.mark.parametrize(
    ("script", "outputs"),
    [
        (
            "make_lidar_sequence.py",
            [
                "lidar_sequence/labels.json",
                "lidar_sequence/dataset.json",
                "lidar_sequence/files.json",
                "lidar_sequence/paint/3d_instance_point.dpn",
                "lidar_sequence/paint/3d_point.json",
                "api/dataset_status_old.json",
            ],
        ),
        (
            "make_image_dataset.py",
            [
                "image_dataset/labels.json",
                "image_dataset/labels_by_file.json",
                "image_dataset/all_labels.json",
                "image_dataset/files.json",
                "api/files.json",
                "api/labels_of_two_datasets.json",
                "bad/nan_coordinates.json",
                "painting2d/Semantic Segmentation - sensor1 - 000001_png.npy",
            ],
        ),
    ],
)
def test_generators_reproduce_the_committed_files(
    tmp_path: Path, script: str, outputs: list[str]
) -> None:
    shutil.copy(SAMPLE / script, tmp_path / script)
    (tmp_path / "api").mkdir()
    subprocess.run([sys.executable, str(tmp_path / script)], check=True, cwd=tmp_path)
    for rel in outputs:
        assert (tmp_path / rel).read_bytes() == (SAMPLE / rel).read_bytes(), rel
    if script == "make_lidar_sequence.py":
        # compressed bytes depend on the zlib build; compare what is inside
        new_sem = zlib.decompress((tmp_path / "lidar_sequence/paint/3d_point.dpn").read_bytes())
        assert new_sem == zlib.decompress((LIDAR / "paint" / "3d_point.dpn").read_bytes())
        with (
            zipfile.ZipFile(tmp_path / "lidar_sequence/media/dataset.zip") as a,
            zipfile.ZipFile(LIDAR / "media" / "dataset.zip") as b,
        ):
            assert a.namelist() == b.namelist()
            for n in a.namelist():
                if n.endswith(".json"):
                    assert a.read(n) == b.read(n), n
