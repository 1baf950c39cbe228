"""Pascal VOC writer/reader: zero-based whole-pixel (default) and 1-based conventions by hand."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import deepen_export
from converters import voc
from deepen_export.model import Boxes, Frames, LabelSet

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["image_dataset"]


def sample() -> LabelSet:
    return deepen_export.read_labels(SAMPLES / "image_dataset")


def boxes_only() -> LabelSet:
    return sample().without("polygons", "polylines", "points", "scenes")


def objects(path: Path) -> dict[str, dict[str, str]]:
    out = {}
    for obj in ET.parse(path).getroot().iter("object"):
        d = {t: obj.findtext(f"bndbox/{t}") or "" for t in ("xmin", "ymin", "xmax", "ymax")}
        d["truncated"] = obj.findtext("truncated") or ""
        d["name"] = obj.findtext("name") or ""
        out[obj.findtext("deepen_label_id") or ""] = d
    return out


def test_zero_based_whole_pixels_by_hand(tmp_path: Path) -> None:
    report = voc.write(boxes_only(), tmp_path / "v")
    objs = objects(tmp_path / "v" / "Annotations" / "sensor1" / "000001.xml")
    # car:1 pixel-corner [10, 8, 30, 20]: datumaro reads [xmin, ymin, xmax - xmin, ymax - ymin]
    assert [objs["car:1"][k] for k in ("xmin", "ymin", "xmax", "ymax", "truncated")] == [
        "10",
        "8",
        "30",
        "20",
        "0",
    ]
    # car:2 [50.5, 30, 70.5, 55] clipped to [50.5, 30, 64, 48], rounded out to 50, 30, 64, 48
    assert [objs["car:2"][k] for k in ("xmin", "ymin", "xmax", "ymax", "truncated")] == [
        "50",
        "30",
        "64",
        "48",
        "1",
    ]
    changed = [i.label_id for i in report if i.action == "changed" and "whole" in i.reason]
    assert sorted(changed) == ["car:2", "pedestrian:1"]  # pedestrian:1 x1 = 68.5


def test_one_based_inclusive_by_hand(tmp_path: Path) -> None:
    voc.write(boxes_only(), tmp_path / "v", origin=1, integer=False)
    objs = objects(tmp_path / "v" / "Annotations" / "sensor1" / "000001.xml")
    # car:1 pixel-corner [10, 8, 30, 20] covers pixels 10..29 x 8..19 (0-based)
    #   = 11..30 x 9..20 1-based inclusive
    assert {k: objs["car:1"][k] for k in ("xmin", "ymin", "xmax", "ymax")} == {
        "xmin": "11",
        "ymin": "9",
        "xmax": "30",
        "ymax": "20",
    }
    assert objs["car:1"]["truncated"] == "0"
    # car:2 [50.5, 30, 70.5, 55] clipped to [50.5, 30, 64, 48] -> 51.5, 31, 64, 48, truncated
    assert [objs["car:2"][k] for k in ("xmin", "ymin", "xmax", "ymax", "truncated")] == [
        "51.5",
        "31",
        "64",
        "48",
        "1",
    ]


@pytest.mark.parametrize(
    ("origin", "whole"), [(0, ["0", "0", "20", "10"]), (1, ["1", "1", "20", "10"])]
)
def test_whole_image_box(tmp_path: Path, origin: int, whole: list[str]) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.jpg"], width=[20], height=[10]),
        categories=("cat",),
        boxes=Boxes.from_columns(
            frame=[0], category=[0], label_id=["cat:1"], xyxy=[[0, 0, 20, 10]]
        ),
    )
    voc.write(ls, tmp_path / "v", origin=origin)
    root = ET.parse(tmp_path / "v" / "Annotations" / "a.xml").getroot()
    assert [root.findtext(f"object/bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == whole
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("20", "10")


def test_empty_image_file_and_attributes(tmp_path: Path) -> None:
    report = voc.write(boxes_only(), tmp_path / "v")
    empty = ET.parse(tmp_path / "v" / "Annotations" / "000003.xml").getroot()
    assert empty.find("object") is None and empty.findtext("deepen_status") == "empty"
    assert not (tmp_path / "v" / "Annotations" / "000004.xml").exists()
    assert any(i.action == "skipped" and i.file_id == "000004.png" for i in report)
    root = ET.parse(tmp_path / "v" / "Annotations" / "sensor1" / "000001.xml").getroot()
    car1 = next(o for o in root.iter("object") if o.findtext("deepen_label_id") == "car:1")
    attrs = {a.findtext("name"): a.findtext("value") for a in car1.iter("attribute")}
    assert attrs == {"occlusion": "none", "color": "red"}
    assert car1.findtext("track_id") == "1"


@pytest.mark.parametrize("origin", [0, 1])
def test_round_trip(tmp_path: Path, origin: int) -> None:
    ls = boxes_only()
    voc.write(ls, tmp_path / "v", origin=origin, integer=False)
    back = voc.read(tmp_path / "v", categories=ls.categories)
    assert back.categories == ls.categories
    got = {
        (str(back.frames.file_id[f]), lid): xy
        for f, lid, xy in zip(back.boxes.frame, back.boxes.label_id, back.boxes.xyxy, strict=True)
    }
    assert len(got) == len(EXPECTED["boxes"])
    for lid, e in EXPECTED["boxes"].items():
        np.testing.assert_array_equal(got[e["file_id"], lid], e["xyxy_clipped"])
    assert sorted(set(back.frames.sensor_id)) == ["sensor1", "sensor2"]


def test_polygons_written_as_boxes(tmp_path: Path) -> None:
    report = voc.write(sample(), tmp_path / "v", on_unsupported="drop", integer=False)
    back = voc.read(tmp_path / "v")  # back as the rectangles they were written as
    p = back.polygons
    for r, lid in enumerate(p.label_id.tolist()):
        xy = p.coords[p.ring_offsets[p.offsets[r]] : p.ring_offsets[p.offsets[r + 1]]]
        assert [*xy.min(0).tolist(), *xy.max(0).tolist()] == EXPECTED["polygons"][lid][
            "bounds_xyxy"
        ]
    assert sorted(p.label_id.tolist()) == sorted(EXPECTED["polygons"])
    changed = {i.label_id for i in report if i.action == "changed"}
    assert set(EXPECTED["polygons"]) <= changed
