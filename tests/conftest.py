"""Session-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _upload_sessions_in_a_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Upload sessions saved by create_and_upload go to a temp dir, never the user's home."""
    state = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEEPEN_EXPORT_STATE_DIR", str(state))
    yield state
    mp.undo()
