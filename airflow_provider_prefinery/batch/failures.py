"""The one rule for how many failures a report lists and a log shows: the first 100, and counts for the rest.

A batch of 5,000 records that all fail must not produce a 1.5 MB XCom or 5,000 error lines, yet no failure may
hide among successes: each one is counted, the first :data:`MAX_LISTED_FAILURES` are listed (in the XCom and
in the log, one line each), and the report and the log say how many more there were. The batch engine and the
Mailchimp sync both keep their failures in a :class:`FailureList`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

MAX_LISTED_FAILURES = 100
"""Failures listed in a report (XCom) and logged one per line; the rest are counted."""


class FailureList:
    """The first :data:`MAX_LISTED_FAILURES` failure entries, and how many more there were.

    Thread-safe. ``add`` says whether the entry was listed, so the caller logs it only then; at the end
    :meth:`summary` gives the one line that counts the rest.

    :param limit: how many entries to list (default :data:`MAX_LISTED_FAILURES`).
    """

    def __init__(self, limit: int = MAX_LISTED_FAILURES) -> None:
        self.limit = limit
        self.entries: list[dict[str, Any]] = []
        self.not_listed = 0
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> bool:
        """Keep ``entry`` if fewer than ``limit`` are listed; True when it was (log it then)."""
        with self._lock:
            if len(self.entries) < self.limit:
                self.entries.append(entry)
                return True
            self.not_listed += 1
            return False

    def __len__(self) -> int:
        return len(self.entries) + self.not_listed

    def sorted(self, key: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
        """The listed entries ordered by ``key`` (e.g. the record's index)."""
        return sorted(self.entries, key=key)

    def summary(self, what: str = "failed record(s)") -> str | None:
        """One line counting the failures not listed (None when every one was)."""
        if not self.not_listed:
            return None
        return (
            f"{self.not_listed:,} more {what} not listed: the report and the log hold the first {self.limit} "
            f"of {len(self):,}"
        )
