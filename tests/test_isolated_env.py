"""The one isolated-venv helper: where it caches, under either environment variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._isolated_env import REQUIREMENTS, cache_root, env_key


def test_cache_root_takes_either_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEEPEN_EXPORT_TEST_CACHE", raising=False)
    monkeypatch.setenv("DEEPEN_TOOL_VENVS", str(tmp_path / "old"))
    assert cache_root() == tmp_path / "old"  # the tests/interop name, still honoured
    monkeypatch.setenv("DEEPEN_EXPORT_TEST_CACHE", str(tmp_path / "new"))
    assert cache_root() == tmp_path / "new"  # the one name wins when both are set


def test_one_key_per_requirements() -> None:
    # a tuple of lines keys by its sorted text; the devkits' file by its bytes
    assert env_key(("b==1", "a==2")) == env_key(("a==2", "b==1")) != env_key(REQUIREMENTS)
