"""Resumable upload against the real ``gcp-storage-emulator`` (and the fake server's GCS endpoint).

The emulator runs in-process on 127.0.0.1 with in-memory storage. A session is created the way
Deepen's create-dataset does it (``POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable``),
and a TCP proxy between client and emulator can drop the connection part-way through a chunk.

Emulator deviations from GCS, handled here in the tests and not in the client:

* a status query on a session that has received no bytes yet answers ``Range: bytes=0-0``
  (GCS sends no ``Range``), so an interruption is only injected after the first chunk has
  landed;
* it is a single-threaded HTTP/1.0 server: each chunk is one connection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from deepen_export import errors
from deepen_export.api import CHUNK_QUANTUM, Client, RetryPolicy, resumable_upload
from tests._deepen_server import CLIENT_ID, TOKEN, DeepenServer

BUCKET = "deepen-uploads"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class DroppingProxy:
    """TCP proxy that, once armed, cuts both sides after ``drop_after`` more client bytes."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.drop_after: int | None = None
        self.drops = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        cut = threading.Event()

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    if cut.is_set():
                        return
                    client.sendall(data)
            except OSError:
                pass
            finally:
                _close(client)
                _close(upstream)

        threading.Thread(target=back, daemon=True).start()
        try:
            while data := client.recv(65536):
                with self.lock:
                    budget = self.drop_after
                    if budget is not None and len(data) >= budget:
                        self.drop_after = None
                        self.drops += 1
                        cut.set()
                        upstream.sendall(data[:budget])
                        # Upstream first, so the server sees a short body, then the client.
                        upstream.shutdown(socket.SHUT_WR)
                        _close(client)
                        return
                    if budget is not None:
                        self.drop_after = budget - len(data)
                upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            _close(upstream)
            _close(client)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def gcs() -> Iterator[str]:
    """The real gcp-storage-emulator, in memory, on 127.0.0.1; yields its base URL."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    port = server._api._httpd.server_address[1]
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def proxy(gcs: str) -> Iterator[DroppingProxy]:
    parts = urlsplit(gcs)
    p = DroppingProxy((parts.hostname or "127.0.0.1", parts.port or 80))
    yield p
    p.close()


def _session(base: str, name: str) -> str:
    """Start a resumable session as Deepen's create-dataset does; returns the session URL."""
    response = httpx.post(
        f"{base}/upload/storage/v1/b/{BUCKET}/o",
        params={"uploadType": "resumable", "name": name},
        headers={"X-Upload-Content-Type": "application/zip"},
    )
    assert response.status_code == 200, response.text
    return response.headers["Location"]


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, parts.query, ""))


def _stored(base: str, name: str) -> bytes:
    response = httpx.get(
        f"{base}/storage/v1/b/{BUCKET}/o/{quote(name, safe='')}", params={"alt": "media"}
    )
    assert response.status_code == 200
    return response.content


def _zip(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "dataset.zip"
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def _policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(max_retries=3, wait_initial=0.01, wait_max=0.05, jitter=0.0, sleep=sleeps)


def test_chunked_upload_to_emulator(gcs: str, tmp_path: Path) -> None:
    path = _zip(tmp_path, 3 * CHUNK_QUANTUM + 12345)
    url = _session(gcs, "acme/ds1/data.zip")
    progress: list[tuple[int, int]] = []
    with httpx.Client() as http:
        obj = resumable_upload(
            http, url, path, chunk_size=CHUNK_QUANTUM, progress=lambda d, t: progress.append((d, t))
        )
    data = path.read_bytes()
    assert _stored(gcs, "acme/ds1/data.zip") == data
    assert obj["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert int(obj["size"]) == len(data)
    total = len(data)
    assert progress == [(CHUNK_QUANTUM * i, total) for i in (1, 2, 3)] + [(total, total)]


def test_interrupted_upload_resumes_from_confirmed_byte(
    gcs: str, proxy: DroppingProxy, tmp_path: Path
) -> None:
    path = _zip(tmp_path, 4 * CHUNK_QUANTUM + 777)
    url = _via(_session(gcs, "acme/ds2/data.zip"), proxy.port)
    # Cut the second chunk's connection after ~100 KB of it: the emulator keeps the short body.
    proxy.drop_after = CHUNK_QUANTUM + 1000 + 100_000
    sleeps = Sleeps()
    seen: list[int] = []
    with httpx.Client() as http:
        obj = resumable_upload(
            http,
            url,
            path,
            chunk_size=CHUNK_QUANTUM,
            policy=_policy(sleeps),
            progress=lambda d, t: seen.append(d),
        )
    data = path.read_bytes()
    assert proxy.drops == 1 and len(sleeps) == 1
    # After the drop the client asked the server and went on from an unaligned offset.
    resumed = seen[1]
    assert CHUNK_QUANTUM < resumed < 2 * CHUNK_QUANTUM
    assert seen[2] == resumed + CHUNK_QUANTUM
    assert _stored(gcs, "acme/ds2/data.zip") == data
    assert obj["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()


def test_resume_an_aborted_upload_later(gcs: str, proxy: DroppingProxy, tmp_path: Path) -> None:
    path = _zip(tmp_path, 3 * CHUNK_QUANTUM)
    url = _via(_session(gcs, "acme/ds3/data.zip"), proxy.port)
    proxy.drop_after = CHUNK_QUANTUM + 1000 + 5000
    with httpx.Client() as http:
        # No retries allowed: the first drop ends this attempt.
        with pytest.raises(errors.UploadError, match="resume=True") as info:
            resumable_upload(
                http, url, path, chunk_size=CHUNK_QUANTUM, policy=RetryPolicy(max_retries=0)
            )
        assert isinstance(info.value.__cause__, errors.TransportError)
        obj = resumable_upload(http, url, path, chunk_size=CHUNK_QUANTUM, resume=True)
    assert _stored(gcs, "acme/ds3/data.zip") == path.read_bytes()
    assert int(obj["size"]) == path.stat().st_size


def test_chunk_size_must_be_a_multiple_of_256k(tmp_path: Path) -> None:
    path = _zip(tmp_path, 10)
    with httpx.Client() as http, pytest.raises(ValueError, match="256 KiB"):
        resumable_upload(http, "http://127.0.0.1:9/x", path, chunk_size=1000)


# -- against the fake server's GCS-like endpoint: 5xx, 308 without Range, expired sessions ----------


def _fake_session(server: DeepenServer, total: int) -> str:
    server.uploads["s1"] = {
        "total": total,
        "data": bytearray(),
        "dataset_id": "d",
        "name": "acme/d/data.zip",
    }
    return f"{server.origin}/upload/s1?uploadType=resumable&name=acme%2Fd%2Fdata.zip"


def test_5xx_then_status_query_then_resume(server: DeepenServer, tmp_path: Path) -> None:
    path = _zip(tmp_path, 2 * CHUNK_QUANTUM + 5)
    url = _fake_session(server, path.stat().st_size)
    server.fail("^/upload/s1$", status=503, times=1)  # the first chunk fails
    server.fail("^/upload/s1$", status=500, times=0)
    sleeps = Sleeps()
    with httpx.Client() as http:
        resumable_upload(http, url, path, chunk_size=CHUNK_QUANTUM, policy=_policy(sleeps))
    assert bytes(server.uploads["s1"]["data"]) == path.read_bytes()
    ranges = [s.headers["Content-Range"] for s in server.requests("^/upload/s1$")]
    total = path.stat().st_size
    assert ranges == [
        f"bytes 0-{CHUNK_QUANTUM - 1}/{total}",  # 503
        f"bytes */{total}",  # status: 308 without Range = nothing stored
        f"bytes 0-{CHUNK_QUANTUM - 1}/{total}",
        f"bytes {CHUNK_QUANTUM}-{2 * CHUNK_QUANTUM - 1}/{total}",
        f"bytes {2 * CHUNK_QUANTUM}-{total - 1}/{total}",
    ]
    assert len(sleeps) == 1
    assert all("Authorization" not in s.headers for s in server.requests("^/upload/"))


def test_upload_gives_up_after_bounded_failures(server: DeepenServer, tmp_path: Path) -> None:
    path = _zip(tmp_path, CHUNK_QUANTUM)
    url = _fake_session(server, CHUNK_QUANTUM)
    server.fail("^/upload/s1$", status=500, times=100)
    sleeps = Sleeps()
    with httpx.Client() as http, pytest.raises(errors.UploadError, match="after 4 failures"):
        resumable_upload(http, url, path, chunk_size=CHUNK_QUANTUM, policy=_policy(sleeps))
    assert len(sleeps) == 3


def test_expired_session_is_upload_error(server: DeepenServer, tmp_path: Path) -> None:
    path = _zip(tmp_path, 100)
    with (
        httpx.Client() as http,
        pytest.raises(errors.UploadError, match="create the dataset again"),
    ):
        resumable_upload(http, f"{server.origin}/upload/gone?uploadType=resumable", path)
    assert server.count("^/upload/gone$") == 1  # 404 is not retried


def test_empty_file(server: DeepenServer, tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    path.write_bytes(b"")
    url = _fake_session(server, 0)
    with httpx.Client() as http:
        resumable_upload(http, url, path)
    assert server.requests("^/upload/s1$")[0].headers["Content-Range"] == "bytes */0"


def test_client_upload_file_uses_no_token(server: DeepenServer, tmp_path: Path) -> None:
    path = _zip(tmp_path, CHUNK_QUANTUM + 1)
    url = _fake_session(server, path.stat().st_size)
    with Client(CLIENT_ID, TOKEN, base_url=server.url) as client:
        client.upload_file(url, path, chunk_size=CHUNK_QUANTUM)
    assert bytes(server.uploads["s1"]["data"]) == path.read_bytes()


def test_create_upload_process_end_to_end_via_emulator(
    server: DeepenServer, gcs: str, proxy: DroppingProxy, tmp_path: Path
) -> None:
    """Deepen-like API + real GCS emulator, with a dropped connection in the middle of the upload."""
    server.gcs = (f"http://127.0.0.1:{proxy.port}", BUCKET)  # sessions reached through the proxy
    path = _zip(tmp_path, 2 * CHUNK_QUANTUM + 99)
    proxy.drop_after = 3000 + CHUNK_QUANTUM + 50_000  # session creation + chunk 1 + part of chunk 2
    sleeps = Sleeps()
    with Client(CLIENT_ID, TOKEN, base_url=server.url, retry=_policy(sleeps)) as client:
        created = client.create_and_upload("e2e", path, dataset_type="3d", chunk_size=CHUNK_QUANTUM)
        status = client.wait_for_processing(created["dataset_id"], poll_initial=0.01, sleep=sleeps)
    assert proxy.drops == 1
    assert _stored(gcs, f"{CLIENT_ID}/{created['dataset_id']}/data.zip") == path.read_bytes()
    assert server.processed == [(created["dataset_id"], "data.zip")]
    assert status.state == "processed"
