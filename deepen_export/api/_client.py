"""The Deepen API v2 client."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from deepen_export.api._errors import (
    DownloadTooSlowError,
    error_for_response,
    error_for_transport,
    not_json_message,
    redact_request,
    safe_url,
    server_text,
)
from deepen_export.api._retry import RetryPolicy
from deepen_export.api._status import ProcessingStatus, Until
from deepen_export.api._upload import (
    CHUNK_QUANTUM,
    RESUME_HINT,
    IncompleteUploadError,
    forget_session,
    load_session,
    resumable_upload,
    save_session,
)
from deepen_export.errors import (
    APIError,
    AuthenticationError,
    DeepenExportError,
    PayloadError,
    RateLimitedError,
    TransportError,
    UploadError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "Client",
    "DownloadLimits",
    "PaintLabels",
]

T = TypeVar("T")
log = logging.getLogger("deepen_export.api")

DEFAULT_BASE_URL = "https://tools.deepen.ai/api/v2"


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=[redacted])"


@dataclass(frozen=True)
class PaintLabels:
    """3D point paint labels: the raw body and the parsed ``paint-metadata`` header.

    ``data`` is the body as the server sent it after HTTP content decoding: usually still
    zlib ("pako") compressed, one byte per point once inflated; :mod:`deepen_export.parse`
    decodes it. ``metadata`` holds ``format``, ``paint_categories`` and ``frame_sizes``.
    """

    data: bytes
    metadata: dict[str, Any]

    def __repr__(self) -> str:
        return f"PaintLabels(<{len(self.data)} bytes>, metadata={self.metadata!r})"


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on one streamed download as a whole (the read timeout bounds only each read).

    A server that sends a few bytes now and then never trips a per-read timeout; these bounds
    make such a download fail in bounded time instead.

    Attributes
    ----------
    min_rate : float
        Bytes per second the download must average once ``grace`` seconds have passed; 0
        switches the check off. Default ``$DEEPEN_DOWNLOAD_MIN_RATE`` or 1024 (1 KiB/s).
    grace : float
        Seconds before ``min_rate`` applies (slow starts, proxies that buffer). Default
        ``$DEEPEN_DOWNLOAD_GRACE`` or 30.
    deadline : float or None
        Seconds one download may take at most, however fast it goes; default
        ``$DEEPEN_DOWNLOAD_DEADLINE`` or none.

    Examples
    --------
    >>> DownloadLimits(min_rate=10_000, grace=5, deadline=600).check(4.0, 10)  # within grace
    >>> DownloadLimits(min_rate=10_000, grace=5).check(6.0, 10)
    'averaged 2 B/s over 6 s, below the minimum of 10000 B/s'
    """

    min_rate: float = 1024.0
    grace: float = 30.0
    deadline: float | None = None

    @classmethod
    def from_env(cls) -> DownloadLimits:
        """The limits from ``DEEPEN_DOWNLOAD_MIN_RATE``, ``_GRACE`` and ``_DEADLINE``."""

        def number(name: str, default: float | None) -> float | None:
            raw = os.environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise DeepenExportError(
                    f"{name}={raw!r} is not a number of seconds/bytes"
                ) from None
            if not value >= 0:
                raise DeepenExportError(f"{name}={raw!r} must be zero or more")
            return value

        return cls(
            min_rate=number("DEEPEN_DOWNLOAD_MIN_RATE", cls.min_rate) or 0.0,
            grace=number("DEEPEN_DOWNLOAD_GRACE", cls.grace) or 0.0,
            deadline=number("DEEPEN_DOWNLOAD_DEADLINE", None) or None,
        )

    def check(self, elapsed: float, done: int) -> str | None:
        """Why a download ``elapsed`` seconds in with ``done`` bytes must stop, or None."""
        if self.deadline is not None and elapsed > self.deadline:
            return f"took more than the deadline of {self.deadline:g} s ({done} bytes so far)"
        if self.min_rate > 0 and elapsed > self.grace and done < self.min_rate * elapsed:
            return (
                f"averaged {done / elapsed:.0f} B/s over {elapsed:.0f} s, below the minimum "
                f"of {self.min_rate:g} B/s"
            )
        return None


def _params(**kwargs: Any) -> dict[str, str]:
    # Deepen spells booleans in lower case (final=true).
    return {
        k: (("true" if v else "false") if isinstance(v, bool) else str(v))
        for k, v in kwargs.items()
        if v is not None
    }


def _paint_metadata(response: httpx.Response, secret: str | None = None) -> dict[str, Any]:
    raw = response.headers.get("paint-metadata")
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise PayloadError(
            f"paint-metadata header is not JSON: {server_text(raw, secret, limit=100)!r}"
        ) from exc
    if not isinstance(meta, dict):
        raise PayloadError("paint-metadata header is not a JSON object")
    return meta


class Client:
    """A client for Deepen AI's REST API v2.

    Parameters
    ----------
    client_id : str, optional
        Your Deepen client (workspace) id; default ``$DEEPEN_CLIENT_ID``. Only the calls under
        ``/clients/{id}`` need it.
    token : str, optional
        An API token; default ``$DEEPEN_API_TOKEN``. It is sent as ``Authorization: Bearer`` and
        never shown in logs, errors or reprs.
    base_url : str, optional
        Default ``$DEEPEN_API_URL``, else ``https://tools.deepen.ai/api/v2``.
    timeout : float
        Seconds for connect and for each read or write (label bodies stream, so a large body
        is not limited by this as a whole).
    max_retries : int
        Retries of 429, 5xx and dropped connections; other errors are raised at once.
    max_retry_time : float
        No retry starts later than this many seconds after the first attempt.
    max_concurrency : int
        Threads for :meth:`labels_for_files` and :meth:`pull_many`.
    download_limits : DownloadLimits, optional
        Minimum throughput and total deadline of each streamed download (labels, paint labels,
        media zip); default :meth:`DownloadLimits.from_env`.
    http : httpx.Client, optional
        A client to send with (for proxies, custom TLS, tests); it is not closed by ``close``.
    retry : RetryPolicy, optional
        Full control over the backoff (tests pass one with a recording ``sleep``).

    Examples
    --------
    >>> from deepen_export.api import Client
    >>> with Client("my-client", "my-token") as client:
    ...     client
    Client(client_id='my-client', base_url='https://tools.deepen.ai/api/v2', token=[redacted])
    """

    def __init__(
        self,
        client_id: str | None = None,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 100.0,
        max_retries: int = 5,
        max_retry_time: float = 300.0,
        max_concurrency: int = 4,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        download_limits: DownloadLimits | None = None,
    ) -> None:
        self.client_id = client_id or os.environ.get("DEEPEN_CLIENT_ID") or None
        token = token or os.environ.get("DEEPEN_API_TOKEN") or None
        if not token:
            raise AuthenticationError(
                "no Deepen API token: pass token= or set DEEPEN_API_TOKEN (create one on the "
                "Developer Tokens page of your workspace)"
            )
        self._token = token
        self._auth = _BearerAuth(token)
        self.base_url = (base_url or os.environ.get("DEEPEN_API_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 30.0))
        self.retry = retry or RetryPolicy(max_retries=max_retries, max_time=max_retry_time)
        self.download_limits = download_limits or DownloadLimits.from_env()
        self._own_http = http is None
        self._http = http or httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(10, 2 * max_concurrency)),
            headers={"User-Agent": _user_agent()},
        )

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, base_url={self.base_url!r}, token=[redacted])"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the httpx client was passed in)."""
        if self._own_http:
            self._http.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _cid(self) -> str:
        if not self.client_id:
            raise DeepenExportError(
                "no Deepen client id: pass client_id= or set DEEPEN_CLIENT_ID (the xxx in "
                "https://tools.deepen.ai/workspace/xxx/datasets)"
            )
        return quote(self.client_id, safe=":")

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        ok: Iterable[int] = (200, 201, 202, 204),
        stream: bool = False,
        hint_404: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One attempt; every failure leaves here as an :class:`APIError` subclass."""
        request = self._http.build_request(
            method, url, params=params, json=json_body, timeout=self.timeout, headers=headers
        )
        try:
            # Signed storage links may redirect; API calls (which carry the token) never follow.
            # Always streamed, so the body is read through the download limits below.
            response = self._http.send(
                request,
                auth=self._auth if auth else None,
                stream=True,
                follow_redirects=not auth,
            )
        except httpx.TransportError as exc:
            raise error_for_transport(exc, request) from exc
        response.stream = _BoundedStream(response.stream, self.download_limits, response.request)
        try:
            if response.status_code not in ok:
                with contextlib.suppress(httpx.TransportError):
                    response.read()
                kw = {"hint_404": hint_404} if hint_404 else {}
                raise error_for_response(response, secret=self._token, **kw)
            if not stream:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise error_for_transport(exc, request) from exc
        except BaseException:
            response.close()
            raise
        redact_request(response.request)
        return response

    def _request(
        self, method: str, path_or_url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        what = f"{method} {path_or_url.split('?')[0] if '://' not in path_or_url else 'download'}"
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        return self.retry.call(
            lambda: self._send_once(method, url, **kwargs),
            what=what,
            retry_if=_retry_unless_too_slow if idempotent else _not_acted_on,
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise PayloadError(
                not_json_message(
                    f"{method} {path}",
                    response.content[:512],
                    len(response.content),
                    response.headers.get("content-type"),
                    self._token,
                )
            ) from exc

    def _json_object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._json(method, path, **kwargs)
        if not isinstance(body, dict):
            raise PayloadError(
                f"{method} {path}: expected a JSON object, got {type(body).__name__}"
            )
        return body

    def _download(
        self,
        path_or_url: str,
        dest: str | os.PathLike[str],
        *,
        auth: bool = True,
        params: Mapping[str, str] | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        hint_404: str | None = None,
    ) -> Path:
        """Stream a body into ``dest`` (through ``dest.part``); retried as a whole."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)

        def attempt() -> None:
            response = self._send_once(
                "GET", url, auth=auth, params=params, stream=True, hint_404=hint_404
            )
            try:
                if on_response is not None:
                    on_response(response)
                size = response.headers.get("Content-Length")
                total = (
                    int(size)
                    if size and size.isdigit() and "Content-Encoding" not in response.headers
                    else None
                )
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with part.open("wb") as fh:
                        self._stream_body(response, fh, total, progress)
                except httpx.TransportError as exc:
                    raise error_for_transport(exc, response.request) from exc
            finally:
                response.close()

        what = "download" if "://" in path_or_url else f"GET {path_or_url}"
        try:
            # A too-slow server is not retried: starting over would only multiply the wait.
            self.retry.call(attempt, what=what, retry_if=_retry_unless_too_slow)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return dest

    def _stream_body(
        self,
        response: httpx.Response,
        fh: Any,
        total: int | None,
        progress: Callable[[int, int | None], None] | None,
    ) -> None:
        """Copy the body to ``fh`` (:class:`_BoundedStream` enforces the download limits)."""
        done = 0
        # No re-chunking: the pieces come as they arrive (the limits are checked per piece).
        for block in response.iter_bytes():
            fh.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)

    # -- datasets -----------------------------------------------------------------------------

    def list_datasets(self) -> dict[str, dict[str, Any]]:
        """All datasets of the client: ``GET /clients/{client_id}/datasets``.

        Returns
        -------
        dict
            dataset id → DatasetResource, as the server returns it.

        Examples
        --------
        >>> for dataset_id, ds in client.list_datasets().items():  # doctest: +SKIP
        ...     print(dataset_id, ds["dataset_name"])
        """
        return self._json_object("GET", f"clients/{self._cid()}/datasets")

    def list_dataset_ids(self) -> list[dict[str, Any]]:
        """Ids and names only: ``GET /clients/{client_id}/datasets_ids``.

        Returns
        -------
        list of dict
            ``[{"dataset_id": ..., "dataset_name": ...}, ...]``.

        Examples
        --------
        >>> [d["dataset_id"] for d in client.list_dataset_ids()]  # doctest: +SKIP
        ['r82dS6VVkok98ZWr1CTkU4NE']
        """
        body = self._json_object("GET", f"clients/{self._cid()}/datasets_ids")
        datasets = body.get("datasets")
        if not isinstance(datasets, list):
            raise PayloadError("datasets_ids: the answer has no 'datasets' list")
        return datasets

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """One DatasetResource (with its status): ``GET /datasets/{dataset_id}``.

        Examples
        --------
        >>> client.get_dataset("r82dS6VVkok98ZWr1CTkU4NE")["dataset_type"]  # doctest: +SKIP
        '3d'
        """
        return self._json_object("GET", f"datasets/{quote(dataset_id, safe=':')}")

    def dataset_status(self, dataset_id: str, *, label_set: str = "default") -> ProcessingStatus:
        """The dataset's processing status, normalised over both status forms.

        Examples
        --------
        >>> client.dataset_status("r82dS6VVkok98ZWr1CTkU4NE").state  # doctest: +SKIP
        'processed'
        """
        return ProcessingStatus.from_dataset(self.get_dataset(dataset_id), label_set)

    def create_dataset(
        self,
        name: str,
        files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        dataset_type: str,
        dataset_format: str | None = None,
        labelling_mode: str | None = None,
        labelling_profile_id: str | None = None,
        labelling_profile: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        user_scopes: Any = None,
        user_group_scopes: Any = None,
    ) -> dict[str, Any]:
        """Create a dataset: ``POST /clients/{client_id}/datasets``.

        Parameters
        ----------
        name : str
            ``dataset_name``.
        files : path or paths
            The zip(s) to upload; ``file_size`` is taken from each file itself.
        dataset_type : {"3d", "images", "video"}
        dataset_format : {"json", "default"}, optional
            3D only.
        labelling_mode : {"frame_by_frame", "label_by_label"}, optional
        labelling_profile_id, labelling_profile : optional
            The labelling requirements: an existing profile's id, or a profile object
            (``features`` with label types, categories and attributes). Not both.
        tags : list of str, optional
        extra : mapping, optional
            More body fields (``fps``, ...), passed as given.
        user_scopes, user_group_scopes : mapping or list, optional
            Who may work on the dataset: ``{"ann@example.com": ["labeller"]}`` or
            ``[{"email": ..., "scopes": [...]}]`` (groups keyed by ``user_group_id``).

        Returns
        -------
        dict
            The answer: ``dataset_id`` and ``files[i].resumable_upload_url``.

        Examples
        --------
        >>> created = client.create_dataset("drive-1", "drive1.zip", dataset_type="3d",
        ...                                 dataset_format="json")  # doctest: +SKIP
        >>> created["files"][0]["resumable_upload_url"]  # doctest: +SKIP
        'https://www.googleapis.com/upload/storage/v1/b/...'
        """
        if labelling_profile_id and labelling_profile:
            raise ValueError("give labelling_profile_id or labelling_profile, not both")
        paths = [Path(files)] if isinstance(files, str | os.PathLike) else [Path(p) for p in files]
        body: dict[str, Any] = {
            "dataset_name": name,
            "dataset_type": dataset_type,
            "files": [
                {"file_size": p.stat().st_size, "file_type": "application/zip"} for p in paths
            ],
        }
        if dataset_format:
            body["dataset_format"] = dataset_format
        if labelling_mode:
            body["labelling_mode"] = labelling_mode
        if labelling_profile_id:
            body["labelling_profile_id"] = labelling_profile_id
        if labelling_profile:
            body["labelling_profile"] = dict(labelling_profile)
        if tags:
            body["tags"] = list(tags)
        if user_scopes or user_group_scopes:
            from deepen_export.api._labels_push import scopes

            body["user_scopes"] = scopes(user_scopes, "email")
            body["user_group_scopes"] = scopes(user_group_scopes, "user_group_id")
        body.update(extra or {})
        created = self._json_object("POST", f"clients/{self._cid()}/datasets", json_body=body)
        if not created.get("dataset_id"):
            raise PayloadError("create dataset: the answer has no 'dataset_id'")
        return created

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset: ``DELETE /datasets/{dataset_id}``.

        Examples
        --------
        >>> client.delete_dataset("r82dS6VVkok98ZWr1CTkU4NE")  # doctest: +SKIP
        """
        self._request("DELETE", f"datasets/{quote(dataset_id, safe=':')}")

    def upload_file(
        self,
        resumable_upload_url: str,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = 32 * CHUNK_QUANTUM,
        progress: Callable[[int, int], None] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Upload a zip to its resumable session (GCS protocol); see :func:`resumable_upload`.

        The token is not sent: the session URL is pre-signed.

        Examples
        --------
        >>> url = created["files"][0]["resumable_upload_url"]  # doctest: +SKIP
        >>> client.upload_file(url, "drive1.zip")  # doctest: +SKIP
        """
        return resumable_upload(
            self._http,
            resumable_upload_url,
            path,
            chunk_size=chunk_size,
            policy=self.retry,
            timeout=self.timeout,
            progress=progress,
            resume=resume,
        )

    def process_uploaded_data(self, dataset_id: str, file_name: str) -> Any:
        """Start processing an uploaded zip: ``POST /datasets/{id}/process_uploaded_data``.

        Parameters
        ----------
        file_name : str
            The uploaded object's name: the ``name`` query parameter (or last path segment) of
            the resumable URL; :func:`upload_name` extracts it.

        Examples
        --------
        >>> client.process_uploaded_data(ds_id, upload_name(url))  # doctest: +SKIP
        """
        return self._json(
            "POST",
            f"datasets/{quote(dataset_id, safe=':')}/process_uploaded_data",
            json_body={"file_name": file_name},
        )

    def create_and_upload(
        self,
        name: str,
        zip_path: str | os.PathLike[str],
        *,
        dataset_type: str,
        chunk_size: int = 32 * CHUNK_QUANTUM,
        progress: Callable[[int, int], None] | None = None,
        **create_kwargs: Any,
    ) -> dict[str, Any]:
        """Create a dataset, upload its zip (resumable) and start processing.

        Returns
        -------
        dict
            The create-dataset answer (``dataset_id``, ...).

        Examples
        --------
        >>> ds = client.create_and_upload("drive-1", "drive1.zip", dataset_type="3d",
        ...                               dataset_format="json")  # doctest: +SKIP
        >>> client.wait_for_processing(ds["dataset_id"])  # doctest: +SKIP
        """
        created = self.create_dataset(name, zip_path, dataset_type=dataset_type, **create_kwargs)
        files = created.get("files") or []
        url = files[0].get("resumable_upload_url") if files and isinstance(files[0], dict) else None
        if not url:
            raise PayloadError("create dataset: the answer has no files[0].resumable_upload_url")
        self._upload_and_process(str(created["dataset_id"]), url, zip_path, chunk_size, progress)
        return created

    def resume_upload(
        self,
        dataset_id: str,
        zip_path: str | os.PathLike[str],
        *,
        chunk_size: int = 32 * CHUNK_QUANTUM,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Finish the upload of a dataset whose :meth:`create_and_upload` stopped, and process it.

        The session saved on this machine when the dataset was created is asked how much it
        holds, and the upload continues from there (the zip must be the same file).

        Examples
        --------
        >>> client.resume_upload("r82dS6VVkok98ZWr1CTkU4NE", "drive1.zip")  # doctest: +SKIP
        """
        url = load_session(dataset_id, zip_path)
        self._upload_and_process(dataset_id, url, zip_path, chunk_size, progress, resume=True)

    def _upload_and_process(
        self,
        dataset_id: str,
        url: str,
        zip_path: str | os.PathLike[str],
        chunk_size: int,
        progress: Callable[[int, int], None] | None,
        *,
        resume: bool = False,
    ) -> None:
        # Saved first, so an upload killed or failed at any point can be resumed by id.
        save_session(dataset_id, url, zip_path)
        try:
            self.upload_file(url, zip_path, chunk_size=chunk_size, progress=progress, resume=resume)
        except UploadError as exc:
            raise IncompleteUploadError(
                f"dataset {dataset_id} was created but its zip is not fully uploaded "
                f"({str(exc).replace(RESUME_HINT, '')}). "
                f"Resume: deepen-export datasets upload {dataset_id} {zip_path} --resume "
                f"(or remove it: deepen-export datasets delete {dataset_id})",
                dataset_id=dataset_id,
                path=Path(zip_path),
            ) from exc
        self.process_uploaded_data(dataset_id, upload_name(url, Path(zip_path).name))
        forget_session(dataset_id)

    def wait_for_processing(
        self,
        dataset_id: str,
        *,
        until: Until = "processed",
        label_set: str = "default",
        timeout: float = 3600.0,
        poll_initial: float = 2.0,
        poll_max: float = 30.0,
        on_progress: Callable[[ProcessingStatus], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> ProcessingStatus:
        """Poll the dataset until it is processed (or labelled), failed, or ``timeout`` passes.

        Parameters
        ----------
        until : {"processed", "labelled"}
            ``processed``: the upload is processed, labelling can start. ``labelled``: every
            file went through the last pipeline stage.
        timeout : float
            Seconds; then :class:`~deepen_export.errors.DeepenExportError` is raised.
        poll_initial, poll_max : float
            The first wait between polls, growing by half up to ``poll_max``.
        on_progress : callable, optional
            Called with each :class:`ProcessingStatus` (stage and stage counts).

        Returns
        -------
        ProcessingStatus
            The final status; ``state == "error"`` raises instead.

        Raises
        ------
        DeepenExportError
            Processing failed, or the timeout passed.

        Examples
        --------
        >>> client.wait_for_processing(ds_id, on_progress=lambda s: print(s.describe()))  # doctest: +SKIP
        processing · Processing: in_progress
        processed · Labelling: ready · Labelling ready 12
        """
        sleep = self.retry.sleep if sleep is None else sleep
        deadline = time.monotonic() + timeout
        delay = poll_initial
        while True:
            status = self.dataset_status(dataset_id, label_set=label_set)
            if on_progress is not None:
                on_progress(status)
            if status.state == "error":
                raise DeepenExportError(
                    f"dataset {dataset_id} failed processing: "
                    f"{server_text(status.describe(), self._token, limit=400)}; check the "
                    "uploaded zip's layout and the dataset page in Deepen"
                )
            if status.finished(until):
                return status
            if time.monotonic() + delay > deadline:
                raise DeepenExportError(
                    f"dataset {dataset_id} not {until} after {timeout:g} s "
                    f"({server_text(status.describe(), self._token, limit=400)}); "
                    "wait longer with a larger timeout"
                )
            sleep(delay)
            delay = min(poll_max, delay * 1.5)

    # -- files --------------------------------------------------------------------------------

    def list_files(self, dataset_id: str) -> list[dict[str, Any]]:
        """The dataset's files: ``GET /datasets/{dataset_id}/files`` → the ``files`` list.

        Examples
        --------
        >>> [f["file_id"] for f in client.list_files(ds_id)]  # doctest: +SKIP
        ['0.pcd', '1.pcd']
        """
        body = self._json_object("GET", f"datasets/{quote(dataset_id, safe=':')}/files")
        files = body.get("files")
        if not isinstance(files, list):
            raise PayloadError("files: the answer has no 'files' list")
        return files

    def get_file(self, dataset_id: str, file_id: str) -> dict[str, Any]:
        """One FileResource (its status): ``GET /datasets/{dataset_id}/files/{file_id}``.

        Examples
        --------
        >>> client.get_file(ds_id, "0.pcd")["file_id"]  # doctest: +SKIP
        '0.pcd'
        """
        return self._json_object(
            "GET", f"datasets/{quote(dataset_id, safe=':')}/files/{quote(file_id, safe='')}"
        )

    # -- labels -------------------------------------------------------------------------------

    @staticmethod
    def label_params(
        *,
        final: bool | None = True,
        filter_existing_categories: bool | None = None,
        labels_with_file_ids_order: bool | None = None,
        label_set: str | None = None,
        stage: str | None = None,
        all: bool | None = None,
    ) -> dict[str, str]:
        """The query of the label endpoints, with Deepen's spelling.

        Examples
        --------
        >>> Client.label_params(labels_with_file_ids_order=True, label_set="default")
        {'final': 'true', 'labels_with_file_ids_order': 'true', 'labelSetId': 'default'}
        """
        return _params(
            final=final,
            filter_existing_categories=filter_existing_categories,
            labels_with_file_ids_order=labels_with_file_ids_order,
            all=all,
            labelSetId=label_set,
            stageId=stage,
        )

    def get_labels(self, dataset_id: str, **query: Any) -> dict[str, Any]:
        """A dataset's labels: ``GET /datasets/{dataset_id}/labels``.

        Parameters
        ----------
        **query
            ``final`` (default True), ``filter_existing_categories``,
            ``labels_with_file_ids_order``, ``label_set`` (``labelSetId``), ``stage``
            (``stageId``), ``all``; see :meth:`label_params`.

        Returns
        -------
        dict
            ``{"labels": {file_id: [...]}}`` with ``labels_with_file_ids_order``, else
            ``{"all_labels": [...]}`` or ``{"labels": [...]}`` (both are seen).

        Examples
        --------
        >>> body = client.get_labels(ds_id, labels_with_file_ids_order=True)  # doctest: +SKIP
        """
        return self._json_object(
            "GET",
            f"datasets/{quote(dataset_id, safe=':')}/labels",
            params=self.label_params(**query),
        )

    def download_labels(
        self,
        dataset_id: str,
        dest: str | os.PathLike[str],
        *,
        progress: Callable[[int, int | None], None] | None = None,
        **query: Any,
    ) -> Path:
        """Stream a dataset's labels body to ``dest`` without holding it in memory.

        Same query as :meth:`get_labels`; ``progress(bytes_done, total_or_None)`` is called
        as the body arrives.

        Examples
        --------
        >>> client.download_labels(ds_id, "labels.json", labels_with_file_ids_order=True)  # doctest: +SKIP
        PosixPath('labels.json')
        """
        return self._download(
            f"datasets/{quote(dataset_id, safe=':')}/labels",
            dest,
            params=self.label_params(**query),
            progress=progress,
        )

    def get_file_labels(self, dataset_id: str, file_id: str, **query: Any) -> dict[str, Any]:
        """Labels of one file: ``GET /datasets/{dataset_id}/files/{file_id}/labels``.

        **Unconfirmed endpoint**: it was named in early notes but not seen in Deepen's public
        docs or in code using the real API; :meth:`get_labels` is the documented way.

        Examples
        --------
        >>> client.get_file_labels(ds_id, "0.pcd")  # doctest: +SKIP
        """
        return self._json_object(
            "GET",
            f"datasets/{quote(dataset_id, safe=':')}/files/{quote(file_id, safe='')}/labels",
            params=self.label_params(**query),
        )

    def labels_for_files(
        self, dataset_id: str, file_ids: Iterable[str], **query: Any
    ) -> dict[str, dict[str, Any]]:
        """:meth:`get_file_labels` for many files, ``max_concurrency`` at a time.

        Examples
        --------
        >>> bodies = client.labels_for_files(ds_id, ["0.pcd", "1.pcd"])  # doctest: +SKIP
        """
        ids = list(file_ids)
        return dict(
            zip(
                ids,
                self._map(lambda f: self.get_file_labels(dataset_id, f, **query), ids),
                strict=True,
            )
        )

    def labels_of_datasets(
        self, dataset_ids: Iterable[str], *, label_set: str = "default"
    ) -> dict[str, Any]:
        """Labels of several datasets at once: ``POST /clients/{id}/labels_of_dataset_ids``.

        Returns
        -------
        dict
            ``{"labels": [...]}``; each label carries its ``dataset_id``.

        Examples
        --------
        >>> client.labels_of_datasets(["ds1", "ds2"])["labels"][0]["dataset_id"]  # doctest: +SKIP
        'ds1'
        """
        return self._json_object(
            "POST",
            f"clients/{self._cid()}/labels_of_dataset_ids",
            params={"labelSetId": label_set},
            json_body={"dataset_ids": list(dataset_ids)},
            idempotent=True,  # a read, sent as POST for its body
        )

    def _paint_path(self, dataset_id: str, label_type: str, file_id: str | None) -> str:
        base = f"datasets/{quote(dataset_id, safe=':')}"
        if file_id is not None:
            base += f"/files/{quote(file_id, safe='')}"
        return f"{base}/label_types/{quote(label_type, safe='')}/paint_labels"

    def get_paint_labels(
        self,
        dataset_id: str,
        *,
        label_type: str = "3d_point",
        label_set: str = "default",
        stage: str | None = None,
        sensor_id: str = "lidar",
        file_id: str | None = None,
    ) -> PaintLabels:
        """3D paint labels: ``GET /datasets/{id}/label_types/3d_point/paint_labels``.

        The body is returned as bytes, not decoded; the ``paint-metadata`` header is parsed.
        ``file_id`` selects the per-file variant (unverified, seen only in commented code).

        Examples
        --------
        >>> paint = client.get_paint_labels(ds_id, stage="QA")  # doctest: +SKIP
        >>> paint.metadata["paint_categories"]  # doctest: +SKIP
        ['car', 'wall']
        """
        response = self._request(
            "GET",
            self._paint_path(dataset_id, label_type, file_id),
            params=_params(stageId=stage, sensor_id=sensor_id, labelSetId=label_set),
        )
        return PaintLabels(response.content, _paint_metadata(response, self._token))

    def download_paint_labels(
        self,
        dataset_id: str,
        dest: str | os.PathLike[str],
        *,
        label_type: str = "3d_point",
        label_set: str = "default",
        stage: str | None = None,
        sensor_id: str = "lidar",
    ) -> dict[str, Any]:
        """Stream paint labels to ``dest``; returns the parsed ``paint-metadata``.

        Examples
        --------
        >>> meta = client.download_paint_labels(ds_id, "3d_point.dpn")  # doctest: +SKIP
        """
        meta: dict[str, Any] = {}

        def keep(response: httpx.Response) -> None:
            meta.clear()
            meta.update(_paint_metadata(response, self._token))

        self._download(
            self._paint_path(dataset_id, label_type, None),
            dest,
            params=_params(stageId=stage, sensor_id=sensor_id, labelSetId=label_set),
            on_response=keep,
            hint_404="the dataset has no paint labels for this label set/stage",
        )
        return meta

    # -- media --------------------------------------------------------------------------------

    def signed_media_link(self, dataset_id: str) -> str:
        """Signed URL of the originally uploaded zip (``uploaded_dataset_signed_media_link``).

        Examples
        --------
        >>> client.signed_media_link(ds_id).startswith("https://")  # doctest: +SKIP
        True
        """
        body = self._json_object(
            "GET", f"datasets/{quote(dataset_id, safe=':')}/uploaded_dataset_signed_media_link"
        )
        link = body.get("uploaded_dataset_signed_media_link")
        if not isinstance(link, str) or not link:
            raise PayloadError("uploaded_dataset_signed_media_link: no link in the answer")
        return link

    def download_uploaded_dataset(
        self,
        dataset_id: str,
        dest: str | os.PathLike[str],
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """Download the uploaded dataset zip (frames + calibration) to ``dest``, streamed.

        Examples
        --------
        >>> client.download_uploaded_dataset(ds_id, "media/dataset.zip")  # doctest: +SKIP
        PosixPath('media/dataset.zip')
        """
        link = self.signed_media_link(dataset_id)
        # The link is pre-signed; sending the token to a storage host would leak it.
        return self._download(link, dest, auth=False, progress=progress)

    def uploaded_image_sizes(
        self,
        dataset_id: str,
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> dict[str, tuple[int, int]]:
        """Width and height of every image in the uploaded zip, read by HTTP range requests.

        Reads the zip's central directory and the first bytes of each image member through the
        signed link (see :mod:`deepen_export.api._ranges`), never the images themselves.

        Returns
        -------
        dict
            Zip member name → ``(width, height)``.

        Examples
        --------
        >>> client.uploaded_image_sizes(ds_id)  # doctest: +SKIP
        {'000001.png': (1242, 375), ...}
        """
        from deepen_export.api._ranges import remote_zip_image_sizes

        link = self.signed_media_link(dataset_id)

        def fetch(byte_range: str) -> tuple[int, bytes]:
            # pre-signed: no token to the storage host; 206 for a range, 200 for a whole body
            response = self.retry.call(
                lambda: self._send_once(
                    "GET", link, auth=False, ok=(200, 206), headers={"Range": byte_range}
                ),
                what="range request",
            )
            return response.status_code, response.content

        return remote_zip_image_sizes(fetch, workers=2 * self.max_concurrency, progress=progress)

    # -- labelling profiles -------------------------------------------------------------------

    def list_profiles(self) -> list[dict[str, Any]]:
        """Labelling profiles: ``GET /clients/{client_id}/labelling_profiles``.

        Examples
        --------
        >>> [p["profile_id"] for p in client.list_profiles()]  # doctest: +SKIP
        """
        body = self._json_object("GET", f"clients/{self._cid()}/labelling_profiles")
        profiles = body.get("profiles")
        if not isinstance(profiles, list):
            raise PayloadError("labelling_profiles: the answer has no 'profiles' list")
        return profiles

    def get_profile(self, profile_id: str) -> dict[str, Any]:
        """One labelling profile: ``GET /labelling_profiles/{profile_id}``.

        Examples
        --------
        >>> client.get_profile("prof1")["features"].keys()  # doctest: +SKIP
        """
        return self._json_object("GET", f"labelling_profiles/{quote(profile_id, safe='')}")

    def create_profile(self, profile: Mapping[str, Any]) -> str:
        """Create a labelling profile; returns its ``profile_id``.

        Parameters
        ----------
        profile : mapping
            ``profile_name``, ``features`` (label type → ``{"label_category_ids": [...],
            "attributes": {...}}``), optionally ``instructions``, ``pipeline_spec``,
            ``preferences``, ``notification_url``.

        Examples
        --------
        >>> client.create_profile({"profile_name": "cars",
        ...     "features": {"3d_bbox": {"label_category_ids": ["car"], "attributes": {}}}})  # doctest: +SKIP
        'prof_123'
        """
        if not profile.get("profile_name"):
            raise ValueError("a labelling profile needs a 'profile_name'")
        body = self._json_object(
            "POST", f"clients/{self._cid()}/labelling_profiles", json_body=dict(profile)
        )
        profile_id = body.get("profile_id")
        if not profile_id:
            raise PayloadError("create profile: the answer has no 'profile_id'")
        return str(profile_id)

    # -- snapshots ----------------------------------------------------------------------------

    def pull(self, dataset_id: str, dest: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Save everything an export needs into a snapshot folder; see :func:`pull`.

        Examples
        --------
        >>> with Client() as client:  # doctest: +SKIP
        ...     print(client.pull("DATASET_ID", "snapshots/DATASET_ID").summary())
        """
        from deepen_export.api._pull import pull

        return pull(self, dataset_id, dest, **kwargs)

    def pull_many(
        self, dataset_ids: Iterable[str], dest_root: str | os.PathLike[str], **kwargs: Any
    ) -> Any:
        """Pull several datasets into ``dest_root/<dataset_id>/``; see :func:`pull_many`.

        Examples
        --------
        >>> client.pull_many(["ds1", "ds2"], "snapshots")  # doctest: +SKIP
        """
        from deepen_export.api._pull import pull_many

        return pull_many(self, dataset_ids, dest_root, **kwargs)

    def _map(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        if self.max_concurrency == 1 or len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="deepen") as pool:
            return list(pool.map(fn, items))

    # -- labels in, tasks, scopes (the write side of the loop; bodies in _labels_push) -----------

    def post_labels(
        self, dataset_id: str, labels: Sequence[Mapping[str, Any]], *, label_set: str = "default"
    ) -> Any:
        """Import labels: ``POST /datasets/{id}/labels?labelSetId=...`` with ``{"type": "json"}``.

        Not idempotent, so it is retried only when the server surely did nothing (429, a
        connection that never opened); any other failure is raised at once.

        Examples
        --------
        >>> client.post_labels(ds_id, [{"file_id": "a.png", "label_id": "car:1",
        ...     "label_type": "box", "label_category_id": "car", "box": [1, 2, 3, 4]}],
        ...     label_set="predictions")  # doctest: +SKIP
        """
        from deepen_export.api._labels_push import labels_body

        return self._json(
            "POST",
            f"datasets/{quote(dataset_id, safe=':')}/labels",
            params={"labelSetId": label_set},
            json_body=labels_body(labels),
        )

    def mark_labelling_done(self, dataset_id: str) -> Any:
        """Mark the dataset's labelling done: ``POST /datasets/{id}/mark_labelling_done``.

        Examples
        --------
        >>> client.mark_labelling_done(ds_id)  # doctest: +SKIP
        """
        return self._json("POST", f"datasets/{quote(dataset_id, safe=':')}/mark_labelling_done")

    def list_tasks(self, dataset_id: str) -> list[dict[str, Any]]:
        """The dataset's tasks: ``GET /datasets/{id}/tasks`` → the ``tasks`` list.

        Examples
        --------
        >>> [t.get("task_id") for t in client.list_tasks(ds_id)]  # doctest: +SKIP
        """
        from deepen_export.api._labels_push import tasks_of

        path = f"datasets/{quote(dataset_id, safe=':')}/tasks"
        return tasks_of(self._json("GET", path), "tasks")

    def user_tasks(self, email: str) -> dict[str, list[dict[str, Any]]]:
        """A user's tasks: ``GET /clients/{id}/user_tasks?email=`` → file and label tasks.

        Examples
        --------
        >>> client.user_tasks("ann@example.com")["file_tasks"]  # doctest: +SKIP
        """
        from deepen_export.api._labels_push import user_tasks_of

        body = self._json("GET", f"clients/{self._cid()}/user_tasks", params={"email": email})
        return user_tasks_of(body, "user_tasks")

    def set_user_scopes(
        self,
        dataset_id: str,
        user_scopes: Any = None,
        user_group_scopes: Any = None,
    ) -> Any:
        """Give users or groups scopes on a dataset: ``POST /datasets/{id}/user_scopes``.

        Parameters
        ----------
        user_scopes : mapping or list, optional
            ``{"ann@example.com": ["labeller"]}`` or ``[{"email": ..., "scopes": [...]}]``.
        user_group_scopes : mapping or list, optional
            The same keyed by ``user_group_id``.

        Examples
        --------
        >>> client.set_user_scopes(ds_id, {"ann@example.com": ["labeller"]})  # doctest: +SKIP
        """
        from deepen_export.api._labels_push import scopes

        body = {
            "user_scopes": scopes(user_scopes, "email"),
            "user_group_scopes": scopes(user_group_scopes, "user_group_id"),
        }
        if not body["user_scopes"] and not body["user_group_scopes"]:
            raise ValueError("give user_scopes or user_group_scopes")
        # setting the same scopes twice leaves the same state: safe to retry
        return self._json(
            "POST",
            f"datasets/{quote(dataset_id, safe=':')}/user_scopes",
            json_body=body,
            idempotent=True,
        )


class _BoundedStream(httpx.SyncByteStream):
    """A response body that stops when it falls below the download limits (see DownloadLimits).

    Every body goes through it, JSON answers as well as streamed downloads, so a server that
    trickles any answer fails in bounded time.
    """

    def __init__(self, inner: Any, limits: DownloadLimits, request: httpx.Request) -> None:
        self._inner = inner
        self._limits = limits
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        start = time.monotonic()
        done = 0
        for chunk in self._inner:
            done += len(chunk)
            why = self._limits.check(time.monotonic() - start, done)
            if why is not None:
                where = f"{self._request.method} {safe_url(self._request.url, keep_query=False)}"
                raise DownloadTooSlowError(
                    f"{where}: download stopped: it {why}; retry later, or raise "
                    "DEEPEN_DOWNLOAD_MIN_RATE / DEEPEN_DOWNLOAD_DEADLINE "
                    "(Client(download_limits=...)) for a slow link",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        if hasattr(self._inner, "close"):
            self._inner.close()


def _retry_unless_too_slow(exc: APIError) -> bool:
    # Starting a too-slow transfer over would only multiply the wait.
    return not isinstance(exc, DownloadTooSlowError)


def _not_acted_on(exc: APIError) -> bool:
    """Whether a failed non-idempotent request surely did nothing, so repeating it is safe.

    A 429 was refused before any work; a connection that never opened sent nothing. A 5xx, a
    timeout or a drop after sending may have created the dataset or profile already.
    """
    if isinstance(exc, RateLimitedError):
        return True
    return isinstance(exc, TransportError) and isinstance(
        exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout
    )


def upload_name(resumable_upload_url: str, default: str = "") -> str:
    """The object name of a resumable upload: its ``name`` query parameter or last path segment.

    Examples
    --------
    >>> upload_name("https://storage.googleapis.com/upload/storage/v1/b/bkt/o?uploadType=resumable&name=cl%2Fds%2Fdata.zip&upload_id=x")
    'data.zip'
    """
    parts = urlsplit(resumable_upload_url)
    names = parse_qs(parts.query).get("name")
    name = names[0] if names else parts.path.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit("/", 1)[-1] or default


def _user_agent() -> str:
    from deepen_export import __version__

    return f"deepen-export/{__version__} httpx/{httpx.__version__}"
