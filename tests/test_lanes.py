"""TuSimple and CULane writers and readers; expected values worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import deepen_export
from converters import culane, tusimple
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet, Polylines
from tests._golden import assert_same_tree

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

# Sample image dataset lanes (sample_data/README.md §3):
#   lane:1 in 000001.png (64 x 48): (5,47) (15,30) (25,15) (30,5), inside the image.
#   lane:2 in inner_kitty/000059.png (80 x 60): (-5,55) (20,40) (60,20) (90,-3); clipped to the
#     image: (-5,55)->(20,40) meets x = 0 at t = 5/25 -> y = 55 - 0.2 * 15 = 52;
#     (60,20)->(90,-3) meets x = 80 at t = 20/30 -> y = 20 - 23 * 2/3 = 4.6667
#     -> (0,52) (20,40) (60,20) (80,4.6667).
# TuSimple default rows: start = ceil(H * 160/720 / 10) * 10: H 48 -> ceil(1.067) = 2 -> 20, 30, 40;
#   H 60 -> ceil(1.333) = 2 -> 20, 30, 40, 50.
#   lane:1: y 20 on (15,30)-(25,15): t = 10/15 -> x = 21.67 -> 22; y 30 -> 15;
#           y 40 on (5,47)-(15,30): t = 7/17 -> x = 9.12 -> 9
#   lane:2: y 20 -> 60 (vertex); y 30 -> 40; y 40 -> 20 (vertex); y 50: t = 2/12 -> 3.33 -> 3
# Images in the dataset's sequence order (files.json), as COCO and the other 2D formats list them.
TUSIMPLE_SAMPLE = [
    {"lanes": [[22, 15, 9]], "h_samples": [20, 30, 40], "raw_file": "sensor1/000001.png"},
    {"lanes": [], "h_samples": [20, 30, 40], "raw_file": "sensor2/000001.png"},
    {
        "lanes": [[60, 40, 20, 3]],
        "h_samples": [20, 30, 40, 50],
        "raw_file": "inner_kitty/000059.png",
    },
    {"lanes": [], "h_samples": [20, 30, 40, 50], "raw_file": "000002.png"},
    {"lanes": [], "h_samples": [20, 30, 40], "raw_file": "000003.png"},
]
# CULane rows y = H, H - 10, ... bottom-up:
#   lane:1 (H 48): 48 not reached; 38: t = 9/17 -> 10.294; 28: t = 2/15 -> 16.333;
#                  18: t = 12/15 -> 23.000; 8 on (25,15)-(30,5): t = 0.7 -> 28.500
#   lane:2 (H 60): 50 -> 3.333; 40 -> 20.000; 30 -> 40.000; 20 -> 60.000;
#                  10 on (60,20)-(80,4.6667): t = 10/15.333 -> 60 + 13.043 = 73.043; 0 not reached
CULANE_SAMPLE = {
    "sensor1/000001.lines.txt": "10.294 38 16.333 28 23.000 18 28.500 8\n",
    "sensor2/000001.lines.txt": "",
    "000002.lines.txt": "",
    "000003.lines.txt": "",
    "inner_kitty/000059.lines.txt": "3.333 50 20.000 40 40.000 30 60.000 20 73.043 10\n",
}


def sample() -> LabelSet:
    return deepen_export.read_labels(SAMPLE / "image_dataset")


def test_tusimple_default_leaves_out_images_without_lanes(tmp_path: Path) -> None:
    # LaneEval.bench scores an image without ground-truth lanes 0: such lines never score 1
    report = tusimple.write(sample(), tmp_path / "ts", on_unsupported="drop")
    got = [json.loads(s) for s in (tmp_path / "ts/label_data.json").read_text().splitlines()]
    assert got == [o for o in TUSIMPLE_SAMPLE if o["lanes"]]
    skipped = {i.file_id for i in report if i.action == "skipped"}
    assert skipped == {"000001.png", "000002.png", "000003.png", "000004.png"}


def test_tusimple_sample(tmp_path: Path) -> None:
    report = tusimple.write(sample(), tmp_path / "ts", on_unsupported="drop", empty=True)
    got = [json.loads(s) for s in (tmp_path / "ts/label_data.json").read_text().splitlines()]
    assert got == TUSIMPLE_SAMPLE
    own = {(i.action, i.label_id, i.file_id) for i in report if i.kind in (None, "polylines")}
    assert own == {("clipped", "lane:2", "inner_kitty/000059.png"), ("skipped", None, "000004.png")}
    back = tusimple.read(tmp_path / "ts/label_data.json")
    assert back.frames.file_id.tolist() == [o["raw_file"] for o in TUSIMPLE_SAMPLE]
    np.testing.assert_array_equal(back.polylines.frame, [0, 2])
    np.testing.assert_allclose(
        back.polylines.coords, [[22, 20], [15, 30], [9, 40], [60, 20], [40, 30], [20, 40], [3, 50]]
    )


def test_culane_sample(tmp_path: Path) -> None:
    culane.write(sample(), tmp_path / "cu", on_unsupported="drop")
    for name, text in CULANE_SAMPLE.items():
        assert (tmp_path / "cu" / name).read_text() == text
    assert (tmp_path / "cu/list/all.txt").read_text().splitlines() == [
        "/sensor1/000001.png", "/sensor2/000001.png", "/inner_kitty/000059.png", "/000002.png",
        "/000003.png",
    ]  # fmt: skip
    back = culane.read(tmp_path / "cu")
    assert sorted(back.frames.file_id.tolist()) == sorted(
        [
            "sensor1/000001.png",
            "sensor2/000001.png",
            "000002.png",
            "000003.png",
            "inner_kitty/000059.png",
        ]
    )
    assert len(back.polylines) == 2
    np.testing.assert_allclose(
        back.polylines.coords[:4], [[10.294, 38], [16.333, 28], [23, 18], [28.5, 8]]
    )


def lanes_set(coords_list, *, width=100, height=100, label_type="lane") -> LabelSet:
    n = len(coords_list)
    counts = [len(c) for c in coords_list]
    return LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[width], height=[height]),
        categories=("solid", "dashed"),
        polylines=Polylines.from_columns(
            frame=[0] * n, category=[i % 2 for i in range(n)],
            label_id=[f"lane:{i + 1}" for i in range(n)], label_type=[label_type] * n,
            offsets=np.arange(n + 1), part_offsets=np.r_[0, np.cumsum(counts)],
            coords=np.concatenate([np.asarray(c, float) for c in coords_list]),
        ),
    )  # fmt: skip


def test_tusimple_rows_order_classes_and_edge_cases(tmp_path: Path) -> None:
    ls = lanes_set(
        [
            [[80, 100], [60, 0]],  # right lane: x = 80 - 20 (100 - y) / 100
            [[20, 100], [40, 0]],  # left lane: x = 20 + 20 (100 - y) / 100
            [[10, 90], [50, 10], [90, 90]],  # a "^": crosses every row below y 10 twice
            [[200, 10], [300, 90]],  # wholly outside the image
        ]
    )
    report = tusimple.write(ls, tmp_path / "ts", h_samples=[50, 25, 75], decimals=1, classes=True)
    obj = json.loads((tmp_path / "ts/label_data.json").read_text())
    assert obj["h_samples"] == [25, 50, 75]
    # "^": first crossing on (10,90)-(50,10): y 25: t = 65/80 -> 42.5; y 50: t = 0.5 -> 30;
    #      y 75: t = 15/80 -> 17.5
    # left: y 25 -> 20 + 20 * 0.75 = 35; y 50 -> 30; y 75 -> 25
    # right: y 25 -> 65; y 50 -> 70; y 75 -> 75
    # left to right by x at the lowest row (75): "^" 17.5, left 25, right 75
    assert obj["lanes"] == [[42.5, 30.0, 17.5], [35.0, 30.0, 25.0], [65.0, 70.0, 75.0]]
    # categories alternate solid/dashed by label: "^" (label 3) solid, left dashed, right solid
    assert obj["classes"] == [1, 2, 1]
    assert json.loads((tmp_path / "ts/classes.json").read_text()) == {"1": "solid", "2": "dashed"}
    got = sorted((i.action, i.label_id) for i in report)
    assert got == [("changed", "lane:3"), ("clipped", "lane:4"), ("dropped", "lane:4")]


def test_non_lanes_and_unknown_size(tmp_path: Path) -> None:
    ls = lanes_set([[[0, 0], [10, 10]]], label_type="polyline")
    report = tusimple.write(ls, tmp_path / "ts")
    assert [(i.action, i.label_id) for i in report] == [("dropped", "lane:1"), ("skipped", None)]
    unknown = lanes_set([[[0, 0], [10, 10]]], width=-1, height=-1)
    with pytest.raises(ConversionError, match="image size unknown"):
        culane.write(unknown, tmp_path / "cu")
    assert not (tmp_path / "cu").exists()


def test_golden_files(tmp_path: Path) -> None:
    tusimple.write(sample(), tmp_path / "ts", on_unsupported="drop")
    culane.write(sample(), tmp_path / "cu", on_unsupported="drop")
    assert_same_tree(tmp_path / "ts", SAMPLE / "golden/tusimple")
    assert_same_tree(tmp_path / "cu", SAMPLE / "golden/culane")
    ts = tusimple.read(SAMPLE / "golden/tusimple")
    cu = culane.read(SAMPLE / "golden/culane")
    assert len(ts.polylines) == len(cu.polylines) == 2
    assert ts.frames.file_id.tolist() == [o["raw_file"] for o in TUSIMPLE_SAMPLE if o["lanes"]]


def test_bad_input_nan_and_escaping_file_ids(tmp_path: Path) -> None:
    ls = lanes_set([[[0, 0], [10, 100]], [[np.nan, 5], [20, 50]]])
    report = tusimple.write(ls, tmp_path / "ts")
    # lane:1 is written but its category "solid" is not (no classes=true): reported too
    assert [(i.action, i.label_id) for i in report] == [
        ("dropped", "lane:2"),
        ("changed", "lane:1"),
    ]
    assert len(json.loads((tmp_path / "ts/label_data.json").read_text())["lanes"]) == 1
    evil = ls.replace(
        frames=Frames.from_columns(file_id=["../../evil.png"], width=[100], height=[100])
    )
    (tmp_path / "cu").mkdir()
    (tmp_path / "cu/keep.txt").write_text("old output")
    (tmp_path / "cu/report.json").write_text('{"format": "culane"}')  # an earlier output
    with pytest.raises(ConversionError, match="outside the output folder"):
        culane.write(evil, tmp_path / "cu")
    assert (tmp_path / "cu/keep.txt").read_text() == "old output"
    assert not (tmp_path.parent / "evil.lines.txt").exists()
