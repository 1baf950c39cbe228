"""Every 2D format: golden files from the sample dataset, and read(write(x)) == x up to the report.

Regenerate the golden files (then check them again as their README says) with::

    DEEPEN_UPDATE_GOLDEN=1 python -m pytest tests/test_formats_2d_roundtrip.py -k golden
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

import deepen_export
from converters import coco, cvat, masks, voc, yolo
from deepen_export import geometry as geo
from deepen_export.model import LabelSet
from deepen_export.parse import parse_painting2d
from deepen_export.report import Report
from tests._golden import assert_same_tree

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
GOLDEN = SAMPLES / "golden"


def sample() -> LabelSet:
    return parse_painting2d(
        SAMPLES / "painting2d", deepen_export.read_labels(SAMPLES / "image_dataset")
    )


WRITERS: dict[str, Callable[[LabelSet, Path], Report]] = {
    "coco": lambda ls, out: coco.write(ls, out, on_unsupported="drop", indent=1),
    "yolo": lambda ls, out: yolo.write(ls, out, on_unsupported="drop", task="segment"),
    "voc": lambda ls, out: voc.write(ls, out, on_unsupported="drop"),
    "cvat": lambda ls, out: cvat.write(ls, out, on_unsupported="drop"),
    "masks": lambda ls, out: masks.write(ls, out, on_unsupported="drop"),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_golden(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    WRITERS[name](sample(), out)
    assert_same_tree(out, GOLDEN / name)


# -- round trips: what comes back differs from what went in exactly where the report says ----


def keyed(ls: LabelSet, kind: str) -> dict[tuple[str, str, str], Any]:
    t = ls.table(kind)
    f = ls.frames
    out: dict[tuple[str, str, str], Any] = {}
    for i in range(len(t)):
        fr = int(t.frame[i])  # type: ignore[attr-defined]
        key = (str(f.file_id[fr]), str(f.sensor_id[fr]), str(t.label_id[i]))  # type: ignore[attr-defined]
        out[key] = i
    return out


def geometry(ls: LabelSet, kind: str, i: int) -> Any:
    t = ls.table(kind)
    if kind == "boxes":
        return shapely.box(*t.xyxy[i])  # type: ignore[attr-defined]
    if kind == "polygons":
        sub = t[[i]]
        return geo.polygons_to_shapely(sub.offsets, sub.ring_offsets, sub.coords)[0]  # type: ignore[attr-defined]
    sub = t[[i]]
    return sub.coords  # type: ignore[attr-defined]


def same(kind: str, a: Any, b: Any, tol: float) -> bool:
    if kind in ("boxes", "polygons"):
        if not shapely.is_valid(a):
            return False
        return bool(shapely.symmetric_difference(a, b).area <= tol * max(a.area, 1.0))
    return a.shape == b.shape and bool(np.allclose(a, b, atol=tol))


CASES = {
    # format: (write, read, kinds it holds, tolerance)
    "coco": (
        lambda ls, o: coco.write(ls, o, on_unsupported="drop"),
        coco.read,
        ("boxes", "polygons", "points"),
        1e-9,
    ),
    "yolo-detect": (
        lambda ls, o: yolo.write(ls, o, on_unsupported="drop"),
        yolo.read,
        ("boxes", "polygons"),
        1e-4,
    ),
    "yolo-segment": (
        lambda ls, o: yolo.write(ls, o, on_unsupported="drop", task="segment"),
        yolo.read,
        ("boxes", "polygons"),
        1e-4,
    ),
    # VOC: polygons are written (and read back) as their boxes, reported as changed
    "voc": (
        lambda ls, o: voc.write(ls, o, on_unsupported="drop", integer=False),
        voc.read,
        ("boxes", "polygons"),
        0.0,
    ),
    "cvat": (
        lambda ls, o: cvat.write(ls, o, on_unsupported="drop"),
        cvat.read,
        ("boxes", "polygons", "polylines", "points", "scenes"),
        0.0,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_differences_are_reported(name: str, tmp_path: Path) -> None:
    write, read, kinds, tol = CASES[name]
    ls = sample().without("masks2d")
    report = write(ls, tmp_path / "o")
    back = read(tmp_path / "o")
    reported = {(i.file_id, i.label_id) for i in report if i.action != "kept"}
    dropped = {(i.file_id, i.label_id) for i in report if i.action == "dropped"}
    for kind in ("boxes", "polygons", "polylines", "points", "scenes"):
        before = keyed(ls, kind)
        after = keyed(back, kind)
        if kind not in kinds:
            # everything of a kind the format cannot hold is reported dropped
            assert all((k[0], k[2]) in dropped for k in before), kind
            continue
        for key, i in before.items():
            if (key[0], key[2]) in dropped:
                assert key not in after
                continue
            assert key in after, key
            if kind == "scenes":
                continue
            a, b = geometry(ls, kind, i), geometry(back, kind, after[key])
            if not same(kind, a, b, tol):
                assert (key[0], key[2]) in reported, (kind, key)
        assert set(after) <= set(before)


def test_round_trip_masks(tmp_path: Path) -> None:
    ls = sample().without("boxes", "polylines", "points", "scenes", "polygons")
    masks.write(ls, tmp_path / "m")
    back = masks.read(tmp_path / "m")
    assert back.categories == ls.categories
    keys = list(zip(back.frames.file_id, back.frames.sensor_id, strict=True))
    painted = {
        keys.index((ls.frames.file_id[fr], ls.frames.sensor_id[fr])): i
        for i, fr in enumerate(ls.masks2d.frame)
    }
    for k, fr in enumerate(back.masks2d.frame.tolist()):
        if fr in painted:
            assert back.masks2d.mask(k).tolist() == ls.masks2d.mask(painted[fr]).tolist()
        else:  # frames without painting come back all unpainted
            assert (back.masks2d.mask(k) == -1).all()
