"""Schedules: a status change after N reads of its resource, or after N seconds (what sensors wait on).

:class:`Schedules` only counts and decides when; what a due schedule does is ``PrefineryState``'s (it
reaches across users and rewards).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, get_args

Target = Literal["reward", "user", "new_reward"]
TARGETS: tuple[str, ...] = get_args(Target)


@dataclass
class Schedule:
    """A change of a ``user`` or ``reward`` (by ``id``), or a ``new_reward`` for ``email``."""

    target: Target
    status: str
    beta_id: int
    id: int | None = None
    email: str | None = None
    descriptor: str = "referral-bonus"
    after_reads: int | None = None
    due_at: float | None = None  # time.monotonic() deadline, see due_in
    reads: int = 0
    done: bool = False


def due_in(seconds: float) -> float:
    """A monotonic deadline ``seconds`` from now (for ``Schedule.due_at``)."""
    return time.monotonic() + max(0.0, seconds)


class Schedules:
    """The pending and done schedules of one sandbox; ``apply`` makes a due one happen."""

    def __init__(self, apply: Callable[[Schedule], None]) -> None:
        self.apply = apply
        self.items: list[Schedule] = []

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def clear(self) -> None:
        self.items = []

    def add(self, schedule: Schedule) -> Schedule:
        if schedule.target not in TARGETS:
            raise ValueError("target must be reward, user or new_reward")
        if schedule.after_reads is None and schedule.due_at is None:
            raise ValueError("give after_reads or after_seconds")
        self.items.append(schedule)
        return schedule

    def tick(self, resource: str, beta_id: int) -> None:
        """Count a read of ``resource`` and apply schedules that are due (before answering the read)."""
        if not self.items:
            return
        now = time.monotonic()
        for sch in self.items:
            if sch.done or sch.beta_id != beta_id:
                continue
            if sch.target.endswith(resource) and sch.after_reads is not None:
                sch.reads += 1
                if sch.reads > sch.after_reads:
                    self._fire(sch)
            elif sch.due_at is not None and now >= sch.due_at:
                self._fire(sch)

    def _fire(self, sch: Schedule) -> None:
        sch.done = True
        self.apply(sch)
