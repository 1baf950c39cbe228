"""Isolated virtual environments for reference tools whose pins clash with the project's own.

The one helper for both suites: the nuScenes and T4 devkits (``devkit_requirements.txt``:
numpy < 2 and other old pins; also the lidarseg check in ``tests/interop``) and datumaro 1.13
(``pillow~=12``, ``pyarrow~=25``; the project runs pillow 13, pyarrow 26) must not live in the
project's environment. :func:`tool_python` builds a venv once per requirements (a committed
file or a tuple of lines) and caches it under ``$DEEPEN_EXPORT_TEST_CACHE`` (alias
``$DEEPEN_TOOL_VENVS``; default ``~/.cache/deepen-export-tests``) in a folder named by the hash
of the requirements and the Python version, so a changed pin builds a new one. Tests run the
tools in a subprocess, never by importing them: :func:`run_check` runs a checker script of
``tests/devkit_checks/`` in the devkit venv, :func:`run_tool` runs Python source in any of them;
both return the JSON printed on the last line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
REQUIREMENTS = HERE / "devkit_requirements.txt"
"""The devkits' venv: nuscenes-devkit (tests/test_nuscenes.py, the interop lidarseg check), t4."""
DATUMARO = ("datumaro==1.13.12",)
"""What the datumaro checks run with (the release that installs on Python 3.11 with numpy 2)."""
Requirements = Path | tuple[str, ...]
BUILD_TIMEOUT = 900
"""Seconds pip may take (a cold build downloads ~150 MB of wheels; about 30 s here)."""


def cache_root() -> Path:
    """Where isolated environments are kept (outside the repository)."""
    # DEEPEN_TOOL_VENVS: the name tests/interop used for the same folder, still accepted
    env = os.environ.get("DEEPEN_EXPORT_TEST_CACHE") or os.environ.get("DEEPEN_TOOL_VENVS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "deepen-export-tests")


def _text(requirements: Requirements) -> str:
    if isinstance(requirements, Path):
        return requirements.read_text(encoding="utf-8")
    return "\n".join(sorted(requirements)) + "\n"


def env_key(requirements: Requirements) -> str:
    """Hash of the requirements and the interpreter version (the cache folder's name)."""
    h = hashlib.sha256(_text(requirements).encode())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}/{sys.platform}".encode())
    return h.hexdigest()[:16]


def devkit_python(requirements: Requirements = REQUIREMENTS) -> Path:
    """The python of the cached venv for ``requirements``, built (under a file lock) if needed."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home on a CI machine: the temp folder still caches per boot
        import tempfile

        root = Path(tempfile.gettempdir(), "deepen-export-tests")
        root.mkdir(parents=True, exist_ok=True)
    folder = root / f"venv-{env_key(requirements)}"
    python = folder / "bin" / "python"
    done = folder / ".complete"
    if done.is_file():
        return python
    with open(root / f"{folder.name}.lock", "w") as lock:
        # several pytest processes (or helpers) may start at once: one builds, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        made = subprocess.run(
            [base, "-m", "venv", str(folder)], capture_output=True, text=True, timeout=120
        )
        if made.returncode != 0:
            raise RuntimeError(
                f"{base} -m venv failed (on Debian/Ubuntu install python3-venv):\n{made.stderr}"
            )
        what = ["-r", str(requirements)] if isinstance(requirements, Path) else [*requirements]
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *what],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        if proc.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"pip install {' '.join(what)} failed:\n{proc.stderr[-3000:]}")
        done.write_text(_text(requirements), encoding="utf-8")
    return python


tool_python = devkit_python
"""The name tests/interop used (one builder for every isolated venv)."""


def run_check(script: str, *args: str | os.PathLike[str], timeout: int = 600) -> Any:
    """Run ``tests/devkit_checks/<script>`` in the devkit venv; the JSON of its last line."""
    python = devkit_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [str(python), str(HERE / "devkit_checks" / script), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1])


def run_tool(requirements: Requirements, script: str, *args: str, cwd: Path) -> Any:
    """Run ``script`` (Python source) in the venv of ``requirements`` from ``cwd``; its JSON."""
    python = devkit_python(requirements)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [str(python), "-c", script, *args],
        cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"tool script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
