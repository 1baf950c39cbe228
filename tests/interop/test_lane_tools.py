"""TuSimple and CULane outputs read by the benchmarks' own rules.

Neither tool is on PyPI; their rules are restated here from their public sources:

- TuSimple ``TuSimple/tusimple-benchmark`` ``evaluate/lane.py`` (``LaneEval``): per image, each
  ground-truth lane gets a threshold of ``20 / cos(angle)`` pixels (angle of a least-squares fit
  of x on y over its valid points); a predicted lane's accuracy on it is the share of rows whose
  x values (``-2`` read as ``-100``) differ by less than that threshold; a GT lane is matched by
  its best prediction, counted a false negative below 0.85; with more than 4 GT lanes, one false
  negative and the weakest lane's accuracy are dropped; the image scores
  ``sum / max(min(4, n_gt), 1)``; the file scores the mean over the GT's images.
- CULane via lanedet (``Turoad/lanedet`` ``lanedet/datasets/culane.py``): it opens
  ``list/train_gt.txt`` (training) and ``list/test.txt`` (testing); each line's first field is
  the image path (a leading ``/`` stripped) under the data root; the annotation is the image path
  with its 3-letter extension replaced by ``lines.txt``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

import deepen_export
from converters import culane, tusimple
from deepen_export.model import Frames, LabelSet, Polylines
from tests.interop.conftest import SAMPLES


def _angle(xs: np.ndarray, ys: np.ndarray) -> float:
    ok = xs >= 0
    if ok.sum() <= 1:
        return 0.0
    slope = np.polyfit(ys[ok], xs[ok], 1)[0]  # least squares x = k y + b
    return math.atan(slope)


def _line_accuracy(pred: np.ndarray, gt: np.ndarray, thresh: float) -> float:
    p = np.where(pred >= 0, pred, -100)
    g = np.where(gt >= 0, gt, -100)
    return float(np.mean(np.abs(p - g) < thresh))


def _bench(pred: list[list[float]], gt: list[list[float]], ys: list[int]) -> float:
    y = np.asarray(ys, dtype=float)
    accs = []
    fn = 0
    for lane in gt:
        g = np.asarray(lane, dtype=float)
        thresh = 20 / math.cos(_angle(g, y))
        best = max((_line_accuracy(np.asarray(p, float), g, thresh) for p in pred), default=0.0)
        fn += best < 0.85
        accs.append(best)
    s = sum(accs)
    if len(gt) > 4:
        s -= min(accs)
    return s / max(min(4.0, len(gt)), 1.0)


def bench_one_submit(pred_file: Path, gt_file: Path) -> float:
    preds = [json.loads(ln) for ln in pred_file.read_text().splitlines()]
    gts = {g["raw_file"]: g for g in (json.loads(ln) for ln in gt_file.read_text().splitlines())}
    acc = 0.0
    for p in preds:
        g = gts[p["raw_file"]]
        acc += _bench(p["lanes"], g["lanes"], g["h_samples"])
    return acc / len(gts)


def _many_lanes() -> LabelSet:
    # 7 vertical lanes on one 1280 x 720 image, one image without lanes
    xs = [100, 300, 500, 640, 780, 980, 1180]
    coords = [[x, y] for x in xs for y in (720, 160)]
    lanes = Polylines.from_columns(
        frame=[0] * 7, category=[0] * 7, label_id=[f"lane:{i}" for i in range(7)],
        offsets=np.arange(8), part_offsets=np.arange(0, 15, 2), coords=coords,
    )  # fmt: skip
    frames = Frames.from_columns(file_id=["a.jpg", "b.jpg"], width=[1280] * 2, height=[720] * 2)
    return LabelSet(frames=frames, categories=("lane",), polylines=lanes)


def test_tusimple_ground_truth_scores_one_against_itself(tmp_path: Path, elsewhere: Path) -> None:
    sample = deepen_export.read_labels(SAMPLES / "image_dataset")
    for name, ls in (("sample", sample), ("many", _many_lanes())):
        out = tmp_path / name
        tusimple.write(ls, out, on_unsupported="drop")
        gt = out / "label_data.json"
        assert bench_one_submit(gt, gt) == 1.0, name
    lines = [json.loads(ln) for ln in (tmp_path / "many/label_data.json").read_text().splitlines()]
    # the 5 lanes nearest the centre are kept; b.jpg (no lanes) is left out
    assert [ln["raw_file"] for ln in lines] == ["a.jpg"] and len(lines[0]["lanes"]) == 5
    # written with every lane and the empty image (the earlier output) it scores above 1 / below
    tusimple.write(_many_lanes(), tmp_path / "old", max_lanes=0, empty=True)
    old = tmp_path / "old/label_data.json"
    assert bench_one_submit(old, old) != 1.0


def test_culane_lists_lanedet_opens(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "cu"
    culane.write(deepen_export.read_labels(SAMPLES / "image_dataset"), out, on_unsupported="drop")
    for listing in ("train_gt.txt", "test.txt"):
        lines = (out / "list" / listing).read_text().splitlines()
        assert lines
        for line in lines:
            img = line.split()[0].lstrip("/")
            anno = out / (img[:-3] + "lines.txt")
            assert anno.is_file(), anno
