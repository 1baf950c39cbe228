"""A 3D (JSON frames) dataset from a folder to KITTI, OpenLABEL, SemanticKITTI and Parquet.

create → wait → pull (default flags: the uploaded zip for calibration, paint labels) → convert
with default flags, each typed through the installed ``deepen-export``. The snapshot holds
cuboids and point segmentation, as real ones do: KITTI and OpenLABEL write the cuboids and say in
one line which format takes the point segmentation; SemanticKITTI writes the points. Outputs are
read back with jsonschema + VCD's OpenLABEL schema, DuckDB and pyarrow, and small readers
written from KITTI's and SemanticKITTI's own descriptions. Expected KITTI numbers come from the
camera model in deepen-api.md §5.1, with scipy for the camera pose, not from our code.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from scipy.spatial.transform import Rotation

from tests._deepen_server import DeepenServer, label_dataset
from tests.workflow.conftest import Run, runner

DEVICE = [(100.0, 50.0, 2.0), (101.0, 50.0, 2.0)]  # device (LiDAR) position per frame, no turn
N_POINTS = [50, 40]
CAM = {"fx": 200.0, "fy": 200.0, "cx": 160.0, "cy": 120.0, "size": (320, 240)}
# cuboids in the LiDAR frame: (frame, label_id, category, centre, (l, w, h))
CUBOIDS = [
    (0, "car:1", "car", (10.0, 2.0, 0.5), (4.0, 2.0, 1.5)),
    (1, "car:1", "car", (10.0, 2.0, 0.5), (4.0, 2.0, 1.5)),
    (1, "pedestrian:1", "pedestrian", (5.0, -1.0, 0.9), (0.6, 0.6, 1.8)),
]
PAINT = ["car", "road"]  # 1-based in the paint bytes, 0 = unpainted


def _camera_quat() -> dict[str, float]:
    """Camera looking along the LiDAR's x: camera x right = -y, y down = -z, z forward = +x."""
    columns = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float).T
    x, y, z, w = Rotation.from_matrix(columns).as_quat()
    return {"x": x, "y": y, "z": z, "w": w}


def _folder(root: Path) -> Path:
    folder = root / "drive"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i, (pos, n) in enumerate(zip(DEVICE, N_POINTS, strict=True)):
        pts = rng.uniform(-20, 20, (n, 3)) + np.array(pos)
        image = f"images/cam0_{i}.png"
        Image.new("RGB", CAM["size"], (90, 90, 90)).save(folder / image)
        frame = {
            "timestamp": 1700000000.0 + i / 10,
            "device_position": dict(zip("xyz", pos, strict=True)),
            "device_heading": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
            "points": [{"x": float(x), "y": float(y), "z": float(z), "i": 5.0} for x, y, z in pts],
            "images": [
                {
                    "fx": CAM["fx"],
                    "fy": CAM["fy"],
                    "cx": CAM["cx"],
                    "cy": CAM["cy"],
                    "position": dict(zip("xyz", pos, strict=True)),
                    "heading": _camera_quat(),
                    "image_url": image,
                    "timestamp": 1700000000.0 + i / 10,
                }
            ],
        }
        (folder / f"{i}.json").write_text(json.dumps(frame))
    (folder / "Thumbs.db").write_bytes(b"\0")
    return folder


def _labels() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for frame, lid, cat, centre, (length, width, height) in CUBOIDS:
        world = np.add(centre, DEVICE[frame])  # the device does not turn: a shift
        out.setdefault(f"{frame}.pcd", []).append(
            {
                "label_id": lid,
                "label_category_id": cat,
                "label_type": "3d_bbox",
                "sensor_id": "lidar",
                "three_d_bbox": {
                    "cx": float(world[0]),
                    "cy": float(world[1]),
                    "cz": float(world[2]),
                    "l": length,
                    "w": width,
                    "h": height,
                    "rot_z": 0.0,
                },
            }
        )
    return out


def _paint_bytes() -> bytes:
    # frame 0: points alternate car/road/unpainted; frame 1: all road
    return bytes([(k % 3 + 1) % 3 for k in range(N_POINTS[0])] + [2] * N_POINTS[1])


@pytest.fixture(scope="module")
def snapshot(platform: DeepenServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("lidar-dataset")
    deepen = runner(platform, tmp_path)
    folder = _folder(tmp_path)
    (tmp_path / "requirements.yaml").write_text(
        "3d_bbox: {categories: [car, pedestrian]}\n3d_point: {categories: [car, road]}\n"
    )
    created = deepen(
        "datasets",
        "create",
        folder,
        "--name",
        "drive",
        "--type",
        "3d",
        "--format",
        "json",
        "--mode",
        "label_by_label",
        "--requirements",
        "requirements.yaml",
        "--wait",
        "--poll",
        "0.01",
    )
    dataset_id = created.stdout.strip()
    assert "left out Thumbs.db" in created.stderr
    meta = {"format": "pako_compressed", "paint_categories": PAINT, "frame_sizes": N_POINTS}
    files = [{"file_id": f"{i}.pcd", "sensors": ["lidar"], "status": "done"} for i in range(2)]
    label_dataset(
        platform,
        dataset_id,
        _labels(),
        files,
        paint=(zlib.compress(_paint_bytes()), meta),
        frame_sizes=N_POINTS,
    )
    deepen("pull", dataset_id, "-o", "snap")
    return tmp_path / "snap"


def _kitti_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_kitti_default_flags_write_cuboids_and_name_the_left_out_kind(
    deepen: Run, snapshot: Path, tmp_path: Path
) -> None:
    result = deepen("convert", snapshot, "--to", "kitti", "-o", tmp_path / "kitti")
    assert (
        "2 point_segmentation frames not written: kitti holds none; "
        "--to semantickitti or lidarseg writes them"
    ) in result.stderr
    labels = sorted((tmp_path / "kitti").rglob("label_2/*.txt"))
    assert len(labels) == 2
    for frame, path in enumerate(labels):
        rows = _kitti_rows(path)
        want = [c for c in CUBOIDS if c[0] == frame]
        assert len(rows) == len(want), path
        for row, (_, _, cat, (x, y, z), (length, width, height)) in zip(
            sorted(rows, key=lambda r: r[0]), sorted(want, key=lambda c: c[2].title()), strict=True
        ):
            assert row[0].lower() == cat
            # KITTI: dimensions h w l; location = bottom centre in camera coordinates
            assert np.allclose([float(v) for v in row[8:11]], [height, width, length], atol=0.01)
            cam = np.array([-y, -z + height / 2, x])
            assert np.allclose([float(v) for v in row[11:14]], cam, atol=0.01)
            assert math.isclose(float(row[14]), -math.pi / 2, abs_tol=0.01)  # facing +x_lidar
    calib = sorted((tmp_path / "kitti").rglob("calib/*.txt"))
    p2 = next(line for line in calib[0].read_text().splitlines() if line.startswith("P2:"))
    assert np.allclose(
        [float(v) for v in p2.split()[1:]],
        [CAM["fx"], 0, CAM["cx"], 0, 0, CAM["fy"], CAM["cy"], 0, 0, 0, 1, 0],
    )


def test_openlabel_validates_against_the_asam_schema(
    deepen: Run, snapshot: Path, tmp_path: Path
) -> None:
    from vcd import schema

    deepen("convert", snapshot, "--to", "openlabel", "-o", tmp_path / "ol")
    doc = json.loads(next((tmp_path / "ol").rglob("*.json")).read_text())
    if "openlabel" not in doc:  # report.json first in the listing
        doc = json.loads(
            next(
                p for p in (tmp_path / "ol").rglob("*.json") if p.name != "report.json"
            ).read_text()
        )
    jsonschema.Draft7Validator(schema.openlabel_schema).validate(doc)
    cuboids = [
        c
        for frame in doc["openlabel"]["frames"].values()
        for obj in frame.get("objects", {}).values()
        for c in obj.get("object_data", {}).get("cuboid", [])
    ]
    assert len(cuboids) == len(CUBOIDS)
    names = {o["name"] for o in doc["openlabel"]["objects"].values()}
    assert {"car:1", "pedestrian:1"} <= names or len(names) == 2


def test_semantickitti_labels_every_point(deepen: Run, snapshot: Path, tmp_path: Path) -> None:
    deepen("convert", snapshot, "--to", "semantickitti", "-o", tmp_path / "sk")
    root = tmp_path / "sk"
    ids = yaml.safe_load((root / "label_map.yaml").read_text())["deepen_categories"]
    paint = np.frombuffer(_paint_bytes(), dtype=np.uint8)
    files = sorted(root.rglob("*.label"))
    assert len(files) == 2
    start = 0
    for path, n in zip(files, N_POINTS, strict=True):
        raw = np.fromfile(path, dtype="<u4")
        assert raw.size == n
        want = [0 if v == 0 else ids[PAINT[v - 1]] for v in paint[start : start + n]]
        assert (raw & 0xFFFF).tolist() == want
        start += n


def test_parquet_tables_in_duckdb_and_pyarrow(deepen: Run, snapshot: Path, tmp_path: Path) -> None:
    deepen("convert", snapshot, "--to", "parquet", "-o", tmp_path / "pq")
    root = tmp_path / "pq"
    con = duckdb.connect()
    n = con.execute(f"select count(*) from '{root / 'labels.parquet'}'").fetchone()
    assert n is not None and n[0] == len(CUBOIDS)
    table = pq.read_table(root / "labels.parquet")
    assert sorted(table.column("label_id").to_pylist()) == sorted(c[1] for c in CUBOIDS)
    seg = pq.read_table(root / "point_segmentation.parquet")
    assert seg.num_rows in (sum(N_POINTS), len(N_POINTS))
