"""Previews: pixels checked at positions worked out by hand from the labels and a hand-placed camera."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from deepen_export.model import (
    Boxes,
    Cameras,
    Cuboids,
    Frames,
    LabelSet,
    Masks2D,
    PointClouds,
    Polygons,
    Polylines,
    Poses,
)
from deepen_export.preview import (
    GREY,
    category_color,
    render_bev,
    render_camera,
    render_image,
    views,
    write_previews,
)

CAR = category_color("car")
ROAD = category_color("road")


def px(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return img.getpixel((x, y))  # type: ignore[return-value]


def tinted_toward(pixel: tuple[int, ...], color: tuple[int, ...], base: tuple[int, ...]) -> bool:
    """A blended fill: strictly between the canvas and the category colour on every channel that differs."""
    return pixel != base and all(
        min(b, c) <= p <= max(b, c) for p, c, b in zip(pixel, color, base, strict=True)
    )


def one_image(**tables: object) -> LabelSet:
    frames = Frames.from_columns(
        file_id=["img.png"], sensor_id=["sensor1"], width=[64], height=[48]
    )
    return LabelSet(frames=frames, categories=("car", "road"), **tables)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# 2D


def test_box_outline_on_the_box_edge_not_inside_it() -> None:
    # xyxy [10, 20, 30, 40] in pixel-corner coordinates covers pixel columns 10..29 and rows
    # 20..39 (pixel i spans [i, i+1)); the outline is drawn on the outermost of those.
    boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 20, 30, 40]])
    img = render_image(one_image(boxes=boxes), 0, line_width=1)
    assert img.size == (64, 48)
    for x, y in [(10, 30), (29, 30), (20, 39), (10, 39), (29, 39)]:
        assert px(img, x, y) == CAR, (x, y)
    for x, y in [(20, 30), (11, 30), (28, 30), (20, 38)]:  # inside
        assert px(img, x, y) == GREY, (x, y)
    for x, y in [(9, 30), (30, 30), (20, 40), (40, 10)]:  # outside (caption sits above the box)
        assert px(img, x, y) == GREY, (x, y)


def test_box_at_fractional_coordinates_goes_to_pixels_whose_centres_are_inside() -> None:
    # x from 10.6 to 20.4: centres 11.5 .. 19.5 are inside, so columns 11 and 19 carry the edges
    boxes = Boxes.from_columns(
        frame=[0], category=[0], label_id=["car:1"], xyxy=[[10.6, 20, 20.4, 40]]
    )
    img = render_image(one_image(boxes=boxes), 0, line_width=1)
    assert px(img, 11, 30) == CAR and px(img, 19, 30) == CAR
    assert px(img, 10, 30) == GREY and px(img, 20, 30) == GREY


def _square(
    x0: float, y0: float, x1: float, y1: float, clockwise: bool = False
) -> list[list[float]]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return ring[::-1] if clockwise else ring


def test_polygon_hole_left_unfilled() -> None:
    # outer 8..56 x 4..44, hole 20..40 x 16..32 (same orientation: the even-odd rule, not the
    # winding direction, makes it a hole)
    coords = _square(8, 4, 56, 44) + _square(20, 16, 40, 32)
    polys = Polygons.from_columns(
        frame=[0],
        category=[1],
        label_id=["road:1"],
        offsets=[0, 2],
        ring_offsets=[0, 4, 8],
        coords=coords,
    )
    img = render_image(one_image(polygons=polys), 0, line_width=1)
    assert tinted_toward(px(img, 14, 24), ROAD, GREY)  # between the outer ring and the hole
    assert tinted_toward(px(img, 48, 38), ROAD, GREY)
    assert px(img, 30, 24) == GREY  # centre of the hole
    assert px(img, 25, 20) == GREY
    assert px(img, 60, 24) == GREY  # outside
    assert px(img, 8, 24) == ROAD  # outline on the outer ring


def test_two_disjoint_rings_are_two_filled_parts_and_an_island_in_a_hole_is_filled() -> None:
    coords = (
        _square(2, 2, 20, 20)
        + _square(30, 2, 60, 40)
        + _square(36, 8, 54, 34)
        + _square(42, 16, 48, 24)
    )
    polys = Polygons.from_columns(
        frame=[0],
        category=[1],
        label_id=["road:1"],
        offsets=[0, 4],
        ring_offsets=[0, 4, 8, 12, 16],
        coords=coords,
    )
    img = render_image(one_image(polygons=polys), 0, line_width=1)
    assert tinted_toward(px(img, 10, 17), ROAD, GREY)  # part 1 (its caption covers the top)
    assert tinted_toward(px(img, 32, 30), ROAD, GREY)  # part 2
    assert px(img, 39, 12) == GREY  # hole in part 2
    assert tinted_toward(px(img, 45, 20), ROAD, GREY)  # island inside the hole: inside 3 rings
    assert px(img, 25, 17) == GREY  # between the parts


def test_polyline_drawn_through_its_vertices() -> None:
    lines = Polylines.from_columns(
        frame=[0], category=[1], label_id=["road:1"], offsets=[0, 1], part_offsets=[0, 2],
        coords=[[5.5, 40.5], [55.5, 40.5]],
    )  # fmt: skip
    img = render_image(one_image(polylines=lines), 0, line_width=1)
    # a horizontal line through pixel centres of row 40, from column 5 to 55
    assert px(img, 30, 40) == ROAD and px(img, 5, 40) == ROAD and px(img, 55, 40) == ROAD
    assert px(img, 30, 36) == GREY and px(img, 58, 40) == GREY


def test_masks2d_painted_pixels_tinted_unpainted_unchanged() -> None:
    mask = np.full((48, 64), -1, dtype=np.int32)
    mask[10:20, 30:40] = 0
    masks = Masks2D.from_columns(
        frame=[0], height=[48], width=[64], offsets=[0, mask.size], pixels=mask.ravel()
    )
    img = render_image(one_image(masks2d=masks), 0)
    assert tinted_toward(px(img, 35, 15), CAR, GREY)
    assert px(img, 29, 15) == GREY and px(img, 35, 20) == GREY


def test_colour_follows_the_category_name_not_its_code() -> None:
    box = [[10, 10, 30, 30]]
    a = LabelSet(
        frames=Frames.from_columns(file_id=["a"], width=[40], height=[40]),
        categories=("car", "road"),
        boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=box),
    )
    b = LabelSet(
        frames=Frames.from_columns(file_id=["a"], width=[40], height=[40]),
        categories=("road", "truck", "car"),
        boxes=Boxes.from_columns(frame=[0], category=[2], label_id=["car:1"], xyxy=box),
    )
    assert px(render_image(a, 0), 10, 20) == px(render_image(b, 0), 10, 20) == CAR
    assert category_color("car") == (
        245,
        35,
        231,
    )  # pinned: colours must not change between releases


def test_image_pixels_used_when_found_and_grey_canvas_otherwise(tmp_path) -> None:
    (tmp_path / "inner").mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "inner" / "img.png")
    frames = Frames.from_columns(
        file_id=["inner/img.png", "missing.png"], width=[64, 50], height=[48, 30]
    )
    boxes = Boxes.from_columns(
        frame=[0, 1], category=[0, 0], label_id=["car:1", "car:2"], xyxy=[[10, 20, 30, 40]] * 2
    )
    labels = LabelSet(frames=frames, categories=("car",), boxes=boxes)
    img = render_image(labels, 0, images=tmp_path, line_width=1)
    assert px(img, 20, 30) == (200, 10, 10) and px(img, 10, 30) == CAR
    grey = render_image(labels, 1, images=tmp_path)
    assert grey.size == (50, 30) and px(grey, 45, 5) == GREY


def test_unknown_size_canvas_covers_the_labels() -> None:
    frames = Frames.from_columns(file_id=["a.png"])
    boxes = Boxes.from_columns(
        frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 20, 130, 90]]
    )
    img = render_image(LabelSet(frames=frames, categories=("car",), boxes=boxes), 0, line_width=1)
    assert img.size[0] >= 130 and img.size[1] >= 90
    assert px(img, 129, 50) == CAR


# ---------------------------------------------------------------------------------------
# 3D: a hand-placed camera
#
# World: z up. The camera sits at T = (2, 1, 1.5) looking along world +x: camera x (right) is
# world -y, camera y (down) is world -z, camera z (forward) is world +x. So
#   p_cam = (-(Y - 1), -(Z - 1.5), X - 2)   and   u = fx * xc / zc + cx,  v = fy * yc / zc + cy.
# Deepen's intrinsics are OpenCV-style (integer coordinates at pixel centres), so in the model's
# pixel-corner convention a projected point is at (u + 0.5, v + 0.5): pixel floor(u + 0.5).
# That rotation (columns = camera axes in world) is 120 degrees about (-1, 1, -1)/sqrt(3):
# quaternion (x, y, z, w) = (sin 60 * axis, cos 60) = (-0.5, 0.5, -0.5, 0.5). The test checks
# that with Rodrigues' formula below, independently of the code under test.

CAM_Q = [-0.5, 0.5, -0.5, 0.5]
CAM_T = np.array([2.0, 1.0, 1.5])
FX = FY = 100.0
CX, CY = 80.0, 60.0


def rodrigues(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    return (
        v * math.cos(angle) + np.cross(k, v) * math.sin(angle) + k * (k @ v) * (1 - math.cos(angle))
    )


def hand_project(p_world: np.ndarray, k1: float = 0.0) -> tuple[float, float]:
    """Pixel-corner coordinates of a world point in the hand-placed camera."""
    d = p_world - CAM_T
    xc, yc, zc = -d[1], -d[2], d[0]
    x, y = xc / zc, yc / zc
    radial = 1 + k1 * (x * x + y * y)
    return FX * x * radial + CX + 0.5, FY * y * radial + CY + 0.5


def test_hand_placed_camera_quaternion_is_the_rotation_described() -> None:
    axis, angle = np.array([-1.0, 1.0, -1.0]), math.radians(120)
    assert np.allclose(rodrigues(np.array([0, 0, 1.0]), axis, angle), [1, 0, 0])  # forward
    assert np.allclose(rodrigues(np.array([1.0, 0, 0]), axis, angle), [0, -1, 0])  # right
    assert np.allclose(rodrigues(np.array([0, 1.0, 0]), axis, angle), [0, 0, -1])  # down
    s = math.sin(angle / 2) / math.sqrt(3)
    assert np.allclose(CAM_Q, [-s, s, -s, math.cos(angle / 2)])


def scene_3d(k1: float = 0.0, frame_of_reference: str = "world") -> LabelSet:
    frames = Frames.from_columns(file_id=["0.pcd", "0.pcd"], sensor_id=["lidar", "camera_0"])
    cams = Cameras.from_columns(
        frame=[0], sensor_id=["camera_0"], fx=[FX], fy=[FY], cx=[CX], cy=[CY],
        distortion=[[k1, 0, 0, 0, 0, 0]], position=[CAM_T], quat=[CAM_Q], width=[160], height=[120],
    )  # fmt: skip
    # a 2 m cube centred at (12, 1, 1.5), heading +x
    cub = Cuboids.from_columns(
        frame=[0], category=[0], label_id=["car:1"], center=[[12, 1, 1.5]], size=[[2, 2, 2]],
        quat=[[0, 0, 0, 1]], frame_of_reference=frame_of_reference,
    )  # fmt: skip
    return LabelSet(frames=frames, categories=("car", "road"), cameras=cams, cuboids=cub)


@pytest.mark.parametrize("k1", [0.0, -0.2])
def test_projected_cuboid_corners_where_the_calibration_puts_them(k1: float) -> None:
    img = render_camera(scene_3d(k1), 0, line_width=1)
    assert img.size == (160, 120)
    corners = [(11, 2, 2.5), (11, 0, 0.5), (13, 2, 0.5), (13, 0, 2.5)]
    for c in corners:
        u, v = hand_project(np.array(c, dtype=float), k1)
        # the corner lies in pixel (floor u, floor v)
        assert px(img, math.floor(u), math.floor(v)) == CAR, (c, u, v)
    # inside the near face, off every edge and off the front-face cross
    u, v = hand_project(np.array([11.0, 1.5, 1.5]), k1)
    assert px(img, math.floor(u), math.floor(v)) == GREY


def test_no_distortion_corner_pixel_values_by_hand() -> None:
    # corner (11, 2, 2.5): d = (9, 1, 1) -> p_cam = (-1, -1, 9) -> u = 100*(-1/9) + 80 = 68.89,
    # v = 60 - 11.11 = 48.89; pixel-corner (69.39, 49.39) -> pixel (69, 49)
    img = render_camera(scene_3d(), 0, line_width=1)
    assert px(img, 69, 49) == CAR
    assert px(img, 65, 49) == GREY and px(img, 69, 45) == GREY


def test_lidar_frame_cuboids_go_through_the_device_pose() -> None:
    # device at (10, 0, 0) turned 90 degrees left: lidar (x, y) -> world (10 - y, x). The lidar
    # -frame centre (1, -2, 1.5) is the world centre (12, 1, 1.5) of the other tests, and the box
    # heading (yaw -90 in the lidar frame) is world +x again.
    ls = scene_3d(frame_of_reference="lidar")
    half = math.sqrt(0.5)
    cub = Cuboids.from_columns(
        frame=[0], category=[0], label_id=["car:1"], center=[[1, -2, 1.5]], size=[[2, 2, 2]],
        quat=[[0, 0, -half, half]], frame_of_reference="lidar",
    )  # fmt: skip
    poses = Poses.from_columns(frame=[0], position=[[10, 0, 0]], quat=[[0, 0, half, half]])
    img = render_camera(ls.replace(cuboids=cub, poses=poses), 0, line_width=1)
    assert px(img, 69, 49) == CAR


def test_camera_view_also_draws_the_2d_labels_of_that_camera_image() -> None:
    ls = scene_3d()
    boxes = Boxes.from_columns(frame=[1], category=[1], label_id=["road:1"], xyxy=[[2, 2, 20, 20]])
    img = render_camera(ls.replace(boxes=boxes), 0, line_width=1)
    assert px(img, 2, 10) == ROAD
    names = [v.name for v in views(ls.replace(boxes=boxes))]
    assert names == ["0.bev.png", "0.camera_0.png"]  # the camera image is not drawn twice


def test_cuboid_behind_the_camera_is_not_drawn() -> None:
    ls = scene_3d()
    behind = Cuboids.from_columns(
        frame=[0],
        category=[0],
        label_id=["car:1"],
        center=[[-8, 1, 1.5]],
        size=[[2, 2, 2]],
        quat=[[0, 0, 0, 1]],
    )
    img = render_camera(ls.replace(cuboids=behind), 0, line_width=1)
    assert (np.asarray(img) == GREY).all()


# ---------------------------------------------------------------------------------------
# bird's-eye view


def test_bev_footprint_centred_on_the_cuboid_and_heading_forward() -> None:
    # device at world (100, 50, 0) with yaw 90 degrees: lidar (x, y) -> world (100 - y, 50 + x).
    # A cuboid at lidar (10, 4) heading lidar +x is at world (96, 60) heading world +y (yaw 90).
    # size 200 px over +-20 m: 5 px/m; u = 100 - 5 y, v = 100 - 5 x (pixel corners), so the
    # footprint x in [8, 12], y in [3, 5] spans u in [75, 85], v in [40, 60], centre (80, 50).
    half = math.sqrt(0.5)
    frames = Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"])
    poses = Poses.from_columns(frame=[0], position=[[100, 50, 0]], quat=[[0, 0, half, half]])
    cub = Cuboids.from_columns(
        frame=[0], category=[0], label_id=["car:1"], center=[[96, 60, 0.75]], size=[[4, 2, 1.5]],
        quat=[[0, 0, half, half]],
    )  # fmt: skip
    labels = LabelSet(frames=frames, categories=("car",), poses=poses, cuboids=cub)
    img = np.asarray(render_bev(labels, 0, extent=20, size=200, line_width=1))
    ys, xs = np.nonzero((img == CAR).all(axis=2))
    assert len(xs) > 0
    # pixel i spans [i, i+1); lines go through the pixel containing each point, so an edge
    # lying exactly on a pixel boundary may land on either side of it: allow one pixel
    span = (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1)
    assert np.abs(np.subtract(span, (75, 85, 40, 60))).max() <= 1, span
    assert abs((span[0] + span[1]) / 2 - 80) <= 0.5 and abs((span[2] + span[3]) / 2 - 50) <= 0.5
    # heading line from the centre to the front (lidar +x = up): above the centre, not below
    col = img[:, 79:81]
    assert (col[42:48] == CAR).all(axis=2).any(axis=1).all()
    assert not (col[52:58] == CAR).all(axis=2).any()


def test_bev_points_land_where_the_pose_puts_them() -> None:
    frames = Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"])
    poses = Poses.from_columns(frame=[0], position=[[100, 50, 0]], quat=[[0, 0, 0, 1]])
    # world (110.3, 54.9) is lidar (10.3, 4.9): u = 100 - 5 * 4.9 = 75.5, v = 100 - 5 * 10.3 = 48.5
    pc = PointClouds.from_columns(frame=[0], offsets=[0, 1], xyz=[[110.3, 54.9, -1]])
    labels = LabelSet(frames=frames, poses=poses, pointclouds=pc)
    img = render_bev(labels, 0, extent=20, size=200)
    assert px(img, 75, 48) == (200, 200, 200)
    assert px(img, 76, 48) != (200, 200, 200) and px(img, 75, 49) != (200, 200, 200)


# ---------------------------------------------------------------------------------------
# writing


def test_write_previews_names_and_replaces_the_folder(tmp_path) -> None:
    ls = scene_3d()
    img_frames = Frames.from_columns(file_id=["inner/a.jpg"], width=[20], height=[10])
    both = LabelSet.concat([ls, LabelSet(frames=img_frames)])
    out = tmp_path / "preview"
    out.mkdir()
    (out / "stale.png").write_bytes(b"")
    names = write_previews(both, out)
    assert names == ["0.bev.png", "0.camera_0.png", "inner/a.png"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(names)
    with Image.open(out / "inner" / "a.png") as im:
        assert im.size == (160, 80)  # small pictures are enlarged by default, at most 8 times


def test_frames_selection_and_cli_from_labelset(tmp_path, monkeypatch) -> None:
    from deepen_export import cli
    from deepen_export.commands import see

    ls = scene_3d()
    monkeypatch.setattr(see, "_load", lambda *a, **k: ls)
    runner = CliRunner()
    (tmp_path / "src").mkdir()  # -o may not lie inside SOURCE
    res = runner.invoke(
        cli.main, ["preview", str(tmp_path / "src"), "-o", str(tmp_path / "p"), "--frames", "0.pcd"]
    )
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in (tmp_path / "p").iterdir() if p.name != ".deepen-export-output")
    assert pngs == ["0.bev.png", "0.camera_0.png"]
    res = runner.invoke(
        cli.main,
        ["preview", str(tmp_path / "src"), "-o", str(tmp_path / "q"), "--frames", "nope.pcd"],
    )
    assert res.exit_code == 2 and "no frame with file id nope.pcd" in res.output


def test_help_has_an_example_on_every_command() -> None:
    from deepen_export import cli

    runner = CliRunner()
    for name in ("preview", "stats", "demo"):
        res = runner.invoke(cli.main, [name, "--help"])
        assert (
            res.exit_code == 0 and "Example" in res.output and "deepen-export " + name in res.output
        )


def test_scale_enlarges_the_picture_and_the_labels_with_it() -> None:
    # scale 4: the box [10, 20, 30, 40] becomes [40, 80, 120, 160]: outline columns 40 and 119
    boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 20, 30, 40]])
    img = render_image(one_image(boxes=boxes), 0, line_width=1, scale=4)
    assert img.size == (256, 192)
    assert px(img, 40, 120) == CAR and px(img, 119, 120) == CAR
    assert px(img, 39, 120) == GREY and px(img, 41, 120) == GREY and px(img, 120, 120) == GREY


def test_scaled_camera_projection() -> None:
    img = render_camera(scene_3d(), 0, line_width=1, scale=3)
    assert img.size == (480, 360)
    u, v = hand_project(np.array([11.0, 2.0, 2.5]))  # 69.39, 49.39 -> 208.17, 148.17
    assert px(img, math.floor(3 * u), math.floor(3 * v)) == CAR


def test_camera_image_read_from_the_dataset_zip(tmp_path) -> None:
    import zipfile

    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (10, 200, 10)).save(buf, format="PNG")
    with zipfile.ZipFile(tmp_path / "dataset.zip", "w") as zf:
        zf.writestr("0000.json", "{}")
        zf.writestr("images/camera_0/0000.png", buf.getvalue())
    ls = scene_3d()
    cams = dataclasses.replace(
        ls.cameras, image_path=np.array(["images/camera_0/0000.png"], dtype=object)
    )
    img = render_camera(
        ls.replace(cameras=cams), 0, images=[tmp_path / "nothing-here", tmp_path / "dataset.zip"]
    )
    assert px(img, 5, 5) == (10, 200, 10) and px(img, 69, 49) == CAR


# ---------------------------------------------------------------------------------------
# the sample datasets (expected values from sample_data/expected.json, derived independently)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))


def _only_cuboid(labels: LabelSet, file_id: str, label_id: str) -> LabelSet:
    c = labels.cuboids
    keep = (labels.frames.file_id[c.frame] == file_id) & (c.label_id == label_id)
    assert keep.sum() == 1
    return labels.replace(
        cuboids=c.take(keep), boxes=Boxes.empty(), pointclouds=PointClouds.empty()
    )


def _bbox(img: Image.Image, color: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero((np.asarray(img) == color).all(axis=2))
    return None if len(xs) == 0 else (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


@pytest.mark.parametrize("file_id", ["0000.pcd", "0001.pcd", "0002.pcd"])
def test_sample_cuboids_project_onto_camera_0_where_expected(lidar: LabelSet, file_id: str) -> None:
    exp = EXPECTED["lidar_sequence"]["frames"][file_id]["cuboids"]
    cam = int(
        np.flatnonzero(
            (lidar.frames.file_id[lidar.cameras.frame] == file_id)
            & (lidar.cameras.sensor_id == "camera_0")
        )[0]
    )
    for label_id, e in exp.items():
        ls = _only_cuboid(lidar, file_id, label_id)
        color = category_color(label_id.split(":")[0])
        got = _bbox(render_camera(ls, cam, line_width=1), color)
        k = e["kitti_camera_0"]
        if not k["in_front"] or not k["overlaps_image"]:  # behind the camera or off to a side
            assert got is None, label_id
            continue
        # the projected corners' extent (OpenCV-style: + 0.5 to pixel corners), clipped to
        # the 160 x 120 image, in pixel indices
        x0, y0, x1, y1 = (c + 0.5 for c in k["bbox_unclipped"])
        want = (
            max(0, math.floor(x0)),
            max(0, math.floor(y0)),
            min(159, math.floor(x1)),
            min(119, math.floor(y1)),
        )
        assert got is not None and np.abs(np.subtract(got, want)).max() <= 1, (label_id, got, want)


@pytest.mark.parametrize("file_id", ["0000.pcd", "0001.pcd", "0002.pcd"])
def test_sample_bev_footprints_centred_on_the_cuboids(lidar: LabelSet, file_id: str) -> None:
    frame = int(
        np.flatnonzero((lidar.frames.file_id == file_id) & (lidar.frames.sensor_id == "lidar"))[0]
    )
    for label_id, e in EXPECTED["lidar_sequence"]["frames"][file_id]["cuboids"].items():
        ls = _only_cuboid(lidar, file_id, label_id)
        got = _bbox(
            render_bev(ls, frame, extent=20, size=400, line_width=1),
            category_color(label_id.split(":")[0]),
        )
        assert got is not None
        x, y, _ = e["centre_lidar"]
        # 10 px per metre, LiDAR x up and y left, ego at pixel corner (200, 200)
        u, v = 200 - 10 * y, 200 - 10 * x
        mid = ((got[0] + got[2] + 1) / 2, (got[1] + got[3] + 1) / 2)
        assert abs(mid[0] - u) <= 1 and abs(mid[1] - v) <= 1, (label_id, mid, (u, v))
        # a footprint is l x w: its extent is at least the width and at most the diagonal
        length, width, _ = e["lwh"]
        size_px = max(got[2] - got[0], got[3] - got[1]) + 1
        assert 10 * width - 2 <= size_px <= 10 * math.hypot(length, width) + 2


def test_sample_image_polygon_hole_and_box(tmp_path) -> None:
    import deepen_export

    labels = deepen_export.read_labels(SAMPLES / "image_dataset")
    frame = int(
        np.flatnonzero(
            (labels.frames.file_id == "000001.png") & (labels.frames.sensor_id == "sensor1")
        )[0]
    )
    img = render_image(labels, frame, scale=8, line_width=1)  # grey canvas: 64x48 -> 512x384
    road, car = category_color("road"), category_color("car")
    assert img.size == (512, 384)
    # road:1: outer ring (2,20)-(42,44), hole (12,26)-(22,36) (README, section 3)
    assert px(img, 17 * 8, 31 * 8) == GREY  # centre of the hole
    assert tinted_toward(px(img, 7 * 8, 40 * 8), road, GREY)  # between the rings
    assert px(img, 50 * 8, 40 * 8) == GREY  # outside the polygon
    # car:1: xyxy [10, 8, 30, 20] -> [80, 64, 240, 160]: outline columns 80 and 239
    assert px(img, 80, 120) == car and px(img, 239, 120) == car and px(img, 120, 100) == GREY


def test_nan_and_huge_coordinates_are_skipped_not_fatal(tmp_path) -> None:
    nan = float("nan")
    frames = Frames.from_columns(file_id=["a.png", "0.pcd"], sensor_id=["s", "lidar"])
    boxes = Boxes.from_columns(
        frame=[0, 0, 0], category=[0] * 3, label_id=["x:1", "x:2", "x:3"],
        xyxy=[[nan, 1, 5, 5], [1, 1, 1e12, 5], [10, 10, 20, 20]],
    )  # fmt: skip
    lines = Polylines.from_columns(
        frame=[0], category=[0], label_id=["x:4"], offsets=[0, 1], part_offsets=[0, 3],
        coords=[[1, 1], [nan, nan], [5, 5]],
    )  # fmt: skip
    polys = Polygons.from_columns(
        frame=[0], category=[0], label_id=["x:5"], offsets=[0, 1], ring_offsets=[0, 3],
        coords=[[1, 1], [nan, 2], [3, 3]],
    )  # fmt: skip
    cub = Cuboids.from_columns(
        frame=[1, 1], category=[0, 0], label_id=["x:6", "x:7"], center=[[nan, 0, 0], [5, 0, 0]],
        size=[[1, 1, 1]] * 2, quat=[[0, 0, 0, 1], [0, 0, 0, 0]],  # a zero quaternion: identity
    )  # fmt: skip
    pc = PointClouds.from_columns(frame=[1], offsets=[0, 2], xyz=[[nan, 0, 0], [1, 1, 1]])
    labels = LabelSet(
        frames=frames,
        categories=("x",),
        boxes=boxes,
        polylines=lines,
        polygons=polys,
        cuboids=cub,
        pointclouds=pc,
    )
    names = write_previews(labels, tmp_path / "p", scale=1)
    assert names == ["a.png", "0.bev.png"]
    with Image.open(tmp_path / "p" / "a.png") as im:
        assert im.size[0] <= 8192  # the canvas follows the labels' extent, within a bound
        assert im.getpixel((10, 15)) == category_color("x")  # the good box is still drawn


def test_bev_without_a_pose_is_centred_on_the_points() -> None:
    # no device pose, world coordinates near (80000, 50000): the view centres on the points'
    # median (80000, 50000, 0) with world axes; the cuboid 10 m ahead in x lands at
    # v = 200 - 10 px/m * 10 m = 100, u = 200
    frames = Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"])
    xyz = [[80000 + dx, 50000 + dy, 0] for dx in (-5, 0, 5) for dy in (-5, 0, 5)]
    pc = PointClouds.from_columns(frame=[0], offsets=[0, len(xyz)], xyz=xyz)
    cub = Cuboids.from_columns(
        frame=[0],
        category=[0],
        label_id=["car:1"],
        center=[[80010, 50000, 0]],
        size=[[4, 2, 1.5]],
        quat=[[0, 0, 0, 1]],
    )
    img = render_bev(
        LabelSet(frames=frames, categories=("car",), pointclouds=pc, cuboids=cub),
        0,
        extent=20,
        size=400,
        line_width=1,
    )
    got = _bbox(img, CAR)
    assert got is not None
    mid = ((got[0] + got[2] + 1) / 2, (got[1] + got[3] + 1) / 2)
    assert abs(mid[0] - 200) <= 1 and abs(mid[1] - 100) <= 1, mid


def test_from_format_previews_what_the_reader_returns(tmp_path, monkeypatch) -> None:
    import converters
    from deepen_export import cli

    (tmp_path / "fake_reader_mod.py").write_text(
        "from deepen_export.model import Boxes, Frames, LabelSet\n"
        "def write(labels, dest, /, **kw): raise NotImplementedError\n"
        "def read(source, /):\n"
        "    return LabelSet(frames=Frames.from_columns(file_id=['x.png'], width=[40], height=[30]),\n"
        "        categories=('car',), boxes=Boxes.from_columns(frame=[0], category=[0],\n"
        "        label_id=['car:1'], xyxy=[[5, 5, 20, 20]]))\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fmt = converters.Format("fakefmt", "fake_reader_mod", frozenset({"boxes"}), "test only")
    monkeypatch.setitem(converters.FORMATS, "fakefmt", fmt)
    monkeypatch.setitem(
        converters.FORMATS,
        "fakewo",
        converters.Format("fakewo", "fake_reader_mod", frozenset({"boxes"}), "", False),
    )
    out = tmp_path.with_name(tmp_path.name + "-previews")  # -o may not lie inside SOURCE
    runner = CliRunner()
    res = runner.invoke(
        cli.main, ["preview", str(tmp_path), "--from-format", "fakefmt", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    with Image.open(out / "x.png") as im:
        assert im.getpixel((5 * 8, 12 * 8)) == CAR  # enlarged 8 times by default
    res = runner.invoke(
        cli.main, ["preview", str(tmp_path), "--from-format", "fakewo", "-o", str(out)]
    )
    assert res.exit_code == 2 and "cannot be read back" in res.output


def test_3d_polylines_and_points_projected_into_the_camera() -> None:
    from deepen_export.model import Points3D, Polylines3D

    ls = scene_3d().replace(cuboids=Cuboids.empty())
    # a lane along world x at y = 0, z = 1.5: p_cam = (1, 0, X - 2); its point at X = 15 is at
    # u = 100 / 13 + 80 = 87.69, v = 60 -> pixel-corner (88.19, 60.5) -> pixel (88, 60)
    lane = Polylines3D.from_columns(
        frame=[0], category=[1], label_id=["road:1"], offsets=[0, 1], part_offsets=[0, 2],
        coords=[[10, 0, 1.5], [20, 0, 1.5]],
    )  # fmt: skip
    # a point at (12, 3, 1.5): p_cam = (-2, 0, 10) -> u = 60, v = 60 -> pixel (60, 60)
    pt = Points3D.from_columns(
        frame=[0], category=[0], label_id=["car:1"], offsets=[0, 1], coords=[[12, 3, 1.5]]
    )
    img = render_camera(ls.replace(polylines3d=lane, points3d=pt), 0, line_width=1)
    assert px(img, 88, 60) == ROAD and px(img, 88, 56) == GREY
    assert px(img, 60, 60) == CAR and px(img, 66, 60) == GREY
