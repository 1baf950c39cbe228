"""`deepen-export convert`, `export` and `formats` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

import converters
import deepen_export
from deepen_export.cli import main
from tests._deepen_server import DSIMG, TOKEN

SAMPLES = Path(__file__).parents[1] / "sample_data"


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_formats_lists_every_registered_format():
    result = _run("formats")
    assert result.exit_code == 0
    for name in converters.names():
        assert name in result.stdout


def test_convert_snapshot_to_coco(tmp_path):
    out = tmp_path / "coco"
    result = _run(
        "convert",
        str(SAMPLES / "image_dataset"),
        "--to",
        "coco",
        "-o",
        str(out),
        "--on-unsupported",
        "drop",
    )
    assert result.exit_code == 0, result.output
    assert "coco: wrote" in result.stdout and f"wrote {out}" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "coco"
    data = json.loads((out / "annotations" / "instances_default.json").read_text())
    # 5 images, 000001.png on two sensors; 000004.png is not labelled yet: left out, reported
    assert len(data["images"]) == 5
    coco = COCO(str(out / "annotations" / "instances_default.json"))
    assert len(coco.getAnnIds()) > 0


def test_convert_refuses_kinds_the_format_cannot_hold_and_writes_nothing(tmp_path):
    out = tmp_path / "voc"
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(SAMPLES / "image_dataset"),
            "--to",
            "voc",
            "-o",
            str(out),
            "--on-unsupported",
            "raise",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "voc cannot hold" in result.stderr and "--on-unsupported warn" in result.stderr
    assert not out.exists()
    result = _run(
        "convert",
        str(SAMPLES / "image_dataset"),
        "--to",
        "voc",
        "-o",
        str(out),
        "--on-unsupported",
        "drop",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    dropped = [
        i for i in report["issues"] if i["action"] == "dropped" and "voc cannot hold" in i["reason"]
    ]
    # everything but the 5 boxes and 3 polygons (written as boxes): 2 lanes, 2 points, 1 scene
    assert len(dropped) == 5 and all(i["file_id"] and i["label_id"] for i in dropped)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "nope"], "unknown format 'nope'"),
        (["--to", "coco", "-O", "no_such_option=1"], "coco has no option(s) no_such_option"),
        (["--to", "coco", "-O", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_bad_usage_exits_2(tmp_path, args, message):
    result = CliRunner().invoke(
        main, ["convert", str(SAMPLES / "image_dataset"), "-o", str(tmp_path / "x"), *args]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_convert_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(SAMPLES / "bad" / "truncated.json"),
            "--to",
            "coco",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "truncated.json" in result.stderr
    assert result.stderr.count("\n") == 1


def test_export_pulls_then_converts(server_env, tmp_path):
    out = tmp_path / "yolo"
    result = _run(
        "export",
        DSIMG,
        "--to",
        "yolo",
        "-o",
        str(out),
        "--on-unsupported",
        "drop",
        "-O",
        "include_unlabelled=true",
    )
    assert result.exit_code == 0, result.output
    snap = tmp_path / "yolo.snapshot"
    assert (snap / "manifest.json").is_file() and (snap / "labels.json").is_file()
    assert (out / "report.json").is_file() and (out / "data.yaml").is_file()
    assert TOKEN not in result.output


def test_output_folder_that_is_not_ours_is_refused(tmp_path, monkeypatch):
    src = tmp_path / "work"
    src.mkdir()
    labels = src / "labels.json"
    labels.write_bytes((SAMPLES / "image_dataset" / "labels.json").read_bytes())
    (src / "notes.txt").write_text("mine")
    monkeypatch.chdir(src)
    for out in (".", str(src)):
        result = CliRunner().invoke(
            main, ["convert", "labels.json", "--to", "voc", "-o", out, "--on-unsupported", "drop"]
        )
        assert result.exit_code == 1
        assert (
            "refusing to replace" in result.stderr
            and "choose a new or empty folder" in result.stderr
        )
        assert labels.is_file() and (src / "notes.txt").read_text() == "mine"
        assert not list(tmp_path.glob(".*.tmp"))
    # an earlier output of ours is replaced as a whole, and "-o ." works from inside it
    out = tmp_path / "voc"
    for _ in range(2):
        result = _run(
            "convert", str(labels), "--to", "voc", "-o", str(out), "--on-unsupported", "drop"
        )
        assert result.exit_code == 0, result.output
    monkeypatch.chdir(out)
    result = _run("convert", str(labels), "--to", "voc", "-o", ".", "--on-unsupported", "drop")
    assert result.exit_code == 0, result.output
    assert (out / "report.json").is_file()


@pytest.mark.parametrize("file_id", [".", "a\0b.png", "x" * 300 + ".png"])
@pytest.mark.parametrize("fmt", ["yolo", "voc", "masks", "culane"])
def test_file_ids_that_cannot_be_file_names_are_refused(tmp_path, file_id, fmt):
    from deepen_export.errors import ConversionError
    from deepen_export.model import Boxes, Frames, LabelSet, Polygons, Polylines

    frames = Frames.from_columns(file_id=[file_id], width=[100], height=[100], status=[3])
    common = {"frame": [0], "category": [0], "label_id": ["car:1"]}
    ls = LabelSet(
        frames=frames,
        categories=("car",),
        boxes=Boxes.from_columns(**common, xyxy=[[1, 1, 5, 5]])
        if fmt in ("yolo", "voc")
        else Boxes.empty(),
        polygons=Polygons.from_columns(
            **common, offsets=[0, 1], ring_offsets=[0, 3], coords=[[0, 0], [9, 0], [0, 9]]
        )
        if fmt == "masks"
        else Polygons.empty(),
        polylines=Polylines.from_columns(
            **common, offsets=[0, 1], part_offsets=[0, 2], coords=[[0, 99], [50, 0]]
        )
        if fmt == "culane"
        else Polylines.empty(),
    )
    with pytest.raises(ConversionError, match="file id"):
        converters.write(ls, tmp_path / "out", fmt)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("fmt", ["yolo", "voc", "masks"])
def test_two_images_with_one_stem_are_refused_not_overwritten(tmp_path, fmt):
    from deepen_export.errors import ConversionError
    from deepen_export.model import Boxes, Frames, LabelSet, Polygons

    frames = Frames.from_columns(
        file_id=["a.png", "a.jpg"], width=[100, 100], height=[100, 100], status=[3, 3]
    )
    common = {"frame": [0, 1], "category": [0, 0], "label_id": ["car:1", "car:2"]}
    boxes = Boxes.from_columns(**common, xyxy=[[1, 1, 5, 5], [2, 2, 6, 6]])
    polys = Polygons.from_columns(
        **common, offsets=[0, 1, 2], ring_offsets=[0, 3, 6], coords=[[0, 0], [9, 0], [0, 9]] * 2
    )
    ls = LabelSet(
        frames=frames,
        categories=("car",),
        boxes=boxes if fmt != "masks" else Boxes.empty(),
        polygons=polys if fmt == "masks" else Polygons.empty(),
    )
    with pytest.raises(ConversionError, match=r"'a\.png' and 'a\.jpg' would both be written as"):
        converters.write(ls, tmp_path / "out", fmt)
    assert not (tmp_path / "out").exists()


def test_yolo_without_image_sizes_reports_every_label_dropped(tmp_path):
    out = tmp_path / "yolo"
    result = _run(
        "convert",
        str(SAMPLES / "image_dataset" / "labels.json"),
        "--to",
        "yolo",
        "-o",
        str(out),
        "--on-unsupported",
        "drop",
    )
    # labels left out for want of sizes: a failure, with one line naming the fixes
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "8 labels on 3 images not written" in line and "--images" in line
    report = json.loads((out / "report.json").read_text())
    size = [i for i in report["issues"] if "image size unknown" in i["reason"]]
    labelled = {i["label_id"] for i in size if i["label_id"]}
    # the 5 boxes and 3 polygons of the sample (expected.json), none written
    assert len(labelled) == 8 and all(i["action"] == "dropped" for i in size)
    assert not any(i["action"] == "repaired" for i in report["issues"])


def test_every_writer_lists_the_input_issues(tmp_path):
    bad = json.loads((SAMPLES / "lidar_sequence" / "labels.json").read_text())
    first = next(iter(bad["labels"].values()))
    first.append(
        {**first[0], "label_id": "car:99", "three_d_bbox": {**first[0]["three_d_bbox"], "cx": None}}
    )
    src = tmp_path / "snap"
    import shutil

    shutil.copytree(SAMPLES / "lidar_sequence", src)
    (src / "manifest.json").unlink()
    (src / "labels.json").write_text(json.dumps(bad))
    for fmt in (
        "kitti",
        "kitti_tracking",
        "openlabel",
        "semantickitti",
        "lidarseg",
        "parquet",
        "coco",
    ):
        report = converters.write(
            deepen_export.read_labels(src), tmp_path / fmt, fmt, on_unsupported="drop"
        )
        assert any(i.label_id == "car:99" and "bad 3d_bbox geometry" in i.reason for i in report), (
            fmt
        )
