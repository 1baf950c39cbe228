"""JSON text from columns (converters._jsontext, the id map, COCO's column writer): the bytes are
the ones orjson writes for the same Python values, value by value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters import _jsontext as jt
from converters import coco
from converters._idmap import IdMap, unique_texts
from deepen_export.model import Boxes, Frames, LabelSet, Points, Polygons


def _random_floats(n: int, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    scaled = r.normal(0, 1, n) * 10.0 ** r.integers(-320, 308, n)
    bits = np.frombuffer(r.bytes(8 * n), np.float64)  # every pattern: NaNs, subnormals, inf
    edge = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, 1e16, 1e15]
    edge += [1e-7, 1e-5, 0.1 + 0.2, 26.06, 123456789012345680.0, -2.5e-310]
    return np.concatenate([scaled, bits, edge])


def test_numbers_are_orjsons_text_of_each_float() -> None:
    v = _random_floats(100_000)
    assert jt.numbers(v).to_pylist() == [orjson.dumps(x).decode() for x in v.tolist()]


def test_numbers_of_ints_and_groups() -> None:
    i = np.random.default_rng(1).integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64)
    assert jt.numbers(i).to_pylist() == [str(x) for x in i.tolist()]
    v = _random_floats(300, seed=2)
    cuts = np.sort(np.random.default_rng(3).integers(0, len(v), 200))
    counts = np.diff(np.concatenate([[0], cuts, [len(v)]]))  # some runs empty
    parts = np.split(v, cuts)
    want = [orjson.dumps(p.tolist()).decode()[1:-1] for p in parts]
    assert jt.groups(v, counts).to_pylist() == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=30))
def test_strings_escape_as_orjson(texts: list[str]) -> None:
    texts = [t for t in texts if not any(0xD800 <= ord(c) < 0xE000 for c in t)]
    got = jt.strings(np.array(texts, dtype=object)).to_pylist()
    assert got == [orjson.dumps(t).decode() for t in texts]
    assert jt.inner(np.array(texts, dtype=object)).to_pylist() == [g[1:-1] for g in got]


def test_strings_of_a_sliced_column_and_of_non_text() -> None:
    arr = pa.array(['a"b', "c\\d", "e\x01", None, "ok"]).slice(1, 3)
    assert jt.strings(arr).to_pylist() == ['"c\\\\d"', '"e\\u0001"', None]
    assert jt.strings(np.array([3, None], dtype=object)).to_pylist() == ['"3"', '"None"']


def test_values_of_mixed_attribute_columns() -> None:
    col = np.array(
        ["x", 1, 2.5, True, None, [1, "a"], {"k": None}, np.float64(0.1), float("nan"), 2**70],
        dtype=object,
    )
    want = ['"x"', "1", "2.5", "true", None, '[1,"a"]', '{"k":null}', "0.1", "null"]
    assert jt.values(col).to_pylist() == [*want, str(2**70)]


def test_fields_leave_out_null_members_even_when_all_are_null() -> None:
    a = pa.array(["1", None, None])
    b = pa.array([None, None, '"y"'])
    assert jt.fields([("a", a), ("b", b)]).to_pylist() == ['"a":1', "", '"b":"y"']


def test_id_map_matches_a_plain_dict() -> None:
    r = np.random.default_rng(4)
    pinned = {
        f"k{i}": int(v) for i, v in zip(range(0, 300, 3), r.integers(1, 50, 100), strict=True)
    }
    table = dict(pinned)
    m = IdMap({"annotations": pinned})
    for _ in range(3):
        keys = [f"k{x}" for x in r.integers(0, 500, 300)]
        want = []
        nxt = max(table.values()) + 1
        for k in keys:  # the documented rule: pinned ids kept, new keys after the largest
            if k not in table:
                table[k] = nxt
                nxt += 1
            want.append(table[k])
        assert m.assign("annotations", keys).tolist() == want
    expect = {
        "categories": {},
        "images": {},
        "annotations": dict(sorted(table.items(), key=lambda kv: kv[1])),
    }
    assert m.to_dict() == expect
    assert m.to_json() == json.dumps(expect, indent=1, ensure_ascii=False)


def test_unique_texts_suffixes_repeats() -> None:
    assert unique_texts(pa.array(["a", "b", "a", "a", "b"])).to_pylist() == [
        "a",
        "b",
        "a#2",
        "a#3",
        "b#2",
    ]


def _awkward() -> LabelSet:
    """Labels whose text is hard to get right: escapes, huge and tiny numbers, holes, points."""
    frames = Frames.from_columns(
        file_id=['a"b.png', "ü/ñ.png", "c.png"], width=[2048, 640, 0], height=[2048, 480, 0]
    )
    common = {
        "frame": [0, 1, 0],
        "category": [0, 1, 0],
        "label_id": ['car:"1"', "bus\\2", "car:1"],
        "track": [3, -1, 0],
        "stage": ["QA", "", "L1"],
        "version": [-1, 2, 0],
    }
    attrs = {"note": ["a\nb", None, 7], "v": [1e-7, float("nan"), [1, {"x": 2.5}]]}
    sq = [[0, 0], [1000.123456789, 0], [1000.123456789, 1e-7], [0, 1e-7]]
    hole = [[0, 0], [300, 0], [300, 300], [0, 300], [100, 100], [200, 100], [200, 200], [100, 200]]
    return LabelSet(
        frames=frames,
        categories=("car", 'b"us'),
        boxes=Boxes.from_columns(
            **common, xyxy=[[0.1 + 0.2, 1e-9, 2047.99999999999, 3], [1, 2, 3, 4], [-5, 0, 1e15, 9]]
        ).with_attributes(attrs),
        polygons=Polygons.from_columns(
            **common,
            offsets=[0, 1, 3, 4],
            ring_offsets=[0, 4, 8, 12, 16],
            coords=sq + hole + sq,
        ).with_attributes(attrs),
        points=Points.from_columns(
            **common, offsets=[0, 1, 3, 4], coords=[[3.5, 4.5], [0, 0], [9, 9], [1e-300, 7]]
        ),
    )


@pytest.mark.parametrize(
    "options", [{}, {"indent": 1}, {"area": "pixels"}, {"split": "train:0.5,val:0.5"}]
)
def test_coco_text_is_what_orjson_writes_for_the_document(tmp_path: Path, options: dict) -> None:
    out = tmp_path / "c"
    coco.write(_awkward(), out, **options)
    for path in sorted(out.glob("annotations/*.json")):
        raw = path.read_bytes()
        doc = orjson.loads(raw)
        flag = orjson.OPT_INDENT_2 if "indent" in options else 0
        assert raw == orjson.dumps(doc, option=flag) + b"\n"
    if not options:
        assert coco.to_dict(_awkward()) == orjson.loads(raw)
        assert doc["annotations"] and any("deepen_rings" in a for a in doc["annotations"])
