"""Retry policy: exponential backoff with jitter, bounded in attempts and in total time.

A small loop rather than ``stamina.retry``: the wait is an injected callable, so tests record
the exact waits (and that ``Retry-After`` was honoured) without sleeping or patching globals,
and the resumable upload reuses the same backoff with its own per-streak bounds.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from deepen_export.errors import APIError, RateLimitedError, ServerError, TransportError

__all__ = ["RETRYABLE", "RetryPolicy"]

T = TypeVar("T")
log = logging.getLogger("deepen_export.api")

#: The errors worth another attempt; every other error is raised at once.
RETRYABLE: tuple[type[APIError], ...] = (RateLimitedError, ServerError, TransportError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry 429, 5xx and transport failures.

    Parameters
    ----------
    max_retries : int
        Retries after the first attempt (so at most ``max_retries + 1`` attempts).
    max_time : float
        Seconds from the first attempt after which no further retry starts.
    wait_initial, wait_max : float
        The first backoff, doubled on each retry up to ``wait_max``.
    jitter : float
        Up to this many seconds of random extra wait, so that clients spread out.
    sleep : callable
        Called with the seconds to wait; tests pass a recorder instead of :func:`time.sleep`.

    Examples
    --------
    >>> RetryPolicy(wait_initial=1.0, jitter=0.0).backoff(3)
    4.0
    """

    max_retries: int = 5
    max_time: float = 300.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    jitter: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def backoff(self, retry: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); honours ``Retry-After``."""
        delay = min(self.wait_max, self.wait_initial * 2 ** (retry - 1))
        delay += random.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def call(
        self,
        attempt: Callable[[], T],
        *,
        what: str = "request",
        retry_if: Callable[[APIError], bool] | None = None,
    ) -> T:
        """Run ``attempt`` until it succeeds or a non-retryable error or a bound is reached.

        ``retry_if`` narrows the retryable errors further (for requests that are not safe to
        repeat once the server may have acted on them).
        """
        start = time.monotonic()
        retry = 0
        while True:
            try:
                return attempt()
            except RETRYABLE as exc:
                retry += 1
                if retry > self.max_retries or (retry_if is not None and not retry_if(exc)):
                    raise
                delay = self.backoff(retry, exc)
                if time.monotonic() - start + delay > self.max_time:
                    raise
                log.warning(
                    "%s failed (%s); retry %d/%d in %.1f s",
                    what,
                    type(exc).__name__,
                    retry,
                    self.max_retries,
                    delay,
                )
                self.sleep(delay)
