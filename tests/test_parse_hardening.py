"""Issue 16, classes 6 and 8: hostile label JSON, frames zips, paint metadata and options.

Each input once crashed with a traceback or silently produced wrong geometry; now it is a clear
error naming the file/frame/field, a report entry, or a well-defined value. Fuzzing of the same
inputs: ``tests/test_fuzz_parse.py``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from deepen_export.cli import main
from deepen_export.errors import ParseError
from deepen_export.parse import (
    iter_label_batches,
    parse_frames_zip,
    parse_labels,
    parse_paint_labels,
    parse_snapshot,
)

I63 = 2**63 - 1


def _box(**kw: Any) -> dict[str, Any]:
    lab = {"label_type": "box", "label_id": "car:1", "file_id": "0.png",
           "label_category_id": "car", "box": [1, 2, 3, 4], "version": 1}  # fmt: skip
    return {**lab, **kw}


def _both_paths(tmp_path: Path, body: bytes) -> list[Any]:
    """The LabelSet (or the error text) of the fast and of the general path, which must agree."""
    path = tmp_path / "labels.json"
    path.write_bytes(body)
    out: list[Any] = []
    for fast in (True, False):
        try:
            out.append(parse_labels(path, fast=fast))
        except ParseError as exc:
            out.append(str(exc))
    assert out[0] == out[1]
    if not isinstance(out[0], str):
        assert out[0].issues == out[1].issues
    return out


# -- class 8: numbers past int64 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "track", "version"),
    [
        (_box(label_id="car:99999999999999999999"), -1, 1),
        (_box(label_id="car:9223372036854775808"), -1, 1),
        (_box(label_id=f"car:{I63}"), I63, 1),
        (_box(version=2**64 + 5), 1, -1),
        (_box(version=2**63), 1, -1),
        (_box(version=1e308), 1, -1),
        (_box(create_time_millis=2**63), 1, 1),
        (_box(create_time_millis=2**65), 1, 1),
    ],
    ids=[
        "id-1e20",
        "id-2^63",
        "id-2^63-1",
        "version-2^64",
        "version-2^63",
        "version-1e308",
        "ctime-2^63",
        "ctime-2^65",
    ],
)
def test_numbers_past_int64_are_unknown_not_a_crash(
    tmp_path: Path, label: dict[str, Any], track: int, version: int
) -> None:
    # a second, ordinary label keeps the fast path's columns typed as they would be
    body = json.dumps({"labels": [label, _box(label_id="car:2", version=2)]}).encode()
    ls, _ = _both_paths(tmp_path, body)
    assert ls.boxes.track.tolist() == [track, 2]
    assert ls.boxes.version.tolist() == [version, 2]
    assert ls.boxes.label_id.tolist() == [label["label_id"], "car:2"]


def test_attribute_nested_2000_levels_is_one_error(tmp_path: Path) -> None:
    attr = b'{"a":' * 2000 + b"1" + b"}" * 2000
    body = json.dumps({"labels": [_box(attributes="X")]}).encode().replace(b'"X"', attr)
    fast, _ = _both_paths(tmp_path, body)
    assert "labels.json: JSON nested deeper than 1024 levels" in fast


def test_invalid_utf8_is_one_error_on_every_path(tmp_path: Path) -> None:
    body = json.dumps({"labels": [_box(file_id="0X.png")]}).encode().replace(b"X", b"\xff")
    fast, _ = _both_paths(tmp_path, body)
    assert "labels.json: not valid UTF-8 at byte" in fast
    with pytest.raises(ParseError, match="not valid UTF-8"):
        list(iter_label_batches(tmp_path / "labels.json"))


def test_labels_of_a_file_that_are_not_a_list_are_reported(tmp_path: Path) -> None:
    ls, _ = _both_paths(tmp_path, b'{"labels": {"a.png": 5}}')
    assert [(i.action, i.file_id) for i in ls.issues] == [("dropped", "a.png")]


# -- the frames zip ------------------------------------------------------------------------------

POSE = {"device_position": {"x": 1, "y": 2, "z": 3},
        "device_heading": {"x": 0, "y": 0, "z": 0, "w": 1}}  # fmt: skip


def _zip(members: dict[str, bytes], corrupt: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if corrupt:  # a byte of the first member's compressed data
        first = next(iter(members))
        raw[30 + len(first) + 2] ^= 0xFF
    return bytes(raw)


def _frame(**kw: Any) -> bytes:
    return json.dumps({"points": [{"x": 1, "y": 2, "z": 3}], **POSE, **kw}).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"points": [', "zip entry '0.json' is corrupt"),  # a bad CRC
        (b"\x00", "zip entry '0.json' is corrupt"),  # a broken deflate stream
    ],
    ids=["bad-crc", "broken-deflate"],
)
def test_a_corrupt_zip_entry_is_one_error_naming_it(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_frames_zip(_zip({"0.json": data}, corrupt=True))


def test_a_corrupt_image_in_the_zip_leaves_its_size_unknown() -> None:
    img = io.BytesIO()
    Image.new("RGB", (8, 6)).save(img, "PNG")
    data = parse_frames_zip(_zip({"a.png": img.getvalue() * 4, "0.json": _frame()}, corrupt=True))
    assert data.names == ["0.json"]
    assert "a.png" not in data.image_sizes


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"points": 1}, r"frame 0.json: points must be a list, not int"),
        ({"points": "\n"}, r"frame 0.json: points must be a list, not str"),
        ({"points": [{"x": 1, "y": 1}]}, r"frame 0.json: points\[0\] lacks 'z'"),
        ({"points": [{"x": 1, "y": 1, "z": 1}, {"y": 1}]}, r"points\[1\] lacks 'x'"),
        ({"points": [[1, 2]]}, r"frame 0.json: points\[0\] is bad"),
        ({"images": {"a": 1}}, "frame 0.json: images must be a list of camera objects, not dict"),
        ({"images": 1e-320}, "images must be a list of camera objects, not float"),
        ({"images": [1]}, "frame 0.json, image 0: missing or bad field"),
    ],
    ids=[
        "points-int",
        "points-str",
        "no-z",
        "no-x",
        "short-row",
        "images-object",
        "images-float",
        "image-not-object",
    ],
)
def test_a_bad_frame_field_is_one_error_naming_the_frame(
    frame: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        parse_frames_zip(_zip({"0.json": _frame(**frame)}))


# -- class 6: no silent origin / identity ---------------------------------------------------------


def test_a_frame_without_device_pose_is_reported_by_name() -> None:
    no_pose = json.dumps({"points": [{"x": 1, "y": 2, "z": 3}]}).encode()
    data = parse_frames_zip(_zip({"0.json": _frame(), "1.json": no_pose}))
    assert [(i.file_id, i.action) for i in data.issues] == [("1.json", "changed")]
    assert "no device_position or device_heading" in data.issues[0].reason


@pytest.mark.parametrize("where", ["device", "camera"])
def test_a_zero_quaternion_is_an_error_naming_the_frame(where: str) -> None:
    zero = {"x": 0, "y": 0, "z": 0, "w": 0}
    cam = {"fx": 1, "fy": 1, "cx": 1, "cy": 1, "position": {"x": 0, "y": 0, "z": 0},
           "heading": zero if where == "camera" else POSE["device_heading"]}  # fmt: skip
    frame = _frame(images=[cam], **({"device_heading": zero} if where == "device" else {}))
    match = "frame 0.json: device_heading" if where == "device" else "frame 0.json, image 0"
    with pytest.raises(ParseError, match=f"{match}.* is not a rotation"):
        parse_frames_zip(_zip({"0.json": frame}))


# -- paint metadata -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (None, "paint-metadata must be a JSON object, not NoneType"),
        ([1], "paint-metadata must be a JSON object, not list"),
        ({"frame_sizes": 3}, "frame_sizes must be a list of non-negative point counts, not 3"),
        ({"frame_sizes": True}, "frame_sizes must be a list"),
        ({"frame_sizes": 1.5}, "frame_sizes must be a list"),
        ({"frame_sizes": "3"}, "frame_sizes must be a list"),
        ({"frame_sizes": [None]}, "frame_sizes must be a list"),
        ({"frame_sizes": [-1, 4]}, "frame_sizes must be a list"),
        (
            {"frame_sizes": [3], "paint_categories": "ground"},
            "paint-metadata paint_categories must be a list of names, not 'gr",
        ),
        (
            {"frame_sizes": [3], "paint_categories": True},
            "paint-metadata paint_categories must be a list of names, not True",
        ),
    ],
)
def test_bad_paint_metadata_is_one_error_naming_the_file(meta: Any, message: str) -> None:
    with pytest.raises(ParseError, match=f"x.dpn: {message}"):
        parse_paint_labels(bytes([0, 1, 0]), json.dumps(meta), path="x.dpn")


def test_dataset_json_that_is_a_list_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text('{"labels": {"a.png": []}}')
    (tmp_path / "dataset.json").write_text("[1]")
    with pytest.raises(ParseError, match=r"dataset.json: must hold a JSON object, not list"):
        parse_snapshot(tmp_path)


# -- converters: 1-point lanes, rows options, track ids near 2**63 -------------------------------


@pytest.fixture
def lane_input(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "0.png")
    lanes = [
        {"label_type": "lane", "label_id": "lane:1", "file_id": "0.png",
         "label_category_id": "lane", "polygons": [[[5, 5]]]},
        {"label_type": "lane", "label_id": "lane:2", "file_id": "0.png",
         "label_category_id": "lane", "polygons": [[[5, 47], [30, 5]]]},
    ]  # fmt: skip
    (tmp_path / "labels.json").write_text(json.dumps({"labels": lanes}))
    return tmp_path / "labels.json", tmp_path / "imgs"


def _convert(src: Path, fmt: str, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(main, ["convert", str(src), "--to", fmt, "-o", str(out), *extra])


@pytest.mark.parametrize("fmt", ["tusimple", "culane"])
def test_a_one_point_lane_is_reported_not_a_crash(
    lane_input: tuple[Path, Path], tmp_path: Path, fmt: str
) -> None:
    src, imgs = lane_input
    res = _convert(src, fmt, tmp_path / "out", "--images", str(imgs))
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    mine = [(i["action"], i["reason"]) for i in report["issues"] if i["label_id"] == "lane:1"]
    assert mine == [("dropped", "lane covers none of the sampled rows")]


@pytest.mark.parametrize(
    ("fmt", "option"),
    [("culane", "rows=[1e400]"), ("tusimple", "h_samples=[1e400]"), ("culane", "rows=[-3]")],
)
def test_rows_that_are_not_pixel_rows_are_one_error(
    lane_input: tuple[Path, Path], tmp_path: Path, fmt: str, option: str
) -> None:
    src, imgs = lane_input
    res = _convert(src, fmt, tmp_path / "out", "--images", str(imgs), "-O", option)
    assert res.exit_code != 0
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "must list pixel rows" in res.output
    assert not (tmp_path / "out").exists()


def test_kitti_tracking_keeps_a_track_id_of_2_63_minus_1(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "0.png")
    boxes = [_box(label_id=f"car:{I63}"), _box(label_id="car:x"), _box(label_id="car:1")]
    (tmp_path / "labels.json").write_text(json.dumps({"labels": boxes}))
    res = _convert(tmp_path / "labels.json", "kitti_tracking", tmp_path / "out",
                   "--images", str(tmp_path / "imgs"))  # fmt: skip
    assert res.exit_code == 0, res.output
    (text,) = [p.read_text() for p in (tmp_path / "out" / "label_02").glob("*.txt")]
    # car:x has no track number: it takes the lowest free id (I63 + 1 would not fit in int64)
    assert sorted(line.split()[1] for line in text.splitlines()) == sorted(["0", "1", str(I63)])


# -- entries that are not label objects: the fast and the streaming path report them too -------


@pytest.mark.parametrize(
    "labels",
    [
        [None, _box()],
        [_box(), 5, _box(label_id="car:2"), None],
        [_box(), "x", [1], _box(label_id="car:2")],
    ],
    ids=["null-first", "scalars-between-and-after", "string-and-list"],
)
@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_non_object_entries_are_reported_on_every_path(
    tmp_path: Path, labels: list[Any], batch_size: int
) -> None:
    body = json.dumps({"labels": labels}).encode()
    whole, _ = _both_paths(tmp_path, body)
    expected = len([x for x in labels if not isinstance(x, dict)])
    assert len(whole) == len(labels) - expected
    assert [i.reason.startswith("a label must be a JSON object") for i in whole.issues] == [
        True
    ] * expected
    batches = list(iter_label_batches(tmp_path / "labels.json", batch_size=batch_size))
    assert sum(len(b) for b in batches) == len(whole)
    assert [i for b in batches for i in b.issues] == list(whole.issues)
