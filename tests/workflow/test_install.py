"""``pip install .`` (not editable) into a fresh venv, then ``deepen-export demo``: the demo's data
must come with the package.

Offline and quick: the wheel is built without build isolation (setuptools and wheel come from the
dev extra) and installed with ``--no-deps --no-index``; the fresh venv sees the test
environment's packages for the dependencies, but deepen-export itself only from the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DEEPEN_EXPORT_SAMPLE_DATA", "PYTHONPATH")
    }
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_pip_install_then_demo_in_a_fresh_venv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("deepen_export", "converters", "sample_data"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    wheels = tmp_path / "wheels"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        src,
        "-w",
        wheels,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("deepen_export-*.whl")

    venv = tmp_path / "venv"
    _run(
        sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path
    )
    py = venv / "bin" / "python"
    purelib = Path(
        _run(
            py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
        ).stdout.strip()
    )
    # the dependencies: whatever this test environment has (no download), after the venv's own
    ours = [p for p in [*site.getsitepackages(), sysconfig.get_path("purelib")] if Path(p).is_dir()]
    (purelib / "test-environment.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    # --ignore-installed: the test environment may hold (an editable) deepen-export too
    _run(
        py,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        "-q",
        wheel,
        cwd=tmp_path,
    )

    where = _run(py, "-c", "import deepen_export; print(deepen_export.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), (
        where.stdout
    )  # the wheel, not the checkout
    out = tmp_path / "demo-out"
    result = _run(venv / "bin" / "deepen-export", "demo", "-o", out, cwd=tmp_path)
    assert "everything is under" in result.stdout
    for dataset in ("image_dataset", "lidar_sequence", "painting2d"):
        assert (out / dataset / "report.html").is_file(), dataset
    assert (out / "image_dataset" / "coco" / "annotations" / "instances_default.json").is_file()
    assert (out / "lidar_sequence" / "kitti").is_dir()
