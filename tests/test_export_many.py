"""deepen_export.pipeline.export_many on a real Dask LocalCluster (threads, in process)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import pytest

from converters import parquet
from deepen_export.model import LabelSet
from deepen_export.pipeline import export_many
from tests._parquet_fixtures import rich

CLUSTER = {"processes": False, "n_workers": 2, "threads_per_worker": 1}

_attempts: dict[str, int] = {}
_lock = threading.Lock()


def _attempt(key: str) -> int:
    with _lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        return _attempts[key]


def flaky_task(dataset_id: str, dest: str, *, run: str, fail: dict[str, int]) -> dict:
    """Like the real task but with local data; fails ``fail[dataset_id]`` times *while writing*:
    one batch is already in the staging area when the failure hits."""
    n = _attempt(f"{run}/{dataset_id}")

    def batches():
        ls = rich(dataset_id)
        yield LabelSet(frames=ls.frames, categories=ls.categories, boxes=ls.boxes)
        if n <= fail.get(dataset_id, 0):
            raise ConnectionError(f"{dataset_id}: connection dropped (attempt {n})")
        yield ls.replace(boxes=type(ls.boxes).empty())

    return parquet.write_stream(batches(), dest, layout="hive").to_dict()


def test_every_dataset_lands_and_a_failed_task_is_retried(tmp_path):
    run = "retry"
    result = export_many(
        ["a", "b", "c"],
        str(tmp_path),
        task=flaky_task,
        retries=2,
        cluster_options=CLUSTER,
        run=run,
        fail={"b": 1},
    )
    assert [(r.dataset_id, r.ok) for r in result] == [("a", True), ("b", True), ("c", True)]
    assert _attempts[f"{run}/b"] == 2 and _attempts[f"{run}/a"] == 1
    assert not result.failed
    back = parquet.read(tmp_path)
    expected = LabelSet.concat([rich("a"), rich("b"), rich("c")])
    assert back == expected  # b written exactly once: no duplicate boxes from attempt 1
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]
    assert "3 of 3 datasets exported" in result.summary()


def test_a_task_that_keeps_failing_is_reported_and_leaves_nothing(tmp_path):
    run = "fail"
    seen = []
    result = export_many(
        ["a", "b"],
        str(tmp_path),
        task=flaky_task,
        retries=1,
        cluster_options=CLUSTER,
        progress=seen.append,
        run=run,
        fail={"b": 5},
    )
    assert [r.ok for r in result] == [True, False]
    assert result.failed[0].error == "ConnectionError: b: connection dropped (attempt 2)"
    assert _attempts[f"{run}/b"] == 2  # first run + one retry
    assert sorted(r.dataset_id for r in seen) == ["a", "b"]
    assert not list(Path(tmp_path).rglob("*dataset_id=b*"))
    assert parquet.read(tmp_path) == rich("a")
    assert "FAILED  b" in result.summary()


def test_connects_to_an_existing_scheduler(tmp_path):
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(dashboard_address=None, **CLUSTER) as cluster,
        Client(cluster) as client,
    ):
        result = export_many(
            ["x"], str(tmp_path), scheduler=cluster.scheduler_address, task=flaky_task,
            run="addr", fail={},
        )  # fmt: skip
        assert result.results[0].ok
        result = export_many(
            ["y"], str(tmp_path), scheduler=client, task=flaky_task, run="client", fail={}
        )
        assert result.results[0].ok and client.status == "running"  # a given client stays open
    assert sorted(set(parquet.read(tmp_path).frames.dataset_id)) == ["x", "y"]


@pytest.fixture(autouse=True)
def _quiet_dask_logs(caplog):
    caplog.set_level("ERROR", logger="distributed")


def test_cli_export_many(tmp_path, monkeypatch):
    """The command with the pull replaced by local data (the task is looked up at call time)."""
    from click.testing import CliRunner

    from deepen_export import pipeline
    from deepen_export.cli import main

    def task(dataset_id, dest, *, label_set, stage, **_):
        assert (label_set, stage) == ("default", "QA")
        return flaky_task(dataset_id, dest, run="cli", fail={"bad": 9})

    monkeypatch.setattr(pipeline, "export_dataset", task)
    runner = CliRunner()
    out = tmp_path / "labels"
    args = ["export-many", "good", "bad", "-o", str(out), "--threads", "--workers", "1"]
    res = runner.invoke(main, [*args, "--stage", "QA", "--retries", "0"])
    assert res.exit_code == 1, res.output
    assert "ok      good: 17 labels, 0 report entries" in res.output  # both batches: 3 + 14
    assert "FAILED  bad: ConnectionError" in res.output
    assert "1 of 2 datasets exported" in res.output
    assert sorted(set(parquet.read(out).frames.dataset_id)) == ["good"]


class FakeClient:
    """Stands in for deepen_export.api.Client: `pull` copies a sample snapshot, offline."""

    pulls: ClassVar[list] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def pull(self, dataset_id, dest, *, label_set, stage):
        import shutil

        FakeClient.pulls.append((dataset_id, label_set, stage))
        src = Path(__file__).resolve().parents[1] / "sample_data" / dataset_id
        shutil.copytree(src, dest)


def test_default_task_pulls_reads_and_writes(tmp_path):
    """The real export_dataset task with the API client injected: pull -> read -> partitions."""
    import deepen_export

    result = export_many(
        ["lidar_sequence", "image_dataset"],
        str(tmp_path),
        client_factory=FakeClient,
        cluster_options=CLUSTER,
        stage="QA",
    )
    assert [r.ok for r in result] == [True, True], result.summary()
    assert sorted(FakeClient.pulls) == [
        ("image_dataset", "default", "QA"),
        ("lidar_sequence", "default", "QA"),
    ]
    # the partitions are named after the requested ids, which the snapshots' own ids replace
    # only where frames have none (these samples carry their real dataset ids)
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    expected = LabelSet.concat(
        sorted(
            (deepen_export.read_labels(sample / n) for n in ("lidar_sequence", "image_dataset")),
            key=lambda ls: ls.frames.dataset_id[0],
        )
    )
    # point clouds are left out by default (reported as skipped)
    assert parquet.read(tmp_path) == expected.without().replace(
        pointclouds=type(expected.pointclouds).empty()
    )
    # and the image sample's bowtie polygon is reported as repaired, as every writer reports it
    assert {i["kind"] for r in result for i in r.report["issues"]} == {"pointclouds", "polygons"}


def test_export_many_pulls_from_a_deepen_like_server_and_retries(tmp_path):
    """End to end: the real api.Client against the project's Deepen-like HTTP server on
    127.0.0.1. The image dataset's labels answer 500 three times: the client's own retry (one)
    gives up on the first attempt, Dask runs the task again, and that attempt succeeds."""
    from functools import partial

    from deepen_export.api import Client, RetryPolicy
    from tests._deepen_server import CLIENT_ID, DS3D, DSIMG, TOKEN, DeepenServer

    srv = DeepenServer().start()
    try:
        srv.fail(rf"/datasets/{DSIMG}/labels$", times=3)
        policy = RetryPolicy(
            max_retries=1, wait_initial=0.001, wait_max=0.01, jitter=0.0, sleep=lambda s: None
        )
        factory = partial(Client, CLIENT_ID, TOKEN, base_url=srv.url, timeout=5.0, retry=policy)
        result = export_many(
            [DS3D, DSIMG], str(tmp_path), client_factory=factory, retries=2,
            cluster_options=CLUSTER,
        )  # fmt: skip
        labels_requests = srv.count(rf"/datasets/{DSIMG}/labels$")
    finally:
        srv.stop()
    assert [r.ok for r in result] == [True, True], result.summary()
    assert labels_requests == 4  # attempt 1: 500, 500 (gives up); attempt 2: 500, 200
    back = parquet.read(tmp_path)
    assert sorted(set(back.frames.dataset_id)) == sorted([DS3D, DSIMG])
    served = srv.labels[DSIMG]["labels"]  # {file_id: [label, ...]}
    assert len(parquet.read(tmp_path, dataset_ids=[DSIMG])) == sum(map(len, served.values()))


def test_distributed_is_a_deprecated_alias_of_pipeline():
    """README users of ``deepen_export.distributed`` keep working, with a deprecation note."""
    with pytest.warns(DeprecationWarning, match="deepen_export.pipeline"):
        from deepen_export.distributed import export_many as old
    assert old is export_many
