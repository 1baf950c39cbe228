"""SemanticKITTI and nuScenes-style lidarseg writers and readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from converters import lidarseg, semantickitti
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet, PointClouds, PointSegmentation, Poses
from tests._golden import assert_same_tree

SQ = math.sqrt(0.5)
CATS = ("car", "Road", "traffic cone", "moving car")


def painted() -> LabelSet:
    """Three LiDAR frames of ds1; frame 1.pcd is not painted. Poses yaw +90 deg."""
    frames = Frames.from_columns(
        file_id=["2.pcd", "0.pcd", "1.pcd"], sensor_id=["lidar"] * 3, dataset_id=["ds1"] * 3,
        index=[2, 0, 1],
    )  # fmt: skip
    seg = PointSegmentation.from_columns(
        frame=[1, 0],
        offsets=[0, 4, 6],
        category=[0, 1, -1, 3, 2, 2],
        instance=[7, -1, -1, 65535, -1, 3],
    )
    poses = Poses.from_columns(
        frame=[1, 2, 0],
        position=[[100.0, 200.0, 0.0], [100.0, 200.5, 0.0], [100.0, 201.0, 0.0]],
        quat=[[0, 0, SQ, SQ]] * 3,
    )
    # frame 0.pcd points: LiDAR (1, 0, 0) -> world (100, 201, 0); (0, 2, 1) -> (98, 200, 1)
    pcs = PointClouds.from_columns(
        frame=[1], offsets=[0, 4],
        xyz=[[100.0, 201.0, 0.0], [98.0, 200.0, 1.0], [100.0, 200.0, 0.0], [100.0, 200.0, 0.0]],
        intensity=np.array([1, 2, 3, 4], dtype=np.float32),
    )  # fmt: skip
    return LabelSet(
        frames=frames, categories=CATS, point_segmentation=seg, poses=poses, pointclouds=pcs
    )


def test_semantickitti_bits_and_files(tmp_path: Path) -> None:
    report = semantickitti.write(painted(), tmp_path / "sk")
    seq = tmp_path / "sk/sequences/00"
    # scans numbered by index: 0.pcd -> 000000, 1.pcd (unpainted) -> no file, 2.pcd -> 000002
    assert sorted(p.name for p in (seq / "labels").iterdir()) == ["000000.label", "000002.label"]
    raw0 = np.fromfile(seq / "labels/000000.label", dtype=np.uint32)
    # semantic-kitti-api laserscan.py: sem = label & 0xFFFF, inst = label >> 16
    # car -> 10, Road -> 40 (name match is case-insensitive), unpainted -> 0, moving car -> 252
    assert (raw0 & 0xFFFF).tolist() == [10, 40, 0, 252]
    assert (raw0 >> 16).tolist() == [7, 0, 0, 65535]
    # 65535 << 16 | 252 = 4294901760 + 252
    assert raw0[3] == 4294901760 + 252
    raw2 = np.fromfile(seq / "labels/000002.label", dtype=np.uint32)
    # traffic cone is no SemanticKITTI class -> first id from 100 SemanticKITTI does not use
    assert (raw2 & 0xFFFF).tolist() == [100, 100]
    assert (raw2 >> 16).tolist() == [0, 3]
    doc = yaml.safe_load((tmp_path / "sk/label_map.yaml").read_text())
    assert doc["deepen_categories"] == {
        "car": 10,
        "Road": 40,
        "traffic cone": 100,
        "moving car": 252,
    }
    assert doc["labels"][0] == "unlabeled"
    # the semantic-kitti-api config keys, by hand: classes 1..4 in category order
    assert doc["learning_map"] == {0: 0, 10: 1, 40: 2, 100: 3, 252: 4}
    assert doc["learning_map_inv"] == {0: 0, 1: 10, 2: 40, 3: 100, 4: 252}
    assert doc["learning_ignore"] == {0: True, 1: False, 2: False, 3: False, 4: False}
    assert doc["color_map"][10] == [245, 150, 100] and set(doc["color_map"]) == {
        0,
        10,
        40,
        100,
        252,
    }
    assert doc["split"] == {"train": [0], "valid": [0], "test": []}
    # velodyne in the LiDAR frame: world (100, 201, 0) -> R^T (0, 1, 0) = (1, 0, 0) etc.
    pts = np.fromfile(seq / "velodyne/000000.bin", dtype="<f4").reshape(-1, 4)
    np.testing.assert_allclose(pts[:2], [[1, 0, 0, 1], [0, 2, 1, 2]], atol=1e-6)
    # poses relative to scan 0: scan 2 is 1 m further along world y = LiDAR x
    poses = np.loadtxt(seq / "poses.txt").reshape(-1, 3, 4)
    np.testing.assert_allclose(poses[2], [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(poses[1][:, 3], [0.5, 0, 0], atol=1e-12)
    assert not [i for i in report if i.action != "kept"]


def test_semantickitti_round_trip_and_map(tmp_path: Path) -> None:
    ls = painted()
    semantickitti.write(ls, tmp_path / "sk", label_map={"traffic cone": 99})
    back = semantickitti.read(tmp_path / "sk")
    assert back.categories == CATS
    assert back.frames.file_id.tolist() == ["0.pcd", "2.pcd"]
    np.testing.assert_array_equal(back.point_segmentation.category, ls.point_segmentation.category)
    np.testing.assert_array_equal(back.point_segmentation.instance, ls.point_segmentation.instance)
    raw = np.fromfile(tmp_path / "sk/sequences/00/labels/000002.label", dtype=np.uint32)
    assert (raw & 0xFFFF).tolist() == [99, 99]
    # the label map file itself can be passed back in
    semantickitti.write(ls, tmp_path / "sk2", label_map=str(tmp_path / "sk/label_map.yaml"))
    assert (tmp_path / "sk2/sequences/00/labels/000002.label").read_bytes() == raw.tobytes()


def test_semantickitti_instance_overflow(tmp_path: Path) -> None:
    seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 1], category=[0], instance=[70000])
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["0.pcd"]), categories=("car",), point_segmentation=seg
    )
    with pytest.raises(ConversionError, match="16 bits"):
        semantickitti.write(ls, tmp_path / "sk")
    assert not (tmp_path / "sk").exists()


def test_lidarseg_bytes_tables_and_round_trip(tmp_path: Path) -> None:
    ls = painted()
    report = lidarseg.write(ls, tmp_path / "ls", label_map='{"moving car": 31}')
    entries = json.loads((tmp_path / "ls/v1.0-trainval/lidarseg.json").read_text())
    assert [e["file_id"] for e in entries] == ["0.pcd", "2.pcd"]
    # car 1, Road 2, traffic cone 3 (next free), moving car 31 (mapped), unpainted 0
    data0 = np.fromfile(tmp_path / "ls" / entries[0]["filename"], dtype=np.uint8)
    assert data0.tolist() == [1, 2, 0, 31]
    data1 = np.fromfile(tmp_path / "ls" / entries[1]["filename"], dtype=np.uint8)
    assert data1.tolist() == [3, 3]
    cats = json.loads((tmp_path / "ls/v1.0-trainval/category.json").read_text())
    assert [(c["name"], c["index"]) for c in cats] == [
        ("noise", 0), ("car", 1), ("Road", 2), ("traffic cone", 3), ("moving car", 31),
    ]  # fmt: skip
    assert entries[0]["token"] == lidarseg.token("ds1", "0.pcd")
    # the devkit counts lidarseg/<version>/*.bin and opens <dataroot>/<filename>
    assert entries[0]["filename"] == f"lidarseg/v1.0-trainval/{entries[0]['token']}_lidarseg.bin"
    colormap = json.loads((tmp_path / "ls/colormap.json").read_text())
    assert set(colormap) == {c["name"] for c in cats} and colormap["noise"] == [0, 0, 0]
    # both painted frames carry instance ids, which lidarseg cannot hold
    # their classes are written; only the instance ids are lost (a change, not a dropped label)
    assert sorted(i.file_id for i in report if i.action == "changed") == ["0.pcd", "2.pcd"]
    back = lidarseg.read(tmp_path / "ls")
    assert back.categories == CATS
    np.testing.assert_array_equal(back.point_segmentation.category, ls.point_segmentation.category)


def test_lidarseg_too_many_categories(tmp_path: Path) -> None:
    cats = tuple(f"c{i}" for i in range(256))
    seg = PointSegmentation.from_columns(frame=[0], offsets=[0, 1], category=[255])
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["0.pcd"]), categories=cats, point_segmentation=seg
    )
    with pytest.raises(ConversionError, match=r"1\.\.255"):
        lidarseg.write(ls, tmp_path / "ls")


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_sample_paint_counts(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    exp = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    semantickitti.write(ls, tmp_path / "sk", on_unsupported="drop")
    lidarseg.write(ls, tmp_path / "ls", on_unsupported="drop")
    names = yaml.safe_load((tmp_path / "sk/label_map.yaml").read_text())["labels"]
    entries = json.loads((tmp_path / "ls/v1.0-trainval/lidarseg.json").read_text())
    cats = {
        c["index"]: c["name"]
        for c in json.loads((tmp_path / "ls/v1.0-trainval/category.json").read_text())
    }
    for i, file_id in enumerate(exp["frame_order"]):
        want = {k: v for k, v in exp["frames"][file_id]["paint_counts"].items() if v}
        raw = np.fromfile(tmp_path / f"sk/sequences/00/labels/{i:06d}.label", dtype="<u4")
        assert len(raw) == exp["frame_sizes"][i]
        ids, counts = np.unique(raw & 0xFFFF, return_counts=True)
        got = {
            ("unpainted" if k == 0 else names[k]): int(n) for k, n in zip(ids, counts, strict=True)
        }
        assert got == want
        entry = next(e for e in entries if e["file_id"] == file_id)
        data = np.fromfile(tmp_path / "ls" / entry["filename"], dtype=np.uint8)
        ids, counts = np.unique(data, return_counts=True)
        got = {
            ("unpainted" if k == 0 else cats[k]): int(n) for k, n in zip(ids, counts, strict=True)
        }
        assert got == want
        # velodyne scans have the frame's points, in the LiDAR frame (within ~80 m)
        pts = np.fromfile(tmp_path / f"sk/sequences/00/velodyne/{i:06d}.bin", dtype="<f4")
        assert pts.reshape(-1, 4).shape[0] == exp["frame_sizes"][i]
        assert np.abs(pts.reshape(-1, 4)[:, :3]).max() < 100


def test_golden_files(tmp_path: Path) -> None:
    import deepen_export

    ls = deepen_export.read_labels(SAMPLE / "lidar_sequence")
    semantickitti.write(ls, tmp_path / "sk", on_unsupported="drop")
    lidarseg.write(ls, tmp_path / "ls", on_unsupported="drop")
    assert_same_tree(tmp_path / "sk", SAMPLE / "golden/semantickitti")
    assert_same_tree(tmp_path / "ls", SAMPLE / "golden/lidarseg")
    for back in (
        semantickitti.read(SAMPLE / "golden/semantickitti"),
        lidarseg.read(SAMPLE / "golden/lidarseg"),
    ):
        assert back.frames.file_id.tolist() == ["0000.pcd", "0001.pcd", "0002.pcd"]
        names = [back.categories[c] if c >= 0 else None for c in back.point_segmentation.category]
        orig = [ls.categories[c] if c >= 0 else None for c in ls.point_segmentation.category]
        assert names == orig


def test_golden_instance_bits() -> None:
    expected = json.loads((SAMPLE / "expected.json").read_text())["lidar_sequence"]
    for k, fid in enumerate(expected["frame_order"]):
        label = np.fromfile(
            SAMPLE / f"golden/semantickitti/sequences/00/labels/{k:06d}.label", np.uint32
        )
        ids, counts = np.unique(label >> 16, return_counts=True)
        want = {
            (0 if key == "unpainted" else int(key.split("/")[1])): n
            for key, n in expected["frames"][fid]["instance_counts"].items()
        }
        assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == want


def test_scans_without_pose_and_with_a_count_mismatch(tmp_path: Path) -> None:
    # frame a.pcd has a pose (translation only: points move by -t), b.pcd has none (written as
    # uploaded, reported) and 3 points for 2 point labels (an error entry); c.pcd has no scan
    frames = Frames.from_columns(
        file_id=["a.pcd", "b.pcd", "c.pcd"], sensor_id=["lidar"] * 3, index=[0, 1, 2]
    )
    seg = PointSegmentation.from_columns(
        frame=[0, 1, 2], offsets=[0, 2, 4, 5], category=[0, 0, 0, -1, 0]
    )
    pcs = PointClouds.from_columns(
        frame=[1, 0],
        offsets=[0, 3, 5],
        xyz=[[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 10, 10], [11, 12, 13]],
        intensity=[0.5, np.nan, 1.0, 2.0, 3.0],
    )
    poses = Poses.from_columns(frame=[0], position=[[10, 10, 10]], quat=[[0, 0, 0, 1]])
    ls = LabelSet(frames=frames, categories=("car",), point_segmentation=seg, pointclouds=pcs,
                  poses=poses)  # fmt: skip
    report = semantickitti.write(ls, tmp_path / "sk")
    scans = tmp_path / "sk/sequences/00/velodyne"
    assert sorted(p.name for p in scans.iterdir()) == ["000000.bin", "000001.bin"]
    a = np.fromfile(scans / "000000.bin", dtype="<f4").reshape(-1, 4)
    b = np.fromfile(scans / "000001.bin", dtype="<f4").reshape(-1, 4)
    assert a.tolist() == [[0, 0, 0, 2], [1, 2, 3, 3]]
    assert b.tolist() == [[1, 2, 3, 0.5], [4, 5, 6, 0], [7, 8, 9, 1]]
    entries = [(i.action, i.file_id, i.reason) for i in report if i.action in ("changed", "error")]
    assert entries == [
        ("changed", "b.pcd", "no device pose: points written in the frame they were uploaded in"),
        ("error", "b.pcd", "3 points but 2 point labels"),
    ]
    assert report.written == {"frames": 3, "points": 5, "scans": 2}
    frames_doc = json.loads((tmp_path / "sk/mapping.json").read_text())["frames"]
    assert [f["labelled"] for f in frames_doc] == [True, True, True]
