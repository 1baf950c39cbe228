"""Google Cloud Storage resumable upload of a dataset zip.

Protocol (https://cloud.google.com/storage/docs/performing-resumable-uploads): each chunk is a
``PUT`` of ``chunk_size`` bytes (a multiple of 256 KiB, except the last) with
``Content-Range: bytes START-END/TOTAL``. The server answers ``308`` with
``Range: bytes=0-LAST`` (what it has persisted) until the last chunk, then ``200``/``201``. After
a dropped connection, a 5xx or a 429, the client asks ``PUT`` + ``Content-Range: bytes */TOTAL``
(empty body) and resumes from the byte after ``LAST`` (from 0 when the 308 has no ``Range``).
Only one chunk is in memory at a time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from deepen_export.api._errors import error_for_response, error_for_transport, safe_url
from deepen_export.api._pull import _sha256
from deepen_export.api._retry import RETRYABLE, RetryPolicy
from deepen_export.errors import APIError, UploadError

__all__ = [
    "CHUNK_QUANTUM",
    "IncompleteUploadError",
    "forget_session",
    "load_session",
    "resumable_upload",
    "save_session",
]

log = logging.getLogger("deepen_export.api")

#: GCS requires every chunk but the last to be a multiple of 256 KiB.
CHUNK_QUANTUM = 256 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
#: Appended to an upload that gave up; a caller that knows the dataset id says it concretely.
RESUME_HINT = (
    "; resume it later from where it stopped: `deepen-export datasets upload DATASET_ID ZIP "
    "--resume`, or in Python client.resume_upload(DATASET_ID, ZIP) (a bare session URL: "
    "upload_file(url, ZIP, resume=True))"
)


def _confirmed(response: httpx.Response, total: int, name: str, shown: str) -> int:
    """Bytes the server has persisted, from a 308's ``Range`` header (none means 0).

    A server claiming more than the file holds cannot be resumed from: say so plainly.
    """
    match = _RANGE.search(response.headers.get("Range", ""))
    if not match:
        return 0
    confirmed = int(match.group(2)) + 1
    if confirmed > total or int(match.group(1)) != 0:
        raise UploadError(
            f"the storage server {shown} claims bytes {match.group(1)}-{match.group(2)} of "
            f"{name}, which has {total} bytes: the upload session does not belong to this file. "
            "Resume with the very zip the dataset was created with, or create the dataset again"
        )
    return confirmed


def resumable_upload(
    http: httpx.Client,
    session_url: str,
    path: str | os.PathLike[str],
    *,
    chunk_size: int = 32 * CHUNK_QUANTUM,
    content_type: str = "application/zip",
    policy: RetryPolicy | None = None,
    timeout: float | httpx.Timeout = 120.0,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Upload ``path`` to a GCS resumable session, resuming after interruptions.

    Parameters
    ----------
    http : httpx.Client
        The client to send with; the session URL is pre-signed, so no Authorization is sent.
    session_url : str
        The ``resumable_upload_url`` from create-dataset.
    path : path-like
        The file; its size is taken from the file itself.
    chunk_size : int
        Bytes per ``PUT``; a positive multiple of 256 KiB (default 8 MiB).
    policy : RetryPolicy, optional
        Bounds the retries after dropped connections, 5xx and 429.
    progress : callable, optional
        Called as ``progress(bytes_confirmed, total)`` after each chunk.
    resume : bool
        Ask the server first how much it already has (to continue an earlier, aborted upload).

    Returns
    -------
    dict
        The storage object resource from the final response (``{}`` if the body is not JSON).

    Raises
    ------
    UploadError
        The session is gone (404/410), the server refused a chunk, or the retries ran out.

    Examples
    --------
    >>> import httpx
    >>> with httpx.Client() as http:                                # doctest: +SKIP
    ...     resumable_upload(http, url, "dataset.zip", progress=print)
    """
    if chunk_size <= 0 or chunk_size % CHUNK_QUANTUM:
        raise ValueError(f"chunk_size must be a positive multiple of 256 KiB, got {chunk_size}")
    up = _Upload(http, session_url, Path(path), content_type, policy or RetryPolicy(), timeout)
    offset = 0
    if resume:
        offset, done = up.status()
        if done is not None:
            return _json(done)
    with up.path.open("rb") as fh:
        return up.send(fh, offset, chunk_size, progress)


class _Upload:
    """One resumable upload: its session, its file, and the current streak of failures."""

    def __init__(
        self,
        http: httpx.Client,
        session_url: str,
        path: Path,
        content_type: str,
        policy: RetryPolicy,
        timeout: float | httpx.Timeout,
    ) -> None:
        self.http, self.session_url, self.path = http, session_url, path
        self.content_type, self.policy, self.timeout = content_type, policy, timeout
        self.total = path.stat().st_size
        self.shown = safe_url(session_url, keep_query=False)
        self.streak = time.monotonic()
        self.failures = 0

    def put(self, content: bytes, content_range: str) -> httpx.Response:
        headers = {"Content-Range": content_range, "Content-Type": self.content_type}
        try:
            response = self.http.put(
                self.session_url, content=content, headers=headers, timeout=self.timeout
            )
        except httpx.TransportError as exc:
            raise error_for_transport(exc, exc.request if _has_request(exc) else None) from exc
        if response.status_code in (200, 201, 308):
            return response
        raise error_for_response(
            response, hint_404="the upload session expired; create the dataset again"
        )

    def backoff(self, exc: Exception) -> None:
        if self.failures == 0:
            self.streak = time.monotonic()
        self.failures += 1
        delay = self.policy.backoff(self.failures, exc)
        # Bounds apply to one streak of failures: a long upload may fail now and then.
        if (
            self.failures > self.policy.max_retries
            or time.monotonic() - self.streak + delay > self.policy.max_time
        ):
            raise UploadError(
                f"upload of {self.path.name} to {self.shown} stopped after {self.failures} "
                f"failures ({exc}){RESUME_HINT}"
            ) from exc
        log.warning(
            "upload of %s interrupted (%s); retry %d in %.1f s",
            self.path.name,
            type(exc).__name__,
            self.failures,
            delay,
        )
        self.policy.sleep(delay)

    def status(self) -> tuple[int, httpx.Response | None]:
        """Bytes the server has, or the final response when it has them all."""
        while True:
            try:
                response = self.put(b"", f"bytes */{self.total}")
            except RETRYABLE as exc:
                self.backoff(exc)
                continue
            except APIError as exc:
                raise UploadError(f"upload of {self.path.name} cannot go on: {exc}") from exc
            if response.status_code in (200, 201):
                return self.total, response
            return _confirmed(response, self.total, self.path.name, self.shown), None

    def send(
        self,
        fh: Any,
        offset: int,
        chunk_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> dict[str, Any]:
        """Send the file from ``offset`` chunk by chunk; the final response's JSON."""
        total = self.total
        while True:
            end = min(offset + chunk_size, total)
            fh.seek(offset)
            chunk = fh.read(end - offset)
            content_range = f"bytes {offset}-{end - 1}/{total}" if total else "bytes */0"
            try:
                response = self.put(chunk, content_range)
            except RETRYABLE as exc:
                self.backoff(exc)
                offset, done = self.status()
                if done is None:
                    if progress:
                        progress(offset, total)
                    continue
                response = done
            except APIError as exc:
                raise UploadError(f"upload of {self.path.name} cannot go on: {exc}") from exc
            if response.status_code in (200, 201):
                if progress:
                    progress(total, total)
                return _json(response)
            confirmed = _confirmed(response, total, self.path.name, self.shown)
            if confirmed <= offset and end > offset:
                # No progress on a 308: count it as a failure so a stuck server cannot loop us forever.
                self.backoff(UploadError(f"server kept {confirmed} of {total} bytes"))
            else:
                self.failures = 0
            offset = confirmed
            if progress:
                progress(offset, total)


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when httpx did not attach one
    except RuntimeError:
        return False
    return True


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- sessions of created datasets, kept until the upload is processed -------------------------


class IncompleteUploadError(UploadError):
    """A dataset was created but its zip did not finish uploading; it can be resumed.

    ``dataset_id`` and ``path`` say what to resume: ``deepen-export datasets upload
    DATASET_ID ZIP --resume``.
    """

    def __init__(self, message: str, *, dataset_id: str, path: Path) -> None:
        super().__init__(message)
        self.dataset_id = dataset_id
        self.path = path


def _state_dir() -> Path:
    """Where upload sessions are kept: ``$DEEPEN_EXPORT_STATE_DIR``, else the XDG state dir."""
    explicit = os.environ.get("DEEPEN_EXPORT_STATE_DIR")
    if explicit:
        return Path(explicit) / "uploads"
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "deepen-export" / "uploads"


def _session_file(dataset_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "_", dataset_id).lstrip(".") or "_"
    return _state_dir() / f"{safe}.json"


def save_session(dataset_id: str, session_url: str, path: str | os.PathLike[str]) -> Path:
    """Remember the resumable session of a created dataset (private file, mode 0600).

    The session URL is pre-signed (it grants the upload), so the file is readable by its owner
    only; :func:`forget_session` removes it once the upload is processed.

    Examples
    --------
    >>> save_session("ds1", "https://storage/upload?upload_id=x", "drive1.zip")  # doctest: +SKIP
    """
    path = Path(path)
    target = _session_file(dataset_id)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {
        "dataset_id": dataset_id,
        "resumable_upload_url": session_url,
        "zip": path.name,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
    }
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
    os.replace(tmp, target)
    return target


def load_session(dataset_id: str, path: str | os.PathLike[str]) -> str:
    """The session URL saved for ``dataset_id``, after checking ``path`` is the same zip.

    Raises
    ------
    UploadError
        No session was saved on this machine, or ``path`` differs from the zip it was for.

    Examples
    --------
    >>> url = load_session("r82dS6VVkok98ZWr1CTkU4NE", "drive1.zip")  # doctest: +SKIP
    >>> client.upload_file(url, "drive1.zip", resume=True)  # doctest: +SKIP
    """
    file = _session_file(dataset_id)
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
        url = body["resumable_upload_url"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UploadError(
            f"no unfinished upload of dataset {dataset_id} is recorded on this machine (looked "
            f"in {file.parent}); only uploads started here with `datasets create` can be resumed"
        ) from None
    path = Path(path)
    size = path.stat().st_size
    if size != body.get("bytes") or _sha256(path) != body.get("sha256"):
        raise UploadError(
            f"{path} ({size} bytes) is not the zip dataset {dataset_id} was created with "
            f"({body.get('zip')}, {body.get('bytes')} bytes): resume with that very zip (or the "
            "unchanged folder)"
        )
    return str(url)


def forget_session(dataset_id: str) -> None:
    """Drop the saved session of ``dataset_id`` (its upload is done).

    Examples
    --------
    >>> forget_session("no-such-dataset")  # nothing saved: nothing to do
    """
    _session_file(dataset_id).unlink(missing_ok=True)
