"""Timeouts everywhere: no request leaves without a connect and a read timeout, and a server that stops
answering mid-batch fails the task within the bound its connection configures, naming every unfinished
record (and, for a non-idempotent write, sending none of them twice)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_prefinery.batch import BatchFailedError, BatchFailedNoRetryError
from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
from airflow_provider_prefinery.hooks.piggy import PiggyHook
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCreatePointsOperator,
    PrefineryUpdateUserOperator,
)
from airflow_provider_prefinery.sandbox.seeds import (
    DEMO_AUTOMATION_UUID,
    PIGGY_CLIENT_ID,
    PIGGY_CLIENT_SECRET,
)
from airflow_provider_prefinery.sandbox.testing import run_sandbox
from airflow_provider_prefinery.sensors.prefinery import PrefineryUserSensor
from airflow_provider_prefinery.triggers.prefinery import PrefinerySensorTrigger
from tests.reliability.conftest import write_artifact
from tests.reliability.soak import RecordingTI

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------------------------------
# Every request carries (connect, read)
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Record ``(url, timeout)`` of every request any thread sends through requests' transport adapter,
    the one door every ``requests`` call (and the OAuth 401 resend) goes through."""
    calls: list[tuple[str, Any]] = []
    lock = threading.Lock()
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append((str(request.url), kwargs.get("timeout")))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", send)
    yield calls


def _api_calls(calls: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(url, timeout) for url, timeout in calls if "/_sandbox/" not in url]


def test_every_hook_request_carries_a_connect_and_a_read_timeout(
    sandbox: Any, sent: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.control.configure(scale=100)
    oauth = {"conn_type": "piggy", "host": sandbox.url}
    oauth["extra"] = {"client_id": PIGGY_CLIENT_ID, "client_secret": PIGGY_CLIENT_SECRET}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_PIGGY_OAUTH", json.dumps(oauth))
    prefinery, mailchimp = PrefineryHook(rate_limit_scale=100), MailchimpHook()
    piggy, piggy_oauth = PiggyHook(), PiggyHook("piggy_oauth")
    user = sandbox.control.users(status="active")[0]

    prefinery.get_project()
    list(itertools.islice(prefinery.list_users(), 30))  # two pages
    prefinery.create_user("timeouts@example.org")
    prefinery.checkin_user(email=user["email"])
    prefinery.create_points(user["email"], 1)
    assert prefinery.test_connection()[0] and mailchimp.test_connection()[0]
    list(itertools.islice(mailchimp.list_members(), 3))
    list(piggy.list_automations())
    list(piggy_oauth.list_automations())
    sandbox.control.seed("demo")  # the server forgets its tokens: the next call is refused once, resent
    contact = sandbox.control.piggy_contacts()[0]["uuid"]
    piggy_oauth.create_automation_run(contact, DEMO_AUTOMATION_UUID)
    PrefineryUserSensor(task_id="s", email=user["email"], poke_interval=10).poke({})
    trigger = PrefinerySensorTrigger(
        check="user", criteria={"email": user["email"]}, end_time=time.time() + 30, poll_interval=10
    )
    asyncio.run(_first_event(trigger))

    calls = _api_calls(sent)
    assert len(calls) >= 15
    assert sandbox.control.count(endpoint="oauth_token") == 2  # the refused token was exchanged again...
    assert sandbox.control.count(endpoint="create_automation_run") == 2  # ...and the run resent, once
    bad = [(url, t) for url, t in calls if not (isinstance(t, tuple) and len(t) == 2 and all(t))]
    assert not bad, bad
    assert all(t[0] > 0 and t[1] > 0 for _, t in calls)


async def _first_event(trigger: PrefinerySensorTrigger) -> Any:
    async for event in trigger.run():
        return event
    return None


# ---------------------------------------------------------------------------------------------------
# A server that stops answering mid-batch
# ---------------------------------------------------------------------------------------------------
READ, CONNECT, RETRIES, BACKOFF = 0.5, 0.5, 1, 0.05
CONCURRENCY = 4


def worst_case(records: int, *, retries: int) -> float:
    """The configured bound for a batch against a silent server: every record in a round of
    ``CONCURRENCY`` waits the connect and read timeouts on each attempt, plus the backoff between."""
    per_record = (retries + 1) * (CONNECT + READ) + sum(BACKOFF * 1.25 * 2**n for n in range(retries))
    return math.ceil(records / CONCURRENCY) * per_record


@pytest.fixture
def stoppable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A sandbox of our own (it will be frozen with SIGSTOP), behind ``prefinery_stoppable``."""
    with run_sandbox(seed="demo") as server:
        policy = {"read_timeout": READ, "connect_timeout": CONNECT}
        policy |= {"max_retries": RETRIES, "backoff_initial": BACKOFF}
        conn = {"conn_type": "prefinery", "password": server.api_key, "host": server.url}
        conn["extra"] = {"beta_id": server.beta_id, **policy}  # type: ignore[assignment]
        monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_STOPPABLE", json.dumps(conn))
        try:
            yield server
        finally:
            os.kill(server.process.pid, signal.SIGCONT)


def _freeze_after(server: Any, endpoint: str, answered: int, timeout: float = 20.0) -> float:
    """SIGSTOP the sandbox once it has answered ``answered`` requests to ``endpoint``; return when."""
    deadline = time.monotonic() + timeout
    while server.control.count(endpoint=endpoint) < answered:
        assert time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGSTOP)
    return time.monotonic()


def test_a_server_that_stops_answering_mid_batch_fails_the_tasks_in_bound_and_names_each_record(
    stoppable: Any,
) -> None:
    control = stoppable.control
    control.set_latency("prefinery", 100, target="create_points")  # slow enough to freeze it mid-batch
    users = control.users(status="active")[:16]
    points = [{"email": u["email"], "quantity": 1, "reason": f"frozen #{i}"} for i, u in enumerate(users)]
    op = PrefineryCreatePointsOperator(
        task_id="points", records=points, prefinery_conn_id="prefinery_stoppable",
        max_concurrency=CONCURRENCY, progress_interval=0,
    )  # fmt: skip
    ti, outcome = RecordingTI(), {}
    worker = threading.Thread(target=lambda: outcome.update(error=_raises(op.execute, {"ti": ti})))
    worker.start()
    frozen_at = _freeze_after(stoppable, "create_points", 4)
    worker.join(timeout=60)
    points_took = time.monotonic() - frozen_at
    # An idempotent batch against the still-frozen server: each record is retried, then reported.
    updates = [{"user_id": u["id"], "profile": {"custom_var3": "x"}} for u in users[:8]]
    started = time.monotonic()
    update_error = _raises(
        PrefineryUpdateUserOperator(
            task_id="update", records=updates, prefinery_conn_id="prefinery_stoppable",
            max_concurrency=CONCURRENCY, progress_interval=0,
        ).execute,
        {"ti": RecordingTI()},
    )  # fmt: skip
    updates_took = time.monotonic() - started
    os.kill(stoppable.process.pid, signal.SIGCONT)

    assert not worker.is_alive()
    assert isinstance(outcome["error"], BatchFailedNoRetryError)  # applied writes: no Airflow retry
    report = ti.xcom["return_value"]
    counts = report["counts"]
    assert counts["succeeded"] >= 4 and counts["failed"] >= 1
    assert counts["succeeded"] + counts["failed"] == len(points)  # every record accounted for
    assert all(e["outcome_unknown"] and "read timeout of 0.5 s" in e["message"] for e in report["failed"])
    assert points_took <= worst_case(len(points), retries=0) + 2.0  # a POST is never retried after sending
    assert isinstance(update_error, BatchFailedError)
    assert "8 of 8 update_user record(s) failed" in str(update_error)
    assert READ * 2 <= updates_took <= worst_case(len(updates), retries=RETRIES) + 2.0
    # Resumed, the server works through what it had queued: each point exists at most once, and every
    # record the task did not report exists exactly once.
    reported = {e["record"]["reason"] for e in report["failed"]}
    time.sleep(1.0)
    applied = Counter(p["reason"] for p in control.points() if str(p["reason"]).startswith("frozen"))
    assert max(applied.values()) == 1
    assert all(applied[p["reason"]] == 1 for p in points if p["reason"] not in reported)
    write_artifact(
        "frozen_server.md",
        f"Sandbox frozen (SIGSTOP) mid-batch; read timeout {READ:g} s, connect {CONNECT:g} s, "
        f"max_retries {RETRIES}, {CONCURRENCY} in flight.\n"
        f"- create_points, {len(points)} records: {counts['succeeded']} done, {counts['failed']} reported "
        f"outcome_unknown, task failed (no Airflow retry) {points_took:.1f} s after the freeze "
        f"(bound {worst_case(len(points), retries=0):.1f} s); after resuming, {sum(applied.values())} "
        f"points exist, none twice.\n"
        f"- update_user, {len(updates)} records on the frozen server: all reported, task failed in "
        f"{updates_took:.1f} s (bound {worst_case(len(updates), retries=RETRIES):.1f} s).\n",
    )


def _raises(fn: Any, *args: Any) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    return None
