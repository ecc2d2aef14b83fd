"""How often a sensor or trigger may poll, and how long it waits after a 429.

The rule: one poller may use a 1/:data:`SENSORS_PER_LIMIT` share of the documented LIST limit of the
endpoint it polls, so ten sensors on one project together stay at or under that limit. For LIST users and
LIST rewards (60 per minute) that is one request per 10 s; a poll that needed several pages waits that much
longer. LIST suppressions has no published limit, so it is paced like LIST users. A 429 that outlives the
REST core's retries doubles the wait (and honours ``Retry-After``) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_prefinery.exceptions import PrefineryRateLimitError
from airflow_provider_prefinery.hooks.prefinery import ENDPOINTS, RATE_LIMITS

SENSORS_PER_LIMIT = 10
"""How many sensors polling one project must fit under the documented limit together."""
UNPUBLISHED_LIMIT_LIKE = "list_users"
"""Endpoints without a published limit are paced like this one (the strictest per-minute LIST limit)."""
RATE_LIMITED_MAX_WAIT = 15 * 60.0
"""The longest wait a run of 429s grows to (unless the poll interval, or Retry-After, is longer)."""


class WarningLogger(Protocol):
    """A task's or a trigger's ``self.log``: a stdlib logger, or Airflow's structlog one."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def min_poll_interval(action: str, scale: float = 1.0) -> float:
    """Seconds one poller must leave between requests to ``action``'s endpoint.

    The documented limit (:data:`RATE_LIMITS`, times the connection's ``rate_limit_scale``) is shared by
    :data:`SENSORS_PER_LIMIT` pollers: ``period * SENSORS_PER_LIMIT / limit``, e.g. 60 s * 10 / 60 = 10 s.
    """
    key = ENDPOINTS[action].limit
    limit, period = RATE_LIMITS[key if key in RATE_LIMITS else UNPUBLISHED_LIMIT_LIKE]
    return period * SENSORS_PER_LIMIT / (limit * scale)


def clamp_interval(interval: float, floor: float, logger: WarningLogger) -> float:
    """Raise a poll interval below ``floor`` to it, with a warning saying why."""
    if interval >= floor:
        return float(interval)
    logger.warning(
        "Poll interval %.3g s is below the %.3g s Prefinery's documented LIST limit allows one sensor "
        "(a 1/%d share, so %d sensors stay within the limit): polling every %.3g s instead.",
        interval, floor, SENSORS_PER_LIMIT, SENSORS_PER_LIMIT, floor,
    )  # fmt: skip
    return float(floor)


@dataclass
class Pacer:
    """The wait before the next poll: the interval, longer after a multi-page poll or a 429."""

    interval: float
    floor: float
    rate_limited: int = 0  # consecutive polls that ended in a 429

    @classmethod
    def for_endpoint(cls, action: str, interval: float, *, scale: float, logger: WarningLogger) -> Pacer:
        """Pace polls of ``action``'s endpoint at ``interval``, raised to the floor (with a warning)."""
        floor = min_poll_interval(action, scale)
        return cls(clamp_interval(interval, floor, logger), floor)

    def after_poll(self, requests: int) -> float:
        """Wait after a poll that sent ``requests`` requests: at least ``floor`` per request."""
        self.rate_limited = 0
        return max(self.interval, self.floor * max(1, requests))

    def after_rate_limit(self, error: PrefineryRateLimitError) -> float:
        """Wait after a 429 that outlived the core's retries: double per 429 in a row, capped."""
        self.rate_limited += 1
        grown = min(self.interval * 2.0**self.rate_limited, max(RATE_LIMITED_MAX_WAIT, self.interval))
        hint = min(error.retry_after or 0.0, RATE_LIMITED_MAX_WAIT)
        return max(grown, hint)
