"""YOLO writer/reader on the sample image dataset; expected numbers worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import deepen_export
from converters import yolo
from deepen_export.errors import ConversionError, LossyConversionWarning
from deepen_export.model import Boxes, Cuboids, Frames, LabelSet, Polygons

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["image_dataset"]


def sample() -> LabelSet:
    return deepen_export.read_labels(SAMPLES / "image_dataset").without(
        "polylines", "points", "scenes"
    )


def lines(out: Path, rel: str) -> list[list[str]]:
    return [ln.split() for ln in (out / "labels" / rel).read_text().splitlines()]


def test_detect_lines_by_hand(tmp_path: Path) -> None:
    ls = sample()
    yolo.write(ls, tmp_path / "y")
    car = str(ls.category_code("car"))
    rows = {tuple(r) for r in lines(tmp_path / "y", "sensor1__000001.txt")}
    # car:1 xyxy [10, 8, 30, 20] on 64x48: centre (20, 14), size 20x12
    #   -> 20/64 = 0.3125, 14/48 = 0.291667, 20/64 = 0.3125, 12/48 = 0.25
    assert (car, "0.312500", "0.291667", "0.312500", "0.250000") in rows
    # car:2 clipped to [50.5, 30, 64, 48]: centre (57.25, 39), size 13.5x18
    #   -> 57.25/64 = 0.89453125, 39/48 = 0.8125, 13.5/64 = 0.2109375, 18/48 = 0.375
    assert (car, "0.894531", "0.812500", "0.210938", "0.375000") in rows


def test_all_values_normalised_and_report(tmp_path: Path) -> None:
    report = yolo.write(sample(), tmp_path / "y", task="segment")
    for p in (tmp_path / "y" / "labels").rglob("*.txt"):
        for row in lines(tmp_path / "y", p.relative_to(tmp_path / "y" / "labels").as_posix()):
            vals = np.asarray(row[1:], dtype=float)
            assert ((vals >= 0) & (vals <= 1)).all(), (p, row)
    changed = {
        (i.label_id, i.reason) for i in report if i.action == "changed" and i.kind == "polygons"
    }
    assert ("road:1", "polygon holes filled (YOLO has no holes)") in changed
    assert ("building:1", "multi-part polygon written as one line per part") in changed
    assert [i.label_id for i in report if i.action == "clipped"] == ["car:2"]
    assert [i.label_id for i in report if i.action == "repaired"] == ["vegetation:1"]


def test_segment_multipart_two_lines(tmp_path: Path) -> None:
    ls = sample()
    yolo.write(ls, tmp_path / "y", task="segment")
    building = str(ls.category_code("building"))
    rows = [r for r in lines(tmp_path / "y", "inner_kitty__000059.txt") if r[0] == building]
    assert len(rows) == 2  # building:1 has two disjoint rings (expected.json: n_parts 2)


def test_empty_and_unlabelled_images(tmp_path: Path) -> None:
    report = yolo.write(sample(), tmp_path / "y")
    assert (tmp_path / "y" / "labels" / "000003.txt").read_text() == ""  # reviewed, empty
    assert not (tmp_path / "y" / "labels" / "000004.txt").exists()  # not labelled yet
    assert [(i.action, i.file_id) for i in report if i.action == "skipped"] == [
        ("skipped", "000004.png")
    ]
    yolo.write(sample(), tmp_path / "z", include_unlabelled=True)
    assert (tmp_path / "z" / "labels" / "000004.txt").read_text() == ""


def test_data_yaml_names(tmp_path: Path) -> None:
    ls = sample()
    yolo.write(ls, tmp_path / "y")
    data = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(ls.categories))
    assert "truck" in data["names"].values()  # unused category keeps its place


def test_round_trip_detect(tmp_path: Path) -> None:
    ls = sample()
    yolo.write(ls, tmp_path / "y")
    back = yolo.read(tmp_path / "y")
    assert back.categories == ls.categories
    got = {
        (back.frames.file_id[f], lid): xy
        for f, lid, xy in zip(back.boxes.frame, back.boxes.label_id, back.boxes.xyxy, strict=True)
    }
    for lid, e in EXPECTED["boxes"].items():
        # 6 decimals of a value normalised by <= 80 px: error <= 0.5e-6 * 80 * 2
        np.testing.assert_allclose(got[e["file_id"], lid], e["xyxy_clipped"], atol=1e-4)
    # polygons come back as their boxes (detect), marked as polygons by the sidecar
    assert sorted(back.polygons.label_id.tolist()) == ["building:1", "road:1", "vegetation:1"]
    assert back.boxes.attributes["color"].tolist().count("red") == 1


def test_evil_file_id_refused(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(
            file_id=["ok.png", "../evil.png"], width=[10, 10], height=[10, 10]
        ),
        categories=("car",),
        boxes=Boxes.from_columns(frame=[1], category=[0], label_id=["car:1"], xyxy=[[1, 1, 2, 2]]),
    )
    with pytest.raises(ConversionError, match="evil"):
        yolo.write(ls, tmp_path / "y")
    assert list(tmp_path.iterdir()) == []


def test_deterministic_bytes(tmp_path: Path) -> None:
    for task in ("detect", "segment"):
        yolo.write(sample(), tmp_path / f"a{task}", task=task)
        yolo.write(sample(), tmp_path / f"b{task}", task=task)
        a = sorted(
            p.relative_to(tmp_path / f"a{task}")
            for p in (tmp_path / f"a{task}").rglob("*")
            if p.is_file()
        )
        b = sorted(
            p.relative_to(tmp_path / f"b{task}")
            for p in (tmp_path / f"b{task}").rglob("*")
            if p.is_file()
        )
        assert a == b
        for rel in a:
            assert (tmp_path / f"a{task}" / rel).read_bytes() == (
                tmp_path / f"b{task}" / rel
            ).read_bytes()


def test_on_unsupported(tmp_path: Path) -> None:
    ls = sample().replace(
        cuboids=Cuboids.from_columns(
            frame=[0],
            category=[0],
            label_id=["car:9"],
            center=[[0, 0, 0]],
            size=[[1, 1, 1]],
            quat=[[0, 0, 0, 1]],
        )
    )
    with pytest.raises(ConversionError, match="cuboids"):
        yolo.write(ls, tmp_path / "r")
    with pytest.warns(LossyConversionWarning):
        yolo.write(ls, tmp_path / "w", on_unsupported="warn")
    rep = yolo.write(ls, tmp_path / "d", on_unsupported="drop")
    assert [(i.action, i.label_id) for i in rep if i.kind == "cuboids"] == [("dropped", "car:9")]


def test_bad_task() -> None:
    with pytest.raises(ValueError, match="task"):
        yolo.write(sample(), "/nonexistent/never", task="pose")  # type: ignore[arg-type]


def test_read_plain_yolo_folder_with_images(tmp_path: Path) -> None:
    from PIL import Image

    ls = LabelSet(
        frames=Frames.from_columns(file_id=["sub/a.png"], width=[15], height=[10]),
        categories=("car",),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 2, 4, 4]]),
    )
    yolo.write(ls, tmp_path / "y")
    (tmp_path / "y" / "frames.json").unlink()  # a folder without our sidecar
    # flat names: the file id's folders joined with "__"
    Image.new("RGB", (15, 10)).save(tmp_path / "y" / "images" / "sub__a.png")
    back = yolo.read(tmp_path / "y")
    assert back.frames.file_id.tolist() == ["sub__a.png"]
    assert (back.frames.width.tolist(), back.frames.height.tolist()) == ([15], [10])
    # formats.md 5.2: "0 0.133333 0.300000 0.266667 0.200000" on 15x10 -> x 0..4, y 2..4
    np.testing.assert_allclose(back.boxes.xyxy, [[0, 2, 4, 4]], atol=1e-5)


_ATTR = st.one_of(
    st.none(),
    st.sampled_from(["none", "heavy", 'say "hi"', "é\n"]),
    st.integers(-3, 3),
    st.booleans(),
    st.floats(-2, 2, width=16),
    st.lists(st.integers(0, 2), max_size=2),
)


@st.composite
def _labelled(draw: st.DrawFn) -> tuple[LabelSet, dict[str, list]]:
    """Boxes and squares inside 100 x 80 images, with attributes of any type (few distinct)."""
    n_frames = draw(st.integers(1, 5))
    n_b, n_p = draw(st.integers(0, 7)), draw(st.integers(0, 5))
    frame_b = draw(st.lists(st.integers(0, n_frames - 1), min_size=n_b, max_size=n_b))
    frame_p = draw(st.lists(st.integers(0, n_frames - 1), min_size=n_p, max_size=n_p))
    one_type = draw(st.booleans())  # one attribute column of one type: the memo path

    def attrs(n: int) -> dict[str, list]:
        occ = st.sampled_from(["a", "b", None]) if one_type else _ATTR
        return {
            "occ": draw(st.lists(occ, min_size=n, max_size=n)),
            "x": draw(st.lists(_ATTR, min_size=n, max_size=n)),
        }

    box_attrs, poly_attrs = attrs(n_b), attrs(n_p)
    corners = [[k, k, 10 + k, 12 + k] for k in range(n_p)]
    squares = [[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for x0, y0, x1, y1 in corners]
    labels = LabelSet(
        frames=Frames.from_columns(
            file_id=[f"im{k}.png" for k in range(n_frames)],
            width=[100] * n_frames,
            height=[80] * n_frames,
        ),
        categories=("car", "road"),
        boxes=Boxes.from_columns(
            frame=frame_b,
            category=[0] * n_b,
            label_id=[f'car:{k}"' for k in range(n_b)],
            xyxy=np.reshape([[1 + k, 2, 30, 40] for k in range(n_b)], (-1, 4)),
            attributes=box_attrs,
        ),
        polygons=Polygons.from_columns(
            frame=frame_p,
            category=[1] * n_p,
            label_id=[f"road:{k}" for k in range(n_p)],
            offsets=np.arange(n_p + 1),
            ring_offsets=np.arange(n_p + 1) * 4,
            coords=np.reshape(squares, (-1, 2)),
            attributes=poly_attrs,
        ),
    )
    return labels, {"box": box_attrs, "polygon": poly_attrs}


@settings(max_examples=60, deadline=None)
@given(_labelled(), st.sampled_from(["detect", "segment"]), st.integers(1, 3))
def test_frames_json_is_the_per_label_document(tmp_path_factory, case, task, chunk) -> None:
    """frames.json, built column by column and a chunk of files at a time, is the document of
    one dict per line that dump_json would write (label entries in line order: each file's
    boxes, then its polygons)."""
    from converters._base import json_bytes

    labels, attrs = case
    out = tmp_path_factory.mktemp("y") / "y"
    old, yolo._SIDECAR_FILES = yolo._SIDECAR_FILES, chunk
    try:
        yolo.write(labels, out, task=task)
    finally:
        yolo._SIDECAR_FILES = old
    text = (out / "frames.json").read_bytes()
    doc = json.loads(text)
    for i, frame in enumerate(doc["frames"]):
        entries = []
        for kind, table in (("box", labels.boxes), ("polygon", labels.polygons)):
            for row in np.flatnonzero(table.frame == i).tolist():
                entry = {"label_id": table.label_id[row], "type": kind}
                present = {k: v[row] for k, v in attrs[kind].items() if v[row] is not None}
                entries.append({**entry, "attributes": present} if present else entry)
        frame["labels"] = entries
    assert text == json_bytes(doc, indent=True) + b"\n"


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9)), max_size=12), st.booleans())
def test_line_order_is_lexsort(pairs, sort_first) -> None:
    """The already-sorted shortcut gives lexsort's order."""
    frame = np.array([f for f, _ in pairs], dtype=np.int64)
    rows = np.array([r for _, r in pairs], dtype=np.int64)
    if sort_first:  # labels file by file, rows increasing: the shortcut
        frame, rows = np.sort(frame), np.cumsum(rows + 1)
    assert yolo._by_frame(frame, rows).tolist() == np.lexsort((rows, frame)).tolist()
