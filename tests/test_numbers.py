"""The shared number formatting: shortest-exact numbers in every text output."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepen_export
from converters import coco, cvat, kitti_tracking, openlabel, voc, yolo
from converters._base import codes_by_value, texts_by_value, write_files
from converters._numbers import (
    cells_text,
    fixed,
    fixed_cells,
    int_cells,
    join_cells,
    repr_cells,
    shortest,
    texts,
)

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


# -- text in bulk: the column formatters give the bytes the one-by-one formatting gave --------


def _values(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.random(n),  # YOLO's [0, 1]
            rng.uniform(-3000, 3000, n),  # pixels, negative too
            (rng.integers(-(10**6), 10**6, n) + 0.5) / 10**6,  # decimal ties (inexact)
            rng.integers(-(10**5), 10**5, n) / 128.0,  # exact binary ties at 6 decimals
            rng.integers(-(10**4), 10**4, n) / 16.0,  # exact ties at 0 to 3 decimals
            [0.0, -0.0, 5e-7, -5e-7, np.nan, np.inf, -np.inf, 1e300, -1e20, 99999999.9999995],
        ]
    )


@pytest.mark.parametrize("decimals", [0, 1, 3, 6, 9])
def test_fixed_cells_are_printf_of_the_rounded_values(decimals: int) -> None:
    v = _values(40_000, decimals)
    with np.errstate(over="ignore"):  # 1e300 * 10**9 overflows in the reference too
        expected = ["%.*f" % (decimals, x) for x in fixed(v, decimals).tolist()]  # noqa: UP031
    assert cells_text(fixed_cells(v, decimals)) == expected


def test_fixed_cells_round_binary_ties_to_even() -> None:
    # 1/128 = 0.0078125 exactly: a true tie at 6 decimals, C's printf rounds it to even
    assert cells_text(fixed_cells([1 / 128, 3 / 128, -5 / 128, 2.5, 3.5], 6)) == [
        "%.6f" % x  # noqa: UP031 - C's printf is the reference
        for x in (1 / 128, 3 / 128, -5 / 128, 2.5, 3.5)
    ]
    assert cells_text(fixed_cells([0.5, 1.5, 2.5, -0.5], 0)) == ["0", "2", "2", "0"]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50), st.integers(0, 8))
def test_fixed_cells_any_floats(values: list[float], decimals: int) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = fixed(np.array(values, dtype=np.float64), decimals).tolist()
    expected = ["%.*f" % (decimals, x) for x in rounded]  # noqa: UP031
    assert cells_text(fixed_cells(values, decimals)) == expected


@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50))
def test_int_cells_any_integers(values: list[int]) -> None:
    assert cells_text(int_cells(np.array(values, dtype=np.int64))) == [
        "%d" % v  # noqa: UP031
        for v in values
    ]


@pytest.mark.parametrize("decimals", [1, 2, 5])
def test_repr_cells_are_repr_of_the_rounded_values(decimals: int) -> None:
    v = np.concatenate([_values(20_000, 7), np.random.default_rng(3).random(5000) * 1e-3])
    v = v[np.isfinite(v)]
    expected = [repr(x) for x in fixed(v, decimals).tolist()]
    assert cells_text(repr_cells(v, decimals)) == expected


def test_join_cells_lines_and_offsets() -> None:
    classes = int_cells([3, 12, 0])
    xs = fixed_cells([0.5, -12.25, 100.0], 2)
    buf, offsets = join_cells([classes, b" ", xs, b"\n"])
    text = buf.tobytes().decode()
    assert text == "3 0.50\n12 -12.25\n0 100.00\n"
    assert [text[a:b] for a, b in itertools.pairwise(offsets)] == text.splitlines(True)


@pytest.mark.parametrize("threads", [1, 4])
def test_write_files_from_the_pool(tmp_path: Path, threads: int) -> None:
    contents = [f"file {i}\n".encode() * (i % 7) for i in range(300)]  # empty ones too
    data = np.frombuffer(b"".join(contents), dtype=np.uint8)
    ends = np.cumsum([len(c) for c in contents])
    rels = [f"d{i % 5}/sub/{i}.txt" for i in range(300)]
    tail = np.frombuffer(b"END", dtype=np.uint8)  # a second piece appended to every file
    write_files(
        tmp_path,
        rels,
        [
            (data, ends - [len(c) for c in contents], ends),
            (tail, np.zeros(300, int), np.full(300, 3)),
        ],
        threads=threads,
    )
    for rel, c in zip(rels, contents, strict=True):
        assert (tmp_path / rel).read_bytes() == c + b"END"


def test_write_files_after_a_short_write(tmp_path: Path, monkeypatch) -> None:
    """A write that takes only part of the bytes is continued with the rest."""
    import os

    monkeypatch.setattr(os, "writev", lambda fd, parts: os.write(fd, bytes(parts[0][:1])))
    buf = np.frombuffer(b"abcdef", np.uint8)
    write_files(tmp_path, ["a.txt", "b.txt"], [(buf, np.array([0, 3]), np.array([3, 6]))] * 2)
    assert (tmp_path / "a.txt").read_bytes() == b"abcabc"
    assert (tmp_path / "b.txt").read_bytes() == b"defdef"


def test_texts_by_value_keeps_types_apart() -> None:
    calls = []

    def text(v: object) -> str:
        calls.append(v)
        return repr(v)

    assert texts_by_value(["a", None, "a", "b", "a"], text).tolist() == [
        "'a'",
        "",
        "'a'",
        "'b'",
        "'a'",
    ]
    assert sorted(calls) == ["a", "b"]  # once per distinct value
    # True == 1 and -0.0 == 0.0, but their texts differ
    assert texts_by_value([True, 1, None, 1.0], repr).tolist() == ["True", "1", "", "1.0"]
    assert texts_by_value([0.0, -0.0], repr).tolist() == ["0.0", "-0.0"]


_VALUES = st.lists(
    st.one_of(
        st.none(),
        st.sampled_from(["a", "b", "é"]),
        st.integers(-2, 2),
        st.booleans(),
        st.floats(-1, 1, width=16),
        st.sampled_from([np.int64(1), np.str_("a")]),
        st.lists(st.integers(0, 1), max_size=2),
    ),
    max_size=12,
)


@given(st.one_of(_VALUES, st.lists(st.sampled_from(["x", "y", None]), max_size=12)))
def test_codes_by_value_are_the_texts_one_by_one(values: list) -> None:
    """Codes and texts (each text once) give text_of of every value, "" for None."""

    def text(v: object) -> str:
        return f"{type(v).__name__}:{v!r}"

    codes, texts_ = codes_by_value(values, text)
    expected = ["" if v is None else text(v) for v in values]
    assert [texts_[c] for c in codes.tolist()] == expected
    assert len(set(texts_)) == len(texts_)
    assert texts_by_value(values, text).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(-(10**15), 10**15).map(float)
        | st.floats(-1e16, 1e16, allow_nan=False).map(math.floor).map(float)
        | st.just(-0.0),
        min_size=1,
        max_size=20,
    )
)
def test_whole_texts_fast_path_is_the_general_one(values: list[float]) -> None:
    """All-whole values take the integer shortcut; a NaN appended forces the general path."""
    assert texts(values) == texts([*values, math.nan])[:-1]
