"""One contract, run over every registered format (``converters.FORMATS``).

Each format gets the sample set it is made for (image_dataset for 2D formats, lidar_sequence for
formats holding 3D kinds or needing poses) and must: write atomically (a failure late in the write
leaves an existing output as it was and nothing beside it), write the same bytes twice, never write
outside the output folder whatever the file ids, take empty input, follow the unsupported-kinds
policy as documented, read back what it wrote (readable formats), and report every label it did
not write.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

import converters
from deepen_export.errors import ConversionError, LossyConversionWarning
from deepen_export.model import KINDS, LABEL_KINDS, LabelSet
from deepen_export.report import Report

FORMATS = list(converters.FORMATS.values())
_3D = {"cuboids", "point_segmentation", "polylines3d", "polygons3d", "points3d"}


def _sample(fmt: converters.Format, images: LabelSet, lidar: LabelSet) -> LabelSet:
    """The sample set a format is made for."""
    return lidar if fmt.needs or fmt.kinds & _3D else images


@pytest.fixture(params=FORMATS, ids=[f.name for f in FORMATS])
def case(request, images, lidar):
    fmt = request.param
    return fmt, _sample(fmt, images, lidar)


def _write(fmt, labels, dest, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyConversionWarning)
        return converters.write(labels, dest, fmt.name, **options)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_input_gives_the_same_bytes(case, tmp_path):
    fmt, labels = case
    _write(fmt, labels, tmp_path / "a")
    _write(fmt, labels, tmp_path / "b")
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a and a == b


def test_failure_late_in_the_write_leaves_the_old_output(case, tmp_path, monkeypatch):
    fmt, labels = case
    dest = tmp_path / "out"
    _write(fmt, labels.without(labels.kinds_present()[0]), dest)
    before = _tree(dest)  # an output of ours (only those may be replaced), another input

    def boom(*args, **kwargs):  # report.json is the last file every writer puts in its folder
        raise RuntimeError("injected failure")

    monkeypatch.setattr(Report, "write_json", boom)
    monkeypatch.setattr(Report, "to_json", boom)
    with pytest.raises(RuntimeError, match="injected failure"):
        _write(fmt, labels, dest)
    assert _tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


@pytest.mark.parametrize("evil", ["../escaped", "/abs/escaped"])
def test_file_ids_never_write_outside_the_output(case, tmp_path, evil):
    fmt, labels = case
    ids = np.array([f"{evil}/{Path(str(i)).name}" for i in labels.frames.file_id], dtype=object)
    bad = labels.replace(frames=dataclasses.replace(labels.frames, file_id=ids))
    work = tmp_path / "work"
    dest = work / "out"
    work.mkdir()
    try:
        _write(fmt, bad, dest)
    except ConversionError as err:
        assert evil in str(err)  # the one-line error names the file
    assert sorted(p.name for p in work.iterdir()) in (["out"], [])
    assert not (tmp_path / "escaped").exists() and not Path("/abs/escaped").exists()
    assert not list(tmp_path.glob("escaped*"))


def test_empty_input(case, tmp_path):
    fmt, _ = case
    try:
        report = _write(fmt, LabelSet.empty(), tmp_path / "out")
    except ConversionError:
        assert not (tmp_path / "out").exists()  # refused as a whole, nothing half-written
        return
    assert isinstance(report, Report) and (tmp_path / "out").is_dir()


def _unsupported(fmt, labels) -> dict[str, int]:
    return {k: len(labels.table(k)) for k in KINDS if k not in fmt.kinds and len(labels.table(k))}


def test_unsupported_kinds_follow_the_policy(case, tmp_path):
    fmt, labels = case
    left_out = _unsupported(fmt, labels)
    if not left_out:  # the format holds every kind of its sample: every kind then
        assert fmt.kinds >= set(labels.kinds_present())
        return
    with pytest.raises(ConversionError, match="cannot hold"):
        converters.write(labels, tmp_path / "raise", fmt.name, on_unsupported="raise")
    assert not (tmp_path / "raise").exists()
    with pytest.warns(LossyConversionWarning) as caught:
        warned = converters.write(labels, tmp_path / "warn", fmt.name, on_unsupported="warn")
    assert {k for k in left_out if any(k in str(w.message) for w in caught)} == set(left_out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossyConversionWarning)  # drop is quiet
        dropped = converters.write(labels, tmp_path / "drop", fmt.name, on_unsupported="drop")
    for report in (warned, dropped):
        for kind, n in left_out.items():
            rows = [i for i in report.issues if i.kind == kind and i.action == "dropped"]
            assert len(rows) == n, (kind, report.issues)
            assert all(i.label_id or i.file_id for i in rows)  # a painted frame has no label id


def _reported(report: Report, kind: str) -> int:
    return len({  # a track's label id repeats on every frame: one label is (frame, label id)
        (i.file_id, i.label_id)
        for i in report.issues
        if i.kind == kind and i.label_id and i.action in ("dropped", "skipped", "error")
    })  # fmt: skip


def _names(labels: LabelSet, kind: str) -> list[str]:
    return sorted(labels.categories[c] for c in labels.table(kind).category)


# kinds a format holds in another form, which its reader returns (masks paints polygons)
_BECOMES = {"masks": {"polygons": "masks2d"}}


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.readable], ids=lambda f: f.name)
def test_round_trip_accounts_for_every_label(fmt, images, lidar, tmp_path):
    """Labels in = labels read back + labels with a report entry, kind by kind."""
    labels = _sample(fmt, images, lidar)
    report = _write(fmt, labels, tmp_path / "out")
    back = converters.read(tmp_path / "out", fmt.name)
    for kind in LABEL_KINDS:
        n_in = len(labels.table(kind))
        if kind not in fmt.kinds:
            assert _reported(report, kind) == n_in, kind
            continue
        if kind in _BECOMES.get(fmt.name, {}):
            painted = {labels.frames.file_id[f] for f in labels.table(kind).frame}
            assert {
                back.frames.file_id[f] for f in back.table(_BECOMES[fmt.name][kind]).frame
            } >= painted
            continue
        assert len(back.table(kind)) + _reported(report, kind) == n_in, (kind, report.issues)
        if not _reported(report, kind):  # and as the same categories
            assert _names(back, kind) == _names(labels, kind), kind
