"""Every readable format converts to every writable one that holds some of its kinds.

Each source is sample data written by that format's own writer (the image sample for 2D
formats, the LiDAR sequence for 3D ones; formats that hold both get one source of each).
``deepen-export convert SOURCE --to W`` (the source format detected, not given) must succeed,
and W's output must read back through W's reader with labels of a kind both hold.

The pairs are worked out from what each source holds once read back (a format's registry kinds
say what it *can* hold; a sample written to it may hold less, e.g. KITTI keeps no camera-only
2D box of the LiDAR sample).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import converters
import deepen_export
from converters._detect import detect
from deepen_export.cli import main
from deepen_export.model import KINDS

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
IMAGES = SAMPLES / "image_dataset" / "images"
FRAMES_ZIP = SAMPLES / "lidar_sequence" / "media" / "dataset.zip"
_3D_KINDS = {"cuboids", "polylines3d", "polygons3d", "points3d", "point_segmentation"}
# formats that need device poses (nuScenes, T4) take only the LiDAR sequence
_NEEDS_POSES = {f.name for f in converters.FORMATS.values() if "poses" in f.needs}
_3D_ONLY = {"kitti", "kitti_tracking", "semantickitti", "lidarseg"} | _NEEDS_POSES
_BOTH = {"openlabel", "parquet", "deepen"}
_ROOT = Path(tempfile.mkdtemp(prefix="any-to-any-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def _sources() -> list[tuple[str, str, bool]]:
    """``(source name, format, is 3D)`` for every readable format."""
    out = []
    for f in converters.FORMATS.values():
        if not f.readable:
            continue
        if f.name not in _3D_ONLY:
            out.append((f.name, f.name, False))
        if f.name in _3D_ONLY | _BOTH:
            out.append((f"{f.name}3d" if f.name in _BOTH else f.name, f.name, True))
    return out


@cache
def _source(name: str, fmt: str, is3d: bool) -> Path:
    base = (
        deepen_export.read_labels(SAMPLES / "lidar_sequence")
        if is3d
        else deepen_export.read_labels(SAMPLES / "image_dataset" / "labels.json", images=IMAGES)
    )
    dest = _ROOT / f"src-{name}"
    converters.write(base, dest, fmt, on_unsupported="drop")
    return dest


@cache
def _held(name: str, fmt: str, is3d: bool) -> frozenset[str]:
    back = converters.read(_source(name, fmt, is3d), fmt)
    # a 3D source pairs on its 3D kinds; its 2D boxes (camera views) have no image sizes
    return frozenset(k for k in KINDS if len(back.table(k)) and (not is3d or k in _3D_KINDS))


def _pairs() -> list[tuple[str, str, bool, str]]:
    return [
        (name, fmt, is3d, w.name)
        for name, fmt, is3d in _sources()
        for w in converters.FORMATS.values()
        if _held(name, fmt, is3d) & w.kinds and _meets(name, fmt, is3d, w.needs)
    ]


@cache
def _tables(name: str, fmt: str, is3d: bool) -> frozenset[str]:
    """The non-kind tables (poses, cameras...) the source holds once read back."""
    back = converters.read(_source(name, fmt, is3d), fmt)
    names = ("poses", "cameras", "pointclouds")
    return frozenset(t for t in names if len(getattr(back, t, ())))


def _meets(name: str, fmt: str, is3d: bool, needs: frozenset[str]) -> bool:
    # a Deepen labels file holds no poses, but the test gives it the frames zip
    return needs <= _tables(name, fmt, is3d) or (fmt == "deepen" and is3d)


_PAIRS = _pairs()


@pytest.fixture(scope="module")
def run() -> Callable[..., Result]:
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("name", "fmt", "is3d", "dst"), _PAIRS, ids=[f"{p[0]}-to-{p[3]}" for p in _PAIRS]
)
def test_convert_any_to_any(
    name: str, fmt: str, is3d: bool, dst: str, run: Callable[..., Result]
) -> None:
    source = _source(name, fmt, is3d)
    assert detect(source) == fmt
    out = _ROOT / f"{name}-to-{dst}"
    args: list[str | Path] = ["convert", source, "--to", dst, "-o", out, "--on-unsupported", "drop"]
    if is3d and fmt == "deepen":
        args += ["--frames", FRAMES_ZIP]  # Deepen label JSON holds no calibration
    if not is3d:
        args += ["--images", IMAGES]
    if dst in ("tusimple", "culane") and fmt in ("tusimple", "culane"):
        # lane files name images by sensor folder, which the images folder does not have
        args += ["-O", "h_samples=[10,20,30,40]" if dst == "tusimple" else "rows=[10,20,30,40]"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    back = converters.read(out, dst)
    shared = _held(name, fmt, is3d) & converters.get_format(dst).kinds
    # the masks writer paints polygons into per-image masks: they come back as masks2d
    expect = {"masks2d" if dst == "masks" and k == "polygons" else k for k in shared}
    assert any(len(back.table(k)) for k in expect), (sorted(shared), back)
    assert back.categories


def test_wrong_or_unknown_source_format_is_one_line(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    res = tmp_path / "r.json"
    res.write_text(
        '[{"image_id": "a.png", "category_id": "car", "bbox": [1, 2, 3, 4], "score": 1}]'
    )
    assert detect(res) == "coco_results"
    bad = run("convert", res, "--from", "nosuch", "--to", "coco", "-o", tmp_path / "o")
    assert bad.exit_code == 2 and "coco_results" in bad.output
    wrong = run("convert", res, "--from", "coco", "--to", "deepen", "-o", tmp_path / "o")
    assert wrong.exit_code == 1 and wrong.output.count("\n") == 1
    assert "cannot read" in wrong.output and "as coco" in wrong.output
    assert not (tmp_path / "o").exists()
    ok = run("convert", res, "--to", "deepen", "-o", tmp_path / "o")
    assert ok.exit_code == 0 and "source: coco_results has no attributes" in ok.output
    assert "source: coco_results" in (tmp_path / "o" / "report.json").read_text()


def test_ambiguous_or_unknown_folders_are_refused(tmp_path: Path) -> None:
    from deepen_export.errors import ConversionError

    both = tmp_path / "both"
    (both / "label_2").mkdir(parents=True)
    (both / "data.yaml").write_text("names: [car]\n")
    with pytest.raises(ConversionError, match=r"looks like more than one format \(yolo, kitti\)"):
        detect(both)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="cannot tell the format"):
        detect(tmp_path / "empty")
