"""nuScenes export: loaded by the real nuscenes-devkit (isolated venv), round trip, conventions.

The devkit checks run ``tests/devkit_checks/nuscenes_check.py`` in the cached venv of
``tests/_isolated_env.py`` (nuscenes-devkit 1.2.0 needs numpy < 2). Expected values come from
the label model (the cuboids as parsed), from ``sample_data/expected.json`` (derived from the
sample files by hand formulas) and from brute-force counts here, never from our own output.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.spatial.transform import Rotation

import deepen_export
from converters import nuscenes
from deepen_export.cli import main
from deepen_export.errors import ConversionError
from tests._isolated_env import run_check

SAMPLE = Path(__file__).parents[1] / "sample_data"
SEQ = SAMPLE / "lidar_sequence"
VERSION = "v1.0-deepen"
# the sample's occlusion attribute as nuScenes visibility: "none" = fully visible (v80-100)
VIS = {"visibility_attribute": "occlusion", "visibility_map": {"none": "4", "partial": "2"}}
# our category -> nuScenes category (the detection classes follow from these names)
NUSC_NAMES = {
    "car": "vehicle.car",
    "pedestrian": "human.pedestrian.adult",
    "cyclist": "vehicle.bicycle",
    "road": "flat.driveable_surface",
    "vegetation": "static.vegetation",
    "lane_marking": "flat.other",
}


@pytest.fixture(scope="module")
def labels() -> deepen_export.LabelSet:
    return deepen_export.read_labels(SEQ)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]


@pytest.fixture(scope="module")
def export(tmp_path_factory, labels) -> Path:
    out = tmp_path_factory.mktemp("nusc") / "kept"
    nuscenes.write(labels, out, on_unsupported="drop", **VIS)
    return out


@pytest.fixture(scope="module")
def devkit(export, tmp_path_factory) -> dict[str, Any]:
    pngs = tmp_path_factory.mktemp("renders")
    return run_check("nuscenes_check.py", export, VERSION, pngs, export / "colormap.json")


def _by_label(labels, nusc_result: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(cuboid row, devkit annotation) pairs, matched by the deterministic token."""
    fr, cub = labels.frames, labels.cuboids
    out = []
    for j in range(len(cub)):
        ds, f = str(fr.dataset_id[cub.frame[j]]), str(fr.file_id[cub.frame[j]])
        tok = hashlib.md5(f"sample_annotation/{ds}/{f}/{cub.label_id[j]}".encode()).hexdigest()
        out.append((j, nusc_result["annotations"][tok]))
    return out


def _yaw(q_xyzw: np.ndarray) -> float:
    return float(Rotation.from_quat(q_xyzw).as_euler("ZYX")[0])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_devkit_loads_without_warnings(devkit):
    assert devkit["warnings"] == []
    c = devkit["counts"]
    assert (c["scene"], c["sample"], c["sample_annotation"], c["instance"]) == (1, 3, 8, 4)
    # 3 LiDAR scans + 2 cameras x 3 frames; 3 lidarseg files
    assert (c["sample_data"], c["lidarseg"], c["map"]) == (9, 3, 1)
    assert all(ch == ["CAMERA_0", "CAMERA_1", "LIDAR_TOP"] for ch in devkit["channels"].values())


def test_global_boxes_match_the_label_model(labels, devkit):
    cub = labels.cuboids
    for j, ann in _by_label(labels, devkit):
        g = ann["global"]
        assert np.abs(np.array(g["center"]) - cub.center[j]).max() <= 1e-3
        length, w, h = cub.size[j]
        assert g["wlh"] == [w, length, h]
        assert abs(_wrap(g["yaw"] - _yaw(cub.quat[j]))) <= 1e-6
        assert g["name"] == labels.categories[cub.category[j]]


def test_lidar_frame_boxes_match_the_label_model(labels, devkit, expected):
    cub, poses = labels.cuboids, labels.poses
    pose_of = {int(f): i for i, f in enumerate(poses.frame)}
    for j, ann in _by_label(labels, devkit):
        p = pose_of[int(cub.frame[j])]
        r = Rotation.from_quat(poses.quat[p])
        centre = r.inv().apply(cub.center[j] - poses.position[p])
        yaw = _yaw((r.inv() * Rotation.from_quat(cub.quat[j])).as_quat())
        box = ann["lidar"]
        assert np.abs(np.array(box["center"]) - centre).max() <= 1e-3
        assert abs(_wrap(box["yaw"] - yaw)) <= 1e-6
        # and the hand-derived values of sample_data/README.md (rounded to 6 decimals)
        fid = str(labels.frames.file_id[cub.frame[j]])
        exp = expected["frames"][fid]["cuboids"][str(cub.label_id[j])]
        assert np.abs(np.array(box["center"]) - exp["centre_lidar"]).max() <= 1e-5
        assert abs(_wrap(box["yaw"] - exp["yaw_lidar_rad"])) <= 2e-6


def test_num_lidar_pts_is_an_independent_points_in_box_count(labels, devkit, expected):
    cub, pc = labels.cuboids, labels.pointclouds
    for j, ann in _by_label(labels, devkit):
        k = int(np.flatnonzero(pc.frame == cub.frame[j])[0])
        pts = pc.xyz[pc.offsets[k] : pc.offsets[k + 1]]
        # brute force: every point into the box frame, inside the half sizes
        local = Rotation.from_quat(cub.quat[j]).inv().apply(pts - cub.center[j])
        inside = int(np.all(np.abs(local) <= cub.size[j] / 2, axis=1).sum())
        fid = str(labels.frames.file_id[cub.frame[j]])
        exp = expected["frames"][fid]["cuboids"][str(cub.label_id[j])]["points_inside"]
        assert ann["num_lidar_pts"] == ann["devkit_points_in_box"] == inside == exp


def test_render_sample_data_draws_lidar_and_cameras(devkit, tmp_path_factory):
    names = sorted(Path(p).name for p in devkit["renders"])
    assert names == [
        "render_CAMERA_0.png", "render_CAMERA_1.png", "render_lidar.png", "render_lidarseg.png",
    ]  # fmt: skip
    for p in devkit["renders"]:
        with Image.open(p) as im:
            assert im.size[0] > 100 and im.size[1] > 100
            # not a blank canvas: the scan / image and the boxes are drawn
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint32)
            packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            assert len(np.unique(packed)) > 10


def test_other_devkit_views_and_listings_run(devkit):
    assert devkit["devkit_calls"] == dict.fromkeys(
        ["render_sample", "render_annotation", "render_instance", "render_pointcloud_in_image",
         "list_scenes", "list_sample", "list_categories", "list_attributes",
         "list_lidarseg_categories"],
        "ok",
    )  # fmt: skip


def test_lidarseg_reads_back_the_paint_labels(labels, devkit):
    seg, pc = labels.point_segmentation, labels.pointclouds
    fr = labels.frames
    for k in range(len(seg)):
        row = int(seg.frame[k])
        ds, f = str(fr.dataset_id[row]), str(fr.file_id[row])
        sd = hashlib.md5(f"sample_data/{ds}/{f}/LIDAR_TOP".encode()).hexdigest()
        codes = seg.category[seg.offsets[k] : seg.offsets[k + 1]]
        want = ["noise" if c < 0 else labels.categories[c] for c in codes.tolist()]
        got = devkit["lidarseg"][sd]
        n_points = int(np.diff(pc.offsets)[np.flatnonzero(pc.frame == row)[0]])
        assert got["names"] == want and got["n_points"] == n_points == len(want)


def test_tracks_link_prev_next_and_attributes(labels, devkit):
    # car:1 moves +1.0, +0.5 m per 0.1 s frame (sample_data/README.md): 10, 5 m/s
    car1 = [a for j, a in _by_label(labels, devkit) if labels.cuboids.label_id[j] == "car:1"]
    assert len({a["instance_token"] for a in car1}) == 1
    for tok, a in devkit["annotations"].items():
        if a in car1:
            assert np.allclose(devkit["velocity"][tok], [10.0, 5.0, 0.0], rtol=1e-5)
    assert sorted(car1[0]["attributes"]) == ["occlusion.none", "state.moving"]


def test_category_map_loads_with_the_default_colormap(tmp_path, labels):
    out = tmp_path / "mapped"
    (tmp_path / "map.json").write_text(json.dumps(NUSC_NAMES))
    nuscenes.write(labels, out, on_unsupported="drop", category_map=tmp_path / "map.json")
    res = run_check("nuscenes_check.py", out, VERSION, tmp_path)
    assert res["warnings"] == []
    names = {a["category_name"] for a in res["annotations"].values()}
    assert names == {"vehicle.car", "human.pedestrian.adult", "vehicle.bicycle"}
    cats = json.loads((out / VERSION / "category.json").read_text())
    assert [c["name"] for c in cats if c["index"] == 0] == ["noise"]


def test_lidar_to_ego_moves_the_ego_and_keeps_every_box(tmp_path, labels):
    # LiDAR mounted 1.2 m ahead, 1.8 m up, yawed 0.1 rad in the vehicle frame
    q = Rotation.from_euler("z", 0.1)
    w, x, y, z = np.roll(q.as_quat(), 1)
    tr = {"translation": [1.2, 0.0, 1.8], "rotation": [w, x, y, z]}
    out = tmp_path / "ego"
    result = CliRunner().invoke(
        main,
        ["convert", str(SEQ), "--to", "nuscenes", "-o", str(out), "--on-unsupported", "drop",
         "-O", f"lidar_to_ego={json.dumps(tr)}", "-O", 'channels={"camera_0": "CAM_FRONT"}'],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cs = {c["token"]: c for c in json.loads((out / VERSION / "calibrated_sensor.json").read_text())}
    sensors = {
        s["token"]: s["channel"] for s in json.loads((out / VERSION / "sensor.json").read_text())
    }
    lidar_cs = [c for c in cs.values() if sensors[c["sensor_token"]] == "LIDAR_TOP"]
    assert len(lidar_cs) == 1
    assert np.allclose(lidar_cs[0]["translation"], tr["translation"])
    assert np.allclose(lidar_cs[0]["rotation"], tr["rotation"])
    # ego pose = device pose * lidar_to_ego^-1, checked on frame 0 by hand with scipy
    poses = labels.poses
    dev = Rotation.from_quat(poses.quat[0])
    ego_rot = dev * q.inv()
    ego_t = poses.position[0] - ego_rot.apply([1.2, 0.0, 1.8])
    ego = json.loads((out / VERSION / "ego_pose.json").read_text())[0]
    assert np.abs(np.array(ego["translation"]) - ego_t).max() < 1e-9
    assert abs(_yaw(np.roll(ego["rotation"], -1)) - _yaw(ego_rot.as_quat())) < 1e-12
    # the devkit composes ego pose and calibration: LiDAR-frame boxes are unchanged
    res = run_check("nuscenes_check.py", out, VERSION, tmp_path, out / "colormap.json")
    assert res["warnings"] == []
    assert all(ch == ["CAMERA_1", "CAM_FRONT", "LIDAR_TOP"] for ch in res["channels"].values())
    for j, ann in _by_label(labels, res):
        p = int(np.flatnonzero(poses.frame == labels.cuboids.frame[j])[0])
        r = Rotation.from_quat(poses.quat[p])
        centre = r.inv().apply(labels.cuboids.center[j] - poses.position[p])
        assert np.abs(np.array(ann["lidar"]["center"]) - centre).max() <= 1e-3


def test_quaternions_sizes_and_tokens_follow_the_conventions(export, labels):
    anns = json.loads((export / VERSION / "sample_annotation.json").read_text())
    by_tok = {a["token"]: a for a in anns}
    cub, fr = labels.cuboids, labels.frames
    for j in range(len(cub)):
        ds, f = fr.dataset_id[cub.frame[j]], fr.file_id[cub.frame[j]]
        a = by_tok[
            hashlib.md5(f"sample_annotation/{ds}/{f}/{cub.label_id[j]}".encode()).hexdigest()
        ]
        x, y, z, w = cub.quat[j]
        # [w, x, y, z], sign chosen with w >= 0 (car:4 is labelled with w < 0)
        assert a["rotation"][0] >= 0
        assert np.allclose(np.abs(a["rotation"]), np.abs([w, x, y, z]), atol=1e-12)
        assert a["size"] == [cub.size[j][1], cub.size[j][0], cub.size[j][2]]
        assert a["translation"] == cub.center[j].tolist()
    car4 = [a for a in anns if a["instance_token"] == hashlib.md5(
        f"instance/{fr.dataset_id[0]}/car:4".encode()).hexdigest()]  # fmt: skip
    assert len(car4) == 1 and car4[0]["rotation"][0] > 0
    vis = json.loads((export / VERSION / "visibility.json").read_text())
    assert {v["token"]: v["level"] for v in vis} == {
        "1": "v0-40",
        "2": "v40-60",
        "3": "v60-80",
        "4": "v80-100",
    }
    # pedestrian:2 has occlusion "partial" -> v40-60
    assert {a["visibility_token"] for a in anns} == {"2", "4"}


def test_export_is_deterministic(tmp_path, labels, export):
    again = tmp_path / "again"
    nuscenes.write(labels, again, on_unsupported="drop", **VIS)
    files = sorted(p.relative_to(export) for p in export.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (export / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_scans_are_lidar_frame_points_with_intensity_and_ring(export, labels):
    sds = json.loads((export / VERSION / "sample_data.json").read_text())
    lidar = [s for s in sds if s["filename"].startswith("samples/LIDAR_TOP/")]
    pc, poses = labels.pointclouds, labels.poses
    for k, sd in enumerate(sorted(lidar, key=lambda s: s["timestamp"])):
        data = np.fromfile(export / sd["filename"], dtype="<f4").reshape(-1, 5)
        a, b = pc.offsets[k], pc.offsets[k + 1]
        local = Rotation.from_quat(poses.quat[k]).inv().apply(pc.xyz[a:b] - poses.position[k])
        assert np.abs(data[:, :3] - local).max() < 1e-5
        assert np.array_equal(data[:, 3], pc.intensity[a:b]) and not data[:, 4].any()


def _tables(folder: Path) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / VERSION).glob("*.json"))}


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        # poses go through float64 products on the way back (1e5 m: atol 1 nm)
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_round_trip_nuscenes_labelset_nuscenes_gives_equal_tables(tmp_path, export):
    back = nuscenes.read(export)
    assert sorted(set(back.cuboids.label_id.tolist())) == [
        "car:1",
        "car:4",
        "cyclist:3",
        "pedestrian:2",
    ]
    again = tmp_path / "again"
    report = nuscenes.write(back, again, **VIS)
    assert report.written["images"] == 6
    _assert_same(_tables(export), _tables(again))
    for sub in ("samples", "lidarseg"):
        for p in sorted(f for f in (export / sub).rglob("*") if f.is_file()):
            q = again / p.relative_to(export)
            if p.suffix == ".bin" and "LIDAR" in str(p):
                assert np.allclose(np.fromfile(p, "<f4"), np.fromfile(q, "<f4"), atol=1e-5)
            else:
                assert p.read_bytes() == q.read_bytes(), p


def test_sequence_without_poses_is_one_clear_error(tmp_path):
    bare = deepen_export.read_labels(SEQ / "labels.json")
    with pytest.raises(ConversionError, match=r"no device pose for frame\(s\) 0000.pcd, 0001.pcd"):
        nuscenes.write(bare, tmp_path / "out", on_unsupported="drop")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(
        main, ["convert", str(SEQ / "labels.json"), "--to", "nuscenes", "-o", str(tmp_path / "cli"),
               "--on-unsupported", "drop"],
    )  # fmt: skip
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no device pose" in result.stderr and not (tmp_path / "cli").exists()


def test_camera_without_intrinsics_is_reported_and_left_out(tmp_path, labels):
    import dataclasses

    cams = labels.cameras
    fx = cams.fx.copy()
    fx[3] = np.nan  # camera_1 of frame 0001.pcd
    broken = labels.replace(cameras=dataclasses.replace(cams, fx=fx))
    report = nuscenes.write(broken, tmp_path / "out", on_unsupported="drop")
    bad = [i for i in report.issues if "no valid intrinsics" in i.reason]
    assert len(bad) == 1 and bad[0].file_id == "0001.pcd" and "camera_1" in bad[0].reason
    sds = json.loads((tmp_path / "out" / VERSION / "sample_data.json").read_text())
    assert sum(s["filename"].startswith("samples/CAMERA_1/") for s in sds) == 2


def test_paint_labels_with_the_wrong_point_count_are_reported(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(SEQ, snap)
    (snap / "manifest.json").unlink()  # the edited paint header no longer matches its hash
    meta = json.loads((snap / "paint" / "3d_point.json").read_text())
    meta["frame_sizes"] = [476, 444, 430]  # same total, frames 0 and 1 off by one
    (snap / "paint" / "3d_point.json").write_text(json.dumps(meta))
    (snap / "paint" / "3d_instance_point.json").unlink()
    (snap / "paint" / "3d_instance_point.dpn").unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["convert", str(snap), "--to", "nuscenes", "-o", str(out), "--on-unsupported", "drop"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    issues = json.loads((out / "report.json").read_text())["issues"]
    bad = [i for i in issues if "paint labels hold" in i["reason"]]
    assert [(i["file_id"], i["reason"].split(":")[1].strip()) for i in bad] == [
        ("0000.pcd", "paint labels hold 476 points but the frame has 475"),
        ("0001.pcd", "paint labels hold 444 points but the frame has 445"),
    ]
    assert len(json.loads((out / VERSION / "lidarseg.json").read_text())) == 1
    assert len(list((out / "lidarseg" / VERSION).glob("*.bin"))) == 1


def test_reader_takes_a_folder_without_our_mapping(tmp_path, export, labels):
    # a nuScenes folder from elsewhere: no mapping.json with Deepen's ids
    foreign = tmp_path / "foreign"
    shutil.copytree(export, foreign)
    (foreign / "mapping.json").unlink()
    back = nuscenes.read(foreign)
    assert back.frames.dataset_id[0] == "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6"  # the scene name
    assert back.frames.file_id[0].startswith("Kp9Wn3Qs5Tv7Xy1Za2Bc4De6__LIDAR_TOP__")
    # tracks numbered in order of first appearance: car:1, pedestrian:2, car:4 (frame 0), cyclist:3
    assert list(dict.fromkeys(back.cuboids.label_id.tolist())) == [
        "car:1", "pedestrian:2", "car:3", "cyclist:4",
    ]  # fmt: skip
    assert np.allclose(np.sort(back.cuboids.center[:, 0]), np.sort(labels.cuboids.center[:, 0]))
    assert not back.cameras.distortion.any()  # nuScenes itself has no distortion field


def test_camera_without_intrinsics_in_the_upload_is_one_clear_error(tmp_path):
    import zipfile

    snap = tmp_path / "snap"
    shutil.copytree(SEQ, snap)
    (snap / "manifest.json").unlink()
    src = SEQ / "media" / "dataset.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(snap / "media" / "dataset.zip", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "0001.json":
                frame = json.loads(data)
                del frame["images"][1]["fx"]
                data = json.dumps(frame).encode()
            zout.writestr(info, data)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["convert", str(snap), "--to", "nuscenes", "-o", str(out), "--on-unsupported", "drop"]
    )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "0001.json, image 1: missing or bad field 'fx'" in result.stderr
    assert not out.exists()


def _two_datasets(labels):
    import dataclasses

    other = labels.replace(
        frames=dataclasses.replace(
            labels.frames,
            dataset_id=np.array(["Second0000000000000000ds"] * len(labels.frames), dtype=object),
        ),
        meta={},
    )
    return deepen_export.LabelSet.concat([labels, other])


def test_two_datasets_are_two_scenes_with_their_own_tokens(tmp_path, labels):
    both = _two_datasets(labels)
    nuscenes.write(
        both, tmp_path / "out", on_unsupported="drop", media=SEQ / "media" / "dataset.zip"
    )
    t = _tables(tmp_path / "out")
    assert [s["name"] for s in t["scene"]] == [
        "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6",
        "Second0000000000000000ds",
    ]
    assert len(t["sample"]) == 6 and len(t["sample_annotation"]) == 16 and len(t["instance"]) == 8
    for name in t:
        toks = [r["token"] for r in t[name]]
        assert len(toks) == len(set(toks)), name
    # each scene's samples are one prev/next chain of 3
    by = {s["token"]: s for s in t["sample"]}
    for scene in t["scene"]:
        chain, tok = [], scene["first_sample_token"]
        while tok:
            chain.append(tok)
            tok = by[tok]["next"]
        assert len(chain) == scene["nbr_samples"] == 3 and chain[-1] == scene["last_sample_token"]
    # the same rig in both: one calibration per sensor
    assert len(t["calibrated_sensor"]) == 3


def test_missing_timestamps_are_written_10_hz_and_reported(tmp_path, labels):
    import dataclasses

    poses = dataclasses.replace(labels.poses, timestamp=np.full(len(labels.poses), np.nan))
    report = nuscenes.write(labels.replace(poses=poses), tmp_path / "out", on_unsupported="drop")
    assert [i.reason for i in report.issues if "timestamps" in i.reason] == [
        "nuscenes: frames have no strictly increasing timestamps: written 0.1 s apart"
    ]
    samples = json.loads((tmp_path / "out" / VERSION / "sample.json").read_text())
    assert [s["timestamp"] for s in samples] == [0, 100_000, 200_000]


def test_tables_pointing_nowhere_are_one_clear_error(tmp_path, export):
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    samples = json.loads((broken / VERSION / "sample.json").read_text())
    (broken / VERSION / "sample.json").write_text(json.dumps(samples[:1] + samples[2:]))
    with pytest.raises(ConversionError, match=r"has inconsistent tables \(KeyError"):
        nuscenes.read(broken)
    (broken / VERSION / "scene.json").unlink()
    with pytest.raises(ConversionError, match=r"scene.json is missing"):
        nuscenes.read(broken)


def test_frames_not_labelled_yet_are_left_out_and_reported(tmp_path, labels):
    import dataclasses

    fr = labels.frames
    row = int(np.flatnonzero((fr.file_id == "0001.pcd") & (fr.sensor_id == "lidar"))[0])
    status = fr.status.copy()
    status[row] = 1  # FrameStatus.UNLABELLED
    keep = labels.cuboids.frame != row
    ls = labels.replace(
        frames=dataclasses.replace(fr, status=status),
        cuboids=labels.cuboids.take(keep),
        point_segmentation=labels.point_segmentation.take(labels.point_segmentation.frame != row),
    )
    report = nuscenes.write(ls, tmp_path / "out", on_unsupported="drop")
    assert [(i.action, i.file_id) for i in report.issues if "not labelled yet" in i.reason] == [
        ("skipped", "0001.pcd")
    ]
    t = _tables(tmp_path / "out")
    assert len(t["sample"]) == 2 and t["sample"][0]["next"] == t["sample"][1]["token"]
    assert len(t["sample_annotation"]) == int(keep.sum())


def test_non_finite_cuboids_and_poses_are_reported_or_refused(tmp_path, labels):
    import dataclasses

    center = labels.cuboids.center.copy()
    center[0, 0] = np.nan  # car:1 in 0000.pcd
    ls = labels.replace(cuboids=dataclasses.replace(labels.cuboids, center=center))
    report = nuscenes.write(ls, tmp_path / "a", on_unsupported="drop")
    bad = [(i.file_id, i.label_id) for i in report.issues if "non-finite" in i.reason]
    assert bad == [("0000.pcd", "car:1")] and report.written["sample_annotation"] == 7
    position = labels.poses.position.copy()
    position[1, 2] = np.inf
    ls = labels.replace(poses=dataclasses.replace(labels.poses, position=position))
    with pytest.raises(ConversionError, match=r"device pose of frame\(s\) 0001.pcd is not finite"):
        nuscenes.write(ls, tmp_path / "b", on_unsupported="drop")
