"""The poll-interval rule and the 429 back-off: pure functions, no server."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_prefinery.exceptions import PrefineryRateLimitError
from airflow_provider_prefinery.hooks.prefinery import RATE_LIMITS
from airflow_provider_prefinery.polling.pacing import (
    RATE_LIMITED_MAX_WAIT,
    SENSORS_PER_LIMIT,
    Pacer,
    clamp_interval,
    min_poll_interval,
)


def rate_limited(retry_after: float | None = None) -> PrefineryRateLimitError:
    return PrefineryRateLimitError("slow down", status=429, retry_after=retry_after)


@pytest.mark.parametrize("action", ["list_users", "list_rewards", "list_suppressions"])
def test_ten_sensors_at_the_floor_send_exactly_the_documented_limit(action: str) -> None:
    limit, period = RATE_LIMITS["list_rewards" if action == "list_rewards" else "list_users"]
    floor = min_poll_interval(action)
    assert floor == 10.0
    assert SENSORS_PER_LIMIT * period / floor == limit


def test_the_floor_follows_the_connections_rate_limit_scale() -> None:
    assert min_poll_interval("list_users", scale=100) == pytest.approx(0.1)


def test_an_interval_below_the_floor_is_raised_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.pacing")
    with caplog.at_level(logging.WARNING, logger="test.pacing"):
        assert clamp_interval(2, 10, logger) == 10
        assert clamp_interval(60, 10, logger) == 60
    assert len(caplog.records) == 1
    assert "below the 10 s" in caplog.records[0].getMessage()


def test_a_poll_that_read_several_pages_waits_the_floor_per_request() -> None:
    pacer = Pacer(interval=15, floor=10)
    assert pacer.after_poll(1) == 15
    assert pacer.after_poll(4) == 40


def test_429s_in_a_row_double_the_wait_and_a_healthy_poll_resets_it() -> None:
    pacer = Pacer(interval=60, floor=10)
    assert [pacer.after_rate_limit(rate_limited()) for _ in range(3)] == [120, 240, 480]
    assert pacer.after_poll(1) == 60
    assert pacer.after_rate_limit(rate_limited()) == 120


def test_429_waits_are_capped_but_honour_a_longer_retry_after() -> None:
    pacer = Pacer(interval=60, floor=10)
    waits = [pacer.after_rate_limit(rate_limited()) for _ in range(10)]
    assert max(waits) == RATE_LIMITED_MAX_WAIT
    assert Pacer(interval=10, floor=10).after_rate_limit(rate_limited(retry_after=300)) == 300
