"""The platform commands through click's CliRunner, against the Deepen-like server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from deepen_export.cli import main
from tests._deepen_server import CLIENT_ID, DS3D, DSIMG, TOKEN, DeepenServer, sample

Invoke = Callable[..., Result]


@pytest.fixture
def run(server: DeepenServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("DEEPEN_API_URL", server.url)
    monkeypatch.setenv("DEEPEN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    yield invoke


def test_help_has_examples(run: Invoke) -> None:
    for args in (
        ["datasets"],
        ["datasets", "list"],
        ["datasets", "create"],
        ["datasets", "status"],
        ["datasets", "delete"],
        ["files"],
        ["profiles"],
        ["profiles", "list"],
        ["profiles", "show"],
        ["profiles", "create"],
        ["pull"],
    ):
        result = run(*args, "--help")
        assert result.exit_code == 0, args
        assert "Example:" in result.stdout and "deepen-export " in result.stdout


def test_datasets_list_table_and_json(run: Invoke) -> None:
    result = run("datasets", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "name", "type", "mode", "state"]
    assert f"{DS3D}\tdrive-0001\t3d\tlabel_by_label\tprocessed" in lines
    result = run("datasets", "list", "--json")
    assert json.loads(result.stdout) == sample("datasets.json")
    result = run("datasets", "list", "--ids-only", "--json")
    assert json.loads(result.stdout) == sample("datasets_ids.json")["datasets"]
    result = run("datasets", "list", "--ids-only")
    assert result.stdout.splitlines()[1] == f"{DS3D}\tdrive-0001"


def test_datasets_create_upload_process_wait(
    run: Invoke, server: DeepenServer, tmp_path: Path
) -> None:
    zip_path = tmp_path / "drive.zip"
    zip_path.write_bytes(b"z" * (600 * 1024))
    result = run(
        "datasets",
        "create",
        str(zip_path),
        "--name",
        "drive-9",
        "--type",
        "3d",
        "--format",
        "json",
        "--mode",
        "label_by_label",
        "--profile",
        "prof_lidar",
        "--chunk-mib",
        "0.25",
        "--wait",
        "--poll",
        "0.01",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    dataset_id = out["dataset_id"]
    assert out["state"] == "processed"
    sent = server.datasets[dataset_id]["request"]
    assert sent["files"] == [{"file_size": 600 * 1024, "file_type": "application/zip"}]
    assert (
        sent["labelling_profile_id"] == "prof_lidar" and sent["labelling_mode"] == "label_by_label"
    )
    assert bytes(next(iter(server.uploads.values()))["data"]) == zip_path.read_bytes()
    assert len(server.requests("^/upload/")) == 3  # three chunks of 256 KiB
    assert server.processed == [(dataset_id, "data.zip")]
    assert "processing · Processing: in_progress" in result.stderr
    assert "processed · Labelling: ready · Labelling ready 2" in result.stderr


def test_datasets_create_with_requirements_file(
    run: Invoke, server: DeepenServer, tmp_path: Path
) -> None:
    zip_path = tmp_path / "imgs.zip"
    zip_path.write_bytes(b"z" * 10)
    req = {
        "profile_name": "street",
        "features": {"box": {"label_category_ids": ["car"], "attributes": {}}},
    }
    (tmp_path / "req.json").write_text(json.dumps(req))
    result = run(
        "datasets",
        "create",
        str(zip_path),
        "--name",
        "i",
        "--type",
        "images",
        "--requirements",
        str(tmp_path / "req.json"),
    )
    assert result.exit_code == 0, result.output
    dataset_id = result.stdout.strip()
    assert server.datasets[dataset_id]["request"]["labelling_profile"] == req


@pytest.mark.parametrize(
    "args",
    [
        ["datasets", "create", "ZIP", "--type", "3d"],  # no --name
        ["datasets", "create", "ZIP", "--name", "n", "--type", "4d"],
        ["datasets", "create", "ZIP", "--name", "n", "--type", "images", "--format", "json"],
        [
            "datasets",
            "create",
            "ZIP",
            "--name",
            "n",
            "--type",
            "3d",
            "--profile",
            "p",
            "--requirements",
            "ZIP",
        ],
        ["datasets", "create", "ZIP", "--name", "n", "--type", "3d", "--chunk-mib", "0.1"],
        ["datasets", "create", "missing.zip", "--name", "n", "--type", "3d"],
        ["pull", DS3D],  # no -o
        ["datasets", "status"],
    ],
)
def test_bad_usage_exits_2(
    run: Invoke, server: DeepenServer, tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "d.zip").write_bytes(b"z")
    args = [str(tmp_path / "d.zip") if a == "ZIP" else a for a in args]
    result = run(*args)
    assert result.exit_code == 2
    assert not server.requests("^/api/")


def test_status_both_forms_and_wait(run: Invoke, server: DeepenServer) -> None:
    result = run("datasets", "status", DS3D)
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "processed · QA: in_progress · Labelling done 2 · QA in_progress 1, done 1"
    )
    result = run("datasets", "status", DSIMG, "--json")
    assert json.loads(result.stdout)["state"] == "labelled"
    server.status_plan["w"] = [
        {"processing_status": "files_uploaded"},
        {
            "current_stage": "QA",
            "current_stage_status": "done",
            "pipeline_status_by_label_set_id": {"default": {"QA": {"done": 3}}},
        },
    ]
    result = run("datasets", "status", "w", "--wait", "--until", "labelled", "--poll", "0.01")
    assert result.exit_code == 0
    assert result.stdout.strip() == "labelled · QA: done · QA done 3"
    assert "processing · files_uploaded" in result.stderr


def test_status_wait_error_exits_1(run: Invoke, server: DeepenServer) -> None:
    server.status_plan["w"] = [
        {"processing_status": "preprocessing_error", "processing_status_message": "no JSON frames"}
    ]
    result = run("datasets", "status", "w", "--wait", "--poll", "0.01")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: dataset w failed processing")
    assert "no JSON frames" in result.stderr


def test_delete(run: Invoke, server: DeepenServer) -> None:
    result = run("datasets", "delete", DSIMG, input="n\n")
    assert result.exit_code == 1 and DSIMG in server.datasets  # aborted
    result = run("datasets", "delete", DSIMG, "--yes")
    assert result.exit_code == 0 and DSIMG not in server.datasets
    result = run("datasets", "delete", DSIMG, "--yes")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "404" in result.stderr


def test_files(run: Invoke) -> None:
    result = run("files", DS3D)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "file_id\tstage_id\tstatus"
    assert lines[1] == "0.pcd\tQA\tdone"
    assert json.loads(run("files", DS3D, "--json").stdout) == sample("files_3d.json")
    assert json.loads(run("files", DS3D, "1.pcd", "--json").stdout)["status"] == "in_progress"
    assert "status\tin_progress" in run("files", DS3D, "1.pcd").stdout


def test_profiles(run: Invoke, server: DeepenServer, tmp_path: Path) -> None:
    result = run("profiles", "list")
    assert result.stdout.splitlines()[1] == "prof_lidar\tlidar cars\t3d_bbox, 3d_point, box"
    assert json.loads(run("profiles", "list", "--json").stdout) == sample("profiles.json")
    assert json.loads(run("profiles", "show", "prof_lidar").stdout) == sample("profile_lidar.json")
    (tmp_path / "p.json").write_text(
        json.dumps({"features": {"box": {"label_category_ids": ["car"]}}})
    )
    assert run("profiles", "create", str(tmp_path / "p.json")).exit_code == 2  # no profile_name
    result = run("profiles", "create", str(tmp_path / "p.json"), "--name", "cars")
    assert result.exit_code == 0
    new_id = result.stdout.strip()
    assert server.profiles[new_id]["profile_name"] == "cars"
    (tmp_path / "bad.json").write_text("{")
    assert run("profiles", "create", str(tmp_path / "bad.json")).exit_code == 2
    result = run("profiles", "show", "nope")
    assert result.exit_code == 1 and result.stderr.startswith("error: GET ")


def test_pull_twice_reports_changes(run: Invoke, server: DeepenServer, tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    result = run("pull", DS3D, "-o", str(dest), "--stage", "QA", "--no-media")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{DS3D}: 4 labels (first pull) -> {dest}"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["stage"] == "QA" and "media/dataset.zip" not in manifest["files"]
    server.labels[DS3D]["labels"]["1.pcd"][0]["version"] = 7
    result = run("pull", DS3D, "-o", str(dest), "--stage", "QA", "--json")
    out = json.loads(result.stdout)[DS3D]
    assert (out["added"], out["removed"], out["modified"], out["first_pull"]) == (0, 0, 1, False)
    assert out["media"] is True  # 3D: media by default


def test_pull_several(run: Invoke, tmp_path: Path) -> None:
    result = run(
        "pull", DS3D, DSIMG, "-o", str(tmp_path / "root"), "--no-media", "--concurrency", "2"
    )
    assert result.exit_code == 0
    assert (tmp_path / "root" / DS3D / "labels.json").is_file()
    assert (tmp_path / "root" / DSIMG / "labels.json").is_file()


def test_errors_are_one_line_and_exit_1(
    run: Invoke, server: DeepenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEPEN_API_TOKEN", "bad-token")
    result = run("datasets", "list")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "401" in result.stderr and "check DEEPEN_API_TOKEN" in result.stderr
    assert "bad-token" not in result.output
    monkeypatch.delenv("DEEPEN_API_TOKEN")
    result = run("datasets", "list")
    assert result.exit_code == 1 and "DEEPEN_API_TOKEN" in result.stderr
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    result = run("pull", "nope", "-o", str(tmp_path / "unused"))
    assert result.exit_code == 1 and "404" in result.stderr


def test_datasets_create_from_folder(run: Invoke, server: DeepenServer, tmp_path: Path) -> None:
    import io
    import zipfile

    folder = tmp_path / "frames"
    (folder / "images").mkdir(parents=True)
    (folder / "1.json").write_text('{"points": []}')
    (folder / "0.json").write_text('{"points": []}')
    (folder / "images" / "0.jpg").write_bytes(b"\xff\xd8jpeg")
    result = run(
        "datasets", "create", str(folder), "--name", "f", "--type", "3d", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    uploaded = bytes(next(iter(server.uploads.values()))["data"])
    with zipfile.ZipFile(io.BytesIO(uploaded)) as zf:
        assert zf.namelist() == ["0.json", "1.json", "images/0.jpg"]
        assert zf.read("images/0.jpg") == b"\xff\xd8jpeg"
