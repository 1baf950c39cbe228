"""The user's path, typed as a user types it: the installed ``deepen-export`` console script
against the loopback Deepen server (uploads going to the real GCS emulator).

``deepen`` runs one command line in a subprocess (``deepen("pull", ds, "-o", "snap")``) with
the credentials and the server's URL in its environment, and returns the finished process.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import test_parquet_s3
from tests._deepen_server import CLIENT_ID, TOKEN, DeepenServer

# moto's S3 server and a fresh bucket, set up as the Parquet tests do
s3_endpoint = test_parquet_s3.s3_endpoint
bucket = test_parquet_s3.bucket

BUCKET = "deepen-uploads"

Run = Callable[..., subprocess.CompletedProcess[str]]


def console_script() -> str:
    """The ``deepen-export`` that pip installed for this Python (its bin folder, else PATH)."""
    here = Path(sys.executable).parent / "deepen-export"
    if here.is_file():
        return str(here)
    found = shutil.which("deepen-export")
    if found is None:
        raise RuntimeError("deepen-export is not installed: pip install -e '.[dev]' first")
    return found


@pytest.fixture(scope="module")
def platform() -> Iterator[DeepenServer]:
    """The Deepen-like server, its upload sessions opened on the GCS emulator."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    gcs = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    gcs.start()
    port = gcs._api._httpd.server_address[1]
    srv = DeepenServer()
    srv.gcs = (f"http://127.0.0.1:{port}", BUCKET)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        gcs.stop()


def runner(platform: DeepenServer, cwd: Path) -> Run:
    """Run ``deepen-export ARGS...`` in ``cwd`` as a user would; returns the process.

    A non-zero exit fails the test with both streams shown, unless ``check=False``.
    """
    exe = console_script()

    def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {  # read at each call: a fixture may have set more (AWS_* for the S3 server)
            **os.environ,
            "DEEPEN_API_URL": platform.url,
            "DEEPEN_CLIENT_ID": CLIENT_ID,
            "DEEPEN_API_TOKEN": TOKEN,
            "NO_COLOR": "1",
        }
        proc = subprocess.run(
            [exe, *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"deepen-export {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def deepen(platform: DeepenServer, tmp_path: Path) -> Run:
    """:func:`runner` in the test's own folder."""
    return runner(platform, tmp_path)
