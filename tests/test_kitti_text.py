"""KITTI label text formatted column-wise (issue 12 item 2) is what ``%`` formatting writes.

The reference is Python's own ``"%.<d>f" % v`` of the value rounded to ``d`` decimals (the
formatting KITTI's writer used per label before), over random values, halfway cases, large
magnitudes, signed zeros and non-finite values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters import _kitti_rows as kr
from converters._numbers import fixed, fixed_texts


def _reference(values: list[float], d: int) -> list[str]:
    return [f"%.{d}f" % v for v in fixed(values, d).tolist()]


@settings(max_examples=300, deadline=None)
@given(
    # below 1e290: np.round (fixed) overflows scaling values near the float64 maximum
    st.lists(
        st.floats(min_value=-1e290, max_value=1e290)
        | st.sampled_from([math.nan, math.inf, -math.inf]),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=17),
)
def test_fixed_texts_is_percent_formatting(values: list[float], d: int) -> None:
    assert fixed_texts(values, d).to_pylist() == _reference(values, d)


@pytest.mark.parametrize("d", [0, 1, 2, 3, 6, 9])
def test_fixed_texts_on_edges(d: int) -> None:
    scale = 10.0**d
    edges = [0.0, -0.0, 0.5 / scale, -0.5 / scale, 1.5 / scale, -2.5 / scale, 1.005, -1.005,
             2.0**52 / scale, -(2.0**52) / scale, 2.0**53 / scale, 1e15, -1e15, 1e290,
             -1000.0, -10.0, math.pi, -math.e, math.inf, -math.inf, math.nan]  # fmt: skip
    rng = np.random.default_rng(d)
    values = edges + (rng.standard_normal(2000) * 10.0 ** rng.integers(-3, 9, 2000)).tolist()
    assert fixed_texts(values, d).to_pylist() == _reference(values, d)


def test_lines_and_files_are_the_per_label_ones() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    values = rng.standard_normal((n, 14)) * 40
    values[:, kr.OCC] = rng.integers(-1, 4, n)
    types = np.array(
        rng.choice(["Car", "Pedestrian", "Überwagen", "Traffic_cone"], n), dtype=object
    )
    frame = np.sort(rng.integers(0, 50, n))
    fmts = ["%s", "%.2f", "%d"] + ["%.2f"] * 12
    got = kr.format_columns([types, *values.T], fmts).to_pylist()
    line = " ".join(fmts)
    cols = [
        types.tolist(),
        fixed(values[:, 0], 2).tolist(),
        np.round(values[:, 1]).astype(int).tolist(),
    ]
    cols += [fixed(values[:, j], 2).tolist() for j in range(2, 14)]
    want = [line % row for row in zip(*cols, strict=True)]
    assert got == want
    files = kr.group_text(frame, kr.format_columns([types, *values.T], fmts), 52)
    for i in range(52):
        text = "".join(f"{s}\n" for s, f in zip(want, frame.tolist(), strict=True) if f == i)
        assert files[i] == text.encode("utf-8")
    assert kr.group_text(
        np.zeros(0, dtype=np.int64), kr.format_columns([np.zeros(0)], ["%d"]), 2
    ) == [b"", b""]
