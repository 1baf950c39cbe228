"""Semantic mask writer/reader: pixel counts from expected.json (independent) and by hand."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import deepen_export
from converters import masks
from deepen_export import geometry as geo
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet, Masks2D, Polygons
from deepen_export.parse import parse_painting2d

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())


def painted() -> LabelSet:
    ls = parse_painting2d(
        SAMPLES / "painting2d", deepen_export.read_labels(SAMPLES / "image_dataset")
    )
    return ls.without("boxes", "polylines", "points", "scenes")


def counts(path: Path, classes: list[dict[str, object]]) -> dict[str, int]:
    a = np.asarray(Image.open(path))
    names = {c["index"]: c["name"] for c in classes}
    vals, n = np.unique(a, return_counts=True)
    return {
        ("unpainted" if v == 0 else str(names[int(v)])): int(k)
        for v, k in zip(vals, n, strict=True)
    }


def test_painting_counts_match_expected(tmp_path: Path) -> None:
    masks.write(painted().without("polygons"), tmp_path / "m")
    classes = json.loads((tmp_path / "m" / "classes.json").read_text())
    assert classes[0] == {"index": 0, "name": "__background__", "color": [0, 0, 0]}
    got = counts(tmp_path / "m" / "masks" / "sensor1" / "000001.png", classes)
    assert got == EXPECTED["painting2d"]["000001.png|sensor1"]["counts"]
    got = counts(tmp_path / "m" / "masks" / "inner_kitty" / "000059.png", classes)
    assert got == EXPECTED["painting2d"]["inner_kitty/000059.png|sensor1"]["counts"]


def test_png_is_indexed_with_voc_palette(tmp_path: Path) -> None:
    masks.write(painted(), tmp_path / "m")
    im = Image.open(tmp_path / "m" / "masks" / "sensor1" / "000001.png")
    assert im.mode == "P"
    pal = np.asarray(im.getpalette()[: 3 * 3]).reshape(3, 3)
    # VOC colour map: 0 black, 1 (128, 0, 0), 2 (0, 128, 0)
    assert pal.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]


def test_polygon_with_hole_rasterised(tmp_path: Path) -> None:
    ls = painted()
    masks.write(ls.without("masks2d"), tmp_path / "m")
    a = np.asarray(Image.open(tmp_path / "m" / "masks" / "sensor1" / "000001.png"))
    road = ls.category_code("road") + 1
    # road:1: outer ring area 960 minus hole 100 (expected.json), integer corners -> 860 pixels
    assert int((a == road).sum()) == EXPECTED["image_dataset"]["polygons"]["road:1"]["area"] == 860


def test_painters_order_later_label_wins(tmp_path: Path) -> None:
    # a (0..4 x 0..4, code 0) then b (2..6 x 2..6, code 1) on 8x8 over a painting of code 2 in
    # row 7: b owns its 16 pixels, a keeps 16 - 4 = 12, painting keeps row 7 = 8 pixels
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["x.png"], width=[8], height=[8]),
        categories=("a", "b", "paint"),
        polygons=Polygons.from_columns(
            frame=[0, 0],
            category=[0, 1],
            label_id=["a:1", "b:1"],
            offsets=[0, 1, 2],
            ring_offsets=[0, 4, 8],
            coords=[[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [6, 2], [6, 6], [2, 6]],
        ),
        masks2d=Masks2D.from_columns(
            frame=[0], height=[8], width=[8], offsets=[0, 64], pixels=[-1] * 56 + [2] * 8
        ),
    )
    masks.write(ls, tmp_path / "m")
    a = np.asarray(Image.open(tmp_path / "m" / "masks" / "x.png"))
    assert np.bincount(a.ravel(), minlength=4).tolist() == [64 - 12 - 16 - 8, 12, 16, 8]
    assert a[3, 3] == 2 and a[0, 0] == 1 and a[7, 0] == 3


def test_round_trip_painting(tmp_path: Path) -> None:
    ls = painted().without("polygons")
    masks.write(ls, tmp_path / "m")
    back = masks.read(tmp_path / "m")
    assert back.categories == ls.categories
    keys = list(zip(back.frames.file_id, back.frames.sensor_id, strict=True))
    for i, fr in enumerate(ls.masks2d.frame.tolist()):
        j = keys.index((ls.frames.file_id[fr], ls.frames.sensor_id[fr]))
        k = back.masks2d.frame.tolist().index(j)
        np.testing.assert_array_equal(back.masks2d.mask(k), ls.masks2d.mask(i))


def test_too_many_categories(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["x.png"], width=[2], height=[2]),
        categories=tuple(f"c{i}" for i in range(256)),
    )
    with pytest.raises(ConversionError, match="255"):
        masks.write(ls, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_deterministic(tmp_path: Path) -> None:
    masks.write(painted(), tmp_path / "a")
    masks.write(painted(), tmp_path / "b")
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 8  # 5 masks (000004 not labelled yet), classes, frames, report
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_write_is_on_the_writer_pipeline_with_real_option_types() -> None:
    from converters import deepen, masks

    assert masks.write.option_types == {"clip": bool, "include_unlabelled": bool}  # type: ignore[attr-defined]
    assert deepen.write.option_types["dataset_ids"] == bool | None  # type: ignore[attr-defined]
    assert "on_unsupported" in inspect.signature(masks.write).parameters


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.floats(0, 1), st.integers(1, 9)), max_size=6),
    st.booleans(),
)
def test_painting_run_by_run_is_painting_decoded_masks(h, w, layers, with_none):
    """_paint paints each RLE's runs in label order: the same mask as painting every decoded
    RLE over the last (overlaps, empty and full masks, a missing RLE)."""
    rles = []
    for seed, fill, c in layers:
        m = (np.random.default_rng(seed).random((1, h, w)) < fill).astype(np.uint8)
        rles.append((geo.rle_encode(m)[0], c))
    if with_none:
        rles.insert(len(rles) // 2, (None, 5))
    want = np.zeros((h, w), np.uint8)
    for rle, c in rles:
        if rle is not None:
            want[geo.rle_decode([rle])[0].astype(bool)] = c
    got = masks._paint(LabelSet(), None, rles, h, w)
    assert got.flags.c_contiguous and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(0, 2**32 - 1))
def test_rle_runs_are_the_decoded_mask(h, w, seed):
    """Long runs (counts of several 5-bit groups, negative differences) on large images."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    for _ in range(3):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = 1
    starts, lengths = geo.rle_runs(geo.rle_encode(m[None])[0])
    flat = np.zeros(h * w, np.uint8)
    for a, n in zip(starts.tolist(), lengths.tolist(), strict=True):
        flat[a : a + n] = 1
    np.testing.assert_array_equal(flat.reshape(w, h).T, m)
