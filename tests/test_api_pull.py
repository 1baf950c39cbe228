"""``pull``: snapshot layout, manifest, change report and atomicity, against the Deepen-like server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepen_export import __version__, errors
from deepen_export.api import (
    Client,
    LabelChanges,
    PullResult,
    RetryPolicy,
    diff_labels,
    label_index,
)
from tests._deepen_server import CLIENT_ID, DS3D, DSIMG, TOKEN, DeepenServer, sample


@pytest.fixture
def client(server: DeepenServer) -> Iterator[Client]:
    policy = RetryPolicy(
        max_retries=2, wait_initial=0.001, wait_max=0.01, jitter=0.0, sleep=lambda s: None
    )
    with Client(
        CLIENT_ID, TOKEN, base_url=server.url, timeout=5.0, retry=policy, max_concurrency=2
    ) as c:
        yield c


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_pull_3d_layout_and_manifest(client: Client, server: DeepenServer, tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    progress: list[tuple[int, int | None]] = []
    result = client.pull(DS3D, dest, progress=lambda d, t: progress.append((d, t)))
    assert isinstance(result, PullResult)
    # labels (gzip-encoded: total unknown) then the media zip (Content-Length known)
    assert progress[0][1] is None and progress[-1] == (len(server.media[DS3D]),) * 2
    assert _tree(dest) == {
        "manifest.json",
        "dataset.json",
        "files.json",
        "labels.json",
        "profile.json",
        "paint/3d_point.dpn",
        "paint/3d_point.json",
        "media/dataset.zip",
    }
    assert json.loads((dest / "dataset.json").read_text()) == sample("dataset_3d.json")
    assert json.loads((dest / "files.json").read_text()) == sample("files_3d.json")
    assert json.loads((dest / "labels.json").read_text()) == sample("labels_3d.json")
    assert json.loads((dest / "profile.json").read_text()) == sample("profile_lidar.json")
    assert (dest / "paint/3d_point.dpn").read_bytes() == server.paint[DS3D][0]
    assert json.loads((dest / "paint/3d_point.json").read_text()) == sample(
        "paint_metadata_3d.json"
    )
    assert (dest / "media/dataset.zip").read_bytes() == server.media[DS3D]

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["snapshot_version"] == 1
    assert manifest["dataset_id"] == DS3D
    assert manifest["label_set"] == "default" and manifest["stage"] is None
    assert manifest["query"] == {
        "final": "true",
        "labels_with_file_ids_order": "true",
        "labelSetId": "default",
    }
    assert manifest["tool_version"] == __version__
    assert manifest["dataset_type"] == "3d"
    assert manifest["fetched_at"].endswith("Z")
    assert set(manifest["files"]) == _tree(dest) - {"manifest.json"}
    for rel, entry in manifest["files"].items():
        data = (dest / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    labels_request = server.requests(f"/datasets/{DS3D}/labels$")[-1]
    assert labels_request.query == manifest["query"]
    assert result.labels == 4 and result.changes is None and result.added == 4
    assert result.paint and result.media
    assert result.summary() == f"{DS3D}: 4 labels (first pull)"
    assert _leftovers(tmp_path) == []


def test_pull_images_dataset_defaults(client: Client, tmp_path: Path) -> None:
    result = client.pull(DSIMG, tmp_path / "img", stage="Labelling", label_set="default")
    assert _tree(tmp_path / "img") == {
        "manifest.json",
        "dataset.json",
        "files.json",
        "labels.json",
        "images.json",  # image sizes, read by range requests from the uploaded zip
    }
    manifest = json.loads((tmp_path / "img/manifest.json").read_text())
    assert manifest["stage"] == "Labelling" and manifest["query"]["stageId"] == "Labelling"
    assert manifest["dataset_type"] == "images"
    assert not result.paint and not result.media and result.labels == 3
    client.pull(DSIMG, tmp_path / "img2", media=True)
    assert "media/dataset.zip" in _tree(tmp_path / "img2")


def test_pull_3d_without_paint_labels_and_without_media(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    del server.paint[DS3D]
    result = client.pull(DS3D, tmp_path / "s", media=False)
    assert not result.paint and not result.media
    assert not (tmp_path / "s/paint").exists() and not (tmp_path / "s/media").exists()
    assert server.count("/uploaded_dataset_signed_media_link$") == 0


def test_second_pull_reports_changes(client: Client, server: DeepenServer, tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    client.pull(DS3D, dest, media=False)
    labels = server.labels[DS3D]["labels"]
    labels["0.pcd"][0]["version"] = 3  # car:1 lidar: modified by version
    labels["0.pcd"][2]["update_time_millis"] += 1  # car:1 camera_0: modified by update time
    del labels["0.pcd"][1]  # pedestrian:1 removed
    labels["1.pcd"].append({**labels["1.pcd"][0], "label_id": "car:2", "version": 1})  # added
    result = client.pull(DS3D, dest, media=False)
    assert result.changes == LabelChanges(added=1, removed=1, modified=2, unchanged=1)
    assert (result.added, result.removed, result.modified) == (1, 1, 2)
    assert result.summary() == f"{DS3D}: 4 labels; since last pull: 1 added, 1 removed, 2 modified"
    assert json.loads((dest / "labels.json").read_text()) == server.labels[DS3D]
    again = client.pull(DS3D, dest, media=False)
    assert again.changes == LabelChanges(unchanged=4) and not again.changes.changed
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("path", "kind", "error"),
    [
        ("/uploaded_dataset_signed_media_link$", "status", errors.ServerError),
        (f"/datasets/{DS3D}/labels$", "truncate", errors.TransportError),
        ("/paint_labels$", "drop", errors.TransportError),
        ("^/storage/media/", "status", errors.ServerError),
    ],
)
def test_interrupted_pull_leaves_previous_snapshot(
    client: Client,
    server: DeepenServer,
    tmp_path: Path,
    path: str,
    kind: str,
    error: type[Exception],
) -> None:
    dest = tmp_path / "snap"
    client.pull(DS3D, dest)
    before = {rel: (dest / rel).read_bytes() for rel in _tree(dest)}
    server.labels[DS3D]["labels"]["0.pcd"][0]["version"] = 99
    server.fail(path, kind, times=100)
    with pytest.raises(error):
        client.pull(DS3D, dest)
    assert {rel: (dest / rel).read_bytes() for rel in _tree(dest)} == before
    assert _leftovers(tmp_path) == []


def test_interrupted_first_pull_leaves_nothing(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    server.fail("/files$", status=403, times=1)
    with pytest.raises(errors.AuthenticationError):
        client.pull(DS3D, tmp_path / "snap")
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset(client: Client, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFoundError):
        client.pull("nope", tmp_path / "snap")
    assert list(tmp_path.iterdir()) == []


def test_dest_that_is_a_file(client: Client, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(errors.DeepenExportError, match="not a snapshot folder"):
        client.pull(DS3D, tmp_path / "f")


def test_pull_many(client: Client, server: DeepenServer, tmp_path: Path) -> None:
    results = client.pull_many([DS3D, DSIMG], tmp_path / "root", media=False)
    assert set(results) == {DS3D, DSIMG}
    for dataset_id in (DS3D, DSIMG):
        manifest = json.loads((tmp_path / "root" / dataset_id / "manifest.json").read_text())
        assert manifest["dataset_id"] == dataset_id
    mixed = client.pull_many([DSIMG, "missing"], tmp_path / "root", return_exceptions=True)
    assert isinstance(mixed["missing"], errors.NotFoundError)
    assert mixed[DSIMG].changes == LabelChanges(unchanged=3)
    with pytest.raises(errors.NotFoundError):
        client.pull_many(["missing", DSIMG], tmp_path / "root")
    with pytest.raises(ValueError, match="cannot name"):
        client.pull_many(["../escape"], tmp_path / "root")


# -- change detection on the raw JSON (pure) -----------------------------------------------------


def test_label_index_reads_all_three_shapes() -> None:
    grouped = sample("labels_images.json")
    listed = {"labels": sample("labels_images_all.json")["all_labels"]}
    every = sample("labels_images_all.json")
    assert label_index(grouped) == label_index(listed) == label_index(every)
    assert len(label_index(grouped)) == 3
    several = label_index(sample("labels_of_dataset_ids.json"))
    assert {k[0] for k in several} == {DSIMG}
    with pytest.raises(errors.PayloadError):
        label_index({"something": []})
    with pytest.raises(errors.PayloadError):
        label_index({"labels": 3})


def test_diff_labels() -> None:
    old = label_index(
        {"labels": [{"file_id": "a", "label_id": "car:1", "version": 1, "update_time_millis": 5}]}
    )
    same = diff_labels(old, old)
    assert same == LabelChanges(unchanged=1) and not same.changed
    new = label_index(
        {
            "labels": {
                "a": [{"label_id": "car:1", "version": 1, "update_time_millis": 6}],
                "b": [{"label_id": "car:1", "version": 1, "update_time_millis": 5}],
            }
        }
    )
    assert diff_labels(old, new) == LabelChanges(added=1, modified=1)
    assert diff_labels(new, {}) == LabelChanges(removed=2)


def test_keyboard_interrupt_mid_pull_keeps_previous(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "snap"
    client.pull(DSIMG, dest)
    before = {rel: (dest / rel).read_bytes() for rel in _tree(dest)}

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "download_uploaded_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.pull(DSIMG, dest, media=True)
    assert {rel: (dest / rel).read_bytes() for rel in _tree(dest)} == before
    assert _leftovers(tmp_path) == []


def test_snapshot_left_aside_by_a_killed_pull_is_restored(client: Client, tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    client.pull(DSIMG, dest)
    aside = tmp_path / ".snap.old-deadbeef"
    dest.rename(aside)  # as if killed between the two renames of the swap
    result = client.pull(DSIMG, dest)
    assert result.changes == LabelChanges(unchanged=3)  # compared against the restored snapshot
    assert _leftovers(tmp_path) == []
