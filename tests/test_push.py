"""``deepen-export push`` end to end against the Deepen-like server on 127.0.0.1.

The main paths run through the installed console script (``.venv/bin/deepen-export``) as a
user would; the refusals run through click's runner (same code, no process start).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, given, settings
from pycocotools.coco import COCO

from deepen_export.cli import main
from tests._deepen_server import CLIENT_ID, TOKEN, DeepenServer, Fault
from tests.test_deepen_format import _label_sets

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
IMG = SAMPLES / "image_dataset"
LIDAR = SAMPLES / "lidar_sequence"
IMG_DS = json.loads((IMG / "dataset.json").read_text())["dataset_id"]
LIDAR_DS = json.loads((LIDAR / "dataset.json").read_text())["dataset_id"]
# the installed console script of this environment (python -m deepen_export where there is none)
_SCRIPT = Path(sys.executable).with_name("deepen-export")
CLI: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "deepen_export"]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _add_dataset(srv: DeepenServer, folder: Path, labels: str, profile: dict[str, Any]) -> str:
    ds = json.loads((folder / "dataset.json").read_text())
    ds["labelling_profile_id"] = profile["profile_id"]
    srv.datasets[ds["dataset_id"]] = ds
    srv.files[ds["dataset_id"]] = json.loads((folder / "files.json").read_text())
    srv.labels[ds["dataset_id"]] = json.loads((folder / labels).read_text())
    srv.profiles[profile["profile_id"]] = profile
    if (folder / "media" / "dataset.zip").is_file():
        srv.media[ds["dataset_id"]] = (folder / "media" / "dataset.zip").read_bytes()
    return str(ds["dataset_id"])


LIDAR_PROFILE = {
    "profile_id": "prof_kitti",
    "profile_name": "kitti classes",
    "features": {
        "3d_bbox": {"attributes": {}, "label_category_ids": ["car", "pedestrian", "cyclist"]},
        "box": {"attributes": {}, "label_category_ids": ["car"]},
    },
}


@pytest.fixture
def server(server: DeepenServer) -> DeepenServer:
    """conftest's server with the two sample datasets this file pushes to."""
    _add_dataset(server, IMG, "labels_by_file.json", json.loads((IMG / "profile.json").read_text()))
    _add_dataset(server, LIDAR, "labels.json", LIDAR_PROFILE)
    return server


@pytest.fixture
def env(server: DeepenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    values = {
        "DEEPEN_API_URL": server.url,
        "DEEPEN_CLIENT_ID": CLIENT_ID,
        "DEEPEN_API_TOKEN": TOKEN,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)  # a stopped push leaves its state file here
    return {**os.environ, **values}


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    """The installed console script, in a subprocess."""

    def run(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, *map(str, args)], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


@pytest.fixture
def run(env: dict[str, str]) -> Callable[..., Result]:
    """click's runner on the same command group (for the refusals: no process start)."""
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _posts(server: DeepenServer) -> int:
    return server.count(r"/datasets/[^/]+/labels$", "POST")


# -- COCO predictions: push, pull, convert back ------------------------------------------------


def _predictions(gt: Path) -> list[dict[str, Any]]:
    doc = json.loads(gt.read_text())
    img = {
        im["deepen_file_id"]: im for im in doc["images"] if im.get("deepen_sensor_id") != "sensor2"
    }
    cat = {c["name"]: c["id"] for c in doc["categories"]}
    a, b = img["000002.png"], img["inner_kitty/000059.png"]
    return [
        {"image_id": a["id"], "category_id": cat["car"], "bbox": [10.25, 12.5, 20.0, 8.75], "score": 0.91},
        {"image_id": a["id"], "category_id": cat["pedestrian"], "bbox": [40, 5, 6, 18], "score": 0.64},
        {"image_id": a["id"], "category_id": cat["car"], "bbox": [1, 1, 5, 5], "score": 0.12},
        {"image_id": b["id"], "category_id": cat["road"], "score": 0.8, "bbox": [2, 30, 50, 25],
         "segmentation": [[2.0, 30.0, 52.0, 30.0, 40.5, 55.0, 10.0, 55.0]]},
        {"image_id": b["id"], "category_id": cat["car"], "bbox": [60, 10, 12, 9], "score": 0.5},
    ]  # fmt: skip


def test_coco_predictions_round_trip_through_deepen(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    cli("pull", IMG_DS, "-o", tmp_path / "snap")
    cli("convert", tmp_path / "snap", "--to", "coco", "-o", tmp_path / "gt", "--images", IMG / "images",
        "--on-unsupported", "drop")  # fmt: skip
    preds = _predictions(tmp_path / "gt" / "annotations" / "instances_default.json")
    (tmp_path / "preds.json").write_text(json.dumps(preds))

    args = (
        "push",
        tmp_path / "preds.json",
        IMG_DS,
        "--gt",
        tmp_path / "gt" / "annotations" / "instances_default.json",
    )
    done = cli(*args, "--min-score", "0.5")
    kept = [p for p in preds if p["score"] >= 0.5]
    assert f"adds {len(kept)}, changes 0" in done.stdout
    assert _posts(server) == 1 and len(server.pushed[(IMG_DS, "predictions")]) == len(kept)
    assert not any(k[1] == "predictions" for k in server.pushed if k[0] != IMG_DS)

    cli("pull", IMG_DS, "-o", tmp_path / "snap_pred", "--label-set", "predictions")
    cli(
        "convert",
        tmp_path / "snap_pred",
        "--to",
        "coco",
        "-o",
        tmp_path / "back",
        "--images",
        IMG / "images",
    )
    gt, back = (
        COCO(str(tmp_path / "gt" / "annotations" / "instances_default.json")),
        COCO(str(tmp_path / "back" / "annotations" / "instances_default.json")),
    )
    assert [c["name"] for c in back.loadCats(back.getCatIds())] == [
        c["name"] for c in gt.loadCats(gt.getCatIds())
    ]
    got = _by_image_and_box(back)
    want = {(_file(gt, p["image_id"]), _cat(gt, p["category_id"]), tuple(np.round(p["bbox"], 6))): p
            for p in kept}  # fmt: skip
    assert set(got) == set(want)  # same boxes (to 1e-6 px), same categories, one per prediction
    for key, p in want.items():
        if "segmentation" in p:
            a = shapely.Polygon(np.reshape(p["segmentation"][0], (-1, 2)))
            b = shapely.Polygon(np.reshape(got[key]["segmentation"][0], (-1, 2)))
            assert a.symmetric_difference(b).area < 1e-9

    again = cli(*args, "--min-score", "0.5")  # the same file once more: nothing changes
    assert f"adds 0, changes 0, {len(kept)} unchanged" in again.stdout
    assert "nothing to push" in again.stdout
    assert _posts(server) == 1


def _file(coco: COCO, image_id: int) -> str:
    return str(coco.imgs[image_id].get("deepen_file_id", coco.imgs[image_id]["file_name"]))


def _cat(coco: COCO, cat_id: int) -> str:
    return str(coco.cats[cat_id]["name"])


def _by_image_and_box(coco: COCO) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (_file(coco, a["image_id"]), _cat(coco, a["category_id"]), tuple(np.round(a["bbox"], 6))): a
        for a in coco.loadAnns(coco.getAnnIds())
    }


def test_dry_run_sends_no_write_and_lists_changes(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    preds = [
        {"image_id": "000002.png", "category_id": "car", "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": "000003.png", "category_id": "car", "bbox": [5, 6, 7, 8], "score": 0.9},
    ]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    cli("push", tmp_path / "p.json", IMG_DS)
    writes = [s for s in server.seen if s.method != "GET"]
    (tmp_path / "p.json").write_text(json.dumps(preds[:1]))  # the second one left out
    preds[0]["bbox"] = [1, 2, 3, 5]  # changed
    preds.append({"image_id": "000004.png", "category_id": "car", "bbox": [0, 0, 1, 1], "score": 1})
    (tmp_path / "q.json").write_text(json.dumps(preds))
    done = cli("push", tmp_path / "q.json", IMG_DS, "--dry-run", "--json")
    doc = json.loads(done.stdout)
    assert [a["file_id"] for a in doc["added"]] == ["000004.png"]
    assert [c["file_id"] for c in doc["changed"]] == ["000002.png"]
    assert doc["unchanged"] == 1 and doc["removed"] == [] and doc["sent"] == 0
    text = cli("push", tmp_path / "p.json", IMG_DS, "--dry-run").stdout
    assert "would add 0, changes 0, 1 unchanged, 1 on the dataset not in the source" in text
    assert "nothing was sent" in text
    assert [s for s in server.seen if s.method != "GET"] == writes  # no write at all


# -- KITTI -> push -> pull -> KITTI on the sample 3D dataset ----------------------------------


def _kitti_rows(folder: Path) -> dict[str, list[list[str]]]:
    return {
        p.stem: [line.split() for line in p.read_text().splitlines() if line.strip()]
        for p in sorted((folder / "label_2").glob("*.txt"))
    }


def test_kitti_push_pull_kitti_reproduces_label_2(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    golden = SAMPLES / "golden" / "kitti"
    done = cli("push", golden, LIDAR_DS)
    assert "adds 8" in done.stdout
    stored = server.pushed[(LIDAR_DS, "predictions")]
    assert {k[1] for k in stored} == {"lidar"}
    assert all(abs(lab["three_d_bbox"]["cx"]) > 100 for lab in stored.values())  # world frame

    cli("pull", LIDAR_DS, "-o", tmp_path / "snap", "--label-set", "predictions")
    cli(
        "convert",
        tmp_path / "snap",
        "--to",
        "kitti",
        "-o",
        tmp_path / "kitti",
        "--on-unsupported",
        "drop",
    )
    want, got = _kitti_rows(golden), _kitti_rows(tmp_path / "kitti")
    assert list(got) == list(want)
    for stem, rows in want.items():
        assert len(got[stem]) == len(rows), stem
        for a, b in zip(rows, got[stem], strict=True):
            assert a[0] == b[0]  # type
            va, vb = np.asarray(a[1:], float), np.asarray(b[1:], float)
            np.testing.assert_allclose(vb[7:10], va[7:10], atol=0.01 + 1e-9)  # h w l
            np.testing.assert_allclose(vb[10:13], va[10:13], atol=0.01 + 1e-9)  # location
            assert abs(vb[13] - va[13]) <= 0.01 + 1e-9  # rotation_y
            assert abs(vb[2] - va[2]) <= 0.01 + 1e-9  # alpha


# -- refusals: one clear line, nothing (or nothing unreported) written --------------------------


def _results(tmp_path: Path, *items: tuple[str, str]) -> Path:
    path = tmp_path / "res.json"
    path.write_text(json.dumps([
        {"image_id": img, "category_id": cat, "bbox": [1, 1, 4, 4], "score": 0.9} for img, cat in items
    ]))  # fmt: skip
    return path


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_unknown_category_refused_naming_it(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(
        tmp_path, ("000002.png", "car"), ("000002.png", "lorry"), ("000003.png", "lorry")
    )
    line = _one_error_line(run("push", src, IMG_DS))
    assert (
        "lorry (2)" in line
        and "box" in line
        and "--map" in line
        and "car" not in line.split("lorry")[0][-20:]
    )
    assert _posts(server) == 0
    # mapped, it goes through
    assert run("push", src, IMG_DS, "--map", "lorry=truck").exit_code == 0
    assert _posts(server) == 1


def test_add_categories_needs_a_profile_that_allows_them(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(tmp_path, ("000002.png", "lorry"))
    line = _one_error_line(run("push", src, IMG_DS, "--add-categories"))
    assert "lorry (1)" in line and _posts(server) == 0
    server.profiles["prof1leSampleImg01"]["preferences"] = {"allow_new_categories": True}
    assert run("push", src, IMG_DS, "--add-categories").exit_code == 0
    assert {
        lab["label_category_id"] for lab in server.pushed[(IMG_DS, "predictions")].values()
    } == {"lorry"}


def test_image_not_in_dataset_refused_listing_it(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(
        tmp_path, ("000002.png", "car"), ("elsewhere/000002.png", "car"), ("nope.png", "car")
    )
    line = _one_error_line(run("push", src, IMG_DS))
    assert (
        "1 source file(s) are not in dataset" in line and "nope.png" in line
    )  # base name matched the other
    assert _posts(server) == 0


def test_yolo_folder_without_sizes_refused(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    yolo = tmp_path / "yolo"
    (yolo / "labels").mkdir(parents=True)
    (yolo / "data.yaml").write_text("names: [car]\n")
    (yolo / "labels" / "000002.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    line = _one_error_line(run("push", yolo, IMG_DS))
    assert "image sizes are needed" in line and _posts(server) == 0
    # with the images, normalised values become pixels of the 80x60 image
    assert run("push", yolo, IMG_DS, "--images", IMG / "images").exit_code == 0
    (lab,) = server.pushed[(IMG_DS, "predictions")].values()
    assert lab["box"] == pytest.approx([30.0, 22.5, 20.0, 15.0])


def test_first_post_refused_with_400(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(tmp_path, ("000002.png", "car"))
    server.fail(r"/labels$", status=400, method="POST", body={"error": "label rejected"})
    line = _one_error_line(run("push", src, IMG_DS))
    assert "batch 1 of 1" in line and "was refused" in line and "no batch landed" in line
    assert "label rejected" in line and _posts(server) == 1  # a 400 is not retried
    assert server.pushed.get((IMG_DS, "predictions"), {}) == {}


def test_malformed_labels_get_400_from_the_server(server: DeepenServer) -> None:
    from deepen_export.api import Client
    from deepen_export.errors import RequestRejectedError

    good = {"file_id": "000002.png", "label_id": "car:1", "label_type": "box", "label_category_id": "car",
            "box": [1, 2, 3, 4], "sensor_id": "sensor1"}  # fmt: skip
    with Client(CLIENT_ID, TOKEN, base_url=server.url) as client:
        for bad in (
            {**good, "box": [1, 2, 3]},
            {**good, "box": [1, 2, -3, 4]},
            {**good, "file_id": "missing.png"},
            {**good, "sensor_id": "camera_9"},
            {**good, "label_type": "cube"},
            {**good, "label_type": "3d_bbox", "three_d_bbox": {"cx": 1}},
        ):
            with pytest.raises(RequestRejectedError):
                client.post_labels(IMG_DS, [good, bad], label_set="predictions")
        with pytest.raises(ValueError, match="has no label_category_id"):
            client.post_labels(
                IMG_DS, [{**good, "label_category_id": ""}]
            )  # refused before sending
        client.post_labels(IMG_DS, [good], label_set="predictions")
        body = client.get_labels(IMG_DS, label_set="predictions")
    assert server.count(r"/labels$", "POST") == 7
    (served,) = body["labels"]
    assert {k: served[k] for k in good} == good  # served back as sent


def _refuse_post(server: DeepenServer, number: int, status: int = 400) -> Callable[[], None]:
    """Answer label POST number ``number`` (1-based) and every later one with ``status``."""
    original = server.take_fault
    seen = {"n": 0}

    def take(method: str, path: str) -> Fault | None:
        if method == "POST" and path.endswith("/labels"):
            seen["n"] += 1
            if seen["n"] >= number:
                return Fault(
                    "status", re.compile("."), status=status, body={"error": "label rejected"}
                )
        return original(method, path)

    server.take_fault = take  # type: ignore[method-assign]
    return lambda: setattr(server, "take_fault", original)


def test_failed_middle_batch_reports_what_landed_and_resumes(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(tmp_path, *[("000002.png", "car")] * 5)
    restore = _refuse_post(server, 2)
    line = _one_error_line(run("push", src, IMG_DS, "--batch-size", "2"))
    assert "batch 2 of 3 (2 labels) was refused" in line
    assert "batches 1-1 of 3 landed (2 labels)" in line and "--resume" in line
    assert len(server.pushed[(IMG_DS, "predictions")]) == 2
    state = tmp_path / f".deepen-push.{IMG_DS}.predictions.json"
    assert json.loads(state.read_text())["landed_batches"] == 1
    restore()

    (tmp_path / "other").mkdir()
    other = _results(tmp_path / "other", ("000003.png", "car"))
    assert "belongs to another push" in _one_error_line(run("push", other, IMG_DS, "--resume"))
    result = run("push", src, IMG_DS, "--batch-size", "2", "--resume")
    assert result.exit_code == 0, result.output
    assert "adds 3, changes 0, 2 unchanged" in result.output
    assert len(server.pushed[(IMG_DS, "predictions")]) == 5 and not state.exists()


def test_post_retried_only_when_the_server_surely_did_nothing(
    server: DeepenServer, tmp_path: Path
) -> None:
    from converters._detect import read_coco_results
    from deepen_export.api import Client, RetryPolicy
    from deepen_export.push import PushError, execute, fetch_target, plan_push

    labels = read_coco_results(_results(tmp_path, ("000002.png", "car"), ("000003.png", "car")))
    waits: list[float] = []
    policy = RetryPolicy(sleep=waits.append, jitter=0.0)
    with Client(CLIENT_ID, TOKEN, base_url=server.url, retry=policy) as client:
        plan = plan_push(labels, fetch_target(client, IMG_DS))
        server.fail(r"/labels$", status=429, method="POST", headers={"Retry-After": "3"})
        result = execute(client, plan, state=tmp_path / "state.json")
        assert result.sent == 2 and waits == [3.0]  # a 429 did nothing: sent again after 3 s
        assert _posts(server) == 2

        plan = plan_push(
            read_coco_results(_results(tmp_path, ("000004.png", "car"))),
            fetch_target(client, IMG_DS),
        )
        server.fail(r"/labels$", status=500, method="POST")
        with pytest.raises(PushError, match="may or may not have landed"):
            execute(client, plan, state=tmp_path / "state.json")
        assert _posts(server) == 3  # a 500 may have stored the labels: not repeated


def test_deepen_labels_pushed_into_another_label_set_come_back_equal(
    cli: Cli, server: DeepenServer, tmp_path: Path
) -> None:
    import deepen_export

    src = IMG / "labels.json"  # boxes, multi-ring polygons, lanes, points, a scene; two sensors
    done = cli("push", src, IMG_DS, "--label-set", "review", "--json")
    doc = json.loads(done.stdout)
    first = deepen_export.read_labels(src)
    assert doc["source_format"] == "deepen" and len(doc["added"]) == len(first) == doc["sent"]
    cli("pull", IMG_DS, "-o", tmp_path / "snap", "--label-set", "review")
    back = deepen_export.read_labels(tmp_path / "snap" / "labels.json")
    for kind, table in first:
        again = back.table(kind)
        assert sorted(again.label_id.tolist()) == sorted(table.label_id.tolist()), kind  # ids kept

    def key(ls: Any, t: Any, i: int) -> tuple[str, str, str]:
        f = t.frame[i]
        return ls.frames.file_id[f], ls.frames.sensor_id[f], t.label_id[i]

    a = {key(first, first.boxes, i): first.boxes.xyxy[i].tolist() for i in range(len(first.boxes))}
    b = {key(back, back.boxes, i): back.boxes.xyxy[i].tolist() for i in range(len(back.boxes))}
    assert a == b
    a_poly = {
        key(first, first.polygons, i): first.polygons[[i]].coords.tolist()
        for i in range(len(first.polygons))
    }
    b_poly = {
        key(back, back.polygons, i): back.polygons[[i]].coords.tolist()
        for i in range(len(back.polygons))
    }
    assert a_poly == b_poly
    assert server.pushed.get((IMG_DS, "predictions")) is None  # only the chosen label set


def test_push_says_what_the_source_could_not_express(cli: Cli, tmp_path: Path) -> None:
    src = _results(tmp_path, ("000002.png", "car"))
    out = cli("push", src, IMG_DS, "--dry-run").stdout
    assert "note: source: coco_results has no attributes" in out
    assert "coco_results holds no polylines" in out


def test_post_not_repeated_after_a_dropped_connection(server: DeepenServer, tmp_path: Path) -> None:
    from converters._detect import read_coco_results
    from deepen_export.api import Client, RetryPolicy
    from deepen_export.push import PushError, execute, fetch_target, plan_push

    waits: list[float] = []
    with Client(
        CLIENT_ID, TOKEN, base_url=server.url, retry=RetryPolicy(sleep=waits.append)
    ) as client:
        plan = plan_push(
            read_coco_results(_results(tmp_path, ("000002.png", "car"))),
            fetch_target(client, IMG_DS),
        )
        server.fail(r"/labels$", kind="drop", method="POST")
        with pytest.raises(PushError, match="may or may not have landed"):
            execute(client, plan, state=tmp_path / "s.json")
    assert _posts(server) == 1 and waits == []
    # a connection that never opens sent nothing: that is retried
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    policy = RetryPolicy(max_retries=2, sleep=waits.append)
    with (
        Client(
            CLIENT_ID, TOKEN, base_url=f"http://127.0.0.1:{port}/api/v2", retry=policy
        ) as client,
        pytest.raises(PushError, match="never reached the server"),
    ):
        execute(client, plan, state=tmp_path / "s.json")
    assert len(waits) == 2


def test_kitti_without_calib_goes_camera_to_world(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    import shutil

    golden = SAMPLES / "golden" / "kitti"
    nocalib = tmp_path / "kitti"
    shutil.copytree(golden / "label_2", nocalib / "label_2")
    shutil.copy(golden / "mapping.json", nocalib)
    assert run("push", golden, LIDAR_DS, "--label-set", "a").exit_code == 0
    result = run("push", nocalib, LIDAR_DS, "--label-set", "b", "--camera", "camera_0")
    assert result.exit_code == 0, result.output
    a, b = server.pushed[(LIDAR_DS, "a")], server.pushed[(LIDAR_DS, "b")]
    assert set(a) == set(b)
    for key, lab in a.items():
        ba, bb = lab["three_d_bbox"], b[key]["three_d_bbox"]
        np.testing.assert_allclose([bb[k] for k in "lwh"], [ba[k] for k in "lwh"], atol=1e-9)
        np.testing.assert_allclose(
            [bb[k] for k in ("cx", "cy", "cz")], [ba[k] for k in ("cx", "cy", "cz")], atol=1e-6
        )
        qa, qb = (np.array([q[k] for k in "xyzw"]) for q in (ba["quaternion"], bb["quaternion"]))
        assert min(np.abs(qa - qb).max(), np.abs(qa + qb).max()) < 1e-9


# -- property: plans are deterministic, and a pushed plan leaves nothing to send ---------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=_label_sets())
def test_plans_are_deterministic_and_repeat_as_no_ops(labels: Any) -> None:
    from deepen_export.push import PushError, Target, plan_push

    assume(len(labels))
    files = [{"file_id": f} for f in ("0.pcd", "1.pcd", "10.pcd", "a/b.png")]
    target = Target("ds", "predictions", {}, files, None, {})
    try:
        first = plan_push(labels, target)
    except PushError as exc:  # the generator may give two labels one id on one file and sensor
        assert "two source labels map to" in str(exc)
        return
    assert plan_push(labels, target).records == first.records
    keys = [(r["file_id"], r.get("sensor_id", ""), r["label_id"]) for r in first.records]
    assert len(set(keys)) == len(keys) == len(first.added) == len(labels)
    assert all(re.fullmatch(r".+:\d+", r["label_id"]) for r in first.records)
    served = {k: json.loads(json.dumps(r)) for k, r in zip(keys, first.records, strict=True)}
    again = plan_push(labels, Target("ds", "predictions", {}, files, None, served))
    assert again.to_send == [] and again.unchanged == len(keys) and again.removed == []


def test_calibration_from_a_pulled_snapshot(
    run: Callable[..., Result], server: DeepenServer
) -> None:
    del server.media[LIDAR_DS]  # the server cannot serve the frames zip: the snapshot must
    golden = SAMPLES / "golden" / "kitti"
    line = _one_error_line(run("push", golden, LIDAR_DS, "--dry-run"))
    assert "need the dataset's calibration" in line and "--snapshot" in line
    result = run("push", golden, LIDAR_DS, "--snapshot", LIDAR, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would add 8" in result.output and "would add: car:1 on 0000.pcd lidar" in result.output
    wrong = run("push", golden, IMG_DS, "--snapshot", LIDAR, "--dry-run")
    assert "is of dataset" in _one_error_line(wrong)


def test_changing_ground_truth_needs_overwrite(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = json.loads((IMG / "labels.json").read_text())
    src["labels"][0]["box"] = [0, 0, 5, 5]  # one ground-truth box moved
    (tmp_path / "gt.json").write_text(json.dumps(src))
    refused = run("push", tmp_path / "gt.json", IMG_DS, "--label-set", "default")
    assert refused.exit_code == 2 and "--overwrite" in refused.output and _posts(server) == 0
    done = run("push", tmp_path / "gt.json", IMG_DS, "--label-set", "default", "--overwrite")
    assert done.exit_code == 0, done.output
    assert "changes 1," in done.output and _posts(server) == 1


def test_label_ids_keep_tracks_and_renumber_merged_categories() -> None:
    import deepen_export
    from deepen_export.push import Target, plan_push

    def box(fid: str, lid: str, cat: str) -> dict[str, Any]:
        return {"file_id": fid, "label_id": lid, "label_category_id": cat, "label_type": "box",
                "box": [0, 0, 1, 1]}  # fmt: skip

    labels = deepen_export.read_labels({"labels": [
        box("0.png", "car:4", "car"), box("1.png", "car:4", "car"),  # one track over two frames
        box("0.png", "truck:4", "truck"), box("1.png", "bus:9", "bus"),
    ]})  # fmt: skip
    files = [{"file_id": f"{i}.png", "sensors": ["sensor1"]} for i in range(2)]
    target = Target("ds", "predictions", {}, files, None, {})
    kept = [r["label_id"] for r in plan_push(labels, target).records]
    assert kept == ["car:4", "car:4", "truck:4", "bus:9"]
    merged = plan_push(labels, target, category_map={"truck": "vehicle", "bus": "vehicle"})
    assert [r["label_id"] for r in merged.records] == ["car:4", "car:4", "vehicle:1", "vehicle:2"]


def test_a_file_with_two_sensors_needs_sensor(
    run: Callable[..., Result], server: DeepenServer, tmp_path: Path
) -> None:
    src = _results(tmp_path, ("000001.png", "car"))  # 000001.png has sensor1 and sensor2
    line = _one_error_line(run("push", src, IMG_DS))
    assert "000001.png has sensors sensor1, sensor2: pass --sensor" in line and _posts(server) == 0
    assert "not a sensor" in _one_error_line(run("push", src, IMG_DS, "--sensor", "camera_9"))
    assert run("push", src, IMG_DS, "--sensor", "sensor2").exit_code == 0
    assert [k[1] for k in server.pushed[(IMG_DS, "predictions")]] == ["sensor2"]
