"""Train/val splits and image placement shared by the 2D writers (converters._dataset)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from converters._dataset import ImageSource, assign_splits, parse_split, place_images
from deepen_export.errors import ConversionError
from deepen_export.model import Frames, LabelSet
from deepen_export.report import Report


def test_parse_split_checks() -> None:
    assert parse_split("train:0.8,val:0.2") == [("train", 0.8), ("val", 0.2)]
    assert parse_split({"a": 0.5, "b": 0.5}) == [("a", 0.5), ("b", 0.5)]
    for bad in ("train:0.8,val:0.3", "train", "train:x", "a:0.5,a:0.5", "../x:1", "t:0,v:1"):
        with pytest.raises(ConversionError, match="split"):
            parse_split(bad)


def test_sequences_kept_whole_and_deterministic() -> None:
    # 30 LiDAR sequences of 10 frames, plus 200 independent images of an image dataset
    fid = [f"{i:04d}.pcd" for _ in range(30) for i in range(10)] + [f"{i}.png" for i in range(200)]
    ds = [f"seq{s}" for s in range(30) for _ in range(10)] + ["images"] * 200
    labels = LabelSet(frames=Frames.from_columns(file_id=fid, dataset_id=ds))
    frames = np.arange(len(fid))
    split = parse_split("train:0.7,val:0.3")
    a = assign_splits(labels, frames, split, seed=5)
    assert a == assign_splits(labels, frames, split, seed=5)  # same seed, same split
    assert a != assign_splits(labels, frames, split, seed=6)
    for s in range(30):  # every frame of a sequence in one subset
        assert len(set(a[s * 10 : s * 10 + 10])) == 1
    images = a[300:]
    assert 0.55 < images.count("train") / 200 < 0.85  # images split one by one
    # a frame keeps its subset when others are added
    more = LabelSet(
        frames=Frames.from_columns(file_id=[*fid, "new.png"], dataset_id=[*ds, "images"])
    )
    assert assign_splits(more, np.arange(len(fid) + 1), split, seed=5)[: len(fid)] == a


def test_place_images_from_zip_and_folder(tmp_path: Path) -> None:
    z = tmp_path / "dataset.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("top/images/camera_0/0000.png", b"png")
    report = Report("x")
    n = place_images(
        z,
        [("images/camera_0/0000.png", "out/a.png", "0000.pcd"), ("nope.png", "out/b.png", "b")],
        tmp_path,
        report,
    )
    assert n == 1 and (tmp_path / "out/a.png").read_bytes() == b"png"
    assert [i.file_id for i in report if i.action == "skipped"] == ["b"]
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "c.png").write_bytes(b"c")
    assert place_images(ImageSource(folder), [("c.png", "o/c.png", "c")], tmp_path, report) == 1
    assert (tmp_path / "o/c.png").stat().st_ino == (folder / "c.png").stat().st_ino  # a hard link
    with pytest.raises(ConversionError, match="--images"):
        place_images(None, [], tmp_path, report)
