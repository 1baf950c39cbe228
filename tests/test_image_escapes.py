"""``--images`` never reads outside its folder (issue 16, class 2), through the CLI.

A file id (or a camera's image path) such as ``../outside/secret.png`` or ``/abs/secret.png``,
and a symlink in the images folder that leads out of it, must all miss: no copy, no size read
from the outside file, no frame added for it, no preview drawn on it. The outside image has a
size (7 x 5) and a colour no inside image has, so any read of it shows in the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from deepen_export.cli import main

SECRET = (7, 5)
RED = (255, 0, 0)


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _box(file_id: str, n: int) -> dict[str, object]:
    return {
        "file_id": file_id,
        "label_category_id": "car",
        "label_id": f"car:{n}",
        "label_type": "box",
        "sensor_id": "cam",
        "box": [1, 1, 2, 2],
    }


def _layout(tmp_path: Path, file_ids: list[str]) -> tuple[Path, Path]:
    """``root/`` with an inside image and links out, ``outside/secret.png``, ``labels.json``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", SECRET, RED).save(outside / "secret.png")
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (8, 6), (0, 0, 255)).save(root / "a.png")
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    labels = tmp_path / "labels.json"
    doc = {"labels": [_box(f, i) for i, f in enumerate(["a.png", *file_ids])]}
    labels.write_text(json.dumps(doc))
    return root, labels


CASES = ["dotdot", "absolute", "symlink", "symlinked folder"]


def _name(tmp_path: Path, case: str) -> str:
    """The name looked up for ``case``: each one leads to ``outside/secret.png``."""
    return {
        "dotdot": "../outside/secret.png",
        "absolute": str(tmp_path / "outside" / "secret.png"),
        "symlink": "link.png",
        "symlinked folder": "linkdir/secret.png",
    }[case]


def test_convert_sizes_and_frames_never_come_from_outside(tmp_path: Path) -> None:
    root, labels = _layout(tmp_path, [])  # the links out are not labelled: extra frames?
    out = tmp_path / "coco"
    result = _run(
        "convert", str(labels), "--to", "coco", "-o", str(out), "--images", str(root),
        "--on-unsupported", "drop",
    )  # fmt: skip
    doc = json.loads((out / "annotations" / "instances_default.json").read_text())
    sizes = {i["file_name"]: (i["width"], i["height"]) for i in doc["images"]}
    assert sizes.get("a.png") == (8, 6), result.output
    # the links out are neither sized from the outside file nor listed as extra frames
    assert SECRET not in sizes.values()


@pytest.mark.parametrize("case", CASES)
def test_convert_copy_images_never_copies_from_outside(tmp_path: Path, case: str) -> None:
    fid = _name(tmp_path, case)
    root, labels = _layout(tmp_path, [fid])
    out = tmp_path / "coco"
    result = _run(
        "convert", str(labels), "--to", "coco", "-o", str(out), "--images", str(root),
        "--copy-images", "--on-unsupported", "drop",
    )  # fmt: skip
    copied = list(out.rglob("*.png")) if out.exists() else []
    if case in ("dotdot", "absolute"):  # refused as an output name before any lookup
        assert result.exit_code == 1 and "would write outside" in result.output
    else:
        assert result.exit_code == 0 and len(copied) == 1 and "not found" in result.output
    for p in copied:
        with Image.open(p) as im:
            assert im.size != SECRET, f"{p} is the outside image"


@pytest.mark.parametrize("case", CASES)
def test_preview_never_draws_on_an_outside_image(tmp_path: Path, case: str) -> None:
    fid = _name(tmp_path, case)
    root, labels = _layout(tmp_path, [fid])
    out = tmp_path / "previews"
    result = _run("preview", str(labels), "-o", str(out), "--images", str(root))
    drawn = sorted(out.rglob("*.png"))
    if case in ("dotdot", "absolute"):  # no preview can be named after it: one line, exit 1
        assert result.exit_code == 1 and "would write outside" in result.output
    else:
        assert result.exit_code == 0 and len(drawn) == 2, result.output
    for p in drawn:
        with Image.open(p) as im:
            rgb = im.convert("RGB")
            assert im.size != SECRET and RED not in {rgb.getpixel((0, 0)), rgb.getpixel((6, 4))}


@pytest.mark.parametrize("case", CASES)
def test_copy_images_source_names_stay_inside(tmp_path: Path, case: str) -> None:
    """The name looked up is not always the file id (a camera's ``image_path`` is): the one
    image source refuses an escape itself, whatever the writer checked before."""
    from converters._dataset import place_images
    from deepen_export._media import ImageSource
    from deepen_export.report import Report

    name = _name(tmp_path, case)
    root, _ = _layout(tmp_path, [])
    report = Report("coco")
    out = tmp_path / "out"
    assert place_images(root, [(name, "x.png", "f"), ("a.png", "a.png", "a")], out, report) == 1
    assert not (out / "x.png").exists() and [i.file_id for i in report] == ["f"]
    with ImageSource(root, by_basename=True) as src:
        assert src.size(name) is None and src.open(name) is None
        assert src.size("a.png") == (8, 6)
