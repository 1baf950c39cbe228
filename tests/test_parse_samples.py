"""Every sample file parses into the values sample_data/expected.json holds.

expected.json was derived independently of this package (sample_data/derive_expected.py does not
import deepen_export); see sample_data/README.md for the arithmetic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import deepen_export
from deepen_export.errors import ParseError
from deepen_export.model import FrameStatus
from deepen_export.parse import parse_frames_zip, parse_labels, parse_painting2d, parse_snapshot

SAMPLES = Path(__file__).parents[1] / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())
IMG = EXPECTED["image_dataset"]
LIDAR = EXPECTED["lidar_sequence"]


@pytest.fixture(scope="module")
def image_labels():
    return deepen_export.read_labels(SAMPLES / "image_dataset")


@pytest.fixture(scope="module")
def lidar_labels():
    return deepen_export.read_labels(SAMPLES / "lidar_sequence")


@pytest.mark.parametrize("name", ["labels.json", "labels_by_file.json", "all_labels.json"])
@pytest.mark.parametrize("fast", [True, False])
def test_three_response_forms_hold_the_same_labels(name, fast):
    ls = parse_labels(SAMPLES / "image_dataset" / name, fast=fast)
    ref = parse_labels(SAMPLES / "image_dataset" / "labels.json", fast=False)
    assert not ls.issues
    for kind in ("boxes", "polygons", "polylines", "points", "scenes"):
        a, b = ls.table(kind), ref.table(kind)
        assert a.label_id.tolist() == b.label_id.tolist()
        assert np.array_equal(getattr(a, "coords", np.zeros(0)), getattr(b, "coords", np.zeros(0)))
    assert ls.boxes.equals(ref.boxes) or name == "labels_by_file.json"


def test_image_dataset_counts_and_frames(image_labels):
    ls = image_labels
    counts = IMG["label_counts_by_type"]
    assert len(ls) == IMG["n_labels"]
    assert (len(ls.boxes), len(ls.polygons), len(ls.polylines), len(ls.points), len(ls.scenes)) == (
        counts["box"],
        counts["polygon"],
        counts["lane"],
        counts["point"],
        counts["scene"],
    )
    per_view = {}
    for _kind, table in ls:
        for f in table.frame:
            key = f"{ls.frames.file_id[f]}|{ls.frames.sensor_id[f]}"
            per_view[key] = per_view.get(key, 0) + 1
    expected_views = {k: v for k, v in IMG["label_counts_by_file_sensor"].items() if v}
    assert per_view == expected_views
    sizes = {
        f: (int(w), int(h))
        for f, w, h in zip(ls.frames.file_id, ls.frames.width, ls.frames.height, strict=True)
    }
    assert sizes == {k: tuple(v) for k, v in IMG["image_sizes_wh"].items()}
    status = {f: FrameStatus(s) for f, s in zip(ls.frames.file_id, ls.frames.status, strict=True)}
    assert (
        status["000003.png"] == FrameStatus.EMPTY
    )  # file status "done", no labels: reviewed negative
    assert status["000004.png"] == FrameStatus.UNLABELLED  # file status "waiting"
    assert {f for f, s in status.items() if s == FrameStatus.LABELLED} == {
        "000001.png",
        "000002.png",
        "inner_kitty/000059.png",
    }


def test_image_dataset_geometry(image_labels):
    ls = image_labels
    for lid, exp in IMG["boxes"].items():
        i = ls.boxes.label_id.tolist().index(lid)
        assert ls.boxes.xyxy[i].tolist() == pytest.approx(exp["xyxy"])
        assert ls.frames.file_id[ls.boxes.frame[i]] == exp["file_id"]
        assert ls.frames.sensor_id[ls.boxes.frame[i]] == exp["sensor_id"]
    for lid, exp in IMG["polygons"].items():
        i = ls.polygons.label_id.tolist().index(lid)
        assert ls.polygons.offsets[i + 1] - ls.polygons.offsets[i] == exp["n_rings"]
    for lid, exp in IMG["lanes"].items():
        i = ls.polylines.label_id.tolist().index(lid)
        assert (
            ls.polylines.part_offsets[ls.polylines.offsets[i + 1]]
            - ls.polylines.part_offsets[ls.polylines.offsets[i]]
            == exp["n_vertices"]
        )
    for lid, exp in IMG["points"].items():
        i = ls.points.label_id.tolist().index(lid)
        assert (
            ls.points.coords[ls.points.offsets[i] : ls.points.offsets[i + 1]].tolist()
            == exp["points"]
        )


def test_image_dataset_attributes(image_labels):
    ls = image_labels
    records = {}
    for kind in ("boxes", "polygons", "polylines", "points", "scenes"):
        t = ls.table(kind)
        records.update(dict(zip(t.label_id.tolist(), t.attribute_records(), strict=True)))
    for lid, exp in IMG["attributes"].items():
        want = exp if isinstance(exp, dict) else {}
        assert records[lid] == want, lid


def test_profile_orders_categories(image_labels):
    profile = json.loads((SAMPLES / "image_dataset" / "profile.json").read_text())
    listed = list(
        dict.fromkeys(
            c for f in profile["features"].values() for c in f.get("label_category_ids", [])
        )
    )
    assert list(image_labels.categories[: len(listed)]) == listed


def test_lidar_sequence(lidar_labels):
    ls = lidar_labels
    counts = LIDAR["label_counts_by_type"]
    assert (len(ls.cuboids), len(ls.polylines3d), len(ls.boxes)) == (
        counts["3d_bbox"],
        counts["3d_polyline"],
        counts["box"],
    )
    lidar_rows = [i for i in range(len(ls.frames)) if ls.frames.sensor_id[i] == "lidar"]
    assert [ls.frames.file_id[i] for i in lidar_rows] == LIDAR["frame_order"]
    assert [int(ls.frames.index[i]) for i in lidar_rows] == [0, 1, 2]
    for lid, files in LIDAR["tracks"].items():
        rows = np.flatnonzero(ls.cuboids.label_id == lid)
        assert sorted(ls.frames.file_id[ls.cuboids.frame[r]] for r in rows) == files
        assert len(set(ls.cuboids.track[rows].tolist())) == 1
    for fid, exp in LIDAR["frames"].items():
        row = lidar_rows[LIDAR["frame_order"].index(fid)]
        pose = np.flatnonzero(ls.poses.frame == row)
        assert len(pose) == 1
        assert ls.poses.position[pose[0]].tolist() == pytest.approx(exp["device_position"])
        yaw = np.degrees(2 * np.arctan2(ls.poses.quat[pose[0], 2], ls.poses.quat[pose[0], 3]))
        assert yaw == pytest.approx(exp["device_yaw_deg"], abs=1e-6)
        cams = np.flatnonzero(ls.cameras.frame == row)
        assert ls.cameras.sensor_id[cams].tolist() == ["camera_0", "camera_1"]
        k = ls.cameras.intrinsic_matrix()[cams[0]]
        assert k.tolist() == [row_[:3] for row_ in exp["camera_0"]["P2"]]
        assert ls.cameras.position[cams[0]].tolist() == pytest.approx(
            exp["camera_0"]["position"], abs=1e-6
        )
        assert (
            ls.pointclouds.offsets[ls.pointclouds.frame.tolist().index(row) + 1]
            - ls.pointclouds.offsets[ls.pointclouds.frame.tolist().index(row)]
            == exp["n_points"]
        )
        for lid, cub in exp["cuboids"].items():
            r = [
                i for i in np.flatnonzero(ls.cuboids.label_id == lid) if ls.cuboids.frame[i] == row
            ]
            assert len(r) == 1
            assert ls.cuboids.center[r[0]].tolist() == pytest.approx(cub["centre_world"], abs=1e-9)
            assert ls.cuboids.size[r[0]].tolist() == pytest.approx(cub["lwh"])
            assert np.degrees(ls.cuboids.yaw[r[0]]) == pytest.approx(cub["yaw_world_deg"], abs=1e-6)


def test_lidar_paint_counts(lidar_labels):
    ls = lidar_labels
    seg = ls.point_segmentation
    assert seg.offsets.tolist() == np.cumsum([0, *LIDAR["frame_sizes"]]).tolist()
    for k, fid in enumerate(LIDAR["frame_order"]):
        cats = seg.category[seg.offsets[k] : seg.offsets[k + 1]]
        got = {
            ls.categories[c] if c >= 0 else "unpainted": int(n)
            for c, n in zip(*np.unique(cats, return_counts=True), strict=True)
        }
        exp = {c: n for c, n in LIDAR["frames"][fid]["paint_counts"].items() if n}
        assert got == exp
        assert ls.frames.file_id[seg.frame[k]] == fid


def test_semantic_and_instance_paint_together(lidar_labels):
    seg = lidar_labels.point_segmentation
    cats = np.array([lidar_labels.categories[c] if c >= 0 else "" for c in seg.category])
    inst = seg.instance
    # instance ids exist exactly where instance-painted objects are; car:4 is 258 (lo 2, hi 1)
    assert 258 in set(inst.tolist()) and 1 in set(inst.tolist())
    assert set(cats[inst == 258].tolist()) == {"car"}
    assert np.all(inst[cats == "road"] == -1)


def test_instance_paint_high_byte(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(SAMPLES / "lidar_sequence", snap)
    (snap / "paint" / "3d_point.dpn").unlink()
    (snap / "manifest.json").unlink()  # the manifest would (rightly) call the snapshot incomplete
    ls = parse_snapshot(snap)
    inst = ls.point_segmentation.instance
    assert 258 in set(inst.tolist())  # car:4: low byte 2, high byte 1
    assert int(inst.max()) < 65536


def test_painting2d_flat_masks_without_image_sizes_are_reported():
    ls = parse_painting2d(
        SAMPLES / "painting2d", parse_labels(SAMPLES / "image_dataset" / "labels.json")
    )
    assert len(ls.masks2d) == 0
    assert sorted(i.file_id for i in ls.issues) == ["000001.png", "inner_kitty/000059.png"]
    assert all("without a known image size" in i.reason for i in ls.issues)


def test_painting2d_counts(image_labels):
    ls = parse_painting2d(SAMPLES / "painting2d", image_labels)
    exp = EXPECTED["painting2d"]
    assert len(ls.masks2d) == len(exp)
    for i in range(len(ls.masks2d)):
        f = ls.masks2d.frame[i]
        key = f"{ls.frames.file_id[f]}|{ls.frames.sensor_id[f]}"
        m = ls.masks2d.mask(i)
        assert (m.shape[1], m.shape[0]) == (exp[key]["width"], exp[key]["height"])
        got = {
            ls.categories[c] if c >= 0 else "unpainted": int(n)
            for c, n in zip(*np.unique(m, return_counts=True), strict=True)
        }
        assert got == exp[key]["counts"]


# -- bad input ------------------------------------------------------------------------------


def test_bad_truncated():
    with pytest.raises(ParseError, match=r"truncated.json: not valid JSON"):
        deepen_export.read_labels(SAMPLES / "bad" / "truncated.json")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing_geometry.json", "no geometry"),
        ("nan_coordinates.json", "non-finite"),
        ("unknown_label_type.json", "unknown label_type '2d_ellipse'"),
    ],
)
def test_bad_labels_reported(name, reason):
    ls = deepen_export.read_labels(SAMPLES / "bad" / name)
    assert ls.issues
    assert any(reason in i.reason and i.file_id and i.label_id for i in ls.issues), ls.issues


def test_bad_dpn_size(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(SAMPLES / "lidar_sequence", snap)
    for f in (SAMPLES / "bad" / "dpn_size_mismatch").iterdir():
        shutil.copy(f, snap / "paint" / f.name)
    (snap / "manifest.json").unlink()  # so that the .dpn itself is read and found wrong
    with pytest.raises(
        ParseError, match=r"3d_point.dpn: paint labels hold 100 bytes but frame_sizes add up to 90"
    ):
        parse_snapshot(snap)


@pytest.mark.parametrize("name", ["zip_slip_parent.zip", "zip_slip_absolute.zip"])
def test_bad_zip_entries_never_leave_the_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = parse_frames_zip(SAMPLES / "bad" / name)
    assert data.issues and all("outside the archive folder" in i.reason for i in data.issues)
    assert not any(tmp_path.rglob("*escape*"))
    assert not Path("/tmp/abs.json").exists() or Path("/tmp/abs.json").stat().st_size != 0


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_snapshot_missing_or_cut_files_are_an_error(tmp_path, damage):
    snap = tmp_path / "snap"
    shutil.copytree(SAMPLES / "lidar_sequence", snap)
    target = snap / "paint" / "3d_point.dpn"
    if damage == "delete":
        target.unlink()
        match = r"snapshot is incomplete: paint/3d_point.dpn is listed in manifest.json but missing"
    else:
        target.write_bytes(target.read_bytes()[:-10])
        match = r"snapshot file paint/3d_point.dpn has \d+ bytes, manifest.json says \d+"
    with pytest.raises(ParseError, match=match):
        parse_snapshot(snap)
