"""Pascal VOC writer/reader: 1-based inclusive convention checked by hand."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import deepen_export
from converters import voc
from deepen_export.errors import ConversionError
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


def test_one_based_inclusive_by_hand(tmp_path: Path) -> None:
    voc.write(boxes_only(), tmp_path / "v")
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


def test_whole_image_box(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.jpg"], width=[20], height=[10]),
        categories=("cat",),
        boxes=Boxes.from_columns(
            frame=[0], category=[0], label_id=["cat:1"], xyxy=[[0, 0, 20, 10]]
        ),
    )
    voc.write(ls, tmp_path / "v")
    root = ET.parse(tmp_path / "v" / "Annotations" / "a.xml").getroot()
    assert [root.findtext(f"object/bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == [
        "1",
        "1",
        "20",
        "10",
    ]
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


def test_round_trip(tmp_path: Path) -> None:
    ls = boxes_only()
    voc.write(ls, tmp_path / "v")
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


def test_polygons_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="polygons"):
        voc.write(sample(), tmp_path / "v")
    rep = voc.write(sample(), tmp_path / "v", on_unsupported="drop")
    dropped = sorted(i.label_id or "" for i in rep if i.action == "dropped")
    assert dropped == sorted(
        [
            "road:1",
            "building:1",
            "vegetation:1",
            "lane:1",
            "lane:2",
            "pole:1",
            "pole:2",
            "weather:1",
        ]
    )


def test_evil_file_id_refused(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a/../../evil.png"], width=[5], height=[5]),
        categories=("x",),
    )
    with pytest.raises(ConversionError, match="outside the output folder"):
        voc.write(ls, tmp_path / "v")
    assert list(tmp_path.iterdir()) == []


def test_deterministic(tmp_path: Path) -> None:
    voc.write(boxes_only(), tmp_path / "a")
    voc.write(boxes_only(), tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.xml"))
    assert len(files) == 5
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
