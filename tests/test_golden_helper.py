"""The golden-file helper: update mode rewrites the golden copy and skips, never passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._golden import assert_same_tree


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_mismatch_fails(tmp_path: Path) -> None:
    out = _tree(tmp_path / "out", {"a.txt": b"new"})
    golden = _tree(tmp_path / "golden", {"a.txt": b"old", "README.md": b"kept"})
    with pytest.raises(AssertionError):
        assert_same_tree(out, golden)


def test_update_mode_rewrites_then_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _tree(tmp_path / "out", {"a.txt": b"new", "sub/b.txt": b"b"})
    golden = _tree(tmp_path / "golden", {"a.txt": b"old", "gone.txt": b"x", "README.md": b"kept"})
    monkeypatch.setenv("DEEPEN_UPDATE_GOLDEN", "1")
    with pytest.raises(pytest.skip.Exception, match="rewrote golden"):
        assert_same_tree(out, golden)
    assert (golden / "a.txt").read_bytes() == b"new"
    assert (golden / "sub/b.txt").read_bytes() == b"b"
    assert not (golden / "gone.txt").exists()
    assert (golden / "README.md").read_bytes() == b"kept"
    monkeypatch.delenv("DEEPEN_UPDATE_GOLDEN")
    assert_same_tree(out, golden)  # and now it compares equal


def test_update_mode_compares_a_golden_copy_that_already_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _tree(tmp_path / "out", {"a.txt": b"same"})
    golden = _tree(tmp_path / "golden", {"a.txt": b"same"})
    monkeypatch.setenv("DEEPEN_UPDATE_GOLDEN", "1")
    assert_same_tree(out, golden)  # no rewrite, no skip: the next golden tree gets its turn
