"""Issue 16 class 9: a bomb in the frames zip or the paint body is refused before it is inflated."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import pytest

from deepen_export.errors import ParseError
from deepen_export.parse import parse_frames_zip, parse_paint_labels


def test_a_zip_bomb_frame_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    zp = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("0.json", json.dumps({"points": [], "pad": " " * (80 << 20)}))
    assert zp.stat().st_size < 1 << 20  # 80 MB of frame in well under 1 MB of zip
    # the refusal comes from the sizes the zip declares, before any byte is inflated
    with pytest.raises(ParseError, match=r"0\.json.*claims 83,886,.* zip bomb"):
        parse_frames_zip(zp)


def test_a_zlib_bomb_paint_body_is_refused() -> None:
    body = zlib.compress(bytes(50_000_000))
    with pytest.raises(ParseError, match="decompress to more than the 12 bytes"):
        parse_paint_labels(body, {"paint_categories": ["car"], "frame_sizes": [4]})


def test_plain_paint_bodies_still_read() -> None:
    raw = parse_paint_labels(bytes([0, 1, 1]), {"paint_categories": ["car"], "frame_sizes": [3]})
    packed = parse_paint_labels(
        zlib.compress(bytes([0, 1, 1])), {"paint_categories": ["car"], "frame_sizes": [3]}
    )
    assert raw.category.tolist() == packed.category.tolist() == [0, 1, 1]


def test_normal_frames_zips_still_read(tmp_path: Path) -> None:
    zp = tmp_path / "ok.zip"
    frame = {"points": [{"x": 1, "y": 2, "z": 3}], "device_position": {"x": 0, "y": 0, "z": 0}}
    frame["device_heading"] = {"x": 0, "y": 0, "z": 0, "w": 1}
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("0.json", json.dumps(frame))
    assert list(parse_frames_zip(zp).names) == ["0.json"]
