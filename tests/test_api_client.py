"""The Deepen API client against a Deepen-like server on 127.0.0.1 (real sockets, real HTTP)."""

from __future__ import annotations

import email.utils
import json
import logging
import pickle
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deepen_export import errors
from deepen_export.api import (
    Client,
    PaintLabels,
    ProcessingStatus,
    RetryPolicy,
    parse_retry_after,
    upload_name,
)
from tests._deepen_server import CLIENT_ID, DS3D, DSIMG, TOKEN, DeepenServer, sample


class Sleeps(list[float]):
    """A ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(server: DeepenServer, sleeps: Sleeps) -> Iterator[Client]:
    policy = RetryPolicy(
        max_retries=3, max_time=60.0, wait_initial=0.01, wait_max=0.05, jitter=0.0, sleep=sleeps
    )
    with Client(CLIENT_ID, TOKEN, base_url=server.url, timeout=2.0, retry=policy) as c:
        yield c


# -- construction and credentials -----------------------------------------------------------------


def test_credentials_from_environment(
    server: DeepenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPEN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    monkeypatch.setenv("DEEPEN_API_URL", server.url + "/")
    with Client() as client:
        assert client.base_url == server.url
        assert len(client.list_datasets()) == 2
    assert server.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_default_base_url_and_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DEEPEN_CLIENT_ID", "DEEPEN_API_TOKEN", "DEEPEN_API_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(errors.AuthenticationError, match="DEEPEN_API_TOKEN"):
        Client()
    with Client(token="t") as client:
        assert client.base_url == "https://tools.deepen.ai/api/v2"
        with pytest.raises(errors.DeepenExportError, match="DEEPEN_CLIENT_ID"):
            client.list_datasets()  # fails before any network access


def test_injected_http_client_is_used_and_not_closed(server: DeepenServer) -> None:
    with httpx.Client() as http:
        with Client(CLIENT_ID, TOKEN, base_url=server.url, http=http) as client:
            assert client.get_dataset(DS3D)["dataset_type"] == "3d"
        assert not http.is_closed


# -- every endpoint --------------------------------------------------------------------------------


def test_list_datasets_both_endpoints(client: Client, server: DeepenServer) -> None:
    assert client.list_datasets() == sample("datasets.json")
    assert client.list_dataset_ids() == sample("datasets_ids.json")["datasets"]
    assert server.count(f"/clients/{CLIENT_ID}/datasets$") == 1
    assert server.count(f"/clients/{CLIENT_ID}/datasets_ids$") == 1


def test_get_dataset_and_status(client: Client) -> None:
    assert client.get_dataset(DS3D) == sample("dataset_3d.json")
    status = client.dataset_status(DS3D)
    assert status.state == "processed"
    assert status.counts["QA"] == {
        "done": 1,
        "failed": 0,
        "in_progress": 1,
        "ready": 0,
        "waiting": 0,
    }
    assert client.dataset_status(DSIMG).state == "labelled"  # older form, every file done


def test_files_and_one_file(client: Client) -> None:
    assert client.list_files(DS3D) == sample("files_3d.json")["files"]
    assert client.get_file(DS3D, "1.pcd")["status"] == "in_progress"
    with pytest.raises(errors.NotFoundError):
        client.get_file(DS3D, "nope.pcd")


def test_labels_query_parameters(client: Client, server: DeepenServer) -> None:
    body = client.get_labels(
        DS3D, labels_with_file_ids_order=True, final=True, label_set="default", stage="QA"
    )
    assert body == sample("labels_3d.json")
    assert server.seen[-1].query == {
        "final": "true",
        "labels_with_file_ids_order": "true",
        "labelSetId": "default",
        "stageId": "QA",
    }
    body = client.get_labels(DSIMG, filter_existing_categories=True)
    assert body == sample("labels_images_all.json")
    assert server.seen[-1].query == {"final": "true", "filter_existing_categories": "true"}
    body = client.get_labels(DSIMG, final=False, all=True)
    assert len(body["labels"]) == 3
    assert server.seen[-1].query == {"final": "false", "all": "true"}


def test_download_labels_streams_to_disk(client: Client, tmp_path: Path) -> None:
    dest = client.download_labels(
        DS3D, tmp_path / "deep" / "labels.json", labels_with_file_ids_order=True
    )
    assert json.loads(dest.read_text()) == sample("labels_3d.json")
    assert not list(tmp_path.rglob("*.part"))


def test_file_labels_unconfirmed_endpoint_and_concurrency(
    client: Client, server: DeepenServer
) -> None:
    one = client.get_file_labels(DSIMG, "000019.png", stage="Labelling")
    assert [lab["label_id"] for lab in one["labels"]] == ["bus:1", "road:1"]
    many = client.labels_for_files(DSIMG, ["000019.png", "000020.png"])
    assert {k: len(v["labels"]) for k, v in many.items()} == {"000019.png": 2, "000020.png": 1}
    assert server.count("/files/000020.png/labels$") == 1


def test_labels_of_several_datasets(client: Client, server: DeepenServer) -> None:
    body = client.labels_of_datasets([DSIMG, DS3D], label_set="default")
    assert {lab["dataset_id"] for lab in body["labels"]} == {DSIMG, DS3D}
    seen = server.seen[-1]
    assert seen.method == "POST" and seen.query == {"labelSetId": "default"}
    assert json.loads(seen.body) == {"dataset_ids": [DSIMG, DS3D]}


def test_paint_labels_bytes_and_metadata(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    paint = client.get_paint_labels(DS3D, stage="QA")
    assert isinstance(paint, PaintLabels)
    assert paint.data == server.paint[DS3D][0]  # raw body, not inflated by the client
    assert zlib.decompress(paint.data) == bytes([1, 1, 2, 0, 2, 0, 0, 1, 2])
    assert paint.metadata == sample("paint_metadata_3d.json")
    assert server.seen[-1].query == {"stageId": "QA", "sensor_id": "lidar", "labelSetId": "default"}
    assert "bytes" in repr(paint)
    meta = client.download_paint_labels(DS3D, tmp_path / "p.dpn")
    assert meta == paint.metadata and (tmp_path / "p.dpn").read_bytes() == paint.data
    with pytest.raises(errors.NotFoundError):
        client.get_paint_labels(DSIMG)


def test_media_link_and_download_without_token(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    link = client.signed_media_link(DS3D)
    assert "X-Goog-Signature" in link
    path = client.download_uploaded_dataset(DS3D, tmp_path / "media" / "dataset.zip")
    assert path.read_bytes() == server.media[DS3D]
    storage = server.requests("^/storage/")
    assert len(storage) == 1 and "Authorization" not in storage[0].headers


def test_profiles_list_get_create(client: Client, server: DeepenServer) -> None:
    assert [p["profile_id"] for p in client.list_profiles()] == ["prof_lidar", "prof_img"]
    assert client.get_profile("prof_lidar") == sample("profile_lidar.json")
    features = {"box": {"label_category_ids": ["car"], "attributes": {}}}
    new_id = client.create_profile({"profile_name": "boxes", "features": features})
    assert client.get_profile(new_id)["features"] == features
    with pytest.raises(ValueError, match="profile_name"):
        client.create_profile({"features": features})
    with pytest.raises(errors.NotFoundError):
        client.get_profile("missing")


def test_create_dataset_takes_file_size_from_file(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(b"x" * 1234)
    created = client.create_dataset(
        "drive",
        zip_path,
        dataset_type="3d",
        dataset_format="json",
        labelling_mode="label_by_label",
        labelling_profile_id="prof_lidar",
        tags=["a"],
        extra={"fps": 10},
    )
    sent = json.loads(server.requests("/datasets$")[-1].body)
    assert sent == {
        "dataset_name": "drive",
        "dataset_type": "3d",
        "files": [{"file_size": 1234, "file_type": "application/zip"}],
        "dataset_format": "json",
        "labelling_mode": "label_by_label",
        "labelling_profile_id": "prof_lidar",
        "tags": ["a"],
        "fps": 10,
    }
    assert created["files"][0]["resumable_upload_url"].startswith(server.origin)
    profile = {"profile_name": "inline", "features": {"box": {"label_category_ids": ["car"]}}}
    client.create_dataset("img", [zip_path], dataset_type="images", labelling_profile=profile)
    assert json.loads(server.requests("/datasets$")[-1].body)["labelling_profile"] == profile
    with pytest.raises(ValueError, match="not both"):
        client.create_dataset(
            "x", zip_path, dataset_type="3d", labelling_profile_id="p", labelling_profile=profile
        )
    with pytest.raises(errors.RequestRejectedError, match="400"):
        client.create_dataset("x", zip_path, dataset_type="3d", labelling_profile_id="unknown")


def test_create_upload_process_wait_delete(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(bytes(range(256)) * 3000)  # 768000 bytes: 3 chunks of 256 KiB
    progress: list[tuple[int, int]] = []
    created = client.create_and_upload(
        "drive",
        zip_path,
        dataset_type="3d",
        chunk_size=256 * 1024,
        progress=lambda d, t: progress.append((d, t)),
    )
    dataset_id = created["dataset_id"]
    upload = next(iter(server.uploads.values()))
    assert bytes(upload["data"]) == zip_path.read_bytes()
    assert progress[-1] == (768000, 768000) and len(progress) == 3
    assert server.processed == [(dataset_id, "data.zip")]
    seen: list[ProcessingStatus] = []
    final = client.wait_for_processing(dataset_id, on_progress=seen.append, poll_initial=0.01)
    assert [s.state for s in seen] == ["processing", "processed"]
    assert final.counts == {
        "Labelling": {"done": 0, "failed": 0, "in_progress": 0, "ready": 2, "waiting": 0}
    }
    server.status_plan.clear()
    client.delete_dataset(dataset_id)
    with pytest.raises(errors.NotFoundError):
        client.get_dataset(dataset_id)


def test_upload_name() -> None:
    assert (
        upload_name("https://x/upload/storage/v1/b/b/o?uploadType=resumable&name=a%2Fb%2Fc.zip")
        == "c.zip"
    )
    assert upload_name("https://x/upload/b/json_data.zip") == "json_data.zip"


# -- wait_for_processing with both status forms ---------------------------------------------------


def _new_form(stage: str, status: str, **counts: dict[str, int]) -> dict[str, object]:
    return {
        "dataset_id": "d",
        "current_stage": stage,
        "current_stage_status": status,
        "pipeline_status_by_label_set_id": {"default": counts},
    }


def test_wait_new_form_until_labelled(client: Client, server: DeepenServer) -> None:
    server.status_plan["d"] = [
        _new_form("FileUpload", "waiting"),
        _new_form("Processing", "in_progress"),
        _new_form(
            "Labelling", "in_progress", Labelling={"done": 1, "in_progress": 1}, QA={"waiting": 2}
        ),
        _new_form("QA", "done", Labelling={"done": 2}, QA={"done": 2}),
    ]
    seen: list[ProcessingStatus] = []
    final = client.wait_for_processing(
        "d", until="labelled", on_progress=seen.append, poll_initial=0.01
    )
    assert [s.state for s in seen] == ["uploading", "processing", "processed", "labelled"]
    assert final.counts["QA"] == {"done": 2}
    assert "Labelling in_progress 1, done 1 · QA waiting 2" in seen[2].describe()


def test_wait_old_form(client: Client, server: DeepenServer) -> None:
    server.status_plan["d"] = [
        {"processing_status": "files_to_be_uploaded"},
        {
            "processing_status": "files_uploaded",
            "processing_status_message": "Processing Json Files",
        },
        {
            "processing_status": "files_getting_labelled",
            "pipeline_stage_status": {"Labelling": {"ready": 3}},
        },
    ]
    seen: list[str] = []
    final = client.wait_for_processing(
        "d", on_progress=lambda s: seen.append(s.state), poll_initial=0.01
    )
    assert seen == ["uploading", "processing", "processed"]
    assert final.counts == {"Labelling": {"ready": 3}}


@pytest.mark.parametrize(
    "resource",
    [
        {"processing_status": "preprocessing_error", "processing_status_message": "bad zip"},
        _new_form("Processing", "failed"),
    ],
)
def test_wait_stops_on_error(
    client: Client, server: DeepenServer, resource: dict[str, object]
) -> None:
    server.status_plan["d"] = [{"processing_status": "files_uploaded"}, resource]
    with pytest.raises(errors.DeepenExportError, match="failed processing"):
        client.wait_for_processing("d", poll_initial=0.01)


def test_wait_timeout(client: Client, server: DeepenServer) -> None:
    server.status_plan["d"] = [_new_form("Processing", "in_progress")]
    with pytest.raises(errors.DeepenExportError, match="not processed after"):
        client.wait_for_processing("d", timeout=0.05, poll_initial=0.02, sleep=time.sleep)


def test_wait_backs_off(client: Client, server: DeepenServer) -> None:
    server.status_plan["d"] = [_new_form("Processing", "in_progress")] * 5 + [
        _new_form("Labelling", "ready")
    ]
    waits = Sleeps()
    client.wait_for_processing("d", poll_initial=1.0, poll_max=3.0, sleep=waits)
    assert waits == [1.0, 1.5, 2.25, 3.0, 3.0]


# -- error mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "hint"),
    [
        (401, errors.AuthenticationError, "DEEPEN_API_TOKEN"),
        (403, errors.AuthenticationError, "DEEPEN_API_TOKEN"),
        (404, errors.NotFoundError, "check the dataset"),
        (400, errors.RequestRejectedError, "refused"),
        (409, errors.RequestRejectedError, "refused"),
        (422, errors.RequestRejectedError, "refused"),
        (418, errors.RequestRejectedError, "refused"),
        (500, errors.ServerError, "try again later"),
        (502, errors.ServerError, "try again later"),
        (503, errors.ServerError, "try again later"),
        (429, errors.RateLimitedError, "too many requests"),
    ],
)
def test_status_code_mapping(
    client: Client,
    server: DeepenServer,
    sleeps: Sleeps,
    status: int,
    cls: type[errors.APIError],
    hint: str,
) -> None:
    server.fail(f"/datasets/{DS3D}$", status=status, times=10, body={"message": "nope"})
    with pytest.raises(cls, match=hint) as info:
        client.get_dataset(DS3D)
    exc = info.value
    assert isinstance(exc, errors.APIError) and isinstance(exc, errors.DeepenExportError)
    assert exc.response is not None and exc.response.status_code == status
    assert exc.request is not None and exc.request.url.path.endswith(DS3D)
    assert "(nope)" in str(exc) and f"GET {server.url}/datasets/{DS3D} returned {status}" in str(
        exc
    )
    retried = status in (429, 500, 502, 503)
    assert server.count(f"/datasets/{DS3D}$") == (4 if retried else 1)
    assert len(sleeps) == (3 if retried else 0)


def test_wrong_token_is_authentication_error(server: DeepenServer) -> None:
    with (
        Client(CLIENT_ID, "wrong-token", base_url=server.url) as client,
        pytest.raises(errors.AuthenticationError, match="401"),
    ):
        client.list_datasets()
    assert server.count("/datasets$") == 1


def test_retry_after_seconds_and_http_date_are_honoured(
    client: Client, server: DeepenServer, sleeps: Sleeps
) -> None:
    server.fail("/datasets_ids$", status=429, headers={"Retry-After": "7"})
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.fail("/datasets_ids$", status=429, headers={"Retry-After": later})
    assert len(client.list_dataset_ids()) == 2
    assert sleeps[0] == 7.0
    assert 20 < sleeps[1] <= 30
    assert server.count("/datasets_ids$") == 3


def test_rate_limited_error_keeps_retry_after(server: DeepenServer) -> None:
    policy = RetryPolicy(max_retries=0)
    server.fail("/datasets_ids$", status=429, headers={"Retry-After": "3"})
    with (
        Client(CLIENT_ID, TOKEN, base_url=server.url, retry=policy) as client,
        pytest.raises(errors.RateLimitedError) as info,
    ):
        client.list_dataset_ids()
    assert info.value.retry_after == 3.0 and "wait 3 s" in str(info.value)


def test_retry_after_beyond_time_budget_raises_at_once(
    server: DeepenServer, sleeps: Sleeps
) -> None:
    policy = RetryPolicy(max_retries=5, max_time=10.0, sleep=sleeps)
    server.fail("/datasets_ids$", status=429, headers={"Retry-After": "3600"})
    with (
        Client(CLIENT_ID, TOKEN, base_url=server.url, retry=policy) as client,
        pytest.raises(errors.RateLimitedError),
    ):
        client.list_dataset_ids()
    assert sleeps == [] and server.count("/datasets_ids$") == 1


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(wait_initial=1.0, wait_max=8.0, jitter=0.5)
    for retry, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delay = policy.backoff(retry)
        assert base <= delay <= base + 0.5
    rate = errors.RateLimitedError("x", retry_after=20.0)
    assert policy.backoff(1, rate) == 20.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("12", 12.0), (" 3 ", 3.0), ("-5", 0.0), ("garbage", None), (None, None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_server_errors_recover(client: Client, server: DeepenServer, sleeps: Sleeps) -> None:
    server.fail("/files$", status=500, times=2)
    assert len(client.list_files(DS3D)) == 2
    assert server.count("/files$") == 3 and sleeps == [0.01, 0.02]


def test_dropped_connection_is_retried(client: Client, server: DeepenServer) -> None:
    server.fail("/files$", "drop", times=2)
    assert len(client.list_files(DS3D)) == 2
    assert server.count("/files$") == 3


def test_dropped_connection_exhausts_retries(client: Client, server: DeepenServer) -> None:
    server.fail("/files$", "drop", times=10)
    with pytest.raises(errors.TransportError, match="dropped") as info:
        client.list_files(DS3D)
    assert info.value.response is None and info.value.request is not None
    assert server.count("/files$") == 4


def test_truncated_body_is_transport_error_and_retried(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    server.fail("/labels$", "truncate", times=1)
    assert client.get_labels(DS3D, labels_with_file_ids_order=True) == sample("labels_3d.json")
    server.fail("/labels$", "truncate", times=1)
    path = client.download_labels(DS3D, tmp_path / "l.json", labels_with_file_ids_order=True)
    assert json.loads(path.read_text()) == sample("labels_3d.json")
    server.fail("/labels$", "truncate", times=10)
    with pytest.raises(errors.TransportError, match="cut short"):
        client.download_labels(DS3D, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "t.json.part").exists()


def test_slow_response_times_out_and_is_retried(server: DeepenServer, sleeps: Sleeps) -> None:
    policy = RetryPolicy(max_retries=1, wait_initial=0.01, jitter=0.0, sleep=sleeps)
    server.fail(f"/datasets/{DS3D}$", "slow", delay=1.0, times=1)
    with Client(CLIENT_ID, TOKEN, base_url=server.url, timeout=0.25, retry=policy) as client:
        assert client.get_dataset(DS3D)["dataset_id"] == DS3D
        server.fail(f"/datasets/{DS3D}$", "slow", delay=1.0, times=2)
        with pytest.raises(errors.TransportError, match="timed out"):
            client.get_dataset(DS3D)


def test_connection_refused_is_transport_error(sleeps: Sleeps) -> None:
    srv = DeepenServer()
    url = srv.url
    srv.httpd.server_close()  # the port is free again: nothing listens
    policy = RetryPolicy(max_retries=2, wait_initial=0.01, jitter=0.0, sleep=sleeps)
    with (
        Client(CLIENT_ID, TOKEN, base_url=url, retry=policy) as client,
        pytest.raises(errors.TransportError, match="DEEPEN_API_URL"),
    ):
        client.list_datasets()
    assert len(sleeps) == 2


def test_not_json_is_payload_error(client: Client, server: DeepenServer) -> None:
    server.fail(f"/datasets/{DS3D}$", status=200, body="<html>maintenance</html>")
    with pytest.raises(errors.PayloadError, match="not JSON"):
        client.get_dataset(DS3D)
    server.fail("/datasets_ids$", status=200, body={"nope": []})
    with pytest.raises(errors.PayloadError, match="datasets"):
        client.list_dataset_ids()


# -- the token never leaks --------------------------------------------------------------------------


def test_token_never_leaks(
    client: Client, server: DeepenServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert TOKEN not in repr(client._auth)
    raised: list[errors.APIError] = []
    # The server echoes the token in its error body: the message must still not show it.
    for status in (400, 401, 403, 404, 409, 429, 500):
        server.fail("/files$", status=status, times=10, body={"error": f"bad token {TOKEN}"})
        with pytest.raises(errors.APIError) as info:
            client.list_files(DS3D)
        raised.append(info.value)
        server.faults.clear()
    server.fail("/files$", "drop", times=10)
    with pytest.raises(errors.TransportError) as tinfo:
        client.list_files(DS3D)
    raised.append(tinfo.value)
    server.faults.clear()
    assert {type(e) for e in raised} == {
        errors.RequestRejectedError,
        errors.AuthenticationError,
        errors.NotFoundError,
        errors.RateLimitedError,
        errors.ServerError,
        errors.TransportError,
    }
    for exc in raised:
        assert TOKEN not in str(exc) and TOKEN not in repr(exc)
        assert exc.request is not None
        assert TOKEN not in repr(dict(exc.request.headers))
        assert TOKEN not in pickle.dumps(str(exc.args)).decode("latin-1")
    client.pull(DS3D, tmp_path / "snap")
    for path in (tmp_path / "snap").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
    assert TOKEN not in caplog.text
    assert any("retry" in r.getMessage() for r in caplog.records)  # the retries were logged


# -- status parsing (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "state"),
    [
        ({}, "uploading"),
        ({"processing_status": "files_to_be_uploaded"}, "uploading"),
        ({"processing_status": "files_uploaded"}, "processing"),
        ({"processing_status": "preprocessing_error"}, "error"),
        ({"processing_status": "files_getting_labelled"}, "processed"),
        (
            {
                "processing_status": "files_getting_labelled",
                "pipeline_status": {"Labelling": {"done": 4}},
            },
            "labelled",
        ),
        (_new_form("FileUpload", "waiting"), "uploading"),
        (_new_form("Processing", "in_progress"), "processing"),
        (_new_form("Processing", "done"), "processed"),
        (_new_form("Labelling", "ready", Labelling={"ready": 2}), "processed"),
        (_new_form("QA", "done"), "labelled"),
        (_new_form("QA", "in_progress", Labelling={"done": 2}, QA={"in_progress": 1}), "processed"),
        ({**_new_form("Labelling", "ready"), "processing_status": "preprocessing_error"}, "error"),
        (sample("dataset_3d.json"), "processed"),
        (sample("dataset_images.json"), "labelled"),
    ],
)
def test_processing_status_forms(resource: dict[str, object], state: str) -> None:
    assert ProcessingStatus.from_dataset(resource).state == state


def test_processing_status_other_label_set() -> None:
    resource = {
        "current_stage": "Labelling",
        "current_stage_status": "ready",
        "pipeline_status_by_label_set_id": {
            "default": {"L": {"ready": 1}},
            "sem": {"L": {"done": 5}},
        },
    }
    assert ProcessingStatus.from_dataset(resource, "sem").counts == {"L": {"done": 5}}
    assert ProcessingStatus.from_dataset(resource, "sem").state == "labelled"


def test_signed_url_query_never_in_errors(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    server.fail("^/storage/media/", status=403, times=1)
    with pytest.raises(errors.AuthenticationError) as info:
        client.download_uploaded_dataset(DS3D, tmp_path / "m.zip")
    assert "X-Goog-Signature" not in str(info.value) and "sig" not in str(info.value).split("/")[-1]
    assert f"/storage/media/{DS3D}.zip" in str(info.value)


def test_concurrency_is_bounded(server: DeepenServer) -> None:
    server.fail("/labels$", "slow", delay=0.1, times=100)
    with Client(CLIENT_ID, TOKEN, base_url=server.url, max_concurrency=2) as client:
        file_ids = [f"{i}.png" for i in range(6)]
        bodies = client.labels_for_files(DSIMG, file_ids)
    assert list(bodies) == file_ids
    assert server.max_inflight == 2


def test_doctests_of_the_api_package() -> None:
    import doctest
    import importlib

    for name in ("_client", "_errors", "_pull", "_retry", "_status", "_upload", "__init__"):
        module = importlib.import_module(
            f"deepen_export.api.{name}" if name != "__init__" else "deepen_export.api"
        )
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name


def test_non_idempotent_posts_are_not_repeated_after_5xx_or_drop(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(b"z")
    create = f"/clients/{CLIENT_ID}/datasets$"
    server.fail(create, status=500, method="POST")
    with pytest.raises(errors.ServerError):
        client.create_dataset("x", zip_path, dataset_type="3d")
    server.fail(create, "drop", method="POST")
    with pytest.raises(errors.TransportError):
        client.create_dataset("x", zip_path, dataset_type="3d")
    assert server.count(create, "POST") == 2  # the server may have acted: never sent twice
    server.fail(create, status=429, method="POST", headers={"Retry-After": "0"})
    assert client.create_dataset("x", zip_path, dataset_type="3d")["dataset_id"]
    assert server.count(create, "POST") == 4  # a 429 was refused before any work: repeated
    server.fail("/labels_of_dataset_ids$", status=500)
    assert client.labels_of_datasets([DSIMG])["labels"]  # a read sent as POST: retried
    server.fail("/labelling_profiles$", status=503, method="POST")
    with pytest.raises(errors.ServerError):
        client.create_profile({"profile_name": "p"})
    assert server.count("/labelling_profiles$", "POST") == 1


def test_public_entry_points() -> None:
    import deepen_export
    import deepen_export.api as api

    assert deepen_export.Client is Client
    assert api.__all__ == sorted(api.__all__, key=lambda n: (not n.isupper(), n))
    for name in api.__all__:
        assert getattr(api, name) is not None


def test_api_redirect_is_not_followed_with_the_token(client: Client, server: DeepenServer) -> None:
    server.fail(
        f"/datasets/{DS3D}$",
        status=301,
        headers={"Location": "https://elsewhere.example/api/v2/x?k=v"},
        body="",
    )
    with pytest.raises(errors.RequestRejectedError, match="DEEPEN_API_URL") as info:
        client.get_dataset(DS3D)
    assert "https://elsewhere.example/api/v2/x" in str(info.value) and "k=v" not in str(info.value)
    assert server.count(f"/datasets/{DS3D}$") == 1
