"""COCO writer and reader, checked with pycocotools (COCO, annToMask, COCOeval) and by hand."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from converters import coco
from deepen_export.errors import ConversionError, LossyConversionWarning
from deepen_export.model import (
    Boxes,
    Cuboids,
    Frames,
    FrameStatus,
    LabelSet,
    Points,
    Polygons,
)


def sq(x0: float, x1: float, y0: float | None = None, y1: float | None = None) -> list[list[float]]:
    y0 = x0 if y0 is None else y0
    y1 = x1 if y1 is None else y1
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def polygons(
    frame: list[int], category: list[int], label_id: list[str], rings_per: list[list[Any]]
) -> Polygons:
    rings = [r for rs in rings_per for r in rs]
    return Polygons.from_columns(
        frame=frame,
        category=category,
        label_id=label_id,
        offsets=np.cumsum([0] + [len(rs) for rs in rings_per]),
        ring_offsets=np.cumsum([0] + [len(r) for r in rings]),
        coords=np.asarray([p for r in rings for p in r], dtype=float).reshape(-1, 2),
    )


def sample() -> LabelSet:
    frames = Frames.from_columns(
        file_id=["img/a.png", "img/sub/b.png", "c.png", "d.png"],
        sensor_id=["cam"] * 4,
        width=[100, 50, 60, -1],
        height=[80, 40, 60, -1],
        status=[3, 3, int(FrameStatus.EMPTY), int(FrameStatus.UNLABELLED)],
    )
    boxes = Boxes.from_columns(
        frame=[0, 0, 1, 3],
        category=[0, 0, 1, 0],
        label_id=["car:1", "car:2", "person:1", "car:3"],
        xyxy=[[10, 10, 30, 20], [-5, 70, 20, 90], [1, 1, 5, 5], [1, 1, 2, 2]],
        attributes={"color": ["red", None, "blue", None], "occluded": [True, False, None, None]},
    )
    polys = polygons(
        [0, 1, 0, 1],
        [2, 2, 2, 2],
        ["road:1", "road:2", "road:3", "road:4"],
        [
            [sq(0, 40), sq(10, 20)],  # hole: 1600 - 100 = 1500
            [sq(0, 10), sq(20, 30)],  # two parts: 100 + 100
            [[[50, 50], [60, 60], [60, 50], [50, 60]]],  # bowtie
            [sq(40, 60, 30, 50)],  # 50x40 image: only x 40..50, y 30..40 inside = 100
        ],
    )
    pts = Points.from_columns(
        frame=[0],
        category=[1],
        label_id=["person:2"],
        offsets=[0, 2],
        coords=[[3.5, 4.5], [10.5, 20.5]],
    )
    return LabelSet(
        frames=frames,
        categories=("car", "person", "road", "unused"),
        boxes=boxes,
        polygons=polys,
        points=pts,
    )


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / "annotations" / "instances_default.json").read_text())


def by_label(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["deepen_label_id"]: a for a in doc["annotations"]}


@contextlib.contextmanager
def quiet() -> Any:
    # pycocotools prints progress and, under numpy 2, warns from its Cython decode
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _perimeter(ann: dict[str, Any]) -> float:
    rings = ann.get("deepen_rings") or ann["segmentation"]
    return sum(shapely.LinearRing(np.reshape(r, (-1, 2))).length for r in rings)


@pytest.mark.parametrize("area", ["polygon", "pixels"])
def test_loads_with_pycocotools_and_masks_match_area(tmp_path: Path, area: str) -> None:
    out = tmp_path / "coco"
    coco.write(sample(), out, area=area)
    n = 0
    with quiet():
        gt = COCO(str(out / "annotations" / "instances_default.json"))
        for ann in gt.dataset["annotations"]:
            if ann["deepen_label_type"] != "polygon":  # boxes: box area, box polygon
                continue
            n += 1
            pixels = int(gt.annToMask(ann).sum())
            if area == "pixels":  # documented: equal
                assert pixels == ann["area"], ann["deepen_label_id"]
            else:  # documented: geometric area, within perimeter + 1 of the pixel count
                assert abs(pixels - ann["area"]) <= _perimeter(ann) + 1, ann["deepen_label_id"]
    assert n >= 3
    assert len(gt.getImgIds()) == 4
    assert sorted(gt.getCatIds()) == [1, 2, 3, 4]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 45, allow_nan=False), st.floats(-5, 35, allow_nan=False)),
        min_size=3,
        max_size=9,
    )
)
def test_polygon_area_is_geometric_and_within_perimeter_plus_one_of_the_mask(tmp_path_factory, pts):
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[40], height=[30]),
        categories=("car",),
        polygons=Polygons.from_columns(
            frame=[0],
            category=[0],
            label_id=["car:1"],
            offsets=[0, 1],
            ring_offsets=[0, len(pts)],
            coords=np.asarray(pts, dtype=float),
        ),
    )
    out = tmp_path_factory.mktemp("c") / "coco"
    coco.write(ls, out)
    doc = json.loads((out / "annotations" / "instances_default.json").read_text())
    for ann in doc["annotations"]:
        seg = ann["segmentation"]
        rle = seg if isinstance(seg, dict) else cocomask.merge(cocomask.frPyObjects(seg, 30, 40))
        with quiet():
            pixels = int(cocomask.area(rle))
        # the area of what the segmentation says (rings combined even-odd), not of the input
        rings = ann.get("deepen_rings") or seg
        g = shapely.Polygon()
        for r in rings:
            g = g.symmetric_difference(shapely.Polygon(np.reshape(r, (-1, 2))))
        assert ann["area"] == pytest.approx(g.area, rel=1e-9, abs=1e-9)
        assert ann["area"] <= 40 * 30
        assert abs(pixels - ann["area"]) <= _perimeter(ann) + 1


def test_self_evaluation_gives_ap_one(tmp_path: Path) -> None:
    out = tmp_path / "coco"
    coco.write(sample(), out)
    with quiet():
        gt = COCO(str(out / "annotations" / "instances_default.json"))
        # keypoint annotations have no segmentation; evaluate boxes/segments on the others
        for iou_type, keep in (("bbox", ("box", "polygon")), ("segm", ("polygon",))):
            doc = copy.deepcopy(gt.dataset)
            doc["annotations"] = [a for a in doc["annotations"] if a["deepen_label_type"] in keep]
            g = COCO()
            g.dataset = doc
            g.createIndex()
            dets = [
                {k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation") if k in a}
                | {"score": 1.0}
                for a in doc["annotations"]
            ]
            d = g.loadRes(dets)
            ev = COCOeval(g, d, iou_type)
            ev.params.imgIds = sorted({a["image_id"] for a in doc["annotations"]})
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), iou_type


def test_hole_is_rle_iscrowd_0_with_hand_area(tmp_path: Path) -> None:
    coco.write(sample(), tmp_path / "c")
    a = by_label(load(tmp_path / "c"))["road:1"]
    assert a["iscrowd"] == 0
    assert isinstance(a["segmentation"], dict)
    assert a["segmentation"]["size"] == [80, 100]
    assert a["area"] == 1600 - 100
    assert a["bbox"] == [0, 0, 40, 40]


def test_multipart_polygon(tmp_path: Path) -> None:
    coco.write(sample(), tmp_path / "c")
    a = by_label(load(tmp_path / "c"))["road:2"]
    assert len(a["segmentation"]) == 2
    assert a["area"] == 200
    assert a["bbox"] == [0, 0, 30, 30]


def test_bowtie_repaired_and_reported(tmp_path: Path) -> None:
    report = coco.write(sample(), tmp_path / "c")
    a = by_label(load(tmp_path / "c"))["road:3"]
    assert len(a["segmentation"]) == 2  # two triangles
    parts = [shapely.Polygon(np.reshape(s, (-1, 2))) for s in a["segmentation"]]
    assert sum(p.area for p in parts) == pytest.approx(50.0)  # 2 triangles of 10*5/2
    assert [
        (i.action, i.label_id) for i in report if i.kind == "polygons" and i.action == "repaired"
    ] == [("repaired", "road:3")]


def test_out_of_bounds_clipped_and_reported(tmp_path: Path) -> None:
    report = coco.write(sample(), tmp_path / "c")
    anns = by_label(load(tmp_path / "c"))
    assert anns["car:2"]["bbox"] == [0, 70, 20, 10]
    assert anns["road:4"]["area"] == 100
    assert anns["road:4"]["bbox"] == [40, 30, 10, 10]
    clipped = sorted(i.label_id for i in report if i.action == "clipped")
    assert clipped == ["car:2", "road:4"]


def test_empty_and_unknown_size_images_kept(tmp_path: Path) -> None:
    report = coco.write(sample(), tmp_path / "c")
    images = {im["file_name"]: im for im in load(tmp_path / "c")["images"]}
    assert images["c.png"]["deepen_status"] == "empty"
    assert images["d.png"]["deepen_status"] == "unlabelled"
    assert (images["d.png"]["width"], images["d.png"]["height"]) == (0, 0)
    assert "img/sub/b.png" in images
    assert [i.file_id for i in report if i.action == "kept" and "size unknown" in i.reason] == [
        "d.png"
    ]


def test_keypoints_convention(tmp_path: Path) -> None:
    coco.write(sample(), tmp_path / "c")
    doc = load(tmp_path / "c")
    a = by_label(doc)["person:2"]
    # model points at pixel centres (3.5, 4.5) and (10.5, 20.5) -> COCO pixel indices (3, 4), (10, 20)
    assert a["keypoints"] == [3, 4, 2, 10, 20, 2]
    assert a["num_keypoints"] == 2
    person = next(c for c in doc["categories"] if c["name"] == "person")
    assert person["keypoints"] == ["p0", "p1"]


def test_attributes_and_track_ids_kept(tmp_path: Path) -> None:
    coco.write(sample(), tmp_path / "c")
    anns = by_label(load(tmp_path / "c"))
    assert anns["car:1"]["attributes"] == {"color": "red", "occluded": True}
    assert anns["car:1"]["track_id"] == 1
    assert anns["person:1"]["attributes"] == {"color": "blue"}


def test_missing_attributes_and_meta_are_left_out_per_label() -> None:
    boxes = Boxes.from_columns(
        frame=[0, 0, 0],
        category=[0, 0, 0],
        label_id=["car:1", "car:2", "car"],
        xyxy=[[0, 0, 2, 2]] * 3,
        labeller=["a@x.com", "", "b@x.com"],
        version=[-1, 3, 2],
        stage=["", "", ""],
    ).with_attributes({"color": ["red", None, "blue"], "n": [None, None, 4]})
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[10], height=[10]),
        categories=("car",),
        boxes=boxes,
    )
    anns = by_label(coco.to_dict(ls))
    assert anns["car:1"]["attributes"] == {"color": "red"}
    assert anns["car:1"]["deepen"] == {"labeller": "a@x.com"}
    assert anns["car:1"]["track_id"] == 1
    assert anns["car:2"]["attributes"] == {}
    assert anns["car:2"]["deepen"] == {"version": 3}
    assert anns["car"]["attributes"] == {"color": "blue", "n": 4}
    assert anns["car"]["deepen"] == {"labeller": "b@x.com", "version": 2}
    assert "track_id" not in anns["car"]


def test_stable_ids_with_id_map(tmp_path: Path) -> None:
    ls = sample()
    id_map = tmp_path / "ids.json"
    coco.write(ls, tmp_path / "one", id_map=id_map)
    first = load(tmp_path / "one")
    # a new category, a new image and a new box, all placed first: codes, frame rows and
    # table rows of the old labels all move, their ids must not
    new = LabelSet(
        frames=Frames.from_columns(file_id=["new.png"], sensor_id=["cam"], width=[10], height=[10]),
        categories=("bus",),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["bus:1"], xyxy=[[1, 1, 3, 3]]),
    )
    shifted = LabelSet.concat([new, ls])
    assert shifted.category_code("bus") == 0 and shifted.boxes.label_id[0] == "bus:1"
    coco.write(shifted, tmp_path / "two", id_map=id_map)
    second = load(tmp_path / "two")
    cats1 = {c["name"]: c["id"] for c in first["categories"]}
    cats2 = {c["name"]: c["id"] for c in second["categories"]}
    assert all(cats2[k] == v for k, v in cats1.items())
    assert cats2["bus"] == 5
    im1 = {i["file_name"]: i["id"] for i in first["images"]}
    im2 = {i["file_name"]: i["id"] for i in second["images"]}
    assert all(im2[k] == v for k, v in im1.items()) and im2["new.png"] == 5
    a1 = {
        a["deepen_label_id"]: (a["id"], a["image_id"], a["category_id"])
        for a in first["annotations"]
    }
    a2 = {
        a["deepen_label_id"]: (a["id"], a["image_id"], a["category_id"])
        for a in second["annotations"]
    }
    assert {k: a2[k] for k in a1} == a1
    assert a2["bus:1"][0] == len(a1) + 1
    assert json.loads(id_map.read_text())["categories"]["bus"] == 5


def test_evil_file_id_refused_nothing_written(tmp_path: Path) -> None:
    ls = sample()
    evil = ls.replace(
        frames=Frames.from_columns(
            file_id=["../evil.png", "b.png", "c.png", "d.png"], width=[10] * 4, height=[10] * 4
        )
    )
    coco.write(ls, tmp_path / "c")  # an earlier output of ours: the one a write may replace
    before = {p: p.read_bytes() for p in sorted((tmp_path / "c").rglob("*")) if p.is_file()}
    with pytest.raises(ConversionError, match=r"\.\./evil\.png"):
        coco.write(evil, tmp_path / "c")
    assert {p: p.read_bytes() for p in sorted((tmp_path / "c").rglob("*")) if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_deterministic_bytes(tmp_path: Path) -> None:
    coco.write(sample(), tmp_path / "a")
    coco.write(sample(), tmp_path / "b")
    for name in ("annotations/instances_default.json", "id_map.json", "report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def with_cuboid() -> LabelSet:
    ls = sample()
    cub = Cuboids.from_columns(
        frame=[0],
        category=[0],
        label_id=["car:9"],
        center=[[0, 0, 0]],
        size=[[1, 1, 1]],
        quat=[[0, 0, 0, 1]],
    )
    return ls.replace(cuboids=cub)


def test_on_unsupported_policies(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="cuboids"):
        coco.write(with_cuboid(), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    with pytest.warns(LossyConversionWarning):
        rep = coco.write(with_cuboid(), tmp_path / "w", on_unsupported="warn")
    assert [(i.action, i.label_id) for i in rep if i.kind == "cuboids"] == [("dropped", "car:9")]
    rep = coco.write(with_cuboid(), tmp_path / "d", on_unsupported="drop")
    assert [(i.action, i.label_id) for i in rep if i.kind == "cuboids"] == [("dropped", "car:9")]
    assert load(tmp_path / "d") == load(tmp_path / "w")


def test_hole_on_unknown_size_image_dropped(tmp_path: Path) -> None:
    ls = sample()
    polys = polygons([3], [2], ["road:9"], [[sq(0, 10), sq(2, 4)]])
    rep = coco.write(ls.replace(polygons=polys), tmp_path / "c")
    assert by_label(load(tmp_path / "c")).get("road:9") is None
    assert [(i.action, i.label_id) for i in rep if i.kind == "polygons"] == [("dropped", "road:9")]


def test_read_foreign_coco_rle_becomes_pixel_outline(tmp_path: Path) -> None:
    # uncompressed RLE from formats.md 2.7: the first two columns of a 10x5 image (20 pixels)
    doc = {
        "images": [{"id": 3, "file_name": "x.png", "width": 5, "height": 10}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 3,
                "category_id": 1,
                "iscrowd": 1,
                "bbox": [0, 0, 2, 10],
                "segmentation": {"counts": [0, 20, 30], "size": [10, 5]},
                "area": 20,
            }
        ],
    }
    ls = coco.from_dict(doc)
    assert len(ls.polygons) == 1
    g = shapely.Polygon(ls.polygons.coords)
    assert g.area == 20 and g.bounds == (0, 0, 2, 10)


def test_clean_input_round_trips_exactly(tmp_path: Path) -> None:
    # inside the image, valid, exterior rings counter-clockwise (math), points at pixel centres:
    # nothing to clip, repair or reorient, so read(write(x)) == x column for column
    frames = Frames.from_columns(
        file_id=["a.png", "sub/b.png"],
        sensor_id=["s1", "s1"],
        dataset_id=["d", "d"],
        index=[0, 1],
        width=[100, 50],
        height=[80, 40],
        status=[int(FrameStatus.LABELLED), int(FrameStatus.EMPTY)],
    )
    boxes = Boxes.from_columns(
        frame=[0],
        category=[0],
        label_id=["car:1"],
        xyxy=[[1.25, 2, 30, 40]],
        stage=["QA"],
        labeller=["a@b.c"],
        create_time=[1717236001000],
        version=[3],
        attributes={"color": ["red"], "parked": [True]},
    )
    polys = polygons([0], [1], ["road:7"], [[sq(0, 40), sq(10, 20)[::-1]]])
    pts = Points.from_columns(
        frame=[0], category=[0], label_id=["car:2"], offsets=[0, 2], coords=[[3.5, 4.5], [7.5, 1.5]]
    )
    ls = LabelSet(
        frames=frames, categories=("car", "road"), boxes=boxes, polygons=polys, points=pts
    )
    report = coco.write(ls, tmp_path / "c")
    assert len(report) == 0
    back = coco.read(tmp_path / "c")
    assert back.equals(ls.replace(meta={}))


def test_camera_view_of_lidar_frame_uses_camera_image(tmp_path: Path) -> None:
    import deepen_export

    samples = Path(__file__).resolve().parents[1] / "sample_data"
    ls = deepen_export.read_labels(samples / "lidar_sequence")
    report = coco.write(ls, tmp_path / "c", on_unsupported="drop")
    doc = load(tmp_path / "c")
    # only the camera_0 view of 0000.pcd carries a 2D label; LiDAR frames are not images
    assert [
        (i["file_name"], i["deepen_file_id"], i["deepen_sensor_id"]) for i in doc["images"]
    ] == [("images/camera_0/0000.png", "0000.pcd", "camera_0")]
    assert [(i["width"], i["height"]) for i in doc["images"]] == [(160, 120)]
    assert [a["deepen_label_id"] for a in doc["annotations"]] == ["car:1"]
    assert {i.kind for i in report if i.action == "dropped"} == {
        "cuboids",
        "polylines3d",
        "point_segmentation",
    }


def test_degenerate_and_outside_polygons_dropped(tmp_path: Path) -> None:
    ls = sample()
    polys = polygons(
        [0, 0, 0],
        [2, 2, 2],
        ["road:7", "road:8", "road:9"],
        [
            [[[1, 1], [5, 5]]],
            [[[1, 1], [2, 2], [3, 3]]],
            [sq(200, 300)],
        ],  # 2 vertices, collinear, outside
    )
    report = coco.write(ls.replace(polygons=polys), tmp_path / "c")
    assert by_label(load(tmp_path / "c")).keys().isdisjoint({"road:7", "road:8", "road:9"})
    got = sorted((i.label_id, i.action, i.reason) for i in report if i.kind == "polygons")
    assert got == [
        ("road:7", "dropped", "polygon has no area (degenerate)"),
        (
            "road:7",
            "repaired",
            "ring(s) with fewer than 3 vertices or non-finite coordinates left out",
        ),
        ("road:8", "dropped", "polygon has no area (degenerate)"),
        (
            "road:8",
            "repaired",
            "invalid polygon (self-intersection or overlapping parts) repaired with make_valid",
        ),
        ("road:9", "dropped", "polygon lies outside the image (nothing left after clipping)"),
    ]


def test_integers_beyond_64_bits_are_written_not_crashed_on(tmp_path: Path) -> None:
    ls = LabelSet(
        frames=Frames.from_columns(file_id=["a.png"], width=[10], height=[10]),
        categories=("car",),
        boxes=Boxes.from_columns(
            frame=[0], category=[0], label_id=["car:1"], xyxy=[[1, 1, 3, 3]]
        ).with_attributes({"serial": [2**70]}),
    )
    coco.write(ls, tmp_path / "c")
    ann = load(tmp_path / "c")["annotations"][0]
    assert ann["attributes"] == {"serial": 2**70}


def test_cli_options_are_typed_from_the_signature(tmp_path: Path) -> None:
    import subprocess

    from deepen_export import read_labels
    from tests.test_writer_pipeline import SAMPLES, console_script

    def cli(*opts: str, out: str = "c") -> subprocess.CompletedProcess[str]:
        src = str(SAMPLES / "image_dataset")
        args = ["convert", src, "--to", "coco", "-o", str(tmp_path / out)]
        args += [x for o in opts for x in ("-O", o)]
        return subprocess.run(
            [console_script(), *args], capture_output=True, text=True, timeout=120
        )

    ok = cli("indent=2", "clip=false", "area=pixels", "split=train:0.5,val:0.5", "seed=7")
    assert ok.returncode == 0, ok.stderr
    text = (tmp_path / "c" / "annotations" / "instances_train.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "info": {')  # indented
    lib = tmp_path / "lib"
    coco.write(
        read_labels(SAMPLES / "image_dataset"),
        lib,
        on_unsupported="drop",
        indent=2,
        clip=False,
        area="pixels",
        split="train:0.5,val:0.5",
        seed=7,
    )
    for name in ("instances_train.json", "instances_val.json"):
        assert (lib / "annotations" / name).read_bytes() == (
            tmp_path / "c" / "annotations" / name
        ).read_bytes()
    for bad, message in (("area=big", "expected one of polygon, pixels"), ("seed=x", "integer")):
        res = cli(bad, out="bad")
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and not (tmp_path / "bad").exists()
    with pytest.warns(DeprecationWarning):
        coco.write(sample(), tmp_path / "old", clip="false")  # text still works, deprecated
