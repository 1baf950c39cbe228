"""Exceptions and warnings of deepen-export.

One root for every error the library raises on purpose, and one for its warnings::

    DeepenExportError
    ├── APIError                  (.request, .response; chosen by HTTP status code)
    │   ├── AuthenticationError   401, 403
    │   ├── NotFoundError         404
    │   ├── RequestRejectedError  400, 409, 422 and other 4xx
    │   ├── RateLimitedError      429 (.retry_after seconds, or None)
    │   ├── ServerError           5xx
    │   └── TransportError        connection refused or dropped, timeouts, truncated bodies
    ├── UploadError               a resumable upload that cannot go on
    ├── PayloadError              an API answer that does not have the documented shape
    ├── ParseError(ValueError)    a label file or body that cannot be read (.path)
    └── ConversionError           a label a format cannot hold, with on_unsupported="raise" (.format)

    LabelError(ValueError)        inconsistent in-memory label tables: defined by the model, which
                                  imports nothing of the project, so it is not a DeepenExportError

    DeepenExportWarning
    └── LossyConversionWarning    something was dropped or changed (with on_unsupported="warn")
"""

from __future__ import annotations

from typing import Any

from deepen_export.model import LabelError

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConversionError",
    "DeepenExportError",
    "DeepenExportWarning",
    "LabelError",
    "LossyConversionWarning",
    "NotFoundError",
    "ParseError",
    "PayloadError",
    "RateLimitedError",
    "RequestRejectedError",
    "ServerError",
    "TransportError",
    "UploadError",
]


class DeepenExportError(Exception):
    """Root of every error deepen-export raises on purpose."""


class APIError(DeepenExportError):
    """A call to the Deepen API failed; keeps the request and, when there was one, the response."""

    def __init__(self, message: str, *, request: Any = None, response: Any = None) -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class AuthenticationError(APIError):
    """401 or 403: the token is missing, wrong, expired, or lacks access."""


class NotFoundError(APIError):
    """404: the dataset, file or profile does not exist (or is not visible to this token)."""


class RequestRejectedError(APIError):
    """Another 4xx: the server refused the request as made."""


class RateLimitedError(APIError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        request: Any = None,
        response: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed; retried automatically before this is raised."""


class TransportError(APIError):
    """The connection failed, dropped, timed out, or the body was cut short."""


class UploadError(DeepenExportError):
    """A resumable upload could not be started or completed."""


class PayloadError(DeepenExportError):
    """The API answered with JSON that does not have the documented shape."""


class ParseError(DeepenExportError, ValueError):
    """A labels file, body or frames archive could not be read; ``path`` names it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ConversionError(DeepenExportError):
    """A format cannot hold some labels and the policy was ``on_unsupported="raise"``."""

    def __init__(self, message: str, *, format: str | None = None) -> None:
        super().__init__(message)
        self.format = format


class DeepenExportWarning(UserWarning):
    """Root of the warnings deepen-export emits."""


class LossyConversionWarning(DeepenExportWarning):
    """A conversion dropped or changed labels; the Report lists each one."""
