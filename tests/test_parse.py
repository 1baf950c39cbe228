"""Parsing Deepen responses: every documented shape, every label type, and bad input.

Expected values are read off the JSON written in each test (by hand), never from the parser.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest

import deepen_export
from deepen_export.errors import ParseError
from deepen_export.model import FrameStatus
from deepen_export.parse import (
    _columnar,
    _scan,
    iter_label_batches,
    parse_frames_zip,
    parse_labels,
    parse_paint_labels,
    parse_snapshot,
)


def _label(**kw):
    base = {
        "file_id": "a.png",
        "label_category_id": "car",
        "label_id": "car:1",
        "label_type": "box",
        "stage_id": "QA",
        "label_set_id": "default",
        "labeller_email": "l@example.com",
        "sensor_id": "sensor1",
        "create_time_millis": 1589965718592,
        "update_time_millis": 1589965718600,
        "version": 3,
        "attributes": {"occluded": "no"},
        "box": [366, 87, 174, 116],
    }
    base.update(kw)
    return base


DOC_BOX = _label()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda labs: {"labels": labs},
        lambda labs: {"all_labels": labs},
        lambda labs: {"labels": {"a.png": labs}},
        lambda labs: labs,
    ],
    ids=["labels-list", "all_labels", "by-file", "bare-list"],
)
def test_every_response_shape_gives_the_same_box(wrap):
    ls = deepen_export.read_labels(wrap([DOC_BOX]))
    # Deepen box [366, 87, 174, 116] = x, y, w, h -> xyxy [366, 87, 540, 203]
    assert ls.boxes.xyxy.tolist() == [[366.0, 87.0, 540.0, 203.0]]
    assert ls.categories == ("car",)
    assert ls.boxes.track.tolist() == [1]
    assert ls.boxes.stage.tolist() == ["QA"]
    assert ls.boxes.labeller.tolist() == ["l@example.com"]
    assert ls.boxes.create_time.tolist() == [1589965718592]
    assert ls.boxes.version.tolist() == [3]
    assert ls.boxes.attributes["occluded"].tolist() == ["no"]
    assert ls.frames.file_id.tolist() == ["a.png"]
    assert ls.frames.sensor_id.tolist() == ["sensor1"]
    assert ls.frames.status.tolist() == [FrameStatus.LABELLED]
    assert len(ls) == 1 and not ls.issues


def test_by_file_response_keeps_files_without_labels_and_fills_file_id():
    lab = {k: v for k, v in DOC_BOX.items() if k != "file_id"}
    ls = parse_labels({"labels": {"b.png": [lab], "a.png": []}})
    assert sorted(ls.frames.file_id.tolist()) == ["a.png", "b.png"]
    assert ls.frames.file_id[ls.boxes.frame[0]] == "b.png"
    empty = ls.frames.file_id.tolist().index("a.png")
    assert ls.frames.status[empty] == FrameStatus.UNKNOWN


def test_files_list_gives_review_status():
    files = [
        {"file_id": "a.png", "sensors": ["sensor1"]},
        {"file_id": "b.png", "sensors": ["sensor1"], "status": "done"},
        {"file_id": "c.png", "sensors": ["sensor1"], "status": "waiting"},
    ]
    ls = parse_labels({"labels": [DOC_BOX]}, files=files)
    st = dict(zip(ls.frames.file_id.tolist(), ls.frames.status.tolist(), strict=True))
    assert st == {
        "a.png": FrameStatus.LABELLED,
        "b.png": FrameStatus.EMPTY,
        "c.png": FrameStatus.UNLABELLED,
    }
    assert ls.frames.index.tolist() == [0, 1, 2]


def test_multi_dataset_labels_carry_dataset_id():
    labs = [_label(dataset_id="ds1"), _label(dataset_id="ds2", label_id="car:2")]
    ls = parse_labels({"labels": labs})
    assert ls.frames.dataset_id.tolist() == ["ds1", "ds2"]
    assert ls.frames.file_id.tolist() == ["a.png", "a.png"]
    assert ls.boxes.frame.tolist() == [0, 1]


def test_all_label_types():
    labs = [
        _label(
            label_type="polygon",
            label_id="road:1",
            label_category_id="road",
            box=None,
            polygons=[[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[2, 2], [4, 2], [4, 4]]],
        ),
        _label(
            label_type="lane",
            label_id="lane:1",
            label_category_id="lane",
            box=None,
            polygons=[[[1, 50], [3, 30], [5, 10]]],
        ),
        _label(
            label_type="point", label_id="kp:1", label_category_id="kp", box=None, point=[7.5, 8.5]
        ),
        _label(
            label_type="point",
            label_id="kp:2",
            label_category_id="kp",
            box=None,
            points=[[1, 2], {"x": 3, "y": 4}],
        ),
        _label(label_type="scene", label_id="day:1", label_category_id="day", box=None),
        _label(
            label_type="3d_bbox",
            label_id="car: 4",
            file_id="0.pcd",
            sensor_id="lidar",
            box=None,
            three_d_bbox={
                "cx": 81526.54828555016,
                "cy": 50383.480369180215,
                "cz": 34.93298238813448,
                "h": 1.5,
                "l": 4.9,
                "w": 2.1,
                "quaternion": {"x": 0, "y": 0, "z": 0.7522213131298905, "w": 0.6589105372303157},
            },
        ),
        _label(
            label_type="3d_bbox",
            label_id="car:5",
            file_id="0.pcd",
            sensor_id="lidar",
            box=None,
            three_d_bbox={
                "cx": 1,
                "cy": 2,
                "cz": 3,
                "h": 2.25,
                "l": 2.25,
                "w": 2.25,
                "rot_z": np.pi / 2,
            },
        ),
        _label(
            label_type="3d_polyline",
            label_id="curb:1",
            label_category_id="curb",
            file_id="0.pcd",
            sensor_id="lidar",
            box=None,
            polyline=[{"x": 1, "y": 2, "z": 3}, {"x": 4, "y": 5, "z": 6}],
        ),
        _label(
            label_type="3d_polygon",
            label_id="zone:1",
            label_category_id="zone",
            file_id="0.pcd",
            sensor_id="lidar",
            box=None,
            points=[[0, 0, 0], [1, 0, 0], [1, 1, 0]],
        ),
        _label(
            label_type="3d_point",
            label_id="pole:1",
            label_category_id="pole",
            file_id="0.pcd",
            sensor_id="lidar",
            box=None,
            point={"x": 9, "y": 8, "z": 7},
        ),
    ]
    ls = parse_labels({"labels": labs})
    assert not ls.issues, ls.issues
    # polygon: closing vertex dropped (rings are kept open), two rings
    assert ls.polygons.ring_offsets.tolist() == [0, 4, 7]
    assert ls.polygons.coords[:4].tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
    assert ls.polylines.coords.tolist() == [[1, 50], [3, 30], [5, 10]]
    assert ls.polylines.label_type.tolist() == ["lane"]
    assert ls.points.offsets.tolist() == [0, 1, 3]
    assert ls.points.coords.tolist() == [[7.5, 8.5], [1, 2], [3, 4]]
    assert len(ls.scenes) == 1
    # big world coordinates survive as float64, to the last digit of the JSON
    assert ls.cuboids.center[0].tolist() == [
        81526.54828555016,
        50383.480369180215,
        34.93298238813448,
    ]
    assert ls.cuboids.size[0].tolist() == [4.9, 2.1, 1.5]
    assert ls.cuboids.track.tolist() == [4, 5]
    # rot_z = pi/2 -> quaternion (0, 0, sin(pi/4), cos(pi/4))
    np.testing.assert_allclose(ls.cuboids.quat[1], [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)
    assert ls.polylines3d.coords.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert ls.polygons3d.coords.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert ls.points3d.coords.tolist() == [[9, 8, 7]]
    assert len(ls) == 10


def test_attributes_missing_null_unicode_and_nested():
    labs = [
        _label(label_id="car:1", attributes=None),
        {k: v for k, v in _label(label_id="car:2").items() if k != "attributes"},
        _label(
            label_id="car:3",
            attributes={"colour": "rouge vif — 赤", "n": 3, "flag": True, "nested": {"a": [1, 2]}},
        ),
    ]
    ls = parse_labels({"labels": labs})
    a = ls.boxes.attributes
    assert a["colour"].tolist() == [None, None, "rouge vif — 赤"]
    assert a["n"].tolist() == [None, None, 3]
    assert a["flag"].tolist() == [None, None, True]
    assert a["nested"].tolist() == [None, None, '{"a": [1, 2]}']
    assert ls.boxes.attribute_records()[2]["n"] == 3


def test_profile_order_keeps_unused_categories_in_place():
    ls = parse_labels(
        {"labels": [_label(label_category_id="zebra"), _label(label_category_id="bus")]},
        categories=["truck", "bus"],
    )
    assert ls.categories == ("truck", "bus", "zebra")
    assert [ls.categories[c] for c in ls.boxes.category] == ["zebra", "bus"]


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        (_label(label_type="hologram"), "unknown label_type 'hologram'"),
        (_label(box=None), "bad box geometry: no geometry: 'box' is missing"),
        (_label(box=[1, 2, 3]), "'box' must be [x, y, width, height]"),
        (_label(box=[float("nan"), 0, 1, 1]), "non-finite coordinate"),
        (
            _label(label_type="polygon", box=None, polygons=[[[0, 0], [float("nan"), 1], [1, 1]]]),
            "non-finite",
        ),
        (
            _label(
                label_type="3d_bbox",
                box=None,
                three_d_bbox={"cx": 0, "cy": 0, "cz": 0, "l": 1, "w": 1, "h": 1},
            ),
            "neither 'quaternion' nor 'rot_z'",
        ),
        (_label(file_id=None), "label has no file_id"),
        (_label(label_category_id=None), "no label_category_id"),
    ],
)
def test_bad_labels_are_reported_with_file_and_label_id(label, reason):
    good = _label(label_id="car:99", file_id="ok.png")
    body = json.dumps({"labels": [label, good]}).encode()  # NaN is written as the NaN token
    ls = parse_labels(body)
    assert len(ls.boxes) == 1 and ls.boxes.label_id.tolist() == ["car:99"]
    assert len(ls.issues) == 1
    issue = ls.issues[0]
    assert reason in issue.reason
    assert issue.action == "dropped"
    assert issue.label_id == (label.get("label_id") or None)
    assert issue.file_id == (label.get("file_id") or None)


def test_negative_box_size_is_repaired_and_reported():
    ls = parse_labels({"labels": [_label(box=[10, 10, -4, 5])]})
    assert ls.boxes.xyxy.tolist() == [[6, 10, 10, 15]]
    assert ls.issues[0].action == "repaired"


def test_unnormalised_quaternion_is_normalised_and_reported():
    lab = _label(
        label_type="3d_bbox",
        box=None,
        three_d_bbox={
            "cx": 0,
            "cy": 0,
            "cz": 0,
            "l": 1,
            "w": 1,
            "h": 1,
            "quaternion": {"x": 0, "y": 0, "z": 0, "w": 2},
        },
    )
    ls = parse_labels({"labels": [lab]})
    assert ls.cuboids.quat.tolist() == [[0, 0, 0, 1]]
    assert ls.issues[0].action == "repaired" and "normalised" in ls.issues[0].reason


def test_truncated_json_names_the_file(tmp_path):
    p = tmp_path / "labels.json"
    p.write_bytes(orjson.dumps({"labels": [DOC_BOX] * 3})[:-40])
    with pytest.raises(ParseError, match=r"labels.json: not valid JSON.*truncated"):
        deepen_export.read_labels(p)


def test_wrong_top_level_shape(tmp_path):
    with pytest.raises(ParseError, match="expected a JSON object with 'labels'"):
        parse_labels({"data": []})


# -- paint labels ----------------------------------------------------------------------------


def test_paint_labels_compressed_and_raw_agree():
    body = bytes([0, 1, 2, 2, 1, 0, 0])
    meta = {"format": "pako_compressed", "paint_categories": ["car", "road"], "frame_sizes": [4, 3]}
    a = parse_paint_labels(zlib.compress(body), meta)
    b = parse_paint_labels(body, json.dumps(meta))
    assert a.category.tolist() == b.category.tolist() == list(body)
    assert a.frame_sizes == (4, 3)
    assert a.instance is None


def test_instance_paint_uses_three_bytes_per_point():
    # 2 points: categories 2, 1; label ids 1024 (lo 0, hi 4) and 7 (lo 7, hi 0)
    body = bytes([2, 1, 0, 7, 4, 0])
    p = parse_paint_labels(body, {"paint_categories": ["a", "b"], "frame_sizes": [2]})
    assert p.category.tolist() == [2, 1]
    assert p.instance is not None and p.instance.tolist() == [1024, 7]


def test_paint_size_mismatch_is_a_clear_error():
    with pytest.raises(
        ParseError, match=r"x.dpn: paint labels hold 5 bytes but frame_sizes add up to 7 points"
    ):
        parse_paint_labels(
            bytes(5), {"paint_categories": ["a"], "frame_sizes": [4, 3]}, path="x.dpn"
        )
    with pytest.raises(ParseError, match="beyond the 1 paint_categories"):
        parse_paint_labels(bytes([0, 2]), {"paint_categories": ["a"], "frame_sizes": [2]})


# -- frames zip ------------------------------------------------------------------------------


def _frame_json(x0: float) -> dict:
    return {
        "timestamp": 1.5,
        "device_position": {"x": 81500.25, "y": 50300.5, "z": 35.0},
        "device_heading": {"x": 0, "y": 0, "z": 0, "w": 1},
        "points": [{"x": x0, "y": 1, "z": 2, "i": 7}, {"x": x0 + 1, "y": 1, "z": 2, "i": 8}],
        "images": [
            {
                "fx": 100,
                "fy": 101,
                "cx": 50,
                "cy": 40,
                "image_url": "images/0.png",
                "camera_model": "pinhole",
                "position": {"x": 1, "y": 2, "z": 3},
                "heading": {"x": 0, "y": 0, "z": 0, "w": 1},
                "k1": 0.1,
            }
        ],
    }


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def test_frames_zip_natural_order_poses_and_cameras():
    data = parse_frames_zip(
        _zip(
            {
                "10.json": json.dumps(_frame_json(10)).encode(),
                "2.json": json.dumps(_frame_json(2)).encode(),
            }
        )
    )
    assert data.names == ["2.json", "10.json"]
    assert data.poses[0]["position"] == [81500.25, 50300.5, 35.0]
    assert data.points[1][:, 0].tolist() == [10, 11]
    assert data.intensity[0].tolist() == [7, 8]
    cam = data.cameras[0][0]
    assert (cam["sensor_id"], cam["fx"], cam["cy"], cam["distortion"][0]) == (
        "camera_0",
        100.0,
        40.0,
        0.1,
    )


def test_frames_zip_entries_escaping_the_folder_are_reported_not_read(tmp_path):
    z = _zip(
        {
            "0.json": json.dumps(_frame_json(0)).encode(),
            "../escape.json": b"{}",
            "/tmp/abs.json": b"{}",
        }
    )
    data = parse_frames_zip(z)
    assert data.names == ["0.json"]
    reasons = sorted(i.file_id for i in data.issues)
    assert reasons == ["../escape.json", "/tmp/abs.json"]
    assert all("outside the archive folder" in i.reason for i in data.issues)
    assert not (tmp_path.parent / "escape.json").exists()


def test_snapshot_with_frames_paint_and_profile(tmp_path):
    labs = {
        "0.pcd": [
            _label(
                file_id="0.pcd",
                sensor_id="lidar",
                label_type="3d_bbox",
                box=None,
                three_d_bbox={
                    "cx": 81501,
                    "cy": 50301,
                    "cz": 35,
                    "l": 4,
                    "w": 2,
                    "h": 1.5,
                    "rot_z": 0,
                },
            )
        ],
        "1.pcd": [],
    }
    (tmp_path / "labels.json").write_text(json.dumps({"labels": labs}))
    (tmp_path / "manifest.json").write_text(
        json.dumps({"dataset_id": "ds", "label_set": "default"})
    )
    (tmp_path / "dataset.json").write_text(
        json.dumps({"dataset_id": "ds", "dataset_type": "3d", "frame_sizes": [2, 2]})
    )
    (tmp_path / "profile.json").write_text(
        json.dumps({"features": {"3d_bbox": {"label_category_ids": ["truck", "car"]}}})
    )
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "dataset.zip").write_bytes(
        _zip(
            {
                "0.json": json.dumps(_frame_json(0)).encode(),
                "1.json": json.dumps(_frame_json(5)).encode(),
            }
        )
    )
    (tmp_path / "paint").mkdir()
    (tmp_path / "paint" / "3d_point.dpn").write_bytes(zlib.compress(bytes([1, 0, 2, 2])))
    (tmp_path / "paint" / "3d_point.json").write_text(
        json.dumps({"paint_categories": ["car", "road"], "frame_sizes": [2, 2]})
    )
    ls = parse_snapshot(tmp_path)
    assert ls.categories == ("truck", "car", "road")
    assert ls.frames.file_id.tolist() == ["0.pcd", "1.pcd"]
    assert ls.frames.index.tolist() == [0, 1]
    assert ls.poses.frame.tolist() == [0, 1]
    assert ls.poses.position[0].tolist() == [81500.25, 50300.5, 35.0]
    assert ls.cameras.sensor_id.tolist() == ["camera_0", "camera_0"]
    assert ls.pointclouds.offsets.tolist() == [0, 2, 4]
    seg = ls.point_segmentation
    assert seg.frame.tolist() == [0, 1]
    assert [ls.categories[c] if c >= 0 else None for c in seg.category] == [
        "car",
        None,
        "road",
        "road",
    ]
    assert ls.meta["dataset_id"] == "ds"


# -- the fast path agrees with the general path ------------------------------------------------


@pytest.mark.parametrize("form", ["list", "dict"])
@pytest.mark.parametrize("indent", [False, True])
@pytest.mark.parametrize("mix", [None, {"polygon": 1.0}])
def test_fast_path_equals_general_path(tmp_path, form, indent, mix):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from generate import generate

    obj = generate(3000, 120, form=form, seed=7, mix=mix)
    # strings with braces, quotes and escapes must not confuse the scanner
    first = next(iter(obj["labels"].values()))[0] if form == "dict" else obj["labels"][0]
    first["attributes"]["note"] = 'a "quoted" {brace} [bracket] \\ back\\\\slash'
    p = tmp_path / "labels.json"
    p.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0))
    fast = _columnar.try_parse_file(p)
    assert fast is not None
    slow = parse_labels(p, fast=False)
    assert fast.equals(slow)
    assert len(fast) == 3000


def test_fast_path_declines_what_it_cannot_take(tmp_path):
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"labels": [_label(label_type="point", box=None, point=[1, 2])]}))
    assert _columnar.try_parse_file(p) is None
    assert len(parse_labels(p)) == 1


def test_iter_label_batches_covers_every_label(tmp_path):
    obj = {
        "labels": {f"{i}.png": [_label(file_id=f"{i}.png", label_id=f"car:{i}")] for i in range(7)}
        | {"empty.png": []}
    }
    p = tmp_path / "labels.json"
    p.write_text(json.dumps(obj))
    batches = list(iter_label_batches(p, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    ids = [x for b in batches for x in b.boxes.label_id.tolist()]
    assert ids == [f"car:{i}" for i in range(7)]
    assert "empty.png" in batches[-1].frames.file_id.tolist()


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_scanner_state_carries_across_tiny_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(_scan, "_BLOCK", block)
    tricky = ['{"}', "\\\\", 'a\\"}{', '\\\\\\"[', "x" * 50 + "\\\\", "plain"]
    labs = {
        f"{i}.png": [
            _label(file_id=f"{i}.png", label_id=f"car:{i}", attributes={"note": t})
            for _ in range(2)
        ]
        for i, t in enumerate(tricky)
    }
    labs["empty.png"] = []
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"labels": labs}, indent=1))
    ref = parse_labels(p, fast=False)
    fast = _columnar.try_parse_file(p)
    assert fast is not None and fast.equals(ref)
    assert fast.boxes.attributes["note"].tolist() == [t for t in tricky for _ in range(2)]
    batches = list(iter_label_batches(p, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert [x for b in batches for x in b.boxes.attributes["note"].tolist()] == [
        t for t in tricky for _ in range(2)
    ]
    assert "empty.png" in batches[-1].frames.file_id.tolist()


def test_every_truncation_is_a_parse_error_never_fewer_labels(tmp_path):
    whole = (
        Path(__file__).parents[1] / "sample_data" / "lidar_sequence" / "labels.json"
    ).read_bytes()
    body = whole.rstrip()
    p = tmp_path / "labels.json"
    for cut in range(1, len(body), 5):
        p.write_bytes(body[:cut])
        with pytest.raises(ParseError, match=r"labels.json: not valid"):
            parse_labels(p)
    p.write_bytes(body + b" xyz")
    with pytest.raises(ParseError):
        parse_labels(p)
    p.write_bytes(body + b"\n\n")
    assert len(parse_labels(p)) == len(parse_labels(whole))


def test_truncated_stream_is_a_parse_error(tmp_path):
    body = (
        Path(__file__).parents[1] / "sample_data" / "lidar_sequence" / "labels.json"
    ).read_bytes()
    p = tmp_path / "labels.json"
    p.write_bytes(body[: len(body) // 2])
    with pytest.raises(ParseError, match="cut short"):
        list(iter_label_batches(p, batch_size=2))


@pytest.mark.parametrize(
    "body",
    [
        b'{"labels": {"a.png": [LAB1], "a.png": [LAB2]}}',  # a key twice: JSON's last one wins
        b'{"labels": [LABS]}',  # box numbers written as strings: dropped with an issue
    ],
)
def test_fast_and_general_paths_agree_on_odd_input(tmp_path, body):
    lab1 = json.dumps(_label(label_id="car:1")).encode()
    lab2 = json.dumps(_label(label_id="car:2")).encode()
    labs = json.dumps(_label(label_id="car:3", box=["1", "2", "3", "4"])).encode()
    p = tmp_path / "labels.json"
    p.write_bytes(body.replace(b"LAB1", lab1).replace(b"LAB2", lab2).replace(b"LABS", labs))
    fast, slow = parse_labels(p), parse_labels(p, fast=False)
    assert fast.equals(slow)
    assert fast.boxes.label_id.tolist() == slow.boxes.label_id.tolist()
    assert [i.reason for i in fast.issues] == [i.reason for i in slow.issues]


def test_bad_utf8_names_the_file(tmp_path):
    p = tmp_path / "labels.json"
    p.write_bytes(
        json.dumps({"labels": [_label(label_id="café:1")]}, ensure_ascii=False).encode()[:-60]
        + b"\xc3"
    )
    with pytest.raises(ParseError, match=r"labels.json: not valid"):
        parse_labels(p)


# -- the batched reading: a few cuts between labels, Arrow reads the rest ----------------------

TRICKY = [
    '"},{"file_id": "x.png"}',  # a label boundary inside a string, escaped quotes around it
    "ends in a backslash \\",
    'two \\\\ then },{ and a quote \\"',
    "},{",
    "{[}]",
    "plain",
]


def _tricky_labels(n: int) -> list[dict]:
    out = []
    for i in range(n):
        lab = _label(file_id=f"{i % 7}.png", label_id=f"car:{i}")
        lab["attributes"] = {"note": TRICKY[i % len(TRICKY)]}
        # a list of objects the parser ignores: a "}, {" one level deeper than the labels
        lab["extra"] = [{"a": i}, {"b": [{"c": 1}, {"d": 2}]}]
        out.append(lab)
    return out


@pytest.mark.parametrize("piece", [64, 300, 4096, 1 << 21])
@pytest.mark.parametrize("part", [1, 5000, 1 << 26])
@pytest.mark.parametrize("indent", [False, True])
def test_batched_lines_cut_only_between_labels(tmp_path, monkeypatch, piece, part, indent):
    monkeypatch.setattr(_scan, "_PIECE", piece)
    monkeypatch.setattr(_scan, "_PART", part)  # Arrow reads each part, the tables are joined
    labs = _tricky_labels(60)
    p = tmp_path / "labels.json"
    p.write_bytes(orjson.dumps({"labels": labs}, option=orjson.OPT_INDENT_2 if indent else 0))
    stream = _scan.open_lines(p)
    assert stream is not None
    body = b"".join(iter(stream.next_part, None)).splitlines()
    stream.close()
    assert len(body) == stream.lines and not stream.bad
    n_lines = stream.lines
    # every line is one JSON object holding whole labels, together the labels in order
    got = [lab for line in body for lab in json.loads(line)["l"]]
    assert got == labs
    if piece < 4096:
        assert n_lines > 1
    table = _scan.read_batched(p)
    assert table is not None and table.num_rows == 60
    fast = _columnar.try_parse_file(p)
    slow = parse_labels(p, fast=False)
    assert fast is not None and fast.equals(slow)
    assert fast.boxes.attributes["note"].tolist() == [t["attributes"]["note"] for t in labs]


@pytest.mark.parametrize(
    "body",
    [
        b'{"labels": [LAB, LAB]} x',  # something after the document
        b'{"labels": [LAB, LAB], "more": [LAB]}',  # a second key after the labels
        b'{"labels": [LAB, LAB], "labels": [LAB]}',  # the key twice
        b'{"labels": [LAB, null, LAB]}',
        b'{"labels": [null, LAB, LAB]}',
        b'{"labels": [LAB, 5, LAB]}',
        b'{"labels": [LAB, [LAB], LAB]}',
        b'{"labels": [LAB, LAB,]}',  # a trailing comma
        b'{"labels": [LAB,, LAB]}',
        b'{"labels": [LAB\x0c, LAB]}',  # a form feed is not JSON whitespace
        b'{"labels": []}',
    ],
)
@pytest.mark.parametrize("piece", [8, 64, 1 << 21])
def test_batched_lines_never_change_the_answer(tmp_path, monkeypatch, body, piece):
    monkeypatch.setattr(_scan, "_PIECE", piece)
    monkeypatch.setattr(_scan, "_PART", piece)
    p = tmp_path / "labels.json"
    p.write_bytes(body.replace(b"LAB", json.dumps(_label()).encode()))
    out = []
    for fast in (True, False):
        try:
            ls = parse_labels(p, fast=fast)
            out.append((ls, [i.reason for i in ls.issues]))
        except ParseError as exc:
            out.append((str(exc), None))
    assert out[0][0] == out[1][0]
    assert out[0][1] == out[1][1]


def test_a_plain_labels_array_never_needs_the_per_label_scan(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from generate import generate

    def refuse(path):
        raise AssertionError("the per-label scan was used")

    p = tmp_path / "labels.json"
    obj = generate(2000, 50, form="list", seed=3, mix={"box": 0.4, "polygon": 0.4, "lane": 0.2})
    p.write_bytes(orjson.dumps(obj))
    slow = parse_labels(p, fast=False)
    monkeypatch.setattr(_columnar, "_whole_file", refuse)
    for piece, part in [(1 << 21, 1 << 26), (500, 20_000)]:
        monkeypatch.setattr(_scan, "_PIECE", piece)
        monkeypatch.setattr(_scan, "_PART", part)
        fast = _columnar.try_parse_file(p)
        assert fast is not None and fast.equals(slow)


@pytest.mark.parametrize("field", ["box", "attributes", "version", "sensor_id"])
def test_parts_of_different_types_agree_with_the_general_path(tmp_path, monkeypatch, field):
    # the first parts see integers (or a string), later ones floats (or a number): Arrow's
    # promotion joins them as one read would, or the file goes another way; never a new answer
    early = {"box": [366, 87, 174, 116], "attributes": {"score": 1}, "version": 3, "sensor_id": "s"}
    late = {"box": [366.5, 87, 174, 116.25], "attributes": {"score": 0.5}, "version": 3.0}
    late["sensor_id"] = 7
    labs = [_label(label_id=f"car:{i}", box=[366.5, 87, 174, 116.25]) for i in range(40)]
    for i, lab in enumerate(labs):
        lab[field] = (early if i < 20 else late)[field]
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"labels": labs}))
    monkeypatch.setattr(_scan, "_PIECE", 300)
    monkeypatch.setattr(_scan, "_PART", 2000)
    fast, slow = parse_labels(p), parse_labels(p, fast=False)
    assert fast.equals(slow)
    assert fast.boxes.xyxy[20].tolist() == [366.5, 87.0, 540.5, 203.25]
    if field == "box":  # numbers only: promoted, no other reading needed
        assert _scan.read_batched(p) is not None
