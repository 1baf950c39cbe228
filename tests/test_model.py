"""The columnar label model: construction, validation, selection, concatenation, equality."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepen_export.errors import LabelError
from deepen_export.model import (
    Boxes,
    Cuboids,
    Frames,
    FrameStatus,
    LabelSet,
    Masks2D,
    Points,
    PointSegmentation,
    Polygons,
    Polylines,
    Scenes,
    parse_track,
)
from deepen_export.parse import yaw_to_quat


def _polygons(rings_per_label: list[list[int]]) -> Polygons:
    """Polygons whose vertex i has coordinates (i, -i), so slices are easy to check by hand."""
    n = len(rings_per_label)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings_per_label])])
    ring_sizes = [s for r in rings_per_label for s in r]
    ring_offsets = np.concatenate([[0], np.cumsum(ring_sizes)]).astype(np.int64)
    m = int(ring_offsets[-1])
    coords = np.stack([np.arange(m), -np.arange(m)], axis=1).astype(float)
    return Polygons.from_columns(
        frame=np.zeros(n, dtype=np.int64),
        category=np.zeros(n, dtype=np.int32),
        label_id=[f"p:{i}" for i in range(n)],
        offsets=offsets,
        ring_offsets=ring_offsets,
        coords=coords,
        attributes={"idx": [str(i) for i in range(n)]},
    )


def test_parse_track_accepts_both_label_id_forms():
    assert parse_track(["car:4", "car: 4", "car :12", "bus", "", None, "a:b:7"]).tolist() == [
        4,
        4,
        12,
        -1,
        -1,
        -1,
        7,
    ]


def test_from_columns_fills_defaults_and_parses_tracks():
    b = Boxes.from_columns(
        frame=[0, 0],
        category=[0, 1],
        label_id=["car:1", "bus: 7"],
        xyxy=[[0, 0, 1, 1], [1, 1, 2, 2]],
    )
    assert b.track.tolist() == [1, 7]
    assert b.stage.tolist() == ["", ""]
    assert b.create_time.tolist() == [-1, -1]
    assert b.xyxy.dtype == np.float64
    assert not b.xyxy.flags.writeable


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"frame": [0], "category": [0], "label_id": ["a"], "xyxy": [[0, 0, 1]]},
            r"xyxy must have shape \(n, 4\)",
        ),
        (
            {"frame": [0, 1], "category": [0], "label_id": ["a"], "xyxy": [[0, 0, 1, 1]]},
            "must have length 2",
        ),
        ({"frame": [0], "category": [0], "label_id": ["a"]}, "xyxy is required"),
        (
            {
                "frame": [0],
                "category": [0],
                "label_id": ["a"],
                "xyxy": [[0, 0, 1, 1]],
                "bogus": [1],
            },
            "no column",
        ),
    ],
)
def test_validation_says_what_it_expected(columns, message):
    with pytest.raises(LabelError, match=message):
        Boxes.from_columns(**columns)


def test_offsets_must_be_monotone():
    with pytest.raises(LabelError, match="never decrease"):
        Points.from_columns(
            frame=[0, 0],
            category=[0, 0],
            label_id=["a", "b"],
            offsets=[0, 2, 1],
            coords=[[0, 0], [1, 1]],
        )


def test_attribute_columns_must_match_length():
    with pytest.raises(LabelError, match=r"attributes\['x'\]"):
        Scenes.from_columns(frame=[0], category=[0], label_id=["s:1"], attributes={"x": ["a", "b"]})


def test_take_on_two_level_ragged_table_by_hand():
    p = _polygons([[3], [4, 3], [5]])  # vertices: label0 0-2, label1 3-6 + 7-9, label2 10-14
    sel = p.take([2, 1])
    assert sel.offsets.tolist() == [0, 1, 3]
    assert sel.ring_offsets.tolist() == [0, 5, 9, 12]
    assert sel.coords[:, 0].tolist() == [10, 11, 12, 13, 14, 3, 4, 5, 6, 7, 8, 9]
    assert sel.attributes["idx"].tolist() == ["2", "1"]
    mask = p[np.array([True, False, True])]
    assert mask.label_id.tolist() == ["p:0", "p:2"]
    assert mask.ring_offsets.tolist() == [0, 3, 8]


def test_labelset_checks_frames_and_category_codes():
    frames = Frames.from_columns(file_id=["a"])
    boxes = Boxes.from_columns(frame=[1], category=[0], label_id=["x"], xyxy=[[0, 0, 1, 1]])
    with pytest.raises(LabelError, match="frame has rows outside"):
        LabelSet(frames=frames, categories=("x",), boxes=boxes)
    boxes = Boxes.from_columns(frame=[0], category=[3], label_id=["x"], xyxy=[[0, 0, 1, 1]])
    with pytest.raises(LabelError, match="category has codes outside"):
        LabelSet(frames=frames, categories=("x",), boxes=boxes)


def test_len_counts_every_kind():
    frames = Frames.from_columns(file_id=["a", "b"])
    ls = LabelSet(
        frames=frames,
        categories=("car", "road"),
        boxes=Boxes.from_columns(
            frame=[0, 1], category=[0, 0], label_id=["car:1", "car:2"], xyxy=np.zeros((2, 4))
        ),
        scenes=Scenes.from_columns(frame=[0], category=[1], label_id=["road:1"]),
        point_segmentation=PointSegmentation.from_columns(
            frame=[1], offsets=[0, 3], category=[0, -1, 1]
        ),
        masks2d=Masks2D.from_columns(
            frame=[0], height=[1], width=[2], offsets=[0, 2], pixels=[-1, 1]
        ),
    )
    assert len(ls) == 2 + 1 + 1 + 1
    assert ls.kinds_present() == ["boxes", "scenes", "point_segmentation", "masks2d"]


def test_select_frames_renumbers_and_keeps_ragged_data():
    frames = Frames.from_columns(file_id=["a", "b", "c"], status=[3, 2, 3])
    p = _polygons([[3], [4], [5]])
    p = Polygons.from_columns(**{**p.columns(), "frame": [0, 2, 2]}, attributes=p.attributes)
    ls = LabelSet(frames=frames, categories=("x",), polygons=p)
    sub = ls.select_frames([False, True, True])
    assert sub.frames.file_id.tolist() == ["b", "c"]
    assert sub.frames.status.tolist() == [FrameStatus.EMPTY, FrameStatus.LABELLED]
    assert sub.polygons.frame.tolist() == [1, 1]
    assert sub.polygons.coords[:, 0].tolist() == list(range(3, 12))


def test_concat_remaps_categories_and_frames():
    a = LabelSet(
        frames=Frames.from_columns(file_id=["a"]),
        categories=("car",),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 0, 1, 1]]),
    )
    b = LabelSet(
        frames=Frames.from_columns(file_id=["b", "c"]),
        categories=("bus", "car"),
        boxes=Boxes.from_columns(
            frame=[1, 0],
            category=[0, 1],
            label_id=["bus:1", "car:9"],
            xyxy=[[0, 0, 2, 2], [1, 1, 3, 3]],
        ),
        point_segmentation=PointSegmentation.from_columns(
            frame=[1], offsets=[0, 2], category=[-1, 1]
        ),
    )
    c = LabelSet.concat([a, b])
    assert c.categories == ("car", "bus")
    assert c.frames.file_id.tolist() == ["a", "b", "c"]
    assert c.boxes.frame.tolist() == [0, 2, 1]
    assert [c.categories[i] for i in c.boxes.category] == ["car", "bus", "car"]
    assert c.point_segmentation.frame.tolist() == [2]
    assert c.point_segmentation.category.tolist() == [-1, 0]


def test_equality_treats_nan_as_equal_and_checks_attributes():
    a = Boxes.from_columns(
        frame=[0], category=[0], label_id=["a"], xyxy=[[np.nan, 0, 1, 1]], attributes={"k": ["v"]}
    )
    b = Boxes.from_columns(
        frame=[0], category=[0], label_id=["a"], xyxy=[[np.nan, 0, 1, 1]], attributes={"k": ["v"]}
    )
    c = Boxes.from_columns(
        frame=[0], category=[0], label_id=["a"], xyxy=[[np.nan, 0, 1, 1]], attributes={"k": ["w"]}
    )
    assert a == b
    assert a != c
    assert a != Boxes.from_columns(
        frame=[0], category=[0], label_id=["a"], xyxy=[[np.nan, 0, 1, 1]]
    )


def test_cuboid_yaw_from_quaternion():
    yaw = np.array([0.0, 0.3, -2.0, np.pi - 1e-9])
    c = Cuboids.from_columns(
        frame=[0] * 4,
        category=[0] * 4,
        label_id=list("abcd"),
        center=np.zeros((4, 3)),
        size=np.ones((4, 3)),
        quat=yaw_to_quat(yaw),
    )
    np.testing.assert_allclose(c.yaw, yaw, atol=1e-9)
    assert c.frame_of_reference == "world"
    assert c.take([1]).frame_of_reference == "world"


def test_polyline_table_keeps_label_type():
    p = Polylines.from_columns(
        frame=[0],
        category=[0],
        label_id=["lane:1"],
        offsets=[0, 1],
        part_offsets=[0, 2],
        coords=[[0, 0], [1, 1]],
    )
    assert p.label_type.tolist() == ["lane"]


# -- properties ----------------------------------------------------------------------------

ragged = st.lists(st.lists(st.integers(1, 5), min_size=1, max_size=3), min_size=0, max_size=8)


@settings(max_examples=60, deadline=None)
@given(ragged, st.data())
def test_take_matches_per_label_slicing(rings, data):
    p = _polygons(rings)
    idx = data.draw(st.lists(st.integers(0, max(len(rings) - 1, 0)), max_size=10)) if rings else []
    sel = p.take(np.asarray(idx, dtype=np.int64))
    assert len(sel) == len(idx)
    sel.validate()
    for j, i in enumerate(idx):
        a0, a1 = p.ring_offsets[p.offsets[i]], p.ring_offsets[p.offsets[i + 1]]
        b0, b1 = sel.ring_offsets[sel.offsets[j]], sel.ring_offsets[sel.offsets[j + 1]]
        np.testing.assert_array_equal(sel.coords[b0:b1], p.coords[a0:a1])
        np.testing.assert_array_equal(
            np.diff(sel.ring_offsets[sel.offsets[j] : sel.offsets[j + 1] + 1]), rings[i]
        )


@settings(max_examples=60, deadline=None)
@given(ragged, ragged)
def test_concat_then_take_returns_the_parts(r1, r2):
    a, b = _polygons(r1), _polygons(r2)
    c = Polygons.concat([a, b])
    c.validate()
    assert len(c) == len(a) + len(b)
    assert c.take(np.arange(len(a))) == a
    assert c.take(np.arange(len(a), len(a) + len(b))) == b


@settings(max_examples=60, deadline=None)
@given(ragged)
def test_mask_and_index_selection_agree(rings):
    p = _polygons(rings)
    mask = np.arange(len(p)) % 2 == 0
    assert p[mask] == p.take(np.flatnonzero(mask))


@settings(max_examples=100, deadline=None)
@given(st.floats(-np.pi + 1e-6, np.pi - 1e-6))
def test_rot_z_and_quaternion_forms_give_the_same_rotation(yaw):
    q = yaw_to_quat([yaw])[0]
    x, y, z, w = q
    # rotation matrix of the quaternion (Hamilton, scalar last), written out by hand
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    np.testing.assert_allclose(r, rz, atol=1e-12)
    assert abs(np.linalg.norm(q) - 1) < 1e-12


def test_equals_compares_issues_unless_told_not_to() -> None:
    from deepen_export.model import Issue

    a = LabelSet(issues=(Issue("dropped", "unknown label_type 'x'", file_id="f", label_id="x:1"),))
    b = LabelSet(issues=(Issue("dropped", "unknown label_type 'y'", file_id="f", label_id="x:1"),))
    assert a.equals(a) and a == a
    assert not a.equals(b) and a != b
    assert not a.equals(LabelSet())
    assert a.equals(b, check_issues=False)
