"""YOLO output read by Ultralytics' dataset rules and by datumaro's ``yolo`` importer.

Ultralytics pulls torch (several GB), so its three rules are restated here from its public
source, ``ultralytics/ultralytics`` ``ultralytics/data/utils.py`` (read at commit 00bfe34):

- ``check_det_dataset``: the dataset root is ``data["path"]`` or, without it, the yaml's own
  folder; a relative root that does not exist is taken under ``DATASETS_DIR``; ``train``/``val``
  are resolved under the root; a missing ``val`` raises ``FileNotFoundError``.
- ``img2label_paths``: the label of an image is found by replacing the *last* ``/images/`` of
  its path with ``/labels/`` and its extension with ``.txt``.
- ``verify_image_label``: the image opens and verifies with PIL, is at least 10 x 10 and of an
  accepted format; a label file with a line of more than 6 values is segments (boxes from their
  extent); rows need 5 columns, coordinates in [-0.01, 1.01], classes below ``nc``; an image
  without a label file is *missing* (background), an empty file *empty*.

``benchmarks/ultralytics_check.py`` runs the real package (and a 1-epoch CPU training) on the
same output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

import deepen_export
from converters import yolo
from deepen_export.model import Boxes, Frames, LabelSet
from tests.interop._datumaro import dump
from tests.interop.conftest import IMAGES, SAMPLES

IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
DATASETS_DIR = Path("/nonexistent/ultralytics/datasets")  # a root that is never there


def check_det_dataset(yaml_path: str) -> dict[str, Any]:
    """Ultralytics' root and split resolution (see the module docstring)."""
    data = yaml.safe_load(Path(yaml_path).read_text())
    assert "train" in data and "val" in data, "train and val are required"
    assert "names" in data or "nc" in data
    data["nc"] = len(data["names"])
    root = Path(data.get("path") or Path(yaml_path).parent)
    if not root.exists() and not root.is_absolute():
        root = (DATASETS_DIR / root).resolve()
    for k in ("train", "val", "test"):
        if data.get(k):
            data[k] = str((root / data[k]).resolve())
    if not Path(data["val"]).exists():
        raise FileNotFoundError(f"missing path {data['val']!r}")
    return data


def image_files(folder: str) -> list[str]:
    """The images of a split folder: every file below it with an image suffix."""
    found = []
    for dirpath, _, names in os.walk(folder):
        found += [
            os.path.join(dirpath, n) for n in names if n.rsplit(".", 1)[-1].lower() in IMG_FORMATS
        ]
    return sorted(found)


def img2label_paths(paths: list[str]) -> list[str]:
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    out = []
    for p in paths:
        head, sep, tail = p.rpartition(sa)
        swapped = head + sb + tail if sep else p
        out.append(swapped.rsplit(".", 1)[0] + ".txt")
    return out


def verify_image_label(image: str, label: str, nc: int) -> tuple[str, np.ndarray]:
    """``(state, rows)``: state ``found``/``empty``/``missing``; raises on a corrupt pair."""
    with Image.open(image) as im:
        im.verify()
        w, h = im.size
        assert w > 9 and h > 9, "image smaller than 10 pixels"
        assert (im.format or "").lower() in IMG_FORMATS
    if not os.path.isfile(label):
        return "missing", np.zeros((0, 5), dtype=np.float32)
    rows = [ln.split() for ln in Path(label).read_text().strip().splitlines() if ln]
    if any(len(r) > 6 for r in rows):  # segments: box from each polygon's extent
        boxes = []
        for r in rows:
            xy = np.array(r[1:], dtype=np.float32).reshape(-1, 2)
            lo, hi = xy.min(0), xy.max(0)
            boxes.append([float(r[0]), *((lo + hi) / 2), *(hi - lo)])
        arr = np.array(boxes, dtype=np.float32)
    else:
        arr = np.array(rows, dtype=np.float32).reshape(-1, 5) if rows else np.zeros((0, 5))
    if not len(arr):
        return "empty", arr
    assert arr.shape[1] == 5, "labels need 5 columns"
    assert arr[:, 1:].max() <= 1.01 and arr.min() >= -0.01, "coordinates not normalised"
    assert arr[:, 0].max() < nc, "class id beyond names"
    return "found", arr


def _sample() -> LabelSet:
    return deepen_export.read_labels(SAMPLES / "image_dataset")


def _walk(data: dict[str, Any], split: str) -> dict[str, tuple[str, np.ndarray]]:
    imgs = image_files(data[split])
    return {
        i: verify_image_label(i, lab, data["nc"])
        for i, lab in zip(imgs, img2label_paths(imgs), strict=True)
    }


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_ultralytics_rules_from_another_directory(
    tmp_path: Path, elsewhere: Path, task: str
) -> None:
    out = tmp_path / "out" / "yolo"
    yolo.write(_sample(), out, on_unsupported="drop", task=task, images=IMAGES, copy_images=True)
    # the user trains from elsewhere: `yolo train data=../../out/yolo/data.yaml`
    data = check_det_dataset(os.path.relpath(out / "data.yaml", elsewhere))
    seen = _walk(data, "train")
    assert len(seen) == 5  # 000004.png is "not labelled yet": no image, no label
    states = {Path(k).name: v[0] for k, v in seen.items()}
    assert states["000003.png"] == "empty"  # reviewed, no objects: a negative
    assert all(states[n] == "found" for n in states if n != "000003.png"), states
    sample = json.loads((SAMPLES / "expected.json").read_text())["image_dataset"]
    n_rows = sum(len(v[1]) for v in seen.values())
    # every box and polygon part: 5 boxes + road, building (2 parts in segment), vegetation
    parts = 5 + 1 + (2 if task == "segment" else 1) + (2 if task == "segment" else 1)
    assert len(sample["boxes"]) == 5 and n_rows == parts


def test_images_folder_inside_a_file_id(tmp_path: Path, elsewhere: Path) -> None:
    # a camera image of a 3D dataset: file id images/camera_0/0000.png
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["images/camera_0/0000.png"], width=[20], height=[10]),
        categories=("car",),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[2, 2, 6, 6]]),
    )
    src = tmp_path / "src" / "images" / "camera_0"
    src.mkdir(parents=True)
    Image.new("RGB", (20, 10)).save(src / "0000.png")
    for layout, want in (("flat", "found"), ("nested", "missing")):
        out = tmp_path / "out" / layout
        yolo.write(ls, out, layout=layout, images=tmp_path / "src", copy_images=True)
        data = check_det_dataset(str(out / "data.yaml"))
        ((state, rows),) = _walk(data, "train").values()
        # nested (the earlier layout): images/images/camera_0/0000.png, Ultralytics swaps the
        # last /images/ and looks in images/labels/camera_0/: every image is background
        assert state == want, layout
        if layout == "flat":  # box [2, 2, 6, 6] on 20 x 10: centre (4, 4), size 4 x 4
            np.testing.assert_allclose(rows, [[0, 0.2, 0.4, 0.2, 0.4]], atol=1e-6)


def test_split_lists(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "yolo"
    yolo.write(
        _sample(), out, on_unsupported="drop", images=IMAGES, copy_images=True,
        split="train:0.5,val:0.5", seed=1,
    )  # fmt: skip
    data = check_det_dataset(str(out / "data.yaml"))
    train, val = _walk(data, "train"), _walk(data, "val")
    assert not set(train) & set(val) and len(train) + len(val) == 5
    assert all(s in ("found", "empty") for s, _ in [*train.values(), *val.values()])


def test_datumaro_yolo(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "yolo"
    yolo.write(_sample(), out, on_unsupported="drop", images=IMAGES, copy_images=True)
    ds = dump(out, "yolo", cwd=elsewhere)
    assert ds["labels"] == list(_sample().categories)
    items = {it["id"]: it for it in ds["items"]}
    assert set(items) == {
        "000002",
        "000003",
        "inner_kitty__000059",
        "sensor1__000001",
        "sensor2__000001",
    }
    assert all(it["image_exists"] for it in items.values())
    # car:1 pixel-corner [10, 8, 30, 20] on sensor1's 64 x 48 image
    car = [a["bbox"] for a in items["sensor1__000001"]["annotations"] if a["label"] == "car"]
    assert any(np.allclose(b, [10, 8, 20, 12], atol=1e-3) for b in car)
