"""The one place where HTTP statuses and httpx failures become :mod:`deepen_export.errors` classes."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from deepen_export.errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    TransportError,
)

__all__ = [
    "REDACTED",
    "DownloadTooSlowError",
    "error_for_response",
    "error_for_transport",
    "not_json_message",
    "parse_retry_after",
    "redact_request",
    "safe_url",
    "server_text",
]

REDACTED = "[redacted]"


class DownloadTooSlowError(TransportError):
    """A streamed download fell below the minimum throughput or passed its total deadline."""


def safe_url(url: httpx.URL | str, *, keep_query: bool = True) -> str:
    """The URL as it may appear in a message: no user info, no query for signed (foreign) URLs."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query if keep_query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_request(request: httpx.Request | None) -> None:
    """Blank the Authorization header of a request that has already been sent."""
    if request is not None and "authorization" in request.headers:
        request.headers["Authorization"] = f"Bearer {REDACTED}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Examples
    --------
    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def server_text(text: str, secret: str | None = None, *, limit: int = 200) -> str:
    """Text a server sent, fit for a message: the secret blanked first, then shortened.

    Redacting before cutting matters: a cut through the token would leave most of it behind,
    no longer equal to the secret and so no longer blanked. Whitespace runs become one space.

    Examples
    --------
    >>> server_text("bad token abcdef", "abcdef")
    'bad token [redacted]'
    >>> server_text("x" * 300, limit=10)
    'xxxxxxx...'
    """
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, REDACTED)
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text


def not_json_message(
    endpoint: str,
    head: bytes,
    size: int,
    content_type: str | None,
    secret: str | None = None,
    *,
    expected: str = "JSON",
) -> str:
    """The message for a success answer whose body is not the JSON (or ``expected``) promised.

    ``head`` is the start of the body; an HTML page (a proxy's, a login or maintenance page)
    is named as such, since it means the request did not reach the API.

    Examples
    --------
    >>> not_json_message("GET datasets/x/labels", b"<!DOCTYPE html><p>", 18, "text/html")
    "GET datasets/x/labels answered 18 bytes that are not JSON but an HTML page (content-type 'text/html', starting '<!DOCTYPE html><p>'): a proxy, login or maintenance page answered instead of the API; check DEEPEN_API_URL and the network, then retry"
    """
    text = head.decode("utf-8", "replace")
    lowered = text.lstrip().lower()
    html = lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or (
        content_type is not None and "html" in content_type.lower()
    )
    what = "but an HTML page" if html else "(cut short or malformed)"
    advice = (
        "a proxy, login or maintenance page answered instead of the API; check DEEPEN_API_URL "
        "and the network, then retry"
        if html
        else "the server sent a broken body; retry, and report it to Deepen if it persists"
    )
    shown_type = server_text(content_type or "none", secret, limit=60)
    return (
        f"{endpoint} answered {size} bytes that are not {expected} {what} (content-type "
        f"{shown_type!r}, starting {server_text(text, secret, limit=60)!r}): {advice}"
    )


def _detail(response: httpx.Response, secret: str | None) -> str:
    """A short server explanation, from a JSON error body when there is one."""
    try:
        text = response.text
    except (httpx.HTTPError, UnicodeDecodeError, RuntimeError):
        return ""
    text = text.strip()
    if not text:
        return ""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "error_message", "msg"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                text = str(value)
                break
    return f" ({server_text(text, secret)})"


def error_for_response(
    response: httpx.Response,
    *,
    secret: str | None = None,
    hint_404: str = "check the dataset, file or profile id and DEEPEN_CLIENT_ID",
) -> APIError:
    """Map a non-success response to the exception class chosen by its status code."""
    request = response.request
    redact_request(request)
    status = response.status_code
    where = f"{request.method} {safe_url(request.url, keep_query=_is_api(request))}"
    head = f"{where} returned {status} {response.reason_phrase}".rstrip()
    detail = _detail(response, secret)
    kwargs: dict[str, Any] = {"request": request, "response": response}
    if status in (401, 403):
        return AuthenticationError(
            f"{head}{detail}: check DEEPEN_API_TOKEN (a valid token with access to this "
            "client and dataset) and DEEPEN_CLIENT_ID",
            **kwargs,
        )
    if status == 404:
        return NotFoundError(f"{head}{detail}: {hint_404}", **kwargs)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = f"; the server asks to wait {retry_after:g} s" if retry_after is not None else ""
        return RateLimitedError(
            f"{head}{detail}: too many requests{wait}; retry later or lower --concurrency",
            retry_after=retry_after,
            **kwargs,
        )
    if 500 <= status < 600:
        return ServerError(
            f"{head}{detail}: the Deepen server failed; it was retried, try again later",
            **kwargs,
        )
    if 400 <= status < 500:
        return RequestRejectedError(
            f"{head}{detail}: the server refused the request; check the ids and parameters",
            **kwargs,
        )
    if 300 <= status < 400 and response.headers.get("Location"):
        target = safe_url(response.headers["Location"], keep_query=False)
        return RequestRejectedError(
            f"{head}: redirected to {target}; set DEEPEN_API_URL to the address the API lives at "
            "(the token is not sent on to a redirect)",
            **kwargs,
        )
    return RequestRejectedError(f"{head}{detail}: unexpected status from the server", **kwargs)


def _is_api(request: httpx.Request) -> bool:
    # Signed storage URLs carry their credential in the query string; never print it.
    query = str(request.url.query, "ascii", "replace") if request.url.query else ""
    return not any(k in query.lower() for k in ("signature", "upload_id", "x-goog", "token"))


def error_for_transport(exc: httpx.TransportError, request: httpx.Request | None) -> TransportError:
    """Map an httpx transport failure (connect, timeout, dropped, truncated) to TransportError."""
    redact_request(request)
    where = (
        f"{request.method} {safe_url(request.url, keep_query=_is_api(request))}"
        if request is not None
        else "request"
    )
    if isinstance(exc, httpx.TimeoutException):
        what = "timed out: the server is slow or unreachable; raise the timeout or retry later"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not connect: check DEEPEN_API_URL and the network"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = (
            "failed: the connection was dropped or the body was cut short; retry later "
            f"({type(exc).__name__})"
        )
    else:
        what = f"failed: network error ({type(exc).__name__}); check the network and retry"
    return TransportError(f"{where} {what}", request=request, response=None)
