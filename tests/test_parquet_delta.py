"""Parquet ``layout="delta"`` on a local folder: round trips, other datasets kept, the CLI."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from converters import parquet
from deepen_export import read_labels
from deepen_export.cli import main
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from tests._parquet_fixtures import rich

SAMPLES = Path(__file__).parents[1] / "sample_data"


def test_round_trip_every_table_and_dataset_rewrite(tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    parquet.write(rich("ds1"), dest, layout="delta")
    parquet.write(rich("ds2"), dest, layout="delta")
    assert parquet.read(dest) == LabelSet.concat([rich("ds1"), rich("ds2")])
    # the reference reader sees both datasets in every table
    for table in ("labels", "frames", "point_segmentation", "poses", "cameras", "masks2d"):
        got = pl.read_delta(str(dest / table))
        assert sorted(got["dataset_id"].unique().to_list()) == ["ds1", "ds2"], table
    only_boxes = LabelSet(
        frames=rich("ds1").frames, categories=rich("ds1").categories, boxes=rich("ds1").boxes
    )
    parquet.write(only_boxes, dest, layout="delta")
    assert parquet.read(dest, dataset_ids=["ds1"]) == only_boxes
    assert parquet.read(dest, dataset_ids=["ds2"]) == rich("ds2")
    # cameras of ds1 are gone (a table this write does not hold), ds2's kept
    cams = DeltaTable(str(dest / "cameras")).to_pyarrow_table()
    assert set(cams["dataset_id"].to_pylist()) == {"ds2"}


def test_frames_without_a_dataset_id_need_one(tmp_path: Path) -> None:
    ls = read_labels(SAMPLES / "image_dataset" / "labels.json")
    with pytest.raises(ConversionError, match="dataset_id"):
        parquet.write(ls, tmp_path / "dl", layout="delta")
    parquet.write(ls, tmp_path / "dl", layout="delta", dataset_id="img")
    assert len(parquet.read(tmp_path / "dl")) == len(ls)


def test_cli_writes_and_rewrites_a_delta_folder(tmp_path: Path) -> None:
    out = tmp_path / "dl"
    args = ["convert", str(SAMPLES / "image_dataset"), "--to", "parquet", "-o", str(out)]
    args += ["-O", "layout=delta", "-O", "dataset_id=img"]
    for _ in range(2):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
    assert DeltaTable(str(out / "labels")).version() == 1
    assert len(pl.read_delta(str(out / "labels"))) == len(read_labels(SAMPLES / "image_dataset"))


def test_local_hive_leftovers_of_a_killed_write_are_repaired(tmp_path: Path, monkeypatch) -> None:
    import os
    import shutil

    dest = tmp_path / "hive"
    parquet.write(rich("ds1"), dest, layout="hive")
    parquet.write(rich("ds2"), dest, layout="hive")
    # what a kill leaves: a staging folder, and ds1's frames set aside mid-swap
    (dest / ".staging-0123").mkdir()
    (dest / ".staging-0123" / "x.parquet").write_bytes(b"PAR1")
    part = dest / "frames" / "dataset_id=ds1"
    os.replace(part, part.with_name(part.name + ".old-" + "a" * 32))
    shutil.copytree(
        dest / "labels" / "dataset_id=ds2", dest / "labels" / ("dataset_id=ds2.old-" + "b" * 32)
    )
    monkeypatch.setattr(parquet, "STAGING_STALE_AFTER", -1.0)  # as if they were old
    parquet.write(rich("ds3"), dest, layout="hive")
    assert sorted(p.name for p in dest.iterdir() if p.name.startswith(".")) == []
    assert sorted(p.name for p in (dest / "labels").iterdir()) == [
        "dataset_id=ds1",
        "dataset_id=ds2",
        "dataset_id=ds3",
    ]
    assert parquet.read(dest) == LabelSet.concat([rich("ds1"), rich("ds2"), rich("ds3")])
