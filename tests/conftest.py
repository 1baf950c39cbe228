"""Fixtures shared by the whole suite: the Deepen-like server and the parsed sample sets.

The sample sets are parsed once per session; a :class:`~deepen_export.model.LabelSet` is frozen
and its arrays are read-only, so sharing one across tests cannot leak state between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import deepen_export
from deepen_export.model import LabelSet
from tests._deepen_server import CLIENT_ID, TOKEN, DeepenServer

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
"""The committed sample datasets (see sample_data/README.md)."""


@pytest.fixture
def server() -> Iterator[DeepenServer]:
    """A fresh Deepen-like HTTP server on 127.0.0.1 (per test: tests change its state)."""
    srv = DeepenServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def server_env(server: DeepenServer, monkeypatch: pytest.MonkeyPatch) -> DeepenServer:
    """:func:`server`, with the credentials and URL in the environment (as the CLI reads them)."""
    monkeypatch.setenv("DEEPEN_API_URL", server.url)
    monkeypatch.setenv("DEEPEN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEEPEN_API_TOKEN", TOKEN)
    return server


@pytest.fixture(scope="session")
def lidar() -> LabelSet:
    """sample_data/lidar_sequence read as a snapshot folder."""
    return deepen_export.read_labels(SAMPLES / "lidar_sequence")


@pytest.fixture(scope="session")
def images() -> LabelSet:
    """sample_data/image_dataset read as a snapshot folder."""
    return deepen_export.read_labels(SAMPLES / "image_dataset")


@pytest.fixture(autouse=True, scope="session")
def _upload_sessions_in_a_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Upload sessions saved by create_and_upload go to a temp dir, never the user's home."""
    state = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEEPEN_EXPORT_STATE_DIR", str(state))
    yield state
    mp.undo()
