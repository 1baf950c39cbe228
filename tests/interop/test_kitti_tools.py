"""KITTI object and tracking outputs read by datumaro (``kitti``, ``kitti3d``) and TrackEval.

TrackEval 1.3 (``trackeval`` from PyPI) is run as is: its ``Kitti2DBox`` loader reads our
``label_02/`` with our ``evaluate_tracking.seqmap.training``, and the ground truth is scored
against itself as a tracker.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepen_export
from converters import kitti, kitti_tracking
from deepen_export.model import Boxes, Frames, LabelSet
from tests.interop._datumaro import dump
from tests.interop.conftest import SAMPLES

EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["lidar_sequence"]


def _lidar() -> LabelSet:
    return deepen_export.read_labels(SAMPLES / "lidar_sequence")


def test_datumaro_kitti3d(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "kitti"
    kitti.write(_lidar(), out, on_unsupported="drop")  # default: no media, still image_2/
    assert (out / "image_2").is_dir()
    ds = dump(out, "kitti3d", cwd=elsewhere)
    items = {it["id"]: it for it in ds["items"]}
    assert sorted(items) == ["000000", "000001", "000002"]
    cube = EXPECTED["frames"]["0000.pcd"]["cuboids"]["car:1"]["kitti_camera_0"]
    cars = [a for a in items["000000"]["annotations"] if a["label"] == "Car"]
    got = next(
        a
        for a in cars
        if a["attributes"].get("rotation_y") is not None
        and abs(a["attributes"]["rotation_y"] - cube["rotation_y"]) < 0.01
    )
    # hand-derived (expected.json): dimensions h w l, bottom-centre location, 2 decimals
    np.testing.assert_allclose(got["bbox"][:2], cube["bbox_clipped"][:2], atol=0.006)
    # occluded 0 (not -1, which datumaro reads as occluded)
    assert all(
        a["attributes"]["occluded"] in (0, 1, 2, 3)
        for it in items.values()
        for a in it["annotations"]
    )


def test_datumaro_kitti(tmp_path: Path, elsewhere: Path) -> None:
    ls = deepen_export.read_labels(SAMPLES / "image_dataset").without(
        "polygons", "polylines", "points", "scenes"
    )
    out = tmp_path / "out" / "kitti"
    kitti.write(ls, out, images=SAMPLES / "image_dataset/images")
    ds = dump(out, "kitti", cwd=elsewhere)
    anns = [a for it in ds["items"] for a in it["annotations"]]
    assert len(anns) == 5
    # no occlusion attribute in the labels: occluded 0, read as not occluded
    assert all(a["attributes"]["occluded"] is False for a in anns)
    assert all(it["image_exists"] for it in ds["items"] if it["annotations"])


def _evaluate(gt: Path, work: Path) -> dict[str, Any]:
    """TrackEval's KITTI 2D box CLEAR metrics of the ground truth scored against itself."""
    import trackeval

    trackers = work / "trackers"
    data = trackers / "gt_as_tracker" / "data"
    data.mkdir(parents=True)
    for f in (gt / "label_02").iterdir():  # a tracker file is a GT row plus a score
        rows = [ln + " 1.0" for ln in f.read_text().splitlines()]
        (data / f.name).write_text("".join(r + "\n" for r in rows))
    config = {
        "GT_FOLDER": str(gt),
        "TRACKERS_FOLDER": str(trackers),
        "OUTPUT_FOLDER": str(work / "results"),
        "PRINT_CONFIG": False,
    }
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "TIME_PROGRESS": False,
        "DISPLAY_LESS_PROGRESS": True,
        "BREAK_ON_ERROR": True,
        "RETURN_ON_ERROR": False,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.Kitti2DBox(config)
        res, _ = evaluator.evaluate([dataset], [trackeval.metrics.CLEAR({"PRINT_CONFIG": False})])
    return res["Kitti2DBox"]["gt_as_tracker"]["COMBINED_SEQ"]


def test_trackeval_reads_and_scores_one(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "kt"
    kitti_tracking.write(_lidar(), out, on_unsupported="drop")
    res = _evaluate(out, tmp_path / "te")
    car = res["car"]["CLEAR"]
    # car:1 is on all 3 frames inside the camera view; car:4 is behind it (truncated 2)
    assert car["CLR_TP"] > 0 and car["MOTA"] == 1.0 and car["IDSW"] == 0
    assert res["pedestrian"]["CLEAR"]["MOTA"] == 1.0


def test_trackeval_other_categories_and_no_camera(tmp_path: Path, elsewhere: Path) -> None:
    frames = Frames.from_columns(
        file_id=["0.png", "1.png"], dataset_id=["d", "d"], width=[200, 200], height=[100, 100]
    )
    boxes = Boxes.from_columns(
        frame=[0, 1, 0, 1], category=[0, 0, 1, 2], label_id=["car:1", "car:1", "bus:1", "lane_marking:1"],
        xyxy=[[10, 10, 60, 60], [12, 10, 62, 60], [100, 10, 150, 60], [0, 80, 100, 90]],
    )  # fmt: skip
    ls = LabelSet(frames=frames, categories=("car", "bus", "lane_marking"), boxes=boxes)
    out = tmp_path / "out" / "kt"
    report = kitti_tracking.write(ls, out)
    text = (out / "label_02/0000.txt").read_text()
    assert " Bus " not in text and " Lane_marking " not in text  # TrackEval refuses them
    res = _evaluate(out, tmp_path / "te")
    assert res["car"]["CLEAR"]["MOTA"] == 1.0 and res["car"]["CLEAR"]["CLR_TP"] == 2
    assert any(i.action == "changed" and "Misc" in i.reason for i in report)
    back = kitti_tracking.read(out)  # categories come back from mapping.json
    assert sorted(back.categories) == ["bus", "car", "lane_marking"]
    # LiDAR only (no camera): rows carry no 2D box, truncated 2: not visible ground truth
    out2 = tmp_path / "out" / "kt2"
    kitti_tracking.write(_lidar(), out2, on_unsupported="drop", camera=None)
    res2 = _evaluate(out2, tmp_path / "te2")
    assert res2["car"]["CLEAR"]["CLR_TP"] == 0 and res2["car"]["CLEAR"]["CLR_FN"] == 0
    shutil.rmtree(tmp_path / "te2")


@pytest.fixture(autouse=True)
def _no_pycache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
