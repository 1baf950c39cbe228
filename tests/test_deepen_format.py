"""The ``deepen`` format: Deepen label JSON written from a LabelSet reads back as the same LabelSet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converters
import deepen_export
from converters import deepen
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Cuboids, Frames, LabelSet
from deepen_export.parse import LABEL_TYPES

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
LABEL_FILES = [
    SAMPLES / "image_dataset" / "labels.json",
    SAMPLES / "image_dataset" / "labels_by_file.json",
    SAMPLES / "image_dataset" / "all_labels.json",
    SAMPLES / "lidar_sequence" / "labels.json",
    *sorted((SAMPLES / "api").glob("labels_*.json")),
    # the bad files that still parse (their bad labels become issues); truncated.json does not
    *sorted(p for p in (SAMPLES / "bad").glob("*.json") if p.name != "truncated.json"),
]


@pytest.mark.parametrize("path", LABEL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_files_round_trip(path: Path, tmp_path: Path) -> None:
    first = deepen_export.read_labels(path)
    # labels that carry their dataset_id (labels_of_dataset_ids) keep it
    keep_ids = bool(set(first.frames.dataset_id.tolist()) - {""})
    report = deepen.write(first, tmp_path / "out", dataset_ids=keep_ids)
    again = deepen.read(tmp_path / "out" / deepen.LABELS)
    # the labels that could not be read are not written again: they are the input's issues,
    # which the report lists, and the labels read back are the same
    assert again.equals(first, check_issues=False) and not again.issues
    assert {(i.file_id, i.label_id) for i in first.issues} <= {
        (i.file_id, i.label_id) for i in report.issues
    }
    assert report.written["labels"] == len(first)
    # what was written is Deepen's documented shape, checked field by field (not by our reader)
    doc = json.loads((tmp_path / "out" / deepen.LABELS).read_text())
    for lab in doc["labels"]:
        assert {"file_id", "label_id", "label_type", "label_category_id"} <= set(lab)
        if lab["label_type"] == "box":
            assert len(lab["box"]) == 4 and lab["box"][2] >= 0 and lab["box"][3] >= 0
        if lab["label_type"] == "3d_bbox":
            assert set(lab["three_d_bbox"]) == {"cx", "cy", "cz", "l", "w", "h", "quaternion"}


def test_box_is_top_left_width_height(tmp_path: Path) -> None:
    labels = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], sensor_id=["sensor1"]),
        categories=("car",),
        boxes=Boxes.from_columns(
            frame=[0], category=[0], label_id=["car:7"], xyxy=[[10.0, 20.0, 40.0, 60.0]]
        ),
    )
    deepen.write(labels, tmp_path / "d")
    (lab,) = json.loads((tmp_path / "d" / "labels.json").read_text())["labels"]
    assert lab["box"] == [10.0, 20.0, 30.0, 40.0]
    assert lab["sensor_id"] == "sensor1" and lab["label_id"] == "car:7"
    assert lab["label_category_id"] == "car" and lab["label_type"] == "box"


def test_rot_z_on_request_and_tilted_boxes_reported(tmp_path: Path) -> None:
    half = np.sin(0.3 / 2), np.cos(0.3 / 2)
    cub = Cuboids.from_columns(
        frame=[0, 0],
        category=[0, 0],
        label_id=["car:1", "car:2"],
        center=[[81526.5, 50383.4, 34.9], [1, 2, 3]],
        size=[[4.9, 2.1, 1.5], [1, 1, 1]],
        quat=[[0, 0, half[0], half[1]], [half[0], 0, 0, half[1]]],  # yaw 0.3; roll 0.3
    )
    labels = LabelSet(
        frames=Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"]),
        categories=("car",),
        cuboids=cub,
    )
    report = deepen.write(labels, tmp_path / "d", rot_z=True)
    labs = json.loads((tmp_path / "d" / "labels.json").read_text())["labels"]
    assert labs[0]["three_d_bbox"]["rot_z"] == pytest.approx(0.3)
    assert "quaternion" not in labs[0]["three_d_bbox"]
    assert labs[0]["three_d_bbox"]["cx"] == 81526.5
    assert [(i.action, i.label_id) for i in report] == [("changed", "car:2")]


def test_cuboids_outside_the_world_frame_are_refused(tmp_path: Path) -> None:
    labels = LabelSet(
        frames=Frames.from_columns(file_id=["0.pcd"]),
        categories=("car",),
        cuboids=Cuboids.from_columns(
            frame=[0],
            category=[0],
            label_id=["car:1"],
            center=[[1, 2, 3]],
            size=[[1, 1, 1]],
            quat=[[0, 0, 0, 1]],
            frame_of_reference="camera",
        ),
    )
    with pytest.raises(ConversionError, match="in the camera frame and 1 have no camera pose"):
        deepen.write(labels, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_by_file_layout_keeps_frames_without_labels(tmp_path: Path) -> None:
    src = {
        "labels": {
            "a.png": [
                {
                    "file_id": "a.png",
                    "label_id": "car:1",
                    "label_category_id": "car",
                    "label_type": "box",
                    "box": [0, 0, 1, 1],
                }
            ],
            "b.png": [],
        }
    }
    first = deepen_export.read_labels(src)
    listed = deepen.write(first, tmp_path / "list")
    assert [(i.action, i.file_id) for i in listed] == [("skipped", "b.png")]
    deepen.write(first, tmp_path / "by", layout="by_file")
    assert deepen.read(tmp_path / "by" / "labels.json").equals(first)


def test_registered_and_dispatched(tmp_path: Path) -> None:
    fmt = converters.get_format("deepen")
    assert fmt.readable and "cuboids" in fmt.kinds and "point_segmentation" not in fmt.kinds
    labels = deepen_export.read_labels(SAMPLES / "lidar_sequence")
    with pytest.raises(ConversionError, match="point_segmentation"):
        converters.write(labels, tmp_path / "x", "deepen", on_unsupported="raise")
    report = converters.write(labels, tmp_path / "y", "deepen", on_unsupported="drop")
    back = converters.read(tmp_path / "y" / "labels.json", "deepen")
    assert report.written["labels"] == len(back) == len(labels) - len(labels.point_segmentation)
    for kind in ("cuboids", "boxes", "polylines3d"):
        a, b = labels.table(kind), back.table(kind)
        assert a.label_id.tolist() == b.label_id.tolist()
    np.testing.assert_array_equal(labels.cuboids.center, back.cuboids.center)


# -- hypothesis: label sets of every kind ------------------------------------------------------

_coord = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_pt2 = st.lists(_coord, min_size=2, max_size=2)
_pt3 = st.lists(_coord, min_size=3, max_size=3)
_attr = st.one_of(st.none(), st.text(max_size=5), st.booleans(), st.integers(-5, 5), _coord)


@st.composite
def _label(draw: Any, i: int) -> dict[str, Any]:
    lt = draw(st.sampled_from(LABEL_TYPES))
    cat = draw(st.sampled_from(["car", "bus", "lane", "Ünïcode cat"]))
    lab: dict[str, Any] = {
        "file_id": draw(st.sampled_from(["0.pcd", "1.pcd", "10.pcd", "a/b.png"])),
        "sensor_id": draw(st.sampled_from(["", "lidar", "camera_0", "sensor1"])),
        "label_id": f"{cat}:{draw(st.integers(0, 40))}" if draw(st.booleans()) else f"x{i}",
        "label_type": lt,
        "label_category_id": cat,
        "attributes": draw(st.dictionaries(st.sampled_from(["a", "b", "ü"]), _attr, max_size=3)),
    }
    if draw(st.booleans()):
        lab.update(stage_id="QA", version=draw(st.integers(0, 9)), create_time_millis=17e11)
    rings2 = st.lists(st.lists(_pt2, min_size=1, max_size=5), min_size=1, max_size=3)
    rings3 = st.lists(st.lists(_pt3, min_size=1, max_size=4), min_size=1, max_size=3)
    if lt == "box":
        # Deepen's form: width and height >= 0 (a negative one is reordered, with an issue)
        size = st.floats(0, 1e5, allow_nan=False)
        lab["box"] = [draw(_coord), draw(_coord), draw(size), draw(size)]
    elif lt in ("polygon", "lane", "polyline"):
        lab["polygons"] = draw(rings2)
    elif lt == "point":
        lab["points"] = draw(st.lists(_pt2, min_size=1, max_size=4))
    elif lt == "3d_bbox":
        q = draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(_unit))
        lab["three_d_bbox"] = {
            **dict(zip(("cx", "cy", "cz"), draw(_pt3), strict=True)),
            **dict(zip("lwh", draw(st.lists(st.floats(0.01, 50), min_size=3, max_size=3)), strict=True)),
            "quaternion": dict(zip("xyzw", q, strict=True)),
        }  # fmt: skip
    elif lt == "3d_polyline":
        lab["three_d_polyline"] = draw(rings3)
    elif lt == "3d_polygon":
        lab["three_d_polygon"] = draw(rings3)
    elif lt == "3d_point":
        lab["three_d_point"] = draw(st.lists(_pt3, min_size=1, max_size=3))
    return lab


def _unit(q: list[float]) -> bool:
    return float(np.linalg.norm(q)) > 0.1


@st.composite
def _label_sets(draw: Any) -> LabelSet:
    n = draw(st.integers(0, 12))
    labs = [draw(_label(i)) for i in range(n)]
    return deepen_export.read_labels({"labels": labs})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(labels=_label_sets(), rot=st.booleans())
def test_generated_label_sets_round_trip(labels: LabelSet, rot: bool, tmp_path: Path) -> None:
    out = tmp_path / f"out{rot}"
    deepen.write(labels, out, layout="by_file" if rot else "list")
    again = deepen.read(out / deepen.LABELS)
    if rot:  # by_file groups labels per file: same labels, possibly in another order per kind
        assert len(again) == len(labels) and again.frames.equals(labels.frames)
        assert sorted(again.boxes.label_id.tolist()) == sorted(labels.boxes.label_id.tolist())
    else:
        # the first read's repairs (a quaternion normalised...) are not needed a second time
        assert again.equals(labels, check_issues=False)
    assert not again.issues
