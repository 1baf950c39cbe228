"""Fuzzing the three inputs a user cannot vouch for: the label JSON, the frames zip and the paint
metadata (issue 16). Oracle: no traceback (a :class:`DeepenExportError` is a clear error), and
every input label is accounted for, in the output or in the report.

The label bodies are also written to a file and read through the fast (Arrow) and the general
path: both give the same LabelSet and the same issues, or the same clear error. The one-case
regressions found by these tests live in ``tests/test_parse_hardening.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepen_export.errors import DeepenExportError
from deepen_export.model import LABEL_KINDS, LabelSet
from deepen_export.parse import _scan, parse_frames_zip, parse_labels, parse_paint_labels


def _outcome(source: Any, **kw: Any) -> tuple[str, Any]:
    try:
        return "ok", parse_labels(source, **kw)
    except DeepenExportError as exc:
        return "error", str(exc)


SETTINGS = settings(
    max_examples=120,
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


TEMPLATES: dict[str, dict[str, Any]] = {
    "box": {"box": [10, 20, 30, 40]},
    "polygon": {"polygons": [[[0, 0], [10, 0], [10, 10]]]},
    "line": {"polygons": [[[0, 0], [10, 10]]]},
    "lane": {"polygons": [[[0, 0], [10, 10], [20, 30]]]},
    "point": {"points": [[5, 5]]},
    "3d_bbox": {
        "three_d_bbox": {"cx": 1, "cy": 2, "cz": 3, "l": 4, "w": 2, "h": 1.5, "rot_z": 0.1}
    },
    "3d_polygon": {"polygons": [[[0, 0, 0], [1, 0, 0], [1, 1, 0]]]},
    "3d_line": {"polygons": [[[0, 0, 0], [1, 1, 1]]]},
}
HOSTILE = {
    "label_type": label_types | scalars,
    "label_id": label_ids,
    "file_id": file_ids,
    "label_category_id": st.sampled_from(["car", "Car", " ", ""]) | scalars,
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
    "update_time_millis": big_ints | scalars,
    "stage_id": scalars,
    "sensor_id": st.sampled_from(["lidar", "camera_0"]) | scalars,
}


@st.composite
def labels(draw: Any) -> dict[str, Any]:
    """A valid label of some type, then 0-3 of its fields replaced by hostile values."""
    lt = draw(st.sampled_from(sorted(TEMPLATES)))
    lab: dict[str, Any] = {
        "label_type": lt,
        "label_id": f"car:{draw(st.integers(0, 50))}",
        "file_id": draw(st.sampled_from(["0.png", "1.png", "0.pcd"])),
        "label_category_id": "car",
        "sensor_id": "lidar" if lt.startswith("3d") else "camera_0",
        "version": 1,
        "attributes": {"occluded": "no"},
        **json.loads(json.dumps(TEMPLATES[lt])),
    }
    for key in draw(st.lists(st.sampled_from(sorted(HOSTILE)), max_size=3, unique=True)):
        lab[key] = draw(HOSTILE[key])
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
    # every entry became a label or an issue ...
    assert len(inputs) <= len(ls) + len(ls.issues)
    # ... and a label with a string id is found under that id (or in an issue about the input)
    missing = [
        lab
        for lab in inputs
        if isinstance(lab, dict)
        and isinstance(lab.get("label_id"), str)
        and lab["label_id"] not in seen | reported
    ]
    assert len(missing) <= anonymous, missing


@settings(SETTINGS, max_examples=60)
@given(bodies)
def test_fast_and_general_path_agree(tmp_path_factory: Any, body: Any) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "labels.json"
    path.write_bytes(json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass"))
    fast, general = _outcome(path, fast=True), _outcome(path, fast=False)
    assert fast[0] == general[0], (fast, general)
    if fast[0] == "ok":
        assert fast[1] == general[1]
        assert fast[1].issues == general[1].issues
    else:
        assert fast[1] == general[1]


tricky_text = st.text(alphabet='{}[],:"\\ ab\n', max_size=12)


@st.composite
def batched_bodies(draw: Any) -> dict[str, Any]:
    """A plain labels array whose strings look like label boundaries, and whose labels hold
    lists of objects (a ``}, {`` one level down): where the batched reading must not cut."""
    labs = draw(st.lists(labels() | scalars, max_size=12))
    for lab in labs:
        if isinstance(lab, dict) and draw(st.booleans()):
            lab["attributes"] = {"note": draw(tricky_text)}
        if isinstance(lab, dict) and draw(st.booleans()):
            first = next(iter(lab))
            lab["extra"] = [{first: draw(tricky_text)}, {"x": 1}]
    return {"labels": labs}


@settings(SETTINGS, max_examples=60)
@given(batched_bodies(), st.sampled_from([1, 16, 64, 200, 1 << 21]))
def test_batched_reading_agrees_with_the_general_path(
    tmp_path_factory: Any, body: Any, piece: int
) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "labels.json"
    path.write_bytes(json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_scan, "_PIECE", piece)  # cuts between every few labels
        mp.setattr(_scan, "_PART", piece * 3)  # Arrow reads parts, their tables are joined
        fast = _outcome(path, fast=True)
    general = _outcome(path, fast=False)
    assert fast[0] == general[0], (fast, general)
    assert fast[1] == general[1]
    if fast[0] == "ok":
        assert fast[1].issues == general[1].issues


# -- frames zip ----------------------------------------------------------------------------


frame_json = st.fixed_dictionaries(
    {},
    optional={
        "points": st.lists(point3, max_size=4) | scalars,
        "device_position": point3 | scalars,
        "device_heading": point3 | scalars,
        "images": st.lists(
            st.dictionaries(
                st.sampled_from(["image_url", "fx", "fy", "cx", "cy", "position", "heading"]),
                numbers | point3,
                max_size=5,
            ),
            max_size=2,
        )
        | st.dictionaries(st.text(max_size=3), scalars, max_size=2)
        | scalars,
        "timestamp": numbers,
    },
)
member_names = st.sampled_from(
    ["0.json", "1.json", "10.json", "dir/", "../up.json", "/abs.json", "a.png", "x.txt"]
)
members = st.lists(
    st.tuples(
        member_names,
        frame_json.map(lambda d: json.dumps(d, allow_nan=True).encode())
        | st.binary(max_size=20)
        | st.just(b'{"points": ['),
    ),
    max_size=5,
    unique_by=lambda m: m[0],  # a zip with two members of one name is not what is tested
)


@SETTINGS
@given(members, st.booleans())
def test_frames_zip_no_traceback(entries_: list[tuple[str, bytes]], corrupt: bool) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries_:
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if corrupt and entries_:
        # flip a byte of the first member's data: a bad CRC (or a broken deflate stream)
        raw[30 + len(entries_[0][0]) + 2] ^= 0xFF
    with contextlib.suppress(DeepenExportError):  # a clear error is fine; anything else is not
        parse_frames_zip(bytes(raw))


# -- paint labels ----------------------------------------------------------------------------

metadata = (
    st.fixed_dictionaries(
        {},
        optional={
            "paint_categories": st.lists(st.text(max_size=4), max_size=4) | scalars,
            "frame_sizes": st.lists(st.integers(-3, 6) | scalars, max_size=4) | scalars,
            "format": scalars,
        },
    )
    | json_values
)


@SETTINGS
@given(metadata, st.binary(max_size=24), st.booleans())
def test_paint_metadata_no_traceback(meta: Any, points: bytes, compress: bool) -> None:
    body = zlib.compress(points) if compress else points
    with contextlib.suppress(DeepenExportError):
        parse_paint_labels(body, json.dumps(meta, allow_nan=True), path="fuzz.dpn")
