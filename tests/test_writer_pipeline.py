"""The one writer pipeline (``converters._writer``) and the CLI's typed ``-O`` options."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
from pathlib import Path

import pytest

from converters import yolo
from converters._writer import coerce, option_types, typed_options, writer
from deepen_export import read_labels
from deepen_export.errors import ConversionError
from deepen_export.model import Boxes, Frames, LabelSet
from tests.workflow.conftest import console_script

SAMPLES = Path(__file__).parents[1] / "sample_data"


def _boxes() -> LabelSet:
    return LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[20], height=[10]),
        categories=("car",),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[-4, 2, 8, 4]]),
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *args], capture_output=True, text=True, timeout=120)


def test_pipeline_owns_policy_staging_and_report(tmp_path):
    seen = {}

    @writer("yolo")  # yolo takes boxes and polygons only
    def body(labels, out, /, *, flag: bool = False) -> None:
        seen["kinds"] = labels.kinds_present()
        seen["flag"] = flag
        (out.folder / "x.txt").write_text("x")
        out.report.written["files"] = 1

    labels = read_labels(SAMPLES / "image_dataset")
    assert {"points", "polylines"} <= set(labels.kinds_present())
    report = body(labels, tmp_path / "o", on_unsupported="drop", flag=True)
    assert seen == {"kinds": ["boxes", "polygons"], "flag": True}
    assert json.loads((tmp_path / "o" / "report.json").read_text())["written"] == {"files": 1}
    assert report.format == "yolo"

    def failing(labels, out, /) -> None:
        (out.folder / "half.txt").write_text("half")
        raise ConversionError("boom")

    with pytest.raises(ConversionError):
        writer("yolo")(failing)(labels, tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["report.json", "x.txt"]


def test_library_text_options_still_work_with_a_deprecation_note(tmp_path):
    with pytest.warns(DeprecationWarning, match="clip='false'"):
        yolo.write(_boxes(), tmp_path / "y", clip="false")
    line = (tmp_path / "y" / "labels" / "a.txt").read_text()
    # unclipped: the box starts 4 px left of the image (-4 / 20 = -0.2 from the left edge)
    assert line.split()[1] == "0.100000" and line.split()[3] == "0.600000"
    with pytest.raises(TypeError, match="unexpected option"):
        yolo.write(_boxes(), tmp_path / "z", clp=True)


def test_signature_shows_the_options_with_real_types():
    sig = inspect.signature(yolo.write)
    assert list(sig.parameters)[:3] == ["labels", "dest", "on_unsupported"]
    assert sig.parameters["clip"].annotation == "bool"
    types_of = yolo.write.option_types
    assert types_of["clip"] is bool and types_of["seed"] is int


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [("off", bool, False), ("7", int, 7), ("null", int | None, None), ("1.5", float, 1.5)],
)
def test_coerce_parses_text_by_annotation(value, annotation, expected):
    assert coerce(value, annotation) == expected


def test_typed_options_refuse_bad_values_in_one_line():
    with pytest.raises(ConversionError, match="option clip: expected true or false, got 'maybe'"):
        typed_options("yolo", yolo.write, {"clip": "maybe"})
    with pytest.raises(ConversionError, match="expected one of detect, segment"):
        typed_options("yolo", yolo.write, {"task": "big"})


def test_cli_option_types_through_the_console_script(tmp_path):
    src = str(SAMPLES / "image_dataset")
    ok = _cli("convert", src, "--to", "yolo", "-o", str(tmp_path / "y"), "-O", "clip=no")
    assert ok.returncode == 0, ok.stderr
    bad = _cli("convert", src, "--to", "yolo", "-o", str(tmp_path / "b"), "-O", "clip=maybe")
    assert bad.returncode == 2
    assert "option clip: expected true or false, got 'maybe'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "b").exists()
    typo = _cli("convert", src, "--to", "yolo", "-o", str(tmp_path / "t"), "-O", "tsak=segment")
    assert typo.returncode == 2 and "yolo has no option(s) tsak; it takes:" in typo.stderr


# the 2D and lane writers moved onto the pipeline after YOLO: real types, typed -O values
_TYPED = [
    ("voc", {"clip": bool, "origin": int, "integer": bool, "segmentation": bool, "seed": int}),
    ("cvat", {"clip": bool, "task_name": str, "seed": int, "copy_images": bool}),
    ("culane", {"step": int, "decimals": int}),
    ("tusimple", {"max_lanes": int, "empty": bool, "classes": bool, "decimals": int}),
]


@pytest.mark.parametrize(("fmt", "expected"), _TYPED, ids=[f for f, _ in _TYPED])
def test_converted_writers_take_real_types(fmt, expected):
    import converters

    write = importlib.import_module(converters.get_format(fmt).module).write
    types_of = write.option_types
    for name, kind in expected.items():
        assert types_of[name] is kind, (fmt, name, types_of[name])
    params = inspect.signature(write).parameters
    assert list(params)[:3] == ["labels", "dest", "on_unsupported"]
    assert not any(
        "| str" in str(p.annotation) and "bool" in str(p.annotation) for p in params.values()
    )


def test_lane_rows_from_the_command_line(tmp_path):
    src = str(SAMPLES / "image_dataset")
    out = tmp_path / "ts"
    ok = _cli("convert", src, "--to", "tusimple", "-o", str(out), "-O", "h_samples=none",
              "-O", "max_lanes=0", "-O", "empty=yes", "-O", "decimals=1")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(x) for x in (out / "label_data.json").read_text().splitlines()]
    xs = [v for line in lines for lane in line["lanes"] for v in lane]
    assert xs and all(isinstance(v, float) for v in xs)  # decimals=1: floats, -2.0 for gaps
    bad = _cli("convert", src, "--to", "voc", "-o", str(tmp_path / "v"), "-O", "origin=one")
    assert bad.returncode == 2 and "option origin: expected an integer" in bad.stderr
    assert not (tmp_path / "v").exists()


def test_text_options_from_library_callers_still_work_with_a_warning(tmp_path):
    labels = read_labels(SAMPLES / "image_dataset")
    from converters import voc

    with pytest.warns(DeprecationWarning, match="pass a int"):
        voc.write(labels, tmp_path / "a", origin="1", on_unsupported="drop")
    voc.write(labels, tmp_path / "b", origin=1, on_unsupported="drop")
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))


def test_every_writer_but_parquet_is_on_the_pipeline():
    # Parquet's hive/delta layouts merge into an existing dataset and it writes from a stream
    # of batches: its write_stream runs the same steps (policy, staging, report) itself.
    import converters
    from converters._registry import FORMATS

    off = [n for n in FORMATS if not hasattr(converters.get(n).write, "option_types")]
    assert off == ["parquet"]
    for name in FORMATS:
        # every writer's annotations resolve (the CLI types -O values by them), Parquet's too
        types_of = option_types(converters.get(name).write)
        loose = {k: t for k, t in types_of.items() if t in (bool | str, int | str)}
        assert not loose, (name, loose)
