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
import os
import shutil
import subprocess
import sys
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
from tests._deepen_server import CLIENT_ID, DS3D, DSIMG, TOKEN
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
    return make_snapshot(tmp_path / "snap", _labels(), FILES, image_sizes={"2.png": (800, 600)})


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


def test_a_dict_shaped_labels_file_lists_files_without_labels(tmp_path):
    by_file: dict[str, list[dict[str, Any]]] = {}
    for lab in _labels():
        by_file.setdefault(lab["file_id"], []).append(lab)
    by_file = {"5.png": [], **by_file, "9.png": []}  # 9.png: not in files.json either
    snap = make_snapshot(tmp_path / "snap", by_file, FILES)
    _whole(snap, tmp_path / "whole")
    for batch_size in (1, 7):
        out = tmp_path / f"streamed{batch_size}"
        stream_parquet(snap, out, batch_size=batch_size)
        _same_output(tmp_path / "whole", out)
    got = pq.read_table(tmp_path / "streamed1" / "frames.parquet").column("file_id").to_pylist()
    assert got == ["1.png", "10.png", "5.png", "2.png", "7.png", "7.png", "3.png", "9.png"]


def test_without_files_json_or_profile_the_labels_file_order_holds(tmp_path):
    snap = make_snapshot(tmp_path / "snap", _labels(), None, profile=None)
    _whole(snap, tmp_path / "whole")
    stream_parquet(snap, tmp_path / "streamed", batch_size=2)
    _same_output(tmp_path / "whole", tmp_path / "streamed")


def test_a_3d_snapshot_without_media_or_paint_streams(tmp_path):
    labels = []
    for i in range(12):
        common = {"file_id": f"{i // 3}.pcd", "label_id": f"car:{i}", "label_category_id": "car"}
        cube = {"cx": i, "cy": 2, "cz": 1, "l": 4, "w": 2, "h": 1.5, "rot_z": 0.1 * i}
        labels.append(
            {**common, "label_type": "3d_bbox", "sensor_id": "lidar", "three_d_bbox": cube}
        )
        if i % 2:
            box = {"label_type": "box", "sensor_id": "camera_0", "box": [i, 1, 5, 5]}
            labels.append({**common, "label_id": f"car:{i + 100}", **box})
    files = [{"file_id": f"{i}.pcd", "sensors": ["lidar", "camera_0"]} for i in range(6)]
    snap = make_snapshot(tmp_path / "snap", labels, files, dataset_type="3D")
    assert deepen_export.read_labels(snap).lidar_frames().size == 6
    _whole(snap, tmp_path / "whole")
    for batch_size in (1, 7):
        done = stream_parquet(snap, tmp_path / f"s{batch_size}", batch_size=batch_size)
        assert done.whole is None
        _same_output(tmp_path / "whole", tmp_path / f"s{batch_size}")


def test_paint_is_read_whole_and_says_why(tmp_path):
    snap = make_snapshot(tmp_path / "snap", _labels(), FILES)
    shutil.copytree(SAMPLES / "painting2d", snap / "painting2d")
    with pytest.raises(NotStreamable, match="2D painting"):
        SnapshotBatches(snap)
    done = stream_parquet(snap, tmp_path / "o", batch_size=1)
    assert done.whole == "it has 2D painting (painting2d/)"
    assert done.labels == len(LABELLED)
    _whole(snap, tmp_path / "whole")
    _same_files(tmp_path / "whole", tmp_path / "o")  # the whole-file path: the same bytes


def test_labels_on_a_file_the_files_list_lacks_fall_back_to_the_whole_read(tmp_path):
    labels = [*_labels(), _label(50, "8.png", "car", "cam")]  # 8.png: not in files.json
    snap = make_snapshot(tmp_path / "snap", labels, FILES)
    _whole(snap, tmp_path / "whole")
    done = stream_parquet(snap, tmp_path / "streamed", batch_size=2)
    assert done.whole is not None and "'8.png'" in done.whole
    _same_files(tmp_path / "whole", tmp_path / "streamed")


NAMES = [f"{i}.png" for i in (1, 2, 3, 10, 11, 20)]


@st.composite
def snapshots(draw: st.DrawFn) -> dict[str, Any]:
    """Labels over some files, a files list in some order (some files unlabelled), a profile."""
    listed = draw(st.permutations(NAMES))
    n_listed = draw(st.integers(1, len(NAMES)))
    files = [
        {"file_id": f, "sensors": ["cam"], "status": draw(st.sampled_from(["done", "waiting"]))}
        | ({"width": 10 + i, "height": 5 + i} if draw(st.booleans()) else {})
        for i, f in enumerate(listed[:n_listed])
    ]
    on = st.sampled_from([f["file_id"] for f in files])
    cats = st.sampled_from(["bus", "car", "truck", "zebra"])
    labels = [_label(i, draw(on), draw(cats), "cam") for i in range(draw(st.integers(0, 14)))]
    profile = draw(st.lists(cats, unique=True, max_size=3))
    return {"labels": labels, "files": files, "profile": profile or None}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=snapshots(), batch_size=st.sampled_from([1, 3, 7]))
def test_streamed_equals_whole_on_random_snapshots(tmp_path_factory, case, batch_size):
    root = tmp_path_factory.mktemp("case")
    snap = make_snapshot(root / "snap", case["labels"], case["files"], profile=case["profile"])
    _whole(snap, root / "whole")
    done = stream_parquet(snap, root / "streamed", batch_size=batch_size)
    assert done.whole is None
    _same_output(root / "whole", root / "streamed")


def _exe() -> str:
    """The installed ``deepen-export`` console script of this Python."""
    exe = Path(sys.executable).parent / "deepen-export"
    assert exe.is_file(), "pip install -e . first"
    return str(exe)


def _run(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [_exe(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _read_back_equal(whole: Path, streamed: Path) -> None:
    """DuckDB and pyarrow read the same frames and the same labels rows from both."""
    for name in ("frames", "labels"):
        a, b = (pq.read_table(d / f"{name}.parquet") for d in (whole, streamed))
        assert a.schema == b.schema and a.num_rows == b.num_rows, name
        key = "label_id" if name == "labels" else "file_id"
        assert a.sort_by(key).to_pylist() == b.sort_by(key).to_pylist(), name
    sql = "SELECT * EXCLUDE (category), category::VARCHAR FROM read_parquet('{}') ORDER BY label_id"
    con = duckdb.connect()
    rows = [con.execute(sql.format(d / "labels.parquet")).fetchall() for d in (whole, streamed)]
    assert rows[0] == rows[1]


def test_console_script_streams_a_snapshot_in_small_batches(snapshot, tmp_path):
    docs = {}
    for name, extra in (("whole", ["-O", "stream=false"]), ("b1", ["-O", "batch_size=1"]),
                        ("b7", ["-O", "batch_size=7"]), ("default", [])):  # fmt: skip
        out = tmp_path / name
        proc = _run("convert", snapshot, "--to", "parquet", "-o", out, "--json", *extra)
        assert "read whole" not in proc.stderr
        docs[name] = json.loads(proc.stdout) | {"output": None}
    assert docs["whole"] == docs["b1"] == docs["b7"] == docs["default"]
    for name in ("b1", "b7"):
        _same_output(tmp_path / "whole", tmp_path / name)
        _read_back_equal(tmp_path / "whole", tmp_path / name)
    _same_files(tmp_path / "whole", tmp_path / "default")


@pytest.mark.parametrize("dataset", [DSIMG, DS3D])
def test_export_streams_after_the_pull(server, tmp_path, dataset):
    env = {"DEEPEN_API_URL": server.url, "DEEPEN_CLIENT_ID": CLIENT_ID, "DEEPEN_API_TOKEN": TOKEN}
    snap = tmp_path / "snap"
    for name, extra in (("b1", ["-O", "batch_size=1"]), ("default", [])):
        out, whole = tmp_path / name, tmp_path / f"{name}.whole"
        args = ["--to", "parquet", "-o", out, "--snapshot", snap, "--json", *extra]
        proc = _run("export", dataset, *args, env=env)
        # the 3D pull downloads the media zip (frames data, calibration): read whole, said so
        assert ("read whole, not streamed" in proc.stderr) == (dataset == DS3D)
        doc = json.loads(proc.stdout)
        assert doc["dataset_id"] == dataset and doc["snapshot"] == str(snap)
        # each pull stamps its time into the snapshot: compare with this pull's whole read
        ref = _run("convert", snap, "--to", "parquet", "-o", whole, "-O", "stream=false", "--json")
        assert json.loads(ref.stdout) | {"output": None} == {
            k: v for k, v in doc.items() if k not in ("dataset_id", "snapshot", "labels")
        } | {"output": None}
        _same_output(whole, out)
        _read_back_equal(whole, out)
        if name == "default":
            _same_files(whole, out)
        frames = pq.read_table(out / "frames.parquet")
        assert frames.num_rows == len(deepen_export.read_labels(snap).frames)


def _same_hive(whole: Path, streamed: Path) -> None:
    """The same partitions; frames and report byte for byte, labels rows as a multiset."""
    files = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(streamed).as_posix() for p in streamed.rglob("*") if p.is_file()
    )
    con = duckdb.connect()
    for rel in files:
        a, b = whole / rel, streamed / rel
        if not rel.startswith("labels/"):
            assert a.read_bytes() == b.read_bytes(), rel
            continue
        sa, sb = pq.read_schema(a), pq.read_schema(b)
        assert sa == sb and sa.metadata == sb.metadata, rel
        q = "SELECT * EXCLUDE (category), category::VARCHAR FROM read_parquet('{}')"
        for x, y in ((a, b), (b, a)):
            sql = f"SELECT count(*) FROM ({q.format(x)} EXCEPT ALL {q.format(y)})"
            assert con.execute(sql).fetchone() == (0,), rel


@pytest.mark.parametrize("batch_size", [1, 7])
def test_hive_layout_streams_the_same_partitions(snapshot, tmp_path, batch_size):
    whole, streamed = tmp_path / "whole", tmp_path / "streamed"
    parquet.write(deepen_export.read_labels(snapshot), whole, layout="hive", dataset_id="x")
    done = stream_parquet(snapshot, streamed, batch_size=batch_size, layout="hive", dataset_id="x")
    assert done.whole is None
    _same_hive(whole, streamed)


def test_hive_input_out_of_sequence_order_is_read_whole(tmp_path):
    src = tmp_path / "labels.json"  # no files list: 10.png before 2.png is out of order
    src.write_text(json.dumps({"labels": _labels(["10.png", "2.png", "1.png"])}))
    whole, streamed = tmp_path / "whole", tmp_path / "streamed"
    parquet.write(deepen_export.read_labels(src), whole, layout="hive", dataset_id="x")
    done = stream_parquet(src, streamed, batch_size=1, layout="hive", dataset_id="x")
    assert done.whole is not None and "sequence order" in done.whole
    _same_hive(whole, streamed)


class _SnapshotClient:
    """A client whose ``pull`` copies a local snapshot (export_dataset without a server)."""

    source: Path

    def __enter__(self) -> _SnapshotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def pull(self, dataset_id: str, dest: str, **_: Any) -> None:
        shutil.copytree(self.source, dest)


def test_export_dataset_task_streams_into_hive_partitions(snapshot, tmp_path, monkeypatch):
    from deepen_export import pipeline

    monkeypatch.setattr(_SnapshotClient, "source", snapshot, raising=False)
    seen: list[Any] = []
    real = pipeline.stream_parquet
    monkeypatch.setattr(
        pipeline, "stream_parquet", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1]
    )
    report = pipeline.export_dataset("ds1", str(tmp_path / "o"), client_factory=_SnapshotClient,
                                     batch_size=2)  # fmt: skip
    assert [d.whole for d in seen] == [None]  # streamed, in batches of 2
    assert report == seen[0].report.to_dict()
    expected = deepen_export.read_labels(snapshot)
    assert parquet.read(tmp_path / "o") == expected
    assert report["written"]["frames"] == len(expected.frames) == 7


@pytest.mark.parametrize("batch_size", [1, 7])
def test_the_sample_image_snapshot_with_its_images_folder_streams(tmp_path, batch_size):
    sample = SAMPLES / "image_dataset"  # images/ holds images no label names: frames too
    _whole(sample, tmp_path / "whole")
    done = stream_parquet(sample, tmp_path / "streamed", batch_size=batch_size)
    assert done.whole is None
    _same_output(tmp_path / "whole", tmp_path / "streamed")
    names = pq.read_table(tmp_path / "streamed" / "frames.parquet").column("file_id").to_pylist()
    assert set(names) > set(deepen_export.read_labels(sample / "labels.json").frames.file_id)


def test_images_in_the_folder_without_labels_become_frames_after_the_listed_ones(
    snapshot, tmp_path
):
    from PIL import Image

    (snapshot / "images" / "sub").mkdir(parents=True)
    for name, size in (("3.png", (64, 48)), ("sub/x.png", (12, 8)), ("z.png", (5, 4))):
        Image.new("RGB", size).save(snapshot / "images" / name)
    _whole(snapshot, tmp_path / "whole")
    for batch_size in (1, 7):
        stream_parquet(snapshot, tmp_path / f"s{batch_size}", batch_size=batch_size)
        _same_output(tmp_path / "whole", tmp_path / f"s{batch_size}")
    frames = pq.read_table(tmp_path / "s1" / "frames.parquet").to_pylist()
    assert [(f["file_id"], f["frame_index"], f["width"]) for f in frames[-2:]] == [
        ("sub/x.png", 6, 12),
        ("z.png", 7, 5),
    ]


def test_an_images_folder_without_a_files_list_is_read_whole(tmp_path):
    snap = make_snapshot(tmp_path / "snap", _labels(), None)
    (snap / "images").mkdir()
    _whole(snap, tmp_path / "whole")
    done = stream_parquet(snap, tmp_path / "streamed", batch_size=1)
    assert done.whole == "it has an images/ folder and no files list"
    _same_files(tmp_path / "whole", tmp_path / "streamed")


@pytest.mark.parametrize("sample", ["image_dataset", "lidar_sequence"])
def test_cli_sample_snapshots_stream_or_say_why_not(sample, tmp_path):
    from click.testing import CliRunner

    from deepen_export.cli import main

    docs, err = {}, {}
    for name, extra in (("whole", ["-O", "stream=false"]), ("streamed", [])):
        args = ["convert", str(SAMPLES / sample), "--to", "parquet", "-o", str(tmp_path / name)]
        result = CliRunner().invoke(main, [*args, "--json", *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        docs[name], err[name] = json.loads(result.stdout) | {"output": None}, result.stderr
    assert docs["whole"] == docs["streamed"]
    _same_files(tmp_path / "whole", tmp_path / "streamed")
    # the LiDAR sample has its media zip and paint: read whole, one note says so
    assert ("read whole, not streamed: it has a media zip" in err["streamed"]) == (
        sample == "lidar_sequence"
    )
