"""``deepen-export convert --copy-images`` as a user types it: images from a snapshot's media zip
(a 3D dataset's camera views, file ids with an ``images`` folder) and from ``--images``, hard links
where the file system allows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.interop.conftest import IMAGES, SAMPLES
from tests.interop.test_yolo_tools import _walk, check_det_dataset

CLI = str(Path(sys.executable).with_name("deepen-export"))


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_yolo_from_a_snapshot_media_zip(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "yolo"
    _run(
        "convert", str(SAMPLES / "lidar_sequence"), "--to", "yolo", "-o", str(out),
        "--copy-images", "--on-unsupported", "drop", cwd=elsewhere,
    )  # fmt: skip
    # camera_0's view of 0000.pcd: image images/camera_0/0000.png in the uploaded zip
    assert (out / "images" / "images__camera_0__0000.png").is_file()
    data = check_det_dataset(os.path.relpath(out / "data.yaml", elsewhere))
    ((state, rows),) = _walk(data, "train").values()
    assert state == "found" and len(rows) == 1  # the one camera box of the sample


def test_coco_split_hard_links(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out" / "coco"
    _run(
        "convert", str(SAMPLES / "image_dataset"), "--to", "coco", "-o", str(out),
        "--images", str(IMAGES), "--copy-images", "--on-unsupported", "drop",
        "-O", "split=train:0.5,val:0.5", cwd=elsewhere,
    )  # fmt: skip
    copies = sorted((out / "images").rglob("*.png"))
    assert len(copies) == 5  # six image frames; 000004.png is not labelled yet: left out
    same_device = os.stat(IMAGES).st_dev == os.stat(out).st_dev
    if same_device:  # hard links, not copies: the sources gain a link each
        assert all(c.stat().st_nlink >= 2 for c in copies)
        assert (IMAGES / "000002.png").stat().st_ino in {c.stat().st_ino for c in copies}
