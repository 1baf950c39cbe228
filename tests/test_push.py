"""``deepen-export push`` end to end against the Deepen-like server on 127.0.0.1.

The main paths run through the installed console script (``.venv/bin/deepen-export``) as a
user would; the refusals run through click's runner (same code, no process start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from click.testing import CliRunner, Result
from pycocotools.coco import COCO

from deepen_export.cli import main
from tests._deepen_server import CLIENT_ID, TOKEN, DeepenServer

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
IMG = SAMPLES / "image_dataset"
LIDAR = SAMPLES / "lidar_sequence"
IMG_DS = json.loads((IMG / "dataset.json").read_text())["dataset_id"]
LIDAR_DS = json.loads((LIDAR / "dataset.json").read_text())["dataset_id"]
CLI = Path(sys.executable).with_name("deepen-export")

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _add_dataset(srv: DeepenServer, folder: Path, labels: str, profile: dict[str, Any]) -> str:
    ds = json.loads((folder / "dataset.json").read_text())
    ds["labelling_profile_id"] = profile["profile_id"]
    srv.datasets[ds["dataset_id"]] = ds
    srv.files[ds["dataset_id"]] = json.loads((folder / "files.json").read_text())
    srv.labels[ds["dataset_id"]] = json.loads((folder / labels).read_text())
    srv.profiles[profile["profile_id"]] = profile
    if (folder / "media" / "dataset.zip").is_file():
        srv.media[ds["dataset_id"]] = (folder / "media" / "dataset.zip").read_bytes()
    return str(ds["dataset_id"])


LIDAR_PROFILE = {
    "profile_id": "prof_kitti",
    "profile_name": "kitti classes",
    "features": {
        "3d_bbox": {"attributes": {}, "label_category_ids": ["car", "pedestrian", "cyclist"]},
        "box": {"attributes": {}, "label_category_ids": ["car"]},
    },
}


@pytest.fixture
def server() -> Iterator[DeepenServer]:
    srv = DeepenServer().start()
    _add_dataset(srv, IMG, "labels_by_file.json", json.loads((IMG / "profile.json").read_text()))
    _add_dataset(srv, LIDAR, "labels.json", LIDAR_PROFILE)
    yield srv
    srv.stop()


@pytest.fixture
def env(server: DeepenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    values = {
        "DEEPEN_API_URL": server.url,
        "DEEPEN_CLIENT_ID": CLIENT_ID,
        "DEEPEN_API_TOKEN": TOKEN,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)  # a stopped push leaves its state file here
    return {**os.environ, **values}


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    """The installed console script, in a subprocess."""

    def run(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(CLI), *map(str, args)], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


@pytest.fixture
def run(env: dict[str, str]) -> Callable[..., Result]:
    """click's runner on the same command group (for the refusals: no process start)."""
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _posts(server: DeepenServer) -> int:
    return server.count(r"/datasets/[^/]+/labels$", "POST")


# -- COCO predictions: push, pull, convert back ------------------------------------------------


def _predictions(gt: Path) -> list[dict[str, Any]]:
    doc = json.loads(gt.read_text())
    img = {
        im["deepen_file_id"]: im for im in doc["images"] if im.get("deepen_sensor_id") != "sensor2"
    }
    cat = {c["name"]: c["id"] for c in doc["categories"]}
    a, b = img["000002.png"], img["inner_kitty/000059.png"]
    return [
        {"image_id": a["id"], "category_id": cat["car"], "bbox": [10.25, 12.5, 20.0, 8.75], "score": 0.91},
        {"image_id": a["id"], "category_id": cat["pedestrian"], "bbox": [40, 5, 6, 18], "score": 0.64},
        {"image_id": a["id"], "category_id": cat["car"], "bbox": [1, 1, 5, 5], "score": 0.12},
        {"image_id": b["id"], "category_id": cat["road"], "score": 0.8, "bbox": [2, 30, 50, 25],
         "segmentation": [[2.0, 30.0, 52.0, 30.0, 40.5, 55.0, 10.0, 55.0]]},
        {"image_id": b["id"], "category_id": cat["car"], "bbox": [60, 10, 12, 9], "score": 0.5},
    ]  # fmt: skip


def test_coco_predictions_round_trip_through_deepen(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    cli("pull", IMG_DS, "-o", tmp_path / "snap")
    cli("convert", tmp_path / "snap", "--to", "coco", "-o", tmp_path / "gt", "--images", IMG / "images",
        "--on-unsupported", "drop")  # fmt: skip
    preds = _predictions(tmp_path / "gt" / "annotations.json")
    (tmp_path / "preds.json").write_text(json.dumps(preds))

    args = ("push", tmp_path / "preds.json", IMG_DS, "--gt", tmp_path / "gt" / "annotations.json")
    done = cli(*args, "--min-score", "0.5")
    kept = [p for p in preds if p["score"] >= 0.5]
    assert f"adds {len(kept)}, changes 0" in done.stdout
    assert _posts(server) == 1 and len(server.pushed[(IMG_DS, "predictions")]) == len(kept)
    assert not any(k[1] == "predictions" for k in server.pushed if k[0] != IMG_DS)

    cli("pull", IMG_DS, "-o", tmp_path / "snap_pred", "--label-set", "predictions")
    cli(
        "convert",
        tmp_path / "snap_pred",
        "--to",
        "coco",
        "-o",
        tmp_path / "back",
        "--images",
        IMG / "images",
    )
    gt, back = (
        COCO(str(tmp_path / "gt" / "annotations.json")),
        COCO(str(tmp_path / "back" / "annotations.json")),
    )
    assert [c["name"] for c in back.loadCats(back.getCatIds())] == [
        c["name"] for c in gt.loadCats(gt.getCatIds())
    ]
    got = _by_image_and_box(back)
    want = {(_file(gt, p["image_id"]), _cat(gt, p["category_id"]), tuple(np.round(p["bbox"], 6))): p
            for p in kept}  # fmt: skip
    assert set(got) == set(want)  # same boxes (to 1e-6 px), same categories, one per prediction
    for key, p in want.items():
        if "segmentation" in p:
            a = shapely.Polygon(np.reshape(p["segmentation"][0], (-1, 2)))
            b = shapely.Polygon(np.reshape(got[key]["segmentation"][0], (-1, 2)))
            assert a.symmetric_difference(b).area < 1e-9

    again = cli(*args, "--min-score", "0.5")  # the same file once more: nothing changes
    assert f"adds 0, changes 0, {len(kept)} unchanged" in again.stdout
    assert "nothing to push" in again.stdout
    assert _posts(server) == 1


def _file(coco: COCO, image_id: int) -> str:
    return str(coco.imgs[image_id].get("deepen_file_id", coco.imgs[image_id]["file_name"]))


def _cat(coco: COCO, cat_id: int) -> str:
    return str(coco.cats[cat_id]["name"])


def _by_image_and_box(coco: COCO) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (_file(coco, a["image_id"]), _cat(coco, a["category_id"]), tuple(np.round(a["bbox"], 6))): a
        for a in coco.loadAnns(coco.getAnnIds())
    }


def test_dry_run_sends_no_write_and_lists_changes(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    preds = [
        {"image_id": "000002.png", "category_id": "car", "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": "000003.png", "category_id": "car", "bbox": [5, 6, 7, 8], "score": 0.9},
    ]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    cli("push", tmp_path / "p.json", IMG_DS)
    writes = [s for s in server.seen if s.method != "GET"]
    (tmp_path / "p.json").write_text(json.dumps(preds[:1]))  # the second one left out
    preds[0]["bbox"] = [1, 2, 3, 5]  # changed
    preds.append({"image_id": "000004.png", "category_id": "car", "bbox": [0, 0, 1, 1], "score": 1})
    (tmp_path / "q.json").write_text(json.dumps(preds))
    done = cli("push", tmp_path / "q.json", IMG_DS, "--dry-run", "--json")
    doc = json.loads(done.stdout)
    assert [a["file_id"] for a in doc["added"]] == ["000004.png"]
    assert [c["file_id"] for c in doc["changed"]] == ["000002.png"]
    assert doc["unchanged"] == 1 and doc["removed"] == [] and doc["sent"] == 0
    text = cli("push", tmp_path / "p.json", IMG_DS, "--dry-run").stdout
    assert "would add 0, changes 0, 1 unchanged, 1 on the dataset not in the source" in text
    assert "nothing was sent" in text
    assert [s for s in server.seen if s.method != "GET"] == writes  # no write at all
