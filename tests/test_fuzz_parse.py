"""Fuzzing the label JSON (issue 16). Oracle: no traceback (a :class:`DeepenExportError` is a
clear error), and every input label is accounted for, in the output or in the report.

The frames-zip and paint-metadata fuzzers still find crashes in parse code (bad CRC, broken
deflate, ``"points": 1``, ``frame_sizes``/``paint_categories`` not lists, metadata ``null``),
issue 16 class 8; they join this file once those are fixed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepen_export.errors import DeepenExportError
from deepen_export.model import LABEL_KINDS, LabelSet
from deepen_export.parse import parse_labels

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values, from plausible to hostile --------------------------------------------------------

big_ints = st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64 + 5, 10**30])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -0.0, 1e-320])
scalars = (
    st.none()
    | st.booleans()
    | big_ints
    | st.integers(-1000, 1000)
    | floats
    | st.text(max_size=8)
    | st.sampled_from(["", " ", "\x00", "\ud800", "car", "1.5", "nan", "\n"])
)
numbers = st.integers(-2000, 2000) | st.floats(-1e4, 1e4) | scalars
point2 = st.lists(numbers, min_size=0, max_size=3)
point3 = st.lists(numbers, min_size=0, max_size=4) | st.dictionaries(
    st.sampled_from(["x", "y", "z"]), numbers, max_size=3
)
ring = st.lists(point2, max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)

label_types = st.sampled_from(
    ["box", "polygon", "line", "lane", "point", "3d_bbox", "3d_polygon", "3d_line", "3d_point",
     "instance_segmentation", "semantic_segmentation", "unknown_type", ""]
)  # fmt: skip
label_ids = (
    st.builds(lambda c, n: f"{c}:{n}", st.sampled_from(["car", "Car", "a b"]), big_ints)
    | st.text(max_size=10)
    | big_ints
    | st.none()
)
file_ids = st.sampled_from(["0.png", "1.png", "a/b.png", "0.pcd", "", "../x.png"]) | scalars


@st.composite
def labels(draw: Any) -> dict[str, Any]:
    lab: dict[str, Any] = {
        "label_type": draw(label_types | scalars),
        "label_id": draw(label_ids),
        "file_id": draw(file_ids),
        "label_category_id": draw(st.sampled_from(["car", "Car", " ", ""]) | scalars),
    }
    geometry = {
        "box": st.lists(numbers, max_size=5) | scalars,
        "polygons": st.lists(ring, max_size=3) | st.lists(point2, max_size=4) | scalars,
        "points": st.lists(point2 | point3, max_size=5) | scalars,
        "three_d_bbox": st.dictionaries(
            st.sampled_from(["cx", "cy", "cz", "l", "w", "h", "rot_z", "quaternion"]),
            numbers | st.dictionaries(st.sampled_from(["x", "y", "z", "w"]), numbers),
            max_size=8,
        )
        | scalars,
        "attributes": st.dictionaries(st.text(max_size=5), json_values, max_size=3) | scalars,
        "version": big_ints | scalars,
        "create_time_millis": big_ints | scalars,
        "stage_id": scalars,
        "sensor_id": st.sampled_from(["lidar", "camera_0"]) | scalars,
    }
    for key, strategy in geometry.items():
        if draw(st.booleans()):
            lab[key] = draw(strategy)
    return lab


entries = st.lists(labels() | scalars, max_size=6)
bodies = (
    st.builds(lambda xs: {"labels": xs}, entries)
    | st.builds(lambda xs: {"all_labels": xs}, entries)
    | st.builds(
        lambda d: {"labels": d},
        st.dictionaries(
            st.sampled_from(["0.png", "1.png", "0.pcd"]), entries | scalars, max_size=3
        ),
    )
    | json_values
)


def _out_ids(ls: LabelSet) -> set[str]:
    ids: set[str] = set()
    for kind in LABEL_KINDS:
        ids.update(str(x) for x in ls.table(kind).label_id)
    return ids


def _inputs(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        return []
    raw = body.get("labels", body.get("all_labels"))
    if isinstance(raw, dict):
        return [x for v in raw.values() if isinstance(v, list) for x in v]
    return list(raw) if isinstance(raw, list) else []


@SETTINGS
@given(bodies)
def test_label_json_no_traceback_and_every_label_accounted_for(body: Any) -> None:
    text = json.dumps(body, allow_nan=True)
    try:
        ls = parse_labels(text.encode("utf-8", "surrogatepass"), path="fuzz.json")
    except DeepenExportError:
        return
    seen = _out_ids(ls)
    reported = {str(i.label_id) for i in ls.issues if i.label_id is not None}
    anonymous = sum(1 for i in ls.issues if i.label_id is None)
    inputs = _inputs(json.loads(text))
    missing = [
        lab
        for lab in inputs
        if isinstance(lab, dict)
        and isinstance(lab.get("label_id"), str)
        and lab["label_id"] not in seen | reported
    ]
    assert len(missing) <= anonymous, missing
    assert len(inputs) <= len(seen) + len(ls.issues) + sum(
        1 for lab in inputs if isinstance(lab, dict) and lab.get("label_id") in seen
    )
