"""Isolated virtual environments for reference tools whose pins clash with the project's own.

datumaro 1.13 pins ``pillow~=12`` and ``pyarrow~=25`` (the project runs pillow 13, pyarrow 26), so
it cannot live in the project's environment. :func:`tool_python` builds a venv once per set of
requirements under ``$DEEPEN_TOOL_VENVS`` (default ``~/.cache/deepen-export/tool-venvs``), keyed
by a hash of the requirement lines, and returns its interpreter; tests run the tool in it with
:func:`run_tool` (a subprocess), never by importing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["run_tool", "tool_python"]

DATUMARO = ("datumaro==1.13.12",)
"""What the datumaro checks run with (the release that installs on Python 3.11 with numpy 2)."""


def _root() -> Path:
    return Path(
        os.environ.get("DEEPEN_TOOL_VENVS", Path.home() / ".cache/deepen-export/tool-venvs")
    )


def tool_python(requirements: tuple[str, ...]) -> Path:
    """The interpreter of a cached venv holding ``requirements`` (built on first use).

    A venv whose build did not finish has no ``ok`` marker and is rebuilt.
    """
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    venv = _root() / key
    py = venv / "bin" / "python"
    if (venv / "ok").exists():
        return py
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building it right now
        if (venv / "ok").exists():
            return py
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        done = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.fail(f"could not build the tool venv for {requirements}: {done.stderr[-2000:]}")
        (venv / "ok").write_text("\n".join(requirements) + "\n")
    return py


def run_tool(requirements: tuple[str, ...], script: str, *args: str, cwd: Path) -> object:
    """Run ``script`` (Python source) in the tool venv from ``cwd``; it prints one JSON value."""
    py = tool_python(requirements)
    done = subprocess.run(
        [str(py), "-c", script, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise AssertionError(f"tool script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
