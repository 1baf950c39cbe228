"""Fixtures of the interop suite: outputs are read from a working directory of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"
IMAGES = SAMPLES / "image_dataset" / "images"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the output folder (nor its parent)."""
    d = tmp_path / "elsewhere" / "deeper"
    d.mkdir(parents=True)
    monkeypatch.chdir(d)
    return d
