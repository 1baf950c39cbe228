"""The report's column blocks: the same issues, counts and report.json as Issue objects."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from converters._base import record
from deepen_export.model import Boxes, Frames, Issue, LabelSet, Scenes
from deepen_export.report import Report

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)  # quotes, controls, emoji
_ACTIONS = st.sampled_from(["dropped", "clipped", "repaired", "changed"])

_ONE = st.builds(
    Issue,
    _ACTIONS,
    _TEXT,
    st.none() | _TEXT,
    st.none() | _TEXT,
    st.none() | _TEXT,
)


@st.composite
def _block(draw: st.DrawFn) -> dict:
    files = draw(st.lists(_TEXT, min_size=1, max_size=4))
    n = draw(st.integers(0, 6))
    index = draw(st.lists(st.integers(0, len(files) - 1), min_size=n, max_size=n))
    labels = draw(st.none() | st.lists(_TEXT, min_size=n, max_size=n))
    return {
        "action": draw(_ACTIONS),
        "reason": draw(_TEXT),
        "kind": draw(st.none() | _TEXT),
        "files": files,
        "file_index": index,
        "label_ids": labels,
    }


def _as_issues(b: dict) -> list[Issue]:
    lids = b["label_ids"] or [None] * len(b["file_index"])
    return [
        Issue(b["action"], b["reason"], b["files"][i], lid, b["kind"])
        for i, lid in zip(b["file_index"], lids, strict=True)
    ]


def _record(report: Report, p: Issue | dict) -> None:
    """One drawn part into ``report``: a single issue with add(), a block with add_rows()."""
    if isinstance(p, Issue):
        report.add(p.action, p.reason, file_id=p.file_id, label_id=p.label_id, kind=p.kind)
        return
    report.add_rows(
        p["action"],
        p["reason"],
        kind=p["kind"],
        files=p["files"],
        file_index=p["file_index"],
        label_ids=p["label_ids"],
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_ONE, _block()), max_size=6), st.sampled_from([1, 2, 50_000]))
def test_column_blocks_equal_issue_objects(parts, batch):
    """Blocks and single issues in any order: the same report as all of them as objects, and
    report.json is json.dumps of to_dict (also when a block spans several batches)."""
    import deepen_export.report as rep

    columnar, objects = Report("yolo", written={"images": 2}), Report("yolo")
    objects.written = {"images": 2}
    for p in parts:
        _record(columnar, p)
        objects.extend([p] if isinstance(p, Issue) else _as_issues(p))
    old, rep._BATCH = rep._BATCH, batch
    try:
        text = columnar.to_json()
    finally:
        rep._BATCH = old
    assert text == json.dumps(objects.to_dict(), indent=2, ensure_ascii=False)
    assert text == objects.to_json()
    assert len(columnar) == len(objects)
    assert columnar.counts() == objects.counts()
    assert columnar.by_reason() == objects.by_reason()
    assert columnar.summary() == objects.summary()
    assert list(columnar) == objects.issues
    assert columnar.to_dict() == objects.to_dict()
    assert columnar.issues == objects.issues  # materialised once, in order
    assert columnar.to_json() == text


def _merged(groups) -> dict:
    out: dict = {}
    for g in groups:
        n, lab, files = out.get((g.action, g.reason, g.kind), (0, 0, frozenset()))
        out[g.action, g.reason, g.kind] = (n + g.issues, lab + g.labelled, files | g.files)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_ONE, _block()), max_size=6), st.integers(0, 30), st.integers(0, 30))
def test_groups_are_those_of_the_issue_objects(parts, start, stop):
    """groups(start, stop) counts what the issues start:stop say, blocks left as columns."""
    r = Report("yolo")
    for p in parts:
        _record(r, p)
    got = _merged(r.groups(start, stop))
    want: dict = {}
    for i in list(r)[start:stop]:
        n, lab, files = want.get((i.action, i.reason, i.kind), (0, 0, frozenset()))
        named = bool(i.label_id)
        want[i.action, i.reason, i.kind] = (
            n + 1,
            lab + named,
            files | ({i.file_id} if named else set()),
        )
    assert got == want
    blocks = sum(not isinstance(p, list) for p in r._parts)
    r.groups(start, stop)
    assert sum(not isinstance(p, list) for p in r._parts) == blocks  # nothing materialised


def test_issues_list_stays_the_one_list(tmp_path):
    """Reading report.issues turns blocks into objects once; appending to it is kept, and
    later blocks land after it."""
    r = Report("yolo")
    r.add("dropped", "a", file_id="f")
    r.add_rows("changed", "b", files=["x", "y"], file_index=[1, 0])
    issues = r.issues
    issues.append(Issue("kept", "c"))
    r.add_rows("changed", "d", files=["x"], file_index=[0], label_ids=["l:1"])
    assert r.issues is issues
    assert [(i.reason, i.file_id, i.label_id) for i in r] == [
        ("a", "f", None),
        ("b", "y", None),
        ("b", "x", None),
        ("c", None, None),
        ("d", "x", "l:1"),
    ]
    r.write_json(tmp_path / "report.json")
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == r.to_json() + "\n"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=8), st.booleans())
def test_record_is_row_issues(mask, by_index):
    """record() holds columns, but its issues are those of LabelSet.row_issues."""
    n = len(mask)
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png", 'b "2".png']),
        categories=("car",),
        boxes=Boxes.from_columns(
            frame=[k % 2 for k in range(n)],
            category=[0] * n,
            label_id=[f"car:{k}" for k in range(n)],
            xyxy=[[0, 0, 1, 1]] * n,
        ),
        scenes=Scenes.from_columns(frame=[1], category=[0], label_id=["car:s"]),
    )
    rows = np.flatnonzero(mask) if by_index else np.asarray(mask)
    r = Report("yolo")
    record(r, ls, "boxes", rows, "changed", "box written as a 4-point polygon")
    record(r, ls, "scenes", [0], "dropped", "no scenes")
    expected = ls.row_issues("boxes", rows, "changed", "box written as a 4-point polygon")
    expected += ls.row_issues("scenes", [0], "dropped", "no scenes")
    plain = Report("yolo", issues=list(expected))
    assert r.to_json() == plain.to_json()
    assert r.issues == expected
