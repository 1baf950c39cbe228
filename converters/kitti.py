"""KITTI object detection format: ``label_2/%06d.txt`` (+ ``calib/``, ``velodyne/``, ``image_2/``).

Output layout::

    dest/
      label_2/000000.txt     one line per object, 15 space-separated columns (KITTI object devkit)
      calib/000000.txt       P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo (3D datasets)
      velodyne/000000.bin    float32 N x 4 (x, y, z, intensity) in the LiDAR frame (if points known)
      image_2/000000.png     copy of the camera image (when ``media``/``images`` is given)
      mapping.json           KITTI index -> Deepen dataset_id / file_id / sensor_id / image
      report.json

Which frames
    3D datasets (the label set has cuboids or device poses): one KITTI frame per LiDAR frame
    (every ``Frames`` row whose sensor is not ``camera_*``), in the order (dataset_id,
    ``Frames.index``, file_id). Frames without labels get an empty label file, so reviewed
    negatives survive. Image datasets: one KITTI frame per image, same order (then sensor).
    Frames whose status says they are not labelled yet are left out and reported ``skipped``
    (KITTI tracking keeps them: frame numbers are positions in the sequence).

3D objects (cuboids)
    Each cuboid goes from Deepen's world frame (``Cuboids.frame_of_reference == "world"``) into
    the chosen camera (``camera``, default ``"camera_0"``) of its frame in one batched product
    (``p_cam = R_cam^T (p_world - t_cam)``, float64, position subtracted first); LiDAR-frame
    cuboids go through the camera pose relative to the device pose. Then, per the KITTI devkit:

    - ``dimensions = h w l`` (``Cuboids.size`` is ``l, w, h``);
    - ``location`` = the box centre moved down by ``h/2`` along camera +y (KITTI's bottom-centre
      reference point, so the devkit's box ``R_y(ry) corner + location`` with height along -y has
      the same centre as ours; boxes whose up axis is more than ``tilt_tolerance`` degrees away
      from camera -y cannot be held exactly and are reported ``changed``);
    - ``rotation_y = atan2(-d_z, d_x)`` with ``d`` the box heading (its +x axis) in camera
      coordinates; ``alpha = rotation_y - atan2(x, z)``; both wrapped to ``[-pi, pi)``;
    - ``bbox``: the 12 cuboid edges (sampled densely when the camera has distortion), cut at the
      near plane z = 0.1 m, projected with the camera's model and distortion; ``x1 y1 x2 y2`` is
      their extent clipped to ``[0, W-1] x [0, H-1]`` (pixel-index convention, as KITTI's own
      labels and ``P2``); ``W, H`` from ``Cameras.width/height``, else the camera frame's size;
    - ``truncated = 1 - clipped area / unclipped area`` of that projected box (0 = inside);
    - ``occluded`` from an attribute (``occlusion_attribute``, values mapped by ``occlusion_map``
      or read as integers) else ``0``: KITTI's evaluation counts 0 (and -1) objects but ignores
      3 ("unknown"), and datumaro's ``kitti``/``kitti3d`` importers read any non-zero value,
      -1 included, as occluded; 0 is the one value both read as "counts, not occluded";
    - objects behind the camera or wholly outside the image follow ``outside``: ``"keep"``
      (default; the row keeps its 3D fields, ``bbox = -1 -1 -1 -1``, ``truncated = 1``: a
      zero-height box the KITTI evaluation ignores in 2D while 3D training keeps the object) or
      ``"drop"`` (left out); both are reported.

    ``camera=None`` writes LiDAR-only KITTI: the "camera" is the LiDAR with KITTI's axis swap
    (``x_cam = -y_lidar, y_cam = -z_lidar, z_cam = x_lidar``), bboxes ``-1 -1 -1 -1``,
    ``P0..P3 = [I | 0]``.

2D boxes
    Image datasets: each box becomes a 2D-only row (3D fields at the ``writeLabels.m`` defaults
    ``h w l = -1 -1 -1``, ``x y z = -1000 -1000 -1000``, ``ry = alpha = -10``), its ``xyxy``
    clipped to the image ``[0, W] x [0, H]`` (pixel-corner, the model's convention) and
    ``truncated`` computed as above. In 3D datasets the 2D boxes of the chosen camera are written
    the same way into that frame's file; boxes of other cameras are reported and left out. A
    camera box whose label id also has a cuboid in that frame is the same object: it gets no row
    of its own (``box_source`` chooses which 2D box the object's row carries).

Calibration (``calib/%06d.txt``)
    ``P2 = [K | 0]`` of the chosen camera; ``P0``, ``P1`` and ``P3`` are copies of ``P2`` (one
    camera per export; KITTI loaders read ``P2``); ``R0_rect = I``;
    ``Tr_velo_to_cam`` = LiDAR -> camera from the device and camera poses;
    ``Tr_imu_to_velo = [I | 0]`` (Deepen has no IMU). Distortion cannot be expressed in ``P2``;
    a camera with non-zero distortion is reported once.

Numbers are written with ``precision`` decimals (default 2, as KITTI's ground truth);
``occluded`` as an integer. Types come from ``category_map`` (a dict, on the CLI a JSON object:
our category -> KITTI type, ``None`` / ``null`` drops the category) or, by default: a category naming a KITTI class
(case, spaces, ``-`` and ``_`` ignored) takes KITTI's spelling (``dontcare`` -> ``DontCare``,
``person sitting`` -> ``Person_sitting``), any other its name with the first letter upper-cased
and spaces replaced by ``_`` (``traffic cone`` -> ``Traffic_cone``). The reader maps KITTI
classes back to lower case and other types by lower-casing their first letter. A blank category
is written ``Unnamed``; two categories whose default types would be equal (``car``, ``Car``,
``CAR``; ``has space``, ``has_space``) are kept apart, the later ones as ``Car_2``, ``Car_3``; every
default type that does not read back as its category is a ``changed`` report entry
(:mod:`converters._names`).

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Boxes, Frames, LabelSet
>>> frames = Frames.from_columns(file_id=["a.png"], width=[100], height=[50])
>>> boxes = Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[10, 5, 30, 25]])
>>> out = tempfile.mkdtemp() + "/kitti"
>>> r = write(LabelSet(frames=frames, categories=("car",), boxes=boxes), out)
>>> Path(out, "label_2", "000000.txt").read_text()
'Car 0.00 0 -10.00 10.00 5.00 30.00 25.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00\\n'
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from converters import _kitti_rows as kr
from converters import _layout3d as l3
from converters._base import dump_json
from converters._kitti_rows import DEFAULT_CAMERA, KITTI_TYPES
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet

__all__ = ["DEFAULT_CAMERA", "KITTI_TYPES", "read", "write"]

FORMAT = "kitti"


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    camera: str | None = DEFAULT_CAMERA,
    outside: kr.Outside = "keep",
    category_map: Mapping[str, str | None] | None = None,
    occlusion_attribute: str | None = None,
    occlusion_map: Mapping[str, int] | None = None,
    assume_identity_pose: bool = False,
    tilt_tolerance: float = 5.0,
    precision: int = 2,
    box_source: kr.BoxSource = "projection",
    velodyne: bool | None = None,
    media: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``labels`` as KITTI object labels (and calibration, points, images) under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        Cuboids (with device poses and camera calibration) and/or 2D boxes.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds KITTI cannot hold (polygons, lanes, ...).
    camera : str or None
        Camera whose frame and image the labels are written in (``"camera_0"``); ``None`` for
        LiDAR-only KITTI (module docstring).
    outside : {"keep", "drop"}
        Objects behind the camera or outside its image: kept with ``bbox -1 -1 -1 -1`` or dropped.
    category_map : dict
        Our category -> KITTI type (``None`` drops it); default: capitalized names (the CLI
        takes a JSON object, ``-O 'category_map={"car": "Van"}'``).
    occlusion_attribute, occlusion_map
        Attribute holding occlusion and a mapping of its values to 0..3 (values read as
        integers when no map is given); otherwise ``occluded = 0``.
    assume_identity_pose : bool
        Treat frames without a device pose as having the identity pose (world = LiDAR).
    tilt_tolerance : float
        Degrees a box's up axis may deviate from the camera's vertical before it is reported.
    precision : int
        Decimals of the label numbers (2, as KITTI's ground truth).
    box_source : {"projection", "label"}
        A camera box whose label also has a cuboid in the frame: the object's row takes the
        projected cuboid's bbox and the drawn box is reported (``"projection"``), or the row
        takes the drawn box (``"label"``). Either way the object has one row.
    velodyne : bool or None
        Write ``velodyne/*.bin`` from ``labels.pointclouds`` (None: when points are known).
    media : path
        The dataset's upload zip or folder, to copy the camera images into ``image_2``.
    images : path
        Folder of the images (image datasets), also copied into ``image_2``.

    Returns
    -------
    Report
        Files written and every label dropped, clipped, kept outside the image or changed.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["1.png"]), categories=("person sitting",),
    ...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["p:1"], xyxy=[[1, 2, 3, 4]]))
    >>> out = tempfile.mkdtemp() + "/k"
    >>> write(ls, out).written
    {'frames': 1, 'objects': 1}
    >>> Path(out, "label_2", "000000.txt").read_text().split()[0]
    'Person_sitting'
    """
    report, tmp = out.report, out.folder
    lay, cal, rows = kr.build_rows(
        labels,
        camera=camera,
        outside=outside,
        category_map=category_map,
        occlusion_attribute=occlusion_attribute,
        occlusion_map=occlusion_map,
        assume_identity_pose=assume_identity_pose,
        tilt_tolerance=tilt_tolerance,
        report=report,
        box_source=box_source,
        skip_unlabelled=True,
    )
    k = len(lay.rows)
    kr.report_distortion(cal, camera, report)
    names = [f"{i:06d}" for i in range(k)]
    texts = kr.group_text(rows.frame, kr.object_lines(rows, precision), k)
    kr.write_texts(
        tmp, "label_2", [f"label_2/{n}.txt" for n in names], texts, report, "label_2 files"
    )
    if cal is not None:
        calib = kr.calib_text(cal)
        kr.write_texts(
            tmp, "calib", [f"calib/{n}.txt" for n in names], calib, report, "calib files"
        )
        pts = l3.lidar_points(labels, lay, cal) if velodyne is not False else {}
        kr.write_scans(tmp, {i: f"velodyne/{names[i]}.bin" for i in pts}, pts, report)
        if not pts and velodyne:
            report.add("skipped", "no LiDAR points in the label set: velodyne/ not written")
    sources = kr.image_sources(lay, cal, labels.frames)
    # always there: datumaro's kitti3d importer refuses a folder without image_2/
    (tmp / "image_2").mkdir()
    targets = [f"image_2/{n}{l3.image_ext(rel)}" for n, rel in zip(names, sources, strict=True)]
    copied = kr.copy_images(media if media is not None else images, tmp, targets, sources,
                            lay, labels.frames, report)  # fmt: skip
    mapping = {
        "format": FORMAT,
        "camera": camera if lay.three_d else None,
        "frames": kr.mapping_frames(names, lay, cal, sources, labels.frames),
    }
    dump_json(mapping, tmp / "mapping.json", indent=1)
    report.files.append("mapping.json")
    report.written = {"frames": k, "objects": len(rows.frame)}
    if copied:
        report.written["images"] = copied


# -- read -------------------------------------------------------------------------------


def read(
    source: str | os.PathLike[str],
    /,
    *,
    category_map: Mapping[str, str] | str | None = None,
    frame: Literal["lidar", "camera"] = "lidar",
) -> LabelSet:
    """Read a KITTI object folder (``label_2`` + optional ``calib``, ``mapping.json``).

    Rows with 3D fields become cuboids, the others (and ``DontCare``) 2D boxes. With calib files
    and ``frame="lidar"`` the cuboids are moved into the LiDAR frame (``frame_of_reference ==
    "lidar"``) and the calibration comes back as identity device poses plus the camera's pose in
    the LiDAR frame, so writing the result again gives the same files; otherwise cuboids stay in
    the camera frame (``frame_of_reference == "camera"``). Types map back through
    ``category_map`` (KITTI type -> name) or by lower-casing their first letter. Label ids are
    ``<category>:<n>`` numbered per category in file order.

    Examples
    --------
    >>> import tempfile
    >>> from deepen_export.model import Boxes, Frames, LabelSet
    >>> ls = LabelSet(frames=Frames.from_columns(file_id=["1.png"]), categories=("car",),
    ...               boxes=Boxes.from_columns(frame=[0], category=[0], label_id=["car:1"], xyxy=[[1, 2, 3, 4]]))
    >>> out = tempfile.mkdtemp() + "/k"
    >>> _ = write(ls, out)
    >>> back = read(out)
    >>> back.categories, back.boxes.xyxy.tolist(), back.frames.file_id.tolist()
    (('car',), [[1.0, 2.0, 3.0, 4.0]], ['1.png'])
    """
    root = Path(source)
    label_dir = root / "label_2"
    if not label_dir.is_dir():
        raise ConversionError(f"{root} has no label_2 folder", format=FORMAT)
    files = sorted(label_dir.glob("*.txt"))
    stems = [p.stem for p in files]
    mapping_path = root / "mapping.json"
    mapping = json.loads(mapping_path.read_text("utf-8")) if mapping_path.is_file() else {}
    info = {m["kitti"]: m for m in mapping.get("frames", [])}
    camera = str(mapping.get("camera") or DEFAULT_CAMERA)
    types_l, values_l, frame_l = [], [], []
    for i, p in enumerate(files):
        t, v = kr.parse_lines(p.read_text("utf-8").splitlines(), 0)
        types_l.append(t)
        values_l.append(v)
        frame_l.append(np.full(len(t), i, dtype=np.int64))
    types = np.concatenate(types_l) if types_l else np.zeros(0, dtype=object)
    values = np.concatenate(values_l) if values_l else np.zeros((0, 14))
    frames_of = np.concatenate(frame_l) if frame_l else np.zeros(0, dtype=np.int64)
    calibs = [
        kr.parse_calib((root / "calib" / f"{s}.txt").read_text("utf-8"))
        if (root / "calib" / f"{s}.txt").is_file()
        else None
        for s in stems
    ]
    return kr.rows_to_labelset(
        stems, info, camera, types, values, frames_of, calibs, category_map, frame
    )
