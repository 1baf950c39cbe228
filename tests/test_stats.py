"""Stats: every number below is counted by hand from the small label set built here."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from deepen_export.model import Boxes, Cuboids, Frames, FrameStatus, LabelSet, Poses
from deepen_export.stats import compute_stats, html_report, print_stats, write_html_report

S = FrameStatus


@pytest.fixture
def labels() -> LabelSet:
    frames = Frames.from_columns(
        file_id=["0.pcd", "1.pcd", "2.pcd", "3.pcd", "a.png"],
        sensor_id=["lidar"] * 4 + ["sensor1"],
        index=[0, 1, 2, 3, -1],
        status=[S.LABELLED, S.LABELLED, S.EMPTY, S.UNLABELLED, S.UNKNOWN],
    )
    poses = Poses.from_columns(
        frame=[0, 1], position=[[100, 50, 0], [101, 50, 0]], quat=[[0, 0, 0, 1]] * 2
    )
    cuboids = Cuboids.from_columns(
        frame=[0, 0, 1, 1],
        category=[0, 1, 0, 0],
        label_id=["car:1", "pedestrian:5", "car:1", "car:2"],
        # distances from the device: (3, 4, 0) -> 5; (0, 0, 1) -> 1; (6, 8, 0) -> 10; (0, 0, 2) -> 2
        center=[[103, 54, 0], [100, 50, 1], [107, 58, 0], [101, 50, 2]],
        size=[[4, 2, 1.5]] * 4,
        quat=[[0, 0, 0, 1]] * 4,
        stage=["QA", "QA", "labelling", "QA"],
        labeller=["a@x", "a@x", "b@x", "a@x"],
        # 1700000000 s = 2023-11-14 22:13:20 UTC; 1600000000 s = 2020-09-13 12:26:40 UTC
        update_time=[1_600_000_000_000, 1_700_000_000_000, 1_600_000_000_000, -1],
    )
    boxes = Boxes.from_columns(
        frame=[4, 4],
        category=[2, 2],
        label_id=["sign:1", "sign:2"],
        xyxy=[[0, 0, 10, 20], [5, 5, 8, 9]],
    )
    return LabelSet(
        frames=frames,
        categories=("car", "pedestrian", "sign"),
        cuboids=cuboids,
        boxes=boxes,
        poses=poses,
    )


def test_counts_by_category_and_kind(labels: LabelSet) -> None:
    t = compute_stats(labels).table("Labels by category and kind")
    assert t.columns == ("category", "boxes", "cuboids", "total")
    assert t.rows == [
        ("car", 0, 3, 3),
        ("pedestrian", 0, 1, 1),
        ("sign", 2, 0, 2),
        ("total", 2, 4, 6),
    ]


def test_frames_by_status(labels: LabelSet) -> None:
    t = compute_stats(labels).table("Frames by status")
    assert t.rows == [
        ("labelled", 2, 2),
        ("empty", 1, 0),
        ("unlabelled", 1, 0),
        ("unknown", 1, 1),
        ("total", 5, 3),
    ]


def test_stages_and_labellers(labels: LabelSet) -> None:
    stats = compute_stats(labels)
    assert stats.table("Labels by stage").rows == [("QA", 3), ("(none)", 2), ("labelling", 1)]
    assert stats.table("Labels by labeller").rows == [
        ("a@x", 3, 2, "2023-11-14 22:13"),
        ("(none)", 2, 1, ""),
        ("b@x", 1, 1, "2020-09-13 12:26"),
    ]


def test_tracks_and_lengths(labels: LabelSet) -> None:
    stats = compute_stats(labels)
    # car:1 on frames 0 and 1 (length 2), car:2 (1), pedestrian:5 (1), sign:1 (1), sign:2 (1)
    assert stats.table("Tracks by category").rows == [
        ("car", 2, 3, 1, 1.5, 2),
        ("sign", 2, 2, 1, 1, 1),
        ("pedestrian", 1, 1, 1, 1, 1),
    ]
    assert sorted(stats.distribution("Track length").values.tolist()) == [1, 1, 1, 1, 2]


def test_same_label_id_in_two_datasets_is_two_tracks() -> None:
    def one(ds: str) -> LabelSet:
        return LabelSet(
            frames=Frames.from_columns(file_id=["0.pcd"], dataset_id=[ds]),
            categories=("car",),
            boxes=Boxes.from_columns(
                frame=[0], category=[0], label_id=["car:1"], xyxy=[[0, 0, 1, 1]]
            ),
        )

    stats = compute_stats(LabelSet.concat([one("d1"), one("d2")]))
    assert stats.table("Tracks by category").rows == [("car", 2, 2, 1, 1, 1)]


def test_distributions(labels: LabelSet) -> None:
    stats = compute_stats(labels)
    assert stats.distribution("Box width").values.tolist() == [10, 3]
    assert stats.distribution("Box height").values.tolist() == [20, 4]
    assert stats.distribution("Cuboid distance").values.tolist() == [5, 1, 10, 2]
    assert stats.distribution("Labels per labelled frame").values.tolist() == [2, 2, 2]
    row = stats.distribution_table().rows[2]
    # n, min, p25, median, p75, max, mean of [1, 2, 5, 10] (numpy's linear quantiles:
    # p25 at position 0.75 -> 1.75, median 3.5, p75 at position 2.25 -> 6.25, mean 4.5)
    assert row[2:] == (4, 1, 1.75, 3.5, 6.25, 10, 4.5)


def test_world_cuboids_without_a_pose_are_left_out_and_said_so(labels: LabelSet) -> None:
    d = compute_stats(labels.replace(poses=labels.poses.take([0]))).distribution("Cuboid distance")
    assert d.values.tolist() == [5, 1]
    assert d.note.startswith("2 world-frame cuboid(s)")


def test_terminal_output_has_every_table(labels: LabelSet) -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=140, color_system=None)
    print_stats(compute_stats(labels, title="sample"), console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for title in (
        "Labels by category and kind",
        "Frames by status",
        "Tracks by category",
        "Distributions",
    ):
        assert title in text
    assert "a@x" in text and "2023-11-14 22:13" in text


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k == "src" and v:
                self.srcs.append(v)
            if k in ("href", "src", "srcset", "action") and v:
                self.refs.append(v)


def test_html_report_is_self_contained_with_tables_and_png_plots(labels: LabelSet) -> None:
    stats = compute_stats(labels)
    page = html_report(stats)
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("table") == len(stats.tables) + 1  # + the distributions table
    assert "script" not in parser.tags and "link" not in parser.tags
    assert all(r.startswith("data:image/png;base64,") for r in parser.refs)
    assert len(parser.srcs) == len(stats.distributions)
    for src in parser.srcs:
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            assert im.format == "PNG" and im.size == (520, 240)
    assert "url(" not in page and "@import" not in page


def test_html_report_opens_in_headless_chromium(labels: LabelSet, tmp_path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(
            "chromium is not installed: apt-get install -y chromium (the report test needs it)"
        )
    path = write_html_report(
        compute_stats(labels, title="chromium check"), tmp_path / "report.html"
    )
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERR_" not in proc.stderr and "Failed to load" not in proc.stderr, proc.stderr[-2000:]
    with Image.open(shot) as im:
        img = np.asarray(im.convert("RGB"))
    assert img.shape == (2000, 1200, 3)
    # the table headers' background (#f0f0f0) and the histogram bars (66, 120, 200) were painted
    assert (img == (240, 240, 240)).all(axis=2).sum() > 1000
    assert (img == (66, 120, 200)).all(axis=2).sum() > 500


def test_stats_command_prints_and_writes_html(labels: LabelSet, tmp_path, monkeypatch) -> None:
    from deepen_export import cli
    from deepen_export.commands import see

    monkeypatch.setattr(see, "_load", lambda *a, **k: labels)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli.main, ["stats", str(tmp_path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Frames by status" in res.output and f"wrote {out}" in res.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_cuboid_and_its_camera_box_with_one_label_id_are_one_track() -> None:
    frames = Frames.from_columns(
        file_id=["0.pcd", "0.pcd", "1.pcd"],
        sensor_id=["lidar", "camera_0", "lidar"],
        index=[0, 0, 1],
    )
    cub = Cuboids.from_columns(
        frame=[0, 2], category=[0, 0], label_id=["car:1", "car:1"], center=[[1, 0, 0]] * 2, size=[[1, 1, 1]] * 2,
        quat=[[0, 0, 0, 1]] * 2, frame_of_reference="lidar",
    )  # fmt: skip
    box = Boxes.from_columns(frame=[1], category=[0], label_id=["car:1"], xyxy=[[0, 0, 5, 5]])
    stats = compute_stats(LabelSet(frames=frames, categories=("car",), cuboids=cub, boxes=box))
    # car:1 is on sequence positions 0 (lidar and camera_0) and 1: one track of length 2, 3 labels
    assert stats.table("Tracks by category").rows == [("car", 1, 3, 2, 2, 2)]


def test_input_issues_are_counted_by_reason() -> None:
    import deepen_export

    labels = deepen_export.read_labels(
        Path(__file__).resolve().parent.parent / "sample_data" / "bad" / "unknown_label_type.json"
    )
    assert labels.issues  # the sample has one label of an unknown type
    t = compute_stats(labels).table("Input issues")
    assert sum(r[-1] for r in t.rows) == len(labels.issues)
    assert any("2d_ellipse" in " ".join(map(str, r)) for r in t.rows)
