"""Draw labels over their images: 2D labels, cuboids projected into cameras, bird's-eye views.

Three kinds of picture, all RGB :class:`PIL.Image.Image`:

- :func:`render_image`: the 2D labels of one image (boxes, polygons with holes, lanes and
  polylines, points, 2D painting) over the image, or over a grey canvas of the frame's size when
  the pixels are not available.
- :func:`render_camera`: one camera of a LiDAR frame, with every cuboid of the frame projected
  through the calibration (12 edges and a cross on the front face, the face the box heads to),
  plus the 2D labels drawn on that camera image.
- :func:`render_bev`: a bird's-eye view of a LiDAR frame in the LiDAR's own axes (x forward = up,
  y left = left, ego at the centre): its points, cuboid footprints with a heading line, and 3D
  polylines, polygons and points.

Pixel conventions
-----------------
The model's 2D coordinates are pixel-corner (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``).
Filled shapes are decided at pixel centres: a pixel belongs to a polygon when its centre does,
by the even-odd rule of the model's docstring, so a hole is left unfilled. A box's outline is
drawn on the outermost pixels *inside* the box: for ``xyxy = [10, 20, 30, 40]`` the outline
covers columns 10 and 29 and rows 20 and 39. Lines and points are drawn through the pixel that
contains them.

Colours come from :func:`category_color`, a hash of the category *name*, so a category keeps
its colour across images, exports and datasets whatever its code.

Examples
--------
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> labels = LabelSet(
...     frames=Frames.from_columns(file_id=["a.png"], width=[64], height=[48]),
...     categories=("car",),
...     boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[8, 8, 40, 30]]),
... )
>>> img = render_image(labels, 0)
>>> img.size, img.getpixel((8, 20)) == category_color("car"), img.getpixel((20, 20))
((64, 48), True, (128, 128, 128))
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import os
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from PIL import Image, ImageDraw, ImageFont

from deepen_export import geometry as geo
from deepen_export._media import ImageSource, ImageSources
from deepen_export._progress import progress
from deepen_export.errors import LossyConversionWarning
from deepen_export.geometry.spatial import (
    CUBOID_EDGES,
    cuboid_corners,
    from_sensor,
    project_points,
    to_sensor,
)
from deepen_export.model import KIND_SPECS, Cameras, FrameRole, LabelSet

__all__ = [
    "GREY",
    "View",
    "category_color",
    "iter_previews",
    "render_bev",
    "render_camera",
    "render_image",
    "views",
    "write_previews",
]

Array = npt.NDArray[Any]
RGB = tuple[int, int, int]

GREY: RGB = (128, 128, 128)
"""Canvas colour when an image's pixels are not available."""

_FILL_ALPHA = 0.35
_NEAR = 0.1  # metres: cuboid edges are clipped to z >= _NEAR in front of a camera
_EDGE_SAMPLES = 16  # points per projected edge, so lens distortion bends the drawn lines
_MIN_SIDE = 480  # scale=None: small images are enlarged until their longer side reaches this
_MAX_SIDE = 8192  # a canvas sized from the labels' extent never exceeds this


def category_color(name: str) -> RGB:
    """A bright colour for category ``name``, the same in every image and every run.

    The hue, saturation and value come from a BLAKE2 hash of the UTF-8 name (not Python's
    ``hash``, which changes between runs, and not the category code, which changes between
    exports).

    Parameters
    ----------
    name : str
        Category name.

    Returns
    -------
    tuple of int
        ``(r, g, b)`` in 0..255.

    Examples
    --------
    >>> category_color("car") == category_color("car")
    True
    >>> category_color("car") != category_color("pedestrian")
    True
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    hue = int.from_bytes(digest[:4], "big") / 2**32
    # three lightness levels, so two names that happen to get close hues still differ
    light = (0.42, 0.55, 0.68)[digest[4] % 3]
    sat = 0.75 + 0.25 * digest[5] / 255
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return (round(r * 255), round(g * 255), round(b * 255))


def _palette(labels: LabelSet) -> Array:
    return np.asarray([category_color(c) for c in labels.categories] or [GREY], dtype=np.uint8)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_color(rgb: Sequence[int]) -> RGB:
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else (255, 255, 255)


# ---------------------------------------------------------------------------------------
# small drawing primitives


def _blend(canvas: Array, mask: Array, color: Array, alpha: float = _FILL_ALPHA) -> None:
    canvas[mask] = (canvas[mask] * (1 - alpha) + color * alpha).round().astype(np.uint8)


def _fill_polygons(canvas: Array, polys: Any, xy: Array, pal: Array) -> None:
    """Fill each polygon label as the writers see it: the one even-odd rule, rasterised."""
    h, w = canvas.shape[:2]
    geoms, _, _ = geo.polygon_geometries(polys.offsets, polys.ring_offsets, xy)
    bounds = shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4))
    for i, (g, bb) in enumerate(zip(geoms, bounds, strict=True)):
        if not np.isfinite(bb).all():  # empty: nothing with an area
            continue
        x0, y0 = np.clip(np.floor(bb[:2]).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(bb[2:]).astype(int) + 1, 0, [w, h])
        mask = geo.polygon_pixel_mask(g, (int(x0), int(y0)), (int(y1 - y0), int(x1 - x0)))
        _blend(canvas[y0:y1, x0:x1], mask, pal[polys.category[i]])


def _line(draw: ImageDraw.ImageDraw, xy: Array, color: Sequence[int], width: int) -> None:
    # a point is drawn in the pixel containing it (Pillow would truncate toward zero instead)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) >= 2:
        pix = np.clip(np.floor(xy), -1e5, 1e5)
        draw.line([(x, y) for x, y in pix.tolist()], fill=tuple(color), width=width)


def _caption(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    lines: Sequence[str],
    color: Sequence[int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    bounds: tuple[int, int],
) -> None:
    if not (np.isfinite(xy[0]) and np.isfinite(xy[1])):
        return
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=1)
    tw, th = right - left + 4, bottom - top + 4
    x = min(max(xy[0], 0), max(bounds[0] - tw, 0))
    y = xy[1] - th if xy[1] - th >= 0 else xy[1]
    y = min(max(y, 0), max(bounds[1] - th, 0))
    draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=tuple(color))
    draw.multiline_text(
        (x + 2 - left, y + 2 - top), text, fill=_text_color(color), font=font, spacing=1
    )


def _label_text(
    labels: LabelSet, kind: str, rows: Array, *, tracks: bool, attributes: bool
) -> list[list[str]]:
    table: Any = labels.table(kind)
    names = np.asarray((*labels.categories, "?"), dtype=object)[table.category[rows]]
    out: list[list[str]] = []
    records = table.take(rows).attribute_records() if attributes else [{}] * len(rows)
    for name, track, rec in zip(names, table.track[rows], records, strict=True):
        head = f"{name} #{track}" if tracks and track >= 0 else str(name)
        out.append([head, *(f"{k}={v}" for k, v in rec.items())])
    return out


def _auto_width(size: tuple[int, int]) -> int:
    return max(1, round(min(size) / 400))


class _Index:
    """Rows of each table grouped by frame, and frame rows by (dataset, file, sensor): built
    once per label set, so drawing every frame is not quadratic in the number of frames."""

    def __init__(self) -> None:
        self.by_frame: dict[str, tuple[Array, Array]] = {}
        self.by_key: dict[tuple[str, str, str], int] | None = None

    def rows(self, labels: LabelSet, kind: str, frame: int) -> Array:
        if kind not in self.by_frame:
            fr = labels.table(kind).frame  # type: ignore[attr-defined]
            order = np.argsort(fr, kind="stable")
            self.by_frame[kind] = (order, fr[order])
        order, sorted_frames = self.by_frame[kind]
        a, b = np.searchsorted(sorted_frames, [frame, frame + 1])
        return order[a:b]

    def frame_row(self, labels: LabelSet, key: tuple[str, str, str]) -> int | None:
        if self.by_key is None:
            f = labels.frames
            keys = zip(f.dataset_id.tolist(), f.file_id.tolist(), f.sensor_id.tolist(), strict=True)
            self.by_key = {}
            for i, k in enumerate(keys):
                self.by_key.setdefault(k, i)
        return self.by_key.get(key)


_INDEXES: dict[int, tuple[weakref.ref[LabelSet], _Index]] = {}


def _index(labels: LabelSet) -> _Index:
    key = id(labels)
    hit = _INDEXES.get(key)
    if hit is not None and hit[0]() is labels:
        return hit[1]
    idx = _Index()
    _INDEXES[key] = (weakref.ref(labels, lambda _: _INDEXES.pop(key, None)), idx)
    return idx


def _kinds(dim: int, *families: str) -> list[str]:
    """Kinds of the registry drawn the same way: their dimension and geometry family."""
    return [k for k, spec in KIND_SPECS.items() if spec.dim == dim and spec.family in families]


def _rows_of(labels: LabelSet, kind: str, frame: int) -> Array:
    return _index(labels).rows(labels, kind, frame)


# ---------------------------------------------------------------------------------------
# 2D


def _canvas_size(labels: LabelSet, frame: int) -> tuple[int, int]:
    w, h = int(labels.frames.width[frame]), int(labels.frames.height[frame])
    if w > 0 and h > 0:
        return w, h
    for r in _rows_of(labels, "masks2d", frame):
        return int(labels.masks2d.width[r]), int(labels.masks2d.height[r])
    extents = [np.zeros((1, 2))]
    extents.append(labels.boxes.xyxy[_rows_of(labels, "boxes", frame)].reshape(-1, 2))
    for kind in _kinds(2, "polygon", "polyline", "point"):
        t: Any = labels.table(kind)
        extents.append(t.take(_rows_of(labels, kind, frame)).coords)
    xy = np.concatenate(extents)
    hi = np.clip(xy[np.isfinite(xy).all(axis=1)].max(axis=0), 0, _MAX_SIDE - 16)
    return max(64, int(np.ceil(hi[0])) + 16), max(64, int(np.ceil(hi[1])) + 16)


def _draw_2d(
    canvas: Array,
    labels: LabelSet,
    frame: int,
    *,
    tracks: bool,
    attributes: bool,
    width: int | None,
    scale: int = 1,
) -> Image.Image:
    """Draw the 2D labels of ``frame`` onto ``canvas`` (h, w, 3) uint8, in place; return an Image.

    Label coordinates are multiplied by ``scale`` (the canvas is already enlarged).
    """
    h, w = canvas.shape[:2]
    lw = width or _auto_width((w, h))
    pal = _palette(labels)
    for r in _rows_of(labels, "masks2d", frame):
        mask = labels.masks2d.mask(int(r))
        if mask.shape != (h, w):
            mask = np.asarray(
                Image.fromarray(mask.astype(np.int32), mode="I").resize(
                    (w, h), Image.Resampling.NEAREST
                )
            )
        painted = mask >= 0
        canvas[painted] = (
            canvas[painted] * (1 - _FILL_ALPHA) + pal[mask[painted]] * _FILL_ALPHA
        ).astype(np.uint8)

    polys = labels.polygons.take(_rows_of(labels, "polygons", frame))
    poly_xy = polys.coords * scale
    _fill_polygons(canvas, polys, poly_xy, pal)

    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for i in range(len(polys)):
        for j in range(polys.offsets[i], polys.offsets[i + 1]):
            ring = poly_xy[polys.ring_offsets[j] : polys.ring_offsets[j + 1]]
            _line(draw, np.vstack([ring, ring[:1]]), pal[polys.category[i]], lw)

    lines = labels.polylines.take(_rows_of(labels, "polylines", frame))
    line_xy = lines.coords * scale
    for i in range(len(lines)):
        for j in range(lines.offsets[i], lines.offsets[i + 1]):
            part = line_xy[lines.part_offsets[j] : lines.part_offsets[j + 1]]
            _line(draw, part, pal[lines.category[i]], lw + 1)

    box_xy = labels.boxes.take(_rows_of(labels, "boxes", frame)).xyxy * scale
    codes = labels.boxes.category[_rows_of(labels, "boxes", frame)]
    _draw_boxes(draw, box_xy, codes, pal, lw, (w, h))
    pts = labels.points.take(_rows_of(labels, "points", frame))
    rad = lw + 1
    pts_xy = pts.coords * scale
    owner = np.repeat(np.arange(len(pts)), np.diff(pts.offsets))
    finite = np.isfinite(pts_xy).all(axis=1)
    for (x, y), o in zip(np.floor(pts_xy[finite]).tolist(), owner[finite].tolist(), strict=True):
        draw.ellipse((x - rad, y - rad, x + rad, y + rad), fill=tuple(pal[pts.category[o]]))

    font = _font(max(9, min(w, h) // 45))
    anchors: list[tuple[str, Array, Array]] = [
        ("boxes", _rows_of(labels, "boxes", frame), box_xy[:, :2]),
        ("polygons", _rows_of(labels, "polygons", frame), _first_xy(poly_xy, polys, 2)),
        (
            "polylines",
            _rows_of(labels, "polylines", frame),
            _first_xy(line_xy, lines, 2, first=True),
        ),
        # beside a label's first point rather than over it
        (
            "points",
            _rows_of(labels, "points", frame),
            _first_xy(pts_xy, pts, 1, first=True) + np.array([rad + 3, rad + 6]),
        ),
    ]
    _captions(draw, labels, frame, anchors, pal, font, tracks=tracks, attributes=attributes)
    return img


def _captions(
    draw: ImageDraw.ImageDraw,
    labels: LabelSet,
    frame: int,
    anchors: list[tuple[str, Array, Array]],
    pal: Array,
    font: Any,
    *,
    tracks: bool,
    attributes: bool,
) -> None:
    """Each label's caption at its anchor; the frame's scene labels along the bottom."""
    w, h = draw.im.size
    for kind, rows, xy in anchors:
        if len(rows) == 0:
            continue
        texts = _label_text(labels, kind, rows, tracks=tracks, attributes=attributes)
        codes = labels.table(kind).category[rows]  # type: ignore[attr-defined]
        for t, (x, y), code in zip(texts, xy.tolist(), codes, strict=True):
            _caption(draw, (x, y), t, pal[code], font, (w, h))
    scenes = _rows_of(labels, "scenes", frame)
    if len(scenes):
        texts = _label_text(labels, "scenes", scenes, tracks=tracks, attributes=attributes)
        _caption(draw, (0, h), [" · ".join(t) for t in texts], (32, 32, 32), font, (w, h))


def _draw_boxes(
    draw: ImageDraw.ImageDraw,
    box_xy: Array,
    codes: Array,
    pal: Array,
    lw: int,
    size: tuple[int, int],
) -> None:
    """Outline each box on the outermost pixels whose centres are inside it."""
    w, h = size
    pix = np.ceil(box_xy - 0.5)
    pix[:, 2:] = np.maximum(pix[:, 2:] - 1, pix[:, :2])
    # edges beyond the canvas stay beyond it; Pillow needs coordinates that fit a C int
    pix = np.clip(pix, -lw - 1, [w + lw, h + lw, w + lw, h + lw])
    finite: Array = np.logical_and.reduce(np.isfinite(pix), axis=1)
    for (x0, y0, x1, y1), code, ok in zip(pix.tolist(), codes, finite, strict=True):
        if ok:
            draw.rectangle((x0, y0, x1, y1), outline=tuple(pal[code]), width=lw)


def _first_xy(coords: Array, table: Any, levels: int, *, first: bool = False) -> Array:
    """Top-left corner of each label's vertices, or its first vertex (where its caption goes)."""
    n = len(table)
    if n == 0:
        return np.zeros((0, 2))
    idx = table.offsets
    if levels == 2:
        inner = table.ring_offsets if hasattr(table, "ring_offsets") else table.part_offsets
        idx = inner[idx]
    counts = np.diff(idx)
    out = np.full((n, 2), np.nan)
    has = counts > 0
    if has.any() and len(coords):
        start = idx[:-1][has]
        out[has] = coords[start] if first else np.minimum.reduceat(coords, start, axis=0)
    return np.nan_to_num(out)


def _open_image(store: ImageSource, *names: str) -> Any:
    """``store.open(*names)``; an unreadable file is a warning (drawn grey), not an abort."""
    try:
        return store.open(*names)
    except (OSError, SyntaxError, ValueError) as exc:  # PIL: UnidentifiedImageError, ...
        warnings.warn(
            f"unreadable image {names[0]!r} ({exc}): drawn on a grey canvas",
            LossyConversionWarning,
            stacklevel=2,
        )
        return None


@contextlib.contextmanager
def _image_store(images: ImageSources | ImageSource) -> Iterator[ImageSource]:
    if isinstance(images, ImageSource):
        yield images
        return
    with ImageSource(images, by_basename=True) as store:
        yield store


def _auto_scale(w: int, h: int, scale: int | None) -> int:
    if scale is not None:
        return max(1, int(scale))
    longest = max(w, h, 1)
    return 1 if longest >= _MIN_SIDE else min(8, -(-_MIN_SIDE // longest))


def _upscale(canvas: Array, k: int) -> Array:
    return canvas if k == 1 else np.ascontiguousarray(canvas.repeat(k, axis=0).repeat(k, axis=1))


def render_image(
    labels: LabelSet,
    frame: int,
    *,
    image: Image.Image | None = None,
    images: ImageSources | ImageSource = None,
    tracks: bool = False,
    attributes: bool = False,
    line_width: int | None = None,
    scale: int | None = 1,
) -> Image.Image:
    """The 2D labels of one frame drawn over its image.

    Parameters
    ----------
    labels : LabelSet
        Labels to draw from.
    frame : int
        Row of ``labels.frames``.
    image : PIL.Image.Image, optional
        The frame's pixels; when absent they are looked up in ``images`` by ``file_id``
        (then by its base name), and failing that a grey canvas of the frame's size is used
        (its size from ``Frames.width``/``height``, else the 2D painting, else the labels' extent).
    images : path or list of paths, optional
        Folders and zip files holding the dataset's images.
    tracks : bool
        Add the track number (``car #4``) to each caption.
    attributes : bool
        Add one ``key=value`` line per attribute to each caption.
    line_width : int, optional
        Line width in pixels (default: 1 per 400 pixels of the shorter side, at least 1).
    scale : int or None
        Enlarge the picture this many times (pixels repeated, labels drawn at the new size);
        ``None`` enlarges images whose longer side is under 480 pixels up to about that.

    Returns
    -------
    PIL.Image.Image
        RGB image of the frame's size times ``scale``.

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> labels = LabelSet(frames=Frames.from_columns(file_id=["a"], width=[60], height=[40]))
    >>> render_image(labels, 0).size, render_image(labels, 0, scale=None).size
    ((60, 40), (480, 320))
    """
    if image is None:
        with _image_store(images) as store:
            image = _open_image(store, str(labels.frames.file_id[frame]))
    if image is None:
        w, h = _canvas_size(labels, frame)
        canvas = np.full((h, w, 3), GREY, dtype=np.uint8)
    else:
        canvas = np.array(image.convert("RGB"), dtype=np.uint8)
    k = _auto_scale(canvas.shape[1], canvas.shape[0], scale)
    return _draw_2d(
        _upscale(canvas, k),
        labels,
        frame,
        tracks=tracks,
        attributes=attributes,
        width=line_width,
        scale=k,
    )


# ---------------------------------------------------------------------------------------
# 3D

# corner indices of spatial.cuboid_corners: the front (+x) face is 0-1-5-4, the bottom 0-1-2-3
_FRONT_CROSS = np.array([[0, 5], [1, 4]])
_BOTTOM = np.array([0, 1, 2, 3])


def _project(cams: Cameras, camera: int, points: Array) -> Array:
    """Camera-frame points to the model's pixel-corner coordinates (the calibration's
    OpenCV-style intrinsics put integer coordinates at pixel centres)."""
    uv, _ = project_points(
        points,
        cams.fx[camera],
        cams.fy[camera],
        cams.cx[camera],
        cams.cy[camera],
        model=str(cams.model[camera]),
        distortion=cams.distortion[camera],
    )
    return uv + 0.5


def _device_pose(labels: LabelSet, frame: int) -> tuple[Array, Array]:
    rows = _rows_of(labels, "poses", frame)
    if len(rows):
        return labels.poses.position[rows[0]], labels.poses.quat[rows[0]]
    return np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])


def _centre_of(*clouds: Array) -> Array:
    for xyz in clouds:
        ok = xyz[np.isfinite(xyz).all(axis=1)]
        if len(ok):
            return np.asarray(np.median(ok, axis=0), dtype=np.float64)
    return np.zeros(3)


def _cuboid_corners_world(labels: LabelSet, frame: int) -> tuple[Array, Array]:
    """Corners ``(n, 8, 3)`` in the world frame and the cuboid rows, of one LiDAR frame."""
    rows = _rows_of(labels, "cuboids", frame)
    c = labels.cuboids
    corners = cuboid_corners(c.center[rows], c.size[rows], c.quat[rows])
    if c.frame_of_reference == "lidar" and len(rows):
        pos, q = _device_pose(labels, frame)
        corners = from_sensor(corners, pos, q)
    return corners, rows


def _clip_segments(a: Array, b: Array, near: float) -> tuple[Array, Array, Array]:
    """Segments ``a -> b`` (camera frame) cut to ``z >= near``; returns (a', b', kept)."""
    za, zb = a[:, 2], b[:, 2]
    keep = (za >= near) | (zb >= near)
    t = np.divide(near - za, zb - za, out=np.zeros_like(za), where=zb != za)
    a2 = np.where((za < near)[:, None], a + t[:, None] * (b - a), a)
    b2 = np.where((zb < near)[:, None], a + t[:, None] * (b - a), b)
    return a2[keep], b2[keep], keep


def render_camera(
    labels: LabelSet,
    camera: int,
    *,
    image: Image.Image | None = None,
    images: ImageSources | ImageSource = None,
    tracks: bool = False,
    attributes: bool = False,
    line_width: int | None = None,
    scale: int | None = 1,
) -> Image.Image:
    """Cuboids of a LiDAR frame projected into one of its cameras, over the camera image.

    Each cuboid is drawn with its 12 edges and a cross on its front face (the face its heading,
    the box's +x axis, points out of). Edges are clipped at 0.1 m in front of the camera and
    sampled along their length before projection, so lens distortion bends them as it bends the
    image. 3D polylines, polygons and points of the frame are projected the same way, and the
    2D labels of the same camera image (the frame row with the LiDAR frame's ``file_id`` and the
    camera's ``sensor_id``) are drawn too.

    Parameters
    ----------
    labels : LabelSet
        Labels with calibration (``labels.cameras``; ``labels.poses`` for LiDAR-frame cuboids).
    camera : int
        Row of ``labels.cameras``.
    image, images, tracks, attributes, line_width, scale
        As in :func:`render_image`; the image is looked up by the camera's ``image_path``
        (then its base name, then the frame's ``file_id``).

    Returns
    -------
    PIL.Image.Image

    Examples
    --------
    >>> from deepen_export.model import Cameras, Frames, LabelSet
    >>> cams = Cameras.from_columns(frame=[0], sensor_id=["camera_0"], fx=[100.0], fy=[100.0],
    ...     cx=[50.0], cy=[40.0], position=[[0, 0, 0]], quat=[[0, 0, 0, 1]])
    >>> labels = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"]), cameras=cams)
    >>> render_camera(labels, 0).size
    (100, 80)
    """
    cams = labels.cameras
    frame = int(cams.frame[camera])
    twin = _camera_frame_row(labels, frame, str(cams.sensor_id[camera]))
    canvas = _camera_canvas(labels, camera, twin, image, images)
    h0, w0 = canvas.shape[:2]
    zoom = _auto_scale(w0, h0, scale)
    canvas = _upscale(canvas, zoom)
    h, w = canvas.shape[:2]
    lw = line_width or _auto_width((w, h))
    if twin is not None:
        img = _draw_2d(
            canvas, labels, twin, tracks=tracks, attributes=attributes, width=lw, scale=zoom
        )
    else:
        img = Image.fromarray(canvas)
    limit = 2.0 * np.hypot(w0, h0) / min(cams.fx[camera], cams.fy[camera])
    pen = _Projector(ImageDraw.Draw(img), cams, camera, zoom, limit)
    pal = _palette(labels)
    _draw_3d_lines(pen, labels, frame, pal, lw + 1)
    _draw_3d_points(pen, labels, frame, pal, lw + 1, (w, h))
    corners, rows = _cuboid_corners_world(labels, frame)
    if len(rows) == 0:
        return img
    codes = labels.cuboids.category[rows]
    segs = np.concatenate([CUBOID_EDGES, _FRONT_CROSS])
    pen.segments(
        corners[:, segs[:, 0]].reshape(-1, 3),
        corners[:, segs[:, 1]].reshape(-1, 3),
        pal[np.repeat(codes, len(segs))],
        lw,
    )
    if tracks or attributes:
        texts = _label_text(labels, "cuboids", rows, tracks=tracks, attributes=attributes)
        pen.captions(corners.mean(axis=1), texts, pal[codes], (w, h))
    return img


def _camera_canvas(
    labels: LabelSet,
    camera: int,
    twin: int | None,
    image: Image.Image | None,
    images: ImageSources | ImageSource,
) -> Array:
    """The camera image as an array, or a grey canvas of its size when it cannot be found."""
    cams = labels.cameras
    if image is None:
        file_id = str(labels.frames.file_id[int(cams.frame[camera])])
        with _image_store(images) as store:
            image = _open_image(store, str(cams.image_path[camera]), file_id)
    if image is not None:
        return np.array(image.convert("RGB"), dtype=np.uint8)
    w, h = int(cams.width[camera]), int(cams.height[camera])
    if (w <= 0 or h <= 0) and twin is not None:
        w, h = int(labels.frames.width[twin]), int(labels.frames.height[twin])
    if w <= 0 or h <= 0:
        w, h = max(1, round(2 * cams.cx[camera])), max(1, round(2 * cams.cy[camera]))
    return np.full((h, w, 3), GREY, dtype=np.uint8)


@dataclass
class _Projector:
    """Draws world-frame geometry through one camera (distortion included) onto a picture."""

    draw: ImageDraw.ImageDraw
    cams: Cameras
    camera: int
    zoom: int
    limit: float

    def local(self, xyz: Array) -> Array:
        return to_sensor(xyz, self.cams.position[self.camera], self.cams.quat[self.camera])

    def uv(self, local: Array) -> Array:
        # pixel-corner coordinates scale exactly with the picture
        return _project(self.cams, self.camera, local) * self.zoom

    def segments(self, a_world: Array, b_world: Array, colors: Array, width: int) -> None:
        a, b, kept = _clip_segments(self.local(a_world), self.local(b_world), _NEAR)
        t = np.linspace(0.0, 1.0, _EDGE_SAMPLES)
        samples = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
        uv = self.uv(samples)
        # beyond the lens's field of view a distortion polynomial folds back: cut the line there
        ok = np.hypot(samples[..., 0], samples[..., 1]) / samples[..., 2] <= self.limit
        for s, color in enumerate(colors[kept]):
            run = ok[s]
            cuts = np.flatnonzero(np.diff(run.astype(np.int8))) + 1
            for part, good in zip(np.split(uv[s], cuts), np.split(run, cuts), strict=True):
                if good[0]:
                    _line(self.draw, part, color, width)

    def captions(
        self, centres_world: Array, texts: list[list[str]], colors: Array, size: tuple[int, int]
    ) -> None:
        w, h = size
        centres = self.local(centres_world)
        centre = self.uv(centres)
        in_front = centres[:, 2] > _NEAR
        font = _font(max(9, min(w, h) // 45))
        for i in np.flatnonzero(in_front & np.isfinite(centre).all(axis=1)):
            x, y = centre[i]
            if -w <= x <= 2 * w and -h <= y <= 2 * h:
                _caption(self.draw, (float(x), float(y)), texts[i], colors[i], font, (w, h))


def _draw_3d_lines(pen: _Projector, labels: LabelSet, frame: int, pal: Array, width: int) -> None:
    for kind in _kinds(3, "polyline", "polygon"):
        sel: Any = labels.table(kind).take(_rows_of(labels, kind, frame))
        if len(sel) == 0:
            continue
        ring = KIND_SPECS[kind].family == "polygon"
        inner = sel.ring_offsets if ring else sel.part_offsets
        start, end = _segment_ends(inner, closed=ring)
        owner = np.repeat(np.arange(len(sel)), np.diff(sel.offsets))
        part_of = np.repeat(np.arange(len(inner) - 1), np.diff(inner))
        colors = pal[sel.category[owner[part_of[start]]]]
        pen.segments(sel.coords[start], sel.coords[end], colors, width)


def _draw_3d_points(
    pen: _Projector, labels: LabelSet, frame: int, pal: Array, rad: int, size: tuple[int, int]
) -> None:
    pts3: Any = labels.points3d.take(_rows_of(labels, "points3d", frame))
    if not len(pts3):
        return
    w, h = size
    local = pen.local(pts3.coords)
    front = local[:, 2] > _NEAR
    uv = pen.uv(local[front])
    owner = np.repeat(np.arange(len(pts3)), np.diff(pts3.offsets))[front]
    for (x, y), o in zip(np.floor(uv).tolist(), owner.tolist(), strict=True):
        if np.isfinite(x) and np.isfinite(y) and -rad <= x <= w + rad and -rad <= y <= h + rad:
            pen.draw.ellipse(
                (x - rad, y - rad, x + rad, y + rad), fill=tuple(pal[pts3.category[o]])
            )


def _segment_ends(inner: Array, *, closed: bool) -> tuple[Array, Array]:
    """Vertex indices ``(start, end)`` of every segment of ragged parts; ``closed`` adds the
    segment from each ring's last vertex back to its first."""
    n = int(inner[-1]) if len(inner) else 0
    start = np.arange(n)
    end = start + 1
    last = inner[1:] - 1
    nonempty = inner[1:] > inner[:-1]
    if closed:
        end[last[nonempty]] = inner[:-1][nonempty]
        return start, end
    keep = np.ones(n, dtype=bool)
    keep[last[nonempty]] = False
    return start[keep], end[keep]


def _camera_frame_row(labels: LabelSet, frame: int, sensor: str) -> int | None:
    f = labels.frames
    key = (str(f.dataset_id[frame]), str(f.file_id[frame]), sensor)
    row = _index(labels).frame_row(labels, key)
    return row if row != frame else None


def _bev_extent(points: Array, corners: Array) -> float:
    reach = [10.0]
    c = corners[..., :2].reshape(-1, 2)
    c = c[np.isfinite(c).all(axis=1)]
    if len(c):
        reach.append(float(np.abs(c).max()) + 2)
    p = points[:, :2][np.isfinite(points[:, :2]).all(axis=1)]
    if len(p):
        reach.append(float(np.quantile(np.abs(p).max(axis=1), 0.95)))
    return float(min(np.ceil(max(reach) / 10) * 10, 150.0))


def render_bev(
    labels: LabelSet,
    frame: int,
    *,
    extent: float | None = None,
    size: int = 800,
    tracks: bool = False,
    attributes: bool = False,
    line_width: int | None = None,
) -> Image.Image:
    """Bird's-eye view of one LiDAR frame, in the LiDAR's axes.

    The picture is ``size x size`` pixels and covers ``[-extent, extent]`` metres on both
    axes, ego at the centre, LiDAR x (forward) pointing up and y (left) pointing left: a point
    ``(x, y)`` lands at pixel-corner coordinates ``u = size/2 - y * size / (2 extent)``,
    ``v = size/2 - x * size / (2 extent)``. Points of ``labels.pointclouds`` are dots (in their
    painted category's colour when the frame has point segmentation of the same length, grey
    otherwise); cuboids are their bottom faces with a line from the centre to the front; rings
    every 10 m and a triangle at the ego give the scale.

    Parameters
    ----------
    labels : LabelSet
        Labels; world-frame geometry is moved into the LiDAR frame with ``labels.poses``.
        Without a pose for the frame, the view keeps the world's axes and is centred on the
        median of the frame's points (else of its cuboids).
    frame : int
        Row of ``labels.frames`` (a LiDAR frame).
    extent : float, optional
        Half-width of the view in metres (default: fits the cuboids and 95 % of the points,
        rounded up to 10 m, between 10 and 150 m).
    size : int
        Width and height in pixels.
    tracks, attributes, line_width
        As in :func:`render_image`.

    Returns
    -------
    PIL.Image.Image

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> render_bev(LabelSet(frames=Frames.from_columns(file_id=["0.pcd"])), 0, size=200).size
    (200, 200)
    """
    pos, q = _device_pose(labels, frame)
    pc = labels.pointclouds.take(_rows_of(labels, "pointclouds", frame))
    if len(_rows_of(labels, "poses", frame)) == 0 and labels.cuboids.frame_of_reference != "lidar":
        # no device pose: centre the view on the frame's points (or boxes), axes as they are
        pos = _centre_of(pc.xyz, labels.cuboids.center[_rows_of(labels, "cuboids", frame)])
    pts = to_sensor(pc.xyz, pos, q) if len(pc.xyz) else np.zeros((0, 3))
    corners, rows = _cuboid_corners_world(labels, frame)
    corners = to_sensor(corners, pos, q) if len(rows) else np.zeros((0, 8, 3))
    ext = float(extent) if extent else _bev_extent(pts, corners)
    scale = size / (2 * ext)
    lw = line_width or max(1, size // 400)
    pal = _palette(labels)

    def to_px(xy: Array) -> Array:
        return np.stack([size / 2 - xy[..., 1] * scale, size / 2 - xy[..., 0] * scale], axis=-1)

    canvas = np.full((size, size, 3), 24, dtype=np.uint8)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for ring in np.arange(10, ext * 1.5, 10):
        r = ring * scale
        c = size / 2 - 0.5
        draw.ellipse((c - r, c - r, c + r, c + r), outline=(60, 60, 60), width=1)
    canvas = np.array(img)

    if len(pts):
        _draw_bev_points(canvas, to_px(pts[:, :2]), _point_colors(labels, frame, len(pts), pal))

    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    c = size / 2 - 0.5
    tri = max(4, size // 100)
    draw.polygon([(c, c - tri * 1.5), (c - tri, c + tri), (c + tri, c + tri)], fill=(255, 255, 255))

    for kind in _kinds(3, "polyline", "polygon", "point"):
        t: Any = labels.table(kind)
        sel = t.take(_rows_of(labels, kind, frame))
        if len(sel) == 0:
            continue
        xy = to_px(to_sensor(sel.coords, pos, q)[:, :2])
        inner = getattr(sel, "part_offsets", getattr(sel, "ring_offsets", None))
        owner_parts = np.repeat(np.arange(len(sel)), np.diff(sel.offsets))
        if inner is None:
            owner_pts = np.repeat(np.arange(len(sel)), np.diff(sel.offsets))
            for (x, y), o in zip(np.floor(xy).tolist(), owner_pts.tolist(), strict=True):
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=tuple(pal[sel.category[o]]))
            continue
        for j, o in enumerate(owner_parts.tolist()):
            part = xy[inner[j] : inner[j + 1]]
            if KIND_SPECS[kind].family == "polygon":
                part = np.vstack([part, part[:1]])
            _line(draw, part, pal[sel.category[o]], lw)

    if len(rows):
        foot = to_px(corners[:, _BOTTOM, :2])
        centre = to_px(corners[..., :2].mean(axis=1))
        front = to_px(corners[:, [0, 1, 4, 5], :2].mean(axis=1))
        codes = labels.cuboids.category[rows]
        for i in range(len(rows)):
            color = pal[codes[i]]
            _line(draw, np.vstack([foot[i], foot[i][:1]]), color, lw)
            _line(draw, np.vstack([centre[i], front[i]]), color, lw)
        if tracks or attributes:
            texts = _label_text(labels, "cuboids", rows, tracks=tracks, attributes=attributes)
            font = _font(max(9, size // 70))
            for i in range(len(rows)):
                x, y = foot[i].max(axis=0)
                _caption(draw, (float(x), float(y)), texts[i], pal[codes[i]], font, (size, size))
    return img


def _point_colors(labels: LabelSet, frame: int, n: int, pal: Array) -> Array:
    """Grey points, in their paint category's colour where the frame is painted."""
    colors = np.full((n, 3), 200, dtype=np.uint8)
    seg = labels.point_segmentation
    srow = np.flatnonzero(seg.frame == frame)
    if len(srow):
        codes = seg.category[seg.offsets[srow[0]] : seg.offsets[srow[0] + 1]]
        if len(codes) == n:
            colors[codes >= 0] = pal[codes[codes >= 0]]
    return colors


def _draw_bev_points(canvas: Array, fuv: Array, colors: Array) -> None:
    size = canvas.shape[0]
    finite = np.isfinite(fuv).all(axis=1)
    uv = np.zeros(fuv.shape, dtype=np.int64)
    uv[finite] = np.floor(np.clip(fuv[finite], -1, size))
    inside = finite & (uv >= 0).all(axis=1) & (uv < size).all(axis=1)
    canvas[uv[inside, 1], uv[inside, 0]] = colors[inside]


# ---------------------------------------------------------------------------------------
# every picture of a label set


@dataclass(frozen=True)
class View:
    """One picture to draw: ``kind`` is ``"image"``, ``"camera"`` or ``"bev"``.

    ``row`` is a row of ``labels.frames`` (image, bev) or of ``labels.cameras`` (camera);
    ``name`` is the PNG's path relative to the output folder.
    """

    kind: str
    row: int
    name: str


def views(labels: LabelSet, frames: Sequence[int] | None = None) -> list[View]:
    """The pictures :func:`write_previews` draws, in frame order.

    Every LiDAR frame (a frame with 3D labels, points or calibration) gets a bird's-eye view and
    one picture per camera; every other frame gets its image, except camera images already
    drawn with their LiDAR frame. Names are ``<file_id without extension>.png`` for images
    (``.<sensor_id>.png`` added when a file id has several sensors), ``.bev.png`` and
    ``.<camera>.png`` for LiDAR frames, under a ``<dataset_id>/`` folder when there are several
    datasets.

    Parameters
    ----------
    labels : LabelSet
    frames : sequence of int, optional
        Rows of ``labels.frames`` to draw (default: all).

    Returns
    -------
    list of View

    Examples
    --------
    >>> from deepen_export.model import Frames, LabelSet
    >>> [v.name for v in views(LabelSet(frames=Frames.from_columns(file_id=["a/1.jpg", "2.png"])))]
    ['a/1.png', '2.png']
    """
    f = labels.frames
    wanted = np.ones(len(f), dtype=bool) if frames is None else np.zeros(len(f), dtype=bool)
    if frames is not None:
        wanted[np.asarray(frames, dtype=np.int64)] = True
    lidar = labels.frames.role == FrameRole.LIDAR
    several_datasets = len(set(f.dataset_id.tolist())) > 1
    keys = list(zip(f.dataset_id.tolist(), f.file_id.tolist(), strict=True))
    multi = _dupes(keys)
    covered: set[int] = set()
    cams_by_frame: dict[int, list[int]] = {}
    for c, fr in enumerate(labels.cameras.frame.tolist()):
        cams_by_frame.setdefault(fr, []).append(c)
        twin = _camera_frame_row(labels, fr, str(labels.cameras.sensor_id[c]))
        if twin is not None:
            covered.add(twin)

    def name(row: int, suffix: str) -> str:
        stem = str(Path(str(f.file_id[row])).with_suffix("")).replace("\\", "/")
        prefix = f"{f.dataset_id[row]}/" if several_datasets and f.dataset_id[row] else ""
        return f"{prefix}{stem}{suffix}.png"

    out: list[View] = []
    for row in np.flatnonzero(wanted).tolist():
        if lidar[row]:
            out.append(View("bev", row, name(row, ".bev")))
            for c in cams_by_frame.get(row, []):
                out.append(View("camera", c, name(row, f".{labels.cameras.sensor_id[c]}")))
        elif row not in covered:
            sensor = f".{f.sensor_id[row]}" if keys[row] in multi and f.sensor_id[row] else ""
            out.append(View("image", row, name(row, sensor)))
    return out


def _dupes(keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    dup: set[tuple[str, str]] = set()
    for k in keys:
        (dup if k in seen else seen).add(k)
    return dup


def iter_previews(
    labels: LabelSet,
    *,
    frames: Sequence[int] | None = None,
    images: ImageSources = None,
    tracks: bool = False,
    attributes: bool = False,
    bev_extent: float | None = None,
    bev_size: int = 800,
    scale: int | None = None,
) -> Iterator[tuple[View, Image.Image]]:
    """Draw every :func:`views` picture, one at a time (with a progress bar on a terminal).

    Parameters are those of :func:`write_previews`.

    Yields
    ------
    (View, PIL.Image.Image)
    """
    todo = views(labels, frames)
    opts: dict[str, Any] = {"tracks": tracks, "attributes": attributes}
    with _image_store(images) as store:
        for v in progress(todo, total=len(todo), description="drawing previews"):
            if v.kind == "bev":
                img = render_bev(labels, v.row, extent=bev_extent, size=bev_size, **opts)
            elif v.kind == "camera":
                img = render_camera(labels, v.row, images=store, scale=scale, **opts)
            else:
                img = render_image(labels, v.row, images=store, scale=scale, **opts)
            yield v, img


def write_previews(
    labels: LabelSet,
    dest: str | os.PathLike[str],
    *,
    frames: Sequence[int] | None = None,
    images: ImageSources = None,
    tracks: bool = False,
    attributes: bool = False,
    bev_extent: float | None = None,
    bev_size: int = 800,
    scale: int | None = None,
) -> list[str]:
    """Write one PNG per :func:`views` picture into ``dest`` (replaced as a whole, atomically).

    Parameters
    ----------
    labels : LabelSet
        Labels to draw.
    dest : path
        Output folder.
    frames : sequence of int, optional
        Rows of ``labels.frames`` to draw (default: all).
    images : path or list of paths, optional
        Folders and zip files (the dataset's upload) holding the images; grey canvases where an
        image is missing.
    tracks, attributes : bool
        Captions with track numbers / attribute values.
    bev_extent, bev_size
        Half-width in metres and size in pixels of the bird's-eye views (see :func:`render_bev`).
    scale : int or None
        Enlargement of images and camera pictures; ``None`` (default) enlarges pictures whose
        longer side is under 480 pixels (see :func:`render_image`).

    Returns
    -------
    list of str
        Paths written, relative to ``dest``.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Frames, LabelSet
    >>> labels = LabelSet(frames=Frames.from_columns(file_id=["a.jpg"], width=[640], height=[480]))
    >>> write_previews(labels, tempfile.mkdtemp() + "/preview")
    ['a.png']
    """
    from deepen_export._io import atomic_dir, safe_path

    written: list[str] = []
    with atomic_dir(dest) as tmp:
        for v, img in iter_previews(
            labels,
            frames=frames,
            images=images,
            tracks=tracks,
            attributes=attributes,
            bev_extent=bev_extent,
            bev_size=bev_size,
            scale=scale,
        ):
            path = safe_path(tmp, v.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, format="PNG")
            written.append(v.name)
    return written
