"""One parts/holes rule: every format that holds polygons writes the same geometry for the same rings.

The expected area and part counts are worked out here from the rectangles the rings were drawn
from (not from the package), and each output is read with the format's own reader where one
exists: pycocotools for COCO, pyarrow + shapely for Parquet's WKB, Pillow for the mask PNGs,
ElementTree for CVAT XML and plain text for YOLO.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools.coco import COCO

from converters import coco, cvat, masks, parquet, yolo
from deepen_export.geometry import RING_LEFT_OUT
from deepen_export.model import Frames, FrameStatus, LabelSet, Polygons

# pycocotools' C decoder predates numpy 2's copy keyword (a warning, not a wrong result)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

W, H = 64, 48
CELLS = [(x, y) for y in (0, 24) for x in (0, 21, 42)]  # disjoint 21 x 24 cells of the image


@dataclass
class Case:
    rings: list[list[list[float]]]
    area: float  # holes subtracted
    filled: float  # holes filled (YOLO and CVAT polygons have no holes)
    parts: int
    holes: int
    perimeter: float
    degenerate: bool


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    cells = draw(st.lists(st.sampled_from(CELLS), min_size=1, max_size=3, unique=True))
    rings, rects = [], []
    for cx, cy in cells:
        x0 = cx + draw(st.integers(1, 6))
        y0 = cy + draw(st.integers(1, 6))
        x1 = draw(st.integers(x0 + 6, cx + 20))
        y1 = draw(st.integers(y0 + 6, cy + 23))
        rects.append((x0, y0, x1, y1))
    holes = []
    if draw(st.booleans()):  # a hole strictly inside the first part
        x0, y0, x1, y1 = rects[0]
        holes.append((x0 + 2, y0 + 2, x1 - 2, y1 - 2))
    for r in [*rects, *holes]:
        ring = _rect(*r)
        rings.append(ring[::-1] if draw(st.booleans()) else ring)
    bad = draw(st.integers(0, 2))
    for _ in range(bad):  # rings that cannot bound an area: 1 or 2 vertices
        n = draw(st.integers(1, 2))
        rings.append([[float(draw(st.integers(0, W))), float(draw(st.integers(0, H)))]] * n)
    order = draw(st.permutations(range(len(rings))))

    def area(r: tuple[int, int, int, int]) -> float:
        return float((r[2] - r[0]) * (r[3] - r[1]))

    def perim(r: tuple[int, int, int, int]) -> float:
        return float(2 * ((r[2] - r[0]) + (r[3] - r[1])))

    return Case(
        rings=[rings[i] for i in order],
        area=sum(map(area, rects)) - sum(map(area, holes)),
        filled=sum(map(area, rects)),
        parts=len(rects),
        holes=len(holes),
        perimeter=sum(map(perim, [*rects, *holes])),
        degenerate=bad > 0,
    )


def _labels(rings: list[list[list[float]]]) -> LabelSet:
    counts = [len(r) for r in rings]
    return LabelSet(
        frames=Frames.from_columns(
            file_id=["a.png"], width=[W], height=[H], status=[int(FrameStatus.LABELLED)]
        ),
        categories=("road",),
        polygons=Polygons.from_columns(
            frame=[0],
            category=[0],
            label_id=["road:1"],
            offsets=[0, len(rings)],
            ring_offsets=np.r_[0, np.cumsum(counts)],
            coords=[p for r in rings for p in r],
        ),
    )


def _write_all(ls: LabelSet, out: Path) -> dict[str, list[tuple[str, str]]]:
    reports = {
        "coco": coco.write(ls, out / "coco"),
        "yolo": yolo.write(ls, out / "yolo", task="segment"),
        "masks": masks.write(ls, out / "masks"),
        "cvat": cvat.write(ls, out / "cvat"),
        "parquet": parquet.write(ls, out / "parquet"),
    }
    return {
        k: [(i.action, i.reason) for i in r if i.label_id == "road:1"] for k, r in reports.items()
    }


def _parquet(out: Path) -> tuple[float, int, int]:
    t = pq.read_table(out / "parquet/labels.parquet").to_pylist()[0]
    g = shapely.from_wkb(t["geometry"])
    return float(g.area), t["n_parts"], t["n_holes"]


def _coco(out: Path) -> tuple[float, float, int | None]:
    api = COCO(str(out / "coco/annotations/instances_default.json"))
    (ann,) = api.loadAnns(api.getAnnIds())
    seg = ann["segmentation"]
    parts = len(seg) if isinstance(seg, list) else None  # RLE (with holes): no part list
    return float(ann["area"]), float(api.annToMask(ann).sum()), parts


def _mask_pixels(out: Path) -> int:
    png = np.asarray(Image.open(out / "masks/masks/a.png"))
    classes = json.loads((out / "masks/classes.json").read_text())
    road = next(c["index"] for c in classes if c["name"] == "road")
    return int((png == road).sum())


def _yolo(out: Path) -> tuple[float, int]:
    polys = []
    for line in (out / "yolo/labels/a.txt").read_text().splitlines():
        xy = np.array(line.split()[1:], dtype=float).reshape(-1, 2) * [W, H]
        polys.append(shapely.Polygon(xy))
    return sum(p.area for p in polys), len(polys)


def _cvat(out: Path) -> tuple[float, int]:
    root = ET.parse(out / "cvat/annotations.xml").getroot()
    polys = [
        shapely.Polygon([tuple(map(float, p.split(","))) for p in e.get("points", "").split(";")])
        for e in root.iter("polygon")
    ]
    return sum(p.area for p in polys), len(polys)


def _check(case: Case, out: Path) -> None:
    reports = _write_all(_labels(case.rings), out)
    area, parts, holes = _parquet(out)
    assert (area, parts, holes) == (case.area, case.parts, case.holes)
    coco_area, coco_pixels, coco_parts = _coco(out)
    assert coco_area == case.area
    assert abs(coco_pixels - case.area) <= case.perimeter + 1  # pycocotools' rasteriser
    if not case.holes:
        assert coco_parts == case.parts
    assert abs(_mask_pixels(out) - case.area) <= case.perimeter + 1
    yolo_area, yolo_parts = _yolo(out)
    assert yolo_parts == case.parts and yolo_area == pytest.approx(case.filled, abs=0.05)
    cvat_area, cvat_parts = _cvat(out)
    assert cvat_parts == case.parts and cvat_area == pytest.approx(case.filled)
    for name, entries in reports.items():
        assert (("repaired", RING_LEFT_OUT) in entries) == case.degenerate, name


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=cases())
def test_every_polygon_format_agrees_on_area_and_parts(case: Case, tmp_path_factory) -> None:
    _check(case, tmp_path_factory.mktemp("rings"))


def test_square_plus_degenerate_ring_same_geometry_everywhere(tmp_path: Path) -> None:
    # the seen bug: COCO/YOLO/masks wrote the square, Parquet nulled geometry, bbox, n_parts and
    # n_holes, with no report entry
    square = _rect(10, 10, 20, 20)
    case = Case([square, [[30.0, 30.0], [31.0, 31.0]]], 100.0, 100.0, 1, 0, 40.0, True)
    _check(case, tmp_path)
    row = pq.read_table(tmp_path / "parquet/labels.parquet").to_pylist()[0]
    assert row["bbox"] == {"xmin": 10.0, "ymin": 10.0, "xmax": 20.0, "ymax": 20.0}
    report = json.loads((tmp_path / "parquet/report.json").read_text())
    assert [(i["action"], i["label_id"]) for i in report["issues"]] == [("repaired", "road:1")]


def test_label_without_area_is_null_in_parquet_and_reported(tmp_path: Path) -> None:
    ls = _labels([[[1.0, 1.0], [2.0, 2.0]]])
    report = parquet.write(ls, tmp_path / "p")
    row = pq.read_table(tmp_path / "p/labels.parquet").to_pylist()[0]
    assert row["geometry"] is None and row["n_parts"] is None and row["bbox"] is None
    assert [i.action for i in report] == ["repaired", "changed"]
    assert "no area" in report.issues[1].reason


def test_3d_polygon_keeps_its_square_and_z(tmp_path: Path) -> None:
    from deepen_export.model import Polygons3D

    square = [[0.0, 0.0, 5.0], [4.0, 0.0, 5.0], [4.0, 4.0, 5.0], [0.0, 4.0, 5.0]]
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"]),
        categories=("zone",),
        polygons3d=Polygons3D.from_columns(
            frame=[0], category=[0], label_id=["zone:1"], offsets=[0, 2], ring_offsets=[0, 4, 5],
            coords=[*square, [9.0, 9.0, 9.0]],
        ),
    )  # fmt: skip
    report = parquet.write(ls, tmp_path / "p")
    row = pq.read_table(tmp_path / "p/labels.parquet").to_pylist()[0]
    g = shapely.from_wkb(row["geometry_3d"])
    assert g.area == 16.0 and g.has_z and row["n_parts"] == 1
    assert {tuple(c) for c in shapely.get_coordinates(g, include_z=True)[:, 2:]} == {(5.0,)}
    assert [(i.action, i.reason) for i in report] == [("repaired", RING_LEFT_OUT)]


def test_many_rings_of_one_label_keep_the_even_odd_rule() -> None:
    """500 disjoint squares plus a square with a hole holding an island, all one label: the
    rule finds containers through a spatial index (issue 16: rings were tested pair by pair)."""
    from deepen_export.geometry.planar import polygons_to_shapely

    def sq(x: float, y: float, s: float) -> list[list[float]]:
        return [[x, y], [x + s, y], [x + s, y + s], [x, y + s]]

    rings = [sq((i % 25) * 10.0, 100 + (i // 25) * 10.0, 5) for i in range(500)]
    rings += [sq(0, 0, 10), sq(2, 2, 6), sq(4, 4, 2)]  # outer 100, hole 36, island 4
    coords = [p for r in rings for p in r]
    ring_off = [4 * i for i in range(len(rings) + 1)]
    (geom,) = polygons_to_shapely([0, len(rings)], ring_off, coords)
    parts = list(geom.geoms)
    assert len(parts) == 500 + 2  # the squares, the holed square, the island
    assert sum(len(p.interiors) for p in parts) == 1
    assert geom.area == 500 * 25 + (100 - 36) + 4
