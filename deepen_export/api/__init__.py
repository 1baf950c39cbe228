"""Client for Deepen AI's REST API v2: datasets, upload, status, files, labels, snapshots.

:class:`Client` is a thin layer over httpx; it returns the server's JSON as dicts (and paint
labels as bytes) and knows nothing of export formats. :func:`pull` saves what an export needs
into a snapshot folder that :mod:`deepen_export.parse` reads offline.

Errors
    Every failure is a :class:`~deepen_export.errors.DeepenExportError`; HTTP failures are
    :class:`~deepen_export.errors.APIError` subclasses chosen by status code at one choke point
    and keep ``.request`` (its Authorization header blanked) and ``.response``::

        401, 403          AuthenticationError   check DEEPEN_API_TOKEN / DEEPEN_CLIENT_ID
        404               NotFoundError         check the id
        400, 409, 422...  RequestRejectedError  the request as made was refused
        429               RateLimitedError      .retry_after from Retry-After (seconds or date)
        5xx               ServerError
        no answer         TransportError        refused, dropped, timed out, body cut short

    A resumable upload that cannot go on raises :class:`~deepen_export.errors.UploadError`; an
    answer without the documented shape raises :class:`~deepen_export.errors.PayloadError`.
    Catch ``APIError`` for "the API failed", a subclass for one cause::

        try:
            client.pull(dataset_id, "snap")
        except NotFoundError:
            ...

Retries
    429, 5xx and transport failures are retried with exponential backoff (0.5 s doubling up to
    30 s) plus up to 1 s of random jitter, at least the server's ``Retry-After``; at most
    ``max_retries`` (5) retries and none starting after ``max_retry_time`` (300 s). Other
    errors are never retried. Requests that create something (POST create dataset, create
    profile, process upload) are repeated only when the server surely did nothing (a 429, or a
    connection that never opened), so a retry cannot create a second dataset. A download that
    breaks mid-body starts over; an upload resumes from the last byte the storage server
    confirms, and its bounds apply per streak of failures. Pass ``retry=RetryPolicy(sleep=...)`` to
    change or observe the waits.

Security
    The token is sent only to the API host as ``Authorization: Bearer``; never to the signed
    storage URLs (upload sessions, media links), and never shown in reprs, logs, errors or
    snapshots.

Example
-------
>>> from deepen_export.api import Client
>>> with Client(client_id="acme", token="secret") as client:  # doctest: +SKIP
...     result = client.pull("DATASET_ID", "snapshots/DATASET_ID")
...     print(result.summary())
"""

from __future__ import annotations

from deepen_export.api._client import DEFAULT_BASE_URL, Client, PaintLabels, upload_name
from deepen_export.api._errors import parse_retry_after
from deepen_export.api._pull import (
    SNAPSHOT_VERSION,
    LabelChanges,
    PullResult,
    diff_labels,
    label_index,
    pull,
    pull_many,
)
from deepen_export.api._retry import RetryPolicy
from deepen_export.api._status import ProcessingStatus
from deepen_export.api._upload import CHUNK_QUANTUM, resumable_upload

__all__ = [
    "CHUNK_QUANTUM",
    "DEFAULT_BASE_URL",
    "SNAPSHOT_VERSION",
    "Client",
    "LabelChanges",
    "PaintLabels",
    "ProcessingStatus",
    "PullResult",
    "RetryPolicy",
    "diff_labels",
    "label_index",
    "parse_retry_after",
    "pull",
    "pull_many",
    "resumable_upload",
    "upload_name",
]
