"""What the sandbox knows about each emulated endpoint: its API, class, rate-limit group and permission.

Each API's ``routes`` module declares its table as a list of :class:`Endpoint`; ``app.py`` registers them
and ``faults.py`` reads the same rows to pick latency, limits and faults. One row per endpoint, in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["prefinery", "mailchimp", "piggy"]
Kind = Literal["list", "read", "write", "auth"]

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One emulated route. ``name`` is unique across APIs' tables; ``group`` shares a rate-limit bucket."""

    api: Api
    name: str
    method: str
    path: str
    kind: Kind
    handler: Handler
    permission: str | None = None
    group: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """Selectors a behaviour rule may use for this endpoint, most specific first."""
        names = (self.name, self.group) if self.group else (self.name,)
        return (*names, self.kind, "*")
