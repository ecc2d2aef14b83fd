"""Which client-side rate budget a Prefinery call counts against, and the limiter that enforces it.

The documented LIST limits (:data:`RATE_LIMITS`) count per key, LIST users per key and project. Writes
have no published limit: they are limited only when ``write_rate_limit`` is set, and then paced evenly.
Every hook of one key on one origin in this process shares one limiter per budget.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.hooks.endpoint import Endpoint
from airflow_provider_prefinery.hooks.prefinery_endpoints import PER_PROJECT_LIMITS, RATE_LIMITS
from airflow_provider_prefinery.hooks.rate_limit import RateLimiter, shared_bucket

WRITE = "write"  # the ``limit`` of every write row in the endpoint table


def prefinery_limiter(
    endpoint: Endpoint,
    scope: tuple[Any, ...],
    beta_id: int | None,
    *,
    write_rate_limit: float | None,
    scale: float,
) -> RateLimiter | None:
    """The limiter one call of ``endpoint`` waits on, or None when it counts against no budget.

    :param scope: who shares the budget (service, key fingerprint, origin); the budget's name is added,
        and the project for per-project budgets.
    :param write_rate_limit: requests/s for writes, None or 0 for no client-side write limit.
    :param scale: the factor on every limit (for sandboxes and benchmarks).
    """
    burst = None
    if endpoint.limit == WRITE:
        if not write_rate_limit:
            return None
        # Writes come in batches: pace them evenly (no burst) for the highest sustained rate.
        limit, period, burst = float(write_rate_limit) * scale, 1.0, 1.0
    elif endpoint.limit in RATE_LIMITS:
        limit, period = RATE_LIMITS[endpoint.limit]
        limit *= scale
    else:
        return None
    key: tuple[Any, ...] = (*scope, endpoint.limit)
    if endpoint.limit in PER_PROJECT_LIMITS:
        key = (*key, beta_id)
    return shared_bucket(key, limit, period, burst=burst)
