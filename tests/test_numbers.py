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
_NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


class _Noise:
    """Finds float noise in text: a number of 14 or more significant digits that is a short
    decimal (at most 10 digits) once rounded to 12 (``26.060000000000002``, ``80.8681249999999``);
    genuine long values (``341.527222222``, ``0.99999998``) are not noise."""

    def search(self, text: str) -> str | None:
        for m in _NUMBER.finditer(text):
            t = m.group()
            mantissa = t.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
            if len(mantissa) >= 14:
                short = f"{float(t):.12g}".split("e")[0].lstrip("-").replace(".", "").lstrip("0")
                if len(short) <= 10:
                    return t
        return None


NOISE = _Noise()


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


def test_fortran_ordered_input() -> None:
    a = np.asfortranarray([[96.81 + 175.28, 1.0], [83.05 + 26.06 - 83.05, 2.0]])
    assert shortest(a).tolist() == [[272.09, 1.0], [26.06, 2.0]]


def _synthetic() -> deepen_export.LabelSet:
    """The benchmark generator's labels: Deepen ``[x, y, w, h]`` with 2 decimals, whose
    ``x + w`` corners carry float noise, on 1920 x 1080 images."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_generate", Path(__file__).resolve().parents[1] / "benchmarks" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    ls = deepen_export.read_labels(gen.generate(3000, 100, seed=1))
    cols = ls.frames.columns()
    cols["width"] = np.full(len(ls.frames), 1920)
    cols["height"] = np.full(len(ls.frames), 1080)
    return ls.replace(frames=type(ls.frames).from_columns(**cols))


@pytest.mark.parametrize("module", [coco, voc, cvat, openlabel])
def test_no_float_noise_on_noisy_input(tmp_path: Path, module: object) -> None:
    ls = _synthetic()
    assert NOISE.search(repr(ls.boxes.xyxy.tolist()))  # the input does carry noise
    kw = {"integer": False} if module is voc else {}
    module.write(ls, tmp_path / "out", on_unsupported="drop", **kw)  # type: ignore[attr-defined]
    for p in (tmp_path / "out").rglob("*"):
        if p.suffix in (".json", ".xml") and p.name != "report.json":
            found = NOISE.search(p.read_text())
            assert not found, (p.name, found)
