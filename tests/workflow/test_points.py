"""One test (or a few) per numbered point of the "path a user really walks" issue, each typed
through the installed ``deepen-export`` and each failing on the code before the fix.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from deepen_export._guard import MARKER
from tests._deepen_server import DSIMG, IMAGE_SIZES, DeepenServer, media_bytes
from tests.workflow.conftest import Run

ROOT = Path(__file__).resolve().parents[2]


# -- 1. install and first run ------------------------------------------------------------------


def test_1_readme_first_block_is_set_up_and_test_and_ci_runs_it() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```", 2)[1].splitlines()[1:]
    lines = [ln.split("#")[0].strip() for ln in block if ln.split("#")[0].strip()]
    assert lines == ["./dev-setup", "python3 -m pytest"]
    setup = (ROOT / "dev-setup").read_text()
    assert os.access(ROOT / "dev-setup", os.X_OK)
    assert "chromium" in setup and "apt-get install" in setup and "-e '.[dev]'" in setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "apt-get" not in ci and "pip install" not in ci  # nothing hidden
    assert "ruff check" in ci and "ruff format --check" in ci and "mypy" in ci
    # the install test (tests/workflow/test_install.py) is not deselected by default
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "not slow" not in pyproject.split("addopts", 1)[1].split("\n", 1)[0]


# -- 2. image sizes after a default pull -----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "size"),
    [
        ("PNG", {}, (641, 479)),
        ("JPEG", {"progressive": True}, (333, 222)),
        ("WEBP", {}, (320, 240)),
        ("WEBP", {"lossless": True}, (97, 13)),
        ("BMP", {}, (100, 50)),
        ("GIF", {}, (7, 5)),
    ],
)
def test_2_header_sizes_agree_with_pillow(fmt: str, options: dict, size: tuple[int, int]) -> None:
    from deepen_export._media import size_from_header

    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, fmt, **options)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert size_from_header(buf.getvalue()[:4096]) == im.size


def test_2_files_list_spellings() -> None:
    from deepen_export._media import sizes_from_files

    files = [
        {"file_id": "a", "width": 4, "height": 3},
        {"file_id": "b", "image_width": "5", "image_height": "6"},
        {"file_id": "c", "image": {"width": 7.0, "height": 8}},
        {"file_id": "d", "width": True, "height": 2},  # a boolean is no size
    ]
    assert sizes_from_files(files) == {"a": (4, 3), "b": (5, 6), "c": (7, 8)}


def test_2_default_pull_then_yolo_writes_every_label_with_sizes(
    deepen: Run, platform: DeepenServer, tmp_path: Path
) -> None:
    pulled = deepen("pull", DSIMG, "-o", "snap")
    assert "image sizes" in pulled.stdout
    sizes = json.loads((tmp_path / "snap" / "images.json").read_text())["images"]
    assert {k: (v["width"], v["height"]) for k, v in sizes.items()} == IMAGE_SIZES
    assert not (tmp_path / "snap" / "media").exists()  # the images were not downloaded
    deepen("convert", "snap", "--to", "yolo", "-o", "yolo")
    report = json.loads((tmp_path / "yolo" / "report.json").read_text())
    assert report["written"]["images"] == 2 and report["written"]["objects"] == 3
    assert not [i for i in report["issues"] if "size unknown" in i["reason"]]


def test_2_storage_without_range_support_still_gives_sizes(
    deepen: Run, platform: DeepenServer, tmp_path: Path
) -> None:
    platform.ignore_ranges = True
    try:
        deepen("pull", DSIMG, "-o", "snap")
    finally:
        platform.ignore_ranges = False
    assert len(json.loads((tmp_path / "snap" / "images.json").read_text())["images"]) == 2


def test_2_no_sizes_anywhere_exits_1_with_the_fix(deepen: Run, tmp_path: Path) -> None:
    deepen("pull", DSIMG, "-o", "snap", "--no-sizes")
    result = deepen("convert", "snap", "--to", "yolo", "-o", "yolo", check=False)
    assert result.returncode == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "image sizes are unknown" in line and "--images" in line and "--media" in line


def test_2_sizes_from_the_snapshots_media_zip_any_format(deepen: Run, tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    (snap / "media").mkdir(parents=True)
    with zipfile.ZipFile(snap / "media" / "dataset.zip", "w") as zf:
        for name, fmt, size in (("a.webp", "WEBP", (90, 60)), ("b.bmp", "BMP", (30, 20))):
            buf = io.BytesIO()
            Image.new("RGB", size).save(buf, fmt)
            zf.writestr(f"images/{name}", buf.getvalue())
    labels = {
        n: [{"label_id": "car:1", "label_category_id": "car", "label_type": "box",
             "box": [1, 1, 10, 10], "file_id": n}]
        for n in ("a.webp", "b.bmp")
    }  # fmt: skip
    (snap / "labels.json").write_text(json.dumps({"labels": labels}))
    doc = json.loads(deepen("convert", "snap", "--to", "coco", "-o", "coco", "--json").stdout)
    assert doc["error"] is None
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_default.json").read_text())
    assert {(i["file_name"], i["width"], i["height"]) for i in coco["images"]} == {
        ("a.webp", 90, 60),
        ("b.bmp", 30, 20),
    }


# -- 3. frames a user expects ------------------------------------------------------------------


def test_3_not_labelled_yet_left_out_of_every_2d_writer_and_reported(
    deepen: Run, tmp_path: Path
) -> None:
    sample = ROOT / "sample_data" / "image_dataset"
    for fmt in ("coco", "cvat", "yolo", "voc", "masks"):
        deepen("convert", sample, "--to", fmt, "-o", fmt, "--images", sample / "images")
        report = json.loads((tmp_path / fmt / "report.json").read_text())
        skipped = [i["file_id"] for i in report["issues"] if i["action"] == "skipped"]
        assert skipped == ["000004.png"], fmt  # files.json: 000004.png is still waiting
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_default.json").read_text())
    names = {im["file_name"] for im in coco["images"]}
    assert "000004.png" not in names and "000003.png" in names  # reviewed-empty: a negative


# -- 4. default unsupported-kinds policy -------------------------------------------------------


def test_4_default_writes_what_fits_and_raise_is_strict(deepen: Run, tmp_path: Path) -> None:
    snap = ROOT / "sample_data" / "lidar_sequence"
    ok = deepen("convert", snap, "--to", "kitti", "-o", "kitti")
    lines = [ln.strip() for ln in ok.stderr.splitlines() if "not written:" in ln]
    assert lines and all("kitti holds none; --to " in ln for ln in lines)
    assert any(ln.startswith("3 point_segmentation frames not written") for ln in lines)
    strict = deepen(
        "convert", snap, "--to", "kitti", "-o", "k2", "--on-unsupported", "raise", check=False
    )
    assert strict.returncode == 1 and "kitti cannot hold" in strict.stderr
    assert not (tmp_path / "k2").exists()


def test_4_nothing_of_a_non_empty_input_written_exits_1(deepen: Run, tmp_path: Path) -> None:
    result = deepen(
        "convert", ROOT / "sample_data" / "lidar_sequence", "--to", "tusimple", "-o", "t",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no label of the" in result.stderr and "deepen-export formats" in result.stderr


# -- 5. requirements files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("box: [car]\nboxes: [bus]\n", 2, "unknown label type 'boxes'; did you mean 'box'?"),
        ("box:\n  categories: [car, '']\n", 2, "empty name among the categories of box"),
        ("box:\n  categories:\n    - car\n    - car\n", 4, "category 'car' given twice"),
        (
            "box:\n  categories: [car]\n  attributes:\n    occlusion: []\n",
            4,
            "attribute 'occlusion' of box has no values",
        ),
        ('{"features": {"box": {"label_category_ids": []}}}', 1, "box has no categories"),
        ("box: [car\n", 2, "not YAML or JSON"),
    ],
)
def test_5_requirements_checked_before_any_request(
    deepen: Run, platform: DeepenServer, tmp_path: Path, text: str, line: int, message: str
) -> None:
    (tmp_path / "req.yaml").write_text(text)
    (tmp_path / "d.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    before = len(platform.requests("^/api/"))
    result = deepen(
        "datasets", "create", "d.zip", "--name", "n", "--type", "images",
        "--requirements", "req.yaml", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"req.yaml:{line}: " in result.stderr and message in result.stderr
    assert len(platform.requests("^/api/")) == before
    again = deepen("profiles", "create", "req.yaml", "--name", "p", check=False)
    assert again.returncode == 2 and f"req.yaml:{line}: " in again.stderr


def test_5_profiles_create_takes_the_short_form(
    deepen: Run, platform: DeepenServer, tmp_path: Path
) -> None:
    (tmp_path / "req.yaml").write_text(
        "name: lanes\nlane: [lane]\nbox:\n  categories: [car]\n  attributes: {state: [no, yes]}\n"
    )
    profile_id = deepen("profiles", "create", "req.yaml").stdout.strip()
    made = platform.profiles[profile_id]
    assert made["profile_name"] == "lanes"
    # "no"/"yes" stay names (YAML 1.1 would read booleans)
    assert made["features"]["box"]["attributes"]["state"] == {
        "type": "select",
        "values": ["no", "yes"],
    }


# -- 6. folder uploads -------------------------------------------------------------------------


def _create(deepen: Run, folder: Path, kind: str) -> subprocess.CompletedProcess[str]:
    extra = ["--format", "json"] if kind == "3d" else []
    return deepen(
        "datasets", "create", folder, "--name", "n", "--type", kind, *extra, check=False
    )  # fmt: skip


@pytest.mark.parametrize(
    ("files", "kind", "message"),
    [
        ({}, "images", "holds no files to upload"),
        ({".DS_Store": b"x", "notes.txt": b"x"}, "3d", "no frame JSON in"),
        ({"notes.txt": b"x"}, "images", "no images in"),
        ({"0.json": b'{"points": [{"x": 1, "y": 2}]}'}, "3d", "0.json: points[0] needs numeric"),
        ({"0.json": b"{not json"}, "3d", "0.json: not valid JSON"),
    ],
)
def test_6_bad_folders_refused_before_any_request(
    deepen: Run, platform: DeepenServer, tmp_path: Path, files: dict, kind: str, message: str
) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    before = len(platform.requests("^/api/"))
    result = _create(deepen, folder, kind)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(platform.requests("^/api/")) == before


def test_6_no_link_out_of_the_folder_no_hidden_file_uploaded(
    deepen: Run, platform: DeepenServer, tmp_path: Path
) -> None:
    (tmp_path / "secret.png").write_bytes(b"outside")
    folder = tmp_path / "upload"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config").write_text("x")
    Image.new("RGB", (4, 3)).save(folder / "a.png")
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "inner.png").symlink_to(folder / "a.png")
    result = _create(deepen, folder, "images")
    assert result.returncode == 0, result.stderr
    assert "left out link.png: a link to outside the folder" in result.stderr
    dataset_id = result.stdout.strip()
    data = media_bytes(platform, dataset_id)
    assert data is not None
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["a.png", "inner.png"]


# -- 7. any destination ------------------------------------------------------------------------


@pytest.fixture
def s3(s3_endpoint: str, bucket: tuple[Any, str]) -> tuple[Any, str, str]:
    """moto's S3 server with a fresh bucket, as tests/test_parquet_s3.py sets them up."""
    client, name = bucket
    return client, s3_endpoint, name


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc", "cvat", "masks"])
def test_7_every_writer_writes_to_s3(deepen: Run, s3, tmp_path: Path, fmt: str) -> None:
    client, endpoint, name = s3
    sample = ROOT / "sample_data" / "image_dataset"
    uri = f"s3://{name}/{fmt}?endpoint_override={endpoint}&scheme=http"
    deepen("convert", sample, "--to", fmt, "-o", uri, "--images", sample / "images")
    listed = client.list_objects_v2(Bucket=name, Prefix=f"{fmt}/").get("Contents", [])
    keys = {o["Key"] for o in listed}
    assert f"{fmt}/report.json" in keys, sorted(keys)
    # nothing staged is left (pyarrow may leave the folder's own empty marker, "fmt/")
    assert not [k for k in keys if "_staging" in k or (k.endswith("/") and k != f"{fmt}/")]
    assert not (tmp_path / "s3:").exists()
    local = tmp_path / "local"
    deepen("convert", sample, "--to", fmt, "-o", local, "--images", sample / "images")
    # the marker that says "deepen-export made this folder" guards local folders only
    want = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} - {MARKER}
    assert {k.removeprefix(f"{fmt}/") for k in keys if k != f"{fmt}/"} == want
    body = client.get_object(Bucket=name, Key=f"{fmt}/report.json")["Body"].read()
    assert json.loads(body)["written"] == json.loads((local / "report.json").read_text())["written"]


def test_7_a_uri_nothing_can_write_is_refused_before_reading(deepen: Run, tmp_path: Path) -> None:
    result = deepen(
        "convert", ROOT / "sample_data" / "image_dataset", "--to", "yolo", "-o",
        "nosuchscheme://bucket/yolo", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot write to 'nosuchscheme://bucket/yolo'")
    assert not any(tmp_path.iterdir())


# -- 8. status and waiting ---------------------------------------------------------------------


def test_8_older_form_counts_end_a_labelled_wait(deepen: Run, platform: DeepenServer) -> None:
    old = {"processing_status": "files_getting_labelled", "pipeline_stage_status": {}}
    platform.status_plan["old"] = [
        {**old, "status": {"finished": 1, "in_progress": 1, "total": 2}},
        {**old, "status": {"finished": 2, "in_progress": 0, "total": 2}},
    ]
    result = deepen(
        "datasets", "status", "old", "--wait", "--until", "labelled", "--poll", "0.01",
        "--timeout", "30", "--json",
    )  # fmt: skip
    assert json.loads(result.stdout)["state"] == "labelled"


def test_8_unknown_status_does_not_end_a_wait(deepen: Run, platform: DeepenServer) -> None:
    new = {"current_stage_status": "in_progress"}
    platform.status_plan["unk"] = [
        {**new, "current_stage": "Validating"},  # a stage this client does not know
        {**new, "current_stage": "Processing"},
        {"current_stage": "Labelling", "current_stage_status": "ready"},
    ]
    result = deepen("datasets", "status", "unk", "--wait", "--poll", "0.01", "--json")
    assert json.loads(result.stdout)["state"] == "processed"
    assert platform.count("/datasets/unk$") == 3  # it polled on through the unknown state


def test_8_status_of_a_failed_dataset_exits_1(deepen: Run, platform: DeepenServer) -> None:
    platform.status_plan["bad"] = [{"processing_status": "preprocessing_error"}]
    result = deepen("datasets", "status", "bad", check=False)
    assert result.returncode == 1 and "failed" in result.stderr


# -- 9. odds and ends --------------------------------------------------------------------------


def test_9_preview_survives_an_unreadable_image(deepen: Run, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30)).save(images / "good.png")
    (images / "bad.png").write_bytes(b"this is not a png")
    labels = {
        "labels": {
            n: [{"label_id": "car:1", "label_category_id": "car", "label_type": "box",
                 "box": [1, 1, 10, 10], "file_id": n}]
            for n in ("good.png", "bad.png")
        }
    }  # fmt: skip
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    result = deepen("preview", "labels.json", "--images", images, "-o", "pv", "--json")
    doc = json.loads(result.stdout)
    assert sorted(doc["previews"]) == ["bad.png", "good.png"]
    assert len(doc["unreadable"]) == 1 and "bad.png" in doc["unreadable"][0]
    with Image.open(tmp_path / "pv" / "bad.png") as im:
        assert im.getpixel((30, 25))[0] == im.getpixel((30, 25))[1]  # grey where no label is


def test_9_pull_of_several_reports_each_outcome(
    deepen: Run, platform: DeepenServer, tmp_path: Path
) -> None:
    result = deepen("pull", "missing", DSIMG, "-o", "root", "--json", check=False)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["missing"]["ok"] is False and doc[DSIMG]["ok"] is True
    assert (tmp_path / "root" / DSIMG / "labels.json").is_file()
    text = deepen("pull", "missing", DSIMG, "-o", "root2", check=False)
    assert text.returncode == 1 and "missing: FAILED" in text.stderr and DSIMG in text.stdout


def test_9_outputs_respect_the_umask(platform: DeepenServer, tmp_path: Path) -> None:
    from tests.workflow.conftest import console_script

    script = "import os, subprocess, sys; os.umask(0o022); sys.exit(subprocess.call(sys.argv[1:]))"
    sample = ROOT / "sample_data" / "image_dataset"
    subprocess.run(
        [sys.executable, "-c", script, console_script(), "convert", str(sample), "--to", "coco",
         "-o", str(tmp_path / "coco")],
        check=True, capture_output=True,
    )  # fmt: skip
    assert stat.S_IMODE((tmp_path / "coco").stat().st_mode) == 0o755
    assert (
        stat.S_IMODE((tmp_path / "coco" / "annotations" / "instances_default.json").stat().st_mode)
        == 0o644
    )


def test_9_create_json_redacts_the_upload_url(deepen: Run, tmp_path: Path) -> None:
    (tmp_path / "d.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    args = ("datasets", "create", "d.zip", "--name", "n", "--type", "images", "--json")
    doc = json.loads(deepen(*args).stdout)
    assert doc["files"][0]["resumable_upload_url"] == "[redacted]"
    shown = json.loads(deepen(*args, "--show-upload-url").stdout)
    assert shown["files"][0]["resumable_upload_url"].startswith("http")


def test_9_json_on_convert_and_stats(deepen: Run, tmp_path: Path) -> None:
    sample = ROOT / "sample_data" / "image_dataset"
    doc = json.loads(deepen("convert", sample, "--to", "coco", "-o", "c", "--json").stdout)
    assert doc["format"] == "coco" and doc["written"]["images"] == 5 and doc["error"] is None
    assert any("not written" in line for line in doc["left_out"])
    stats = json.loads(deepen("stats", sample, "--json").stdout)
    assert stats["tables"] and stats["title"]


def test_9_json_on_export(deepen: Run, tmp_path: Path) -> None:
    doc = json.loads(deepen("export", DSIMG, "--to", "coco", "-o", "out", "--json").stdout)
    assert doc["dataset_id"] == DSIMG and doc["labels"] == 3 and doc["error"] is None
    assert doc["written"]["images"] == 2 and Path(doc["snapshot"]).is_dir()


def test_9_convert_frames_is_now_media_and_the_old_spelling_still_works(
    deepen: Run, tmp_path: Path
) -> None:
    snap = ROOT / "sample_data" / "lidar_sequence"
    labels = snap / "labels.json"
    media = next((snap / "media").glob("*.zip"))
    new = deepen("convert", labels, "--media", media, "--to", "kitti", "-o", "a")
    old = deepen("convert", labels, "--frames", media, "--to", "kitti", "-o", "b")
    assert "--frames is deprecated" in old.stderr and "deprecated" not in new.stderr
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.txt")) == sorted(
        p.name for p in (tmp_path / "b").rglob("*.txt")
    )


def test_9_a_long_wait_is_one_live_line_on_a_terminal(platform: DeepenServer) -> None:
    import pty

    from tests._deepen_server import CLIENT_ID, TOKEN
    from tests.workflow.conftest import console_script

    platform.status_plan["slow"] = [
        {"current_stage": "Processing", "current_stage_status": "in_progress"}
    ] * 4 + [{"current_stage": "Labelling", "current_stage_status": "ready"}]
    env = {**os.environ, "DEEPEN_API_URL": platform.url, "DEEPEN_CLIENT_ID": CLIENT_ID,
           "DEEPEN_API_TOKEN": TOKEN}  # fmt: skip
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [console_script(), "datasets", "status", "slow", "--wait", "--poll", "0.01"],
        stdin=child, stdout=subprocess.DEVNULL, stderr=child, env=env,
    )  # fmt: skip
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(30) == 0
    os.close(main)
    text = out.decode()
    assert text.count("\r") >= 5  # redrawn in place at each poll
    assert text.count("\n") <= 2  # not one line per poll
