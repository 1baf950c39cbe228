"""Progress: every file loop of a writer reports to the display and finishes at its total;
a terminal sees the bars, a pipe sees none."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import converters
from deepen_export._progress import display, progress, status, task

SAMPLES = Path(__file__).parents[1] / "sample_data"


class Recorder:
    """A display that keeps every task it is given."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, *, total: float | None = None, **fields: Any) -> int:
        tid = len(self.tasks) + 1
        self.tasks[tid] = {"description": description, "total": total, "done": 0, "open": True}
        return tid

    def update(self, task_id: int, **kw: Any) -> None:
        t = self.tasks[task_id]
        assert t["open"], "update after the task was removed"
        if kw.get("total") is not None:
            t["total"] = kw["total"]
        if kw.get("completed") is not None:
            t["done"] = kw["completed"]
        t["done"] += kw.get("advance") or 0

    def remove_task(self, task_id: int) -> None:
        self.tasks[task_id]["open"] = False

    def named(self, description: str) -> dict[str, Any]:
        (hit,) = [t for t in self.tasks.values() if t["description"] == description]
        return hit


CASES = [
    ("voc", "images", "VOC XML files", lambda f: f.startswith("Annotations/")),
    ("yolo", "images", "YOLO label files", lambda f: f.startswith("labels/")),
    ("masks", "images", "mask PNGs", lambda f: f.startswith("masks/")),
    ("culane", "images", "CULane .lines.txt files", lambda f: f.endswith(".lines.txt")),
    ("kitti", "lidar", "label_2 files", lambda f: f.startswith("label_2/")),
    ("kitti", "lidar", "calib files", lambda f: f.startswith("calib/")),
    ("kitti", "lidar", "velodyne scans", lambda f: f.startswith("velodyne/")),
    ("kitti_tracking", "lidar", "velodyne scans", lambda f: f.startswith("velodyne/")),
    ("semantickitti", "lidar", ".label files", lambda f: f.endswith(".label")),
    ("semantickitti", "lidar", "velodyne scans", lambda f: f.endswith(".bin")),
    ("lidarseg", "lidar", "lidarseg files", lambda f: f.startswith("lidarseg/")),
]


@pytest.mark.parametrize(("fmt", "source", "description", "is_counted"), CASES)
def test_each_file_loop_counts_exactly_the_files_written(
    request, tmp_path, fmt, source, description, is_counted
):
    labels = request.getfixturevalue(source)
    rec = Recorder()
    with display(rec):
        report = converters.get(fmt).write(labels, tmp_path / "out", on_unsupported="drop")
    n_files = sum(1 for f in report.files if is_counted(f))
    assert n_files > 0
    t = rec.named(description)
    assert t["total"] == t["done"] == n_files
    assert not any(t["open"] for t in rec.tasks.values())


@pytest.mark.parametrize("fmt", ["coco", "cvat", "openlabel", "parquet", "tusimple"])
def test_single_document_writers_close_every_task_they_open(tmp_path, images, fmt):
    rec = Recorder()
    with display(rec):
        converters.get(fmt).write(images, tmp_path / "out", on_unsupported="drop")
    assert not any(t["open"] for t in rec.tasks.values())
    counted = [t for t in rec.tasks.values() if t["total"] is not None]
    assert all(t["done"] == t["total"] for t in counted)


def test_a_write_failing_halfway_leaves_no_task_open_and_no_output(tmp_path, images, monkeypatch):
    from converters import _base

    real = _base._write_new
    calls = []

    def flaky(path, *args, **kwargs):
        if str(path).endswith(".txt"):
            calls.append(path)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_base, "_write_new", flaky)  # what write_files creates each file with
    rec = Recorder()
    with display(rec), pytest.raises(OSError, match="No space left"):
        converters.get("yolo").write(images, tmp_path / "out", on_unsupported="drop")
    monkeypatch.undo()
    t = rec.named("YOLO label files")
    assert t["done"] == 2 and t["total"] == 5 and not t["open"]
    assert not any(t["open"] for t in rec.tasks.values())
    assert not (tmp_path / "out").exists()


def test_nested_steps_join_the_outer_display_and_stop_early_cleanly():
    rec = Recorder()
    with display(rec), status("outer"):
        with display() as inner:
            assert inner is rec
        for i in progress(range(10), description="early stop"):
            if i == 3:
                break
        with task("bytes", None, unit="bytes") as advance:
            advance(completed=512, total=1024)
    assert rec.named("early stop")["total"] == 10 and rec.named("early stop")["done"] == 3
    assert rec.named("bytes")["done"] == 512 and rec.named("bytes")["total"] == 1024
    assert not any(t["open"] for t in rec.tasks.values())


def test_outside_a_display_in_a_pipe_nothing_is_drawn(capsys):
    assert list(progress([1, 2], description="quiet")) == [1, 2]
    with status("quiet"):
        pass
    assert capsys.readouterr().err == ""


def _cli(args: list[str], *, terminal: bool) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "deepen_export.cli", *args]
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    if not terminal:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        return p.returncode, p.stdout, p.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=follower, env=env) as p:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        out = p.stdout.read().decode() if p.stdout else ""
        rc = p.wait(timeout=120)
    os.close(leader)
    return rc, out, b"".join(chunks).decode("utf-8", "replace")


def test_convert_draws_bars_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    src = str(SAMPLES / "image_dataset")
    args = ["convert", src, "--to", "voc", "--on-unsupported", "drop"]
    rc, out, err = _cli([*args, "-o", str(tmp_path / "tty")], terminal=True)
    assert rc == 0, err
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    assert f"reading {src}" in plain
    assert "writing voc" in plain
    assert "VOC XML files" in plain and "0/5" in plain
    assert "voc: wrote 5 images" in out

    rc, out, err = _cli([*args, "-o", str(tmp_path / "pipe")], terminal=False)
    assert rc == 0, err
    assert err == "" and "\x1b" not in out
    assert "voc: wrote 5 images" in out


def test_quiet_silences_steps_even_inside_a_display():
    from deepen_export._progress import quiet

    rec = Recorder()
    with display(rec), quiet():
        assert list(progress(range(3), description="hidden")) == [0, 1, 2]
    assert rec.tasks == {}


def test_a_step_finished_in_another_thread_leaves_no_display_behind(monkeypatch):
    import contextlib
    import threading

    from deepen_export import _progress

    rec = Recorder()
    monkeypatch.setattr(_progress, "_rich_display", lambda: contextlib.nullcontext(rec))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    steps = progress(range(3), description="started here")
    next(steps)
    worker = threading.Thread(target=lambda: list(steps))
    worker.start()
    worker.join()
    assert rec.named("started here")["done"] == 3
    assert _progress._sink.get() is None and _progress._live == 0
    # the next step in this context draws again
    assert list(progress(range(2), description="after")) == [0, 1]
    assert rec.named("after")["done"] == 2
