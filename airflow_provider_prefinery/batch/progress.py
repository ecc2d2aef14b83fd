"""Progress lines for a long batch: counts as records finish, a line every ``interval`` seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol


class LineLogger(Protocol):
    """Where batch lines go: a ``logging.Logger``, or an Airflow task's ``self.log``."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def error(self, msg: str, /, *args: Any) -> Any: ...


@dataclass
class Progress:
    """Counts finished records and logs a progress line every ``interval`` seconds from its own thread.

    The ticker thread makes the "at least every 10 s" promise hold even while every worker waits on the
    rate limiter or a slow answer. Use it as a context manager around the batch.

    :param total: how many records the batch holds (None when streamed: no ETA then).
    :param label: names the batch in each line.
    :param logger: where the lines go.
    :param interval: seconds between lines (0 disables the ticker).
    :param request_count: HTTP requests made so far, for requests/s (None: not shown).
    :param clock: the time source (monotonic; replaced in tests).
    """

    total: int | None
    _: KW_ONLY
    label: str
    logger: LineLogger
    interval: float = 10.0
    request_count: Callable[[], int | None] | None = None
    clock: Callable[[], float] = time.monotonic
    done: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)
    _start: float = field(default=0.0, init=False, repr=False)
    _requests_at_start: int | None = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._requests_at_start = self._requests()

    def _requests(self) -> int | None:
        try:
            return self.request_count() if self.request_count else None
        except Exception:  # a stats reader must never break the batch
            return None

    def record(self, failed: bool) -> None:
        """Count one finished record (called from the consuming thread only)."""
        self.done += 1
        self.failed += int(failed)

    def line(self) -> str:
        """The progress line: done/total, failures, records/s and requests/s, ETA."""
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = self.done / elapsed
        total = "?" if self.total is None else f"{self.total:,}"
        parts = [
            f"{self.label}: {self.done:,}/{total} done",
            f"{self.failed:,} failed",
            f"{rate:.1f} records/s",
        ]
        now_requests = self._requests()
        if now_requests is not None and self._requests_at_start is not None:
            parts.append(f"{(now_requests - self._requests_at_start) / elapsed:.1f} requests/s")
        if self.total is not None and rate > 0 and self.done < self.total:
            parts.append(f"ETA {(self.total - self.done) / rate:.0f} s")
        parts.append(f"elapsed {elapsed:.0f} s")
        return ", ".join(parts)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.logger.info("%s", self.line())

    def __enter__(self) -> Progress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._tick, name="prefinery-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def elapsed(self) -> float:
        """Seconds since the batch started."""
        return self.clock() - self._start
