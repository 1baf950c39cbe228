"""Names in text formats (issue 16, class 5): every change reported, no merge, output parses back."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from converters import culane, cvat, kitti, kitti_tracking, tusimple, voc
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, LabelSet, Polylines


def _boxes(categories: tuple[str, ...], **attributes: list[str]) -> LabelSet:
    n = len(categories)
    return LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[100], height=[100]),
        categories=categories,
        boxes=Boxes.from_columns(
            frame=[0] * n,
            category=list(range(n)),
            label_id=[f"x:{i + 1}" for i in range(n)],
            xyxy=[[10 + i, 10, 20 + i, 20] for i in range(n)],
        ).with_attributes(attributes),
    )


def test_kitti_blank_category_gets_a_type_field(tmp_path: Path) -> None:
    report = kitti.write(_boxes((" ", "car")), tmp_path / "k")
    lines = (tmp_path / "k" / "label_2" / "000000.txt").read_text().splitlines()
    assert all(len(line.split(" ")) == 15 and line.split(" ")[0] for line in lines)
    assert any(i.action == "changed" and "' '" in i.reason for i in report)
    back = kitti.read(tmp_path / "k")
    assert len(back.boxes) == 2 and len(set(back.categories)) == 2


def test_kitti_case_and_space_variants_stay_apart(tmp_path: Path) -> None:
    cats = ("car", "Car", "CAR", "has space", "has_space")
    report = kitti.write(_boxes(cats), tmp_path / "k")
    back = kitti.read(tmp_path / "k")
    assert len(back.categories) == 5  # five categories written, five read back
    changed = {i.reason.split(" written")[0] for i in report if i.action == "changed"}
    # every name that does not read back as itself is reported
    assert changed == {
        "category 'Car'",
        "category 'CAR'",
        "category 'has space'",
        "category 'has_space'",
    }


@pytest.mark.parametrize(
    ("module", "xml_file"), [(voc, "Annotations/a.xml"), (cvat, "annotations.xml")]
)
def test_xml_control_characters(tmp_path: Path, module: object, xml_file: str) -> None:
    ls = _boxes(("ca\x01r", "bus"), colour=["re\x1bd", "blue"])
    report = module.write(ls, tmp_path / "x")  # type: ignore[attr-defined]
    ET.parse(tmp_path / "x" / xml_file)  # expat refuses any control character
    back = module.read(tmp_path / "x")  # type: ignore[attr-defined]
    assert sorted(back.categories) == ["bus", "ca?r"]
    assert sorted(back.boxes.attributes["colour"].tolist()) == ["blue", "re?d"]
    reasons = [(i.reason, i.label_id) for i in report if i.action == "changed"]
    assert ("category 'ca\\x01r' written as 'ca?r'", None) in reasons
    assert any("'colour'" in r and lab == "x:1" for r, lab in reasons)


def _lanes(file_id: str = "d/a.jpg") -> LabelSet:
    return LabelSet(
        frames=Frames.from_columns(file_id=[file_id], width=[100], height=[30]),
        categories=("lane", "solid"),
        polylines=Polylines.from_columns(
            frame=[0, 0],
            category=[0, 1],
            label_id=["lane:1", "solid:1"],
            offsets=[0, 1, 2],
            part_offsets=[0, 2, 4],
            coords=[[10, 30], [40, 0], [60, 30], [90, 0]],
        ),
    )


@pytest.mark.parametrize("module", [tusimple, culane])
def test_lane_categories_reported(tmp_path: Path, module: object) -> None:
    report = module.write(_lanes(), tmp_path / "l", step=10)  # type: ignore[attr-defined]
    back = module.read(tmp_path / "l")  # type: ignore[attr-defined]
    assert len(back.polylines) == 2 and back.categories == ("lane",)
    lost = [i.label_id for i in report if i.action == "changed" and "'solid'" in i.reason]
    assert lost == ["solid:1"]  # the one lane whose category does not come back


def test_tusimple_classes_keep_lane_categories(tmp_path: Path) -> None:
    report = tusimple.write(_lanes(), tmp_path / "l", step=10, classes=True)
    assert sorted(tusimple.read(tmp_path / "l").categories) == ["lane", "solid"]
    assert not [i for i in report if i.action == "changed"]


@pytest.mark.parametrize("file_id", ["d/a b.jpg", "d/a\nb.jpg", "d/a\tb.jpg"])
def test_culane_refuses_file_ids_its_lists_cannot_hold(tmp_path: Path, file_id: str) -> None:
    with pytest.raises(ConversionError, match="whitespace"):
        culane.write(_lanes(file_id), tmp_path / "l", step=10)
    assert not (tmp_path / "l").exists()  # nothing half-written


def test_kitti_tracking_case_variants_read_back(tmp_path: Path) -> None:
    cats = ("car", "Car", "CAR", " ")
    report = kitti_tracking.write(_boxes(cats), tmp_path / "t")
    assert kitti_tracking.read(tmp_path / "t").categories == cats  # mapping.json keeps each
    misc = [i.reason for i in report if "Misc" in i.reason]
    assert sorted(m.split(" written")[0] for m in misc) == sorted(
        f"category {c!r}" for c in cats[1:]
    )
    assert not [i for i in report if "Car_2" in i.reason]  # no step the file does not show


@pytest.mark.parametrize("module", [voc, cvat])
def test_xml_label_ids_and_file_ids(tmp_path: Path, module: object) -> None:
    ls = _boxes(("car", "car"))
    ls = ls.replace(
        boxes=dataclasses.replace(
            ls.boxes, label_id=np.array(["car:\x01", "car:\x02"], dtype=object)
        )
    )
    report = module.write(ls, tmp_path / "x")  # type: ignore[attr-defined]
    back = module.read(tmp_path / "x")  # type: ignore[attr-defined]
    assert len(back.boxes) == 2  # two labels stay two (CVAT joins elements by label id)
    assert sorted(i.label_id for i in report if "label id" in i.reason) == ["car:\x01", "car:\x02"]
    bad = ls.replace(frames=Frames.from_columns(file_id=["a\x01.png"], width=[100], height=[100]))
    with pytest.raises(ConversionError, match="file id"):
        module.write(bad, tmp_path / "y")  # type: ignore[attr-defined]
    assert not (tmp_path / "y").exists()


def test_kitti_category_map_to_a_blank_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="blank type"):
        kitti.write(_boxes(("car",)), tmp_path / "k", category_map={"car": " "})
    assert not (tmp_path / "k").exists()
