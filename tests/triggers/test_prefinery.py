"""Sensor and event triggers, run on an event loop against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_prefinery.exceptions import PrefineryError
from airflow_provider_prefinery.polling.sensor_events import EVENT_STATUSES
from airflow_provider_prefinery.triggers.prefinery import PrefineryEventTrigger, PrefinerySensorTrigger

pytestmark = pytest.mark.integration


def rebuild(trigger: Any) -> Any:
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    json.dumps(kwargs)  # JSON-only kwargs
    return cls(**kwargs)


def active_user(sbx: Any, offset: int = 0) -> dict[str, Any]:
    return sorted(sbx.control.users(status="active"), key=lambda u: u["id"])[offset]


def earned_count(sbx: Any, user: dict[str, Any]) -> int:
    return len(sbx.control.rewards(user_id=user["id"], status="earned"))


async def first_event(trigger: Any, timeout: float = 10.0) -> TriggerEvent:
    return await asyncio.wait_for(trigger.run().__anext__(), timeout)


async def until(count: int, *, within: float = 10.0, **filters: Any) -> None:
    """Wait until the sandbox has logged ``count`` requests matching ``filters``; fail after ``within``."""
    from airflow_provider_prefinery.sandbox.client import SandboxControl

    control = SandboxControl(filters.pop("url"))
    end = time.monotonic() + within
    while (seen := await asyncio.to_thread(control.count, **filters)) < count:
        assert time.monotonic() < end, f"only {seen} of {count} requests {filters} after {within} s"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------ sensor trigger
def test_sensor_trigger_serialize_round_trips_to_an_equal_trigger() -> None:
    trigger = PrefinerySensorTrigger(
        "user", {"email": "a@example.com", "status": ["applied", "active"]}, 1.7e9, 12.5, "conn", 7
    )
    assert rebuild(trigger).serialize() == trigger.serialize()
    assert trigger.serialize()[0] == "airflow_provider_prefinery.triggers.prefinery.PrefinerySensorTrigger"


async def test_sensor_trigger_yields_success_with_the_rewards_once_one_is_earned_mid_wait(sbx: Any) -> None:
    user = active_user(sbx)
    before = earned_count(sbx, user)
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=2)
    trigger = PrefinerySensorTrigger(
        "rewards", {"email": user["email"], "min_count": before + 1}, time.time() + 20, poll_interval=0.1
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "success"
    rewards = event.payload["value"]
    assert len(rewards) == before + 1
    assert all(r["status"] == "earned" and r["user_id"] == user["id"] for r in rewards)
    assert sbx.control.count(endpoint="list_rewards") == 3  # two reads not yet, the third sees it


async def test_sensor_trigger_waits_initial_wait_before_its_first_poll(sbx: Any) -> None:
    user = active_user(sbx)
    trigger = PrefinerySensorTrigger(
        "user", {"email": user["email"]}, time.time() + 10, 0.1, initial_wait=0.6
    )
    started = time.monotonic()
    event = await first_event(trigger)
    assert event.payload["status"] == "success"
    assert time.monotonic() - started >= 0.6
    assert sbx.control.count(endpoint="list_users") == 1


async def test_sensor_trigger_yields_timeout_when_the_deadline_passes(sbx: Any) -> None:
    trigger = PrefinerySensorTrigger(
        "user", {"email": "nobody.ever@example.com"}, time.time() + 0.5, poll_interval=0.1
    )
    started = time.monotonic()
    event = await first_event(trigger)
    assert event.payload["status"] == "timeout"
    assert "nobody.ever@example.com" in event.payload["message"]
    assert time.monotonic() - started < 3
    assert sbx.control.count(endpoint="list_users") >= 3


async def test_sensor_trigger_yields_an_error_event_without_the_key(
    sbx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"])
    conn["password"] = "wrong-key-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_DEFAULT", json.dumps(conn))
    trigger = PrefinerySensorTrigger("suppression", {"email": "a@example.com"}, time.time() + 10, 0.1)
    event = await first_event(trigger)
    assert event.payload["status"] == "error"
    assert event.payload["error"]["error"] == "PrefineryAuthError"
    assert event.payload["error"]["status"] == 401
    assert "wrong-key-0123456789" not in json.dumps(event.payload)


async def test_sensor_trigger_yields_an_error_event_for_bad_input() -> None:
    trigger = PrefinerySensorTrigger("rewards", {"status": "pending"}, time.time() + 10, 0.1, "no_such_conn")
    event = await first_event(trigger)
    assert event.payload["status"] == "error"
    assert set(event.payload) >= {"status", "message", "error"}
    assert event.payload["status"] in EVENT_STATUSES


async def test_sensor_trigger_waits_out_429s_instead_of_failing(sbx: Any, conn_extra: Any) -> None:
    conn_extra(max_retries=0)  # each poll ends in PrefineryRateLimitError at its first 429
    sbx.control.set_faults("prefinery", {"429": 1.0}, "list_users")
    user = active_user(sbx)
    trigger = PrefinerySensorTrigger("user", {"email": user["email"]}, time.time() + 30, 0.1)
    pending = asyncio.ensure_future(trigger.run().__anext__())
    await until(3, url=sbx.url, endpoint="list_users", status=429)  # three polls, each rate limited
    assert not pending.done()
    await asyncio.to_thread(sbx.control.set_faults, "prefinery", {}, "list_users")
    event = await asyncio.wait_for(pending, 10)
    assert event.payload["status"] == "success"
    assert event.payload["value"]["id"] == user["id"]


# ------------------------------------------------------------------------------ event trigger
def test_event_trigger_serialize_round_trips_and_defaults_to_earned_rewards() -> None:
    trigger = PrefineryEventTrigger(poll_interval=30, max_failures=5, beta_id=1001)
    assert trigger.status == "earned"
    assert rebuild(trigger).serialize() == trigger.serialize()


async def next_events(
    gen: AsyncIterator[TriggerEvent], count: int, timeout: float = 10
) -> list[dict[str, Any]]:
    return [(await asyncio.wait_for(gen.__anext__(), timeout)).payload for _ in range(count)]


async def test_event_trigger_fires_each_new_reward_once_and_nothing_for_existing_ones(sbx: Any) -> None:
    existing = {r["id"] for r in sbx.control.rewards(status="earned")}
    first, second = active_user(sbx, 2), active_user(sbx, 3)
    sbx.control.schedule("new_reward", "earned", email=first["email"], after_reads=2)
    sbx.control.schedule("new_reward", "earned", email=second["email"], after_reads=4)
    gen = PrefineryEventTrigger("rewards", poll_interval=0.1).run()
    payloads = await next_events(gen, 2)
    assert [p["item"]["user_id"] for p in payloads] == [first["id"], second["id"]]
    assert all(p["id"] not in existing and p["resource"] == "rewards" for p in payloads)
    assert {p["beta_id"] for p in payloads} == {sbx.beta_id}
    polls = sbx.control.count(endpoint="list_rewards")
    with pytest.raises(TimeoutError):  # later polls see the same rewards again: no duplicates
        await asyncio.wait_for(gen.__anext__(), 1.0)
    assert sbx.control.count(endpoint="list_rewards") >= polls + 3


async def test_event_trigger_fires_new_users_in_a_status_with_emit_existing(sbx: Any) -> None:
    suspended = {u["id"] for u in sbx.control.users(status="suspended")}
    gen = PrefineryEventTrigger("users", status="suspended", emit_existing=True, poll_interval=0.1).run()
    payloads = await next_events(gen, len(suspended))
    assert sorted(p["id"] for p in payloads) == sorted(suspended)
    newly = active_user(sbx)
    sbx.control.set_user_status(newly["id"], "suspended")
    (late,) = await next_events(gen, 1)
    assert late["id"] == newly["id"] and late["item"]["status"] == "suspended"
    await gen.aclose()


async def test_event_trigger_resets_its_failure_count_on_a_healthy_poll_and_fails_after_max(sbx: Any) -> None:
    """Two failures, a healthy poll, two failures, a healthy poll: still running; three in a row: fails."""
    control, user = sbx.control, active_user(sbx)
    log = {"url": sbx.url, "endpoint": "list_rewards"}  # one page per poll (one user's rewards)
    trigger = PrefineryEventTrigger("rewards", email=user["email"], poll_interval=0.3, max_failures=2)
    task = asyncio.ensure_future(trigger.run().__anext__())
    await until(1, status=200, **log)  # the baseline poll
    for round_ in (1, 2):
        await asyncio.to_thread(control.set_faults, "prefinery", {"500": 1.0}, "list_rewards")
        await until(4 * round_, status=500, **log)  # two polls of (one try + one retry)
        await asyncio.to_thread(control.set_faults, "prefinery", {}, "list_rewards")
        await until(1 + round_, status=200, **log)
    assert not task.done()
    await asyncio.to_thread(control.set_faults, "prefinery", {"500": 1.0}, "list_rewards")
    with pytest.raises(PrefineryError, match="3 polls of Prefinery rewards failed in a row"):
        await asyncio.wait_for(task, 10)
    assert control.count(endpoint="list_rewards", status=500) == 14


class MemoryStateStore:
    """Stands in for the watched asset's state store (``aget``/``aset``) that Airflow 3.3 injects."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


async def test_event_trigger_restarted_with_a_state_store_fires_what_appeared_while_down_once(
    sbx: Any,
) -> None:
    store, user = MemoryStateStore(), active_user(sbx, 4)
    before = PrefineryEventTrigger("rewards", email=user["email"], poll_interval=0.1)  # one page per poll
    before.asset_state_store = store
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=1)
    gen = before.run()
    (seen_live,) = await next_events(gen, 1)
    await gen.aclose()  # the triggerer stops
    assert store.values, "seen ids were saved"

    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=0)  # while it is down
    after = PrefineryEventTrigger("rewards", email=user["email"], poll_interval=0.1)
    after.asset_state_store = store
    gen = after.run()
    (caught_up,) = await next_events(gen, 1)
    assert caught_up["item"]["user_id"] == user["id"]
    assert caught_up["id"] != seen_live["id"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gen.__anext__(), 0.8)
