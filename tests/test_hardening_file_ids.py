"""Issue 16 class 10: file ids that cannot be file names get one line naming them, not a traceback,
a bare codec error or a misleading "would write outside"."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from deepen_export.cli import main


def _box(file_id: object, n: int = 1) -> dict[str, object]:
    return {
        "file_id": file_id,
        "label_id": f"car:{n}",
        "label_type": "box",
        "label_category_id": "car",
        "box": [1, 1, 2, 2],
    }


def _convert(tmp_path: Path, labels: list[dict[str, object]] | str) -> tuple[int, str]:
    src = tmp_path / "labels.json"
    text = labels if isinstance(labels, str) else json.dumps({"labels": labels})
    src.write_text(text)
    (tmp_path / "imgs").mkdir()
    args = ["convert", str(src), "--to", "coco", "-o", str(tmp_path / "out")]
    res = CliRunner().invoke(main, [*args, "--images", str(tmp_path / "imgs")])
    return res.exit_code, res.output


def test_a_300_character_file_id_with_images_is_one_line_naming_it(tmp_path: Path) -> None:
    long = "a" * 300 + ".png"
    code, out = _convert(tmp_path, [_box(long), _box("ok.png", 2)])
    assert code == 1 and "File name too long" not in out and "Traceback" not in out
    assert "cannot be a file name" in out and long[:40] in out


def test_empty_and_object_file_ids_are_reported_and_nothing_written_exits_1(
    tmp_path: Path,
) -> None:
    code, out = _convert(tmp_path, [_box(""), _box({"a": 1}, 2)])
    assert code == 1 and "would write outside" not in out
    assert "label has no file_id" in out and "file_id must be a string, got dict" in out
    assert "no label of the input could be read" in out


def test_a_lone_surrogate_file_id_names_the_file(tmp_path: Path) -> None:
    text = json.dumps({"labels": [_box("a\\ud800.png")]}).replace("\\\\ud800", "\\ud800")
    code, out = _convert(tmp_path, text)
    assert code == 1 and "codec can't encode" not in out
    assert "not valid Unicode" in out and "a\\ud800.png" in out
