"""``convert SNAPSHOT --to parquet`` and ``export --to parquet`` stream: the whole-read output.

A snapshot folder (``deepen-export pull``) adds to its labels file the dataset id, the profile's
category order, the files list (unlabelled files become frames, index = position), image sizes
and the 3D marking. Streamed a batch at a time (:class:`SnapshotBatches`), the files written are
those of ``read_labels(folder)`` written whole: frames and report byte for byte, the labels
table's schema and metadata, its rows as a multiset (the same bytes when one batch holds all).
A snapshot with a media zip or paint is read whole, and says so.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepen_export
from converters import parquet
from deepen_export._media import write_images_json
from deepen_export.parse._source import NotStreamable, SnapshotBatches
from deepen_export.pipeline import stream_parquet
from tests.conftest import SAMPLES
from tests.test_parquet_stream import _same_files, _same_output

PROFILE_ORDER = ["zebra", "truck", "car"]
"""Neither sorted nor the order the labels first use them (car, bus, zebra)."""


def _label(i: int, fid: str, cat: str, sensor: str = "") -> dict[str, Any]:
    lab: dict[str, Any] = {
        "file_id": fid,
        "label_id": f"{cat}:{i}",
        "label_category_id": cat,
        "stage_id": "QA",
        "attributes": {"occluded": ["no", "yes"][i % 2]},
    }
    if sensor:
        lab["sensor_id"] = sensor
    if i % 3 == 2:
        lab |= {"label_type": "polygon", "polygons": [[[0, 0], [9, 0], [9, 9 + i]]]}
    else:
        lab |= {"label_type": "box", "box": [i, 2, 30, 40]}
    return lab


def make_snapshot(
    root: Path,
    labels: list[dict[str, Any]] | dict[str, list[dict[str, Any]]],
    files: list[dict[str, Any]] | None,
    *,
    profile: list[str] | None = PROFILE_ORDER,
    dataset_type: str = "images",
    image_sizes: dict[str, tuple[int, int]] | None = None,
) -> Path:
    """A snapshot folder as ``pull`` lays it out (labels, files, profile, dataset, sizes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps({"labels": labels}))
    if files is not None:
        (root / "files.json").write_text(json.dumps({"files": files}))
    if profile is not None:
        feats = {"box": {"label_category_ids": profile}}
        (root / "profile.json").write_text(json.dumps({"features": feats}))
    dataset = {"dataset_id": "ds1", "dataset_type": dataset_type}
    (root / "dataset.json").write_text(json.dumps(dataset))
    manifest = {"dataset_id": "ds1", "label_set": "default", "fetched_at": "2026-12-06T20:00:00Z"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    if image_sizes is not None:
        write_images_json(root / "images.json", image_sizes, "uploaded zip")
    return root


FILES = [  # sequence order: 10.png before 2.png; 5.png and 7.png carry no labels
    {"file_id": "1.png", "sensors": ["cam"], "status": "done", "width": 640, "height": 480},
    {"file_id": "10.png", "sensors": ["cam"], "status": "done", "width": 320, "height": 240},
    {"file_id": "5.png", "sensors": ["cam"], "status": "done", "width": 100, "height": 50},
    {"file_id": "2.png", "sensors": ["cam"], "status": "done"},  # size from images.json
    {"file_id": "7.png", "sensors": ["cam", "cam2"], "status": "waiting"},
    {"file_id": "3.png", "sensors": ["cam"], "status": "done", "width": 64, "height": 48},
]
LABELLED = ["2.png", "1.png", "1.png", "10.png", "3.png", "2.png", "10.png", "3.png", "1.png"]
CATS = ["car", "bus", "zebra"]


def _labels(files: list[str] = LABELLED) -> list[dict[str, Any]]:
    return [_label(i, f, CATS[i % 3], "cam") for i, f in enumerate(files)]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    return make_snapshot(
        tmp_path / "snap", _labels(), FILES, image_sizes={"2.png": (800, 600)}
    )


def _whole(snap: Path, out: Path) -> Any:
    return parquet.write(deepen_export.read_labels(snap), out)


@pytest.mark.parametrize("batch_size", [1, 2, 7, 100])
def test_streamed_snapshot_equals_the_whole_read(snapshot, tmp_path, batch_size):
    report = _whole(snapshot, tmp_path / "whole")
    done = stream_parquet(snapshot, tmp_path / "streamed", batch_size=batch_size)
    assert done.whole is None
    assert done.labels == report.written["labels"] == len(LABELLED)
    _same_output(tmp_path / "whole", tmp_path / "streamed")
    if batch_size == 100:  # one batch: the same bytes
        _same_files(tmp_path / "whole", tmp_path / "streamed")


def test_streamed_frames_hold_the_unlabelled_listed_files_with_sizes(snapshot, tmp_path):
    stream_parquet(snapshot, tmp_path / "o", batch_size=2)
    con = duckdb.connect()
    frames = con.execute(
        "SELECT file_id, sensor_id, frame_index, width, height, dataset_id "
        f"FROM read_parquet('{tmp_path / 'o' / 'frames.parquet'}')"
    ).fetchall()
    assert frames == [
        ("1.png", "cam", 0, 640, 480, "ds1"),
        ("10.png", "cam", 1, 320, 240, "ds1"),
        ("5.png", "cam", 2, 100, 50, "ds1"),
        ("2.png", "cam", 3, 800, 600, "ds1"),
        ("7.png", "cam", 4, None, None, "ds1"),
        ("7.png", "cam2", 4, None, None, "ds1"),
        ("3.png", "cam", 5, 64, 48, "ds1"),
    ]
    meta = pq.read_schema(tmp_path / "o" / "labels.parquet").metadata
    doc = json.loads(meta[b"deepen_export"])
    # the profile's order, then the others sorted: not first-seen, not sorted
    assert doc["categories"] == ["zebra", "truck", "car", "bus"]
