"""`deepen-export demo`: runs on the bundled samples, and everything it writes reads back."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import converters
from deepen_export import cli
from deepen_export.commands.see import run_demo
from deepen_export.model import LabelSet
from deepen_export.stats import sample_data_dir

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    res = CliRunner().invoke(cli.main, ["demo", "-o", str(out)])
    return out, res.output if res.exit_code == 0 else f"exit {res.exit_code}: {res.output}"


def test_sample_data_found_from_the_checkout() -> None:
    assert sample_data_dir() == SAMPLES


def test_sample_data_missing_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPEN_EXPORT_SAMPLE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr("deepen_export.stats.__file__", str(tmp_path / "pkg" / "stats.py"))
    with pytest.raises(FileNotFoundError, match="DEEPEN_EXPORT_SAMPLE_DATA"):
        sample_data_dir()


def test_demo_command_succeeds_and_says_where(demo_out: tuple[Path, str]) -> None:
    _, output = demo_out
    assert not output.startswith("exit"), output
    assert "everything is under" in output and "outputs written in" in output


@pytest.mark.parametrize("dataset", ["image_dataset", "lidar_sequence", "painting2d"])
def test_demo_previews_and_reports(demo_out: tuple[Path, str], dataset: str) -> None:
    out, _ = demo_out
    pngs = sorted((out / dataset / "preview").rglob("*.png"))
    assert pngs
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG" and min(im.size) >= 64

    tags: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append(tag)

    P().feed((out / dataset / "report.html").read_text(encoding="utf-8"))
    assert "table" in tags and "img" in tags
    if dataset == "lidar_sequence":
        names = {p.name for p in pngs}
        assert {"0000.bev.png", "0000.camera_0.png", "0000.camera_1.png"} <= names


def test_every_converted_output_reads_back(tmp_path) -> None:
    results = run_demo(tmp_path / "out", sample_dir=SAMPLES)
    failed = [r for r in results if r.status == "failed"]
    assert not failed, failed
    assert {r.status for r in results} <= {"ok", "not available"}
    for r in results:
        if r.status != "ok" or r.what in ("preview", "stats"):
            continue
        assert r.path is not None and (r.path / "report.json").is_file()
        if converters.get_format(r.what).readable:
            back = converters.read(r.path, r.what)
            assert isinstance(back, LabelSet), r
            assert len(back.frames) > 0, r
