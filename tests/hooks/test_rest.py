"""The REST core's pure rules (retry decision, backoff, Retry-After), rate limiter and bounded map."""

from __future__ import annotations

import email.utils
import socket
import threading
import time

import pytest
import requests

from airflow_provider_prefinery.exceptions import PrefineryConnectionError
from airflow_provider_prefinery.hooks.rest import (
    RestClient,
    RetryPolicy,
    Timeouts,
    TokenBucket,
    backoff_delay,
    bounded_map,
    is_retryable,
    parse_retry_after,
    quote_id,
)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_idempotent_methods_retry_on_every_transient_failure(method: str, status: int | None) -> None:
    assert is_retryable(method, status=status, sent=True)


@pytest.mark.parametrize(
    ("status", "sent", "expected"),
    [
        (None, False, True),  # connection never established: cannot have been applied
        (None, True, False),  # read timeout / dropped: may have been applied
        (429, True, True),
        (503, True, True),
        (500, True, False),
        (502, True, False),
        (504, True, False),
    ],
)
def test_post_retries_only_when_it_cannot_have_been_applied(
    status: int | None, sent: bool, expected: bool
) -> None:
    assert is_retryable("POST", status=status, sent=sent) is expected


def test_replay_safe_post_retries_after_an_ambiguous_failure() -> None:
    assert is_retryable("POST", status=500, replay_safe=True)
    assert is_retryable("POST", status=None, sent=True, replay_safe=True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    assert not is_retryable("GET", status=status)
    assert not is_retryable("POST", status=status, replay_safe=True)


def test_backoff_doubles_from_half_a_second_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0, jitter=0.0)
    assert [backoff_delay(n, policy) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_backoff_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(backoff_initial=1.0, jitter=0.25)
    assert backoff_delay(1, policy, rand=lambda: 0.0) == pytest.approx(0.75)
    assert backoff_delay(1, policy, rand=lambda: 1.0) == pytest.approx(1.25)


def test_retry_after_overrides_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(retry_after_max=10.0)
    assert backoff_delay(1, policy, retry_after=3.0) == 3.0
    assert backoff_delay(1, policy, retry_after=600.0) == 10.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(
        30, abs=1
    )
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_ids_are_quoted_so_they_cannot_escape_their_path_segment() -> None:
    assert quote_id("../betas/1") == "..%2Fbetas%2F1"
    assert quote_id(12) == "12"


def test_token_bucket_never_admits_more_than_the_limit_in_any_window() -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    bucket = TokenBucket(60, 60, clock=lambda: clock[0])
    stamps = []
    for _ in range(300):
        bucket.acquire(sleep)
        stamps.append(clock[0])
    for i, start in enumerate(stamps):
        in_window = sum(1 for t in stamps[i:] if t < start + 60)
        assert in_window <= 60
    # ...and it is not needlessly slow: 300 requests take less than 6 minutes of simulated time.
    assert stamps[-1] < 6 * 60


def test_token_bucket_without_burst_paces_at_limit_minus_one_and_stays_under_the_limit() -> None:
    clock = [0.0]
    bucket = TokenBucket(20, 1, burst=1, clock=lambda: clock[0])
    stamps = []
    for _ in range(400):
        bucket.acquire(lambda s: clock.__setitem__(0, clock[0] + s))
        stamps.append(clock[0])
    assert all(sum(1 for t in stamps[i:] if t < start + 1) <= 20 for i, start in enumerate(stamps))
    assert 399 / stamps[-1] == pytest.approx(19, rel=1e-6)  # 95 % of the limit; the default burst gives 90 %


def test_token_bucket_pause_holds_every_caller() -> None:
    clock = [0.0]
    bucket = TokenBucket(100, 1, clock=lambda: clock[0])
    bucket.pause(5.0)
    waited = bucket.acquire(lambda s: clock.__setitem__(0, clock[0] + s))
    assert waited >= 5.0


def test_token_bucket_is_thread_safe() -> None:
    bucket = TokenBucket(1000, 1)
    taken = []

    def worker() -> None:
        for _ in range(50):
            bucket.acquire()
            taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 400


def test_bounded_map_runs_every_item_keeps_failures_and_caps_concurrency() -> None:
    live = [0]
    peak = [0]
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002)
        with lock:
            live[0] -= 1
        if n % 7 == 0:
            raise ValueError(n)
        return n * 2

    results = {idx: (value, err) for idx, _item, value, err in bounded_map(work, range(100), max_workers=3)}
    assert sorted(results) == list(range(100))
    assert all(isinstance(err, ValueError) for idx, (_v, err) in results.items() if idx % 7 == 0)
    assert all(value == idx * 2 for idx, (value, err) in results.items() if err is None)
    assert peak[0] <= 3


def test_bounded_map_pulls_input_lazily() -> None:
    pulled = [0]

    def source():
        for i in range(10_000):
            pulled[0] += 1
            yield i

    gen = bounded_map(lambda n: n, source(), max_workers=2)
    next(gen)
    assert pulled[0] <= 8
    gen.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_retried_even_for_a_post_and_reported_as_not_applied() -> None:
    sleeps: list[float] = []
    client = RestClient(
        service="Prefinery",
        base_url=f"http://127.0.0.1:{_closed_port()}/api/v2/",
        auth=None,
        retry=RetryPolicy(max_retries=2),
        timeouts=Timeouts(connect=1, read=1),
        sleep=sleeps.append,
    )
    with pytest.raises(PrefineryConnectionError) as info:
        client.request("POST", "betas/1/points.json", json={"quantity": 1})
    assert len(sleeps) == 2  # two retries: the request never left
    assert info.value.outcome_unknown is False
    assert client.stats == {"requests": 3, "retries": 2}


def test_user_agent_names_provider_and_airflow() -> None:
    client = RestClient(service="Prefinery", base_url="http://x", auth=None)
    agent = client.session.headers["User-Agent"]
    assert agent.startswith("airflow-provider-prefinery/")
    assert "apache-airflow/" in agent
    assert isinstance(client.session, requests.Session)


def test_each_waiter_sleeps_once_until_its_own_slot() -> None:
    """Reservations: no thundering herd of waiters waking for the same token."""
    bucket = TokenBucket(50, 1, burst=1)
    sleeps: list[float] = []
    lock = threading.Lock()

    def recording_sleep(seconds: float) -> None:
        with lock:
            sleeps.append(seconds)
        time.sleep(seconds)

    threads = [threading.Thread(target=bucket.acquire, args=(recording_sleep,)) for _ in range(20)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sleeps) <= 19  # the first goes at once; every other caller sleeps exactly once
    assert time.monotonic() - start >= 19 / 49 * 0.9  # and they are spaced at (limit - 1) per second


def test_a_pause_voids_reservations_already_sleeping() -> None:
    clock = [0.0]
    bucket = TokenBucket(2, 1, burst=1, clock=lambda: clock[0])
    bucket.acquire(lambda s: None)  # the one burst token

    def sleep_while_a_429_arrives(seconds: float) -> None:
        if clock[0] == 0.0:
            bucket.pause(10.0)  # another thread saw a 429 while this one slept on its reservation
        clock[0] += seconds

    waited = bucket.acquire(sleep_while_a_429_arrives)
    assert clock[0] >= 10.0
    assert waited >= 10.0


def test_ensure_pool_grows_the_pool_only_before_the_session_exists() -> None:
    client = RestClient(service="Prefinery", base_url="http://x", auth=None, pool_size=16)
    client.ensure_pool(8)
    assert client.pool_size == 16  # never shrinks
    client.ensure_pool(24)
    assert client.pool_size == 24
    assert client.session.get_adapter("http://x")._pool_maxsize == 24
    client.ensure_pool(40)  # too late: the pool is built
    assert client.pool_size == 24
