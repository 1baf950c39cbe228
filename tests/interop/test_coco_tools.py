"""COCO output read by pycocotools (COCO, COCOeval bbox and segm) and datumaro coco_instances."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import deepen_export
from converters import coco
from tests.interop._datumaro import dump
from tests.interop.conftest import IMAGES, SAMPLES

EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["image_dataset"]


@contextlib.contextmanager
def quiet() -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _write(tmp_path: Path, **kw: Any) -> Path:
    labels = deepen_export.read_labels(SAMPLES / "image_dataset")
    out = tmp_path / "out" / "coco"
    coco.write(labels, out, on_unsupported="drop", images=IMAGES, copy_images=True, **kw)
    return out


def _self_eval(gt: COCO, iou_type: str) -> float:
    """AP@[.5:.95] of the ground truth scored against itself (every annotation, score 1)."""
    results = []
    for a in gt.dataset["annotations"]:
        r = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0}
        if iou_type == "bbox":
            r["bbox"] = a["bbox"]
        else:
            rle = gt.annToRLE(a)
            counts = rle["counts"]
            counts = counts.decode("ascii") if isinstance(counts, bytes) else counts
            r["segmentation"] = {"size": rle["size"], "counts": counts}
        results.append(r)
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


def test_cocoeval_ground_truth_against_itself(tmp_path: Path, elsewhere: Path) -> None:
    out = _write(tmp_path)
    rel = Path("../../out/coco/annotations/instances_default.json")  # relative to elsewhere
    with quiet():
        gt = COCO(str(rel))
        # pole:1 is a one-point label: as a zero-area box it never matched itself (AP 0.875)
        assert _self_eval(gt, "bbox") == 1.0
        # every annotation carries a segmentation (boxes: their polygon), so segm runs
        assert all("segmentation" in a for a in gt.dataset["annotations"])
        assert _self_eval(gt, "segm") == 1.0
    pole = next(a for a in gt.dataset["annotations"] if a["deepen_label_id"] == "pole:1")
    # pole:1 at (33.5, 12.25) -> a 1 x 1 px box centred on it (reported as changed)
    assert pole["bbox"] == [33.0, 11.75, 1.0, 1.0] and pole["area"] == 1.0
    report = json.loads((out / "report.json").read_text())
    assert any(i["action"] == "changed" and i["label_id"] == "pole:1" for i in report["issues"])


def test_boxes_match_expected_and_no_float_noise(tmp_path: Path, elsewhere: Path) -> None:
    out = _write(tmp_path)
    text = (out / "annotations/instances_default.json").read_text()
    doc = json.loads(text)
    got = {a["deepen_label_id"]: a["bbox"] for a in doc["annotations"]}
    for lid, e in EXPECTED["boxes"].items():
        x0, y0, x1, y1 = e["xyxy_clipped"]
        assert got[lid] == [x0, y0, x1 - x0, y1 - y0], lid
    # shortest-exact numbers: no 17-significant-digit noise anywhere in the file
    import re

    assert not re.search(r"\d\.\d*(0000000|9999999)\d", text)


def test_split_files_and_images(tmp_path: Path, elsewhere: Path) -> None:
    out = _write(tmp_path, split="train:0.5,val:0.5", seed=3)
    files = sorted(p.name for p in (out / "annotations").iterdir())
    assert files == ["instances_train.json", "instances_val.json"]
    seen: list[str] = []
    for name in ("train", "val"):
        with quiet():
            gt = COCO(str(out / f"annotations/instances_{name}.json"))
        for im in gt.dataset["images"]:
            seen.append(im["deepen_file_id"] + "|" + im["deepen_sensor_id"])
            assert (out / "images" / name / im["file_name"]).is_file()
            for a in gt.imgToAnns[im["id"]]:
                assert a["image_id"] == im["id"]
    # each written image in exactly one subset (000004.png, not labelled yet, is left out)
    assert len(seen) == len(set(seen)) == 5
    # deterministic: the same seed gives the same files
    again = _write(tmp_path / "b", split="train:0.5,val:0.5", seed=3)
    for name in files:
        assert (again / "annotations" / name).read_bytes() == (
            out / "annotations" / name
        ).read_bytes()


@pytest.mark.parametrize("split", [None, "train:0.5,val:0.5"])
def test_datumaro_coco_instances(tmp_path: Path, elsewhere: Path, split: str | None) -> None:
    # seed 3 puts the five images in both subsets (each image is hashed on its own)
    out = _write(tmp_path, split=split, seed=3)
    ds = dump(out, "coco_instances", cwd=elsewhere)
    items = ds["items"]
    assert len(items) == 5  # 000004.png not labelled yet: left out
    assert all(it["image_exists"] for it in items)
    assert {it["subset"] for it in items} == ({"default"} if split is None else {"train", "val"})
    by_item = {it["id"]: it for it in items}
    bboxes = sorted(
        (it["id"], a["label"], *a["bbox"])
        for it in items
        for a in it["annotations"]
        if a["type"] == "bbox"
    )
    # one bbox per COCO annotation: the hand-derived boxes, polygons' bounds, the pole boxes
    n_ann = 0
    for name in sorted((out / "annotations").iterdir()):
        doc = json.loads(name.read_text())
        n_ann += len(doc["annotations"])
    assert len(bboxes) == n_ann == 10
    for lid, e in EXPECTED["boxes"].items():
        x0, y0, x1, y1 = e["xyxy_clipped"]
        item = by_item[_item_id(e)]
        assert [x0, y0, x1 - x0, y1 - y0] in [
            a["bbox"] for a in item["annotations"] if a["type"] == "bbox"
        ], lid
    # road:1 has a hole: an RLE, which datumaro reads as a mask of 960 - 100 pixels
    masks = [a for it in items for a in it["annotations"] if a["type"] == "mask"]
    assert [m["pixels"] for m in masks] == [EXPECTED["polygons"]["road:1"]["area"]]


def _item_id(e: dict[str, Any]) -> str:
    # COCO file names of the sample: a file id on two sensors goes under <sensor>/
    name = e["file_id"] if e["file_id"] != "000001.png" else f"{e['sensor_id']}/000001.png"
    return name.rsplit(".", 1)[0]


def _random_set(seed: int = 0) -> deepen_export.LabelSet:
    """Boxes (some leaving the image), triangles, and 1- to 3-point labels (some collinear)."""
    from deepen_export.model import Boxes, Frames, LabelSet, Points, Polygons

    rng = np.random.default_rng(seed)
    n_img, n = 20, 120
    frames = Frames.from_columns(
        file_id=[f"{i:03d}.jpg" for i in range(n_img)], width=[640] * n_img, height=[480] * n_img
    )
    x0 = rng.uniform(-20, 600, (n, 2))
    boxes = Boxes.from_columns(
        frame=rng.integers(0, n_img, n), category=rng.integers(0, 3, n),
        label_id=[f"car:{i}" for i in range(n)], xyxy=np.hstack([x0, x0 + rng.uniform(2, 80, (n, 2))]),
    )  # fmt: skip
    tri = rng.uniform(0, 480, (n, 3, 2))
    polygons = Polygons.from_columns(
        frame=rng.integers(0, n_img, n), category=rng.integers(0, 3, n),
        label_id=[f"road:{i}" for i in range(n)], offsets=np.arange(n + 1),
        ring_offsets=np.arange(0, 3 * n + 1, 3), coords=tri.reshape(-1, 2),
    )  # fmt: skip
    counts = rng.integers(1, 4, n)
    pts = rng.uniform(0, 470, (int(counts.sum()), 2))
    pts[np.cumsum(counts)[:-1][::3]] = pts[np.cumsum(counts)[:-1][::3] - 1]  # repeated points
    points = Points.from_columns(
        frame=rng.integers(0, n_img, n), category=rng.integers(0, 3, n),
        label_id=[f"pole:{i}" for i in range(n)], offsets=np.r_[0, np.cumsum(counts)], coords=pts,
    )  # fmt: skip
    return LabelSet(
        frames=frames, categories=("car", "road", "pole"), boxes=boxes, polygons=polygons,
        points=points,
    )  # fmt: skip


def test_cocoeval_one_on_a_random_set(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "coco"
    coco.write(_random_set(), out)
    with quiet():
        gt = COCO(str(out / "annotations/instances_default.json"))
        assert _self_eval(gt, "bbox") == 1.0
        assert _self_eval(gt, "segm") == 1.0
    assert min(a["area"] for a in gt.dataset["annotations"]) > 0
