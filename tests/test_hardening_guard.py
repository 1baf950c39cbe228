"""Issue 16, outputs: an output never overlaps an input nor replaces what deepen-export did not
write (class 3), and killed runs' temp folders are cleaned on the next run (class 11)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import converters
from deepen_export._guard import MARKER
from deepen_export.cli import main
from deepen_export.model import KIND_SPECS

SAMPLES = Path(__file__).parents[1] / "sample_data"


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    dest = tmp_path / "snap"
    shutil.copytree(SAMPLES / "image_dataset", dest)
    return dest


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_output_over_the_source_snapshot_is_refused(snapshot: Path, where: str) -> None:
    out = {"same": snapshot, "inside": snapshot / "coco", "around": snapshot.parent}[where]
    before = _tree(snapshot.parent)
    res = _run("convert", str(snapshot), "--to", "coco", "-o", str(out))
    assert res.exit_code == 1
    assert "SOURCE" in res.stderr and "refusing to replace" in res.stderr
    assert _tree(snapshot.parent) == before


@pytest.mark.parametrize("command", ["convert", "preview"])
def test_output_equal_to_the_images_folder_is_refused(
    snapshot: Path, tmp_path: Path, command: str
) -> None:
    images = tmp_path / "pics"
    shutil.copytree(snapshot / "images", images)
    before = _tree(images)
    if command == "convert":
        args = [
            "convert",
            str(snapshot),
            "--to",
            "yolo",
            "--images",
            str(images),
            "-o",
            str(images),
        ]
    else:
        args = [
            "preview",
            str(snapshot / "labels.json"),
            "--images",
            str(images),
            "-o",
            str(images),
        ]
    res = _run(*args)
    assert res.exit_code == 1, res.output
    assert "--images" in res.stderr or "images" in res.stderr
    assert _tree(images) == before


def test_yolo_rerun_keeps_the_images_the_user_put_there(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "yolo"
    args = ["convert", str(snapshot), "--to", "yolo", "--images", str(snapshot / "images")]
    args += ["--on-unsupported", "drop"]
    assert _run(*args, "-o", str(out)).exit_code == 0
    assert (out / MARKER).is_file()
    # a rerun into our own, untouched output is fine
    assert _run(*args, "-o", str(out)).exit_code == 0
    # the YOLO docs say: put the images under images/
    shutil.copytree(snapshot / "images", out / "images", dirs_exist_ok=True)
    users = sorted(p.name for p in (snapshot / "images").iterdir())
    before = _tree(out / "images")
    res = _run(*args, "-o", str(out))
    assert res.exit_code == 1
    assert "did not write (images/" in res.stderr and "--overwrite" in res.stderr
    assert _tree(out / "images") == before
    # --overwrite is the explicit way to replace it
    assert _run(*args, "-o", str(out), "--overwrite").exit_code == 0
    left = out / "images"  # the YOLO writer's own images/ folder (empty without --copy-images)
    assert not [n for n in users if (left / n).exists()]


def test_a_folder_without_the_marker_needs_overwrite(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "coco"
    out.mkdir()
    (out / "report.json").write_text('{"format": "coco"}')  # looks like ours, no marker
    res = _run("convert", str(snapshot), "--to", "coco", "-o", str(out))
    assert res.exit_code == 1 and "report.json" in res.stderr
    res = _run(
        "convert",
        str(snapshot),
        "--to",
        "coco",
        "-o",
        str(out),
        "--overwrite",
        "--on-unsupported",
        "drop",
    )
    assert res.exit_code == 0, res.output
    assert (out / MARKER).is_file()


def test_next_convert_cleans_stale_temp_folders_of_killed_runs(
    snapshot: Path, tmp_path: Path
) -> None:
    out = tmp_path / "voc"
    stale = tmp_path / ".voc.k1ll3d00.tmp"
    fresh = tmp_path / ".voc.runn1ng0.tmp"  # another run, still writing
    for d in (stale, fresh):
        (d / "Annotations").mkdir(parents=True)
        (d / "Annotations" / "a.xml").write_text("<annotation/>")
    an_hour_ago = (os.stat(stale).st_mtime - 3600,) * 2
    for p in (stale / "Annotations" / "a.xml", stale / "Annotations", stale):
        os.utime(p, an_hour_ago)
    res = _run("convert", str(snapshot), "--to", "voc", "-o", str(out), "--on-unsupported", "drop")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and fresh.exists()


def test_killed_between_the_two_renames_the_previous_output_comes_back(
    snapshot: Path, tmp_path: Path
) -> None:
    out = tmp_path / "voc"
    args = ["convert", str(snapshot), "--to", "voc", "-o", str(out), "--on-unsupported", "drop"]
    assert _run(*args).exit_code == 0
    before = _tree(out)
    os.replace(out, tmp_path / ".voc.old-424242")  # what a kill -9 between the renames leaves
    assert _run(*args).exit_code == 0
    assert _tree(out).keys() == before.keys()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("fmt", [f.name for f in converters.FORMATS.values() if f.readable])
def test_the_marker_is_invisible_to_every_reader(snapshot: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    spec = converters.get_format(fmt)
    if spec.needs or all(KIND_SPECS[k].dim == 3 for k in spec.kinds):  # a LiDAR-only format
        source, extra = SAMPLES / "lidar_sequence", []
    else:
        source, extra = snapshot, ["--images", str(snapshot / "images")]
    args = ["convert", str(source), "--to", fmt, "-o", str(out), "--on-unsupported", "drop"]
    res = _run(*args, *extra)
    assert res.exit_code == 0, res.output
    with_marker = converters.get(fmt).read(out)
    (out / MARKER).unlink()
    assert converters.get(fmt).read(out) == with_marker


def test_reruns_into_our_own_output_and_a_failed_rerun_keeps_it_ours(
    snapshot: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p"
    for _ in range(2):  # a preview folder holds PNGs and the marker: still ours
        res = _run("preview", str(snapshot), "-o", str(out), "--frames", "1")
        assert res.exit_code == 0, res.output
    coco = tmp_path / "coco"
    base = ["convert", str(snapshot), "--to", "coco", "-o", str(coco)]
    assert _run(*base, "--on-unsupported", "drop").exit_code == 0
    before = _tree(coco)
    assert _run(*base, "--on-unsupported", "raise").exit_code == 1  # refuses the polylines
    assert _tree(coco) == before
    assert _run(*base, "--on-unsupported", "drop").exit_code == 0
