"""When a failed request may be tried again, and how long to wait: pure functions and value objects.

After stripe-python: the retry decision and the sleep time are two pure functions, so the sync client,
the async triggers and the tests share them instead of copies. No I/O and no third-party import here.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
# Statuses after which a POST cannot have been applied: the server refused it before acting.
POST_SAFE_STATUSES = frozenset({429, 503})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; one per hook, overridable per connection or argument."""

    max_retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    jitter: float = 0.25  # +/- this fraction of the computed delay


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts in seconds: no request is ever sent without both."""

    connect: float = 10.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header given as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
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
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retryable(
    method: str, *, status: int | None = None, sent: bool = True, replay_safe: bool = False
) -> bool:
    """Decide whether a failed attempt may be repeated.

    ``status`` is the HTTP status (None when no answer came); ``sent`` is False only when the connection
    was never established. Idempotent methods retry on any connection failure, 429 and 5xx. A POST retries
    only when it cannot have been applied (not sent, 429, 503), unless the endpoint is ``replay_safe``
    (the API reports a replayed create as a duplicate, which the hook treats as already done).
    """
    if status is not None and status not in RETRY_STATUSES:
        return False
    if method.upper() in IDEMPOTENT_METHODS or replay_safe:
        return True
    if status is None:
        return not sent
    return status in POST_SAFE_STATUSES


def backoff_delay(
    attempt: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the server's hint, else capped doubling."""
    if retry_after is not None:
        return min(retry_after, policy.retry_after_max)
    base = min(policy.backoff_initial * (2 ** (attempt - 1)), policy.backoff_max)
    return max(0.0, base * (1 + policy.jitter * (2 * rand() - 1)))
