"""Benchmark: requests per hour each sensor mode sends while waiting, against Prefinery's documented limit;
then requests per poll on a 100,000-user project.

    .venv/bin/python benchmarks/sensor_requests.py            # about 3 minutes (4 runs of 1/120 h, per poll)
    .venv/bin/python benchmarks/sensor_requests.py --per-poll-only

Measured, not computed: ``--sensors`` (10) ``PrefineryRewardSensor`` instances per mode wait for a reward that
never comes, for one hour of sensor time, against the sandbox; the requests are counted in the sandbox's
request log. Time is compressed by ``--scale`` (120): every interval and timeout is divided by it, and every
rate limit (the sandbox's and the hook's, through ``rate_limit_scale``) multiplied by it, so the run lasts
3600/scale seconds and the ratio of interval to limit is the one a real hour has. Requests per hour are
``count * 3600 / (elapsed * scale)``.

* poke: ``sensor.execute()`` in a thread per sensor (the worker sleeps between pokes).
* reschedule: a loop per sensor standing in for the scheduler: a fresh sensor each try, run again at the
  ``reschedule_date`` it asks for (no scheduler latency, so an upper bound).
* deferrable: one synchronous check each, then every trigger on one event loop, as on one triggerer.
* floor: deferrable sensors asking for 1 s, which the pacing rule raises to the 10 s minimum.

The documented limit is LIST rewards 60/min = 3,600/h (per key); the target is at or under it for all
``--sensors`` sensors together.

Per poll (the ``bulk`` seed: 100,000 users in project 1001, plus ``--rewards`` (1,000) earned rewards created
for it): the requests one poll of each check sends, counted in the sandbox's log, beside what a listing of
every matching page costs (what the reward check did before it stopped at ``min_count``). A check stops at
its answer, but a poll that is not done yet, and the users event trigger on every poll, list every page their
filters match: O(users) per poll, 4,000 requests at 25 per page, over an hour at the 60/min LIST users limit.
Big projects are for webhooks (no request per event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="prefinery-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")  # poll lines and the floor's clamp warnings

ENDPOINT = "list_rewards"


def sensor(index: int, scale: float, poke_interval: float | None, **kwargs: Any) -> Any:
    """A reward sensor that waits for the whole hour (its e-mail never earns anything)."""
    from airflow_provider_prefinery.sensors.prefinery import PrefineryRewardSensor

    made = PrefineryRewardSensor(
        task_id=f"wait_{index}", email=f"nobody{index}@example.com", timeout=3600 / scale, **kwargs
    )
    made.poke_interval = (made.poke_interval if poke_interval is None else poke_interval) / scale
    return made


def run_poke(count: int, scale: float, interval: float | None) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    def one(index: int) -> None:
        with contextlib.suppress(AirflowSensorTimeout):
            sensor(index, scale, interval, mode="poke").execute({})

    _threads(one, count)


class _FirstTry:
    """What reschedule mode asks the task instance: when its first try started."""

    def __init__(self) -> None:
        self.started = datetime.datetime.now(datetime.timezone.utc)

    def get_first_reschedule_date(self, context: Any) -> datetime.datetime:
        return self.started


def run_reschedule(count: int, scale: float, interval: float | None) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout
    from airflow.sdk.exceptions import AirflowRescheduleException

    def one(index: int) -> None:
        ti = _FirstTry()
        while True:
            try:
                sensor(index, scale, interval, mode="reschedule").execute({"ti": ti})
            except AirflowRescheduleException as again:
                now = datetime.datetime.now(datetime.timezone.utc)
                time.sleep(max(0.0, (again.reschedule_date - now).total_seconds()))
            except AirflowSensorTimeout:
                return

    _threads(one, count)


def run_deferrable(count: int, scale: float, interval: float | None) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    triggers = []
    for index in range(count):
        try:
            sensor(index, scale, interval, deferrable=True).execute({})
        except TaskDeferred as deferred:
            triggers.append(deferred.trigger)

    async def all_triggers() -> list[Any]:
        return await asyncio.gather(*(trigger.run().__anext__() for trigger in triggers))

    events = asyncio.run(all_triggers())
    assert all(event.payload["status"] == "timeout" for event in events), events


def _threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(
    control: Any,
    run: Callable[[int, float, float | None], None],
    args: argparse.Namespace,
    interval: float | None,
) -> dict[str, float]:
    from airflow_provider_prefinery.hooks.rest import _BUCKETS

    _BUCKETS.clear()
    control.clear_requests()
    started = time.monotonic()
    run(args.sensors, args.scale, interval)
    elapsed = time.monotonic() - started
    log = control.requests(endpoint=ENDPOINT)
    per_hour = len(log) * 3600 / (elapsed * args.scale)
    return {
        "per_hour": per_hour,
        "rate_limited": sum(1 for r in log if r["status"] == 429),
        "elapsed": elapsed,
    }


def per_poll(rewards: int) -> None:
    """Requests one poll sends on the bulk seed, by check, against a listing of every matching page."""
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
    from airflow_provider_prefinery.hooks.rest import _BUCKETS
    from airflow_provider_prefinery.polling.checks import matching_rewards, run_check
    from airflow_provider_prefinery.sandbox.seeds import BULK_FIRST_USER_ID, BULK_USER_COUNT, USER_STATUSES
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    with run_sandbox(seed="bulk", startup_timeout=120) as sb:
        sb.control.configure(scale=100_000)  # no server-side limit: count requests, not waits
        conn = json.loads(sb.connections()["AIRFLOW_CONN_PREFINERY_DEFAULT"])
        conn["extra"]["rate_limit_scale"] = 100_000
        os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"] = json.dumps(conn)
        _BUCKETS.clear()
        hook = PrefineryHook()
        active = USER_STATUSES.index("active")  # the seed gives user i the status i % 8
        emails = [hook.get_user(BULK_FIRST_USER_ID + i)["email"] for i in range(active, 8 * rewards, 8)]
        for email in emails:
            hook.create_reward(email, "bulk-benchmark")
        someone, missing = emails[-1], "not.there@example.com"
        rows = [
            ("user sensor, user exists", "user", {"email": someone, "status": None}, None),
            ("user sensor, no such user yet", "user", {"email": missing, "status": None}, None),
            ("suppression sensor", "suppression", {"email": someone, "suppressed": False}, None),
            ("reward sensor, min_count=1", "rewards", {"min_count": 1}, "rewards"),
            ("reward sensor, min_count=100", "rewards", {"min_count": 100}, "rewards"),
            (
                f"reward sensor, min_count={rewards + 1} (not yet)",
                "rewards",
                {"min_count": rewards + 1},
                "rewards",
            ),
            ("event trigger, users (every poll)", None, {}, "users"),
        ]
        print(
            f"\nRequests per poll, a {BULK_USER_COUNT:,}-user project (seed 'bulk') with {rewards:,} earned "
            "rewards; 25 items per page.\n"
        )
        print(f"{'check':<44}{'requests/poll':>14}{'every page':>12}{'at 60/min':>11}")
        for name, check, criteria, full in rows:
            before = hook.stats["requests"]
            if check is not None:
                run_check(hook, check, criteria)
            else:
                sum(1 for _ in hook.list_users())  # what PrefineryEventTrigger("users") lists on each poll
            sent = hook.stats["requests"] - before
            everything = sent
            if full == "rewards":
                before = hook.stats["requests"]
                sum(1 for _ in matching_rewards(hook, status="earned", email=None, descriptor=None))
                everything = hook.stats["requests"] - before
            print(f"{name:<44}{sent:>14,}{everything:>12,}{sent / 60:>10.1f}m")
        hook.close()
        print(
            "\nA poll costs O(matching items) until its answer is known; the users event trigger lists the "
            "whole project on every poll. Use webhooks on big projects (README: Webhooks)."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=120.0, help="time compression (default 120)")
    parser.add_argument("--sensors", type=int, default=10, help="sensors per mode (default 10)")
    parser.add_argument("--rewards", type=int, default=1000, help="earned rewards for the per-poll part")
    parser.add_argument("--per-poll-only", action="store_true", help="only the requests per poll")
    args = parser.parse_args()
    if not args.per_poll_only:
        per_hour(args)
    per_poll(args.rewards)


def per_hour(args: argparse.Namespace) -> None:

    from airflow_provider_prefinery.hooks.prefinery import RATE_LIMITS
    from airflow_provider_prefinery.polling.pacing import min_poll_interval
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    limit, period = RATE_LIMITS[ENDPOINT]
    limit_per_hour = limit * 3600 / period
    rows = [
        ("poke", run_poke, None),
        ("reschedule", run_reschedule, None),
        ("deferrable", run_deferrable, None),
        ("floor (asks 1 s)", run_deferrable, 1.0),
    ]
    with run_sandbox(seed="demo") as sb:
        sb.control.configure(scale=args.scale)
        conn = json.loads(sb.connections()["AIRFLOW_CONN_PREFINERY_DEFAULT"])
        conn["extra"]["rate_limit_scale"] = args.scale
        os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"] = json.dumps(conn)
        default = sensor(0, 1.0, None).poke_interval
        print(
            f"{args.sensors} PrefineryRewardSensor per mode, one hour of sensor time compressed "
            f"{args.scale:g}x ({3600 / args.scale:.0f} s each), requests counted in the sandbox's log.\n"
            f"Documented limit: LIST rewards {limit:g} per {period:g} s = {limit_per_hour:,.0f}/h; "
            f"poll floor {min_poll_interval(ENDPOINT):g} s; default poke_interval {default:g} s.\n"
        )
        print(f"{'mode':<18}{'interval':>10}{'req/h, all':>13}{'req/h each':>13}{'429s':>6}{'of limit':>10}")
        for name, run, interval in rows:
            result = measure(sb.control, run, args, interval)
            asked = default if interval is None else interval
            paced = max(asked, min_poll_interval(ENDPOINT))
            per_hour = result["per_hour"]
            print(
                f"{name:<18}{paced:>9g}s{per_hour:>13,.0f}{per_hour / args.sensors:>13,.1f}"
                f"{result['rate_limited']:>6}{per_hour / limit_per_hour:>10.0%}"
            )


if __name__ == "__main__":
    main()
