"""The shared number formatting: shortest-exact numbers in every text output."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import deepen_export
from converters import coco, cvat, kitti_tracking, openlabel, voc, yolo
from converters._numbers import fixed, shortest, texts

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
# 16-17 significant digits ending a run of 0s or 9s: float noise such as 26.060000000000002
NOISE = re.compile(r"\d\.\d*(0{6,}[1-9]|9{6,}\d)")


@given(
    st.integers(-(10**9), 10**9).filter(bool),  # next to 0 are subnormals, not noise
    st.integers(0, 6),
    st.sampled_from([-2, -1, 1, 2]),
)
def test_shortest_removes_last_bit_noise(n: int, k: int, ulps: int) -> None:
    v = n / 10**k  # a decimal of at most 15 digits, as a user typed it
    noisy = v
    for _ in range(abs(ulps)):
        noisy = float(np.nextafter(noisy, np.inf if ulps > 0 else -np.inf))
    assert shortest([noisy])[0] == v
    (text,) = texts([noisy])
    assert float(text) == v and len(text.replace("-", "").replace(".", "")) <= 16


def test_known_noise_and_specials() -> None:
    assert texts([83.05 + 26.06 - 83.05, 272.09000000000003, -0.0, np.nan, 5.0]) == [
        "26.06", "272.09", "0", "nan", "5",
    ]  # fmt: skip
    assert fixed([0.1 + 0.2, -1e-9], 6).tolist() == [0.3, 0.0]


@pytest.mark.parametrize(
    ("module", "sample", "kw"),
    [
        (coco, "image_dataset", {}),
        (voc, "image_dataset", {"integer": False}),
        (cvat, "image_dataset", {}),
        (yolo, "image_dataset", {}),
        (openlabel, "lidar_sequence", {}),
        (kitti_tracking, "lidar_sequence", {}),
    ],
)
def test_no_float_noise_in_outputs(tmp_path: Path, module: object, sample: str, kw: dict) -> None:
    labels = deepen_export.read_labels(SAMPLES / sample)
    module.write(labels, tmp_path / "out", on_unsupported="drop", **kw)  # type: ignore[attr-defined]
    texts_ = [
        p.read_text()
        for p in (tmp_path / "out").rglob("*")
        if p.suffix in (".json", ".xml", ".txt", ".yaml")
    ]
    assert texts_
    for t in texts_:
        assert not NOISE.search(t), NOISE.search(t)
