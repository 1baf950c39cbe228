"""An image dataset from a folder to five training formats, as a new user walks it.

create (folder + YAML requirements) → wait → pull (default flags) → convert to COCO, YOLO, VOC,
CVAT and masks, each typed through the installed ``deepen-export``; every output is read back
with pycocotools or a small reader written here from the format's own description, and must
carry the real image sizes and every label.
"""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

import converters
from tests._deepen_server import DeepenServer, label_dataset
from tests.workflow.conftest import Run, runner

# name -> size; b.jpg carries a 20 KB EXIF block, so its frame header is far from its start
SIZES = {
    "a.png": (640, 480),
    "b.jpg": (800, 600),
    "c.webp": (320, 240),
    "d.bmp": (100, 50),
    "e.png": (200, 100),  # reviewed, nothing on it: a negative
    "f.png": (30, 20),  # not labelled yet: left out and reported
}
BOXES = {  # file -> [(label_id, category, [x, y, w, h])]
    "a.png": [("car:1", "car", [10.0, 20.0, 100.0, 50.0])],
    "b.jpg": [("bus:1", "bus", [400.0, 300.0, 200.0, 150.0]), ("car:2", "car", [5, 5, 20, 10])],
    "c.webp": [("truck:1", "truck", [100.0, 60.0, 80.0, 40.0])],
    "d.bmp": [("car:3", "car", [50.0, 10.0, 40.0, 30.0])],
}
POLYGONS = {  # file -> [(label_id, category, ring)]
    "a.png": [("road:1", "road", [[0.0, 300.0], [640.0, 300.0], [640.0, 480.0], [0.0, 480.0]])],
    "b.jpg": [("road:2", "road", [[100.0, 500.0], [700.0, 500.0], [400.0, 590.0]])],
}
REQUIREMENTS = """\
# what the labellers may draw
box:
  categories: [bus, car, truck]
  attributes:
    occlusion: [none, partial, heavy]
polygon:
  categories: [road]
name: street images
"""


def _image_folder(root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name, size in SIZES.items():
        # noise: images weigh what photos weigh, so reading only their headers shows
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        if name.endswith(".jpg"):
            exif = Image.Exif()
            exif[0x010E] = "x" * 20000  # ImageDescription
            img.save(folder / name, "JPEG", exif=exif.tobytes())
        else:
            img.save(folder / name)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # left out of the upload
    return folder


def _labels() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, boxes in BOXES.items():
        for lid, cat, box in boxes:
            out.setdefault(name, []).append(
                {
                    "label_id": lid,
                    "label_category_id": cat,
                    "label_type": "box",
                    "box": box,
                    "sensor_id": "sensor1",
                    "attributes": {"occlusion": "none"},
                }
            )
    for name, polys in POLYGONS.items():
        for lid, cat, ring in polys:
            out.setdefault(name, []).append(
                {
                    "label_id": lid,
                    "label_category_id": cat,
                    "label_type": "polygon",
                    "polygons": [ring],
                    "sensor_id": "sensor1",
                }
            )
    return out


def _files() -> list[dict[str, Any]]:
    # as Deepen lists them: no sizes; f.png is still waiting for its labeller
    return [
        {"file_id": n, "sensors": ["sensor1"], "status": "waiting" if n == "f.png" else "done"}
        for n in SIZES
    ]


@pytest.fixture(scope="module")
def snapshot(platform: DeepenServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's snapshot of the image dataset: created, labelled, pulled with default flags."""
    tmp_path = tmp_path_factory.mktemp("image-dataset")
    deepen = runner(platform, tmp_path)
    folder = _image_folder(tmp_path)
    (tmp_path / "requirements.yaml").write_text(REQUIREMENTS)
    created = deepen(
        "datasets",
        "create",
        folder,
        "--name",
        "street",
        "--type",
        "images",
        "--requirements",
        "requirements.yaml",
    )
    dataset_id = created.stdout.strip()
    assert "left out .DS_Store" in created.stderr
    request = platform.datasets[dataset_id]["request"]
    assert request["labelling_profile"]["features"]["box"]["label_category_ids"] == [
        "bus",
        "car",
        "truck",
    ]
    deepen("datasets", "status", dataset_id, "--wait", "--poll", "0.01")
    label_dataset(platform, dataset_id, _labels(), _files())
    deepen("datasets", "status", dataset_id, "--wait", "--until", "labelled", "--poll", "0.01")
    pulled = deepen("pull", dataset_id, "-o", "snap")
    assert "6 image sizes" in pulled.stdout
    # sizes came from range requests, not from downloading the zip
    assert platform.range_requests >= 3
    assert platform.range_bytes < len(platform_zip(platform, dataset_id)) / 2
    return tmp_path / "snap"


def platform_zip(platform: DeepenServer, dataset_id: str) -> bytes:
    from tests._deepen_server import media_bytes

    data = media_bytes(platform, dataset_id)
    assert data is not None
    return data


def _written() -> list[str]:
    return [n for n in SIZES if n != "f.png"]


def _all_boxes() -> list[tuple[str, str, list[float]]]:
    return [(n, lid, [float(v) for v in b]) for n, bs in BOXES.items() for lid, _, b in bs]


def _ring_bbox(ring: list[list[float]]) -> list[float]:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def test_coco_has_the_real_sizes_and_every_label(
    deepen: Run, snapshot: Path, tmp_path: Path
) -> None:
    deepen("convert", snapshot, "--to", "coco", "-o", tmp_path / "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    images = {im["file_name"]: im for im in coco.dataset["images"]}
    assert set(images) == set(_written())
    for name in _written():
        assert (images[name]["width"], images[name]["height"]) == SIZES[name]
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    got = sorted(
        (
            coco.imgs[a["image_id"]]["file_name"],
            cats[a["category_id"]],
            [round(v, 3) for v in a["bbox"]],
        )
        for a in coco.loadAnns(coco.getAnnIds())
    )
    want = sorted(
        [(n, c, b) for n, bs in BOXES.items() for _, c, b in bs]
        + [(n, c, _ring_bbox(r)) for n, ps in POLYGONS.items() for _, c, r in ps]
    )
    assert got == [(n, c, [float(v) for v in b]) for n, c, b in want]
    assert coco.getAnnIds(imgIds=[images["e.png"]["id"]]) == []  # the negative, kept
    # box labels carry their box as a polygon too (COCOeval segm needs one)
    anns = coco.loadAnns(coco.getAnnIds())
    assert all(a["segmentation"] for a in anns)
    polygons = [a for a in anns if a["deepen_label_type"] == "polygon"]
    assert len(polygons) == sum(len(p) for p in POLYGONS.values())
    for a in polygons:
        with warnings.catch_warnings():
            # pycocotools' mask code predates numpy 2's copy keyword
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = coco.annToMask(a)
        assert mask.shape == (coco.imgs[a["image_id"]]["height"], coco.imgs[a["image_id"]]["width"])
        assert mask.sum() > 0
    report = json.loads((tmp_path / "coco" / "report.json").read_text())
    assert any(i["file_id"] == "f.png" and i["action"] == "skipped" for i in report["issues"]), (
        "the frame not labelled yet is reported"
    )


def _yolo_lines(root: Path, name: str) -> list[list[float]]:
    txt = next(root.rglob(f"{Path(name).stem}.txt"))
    return [[float(v) for v in line.split()] for line in txt.read_text().splitlines() if line]


def test_yolo_boxes_denormalise_to_the_labels(deepen: Run, snapshot: Path, tmp_path: Path) -> None:
    deepen("convert", snapshot, "--to", "yolo", "-o", tmp_path / "yolo")
    root = tmp_path / "yolo"
    names = (root / "data.yaml").read_text()
    assert "car" in names and "road" in names
    for name in _written():
        w, h = SIZES[name]
        rows = _yolo_lines(root, name)
        want = [b for _, _, b in BOXES.get(name, [])] + [
            _ring_bbox(r) for _, _, r in POLYGONS.get(name, [])
        ]
        got = sorted(
            [
                round((x - bw / 2) * w, 2),
                round((y - bh / 2) * h, 2),
                round(bw * w, 2),
                round(bh * h, 2),
            ]
            for _, x, y, bw, bh in rows
        )
        assert got == sorted([[round(float(v), 2) for v in b] for b in want]), name
    assert not list(root.rglob("f.txt"))  # not labelled yet: no file claiming "no objects"


def test_voc_objects_and_sizes(deepen: Run, snapshot: Path, tmp_path: Path) -> None:
    result = deepen("convert", snapshot, "--to", "voc", "-o", tmp_path / "voc")
    root = tmp_path / "voc"
    holds_polygons = "polygons" in converters.get_format("voc").kinds
    if not holds_polygons:
        assert "polygons labels not written: voc holds none" in result.stderr
    for name in _written():
        xml = ET.parse(next(root.rglob(f"{Path(name).stem}.xml"))).getroot()
        size = xml.find("size")
        assert size is not None
        assert (int(size.findtext("width") or 0), int(size.findtext("height") or 0)) == SIZES[name]
        got = sorted(
            [float(o.findtext(f"bndbox/{k}") or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
            for o in xml.iter("object")
        )
        want = [b for _, _, b in BOXES.get(name, [])]
        if holds_polygons:
            want += [_ring_bbox(r) for _, _, r in POLYGONS.get(name, [])]
        # VOC's corners are 1-based pixel indices or the box corners: allow either
        for g, b in zip(got, sorted([x, y, x + bw, y + bh] for x, y, bw, bh in want), strict=True):
            assert np.allclose(g, b, atol=1.0), (name, g, b)


def test_cvat_images_boxes_and_polygons(deepen: Run, snapshot: Path, tmp_path: Path) -> None:
    deepen("convert", snapshot, "--to", "cvat", "-o", tmp_path / "cvat")
    root = ET.parse(tmp_path / "cvat" / "annotations.xml").getroot()
    images = {im.get("name"): im for im in root.iter("image")}
    assert set(images) == set(_written())
    for name, im in images.items():
        assert (int(im.get("width") or 0), int(im.get("height") or 0)) == SIZES[name]
        boxes = sorted(
            [float(b.get(k) or "nan") for k in ("xtl", "ytl", "xbr", "ybr")] for b in im.iter("box")
        )
        want = sorted([x, y, x + w, y + h] for _, _, (x, y, w, h) in BOXES.get(name, []))
        assert np.allclose(boxes, want) if want else not boxes
        polys = [
            [[float(v) for v in p.split(",")] for p in (poly.get("points") or "").split(";")]
            for poly in im.iter("polygon")
        ]
        assert len(polys) == len(POLYGONS.get(name, []))
        for got, (_, _, ring) in zip(polys, POLYGONS.get(name, []), strict=True):
            assert sorted(map(tuple, got)) == sorted(map(tuple, ring))


def test_masks_cover_the_polygons_at_image_size(
    deepen: Run, snapshot: Path, tmp_path: Path
) -> None:
    result = deepen("convert", snapshot, "--to", "masks", "-o", tmp_path / "masks")
    assert "boxes labels not written: masks holds none" in result.stderr
    root = tmp_path / "masks"
    for name in _written():
        png = next(p for p in root.rglob(f"{Path(name).stem}.png") if "color" not in p.parts)
        with Image.open(png) as im:
            assert im.size == SIZES[name]
            mask = np.asarray(im)
        for _, _, ring in POLYGONS.get(name, []):
            cx = sum(p[0] for p in ring) / len(ring)
            cy = sum(p[1] for p in ring) / len(ring)
            assert mask[int(cy), int(cx)] != 0, (name, "polygon centre painted")
        if name not in POLYGONS:
            assert not mask.any(), name


def test_convert_with_images_adds_unlabelled_files_as_frames(deepen: Run, tmp_path: Path) -> None:
    """Point 3: images in --images that no label names are frames (status unknown)."""
    folder = _image_folder(tmp_path)
    labels = {"labels": {"a.png": _labels()["a.png"]}}
    for lab in labels["labels"]["a.png"]:
        lab["file_id"] = "a.png"
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    deepen("convert", "labels.json", "--images", folder, "--to", "coco", "-o", "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    assert {(im["file_name"], im["width"], im["height"]) for im in coco.dataset["images"]} == {
        (n, *SIZES[n]) for n in SIZES
    }
    deepen("convert", "labels.json", "--images", folder, "--to", "yolo", "-o", "yolo")
    assert next((tmp_path / "yolo").rglob("e.txt")).read_text() == ""  # an empty label file
