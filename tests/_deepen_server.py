"""A Deepen-like HTTP server on 127.0.0.1 for the fetch-layer tests, with fault injection.

It serves the recorded responses in ``sample_data/api/`` plus in-memory state (created datasets,
profiles, uploads), checks ``Authorization: Bearer``, and can be told to misbehave on a path:

* ``status``: answer a status code (500, 429 with ``Retry-After``, 403, ...) with a JSON body;
* ``drop``: close the connection without answering;
* ``truncate``: send ``Content-Length`` larger than the body, then close;
* ``slow``: wait before answering (longer than the client's timeout);
* ``trickle``: answer 200 with ``body``, two bytes every ``delay`` seconds.

Also a small GCS-like resumable upload endpoint (``PUT /upload/<session>``) and signed media
links (``GET /storage/...``), which refuse requests that carry the API token.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import threading
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "api"
TOKEN = "sk-test-0123456789abcdef-SECRET"
CLIENT_ID = "acme"
DS3D = "r82dS6VVkok98ZWr1CTkU4NE"
DSIMG = "DOnC2vK05ojPr7qiqCsk2Ee7"


def sample(name: str) -> Any:
    return json.loads((SAMPLE / name).read_text())


@dataclass
class Fault:
    kind: str  # status | drop | truncate | slow | trickle
    pattern: re.Pattern[str]
    method: str | None = None
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class DeepenServer:
    """State and fault plan of the fake server; ``url`` is the API base URL."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.client_id = CLIENT_ID
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.stop_event = threading.Event()
        self.datasets: dict[str, dict[str, Any]] = {
            DS3D: sample("dataset_3d.json"),
            DSIMG: sample("dataset_images.json"),
        }
        self.files = {DS3D: sample("files_3d.json"), DSIMG: sample("files_images.json")}
        self.labels: dict[str, dict[str, Any]] = {
            DS3D: sample("labels_3d.json"),
            DSIMG: sample("labels_images.json"),
        }
        self.profiles = {p["profile_id"]: p for p in sample("profiles.json")["profiles"]}
        meta = sample("paint_metadata_3d.json")
        points = bytes([1, 1, 2, 0, 2, 0, 0, 1, 2])
        self.paint: dict[str, tuple[bytes, dict[str, Any]]] = {DS3D: (zlib.compress(points), meta)}
        self.media: dict[str, bytes] = {DS3D: _frames_zip(), DSIMG: images_zip(IMAGE_SIZES)}
        # dataset id -> queue of DatasetResources returned by successive GETs (the last repeats).
        self.status_plan: dict[str, list[dict[str, Any]]] = {}
        # upload session -> {"total": int, "data": bytearray, "dataset_id": str, "name": str}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.processed: list[tuple[str, str]] = []
        # (emulator base URL, bucket): create-dataset then opens sessions on real GCS semantics.
        self.gcs: tuple[str, str] | None = None
        self.inflight = 0
        self.max_inflight = 0
        # the write side (push): imported labels per (dataset, label set), keyed like Deepen's
        # labels (file_id, sensor_id, label_id); tasks; who marked what done
        self.pushed: dict[tuple[str, str], dict[tuple[str, str, str], dict[str, Any]]] = {}
        self.tasks: dict[str, list[dict[str, Any]]] = {DS3D: _sample_tasks(DS3D)}
        self.user_task_lists: dict[str, dict[str, Any]] = {"ann@example.com": _user_tasks()}
        self.labelling_done: list[str] = []
        # storage: answer Range requests (as GCS does) unless told to send whole bodies
        self.ignore_ranges = False
        self.range_requests = 0
        self.range_bytes = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.origin}/api/v2"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> DeepenServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def fail(
        self,
        path: str,
        kind: str = "status",
        *,
        method: str | None = None,
        times: int = 1,
        status: int = 500,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
    ) -> None:
        """Misbehave on the next ``times`` requests whose path matches the regex ``path``."""
        with self.lock:
            self.faults.append(
                Fault(kind, re.compile(path), method, times, status, headers or {}, body, delay)
            )

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests matched the regex ``path`` (and ``method``)."""
        rx = re.compile(path)
        return sum(
            1 for s in self.seen if rx.search(s.path) and (method is None or s.method == method)
        )

    def requests(self, path: str) -> list[Seen]:
        rx = re.compile(path)
        return [s for s in self.seen if rx.search(s.path)]

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.pattern.search(path):
                    if fault.method and fault.method != method:
                        continue
                    fault.times -= 1
                    return fault
        return None


# the images of the image dataset's upload (its labels name 000019.png and 000020.png)
IMAGE_SIZES = {"000019.png": (1242, 375), "images/000020.png": (640, 480)}


def images_zip(sizes: dict[str, tuple[int, int]]) -> bytes:
    """A zip of real images (drawn with Pillow) of the given sizes, stored and deflated."""
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, (name, (w, h)) in enumerate(sorted(sizes.items())):
            img = io.BytesIO()
            fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(
                Path(name).suffix.lower(), "PNG"
            )
            Image.new("RGB", (w, h), (40 * k % 255, 90, 160)).save(img, fmt)
            method = zipfile.ZIP_DEFLATED if k % 2 else zipfile.ZIP_STORED
            zf.writestr(name, img.getvalue(), compress_type=method)
    return buf.getvalue()


def _frames_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(2):
            frame = {
                "images": [],
                "timestamp": 1624164470.9 + i / 10,
                "device_position": {"x": 81526.0, "y": 50369.0, "z": 36.0},
                "device_heading": {"w": 1.0, "x": 0.0, "y": 0.0, "z": 0.0},
                "points": [
                    {"x": 81526.0 + j, "y": 50369.0, "z": 36.0, "i": 10} for j in range(5 - i)
                ],
            }
            zf.writestr(f"{i}.json", json.dumps(frame))
    return buf.getvalue()


Route = tuple[str, re.Pattern[str], Callable[..., Any]]


def _handler(srv: DeepenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "gunicorn"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # -- plumbing ----------------------------------------------------------------------

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def send(
            self,
            status: int,
            body: Any = b"",
            headers: dict[str, str] | None = None,
            *,
            gzip_body: bool = False,
        ) -> None:
            if isinstance(body, dict | list):
                data = json.dumps(body).encode()
                ctype = "application/json"
            else:
                data = body if isinstance(body, bytes) else str(body).encode()
                ctype = "application/octet-stream"
            headers = dict(headers or {})
            if gzip_body:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
            self.send_response(status)
            headers.setdefault("Content-Type", ctype)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            body = self._body()
            with srv.lock:
                srv.seen.append(Seen(method, path, query, dict(self.headers.items()), body))
            fault = srv.take_fault(method, path)
            if fault is not None and self._fault(fault):
                return
            if path.startswith("/api/v2/"):
                if self.headers.get("Authorization") != f"Bearer {srv.token}":
                    self.send(
                        401,
                        {"error": "Authentication credentials were not provided or are invalid."},
                    )
                    return
                for m, rx, fn in ROUTES:
                    match = rx.fullmatch(path[len("/api/v2") :])
                    if m == method and match:
                        fn(self, query, body, *match.groups())
                        return
                self.send(404, {"error": f"no route {method} {path}"})
                return
            if path.startswith(("/storage/", "/upload/")) and "Authorization" in self.headers:
                self.send(400, {"error": "signed URL requests must not carry Authorization"})
                return
            if method == "GET" and path.startswith("/storage/media/"):
                dataset_id = path.rsplit("/", 1)[-1].removesuffix(".zip")
                data = media_bytes(srv, dataset_id)
                if query.get("X-Goog-Signature") != "sig" or data is None:
                    self.send(403, "<Error>SignatureDoesNotMatch</Error>")
                    return
                send_ranged(self, data)
                return
            if method == "PUT" and path.startswith("/upload/"):
                _upload_chunk(self, path.rsplit("/", 1)[-1], body)
                return
            self.send(404, "not found")

        def _fault(self, fault: Fault) -> bool:
            if fault.kind == "status":
                body = (
                    fault.body if fault.body is not None else {"error": f"injected {fault.status}"}
                )
                self.send(fault.status, body, fault.headers)
                return True
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.close()
                return True
            if fault.kind == "truncate":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'{"labels": {"0.pcd": [')
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return True
            if fault.kind == "slow":
                srv.stop_event.wait(fault.delay)
                return False
            if fault.kind == "trickle":
                data = (
                    fault.body if isinstance(fault.body, bytes) else json.dumps(fault.body).encode()
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(0, len(data), 2):
                    if srv.stop_event.wait(fault.delay):
                        break
                    self.wfile.write(data[i : i + 2])
                    self.wfile.flush()
                self.close_connection = True
                return True
            raise AssertionError(fault.kind)

        def do_GET(self) -> None:
            self._safe("GET")

        def do_POST(self) -> None:
            self._safe("POST")

        def do_PUT(self) -> None:
            self._safe("PUT")

        def do_DELETE(self) -> None:
            self._safe("DELETE")

        def _safe(self, method: str) -> None:
            with srv.lock:
                srv.inflight += 1
                srv.max_inflight = max(srv.max_inflight, srv.inflight)
            try:
                self.handle_any(method)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
            finally:
                with srv.lock:
                    srv.inflight -= 1

    Handler.srv = srv  # type: ignore[attr-defined]
    return Handler


# -- API routes ----------------------------------------------------------------------------------


def _r_datasets(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    if cid != srv.client_id:
        h.send(403, {"error": "not a member of this client"})
        return
    h.send(200, {k: v for k, v in srv.datasets.items()})


def _r_dataset_ids(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    h.send(
        200,
        {
            "datasets": [
                {"dataset_id": k, "dataset_name": v.get("dataset_name")}
                for k, v in srv.datasets.items()
            ]
        },
    )


def _r_create(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    req = json.loads(body)
    files = req.get("files")
    if (
        not req.get("dataset_name")
        or req.get("dataset_type") not in ("3d", "images", "video")
        or not files
        or not all(isinstance(f.get("file_size"), int) for f in files)
    ):
        h.send(400, {"error": "dataset_name, dataset_type and files[].file_size are required"})
        return
    if "labelling_profile_id" in req and req["labelling_profile_id"] not in srv.profiles:
        h.send(400, {"error": "unknown labelling_profile_id"})
        return
    dataset_id = uuid.uuid4().hex[:24]
    out_files = []
    for f in files:
        session = uuid.uuid4().hex
        name = f"{cid}/{dataset_id}/data.zip"
        srv.uploads[session] = {
            "total": f["file_size"],
            "data": bytearray(),
            "dataset_id": dataset_id,
            "name": name,
        }
        url = f"{srv.origin}/upload/{session}?uploadType=resumable&name={name.replace('/', '%2F')}"
        if srv.gcs is not None:
            # As Deepen does: a resumable session on Google Cloud Storage (here, the emulator).
            base, bucket = srv.gcs
            answer = httpx.post(
                f"{base}/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "resumable", "name": name},
                headers={"X-Upload-Content-Type": "application/zip"},
            )
            url = answer.headers["Location"]
            srv.uploads[session]["gcs"] = True
        out_files.append({**f, "resumable_upload_url": url})
    srv.datasets[dataset_id] = {
        "dataset_id": dataset_id,
        "client_id": cid,
        "dataset_name": req["dataset_name"],
        "dataset_type": req["dataset_type"],
        "dataset_format": req.get("dataset_format", "default"),
        "labelling_mode": req.get("labelling_mode", "frame_by_frame"),
        "labelling_profile_id": req.get("labelling_profile_id"),
        "request": req,
        "current_stage": "FileUpload",
        "current_stage_status": "waiting",
        "files": out_files,
    }
    h.send(201, {"dataset_id": dataset_id, "files": out_files})


def _r_dataset(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    plan = srv.status_plan.get(dataset_id)
    if plan:
        ds = plan.pop(0) if len(plan) > 1 else plan[0]
        h.send(200, ds)
        return
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    h.send(200, srv.datasets[dataset_id])


def _r_delete(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if srv.datasets.pop(dataset_id, None) is None:
        h.send(404, {"error": "Dataset not found"})
        return
    h.send(200, b"")


def _r_process(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    req = json.loads(body or b"{}")
    uploads = [u for u in srv.uploads.values() if u["dataset_id"] == dataset_id]
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    if not uploads or any(_uploaded(srv, u) != u["total"] for u in uploads):
        h.send(409, {"error": "upload not complete"})
        return
    if req.get("file_name") not in [u["name"].rsplit("/", 1)[-1] for u in uploads]:
        h.send(400, {"error": f"unknown file_name {req.get('file_name')!r}"})
        return
    srv.processed.append((dataset_id, req["file_name"]))
    ds = srv.datasets[dataset_id]
    base = {k: v for k, v in ds.items() if k not in ("current_stage", "current_stage_status")}
    srv.status_plan[dataset_id] = [
        {**base, "current_stage": "Processing", "current_stage_status": "in_progress"},
        {
            **base,
            "current_stage": "Labelling",
            "current_stage_status": "ready",
            "pipeline_status_by_label_set_id": {
                "default": {
                    "Labelling": {
                        "done": 0,
                        "failed": 0,
                        "in_progress": 0,
                        "ready": 2,
                        "waiting": 0,
                    }
                }
            },
        },
    ]
    h.send(200, {"message": "processing started"})


def _uploaded(srv: DeepenServer, upload: dict[str, Any]) -> int:
    if not upload.get("gcs"):
        return len(upload["data"])
    assert srv.gcs is not None
    base, bucket = srv.gcs
    answer = httpx.get(f"{base}/storage/v1/b/{bucket}/o/{quote(upload['name'], safe='')}")
    return int(answer.json()["size"]) if answer.status_code == 200 else -1


def _r_files(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.files:
        h.send(404, {"error": "Dataset not found"})
        return
    h.send(200, srv.files[dataset_id])


def _r_file(h: Any, q: dict[str, str], body: bytes, dataset_id: str, file_id: str) -> None:
    srv: DeepenServer = h.srv
    for f in srv.files.get(dataset_id, {}).get("files", []):
        if f["file_id"] == file_id:
            h.send(200, f)
            return
    h.send(404, {"error": "File not found"})


def _select(srv: DeepenServer, dataset_id: str, q: dict[str, str]) -> list[dict[str, Any]]:
    label_set = q.get("labelSetId", "default")
    labels = srv.labels[dataset_id]["labels"] if label_set == "default" else {}
    flat = [lab for items in labels.values() for lab in items]
    flat += list(srv.pushed.get((dataset_id, label_set), {}).values())
    if "stageId" in q:
        flat = [lab for lab in flat if lab.get("stage_id") == q["stageId"]]
    return copy.deepcopy(flat)


def _r_labels(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.labels:
        h.send(404, {"error": "Dataset not found"})
        return
    flat = _select(srv, dataset_id, q)
    if q.get("labels_with_file_ids_order") == "true":
        grouped: dict[str, list[Any]] = {}
        for lab in flat:
            grouped.setdefault(lab["file_id"], []).append(lab)
        out: dict[str, Any] = {"labels": grouped}
    elif q.get("filter_existing_categories") == "true":
        out = {"all_labels": flat}
    else:
        out = {"labels": flat}
    h.send(200, out, gzip_body=True)


def _r_file_labels(h: Any, q: dict[str, str], body: bytes, dataset_id: str, file_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.labels:
        h.send(404, {"error": "Dataset not found"})
        return
    h.send(
        200, {"labels": [lab for lab in _select(srv, dataset_id, q) if lab["file_id"] == file_id]}
    )


def _r_labels_of(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    ids = json.loads(body).get("dataset_ids")
    if not isinstance(ids, list):
        h.send(400, {"error": "dataset_ids must be a list"})
        return
    out = []
    for dataset_id in ids:
        if dataset_id in srv.labels:
            out += [{**lab, "dataset_id": dataset_id} for lab in _select(srv, dataset_id, q)]
    h.send(200, {"labels": out})


def _r_paint(h: Any, q: dict[str, str], body: bytes, dataset_id: str, label_type: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.paint or label_type != "3d_point":
        h.send(404, {"error": "No paint labels"})
        return
    data, meta = srv.paint[dataset_id]
    h.send(
        200,
        data,
        {"paint-metadata": json.dumps(meta), "Content-Type": "text/html; charset=utf-8"},
        gzip_body=True,
    )


def _r_media_link(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if media_bytes(srv, dataset_id) is None:
        h.send(404, {"error": "Dataset not found"})
        return
    link = f"{srv.origin}/storage/media/{dataset_id}.zip?X-Goog-Signature=sig&X-Goog-Expires=600"
    h.send(200, {"uploaded_dataset_signed_media_link": link})


def _r_profiles(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    h.send(200, {"profiles": list(h.srv.profiles.values())})


def _r_profile_create(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    req = json.loads(body)
    if not req.get("profile_name") or not isinstance(req.get("features", {}), dict):
        h.send(422, {"error": "profile_name is required"})
        return
    profile_id = f"prof_{uuid.uuid4().hex[:8]}"
    srv.profiles[profile_id] = {**req, "profile_id": profile_id, "client_id": cid}
    h.send(200, {"profile_id": profile_id})


def _r_profile(h: Any, q: dict[str, str], body: bytes, profile_id: str) -> None:
    srv: DeepenServer = h.srv
    if profile_id not in srv.profiles:
        h.send(404, {"error": "Profile not found"})
        return
    h.send(200, srv.profiles[profile_id])


_SEG = "([^/]+)"
ROUTES: list[Route] = [
    ("GET", re.compile(f"/clients/{_SEG}/datasets"), _r_datasets),
    ("POST", re.compile(f"/clients/{_SEG}/datasets"), _r_create),
    ("GET", re.compile(f"/clients/{_SEG}/datasets_ids"), _r_dataset_ids),
    ("POST", re.compile(f"/clients/{_SEG}/labels_of_dataset_ids"), _r_labels_of),
    ("GET", re.compile(f"/clients/{_SEG}/labelling_profiles"), _r_profiles),
    ("POST", re.compile(f"/clients/{_SEG}/labelling_profiles"), _r_profile_create),
    ("GET", re.compile(f"/labelling_profiles/{_SEG}"), _r_profile),
    ("GET", re.compile(f"/datasets/{_SEG}"), _r_dataset),
    ("DELETE", re.compile(f"/datasets/{_SEG}"), _r_delete),
    ("POST", re.compile(f"/datasets/{_SEG}/process_uploaded_data"), _r_process),
    ("GET", re.compile(f"/datasets/{_SEG}/files"), _r_files),
    ("GET", re.compile(f"/datasets/{_SEG}/files/{_SEG}"), _r_file),
    ("GET", re.compile(f"/datasets/{_SEG}/files/{_SEG}/labels"), _r_file_labels),
    ("GET", re.compile(f"/datasets/{_SEG}/labels"), _r_labels),
    ("GET", re.compile(f"/datasets/{_SEG}/label_types/{_SEG}/paint_labels"), _r_paint),
    ("GET", re.compile(f"/datasets/{_SEG}/uploaded_dataset_signed_media_link"), _r_media_link),
]


# -- the write side: label import, tasks, mark_labelling_done, user_scopes -----------------------

_LABEL_TYPES = {
    "box", "polygon", "lane", "polyline", "point", "scene",
    "3d_bbox", "3d_polyline", "3d_polygon", "3d_point",
}  # fmt: skip


def _sample_tasks(dataset_id: str) -> list[dict[str, Any]]:
    return [
        {"task_id": "task_1", "dataset_id": dataset_id, "file_id": "0.pcd", "stage_id": "Labelling",
         "assignee": "ann@example.com", "status": "in_progress"},
        {"task_id": "task_2", "dataset_id": dataset_id, "file_id": "1.pcd", "stage_id": "QA",
         "assignee": "bob@example.com", "status": "waiting"},
    ]  # fmt: skip


def _user_tasks() -> dict[str, Any]:
    return {
        "file_tasks": [{"task_id": "task_1", "dataset_id": DS3D, "file_id": "0.pcd"}],
        "label_tasks": [{"task_id": "task_9", "dataset_id": DS3D, "label_id": "car:1"}],
    }


def _label_problem(srv: DeepenServer, dataset_id: str, lab: Any) -> str | None:
    """Why the real API would refuse this label (None when it is fine)."""
    if not isinstance(lab, dict):
        return "a label must be an object"
    for key in ("file_id", "label_id", "label_type", "label_category_id"):
        if not isinstance(lab.get(key), str) or not lab[key]:
            return f"{key} is required"
    files = {f["file_id"]: f for f in srv.files.get(dataset_id, {}).get("files", [])}
    if lab["file_id"] not in files:
        return f"file {lab['file_id']!r} is not in the dataset"
    sensors = files[lab["file_id"]].get("sensors") or []
    if lab.get("sensor_id") and sensors and lab["sensor_id"] not in sensors:
        return f"sensor {lab['sensor_id']!r} is not a sensor of {lab['file_id']!r}"
    lt = lab["label_type"]
    if lt not in _LABEL_TYPES:
        return f"unknown label_type {lt!r}"
    if lt == "box":
        box = lab.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
            return "box must be [x, y, width, height]"
        if box[2] < 0 or box[3] < 0:
            return "box width and height must not be negative"
    if lt in ("polygon", "lane", "polyline") and not isinstance(lab.get("polygons"), list):
        return "polygons must be a list of rings"
    if lt == "3d_bbox":
        b = lab.get("three_d_bbox")
        if not isinstance(b, dict) or not all(
            _finite(b.get(k)) for k in ("cx", "cy", "cz", "l", "w", "h")
        ):
            return "three_d_bbox needs cx, cy, cz, l, w, h"
        if "quaternion" not in b and not _finite(b.get("rot_z")):
            return "three_d_bbox needs quaternion or rot_z"
    return None


def _finite(v: Any) -> bool:
    return (
        isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    )


def _r_post_labels(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    try:
        req = json.loads(body)
    except ValueError:
        h.send(400, {"error": "body is not JSON"})
        return
    if (
        not isinstance(req, dict)
        or req.get("type") != "json"
        or not isinstance(req.get("labels"), list)
    ):
        h.send(400, {"error": 'expected {"type": "json", "labels": [...]}'})
        return
    label_set = q.get("labelSetId") or "default"
    for i, lab in enumerate(req["labels"]):
        problem = _label_problem(srv, dataset_id, lab)
        if problem:  # the whole request is refused: nothing of it is stored
            h.send(400, {"error": f"labels[{i}]: {problem}"})
            return
    with srv.lock:
        store = srv.pushed.setdefault((dataset_id, label_set), {})
        for lab in req["labels"]:
            key = (lab["file_id"], lab.get("sensor_id", ""), lab["label_id"])
            old = store.get(key)
            version = (old or {}).get("version", 0) + 1
            store[key] = {**lab, "label_set_id": label_set, "stage_id": "Labelling",
                          "version": version}  # fmt: skip
    h.send(200, {"message": "labels imported", "count": len(req["labels"])})


def _r_tasks(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    h.send(200, {"tasks": srv.tasks.get(dataset_id, [])})


def _r_user_tasks(h: Any, q: dict[str, str], body: bytes, cid: str) -> None:
    srv: DeepenServer = h.srv
    if not q.get("email"):
        h.send(400, {"error": "email is required"})
        return
    h.send(200, srv.user_task_lists.get(q["email"], {"file_tasks": [], "label_tasks": []}))


def _r_mark_done(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    srv.labelling_done.append(dataset_id)
    srv.datasets[dataset_id]["current_stage_status"] = "done"
    h.send(200, b"")


def _r_user_scopes(h: Any, q: dict[str, str], body: bytes, dataset_id: str) -> None:
    srv: DeepenServer = h.srv
    if dataset_id not in srv.datasets:
        h.send(404, {"error": "Dataset not found"})
        return
    req = json.loads(body or b"{}")
    users, groups = req.get("user_scopes", []), req.get("user_group_scopes", [])
    ok = all(
        isinstance(u, dict) and u.get("email") and isinstance(u.get("scopes"), list) for u in users
    )
    ok = ok and all(isinstance(g, dict) and g.get("user_group_id") for g in groups)
    if not ok or not (users or groups):
        h.send(
            400,
            {
                "error": "user_scopes: [{email, scopes}], user_group_scopes: [{user_group_id, scopes}]"
            },
        )
        return
    srv.datasets[dataset_id]["user_scopes"] = users
    srv.datasets[dataset_id]["user_group_scopes"] = groups
    h.send(200, b"")


ROUTES += [
    ("POST", re.compile(f"/datasets/{_SEG}/labels"), _r_post_labels),
    ("GET", re.compile(f"/datasets/{_SEG}/tasks"), _r_tasks),
    ("GET", re.compile(f"/clients/{_SEG}/user_tasks"), _r_user_tasks),
    ("POST", re.compile(f"/datasets/{_SEG}/mark_labelling_done"), _r_mark_done),
    ("POST", re.compile(f"/datasets/{_SEG}/user_scopes"), _r_user_scopes),
]


def _upload_chunk(h: Any, session: str, body: bytes) -> None:
    """GCS resumable semantics: 308 + Range (none when empty) until complete, then 200."""
    srv: DeepenServer = h.srv
    up = srv.uploads.get(session)
    if up is None:
        h.send(404, {"error": "No such upload"})
        return
    rng = h.headers.get("Content-Range", "")
    data: bytearray = up["data"]
    status = re.fullmatch(r"bytes \*/(\d+)", rng)
    chunk = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", rng)
    if chunk:
        start, end = int(chunk.group(1)), int(chunk.group(2))
        if start > len(data) or end - start + 1 != len(body):
            h.send(400, {"error": "bad Content-Range"})
            return
        del data[start:]
        data.extend(body)
    elif not status:
        h.send(400, {"error": "Content-Range required"})
        return
    if len(data) >= up["total"]:
        h.send(200, {"name": up["name"], "size": str(len(data))})
        return
    headers = {"Range": f"bytes=0-{len(data) - 1}"} if data else {}
    h.send(308, b"", headers)


# -- the uploaded zip as a storage object: created datasets, range requests ------------------------


def media_bytes(srv: DeepenServer, dataset_id: str) -> bytes | None:
    """The dataset's uploaded zip: a recorded one, else what was uploaded when it was created."""
    if dataset_id in srv.media:
        return srv.media[dataset_id]
    for up in srv.uploads.values():
        if up["dataset_id"] != dataset_id:
            continue
        if not up.get("gcs"):
            return bytes(up["data"]) if len(up["data"]) == up["total"] else None
        assert srv.gcs is not None
        base, bucket = srv.gcs
        answer = httpx.get(
            f"{base}/storage/v1/b/{bucket}/o/{quote(up['name'], safe='')}", params={"alt": "media"}
        )
        return answer.content if answer.status_code == 200 else None
    return None


def send_ranged(h: Any, data: bytes) -> None:
    """Answer a GET of a storage object as GCS does: 206 + Content-Range for ``Range: bytes=``."""
    srv: DeepenServer = h.srv
    rng = h.headers.get("Range")
    headers = {"Content-Type": "application/zip", "Accept-Ranges": "bytes"}
    if not rng or srv.ignore_ranges:
        h.send(200, data, headers)
        return
    with srv.lock:
        srv.range_requests += 1
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
    n = len(data)
    if m is None or (not m.group(1) and not m.group(2)):
        h.send(416, b"", {"Content-Range": f"bytes */{n}"})
        return
    if not m.group(1):  # a suffix: the last N bytes
        start, end = max(0, n - int(m.group(2))), n - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
    if start >= n or end < start:
        h.send(416, b"", {"Content-Range": f"bytes */{n}"})
        return
    with srv.lock:
        srv.range_bytes += end - start + 1
    h.send(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{n}"})


# -- a created dataset gets labelled: what a labelling team does between upload and pull ---------


def label_dataset(
    srv: DeepenServer,
    dataset_id: str,
    labels: dict[str, list[dict[str, Any]]],
    files: list[dict[str, Any]],
    *,
    paint: tuple[bytes, dict[str, Any]] | None = None,
    frame_sizes: list[int] | None = None,
) -> None:
    """Give a created dataset its labels, files list (and 3D paint) and mark every file done.

    ``labels`` is keyed by file id, as ``labels_with_file_ids_order=true`` answers.
    """
    with srv.lock:
        ds = srv.datasets[dataset_id]
        for file_id, items in labels.items():
            for lab in items:
                lab.setdefault("file_id", file_id)
                lab.setdefault("label_set_id", "default")
                lab.setdefault("stage_id", "Labelling")
        srv.labels[dataset_id] = {"labels": labels}
        srv.files[dataset_id] = {"files": files}
        if paint is not None:
            srv.paint[dataset_id] = paint
        if frame_sizes is not None:
            ds["frame_sizes"] = frame_sizes
        done = {
            "current_stage": "Labelling",
            "current_stage_status": "done",
            "pipeline_status_by_label_set_id": {
                "default": {
                    "Labelling": {
                        "done": len(files),
                        "failed": 0,
                        "in_progress": 0,
                        "ready": 0,
                        "waiting": 0,
                    }
                }
            },
        }
        ds.update(done)
        srv.status_plan[dataset_id] = [{**ds, **done}]
