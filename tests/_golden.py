"""Comparing a freshly written output with its golden copy under sample_data/golden/."""

from __future__ import annotations

from pathlib import Path


def assert_same_tree(out: Path, golden: Path) -> None:
    """Every file of ``out`` equals the golden one, byte for byte (golden READMEs aside)."""
    want = sorted(
        p.relative_to(golden) for p in golden.rglob("*") if p.is_file() and p.name != "README.md"
    )
    got = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert got == want
    for rel in want:
        assert (out / rel).read_bytes() == (golden / rel).read_bytes(), rel
