"""The rest of the loop: mark_labelling_done, dataset and user tasks, user scopes (Client + CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from deepen_export.api import Client
from deepen_export.cli import main
from deepen_export.errors import NotFoundError, RequestRejectedError
from tests._deepen_server import CLIENT_ID, DS3D, TOKEN, DeepenServer


@pytest.fixture
def client(server: DeepenServer) -> Iterator[Client]:
    with Client(CLIENT_ID, TOKEN, base_url=server.url) as c:
        yield c


@pytest.fixture
def run(server: DeepenServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("DEEPEN_API_URL", server.url)
    monkeypatch.setenv("DEEPEN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_mark_labelling_done(
    client: Client, server: DeepenServer, run: Callable[..., Result]
) -> None:
    client.mark_labelling_done(DS3D)
    assert server.labelling_done == [DS3D]
    assert client.get_dataset(DS3D)["current_stage_status"] == "done"
    result = run("mark-done", DS3D)
    assert result.exit_code == 0 and "labelling marked done" in result.output
    assert server.count(f"/datasets/{DS3D}/mark_labelling_done", "POST") == 2
    with pytest.raises(NotFoundError):
        client.mark_labelling_done("nope")
    assert run("mark-done", "nope").exit_code == 1


def test_dataset_tasks(client: Client, run: Callable[..., Result]) -> None:
    tasks = client.list_tasks(DS3D)
    assert [t["task_id"] for t in tasks] == ["task_1", "task_2"]
    result = run("tasks", DS3D, "--json")
    assert json.loads(result.output) == tasks
    lines = run("tasks", DS3D).output.splitlines()
    assert lines[0].split("\t")[:3] == ["task_id", "dataset_id", "file_id"]
    assert lines[1].startswith("task_1\t")


def test_user_tasks(client: Client, server: DeepenServer, run: Callable[..., Result]) -> None:
    found = client.user_tasks("ann@example.com")
    assert [t["task_id"] for t in found["file_tasks"]] == ["task_1"]
    assert [t["task_id"] for t in found["label_tasks"]] == ["task_9"]
    (seen,) = server.requests(f"/clients/{CLIENT_ID}/user_tasks")
    assert seen.query == {"email": "ann@example.com"}
    assert client.user_tasks("nobody@example.com") == {"file_tasks": [], "label_tasks": []}
    out = run("user-tasks", "ann@example.com").output
    assert "file_tasks: 1" in out and "label_tasks: 1" in out
    assert json.loads(run("user-tasks", "ann@example.com", "--json").output) == found


def test_user_scopes_on_a_dataset(
    client: Client, server: DeepenServer, run: Callable[..., Result]
) -> None:
    client.set_user_scopes(
        DS3D, {"ann@example.com": ["labeller"]}, [{"user_group_id": "g1", "scopes": "reviewer"}]
    )
    ds = server.datasets[DS3D]
    assert ds["user_scopes"] == [{"email": "ann@example.com", "scopes": ["labeller"]}]
    assert ds["user_group_scopes"] == [{"user_group_id": "g1", "scopes": ["reviewer"]}]
    with pytest.raises(ValueError, match="give user_scopes"):
        client.set_user_scopes(DS3D)
    result = run("datasets", "scopes", DS3D, "--user", "bob@example.com=labeller,reviewer")
    assert result.exit_code == 0, result.output
    assert server.datasets[DS3D]["user_scopes"] == [
        {"email": "bob@example.com", "scopes": ["labeller", "reviewer"]}
    ]
    assert run("datasets", "scopes", DS3D, "--user", "bob@example.com").exit_code == 2
    server.fail("/user_scopes", status=400, method="POST", body={"error": "unknown user"})
    with pytest.raises(RequestRejectedError):
        client.set_user_scopes(DS3D, {"x@example.com": ["labeller"]})


def test_user_scopes_on_create(
    client: Client, server: DeepenServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    zip_path = tmp_path / "d.zip"
    zip_path.write_bytes(b"z" * 1000)
    created = client.create_dataset(
        "d1", zip_path, dataset_type="images", user_scopes={"ann@example.com": ["labeller"]}
    )
    req = server.datasets[created["dataset_id"]]["request"]
    assert req["user_scopes"] == [{"email": "ann@example.com", "scopes": ["labeller"]}]
    result = run(
        "datasets", "create", zip_path, "--name", "d2", "--type", "images",
        "--user-scope", "bob@example.com=reviewer",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (ds,) = [d for d in server.datasets.values() if d.get("dataset_name") == "d2"]
    assert ds["request"]["user_scopes"] == [{"email": "bob@example.com", "scopes": ["reviewer"]}]
    assert ds["request"]["user_group_scopes"] == []
