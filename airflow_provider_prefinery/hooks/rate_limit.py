"""Client-side rate limiting: the :class:`RateLimiter` seam the REST client calls, and its in-process
implementation (:class:`TokenBucket`, shared per scope by :func:`shared_bucket`).

The client only ever calls ``acquire`` before a request and ``pause`` after a 429, so another limiter
(one whose budget is shared across processes) slots in without touching the client.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class RateLimiter(Protocol):
    """What the REST client needs of a limiter: wait for a slot, and hold everyone after a 429."""

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until the caller may send; return the seconds waited."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (the server said it is over its limit)."""
        ...


def key_fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a key, to scope shared rate limiters without holding the key."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class TokenBucket:
    """A thread-safe rate limiter that never lets more than ``limit`` requests into any ``period``.

    A burst of ``capacity`` is allowed, and the refill rate is lowered by that burst, so even a server
    counting in a sliding window never sees more than ``limit``. Each caller reserves its own slot
    (virtual scheduling, as in GCRA) and sleeps once until it, so waiters never race for the same token.
    ``pause()`` lets a 429 hold every thread, including those already asleep on a reservation.
    """

    def __init__(
        self,
        limit: float,
        period: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("a rate limit needs a positive limit and period")
        self.limit = limit
        self.period = period
        # ``burst=1`` paces evenly at (limit - 1) per period: the most a batch can sustain.
        default = max(1.0, min(float(limit) / 10, 10.0)) if limit >= 2 else 1.0
        self.capacity = default if burst is None else max(1.0, min(float(burst), float(limit)))
        self.rate = max(limit - self.capacity, limit / 2) / period
        self._interval = 1.0 / self.rate
        self._clock = clock
        self._tat = clock()  # theoretical arrival time of the next request at full pace
        self._paused_until = 0.0
        self._epoch = 0  # bumped by pause(): reservations made before it are void
        self._lock = threading.Lock()

    def _reserve(self) -> tuple[float, int]:
        """Reserve the earliest free slot; return how long to wait for it and the reservation's epoch."""
        with self._lock:
            now = self._clock()
            start = max(now, self._paused_until, self._tat - (self.capacity - 1) * self._interval)
            self._tat = max(self._tat, start) + self._interval
            return start - now, self._epoch

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until this caller's slot comes; return the seconds waited."""
        waited = 0.0
        while True:
            delay, epoch = self._reserve()
            if delay <= 0:
                return waited
            sleep(delay)
            waited += delay
            with self._lock:
                if epoch == self._epoch:
                    return waited

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a 429's Retry-After) and drop the saved burst."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tat = self._paused_until + self.capacity * self._interval
            self._epoch += 1


_BUCKETS: dict[tuple[Any, ...], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(
    scope: tuple[Any, ...], limit: float, period: float, *, burst: float | None = None
) -> TokenBucket:
    """Return the process-wide bucket for ``scope``, so every hook on one key and project shares it."""
    key = (*scope, float(limit), float(period), burst)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = TokenBucket(limit, period, burst=burst)
        return bucket
