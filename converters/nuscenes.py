"""nuScenes v1.0: a 3D sequence as the folder ``nuscenes-devkit`` loads (``NuScenes(version, dataroot)``).

Output layout::

    dest/
      v1.0-deepen/                 the tables (``version`` option), one JSON list each:
        scene log sample sample_data ego_pose sensor calibrated_sensor instance
        sample_annotation category attribute visibility map [lidarseg]
      samples/LIDAR_TOP/<scene>__LIDAR_TOP__<timestamp>.pcd.bin   float32 N x 5: x y z intensity ring
      samples/CAMERA_0/<scene>__CAMERA_0__<timestamp>.png          images copied from the upload
      lidarseg/v1.0-deepen/<lidar sample_data token>_lidarseg.bin  uint8 class index per point
      maps/<token>.png             placeholder map (the devkit opens one per log)
      mapping.json                 Deepen ids of every token, lens distortion (nuScenes has no field)
      colormap.json                category name -> RGB, for ``NuScenes(..., colormap=...)``
      report.json

What goes where
    - one ``scene`` (and ``log``) per Deepen dataset; one ``sample`` per LiDAR frame in sequence
      order (frames not labelled yet are left out and reported), ``prev``/``next`` linked;
      ``timestamp`` = the device pose's, in microseconds (frames without strictly increasing
      timestamps are written 0.1 s apart and reported).
    - ``sample_data``: the LiDAR scan of each sample (``LIDAR_TOP``) and each camera image
      (channel = sensor id upper-cased, ``channels`` renames), all key frames, ``prev``/``next``
      per channel. Scans are the uploaded points in the LiDAR frame, ``ring`` = 0 (Deepen has
      none), intensity 0 when unknown. Camera sample_data share their sample's ``ego_pose``.
    - ``ego_pose`` = the device pose (or ``device * lidar_to_ego^-1``); ``calibrated_sensor``: the
      LiDAR's (identity, or ``lidar_to_ego``) and each camera's pose in the ego frame with
      ``camera_intrinsic``; a new record only where a camera's mounting or intrinsics change
      (beyond 1e-6). Lens distortion has no nuScenes field: it goes to ``mapping.json`` and the
      report says so.
    - ``instance``: one per track (dataset + ``label_id``), category of its first annotation;
      ``sample_annotation``: ``translation`` = cuboid centre in the global frame (= Deepen's world
      frame), ``size`` = ``[w, l, h]``, ``rotation`` = ``[w, x, y, z]`` (``w >= 0``),
      ``num_lidar_pts`` = uploaded points inside the box, ``num_radar_pts`` = 0,
      ``attribute_tokens`` = one attribute ``<key>.<value>`` per Deepen attribute,
      ``visibility_token`` from ``visibility_attribute`` (values mapped by ``visibility_map`` to
      ``"1"``..``"4"`` or ``v0-40``.. ``v80-100``; else an ``unavailable`` record), ``prev``/``next``
      along the track.
    - ``category``: our categories, names kept, or renamed by ``category_map`` (our name ->
      nuScenes category such as ``vehicle.car``, from which nuScenes' detection classes follow);
      with lidarseg each has its ``index`` (0 = ``noise`` = unpainted points).
    - Tokens are MD5 hashes of the record kind and Deepen ids (dataset, frame, label), so a
      re-export gives the same tokens.

Conventions
    Deepen world frame = nuScenes global frame. The LiDAR is the ego reference unless
    ``lidar_to_ego`` (``-O lidar_to_ego='{"translation": [..], "rotation": [w, x, y, z]}'``, or a
    4x4 matrix, or a JSON file) gives the LiDAR's pose in the vehicle frame. Quaternions are
    ``(x, y, z, w)`` in the label model and ``[w, x, y, z]`` here.

Devkit notes
    ``NuScenes()`` colours boxes and lidarseg points by category name and knows only nuScenes
    names: with kept names pass ``colormap=json.load(open(dest / "colormap.json"))`` (or map the
    names with ``category_map``). The map is a 1 x 1 placeholder: map underlays show nothing.

Examples
--------
>>> import tempfile
>>> from deepen_export.model import Cuboids, Frames, LabelSet, Poses
>>> ls = LabelSet(frames=Frames.from_columns(file_id=["0.pcd"], sensor_id=["lidar"], index=[0]),
...     categories=("car",), poses=Poses.from_columns(frame=[0], position=[[10.0, 0, 0]],
...     quat=[[0, 0, 0, 1]], timestamp=[1.5]), cuboids=Cuboids.from_columns(frame=[0],
...     category=[0], label_id=["car:1"], center=[[15.0, 1, 0]], size=[[4.0, 2, 1.5]], quat=[[0, 0, 0, 1]]))
>>> out = tempfile.mkdtemp() + "/nusc"
>>> _ = write(ls, out)
>>> ann = json.loads(Path(out, "v1.0-deepen", "sample_annotation.json").read_text())[0]
>>> ann["translation"], ann["size"], ann["rotation"]
([15.0, 1.0, 0.0], [2.0, 4.0, 1.5], [1.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from converters import _nuscenes_tables as nt
from converters._base import dump_json
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["DEFAULT_VERSION", "read", "write"]

FORMAT = "nuscenes"
DEFAULT_VERSION = "v1.0-deepen"
FLAVOUR = nt.Flavour(FORMAT, "LIDAR_TOP", "samples")


def _check_version(version: str) -> str:
    """``version`` if it is a folder name of the form ``v1.0-<name>``."""
    if not version.startswith("v1.0-") or nt.safe_name(version, "") != version:
        raise ConversionError(
            f"version must look like 'v1.0-<name>' (letters, digits, - _ .), got {version!r}",
            format=FORMAT,
        )
    return version


def _colormap(names: list[str]) -> dict[str, list[int]]:
    """A stable RGB colour per category name (``noise`` black), for the devkit's ``colormap``."""
    out = {}
    for n in names:
        h = hashlib.md5(n.encode("utf-8"), usedforsecurity=False).digest()
        out[n] = [0, 0, 0] if n == nt.NOISE else [64 + h[0] % 192, 64 + h[1] % 192, 64 + h[2] % 192]
    return out


def _report_distortion(ex: nt.Export, report: Report, where: str) -> None:
    """One report entry per camera calibration with lens distortion nuScenes cannot hold."""
    names = {cs["token"]: cs["sensor_token"] for cs in ex.tables["calibrated_sensor"]}
    channel = {s["token"]: s["channel"] for s in ex.tables["sensor"]}
    for tok, d in ex.sidecar["distortion"].items():
        if any(c != 0 for c in d["coefficients"]):
            report.add(
                "changed",
                f"{FORMAT}: {channel[names[tok]]} has lens distortion ({d['model']} "
                f"{d['coefficients']}), which nuScenes' calibrated_sensor has no field for: "
                f"recorded in {where}; images are the distorted originals",
            )


def _write_folder(
    ex: nt.Export, tmp: Path, version: str, media: str | None, map_rel: str, report: Report
) -> None:
    """Scans, images, lidarseg, map, tables, mapping.json and colormap.json under ``tmp``."""
    copied = nt.copy_files(ex, tmp, media, report)
    nt.write_map(tmp, map_rel)
    (tmp / version).mkdir()
    for name, recs in sorted(ex.tables.items()):
        dump_json(recs, tmp / version / f"{name}.json", indent=1)
    dump_json(ex.sidecar, tmp / "mapping.json", indent=1)
    names = [c["name"] for c in ex.tables["category"]]
    dump_json(_colormap(names), tmp / "colormap.json", indent=1)
    report.files += [f"{version}/{n}.json" for n in sorted(ex.tables)]
    report.files += [r for r, _ in ex.points] + [r for r, _ in ex.lidarseg]
    report.files += [map_rel, "mapping.json", "colormap.json"]
    report.written = {
        "scenes": len(ex.tables["scene"]),
        "samples": len(ex.tables["sample"]),
        "sample_annotation": len(ex.tables["sample_annotation"]),
        "images": copied,
    }
    if ex.lidarseg:
        report.written["lidarseg"] = len(ex.lidarseg)


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    version: str = DEFAULT_VERSION,
    lidar_to_ego: nt.Transform = None,
    channels: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | str | os.PathLike[str] | None = None,
    visibility_attribute: str | None = "visibility",
    visibility_map: Mapping[str, str] | None = None,
    lidarseg: bool = True,
    media: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
) -> None:
    """Write a 3D sequence label set as a nuScenes v1.0 folder under ``dest``.

    Parameters
    ----------
    labels : LabelSet
        Cuboids with device poses (the dataset's uploaded frames), cameras and points; paint
        labels become lidarseg.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds nuScenes cannot hold (2D boxes, polylines, ...).
    version : str
        Table folder name, ``v1.0-<name>`` (the devkit's ``version``).
    lidar_to_ego : dict, str or path
        The LiDAR's pose in the vehicle frame (module docstring); default: LiDAR = ego.
    channels : dict
        Deepen camera sensor id -> nuScenes channel (``{"camera_0": "CAM_FRONT"}``).
    category_map : dict, JSON/YAML text or path
        Our category -> nuScenes category name; default: names kept.
    visibility_attribute, visibility_map
        Attribute holding visibility, and its values -> ``"1"``..``"4"`` / nuScenes levels.
    lidarseg : bool
        Write lidarseg from the paint labels (when there are any).
    media, images : path
        The upload zip or a folder to copy camera images from (default: the snapshot's zip).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile, deepen_export, converters
    >>> SAMPLE = Path(converters.__file__).parents[1] / "sample_data" / "lidar_sequence"
    >>> ls = deepen_export.read_labels(SAMPLE)
    >>> out = tempfile.mkdtemp() + "/nusc"
    >>> write(ls, out, on_unsupported="drop").written["sample_annotation"]
    8
    """
    report = out.report
    version = _check_version(version)
    ex = nt.build(
        labels, flavour=FLAVOUR, report=report, version=version, lidar_to_ego=lidar_to_ego,
        channels=channels, category_map=category_map, visibility_attribute=visibility_attribute,
        visibility_map=visibility_map, with_lidarseg=lidarseg,
    )  # fmt: skip
    _report_distortion(ex, report, "mapping.json (distortion)")
    map_rel = f"maps/{nt.token('map', 'placeholder')}.png"
    ex.tables["map"] = [nt.map_record([r["token"] for r in ex.tables["log"]], map_rel)]
    if not ex.tables.get("lidarseg"):
        ex.tables.pop("lidarseg", None)
    media_src = str(media or images or nt.default_media(labels) or "") or None
    _write_folder(ex, out.folder, version, media_src, map_rel, report)


def read(
    source: str | os.PathLike[str], /, *, version: str | None = None, points: bool = True
) -> LabelSet:
    """Read a nuScenes folder (ours or any v1.0 one) back into a :class:`LabelSet`.

    Cuboids come back in the world (global) frame, with ``size = (l, w, h)`` and quaternions
    ``(x, y, z, w)``; poses are the LiDAR's (ego pose * LiDAR calibration), cameras their
    intrinsics, pose and image path, points the ``.pcd.bin`` scans moved to the world frame,
    paint labels the lidarseg files. ``mapping.json``, when present, restores Deepen's dataset,
    file and label ids and the lens distortion; otherwise scenes are named by their ``name``,
    frames by their scan's file name and tracks ``<category>:<n>``.

    Parameters
    ----------
    source : path
        The folder holding ``v1.0-*/``.
    version : str, optional
        Which ``v1.0-*`` folder (needed when there are several).
    points : bool
        Read the scans too.

    Examples
    --------
    >>> import tempfile, deepen_export, converters
    >>> SAMPLE = Path(converters.__file__).parents[1] / "sample_data" / "lidar_sequence"
    >>> out = tempfile.mkdtemp() + "/nusc"
    >>> _ = write(deepen_export.read_labels(SAMPLE), out, on_unsupported="drop")
    >>> sorted(set(read(out).cuboids.label_id.tolist()))
    ['car:1', 'car:4', 'cyclist:3', 'pedestrian:2']
    """
    root = Path(source)
    if version is None:
        found = sorted(p.name for p in root.glob("v1.0-*") if p.is_dir()) if root.is_dir() else []
        if len(found) != 1:
            raise ConversionError(
                f"{root}: {'no' if not found else 'several'} v1.0-* table folder(s) "
                f"{found or ''}; pass version=...",
                format=FORMAT,
            )
        version = found[0]
    tables = nt.load_tables(root / version, FORMAT, nt.TABLES, ("lidarseg",))
    side_path = root / "mapping.json"
    sidecar = json.loads(side_path.read_text(encoding="utf-8")) if side_path.is_file() else {}
    ls, _ = nt.to_labelset(tables, sidecar, root, lidar_channel=None, fmt=FORMAT, points=points)
    return ls
