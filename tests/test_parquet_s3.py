"""Parquet on an object store: a real S3-compatible server (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import socket

import boto3
import duckdb
import pyarrow.fs as pafs
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from converters import parquet
from deepen_export.model import LabelSet
from tests._parquet_fixtures import rich as _rich


def rich(dataset_id: str = "ds1") -> LabelSet:
    """Boxes, polygons (with a hole) and cuboids: few objects, as every request to moto costs."""
    ls = _rich(dataset_id)
    keep = ("boxes", "polygons", "cuboids")
    return ls.without(*[k for k, t in ls if k not in keep]).replace(
        poses=type(ls.poses).empty(), cameras=type(ls.cameras).empty()
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    name = f"labels-{_free_port()}"
    client.create_bucket(Bucket=name)
    return client, name


def _fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )


def _objects(client, bucket: str) -> dict[str, str]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["ETag"]
    return out


def test_partitioned_dataset_round_trip_and_partition_overwrite(s3_endpoint, bucket):
    client, name = bucket
    fs = _fs(s3_endpoint)
    dest = f"s3://{name}/labels"
    parquet.write(rich("ds1"), dest, layout="hive", filesystem=fs)
    parquet.write(rich("ds2"), dest, layout="hive", filesystem=fs)
    assert parquet.read(dest, filesystem=fs) == LabelSet.concat([rich("ds1"), rich("ds2")])

    before = _objects(client, name)
    assert "labels/labels/dataset_id=ds2/label_type=box/part-0.parquet" in before
    assert not [k for k in before if "_staging" in k]  # staging objects were moved away

    only_boxes = LabelSet(
        frames=rich("ds1").frames, categories=rich("ds1").categories, boxes=rich("ds1").boxes
    )
    parquet.write(only_boxes, dest, layout="hive", filesystem=fs)
    after = _objects(client, name)
    ds2 = {k: v for k, v in before.items() if "dataset_id=ds2" in k}
    assert {k: v for k, v in after.items() if "dataset_id=ds2" in k} == ds2  # untouched
    parquet_ds1 = sorted(k for k in after if "dataset_id=ds1" in k and k.endswith(".parquet"))
    assert parquet_ds1 == [
        "labels/frames/dataset_id=ds1/part-0.parquet",
        "labels/labels/dataset_id=ds1/label_type=box/part-0.parquet",
    ]
    assert parquet.read(dest, filesystem=fs, dataset_ids=["ds1"]) == only_boxes
    assert parquet.read(dest, filesystem=fs, dataset_ids=["ds2"]) == rich("ds2")


def test_uri_with_endpoint_and_fsspec_filesystem(s3_endpoint, bucket):
    client, name = bucket
    uri = f"s3://{name}/one?endpoint_override={s3_endpoint}&scheme=http"
    parquet.write(rich(), uri)  # credentials from the environment, endpoint from the URI
    assert "one/labels.parquet" in _objects(client, name)
    assert parquet.read(uri) == rich()

    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": f"http://{s3_endpoint}"}
    )
    parquet.write(rich(), f"s3://{name}/two", filesystem=fs)
    assert parquet.read(f"{name}/two", filesystem=fs) == rich()


def test_duckdb_reads_what_was_written_to_s3(s3_endpoint, bucket, tmp_path):
    """DuckDB's S3 support needs the httpfs extension (not installable offline): copy down and
    read, which also checks the objects are complete Parquet files."""
    _client, name = bucket
    fs = _fs(s3_endpoint)
    parquet.write(rich(), f"s3://{name}/x", layout="hive", filesystem=fs)
    local = tmp_path / "copy"
    pafs.copy_files(f"{name}/x", local.as_posix(), source_filesystem=fs)
    g = (local / "labels" / "**" / "*.parquet").as_posix()
    assert duckdb.sql(f"SELECT count(*) FROM '{g}'").fetchall() == [(9,)]


def test_failed_write_changes_nothing_on_s3(s3_endpoint, bucket, monkeypatch):
    client, name = bucket
    fs = _fs(s3_endpoint)
    dest = f"s3://{name}/f"
    parquet.write(rich("ds1"), dest, layout="hive", filesystem=fs)
    before = _objects(client, name)
    real = parquet._Sink._write
    calls = {"n": 0}

    def boom(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("connection reset")
        real(self, *args)

    monkeypatch.setattr(parquet._Sink, "_write", boom)
    with pytest.raises(OSError, match="connection reset"):
        parquet.write(rich("ds1"), dest, layout="hive", filesystem=fs)
    assert _objects(client, name) == before


def test_convert_command_to_s3(s3_endpoint, bucket, tmp_path):
    """The generic convert command hands the output over as a pathlib.Path, which folds
    "s3://" into "s3:/"; the writer must still go to S3, not to a local folder "s3:"."""
    from pathlib import Path

    from click.testing import CliRunner

    from deepen_export.cli import main

    client, name = bucket
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "image_dataset"
    uri = f"s3://{name}/cli?endpoint_override={s3_endpoint}&scheme=http"
    res = CliRunner().invoke(main, ["convert", str(sample), "--to", "parquet", "-o", uri])
    assert res.exit_code == 0, res.output
    assert "cli/labels.parquet" in _objects(client, name)
    assert not Path("s3:").exists()
