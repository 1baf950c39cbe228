"""SemanticKITTI, nuScenes lidarseg and OpenLABEL outputs read by their tools' own rules.

- semantic-kitti-api (``PRBonn/semantic-kitti-api``, not on PyPI), restated from
  ``auxiliary/laserscan.py`` (``SemLaserScan``: a colour table sized by the largest
  ``color_map`` key + 100, indexed by ``label & 0xFFFF``; instance ``label >> 16``; a label
  file must have one entry per point of its scan) and ``evaluate_semantics.py`` (``--datacfg``:
  ``labels``, ``learning_map``, ``learning_map_inv``, ``learning_ignore``, ``split``; a lookup
  table sized by the largest ``learning_map`` key + 100 maps ids to classes; the sequences of
  ``split[valid]`` are evaluated; IoU per class not ignored).
- nuscenes-devkit 1.2.0 itself, in a cached venv of its own (it pins numpy < 2): ``NuScenes``
  loads our lidarseg tables beside empty nuScenes tables, with our ``colormap.json``.
- vcd 6.0.3 (``vcd.core.OpenLABEL``) loads our OpenLABEL file; the schema it ships validates it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

import deepen_export
from converters import lidarseg, semantickitti
from tests._isolated_env import REQUIREMENTS, run_tool
from tests.interop.conftest import SAMPLES

# nuscenes-devkit runs in the devkits' venv (tests/devkit_requirements.txt): one build for both suites


def _lidar() -> deepen_export.LabelSet:
    return deepen_export.read_labels(SAMPLES / "lidar_sequence")


def test_semantic_kitti_api_rules(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "sk"
    semantickitti.write(_lidar(), out, on_unsupported="drop")
    cfg = yaml.safe_load((out / "label_map.yaml").read_text())
    color_lut = np.zeros((max(cfg["color_map"]) + 1 + 100, 3), dtype=np.float32)
    for k, v in cfg["color_map"].items():
        color_lut[k] = np.asarray(v, np.float32) / 255
    remap = np.zeros(max(cfg["learning_map"]) + 100, dtype=np.int32)
    remap[list(cfg["learning_map"])] = list(cfg["learning_map"].values())
    n_classes = len(cfg["learning_map_inv"])
    ignore = [int(c) for c, ign in cfg["learning_ignore"].items() if ign]
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    n_files = 0
    for seq in cfg["split"]["valid"]:
        seq_dir = out / "sequences" / f"{int(seq):02d}"
        for lab in sorted((seq_dir / "labels").glob("*.label")):
            label = np.fromfile(lab, dtype=np.uint32)
            scan = seq_dir / "velodyne" / (lab.stem + ".bin")
            assert len(np.fromfile(scan, dtype=np.float32).reshape(-1, 4)) == len(label)
            sem, inst = label & 0xFFFF, label >> 16
            assert ((sem + (inst << 16)) == label).all()
            color_lut[sem]  # visualize.py colours every point: no id beyond the table
            cls = remap[np.fromfile(lab, dtype=np.int32) & 0xFFFF]
            np.add.at(conf, (cls, cls), 1)  # ground truth as its own prediction
            n_files += 1
    assert n_files == 3
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = [c for c in range(n_classes) if c not in ignore and union[c] > 0]
    assert present and all(tp[c] / union[c] == 1.0 for c in present)
    for i in cfg["learning_map_inv"].values():
        assert i in cfg["labels"]  # class names printed by evaluate_semantics.py


_DEVKIT = r"""
import json, os, sys, io, contextlib
from nuscenes.nuscenes import NuScenes
import numpy as np
root, version = sys.argv[1], sys.argv[2]
colormap = {k: tuple(v) for k, v in json.load(open(os.path.join(root, "colormap.json"))).items()}
with contextlib.redirect_stdout(io.StringIO()):
    nusc = NuScenes(version=version, dataroot=root, verbose=True, colormap=colormap)
out = {"n": len(nusc.lidarseg), "idx2name": {str(k): v for k, v in nusc.lidarseg_idx2name_mapping.items()},
       "colormap": list(nusc.colormap), "counts": {}}
for rec in nusc.lidarseg:
    labels = np.fromfile(os.path.join(nusc.dataroot, rec["filename"]), dtype=np.uint8)
    out["counts"][rec["file_id"]] = {nusc.lidarseg_idx2name_mapping[int(i)]: int(c) for i, c in zip(*np.unique(labels, return_counts=True))}
print(json.dumps(out))
"""


def test_nuscenes_devkit_loads_lidarseg(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "nuscenes"
    lidarseg.write(_lidar(), out, on_unsupported="drop", version="v1.0-mini")
    tables = out / "v1.0-mini"
    # the devkit loads every nuScenes table: an empty one for each we do not write
    for name in (
        "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose",
        "log", "scene", "sample", "sample_data", "sample_annotation", "map",
    ):  # fmt: skip
        (tables / f"{name}.json").write_text("[]")
    # ... but for one map record (its reverse index reads map[0]) with a 1 x 1 mask image
    from PIL import Image

    (out / "maps").mkdir()
    Image.new("L", (1, 1)).save(out / "maps" / "none.png")
    record = {"token": "none", "log_tokens": [], "category": "", "filename": "maps/none.png"}
    (tables / "map.json").write_text(json.dumps([record]))
    got = run_tool(REQUIREMENTS, _DEVKIT, str(out), "v1.0-mini", cwd=elsewhere)
    assert isinstance(got, dict)
    cats = json.loads((tables / "category.json").read_text())
    assert got["n"] == 3
    assert got["colormap"] == [c["name"] for c in sorted(cats, key=lambda c: c["index"])]
    exp = json.loads((SAMPLES / "expected.json").read_text())["lidar_sequence"]["frames"]
    for file_id, counts in got["counts"].items():
        want = {k: v for k, v in exp[file_id]["paint_counts"].items() if v}
        unpainted = counts.pop("noise", 0)
        assert counts == {k: v for k, v in want.items() if k != "unpainted"}, file_id
        assert unpainted == want.get("unpainted", 0), file_id


def test_vcd_loads_mixed_image_and_lidar(tmp_path: Path, elsewhere: Path) -> None:
    import jsonschema
    import vcd.core
    import vcd.schema

    from converters import openlabel
    from deepen_export.model import Frames, LabelSet

    a = _lidar()
    b = deepen_export.read_labels(SAMPLES / "image_dataset")
    cols = b.frames.columns()
    cols["dataset_id"] = np.array([a.frames.dataset_id[0]] * len(b.frames), dtype=object)
    mixed = LabelSet.concat([a, b.replace(frames=Frames.from_columns(**cols))])
    out = tmp_path / "out" / "ol"
    openlabel.write(mixed, out, on_unsupported="drop")
    (path,) = [p for p in out.glob("*.json") if p.name != "report.json"]
    doc = json.loads(path.read_text())
    jsonschema.Draft7Validator(vcd.schema.openlabel_schema).validate(doc)
    ol = doc["openlabel"]
    declared = set(ol["coordinate_systems"]) | set(ol["streams"])
    used: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if "coordinate_system" in x:
                used.add(str(x["coordinate_system"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(ol)
    assert {"sensor1", "sensor2"} <= used  # the image dataset's sensors (2D boxes, polygons)
    assert used <= declared
    v = vcd.core.OpenLABEL()
    v.load_from_file(str(path))
    assert v.get_num_objects() > 0
    for name in used:
        assert v.has_coordinate_system(name), name
