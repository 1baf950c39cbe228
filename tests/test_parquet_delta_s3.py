"""Issue 16 class 4: object-store commits, against moto's S3 server behind a fault proxy.

``layout="delta"`` (delta-rs): a failed commit (the commit PUT or a CopyObject refused) and a
``kill -9`` in the middle of a commit leave every reader (deltalake, Polars, our reader) with
the old or the new version of each table, never a mix; the next write undoes what a killed
export committed. The plain ``hive`` layout: what a failed or killed commit leaves is what the
module docstring says, and the next write removes the killed write's ``_staging/``.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable

from converters import parquet
from deepen_export.model import LabelSet
from tests._parquet_fixtures import rich as _rich
from tests.test_parquet_s3 import bucket, s3_endpoint  # noqa: F401 - the moto fixtures

ROOT = Path(__file__).resolve().parents[1]


def rich(dataset_id: str = "ds1", *, scale: int = 1) -> LabelSet:
    """Boxes, polygons and cuboids; ``scale`` changes the frame widths (old vs new exports)."""
    ls = _rich(dataset_id)
    keep = ("boxes", "polygons", "cuboids")
    ls = ls.without(*[k for k, t in ls if k not in keep]).replace(
        poses=type(ls.poses).empty(), cameras=type(ls.cameras).empty()
    )
    w = ls.frames.width
    frames = dataclasses.replace(ls.frames, width=np.where(w > 0, w * scale, w).astype(w.dtype))
    return ls.replace(frames=frames)


# -- a fault proxy in front of moto ---------------------------------------------------------------


@dataclass
class Rule:
    """Fail (500) or hold the next ``times`` requests that ``match``."""

    match: Callable[[str, str, dict[str, str]], bool]
    action: str = "fail"  # fail | hold
    times: int = 1


@dataclass
class Proxy:
    upstream: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str, bool]] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        with self.lock:
            self.seen.append((method, path, "x-amz-copy-source" in headers))
            for r in self.rules:
                if r.times > 0 and r.match(method, path, headers):
                    r.times -= 1
                    return r.action
        return None


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    n = int(self.rfile.readline().split(b";")[0], 16)
                    if n == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(n)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _any(self) -> None:
            # one request per connection: no keep-alive state to get wrong between clients
            self.close_connection = True
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            action = proxy.take(self.command, self.path, headers)
            if action == "hold":
                proxy.held.set()
                proxy.release.wait(60)
                self.close_connection = True
                self.connection.close()
                return
            if action == "fail":
                data = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                self.send_response(500)
                self.send_header("Connection", "close")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
            fwd = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            fwd["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status, resp.reason)
            self.send_header("Connection", "close")
            head = self.command == "HEAD"
            for k, v in resp.getheaders():
                skip = ("transfer-encoding", "connection") + (() if head else ("content-length",))
                if k.lower() not in skip:
                    self.send_header(k, v)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    return H


@pytest.fixture(scope="module")
def moto_port(request: pytest.FixtureRequest) -> int:
    """The port of test_parquet_s3's moto server (one server for both files' tests)."""
    return int(request.getfixturevalue("s3_endpoint").rsplit(":", 1)[1])


@pytest.fixture
def s3_bucket(request: pytest.FixtureRequest) -> str:
    """A fresh bucket, with the AWS environment test_parquet_s3's ``bucket`` sets."""
    return str(request.getfixturevalue("bucket")[1])


@pytest.fixture
def proxy(moto_port: int) -> Iterator[tuple[Proxy, int]]:
    p = Proxy(moto_port)
    ThreadingHTTPServer.request_queue_size = 128  # delta-rs opens many connections at once
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(p))
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield p, httpd.server_address[1]
    finally:
        p.release.set()
        httpd.shutdown()
        httpd.server_close()


def _fs(port: int) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )


def _so(port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "conditional_put": "etag",
    }


def _widths(uri: str, so: dict[str, str]) -> list[int]:
    """The frames table as every Delta reader sees it now (latest version)."""
    a = sorted(_w(DeltaTable(uri, storage_options=so).to_pyarrow_table()["width"].to_pylist()))
    b = sorted(_w(pl.read_delta(uri, storage_options=so)["width"].to_list()))
    assert a == b
    return a


def _w(values: list[int | None]) -> list[int]:
    return [-1 if v is None else int(v) for v in values]  # unknown sizes are null in Arrow


def _boxes(uri: str, so: dict[str, str]) -> int:
    t = pl.read_delta(uri, storage_options=so)
    return int((t["label_type"] == "box").sum())


OLD_W = sorted(int(w) for w in rich(scale=1).frames.width)
NEW_W = sorted(int(w) for w in rich(scale=2).frames.width)


def _commit_put(table: str) -> Callable[[str, str, dict[str, str]], bool]:
    rx = re.compile(rf"/{table}/_delta_log/\d+\.json")
    return lambda m, p, h: m == "PUT" and bool(rx.search(p))


# -- delta ------------------------------------------------------------------------------------


def test_delta_round_trip_on_s3_read_by_deltalake_and_polars(proxy, s3_bucket) -> None:
    _p, port = proxy
    dest = f"s3://{s3_bucket}/dl"
    fs = _fs(port)
    parquet.write(rich("ds1"), dest, layout="delta", filesystem=fs)
    parquet.write(rich("ds2"), dest, layout="delta", filesystem=fs)
    assert parquet.read(dest, filesystem=fs) == LabelSet.concat([rich("ds1"), rich("ds2")])
    so = _so(port)
    labels = pl.read_delta(f"{dest}/labels", storage_options=so)
    assert sorted(labels["dataset_id"].unique().to_list()) == ["ds1", "ds2"]
    assert len(labels) == 2 * len(rich("ds1"))
    # a rewrite of ds1 replaces ds1's rows only, in one commit per table
    parquet.write(rich("ds1", scale=2), dest, layout="delta", filesystem=fs)
    assert parquet.read(dest, filesystem=fs, dataset_ids=["ds1"]) == rich("ds1", scale=2)
    assert parquet.read(dest, filesystem=fs, dataset_ids=["ds2"]) == rich("ds2")
    assert DeltaTable(f"{dest}/labels", storage_options=so).version() == 2  # three commits


@pytest.mark.parametrize("failing", ["labels", "frames"])
def test_delta_failed_commit_leaves_the_old_version_everywhere(proxy, s3_bucket, failing) -> None:
    p, port = proxy
    dest = f"s3://{s3_bucket}/f"
    fs, so = _fs(port), _so(port)
    parquet.write(rich("ds1"), dest, layout="delta", filesystem=fs)
    boxes = _boxes(f"{dest}/labels", so)
    # the commit PUT of one table is refused (what a CopyObject failure is for the hive layout)
    p.rules.append(Rule(_commit_put(failing), times=1000))
    with pytest.raises(Exception):  # noqa: B017 - delta-rs raises its own OSError/CommitFailed
        parquet.write(rich("ds1", scale=2), dest, layout="delta", filesystem=fs)
    p.rules.clear()
    assert _widths(f"{dest}/frames", so) == OLD_W
    assert _boxes(f"{dest}/labels", so) == boxes
    assert parquet.read(dest, filesystem=fs) == rich("ds1")
    # and the next write goes through
    parquet.write(rich("ds1", scale=2), dest, layout="delta", filesystem=fs)
    assert _widths(f"{dest}/frames", so) == NEW_W
    assert parquet.read(dest, filesystem=fs) == rich("ds1", scale=2)


def test_delta_copyobject_failure_changes_nothing(proxy, s3_bucket) -> None:
    p, port = proxy
    dest = f"s3://{s3_bucket}/c"
    fs, so = _fs(port), _so(port)
    parquet.write(rich("ds1"), dest, layout="delta", filesystem=fs)
    p.rules.append(Rule(lambda m, path, h: "x-amz-copy-source" in h, times=1000))
    report = parquet.write(rich("ds1", scale=2), dest, layout="delta", filesystem=fs)
    p.rules.clear()
    # delta-rs commits with conditional PUTs: no CopyObject is on the commit path at all
    assert not any(copy for _, _, copy in p.seen)
    assert report.written["labels"] == len(rich("ds1"))
    assert _widths(f"{dest}/frames", so) == NEW_W


_KILLED_WRITER = """
import sys
import pyarrow.fs as pafs
from converters import parquet
from tests.test_parquet_delta_s3 import rich
port, dest, layout = int(sys.argv[1]), sys.argv[2], sys.argv[3]
fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                       access_key="testing", secret_key="testing", region="us-east-1")
parquet.write(rich("ds1", scale=2), dest, layout=layout, filesystem=fs)
"""


def _kill_mid_commit(p: Proxy, port: int, dest: str, layout: str) -> None:
    """Run a write in a child process, hold the request ``p.rules`` names, kill -9 the child."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(port), dest, layout], cwd=ROOT, env=env
    )
    try:
        assert p.held.wait(120), "the writer never reached the commit"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert child.returncode == -signal.SIGKILL
    p.rules.clear()
    p.release.set()


def test_delta_kill_9_mid_commit_readers_see_old_or_new_then_the_next_write_recovers(
    proxy, s3_bucket
) -> None:
    p, port = proxy
    dest = f"s3://{s3_bucket}/k"
    fs, so = _fs(port), _so(port)
    parquet.write(rich("ds1"), dest, layout="delta", filesystem=fs)
    boxes = _boxes(f"{dest}/labels", so)
    # frames commit first and labels last: hold the labels commit and kill the writer there
    p.rules.append(Rule(_commit_put("labels"), action="hold"))
    _kill_mid_commit(p, port, dest, "delta")
    # each table is one whole version: frames new, labels old; our reader pins the last
    # complete export and sees the old one throughout
    assert _widths(f"{dest}/frames", so) in (OLD_W, NEW_W)
    assert _boxes(f"{dest}/labels", so) == boxes
    assert parquet.read(dest, filesystem=fs) == rich("ds1")
    # the next write of any dataset first undoes the killed export's commits
    parquet.write(rich("ds2"), dest, layout="delta", filesystem=fs)
    assert _widths(f"{dest}/frames", so) == sorted(OLD_W + OLD_W)
    assert parquet.read(dest, filesystem=fs) == LabelSet.concat([rich("ds1"), rich("ds2")])
    pending = fs.get_file_info(
        pafs.FileSelector(f"{s3_bucket}/k/_deepen/pending", allow_not_found=True)
    )
    assert [i.path for i in pending if i.type == pafs.FileType.File] == []


# -- the plain layouts on an object store ------------------------------------------------------


def _keys(fs: pafs.FileSystem, base: str) -> list[str]:
    sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(sel) if i.type == pafs.FileType.File)


def _copies(first: int, *, only: bool = False) -> Callable[[str, str, dict[str, str]], bool]:
    """A rule matching server-side copies from the ``first``-th on (only that one with ``only``)."""
    calls = {"n": 0}

    def match(m: str, path: str, h: dict[str, str]) -> bool:
        if "x-amz-copy-source" not in h:
            return False
        calls["n"] += 1
        return calls["n"] == first if only else calls["n"] >= first

    return match


def test_hive_killed_mid_commit_staging_is_cleaned_on_the_next_write(
    proxy, s3_bucket, monkeypatch
) -> None:
    p, port = proxy
    dest = f"s3://{s3_bucket}/h"
    fs = _fs(port)
    parquet.write(rich("ds1"), dest, layout="hive", filesystem=fs)
    # hold the second server-side copy of the commit: one partition moved, the rest staged
    p.rules.append(Rule(_copies(2, only=True), action="hold"))
    _kill_mid_commit(p, port, dest, "hive")
    assert [k for k in _keys(fs, f"{s3_bucket}/h") if "/_staging/" in k]  # what the kill left
    # every object is whole: the dataset reads back, a mix of old and new tables at worst
    mixed = parquet.read(dest, filesystem=fs)
    assert len(mixed.boxes) == len(rich("ds1").boxes)
    # the next write (any dataset) removes a staging prefix nobody touched for a while ...
    monkeypatch.setattr(parquet, "STAGING_STALE_AFTER", 0.0)
    time.sleep(0.01)
    parquet.write(rich("ds2"), dest, layout="hive", filesystem=fs)
    assert not [k for k in _keys(fs, f"{s3_bucket}/h") if "/_staging/" in k]
    # ... and the next write of ds1 replaces all of its partitions: no mix any more
    parquet.write(rich("ds1", scale=2), dest, layout="hive", filesystem=fs)
    assert parquet.read(dest, filesystem=fs, dataset_ids=["ds1"]) == rich("ds1", scale=2)


def test_hive_refused_copyobject_mid_commit_is_what_the_docs_say(proxy, s3_bucket) -> None:
    p, port = proxy
    dest = f"s3://{s3_bucket}/r"
    fs = _fs(port)
    parquet.write(rich("ds1"), dest, layout="hive", filesystem=fs)
    p.rules.append(Rule(_copies(2), times=1000))
    with pytest.raises(OSError):
        parquet.write(rich("ds1", scale=2), dest, layout="hive", filesystem=fs)
    p.rules.clear()
    # every object whole (the dataset reads), staging gone, and a mix of old and new tables
    # until the next write of ds1, as the README says
    assert not [k for k in _keys(fs, f"{s3_bucket}/r") if "/_staging/" in k]
    mixed = parquet.read(dest, filesystem=fs)
    assert len(mixed.boxes) == len(rich("ds1").boxes)
    parquet.write(rich("ds1", scale=2), dest, layout="hive", filesystem=fs)
    assert parquet.read(dest, filesystem=fs) == rich("ds1", scale=2)
