"""VOC and CVAT outputs read by datumaro (``voc``, ``cvat``) as written, from another folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import deepen_export
from converters import cvat, voc
from deepen_export.model import Boxes, Frames, LabelSet
from tests.interop._datumaro import dump
from tests.interop.conftest import IMAGES, SAMPLES

EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["image_dataset"]


def _sample() -> LabelSet:
    return deepen_export.read_labels(SAMPLES / "image_dataset")


def _item(e: dict[str, Any]) -> str:
    name = e["file_id"] if e["file_id"] != "000001.png" else f"{e['sensor_id']}/000001.png"
    return name.rsplit(".", 1)[0]


@pytest.mark.parametrize("split", [None, "train:0.5,val:0.5"])
def test_datumaro_voc(tmp_path: Path, elsewhere: Path, split: str | None) -> None:
    out = tmp_path / "out" / "voc"
    voc.write(
        _sample(), out, on_unsupported="drop", images=IMAGES, copy_images=True,
        segmentation=True, split=split,
    )  # fmt: skip
    ds = dump(out, "voc", cwd=elsewhere)
    # labelmap.txt: background + the profile's categories (not VOC's 20 classes)
    assert ds["labels"] == ["background", *_sample().categories]
    items = {it["id"]: it for it in ds["items"]}
    assert len(items) == 5  # 000004.png not labelled yet
    assert {it["subset"] for it in items.values()} <= (
        {"default"} if split is None else {"train", "val"}
    )
    names = ["default"] if split is None else ["train", "val"]
    assert sorted(p.stem for p in (out / "ImageSets/Main").iterdir()) == names
    assert all(it["image_exists"] for it in items.values())
    for lid, e in EXPECTED["boxes"].items():
        x0, y0, x1, y1 = e["xyxy_clipped"]
        # zero-based whole pixels: the enclosing integer box, read as [x, y, w, h]
        want = [np.floor(x0), np.floor(y0), np.ceil(x1) - np.floor(x0), np.ceil(y1) - np.floor(y0)]
        got = [a["bbox"] for a in items[_item(e)]["annotations"] if a["type"] == "bbox"]
        assert want in got, lid
    for lid, e in EXPECTED["polygons"].items():  # polygons are written as their boxes
        x0, y0, x1, y1 = e["bounds_xyxy"]
        got = [a["bbox"] for a in items[_item(e)]["annotations"] if a["type"] == "bbox"]
        assert [x0, y0, x1 - x0, y1 - y0] in got, lid
    # SegmentationClass: road:1 paints 960 - 100 pixels of class road
    road = [
        a
        for a in items["sensor1/000001"]["annotations"]
        if a["type"] == "mask" and a["label"] == "road"
    ]
    assert [a["pixels"] for a in road] == [EXPECTED["polygons"]["road:1"]["area"]]
    # SegmentationObject: object j of the XML (car:1, car:2, road:1) is index j, 1-based
    obj = np.asarray(Image.open(out / "SegmentationObject/sensor1/000001.png"))
    assert sorted(np.unique(obj).tolist()) == [0, 1, 2, 3]
    assert int((obj == 3).sum()) == EXPECTED["polygons"]["road:1"]["area"]
    assert int((obj == 1).sum()) == 20 * 12  # car:1 [10, 8, 30, 20]


def _tracked() -> LabelSet:
    # car:7 on frames 0, 1 and 3 of one sensor (a gap at 2), truck:1 only on frame 2
    frames = Frames.from_columns(
        file_id=[f"{i}.png" for i in range(4)],
        sensor_id=["cam"] * 4,
        width=[40] * 4,
        height=[30] * 4,
    )
    boxes = Boxes.from_columns(
        frame=[0, 1, 3, 2], category=[0, 0, 0, 1], label_id=["car:7", "car:7", "car:7", "truck:1"],
        xyxy=[[1, 2, 11, 12], [3, 2, 13, 12], [7, 2, 17, 12], [0, 0, 5, 5]],
    )  # fmt: skip
    return LabelSet(frames=frames, categories=("car", "truck"), boxes=boxes)


def test_datumaro_cvat_tracks(tmp_path: Path, elsewhere: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 30)).save(src / f"{i}.png")
    out = tmp_path / "out" / "cvat"
    cvat.write(_tracked(), out, images=src, copy_images=True)
    text = (out / "annotations.xml").read_text()
    assert 'name="track_id"' not in text  # reserved by CVAT: dropped on import
    ds = dump(out, "cvat", cwd=elsewhere)
    items = {it["id"]: it for it in ds["items"]}
    assert len(items) == 4 and all(it["image_exists"] for it in items.values())

    def cars(i: int) -> list[Any]:
        # datumaro keeps a track's outside keyframes as shapes marked outside (out of view)
        return [
            a
            for a in items[str(i)]["annotations"]
            if a["label"] == "car" and not a["attributes"].get("outside")
        ]

    # the track: one shape on frames 0, 1, 3, none on 2 (outside keyframe), same track id
    assert [len(cars(i)) for i in range(4)] == [1, 1, 0, 1]
    assert [cars(i)[0]["bbox"] for i in (0, 1, 3)] == [
        [1, 2, 10, 10],
        [3, 2, 10, 10],
        [7, 2, 10, 10],
    ]
    assert len({cars(i)[0]["attributes"]["track_id"] for i in (0, 1, 3)}) == 1
    truck = [a for a in items["2"]["annotations"] if a["label"] == "truck"]
    assert [t["bbox"] for t in truck] == [[0, 0, 5, 5]]
    back = cvat.read(out)  # our reader: tracks back as per-frame labels with their ids
    assert sorted(back.boxes.label_id.tolist()) == ["car:7"] * 3 + ["truck:1"]


@pytest.mark.parametrize("split", [None, "train:0.5,val:0.5"])
def test_datumaro_cvat_sample(tmp_path: Path, elsewhere: Path, split: str | None) -> None:
    out = tmp_path / "out" / "cvat"
    # seed 3 puts the five images in both subsets (each image is hashed on its own)
    cvat.write(_sample(), out, images=IMAGES, copy_images=True, split=split, seed=3)
    ds = dump(out, "cvat", cwd=elsewhere)
    assert len(ds["items"]) == 5  # 000004.png not labelled yet: left out
    subsets = {it["subset"] for it in ds["items"]}
    # datumaro names a subset after its file: annotations.xml, or train.xml and val.xml
    assert subsets == ({"annotations"} if split is None else {"train", "val"})
    assert len(cvat.read(out).frames) == 5  # our reader reads every subset file
    # lane:2 leaves the image: clipped, every point inside the 80 x 60 image
    lanes = [
        a
        for it in ds["items"]
        for a in it["annotations"]
        if a["type"] == "polyline" and a["label"] == "lane"
    ]
    assert lanes and all(
        0 <= x <= 80 and 0 <= y <= 60
        for a in lanes
        for x, y in zip(a["points"][0::2], a["points"][1::2], strict=True)
    )


def _cvat_load_anno(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """CVAT's own importer rule (``cvat-ai/cvat`` ``cvat/apps/dataset_manager/formats/cvat.py``
    ``load_anno``), restated: ``<image>`` shapes need ``label``; a ``<track>`` needs ``label`` and
    each of its shapes ``frame`` and ``keyframe`` (a missing one is a KeyError), only keyframes
    are kept, ``outside`` defaults to 0; a track whose first shape is a mask becomes a shape."""
    import xml.etree.ElementTree as ET

    shapes, tracks = [], []
    root = ET.parse(path).getroot()
    for im in root.iter("image"):
        for el in im:
            if el.tag in ("box", "polygon", "polyline", "points"):
                shapes.append({"frame": int(im.attrib["id"]), "label": el.attrib["label"]})
    for tr in root.iter("track"):
        kept = [
            {"frame": int(el.attrib["frame"]), "outside": el.attrib.get("outside", "0") == "1"}
            for el in tr
            if el.attrib["keyframe"] == "1"
        ]
        tracks.append({"label": tr.attrib["label"], "shapes": kept})
    return shapes, tracks


def test_cvat_importer_rule_tracks(tmp_path: Path) -> None:
    out = tmp_path / "cvat"
    cvat.write(_tracked(), out)
    shapes, tracks = _cvat_load_anno(out / "annotations.xml")
    assert shapes == [{"frame": 2, "label": "truck"}]
    assert tracks == [
        {
            "label": "car",
            "shapes": [
                {"frame": 0, "outside": False},
                {"frame": 1, "outside": False},
                {"frame": 2, "outside": True},  # out of view on frame 2: not interpolated
                {"frame": 3, "outside": False},
            ],
        }
    ]
