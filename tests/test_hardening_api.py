"""Issue 16, fetch side: leaks (class 1), bad answers replacing snapshots (7), unbounded downloads
(9), messages of uploads and broken bodies (10), leftovers of killed pulls (11).

Everything runs against the Deepen-like loopback server of ``tests/_deepen_server.py``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from deepen_export import errors
from deepen_export.api import Client, RetryPolicy
from deepen_export.api._client import DownloadLimits
from deepen_export.api._errors import REDACTED, error_for_response
from deepen_export.api._upload import IncompleteUploadError
from deepen_export.cli import main
from tests._deepen_server import CLIENT_ID, DSIMG, TOKEN, DeepenServer


def _policy() -> RetryPolicy:
    return RetryPolicy(
        max_retries=2, wait_initial=0.001, wait_max=0.01, jitter=0.0, sleep=lambda s: None
    )


@pytest.fixture
def client(server: DeepenServer) -> Iterator[Client]:
    with Client(CLIENT_ID, TOKEN, base_url=server.url, timeout=5.0, retry=_policy()) as c:
        yield c


@pytest.fixture
def env(server: DeepenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DeepenServer:
    monkeypatch.setenv("DEEPEN_API_URL", server.url)
    monkeypatch.setenv("DEEPEN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    monkeypatch.setenv("DEEPEN_EXPORT_STATE_DIR", str(tmp_path / "state"))
    return server


def _pieces(secret: str, n: int = 6) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


# -- class 1: the token never reaches a message, wherever the server puts it ---------------------


@pytest.mark.parametrize("wrap", ["plain", "json"])
def test_token_echoed_at_every_offset_of_a_long_body_is_never_shown(wrap: str) -> None:
    token = secrets.token_urlsafe(33)  # 44 characters, like the red team's
    request = httpx.Request("GET", "https://tools.deepen.ai/api/v2/datasets/x/labels")
    for offset in range(0, 420):
        text = "e" * offset + token + " tail" * 40
        body = json.dumps({"message": text}) if wrap == "json" else text
        response = httpx.Response(400, text=body, request=request)
        message = str(error_for_response(response, secret=token))
        leaked = [p for p in _pieces(token) if p in message]
        assert not leaked, (offset, message)
        if offset + len(token) <= 190:  # wholly inside the shown part: blanked, not cut
            assert REDACTED in message, offset


def test_token_in_a_live_error_body_and_paint_header_is_redacted(
    client: Client, server: DeepenServer
) -> None:
    server.fail("/labels$", status=400, body={"message": "x" * 170 + TOKEN + "y" * 50})
    with pytest.raises(errors.RequestRejectedError) as info:
        client.get_labels(DSIMG)
    assert not [p for p in _pieces(TOKEN) if p in str(info.value)]
    server.fail(
        "/paint_labels$", status=200, body=b"x", headers={"paint-metadata": "{" + "a" * 80 + TOKEN}
    )
    with pytest.raises(errors.PayloadError) as info2:
        client.get_paint_labels(DSIMG)
    assert not [p for p in _pieces(TOKEN) if p in str(info2.value)]


# -- class 7: a bad answer never replaces a good snapshot ----------------------------------------


def _snapshot_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "body",
    [
        {"labels": [1, "x", None]},
        {"labels": {"a.png": 5}},
        {"labels": [{"file_id": "a.png"}]},
        [1, 2, 3],
        {"nothing": []},
    ],
    ids=["scalars", "file-maps-to-number", "no-label-id", "list-body", "no-labels-key"],
)
def test_malformed_labels_answer_keeps_the_previous_snapshot(
    client: Client, server: DeepenServer, tmp_path: Path, body: object
) -> None:
    dest = tmp_path / "snap"
    first = client.pull(DSIMG, dest)
    assert first.labels > 0
    before = _snapshot_bytes(dest)
    server.fail("/labels$", status=200, body=body, times=10)
    with pytest.raises(errors.PayloadError, match=r"GET datasets/.*/labels answered .*kept"):
        client.pull(DSIMG, dest)
    assert _snapshot_bytes(dest) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("payload", "ctype", "expect"),
    [
        (b"<!DOCTYPE html><html><body>Login</body></html>", "text/html", "HTML page"),
        (b'{"labels": {"0.png": [', "application/json", "cut short or malformed"),
    ],
)
def test_html_or_broken_json_in_a_200_labels_answer_names_the_endpoint(
    env: DeepenServer, tmp_path: Path, payload: bytes, ctype: str, expect: str
) -> None:
    env.fail("/labels$", status=200, body=payload, headers={"Content-Type": ctype}, times=10)
    res = CliRunner().invoke(main, ["pull", DSIMG, "-o", str(tmp_path / "snap")])
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in res.output
    assert f"GET datasets/{DSIMG}/labels" in line and expect in line
    assert "retry" in line  # says what to do
    assert not (tmp_path / "snap").exists()


def test_pull_that_loses_labels_says_so(
    client: Client, server: DeepenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dest = tmp_path / "snap"
    n = client.pull(DSIMG, dest).labels
    server.labels[DSIMG] = {"labels": {}}
    with caplog.at_level(logging.WARNING, logger="deepen_export.api"):
        result = client.pull(DSIMG, dest)
    assert result.removed == n
    assert any(
        f"drops {n} of the {n} labels" in r.getMessage() and "empty body" in r.getMessage()
        for r in caplog.records
    )


# -- class 9: a trickling server fails in bounded time -------------------------------------------


@pytest.mark.parametrize("path", ["/labels$", f"/datasets/{DSIMG}$", "/files$"])
def test_trickling_answer_fails_on_minimum_throughput(
    server: DeepenServer, tmp_path: Path, path: str
) -> None:
    """The streamed labels body and the plain JSON answers alike."""
    body = {"labels": {"a.png": [{"label_id": "car:1", "file_id": "a.png"}] * 200}}
    server.fail(path, "trickle", body=body, delay=0.05, times=10)
    limits = DownloadLimits(min_rate=2000, grace=0.5)
    with (
        Client(
            CLIENT_ID, TOKEN, base_url=server.url, retry=_policy(), download_limits=limits
        ) as client,
        pytest.raises(errors.TransportError, match=r"below the minimum of 2000 B/s"),
    ):
        client.pull(DSIMG, tmp_path / "snap")
    assert server.count(path) == 1  # a too-slow server is not retried
    assert not (tmp_path / "snap").exists()


def test_download_deadline_and_limits_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: DeepenServer, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEPEN_DOWNLOAD_MIN_RATE", "0")
    monkeypatch.setenv("DEEPEN_DOWNLOAD_DEADLINE", "0.3")
    assert DownloadLimits.from_env() == DownloadLimits(min_rate=0.0, grace=30.0, deadline=0.3)
    server.fail("/labels$", "trickle", body={"labels": {}} | {"pad": "p" * 400}, delay=0.05)
    with (
        Client(CLIENT_ID, TOKEN, base_url=server.url, retry=_policy()) as client,
        pytest.raises(errors.TransportError, match=r"deadline of 0\.3 s"),
    ):
        client.download_labels(DSIMG, tmp_path / "labels.json")
    assert not list(tmp_path.iterdir())  # no .part left
    monkeypatch.setenv("DEEPEN_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(errors.DeepenExportError, match="DEEPEN_DOWNLOAD_DEADLINE"):
        DownloadLimits.from_env()


# -- class 10: uploads say what and how to resume ------------------------------------------------


def _zip(path: Path, size: int = 600_000) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0.json", os.urandom(size))
    return path


def test_failing_upload_names_the_dataset_and_resumes_from_the_cli(
    env: DeepenServer, tmp_path: Path
) -> None:
    zp = _zip(tmp_path / "drive.zip")
    env.fail("^/upload/", status=400, method="PUT", body={"error": "bad chunk"})
    args = ["datasets", "create", str(zp), "--name", "d", "--type", "3d", "--chunk-mib", "0.25"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    (dataset_id,) = {u["dataset_id"] for u in env.uploads.values()}
    line = res.stderr.strip()
    assert f"datasets upload {dataset_id} {zp} --resume" in line
    assert "resume=True" not in line
    assert not env.processed

    env.faults.clear()
    other = _zip(tmp_path / "other.zip", 1000)
    res = CliRunner().invoke(main, ["datasets", "upload", dataset_id, str(other), "--resume"])
    assert res.exit_code == 1 and "not the zip dataset" in res.stderr
    res = CliRunner().invoke(main, ["datasets", "upload", dataset_id, str(zp), "--resume"])
    assert res.exit_code == 0, res.output
    (up,) = [u for u in env.uploads.values() if u["dataset_id"] == dataset_id]
    assert bytes(up["data"]) == zp.read_bytes()
    assert [d for d, _ in env.processed] == [dataset_id]
    # done: the saved session is gone, a second resume says there is nothing to resume
    res = CliRunner().invoke(main, ["datasets", "upload", dataset_id, str(zp), "--resume"])
    assert res.exit_code == 1 and "no unfinished upload" in res.stderr


def test_storage_server_claiming_more_bytes_than_sent(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    zp = _zip(tmp_path / "drive.zip")
    size = zp.stat().st_size
    server.fail(
        "^/upload/", status=308, method="PUT", headers={"Range": f"bytes=0-{size * 4}"}, body=b""
    )
    with pytest.raises(IncompleteUploadError) as info:
        client.create_and_upload("d", zp, dataset_type="3d", chunk_size=256 * 1024)
    message = str(info.value)
    assert f"claims bytes 0-{size * 4}" in message and f"which has {size} bytes" in message
    assert info.value.dataset_id in message
    assert "read length" not in message


# -- class 11: leftovers of killed pulls ---------------------------------------------------------


def test_pull_removes_folders_of_killed_pulls(client: Client, tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    dead = tmp_path / ".snap.pull-999999999-deadbeef"  # no such pid
    old_style = tmp_path / ".snap.pull-0badc0de"  # no pid: judged by age
    fresh_style = tmp_path / ".snap.pull-1234abcd"
    alive = tmp_path / f".snap.pull-{os.getppid()}-cafef00d"  # a running process
    for d in (dead, old_style, fresh_style, alive):
        d.mkdir()
        (d / "labels.json").write_text("{}")
    hour_ago = (os.stat(old_style).st_mtime - 3600,) * 2
    os.utime(old_style / "labels.json", hour_ago)
    os.utime(old_style, hour_ago)
    client.pull(DSIMG, dest)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == sorted([fresh_style.name, alive.name])


def test_media_link_serving_a_page_instead_of_the_zip_keeps_the_snapshot(
    client: Client, server: DeepenServer, tmp_path: Path
) -> None:
    dest = tmp_path / "snap"
    client.pull(DSIMG, dest, media=True)
    before = _snapshot_bytes(dest)
    server.fail("^/storage/media/", status=200, body=b"<html><body>Sign in</body></html>")
    with pytest.raises(errors.PayloadError, match=r"not a zip but an HTML page.*kept"):
        client.pull(DSIMG, dest, media=True)
    assert _snapshot_bytes(dest) == before
