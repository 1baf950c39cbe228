"""Comparing a freshly written output with its golden copy under sample_data/golden/.

``DEEPEN_UPDATE_GOLDEN=1`` replaces the golden files with the fresh output instead (READMEs
stay) and then *skips* the test: an update compared nothing, so it must not count as a pass.
A golden copy that already matches is compared as usual (so a test with several golden trees
updates one per run).
Check the diff by hand before committing, as each golden README says.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def _files(root: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


def assert_same_tree(out: Path, golden: Path) -> None:
    """Every file of ``out`` equals the golden one, byte for byte (golden READMEs aside)."""
    if os.environ.get("DEEPEN_UPDATE_GOLDEN") == "1" and _files(out) != _files(golden):
        for p in sorted(golden.rglob("*"), reverse=True):
            if p.is_file() and p.name != "README.md":
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        shutil.copytree(out, golden, dirs_exist_ok=True)
        pytest.skip(f"DEEPEN_UPDATE_GOLDEN=1: rewrote {golden.name}; review the diff, then rerun")
    want = sorted(_files(golden))
    got = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert got == want
    for rel in want:
        assert (out / rel).read_bytes() == (golden / rel).read_bytes(), rel


def assert_same_file(text: str, golden: Path) -> None:
    """``text`` equals the golden file ``golden``; the update mode rewrites it and skips."""
    if os.environ.get("DEEPEN_UPDATE_GOLDEN") == "1" and (
        not golden.is_file() or golden.read_text(encoding="utf-8") != text
    ):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        pytest.skip(f"DEEPEN_UPDATE_GOLDEN=1: rewrote {golden.name}; review the diff, then rerun")
    assert text == golden.read_text(encoding="utf-8")
