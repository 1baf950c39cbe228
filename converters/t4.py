"""TIER IV T4 dataset: the nuScenes tables plus T4's additions, as ``t4-devkit`` loads them.

Written after T4 format ver1.2/1.3 (``tier4/tier4_perception_dataset``
``docs/t4_format_3d_detailed.md``) with the fields ``t4-devkit`` 0.1.0 reads
(``Tier4("annotation", data_root)``; its schema, ``t4_devkit/schema/tables``, decides where the
two disagree).

Output layout (one T4 dataset per Deepen dataset)::

    dest/
      <dataset_id>/
        annotation/
          attribute calibrated_sensor category ego_pose instance log map sample
          sample_annotation sample_data scene sensor visibility object_ann surface_ann  (.json)
        data/LIDAR_CONCAT/0.pcd.bin         float32 N x 5: x y z intensity ring_idx (= -1)
        data/CAMERA_0/0.png                 images copied from the upload
        mapping.json                        Deepen ids of every token, lens distortion
      report.json

Tables and fields (beyond :mod:`converters.nuscenes`, whose conventions hold here too)
    - Scans are in ``base_link`` (the ego frame) and ``LIDAR_CONCAT``'s calibration is the
      identity, as T4 has it: with ``lidar_to_ego`` the points are moved into the vehicle frame
      (the reader moves the poses back, so the LiDAR poses survive a round trip).
    - ``calibrated_sensor.camera_distortion``: ``[k1, k2, p1, p2, k3]`` (OpenCV order; T4 has
      the field nuScenes lacks); ``[]`` for the LiDAR; other camera models are reported.
    - ``instance.instance_name`` = ``<dataset_id>::<label_id>``.
    - ``log.data_captured`` = ``YYYY-MM-DD-HH-mm-ss`` of the first frame: t4-devkit 0.1.0's
      spelling (the format document writes ``date_captured``, which that devkit rejects).
    - ``sample_data.fileformat`` = ``pcd.bin`` / ``png`` / ``jpg``, ``is_valid`` = true.
    - ``visibility.level``: T4's names ``none`` / ``partial`` / ``most`` / ``full``, and
      ``unavailable`` where no visibility was labelled (the document's empty token cannot be
      looked up in t4-devkit); tokens ``"1"``..``"4"`` as in nuScenes (1 = least visible).
    - ``category`` has no ``index``: t4-devkit 0.1.0 rejects unknown keys and reads no
      lidarseg, so paint labels follow ``on_unsupported``.
    - ``object_ann``: one per 2D box or polygon drawn on a camera image of a LiDAR frame:
      ``sample_data_token`` (that camera's image), ``instance_token`` (the same instance as the
      label id's cuboids, so 2D and 3D of one object are linked; 2D-only tracks get an instance
      with ``nbr_annotations`` 0), ``bbox`` ``[xmin, ymin, xmax, ymax]`` in the model's
      pixel-corner floats (the document shows integers; t4-devkit reads either), ``mask`` COCO
      RLE ``{size: [h, w], counts}`` (the box, or the polygon with its holes);
    - ``surface_ann``: polygons of the categories in ``surface_categories`` (road, sky...): no
      instance, ``mask`` only.
    - Not written: ``vehicle_state`` (Deepen's frames carry no vehicle state, and t4-devkit
      0.1.0 reads none), ``keypoint``, ``status.json``, ``input_bag/``, ``map/`` files (the
      ``map`` table is one placeholder record, which t4-devkit does not open).

Examples
--------
>>> import tempfile, deepen_export, converters
>>> SAMPLE = Path(converters.__file__).parents[1] / "sample_data" / "lidar_sequence"
>>> out = tempfile.mkdtemp() + "/t4"
>>> r = write(deepen_export.read_labels(SAMPLE), out, on_unsupported="drop")
>>> r.written["object_ann"], r.written["sample_annotation"]
(1, 8)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from converters import _nuscenes_tables as nt
from converters._base import dump_json
from converters._writer import Output, writer
from deepen_export.errors import ConversionError
from deepen_export.geometry import planar
from deepen_export.geometry import spatial as sp
from deepen_export.model import Boxes, Frames, LabelSet, Polygons
from deepen_export.report import Report

__all__ = ["read", "write"]

FORMAT = "t4"
FLAVOUR = nt.Flavour(FORMAT, "LIDAR_CONCAT", "data", t4=True)
OPTIONAL = ("object_ann", "surface_ann")
Record = dict[str, Any]


def _camera_rows(labels: LabelSet, table: Boxes | Polygons, ex: nt.Export) -> list[Record | None]:
    """The camera sample_data record of every 2D label (None when its image is not written)."""
    assert ex.frames is not None
    fr = labels.frames
    pos = {
        (str(fr.dataset_id[r]), str(fr.file_id[r])): i
        for i, r in enumerate(ex.frames.rows.tolist())
    }
    out: list[Record | None] = []
    for row in table.frame.tolist():
        i = pos.get((str(fr.dataset_id[row]), str(fr.file_id[row])))
        out.append(None if i is None else ex.camera_data.get((i, str(fr.sensor_id[row]))))
    return out


def _geoms(table: Boxes | Polygons) -> Any:
    if isinstance(table, Boxes):
        x = table.xyxy
        return shapely.box(x[:, 0], x[:, 1], x[:, 2], x[:, 3])
    return planar.repair_polygons(
        planar.polygons_to_shapely(table.offsets, table.ring_offsets, table.coords)
    )[0]


def _image_annotations(
    ex: nt.Export, labels: LabelSet, kind: str, surface: set[str], report: Report
) -> None:
    """object_ann / surface_ann records of the 2D ``kind`` (``boxes`` or ``polygons``)."""
    table = labels.boxes if kind == "boxes" else labels.polygons
    if not len(table):
        return
    assert ex.vocab is not None
    cams = _camera_rows(labels, table, ex)
    geoms = _geoms(table)
    h = np.array([c["height"] if c else 0 for c in cams])
    w = np.array([c["width"] if c else 0 for c in cams])
    rles = planar.polygons_to_rle(geoms, h, w)
    bounds = shapely.bounds(geoms)
    fr = labels.frames
    attrs = table.attribute_records()
    for j, (cam, rle) in enumerate(zip(cams, rles, strict=True)):
        fid, lid = str(fr.file_id[table.frame[j]]), str(table.label_id[j])
        if cam is None or rle is None:
            why = (
                "its camera image is not in the export"
                if cam is None
                else "it has no area or the image size is unknown"
            )
            report.add(
                "dropped",
                f"{FORMAT}: 2D label on {fr.sensor_id[table.frame[j]]} not written: {why}",
                file_id=fid,
                label_id=lid,
                kind=kind,
            )
            continue
        ds = str(fr.dataset_id[table.frame[j]])
        cat = ex.vocab.names[int(table.category[j])]
        tok = nt.token("object_ann", ds, fid, str(fr.sensor_id[table.frame[j]]), lid, kind)
        if kind == "polygons" and cat in surface:
            ex.tables["surface_ann"].append(
                {
                    "token": tok,
                    "sample_data_token": cam["token"],
                    "category_token": nt.token("category", cat),
                    "mask": rle,
                }
            )
            continue
        inst = ex.instances.get((ds, lid))
        if inst is None:
            inst = ex.instances[(ds, lid)] = nt.new_instance(ds, lid, cat, FLAVOUR)
            ex.tables["instance"].append(inst)
        ex.tables["object_ann"].append(
            {
                "token": tok,
                "sample_data_token": cam["token"],
                "instance_token": inst["token"],
                "category_token": nt.token("category", cat),
                "attribute_tokens": _attr_tokens(ex, attrs[j]),
                "bbox": (bounds[j] + 0.0).tolist(),
                "mask": rle,
            }
        )


def _attr_tokens(ex: nt.Export, attrs: Mapping[str, Any]) -> list[str]:
    out = []
    for key, v in attrs.items():
        name = f"{key}.{nt.attr_text(v)}"
        if name not in {r["name"] for r in ex.tables["attribute"]}:
            ex.tables["attribute"].append(
                {
                    "token": nt.token("attribute", name),
                    "name": name,
                    "description": f"Deepen attribute {key!r}",
                }
            )
        out.append(nt.token("attribute", name))
    return out


def _datasets(labels: LabelSet) -> list[str]:
    return list(dict.fromkeys(str(d) for d in labels.frames.dataset_id.tolist()))


@writer(FORMAT)
def write(
    labels: LabelSet,
    out: Output,
    /,
    *,
    lidar_to_ego: nt.Transform = None,
    channels: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | str | os.PathLike[str] | None = None,
    visibility_attribute: str | None = "visibility",
    visibility_map: Mapping[str, str] | None = None,
    surface_categories: Sequence[str] = (),
    media: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
) -> None:
    """Write a 3D sequence label set as T4 datasets under ``dest`` (one per Deepen dataset).

    Parameters
    ----------
    labels : LabelSet
        Cuboids with device poses, cameras and points; 2D boxes / polygons on camera images.
    dest : path
        Output folder, replaced as a whole.
    on_unsupported : {"raise", "warn", "drop"}
        What to do with kinds T4 cannot hold here (polylines, paint labels, ...).
    lidar_to_ego, channels, category_map, visibility_attribute, visibility_map, media, images
        As in :func:`converters.nuscenes.write`.
    surface_categories : sequence of str
        Categories whose polygons are background surfaces (``surface_ann``), not objects.

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile, deepen_export, converters
    >>> SAMPLE = Path(converters.__file__).parents[1] / "sample_data" / "lidar_sequence"
    >>> out = tempfile.mkdtemp() + "/t4"
    >>> _ = write(deepen_export.read_labels(SAMPLE), out, on_unsupported="drop")
    >>> sorted(p.name for p in Path(out, "Kp9Wn3Qs5Tv7Xy1Za2Bc4De6").iterdir())
    ['annotation', 'data', 'mapping.json']
    """
    report, tmp = out.report, out.folder
    media_src = str(media or images or nt.default_media(labels) or "") or None
    written = dict.fromkeys(
        ("datasets", "samples", "sample_annotation", "object_ann", "surface_ann", "images"), 0
    )
    for ds in _datasets(labels):
        sub = labels.select_frames(labels.frames.dataset_id == ds)
        if not len(sub.poses) and not len(sub.cuboids):
            continue
        ex = nt.build(
            sub, flavour=FLAVOUR, report=report, version="annotation", lidar_to_ego=lidar_to_ego,
            channels=channels, category_map=category_map,
            visibility_attribute=visibility_attribute, visibility_map=visibility_map,
        )  # fmt: skip
        folder = nt.safe_name(ds, f"dataset-{written['datasets']}")
        written["images"] += nt.copy_files(ex, tmp / folder, media_src, report)
        ex.tables.update(object_ann=[], surface_ann=[])
        for kind in ("boxes", "polygons"):
            _image_annotations(ex, sub, kind, set(surface_categories), report)
        _finish_tables(ex)
        _report_distortion(ex, report)
        _write_dataset(ex, tmp, folder, report)
        written["datasets"] += 1
        for k in ("sample_annotation", "object_ann", "surface_ann"):
            written[k] += len(ex.tables[k])
        written["samples"] += len(ex.tables["sample"])
    if not written["datasets"]:
        raise ConversionError(f"{FORMAT}: no 3D dataset with device poses to write", format=FORMAT)
    report.written = written


def _write_dataset(ex: nt.Export, tmp: Path, folder: str, report: Report) -> None:
    """The tables of one T4 dataset (``annotation/*.json``) and its ``mapping.json``."""
    (tmp / folder / "annotation").mkdir(parents=True, exist_ok=True)
    for name, recs in sorted(ex.tables.items()):
        dump_json(recs, tmp / folder / "annotation" / f"{name}.json", indent=1)
    dump_json(ex.sidecar, tmp / folder / "mapping.json", indent=1)
    report.files += [f"{folder}/annotation/{n}.json" for n in sorted(ex.tables)]
    report.files += [f"{folder}/{r}" for r, _ in ex.points] + [f"{folder}/mapping.json"]


def _report_distortion(ex: nt.Export, report: Report) -> None:
    """T4's ``camera_distortion`` is OpenCV's ``k1 k2 p1 p2 k3``: other models are reported."""
    sensor = {cs["token"]: cs["sensor_token"] for cs in ex.tables["calibrated_sensor"]}
    channel = {s["token"]: s["channel"] for s in ex.tables["sensor"]}
    for tok, d in ex.sidecar["distortion"].items():
        if d["model"] != "pinhole" or d["coefficients"][5] != 0:
            report.add(
                "changed",
                f"{FORMAT}: {channel[sensor[tok]]} uses the {d['model']} model "
                f"{d['coefficients']}; T4's camera_distortion holds OpenCV k1 k2 p1 p2 k3 only: "
                "the full coefficients are in mapping.json (distortion)",
            )


def _finish_tables(ex: nt.Export) -> None:
    t = ex.tables
    t.pop("lidarseg", None)
    t["map"] = [nt.map_record([r["token"] for r in t["log"]], "")]
    for sd in t["sample_data"]:
        sd["fileformat"] = {"jpeg": "jpg", "pcd": "pcd.bin"}.get(sd["fileformat"], sd["fileformat"])
        sd["is_valid"] = True
    t["attribute"].sort(key=lambda r: str(r["name"]))


def _read_one(folder: Path) -> LabelSet:
    tables = nt.load_tables(folder / "annotation", FORMAT, nt.TABLES, OPTIONAL)
    side_path = folder / "mapping.json"
    sidecar = json.loads(side_path.read_text(encoding="utf-8")) if side_path.is_file() else {}
    ls, rd = nt.to_labelset(tables, sidecar, folder, lidar_channel=None, fmt=FORMAT)
    tr = nt.parse_transform(sidecar.get("lidar_to_ego"))
    if tr is not None:
        # T4's LiDAR calibration is base_link's: the device (LiDAR) pose is ego * lidar_to_ego
        n = len(ls.poses)
        t, q = sp.cuboids_from_sensor(
            np.tile(tr[0], (n, 1)), np.tile(tr[1], (n, 1)), ls.poses.position, ls.poses.quat
        )
        ls = ls.replace(poses=dataclasses.replace(ls.poses, position=t, quat=q))
    return _read_object_ann(ls, rd)


def _read_object_ann(ls: LabelSet, rd: Any) -> LabelSet:
    recs = rd.t.get("object_ann", [])
    if not recs:
        return ls
    code = {c: i for i, c in enumerate(ls.categories)}
    lids = nt.label_ids(rd, code)
    sd_by = rd.by["sample_data"]
    rows = []
    for a in recs:
        sd = sd_by[a["sample_data_token"]]
        lidar_row = rd.sample_row[sd["sample_token"]]
        ch = rd.sensor_of_cs[sd["calibrated_sensor_token"]]["channel"]
        sid = str(rd.side.get("cameras", {}).get(ch, ch.lower()))
        fr = ls.frames
        rows.append(
            rd.frame_row(
                str(fr.dataset_id[lidar_row]),
                str(fr.file_id[lidar_row]),
                sid,
                int(fr.index[lidar_row]),
                (sd["width"], sd["height"]),
            )
        )
    cats = [code[rd.by["category"][a["category_token"]]["name"]] for a in recs]
    boxes = Boxes.from_columns(
        frame=rows,
        category=cats,
        label_id=[lids[a["instance_token"]] for a in recs],
        xyxy=np.asarray([a["bbox"] for a in recs], dtype=np.float64),
    )
    boxes = boxes.with_attributes(nt.attributes_of(rd, recs))
    return ls.replace(frames=Frames.from_columns(**rd.frames), boxes=boxes)


def read(source: str | os.PathLike[str], /) -> LabelSet:
    """Read a T4 dataset folder (or a folder of them) back into a :class:`LabelSet`.

    As :func:`converters.nuscenes.read`, plus ``object_ann`` boxes as 2D boxes on their camera
    image (``surface_ann`` masks are not read back).

    Examples
    --------
    >>> import tempfile, deepen_export, converters
    >>> SAMPLE = Path(converters.__file__).parents[1] / "sample_data" / "lidar_sequence"
    >>> out = tempfile.mkdtemp() + "/t4"
    >>> _ = write(deepen_export.read_labels(SAMPLE), out, on_unsupported="drop")
    >>> read(out).boxes.label_id.tolist()
    ['car:1']
    """
    root = Path(source)
    if (root / "annotation").is_dir():
        return _read_one(root)
    subs = sorted(p for p in root.iterdir() if (p / "annotation").is_dir()) if root.is_dir() else []
    if not subs:
        raise ConversionError(f"{root}: no annotation/ folder (not a T4 dataset)", format=FORMAT)
    return LabelSet.concat([_read_one(p) for p in subs])
