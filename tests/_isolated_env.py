"""An isolated virtual environment for reference tools that pin old dependencies.

The nuScenes and T4 devkits need numpy < 2 and other old pins, which the project's own
environment must not take. :func:`devkit_python` builds a venv once from a requirements file
committed in ``tests/`` and caches it under ``$DEEPEN_EXPORT_TEST_CACHE`` (default
``~/.cache/deepen-export-tests``) in a folder named by the hash of that file and the Python
version, so a changed pin builds a new one. :func:`run_check` runs a checker script in it and
returns the JSON it prints on its last line.
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
BUILD_TIMEOUT = 900
"""Seconds pip may take (a cold build downloads ~150 MB of wheels; about 30 s here)."""


def cache_root() -> Path:
    """Where isolated environments are kept (outside the repository)."""
    env = os.environ.get("DEEPEN_EXPORT_TEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "deepen-export-tests")


def env_key(requirements: Path) -> str:
    """Hash of the requirements file and the interpreter version (the cache folder's name)."""
    h = hashlib.sha256(requirements.read_bytes())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}/{sys.platform}".encode())
    return h.hexdigest()[:16]


def devkit_python(requirements: Path = REQUIREMENTS) -> Path:
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
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "-r", str(requirements)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        if proc.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"pip install -r {requirements.name} failed:\n{proc.stderr[-3000:]}")
        done.write_text(requirements.read_text(encoding="utf-8"), encoding="utf-8")
    return python


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
