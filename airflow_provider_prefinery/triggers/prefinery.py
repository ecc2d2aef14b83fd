"""Triggers behind the deferrable Prefinery sensors, and an event trigger for ``AssetWatcher``.

What "done" means for each sensor lives here once (:data:`CHECKS`): ``poke()`` and the trigger call the
same function through the same hook, so the REST core's request, retry, rate-limit and error rules apply
unchanged in both. Triggers load the connection asynchronously and run the hook's blocking calls in a
worker thread (``asyncio.to_thread``): the event loop never blocks on I/O.

Poll pacing (:func:`min_poll_interval`, :class:`Pacer`) is shared too. The rule: one sensor may use a
1/``SENSORS_PER_LIMIT`` share of the documented LIST limit of the endpoint it polls, so ten sensors on one
project together stay at or under that limit. For LIST users and LIST rewards (60 per minute) that is one
request per 10 s; a poll that needed several pages waits that much longer. LIST suppressions has no
published limit, so it is paced like LIST users. A 429 that outlives the REST core's retries doubles the
wait (and honours ``Retry-After``) instead of failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryInputError,
    PrefineryRateLimitError,
)
from airflow_provider_prefinery.hooks.prefinery import ENDPOINTS, RATE_LIMITS, PrefineryHook

log = logging.getLogger(__name__)

MODULE = __name__

# --------------------------------------------------------------------------------------------------
# Events: one closed set of statuses for sensors and triggers
# --------------------------------------------------------------------------------------------------


class EventStatus(str, Enum):
    """The only statuses a sensor trigger's event may carry."""

    SUCCESS = "success"
    TIMEOUT = "timeout"
    ERROR = "error"


EVENT_STATUSES = frozenset(status.value for status in EventStatus)


def sensor_event(status: EventStatus, message: str, **fields: Any) -> TriggerEvent:
    """Build a sensor trigger's event: ``{"status", "message", ...}`` with JSON-only values."""
    return TriggerEvent({"status": status.value, "message": message, **fields})


def validate_event(event: Any) -> dict[str, Any]:
    """Check a sensor trigger's event before it is used.

    :return: the event as a dict with a known ``status`` and a ``message``.
    :raises AirflowException: the event is not a mapping, or its status is not in :class:`EventStatus`.
    """
    if not isinstance(event, Mapping):
        raise AirflowException(
            f"Prefinery sensor resumed without a trigger event (got {type(event).__name__})"
        )
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AirflowException(
            f"Prefinery sensor got an event with unknown status {status!r} "
            f"(expected one of {', '.join(sorted(EVENT_STATUSES))})"
        )
    return {"message": "", **event}


# --------------------------------------------------------------------------------------------------
# Checks: what "done" means, one function per sensor, shared by poke() and the trigger
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One poll's verdict: ``done``, the value to hand downstream (JSON), and a line for the log."""

    done: bool
    value: Any = None
    detail: str = ""


def flag(field: str, value: Any) -> bool:
    """A boolean argument that may arrive rendered from a template (``"True"``, ``"false"``)."""
    return v.boolean(field, v.bool_from_text(value))


def check_user(hook: PrefineryHook, *, email: str, status: frozenset[str] | None = None) -> Outcome:
    """Done when the user with ``email`` exists and, if ``status`` is given, is in one of those statuses.

    :return: the user object as the value.
    """
    user = hook.find_user(email)
    if user is None:
        return Outcome(False, detail=f"no user {email} yet")
    current = user.get("status")
    if status is not None and current not in status:
        return Outcome(False, detail=f"user {email} is {current!r}, waiting for {sorted(status)}")
    return Outcome(True, user, f"user {email} exists with status {current!r}")


def matching_rewards(
    hook: PrefineryHook, *, status: str | None, email: str | None, descriptor: str | None
) -> Iterator[dict[str, Any]]:
    """Rewards with this status (filtered by the API) and, if given, this descriptor (filtered here)."""
    for reward in hook.list_rewards(email=email, status=status):
        if status is not None and reward.get("status", status) != status:
            continue
        if descriptor is not None and reward.get("descriptor") != descriptor:
            continue
        yield reward


def check_rewards(
    hook: PrefineryHook,
    *,
    status: str = "earned",
    email: str | None = None,
    descriptor: str | None = None,
    min_count: int = 1,
) -> Outcome:
    """Done when at least ``min_count`` rewards match.

    :return: every matching reward (a list of reward objects) as the value, ready for ``.expand()``.
    """
    rewards = list(matching_rewards(hook, status=status, email=email, descriptor=descriptor))
    what = (
        f"{status} reward(s)"
        + (f" {descriptor!r}" if descriptor else "")
        + (f" for {email}" if email else "")
    )
    if len(rewards) < min_count:
        return Outcome(False, detail=f"{len(rewards)} of {min_count} {what}")
    return Outcome(True, rewards, f"{len(rewards)} {what} (needed {min_count})")


def check_suppression(hook: PrefineryHook, *, email: str, suppressed: bool = True) -> Outcome:
    """Done when ``email`` is suppressed (``suppressed=True``) or no longer is (``suppressed=False``).

    :return: the suppression object when waiting for one, else None.
    """
    found = hook.find_suppression(email)
    now = "suppressed" if found is not None else "not suppressed"
    if (found is not None) != suppressed:
        return Outcome(False, detail=f"{email} is {now}, waiting")
    return Outcome(True, found if suppressed else None, f"{email} is {now}")


Rule = Callable[[str, Any], Any]


def _optional(rule: Rule) -> Rule:
    return lambda field, value: None if value is None else rule(field, value)


def is_literal(value: Any) -> bool:
    """True for a value known when the DAG is parsed: not a template string, not an XComArg."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    return value is None or isinstance(value, (bool, int, float))


@dataclass(frozen=True)
class Check:
    """One sensor's condition: the rule for each argument, the endpoint it polls, and its verdict."""

    verdict: Callable[..., Outcome]
    action: str  # the endpoint polled: its documented limit paces the poll
    rules: Mapping[str, Rule]

    def validate(self, criteria: Mapping[str, Any], *, literal_only: bool = False) -> dict[str, Any]:
        """Check and normalise the arguments (``"2"`` -> 2, ``"false"`` -> False, statuses -> a set).

        :param literal_only: skip values not known yet (templates, XComArgs): the DAG-parse-time check.
        :raises PrefineryInputError: an argument breaks its rule, or is not an argument of this check.
        """
        for name in criteria:
            if name not in self.rules:
                raise PrefineryInputError(
                    name, "is not an argument of this sensor", allowed=sorted(self.rules)
                )
        return {
            name: self.rules[name](name, value)
            for name, value in criteria.items()
            if not literal_only or is_literal(value)
        }


CHECKS: dict[str, Check] = {
    "user": Check(
        check_user,
        "list_users",
        {"email": v.email, "status": lambda f, x: v.statuses(f, x, v.USER_STATUSES)},
    ),
    "rewards": Check(
        check_rewards,
        "list_rewards",
        {
            "status": lambda f, x: v.one_of(f, x, v.REWARD_STATUSES),
            "email": _optional(v.email),
            "descriptor": _optional(v.text),
            "min_count": v.positive_int,
        },
    ),
    "suppression": Check(check_suppression, "list_suppressions", {"email": v.email, "suppressed": flag}),
}


def get_check(name: str) -> Check:
    """The check called ``name``, or an input error listing the known ones."""
    if name not in CHECKS:
        raise PrefineryInputError("check", f"unknown check {name!r}", allowed=sorted(CHECKS))
    return CHECKS[name]


def run_check(hook: PrefineryHook, check: str, criteria: Mapping[str, Any]) -> tuple[Outcome, int]:
    """Validate the arguments, run one check (blocking); return its outcome and the requests it sent."""
    chosen = get_check(check)
    arguments = chosen.validate(criteria)
    before = hook.stats["requests"]
    outcome = chosen.verdict(hook, **arguments)
    return outcome, hook.stats["requests"] - before


# --------------------------------------------------------------------------------------------------
# Pacing: the poll-interval rule and the 429 back-off, shared by sensors and triggers
# --------------------------------------------------------------------------------------------------
SENSORS_PER_LIMIT = 10
"""How many sensors polling one project must fit under the documented limit together."""
UNPUBLISHED_LIMIT_LIKE = "list_users"
"""Endpoints without a published limit are paced like this one (the strictest per-minute LIST limit)."""
RATE_LIMITED_MAX_WAIT = 15 * 60.0
"""The longest wait a run of 429s grows to (unless the poll interval, or Retry-After, is longer)."""


def min_poll_interval(action: str, scale: float = 1.0) -> float:
    """Seconds one sensor must leave between requests to ``action``'s endpoint.

    The documented limit (:data:`RATE_LIMITS`, times the connection's ``rate_limit_scale``) is shared by
    :data:`SENSORS_PER_LIMIT` sensors: ``period * SENSORS_PER_LIMIT / limit``, e.g. 60 s * 10 / 60 = 10 s.
    """
    key = ENDPOINTS[action].limit
    limit, period = RATE_LIMITS[key if key in RATE_LIMITS else UNPUBLISHED_LIMIT_LIKE]
    return period * SENSORS_PER_LIMIT / (limit * scale)


def clamp_interval(interval: float, floor: float, logger: logging.Logger | Any = log) -> float:
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

    def after_poll(self, requests: int) -> float:
        """Wait after a poll that sent ``requests`` requests: at least ``floor`` per request."""
        self.rate_limited = 0
        return max(self.interval, self.floor * max(1, requests))

    def after_rate_limit(self, error: PrefineryRateLimitError) -> float:
        """Wait after a 429 that outlived the core's retries: double per 429 in a row, capped."""
        self.rate_limited += 1
        grown = min(self.interval * 2**self.rate_limited, max(RATE_LIMITED_MAX_WAIT, self.interval))
        hint = min(error.retry_after or 0.0, RATE_LIMITED_MAX_WAIT)
        return max(grown, hint)


# --------------------------------------------------------------------------------------------------
# Shared trigger plumbing
# --------------------------------------------------------------------------------------------------


async def load_hook(prefinery_conn_id: str, beta_id: int | str | None) -> PrefineryHook:
    """Build a hook on a connection loaded without blocking the event loop."""
    try:
        from airflow.providers.common.compat.connection import get_async_connection
    except ImportError:  # pragma: no cover - older common-compat
        from asgiref.sync import sync_to_async

        conn = await sync_to_async(PrefineryHook.get_connection)(prefinery_conn_id)
    else:
        conn = await get_async_connection(prefinery_conn_id, hook=PrefineryHook)
    return PrefineryHook(prefinery_conn_id, beta_id=beta_id, connection=conn)


def describe_error(hook: PrefineryHook | None, error: BaseException) -> dict[str, Any]:
    """A JSON summary of an error for an event, with the hook's secrets redacted."""
    message = str(error)
    if hook is not None and "client" in hook.__dict__:
        message = hook.client.redact(message)
    if isinstance(error, PrefineryError):
        return {**error.to_dict(), "message": message}
    return {"error": type(error).__name__, "message": message}


def _close(hook: PrefineryHook | None) -> None:
    if hook is not None:
        hook.close()


class PrefinerySensorTrigger(BaseTrigger):
    """Poll one of the sensors' checks asynchronously until it is done or ``end_time`` passes.

    Yields exactly one event: ``success`` (with ``value``), ``timeout``, or ``error`` (with ``error``);
    it never raises. A 429 lengthens the wait rather than ending the wait.

    :param check: a key of :data:`CHECKS` (``user``, ``rewards``, ``suppression``).
    :param criteria: the check's keyword arguments (already rendered by the sensor).
    :param end_time: the deadline as a Unix timestamp: the sensor's start plus its timeout.
    :param poll_interval: seconds between polls (raised to :func:`min_poll_interval` if lower).
    :param prefinery_conn_id: the Prefinery connection.
    :param beta_id: the project id (default: the connection's).
    :param initial_wait: seconds before the first poll (a sensor that has just checked passes its
        interval, so deferring does not cost an extra request).
    """

    def __init__(
        self,
        check: str,
        criteria: dict[str, Any],
        end_time: float,
        poll_interval: float = 60.0,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        beta_id: int | str | None = None,
        initial_wait: float = 0.0,
    ) -> None:
        super().__init__()
        self.check = check
        self.criteria = dict(criteria)
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id
        self.initial_wait = float(initial_wait)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{MODULE}.{type(self).__name__}",
            {
                "check": self.check,
                "criteria": self.criteria,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "prefinery_conn_id": self.prefinery_conn_id,
                "beta_id": self.beta_id,
                "initial_wait": self.initial_wait,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook: PrefineryHook | None = None
        try:
            hook = await load_hook(self.prefinery_conn_id, self.beta_id)
            event = await self._wait(hook)
        except Exception as err:  # an event, never an exception: the task decides how to fail
            error = describe_error(hook, err)
            event = sensor_event(EventStatus.ERROR, error["message"], error=error)
        finally:
            _close(hook)
        yield event

    async def _wait(self, hook: PrefineryHook) -> TriggerEvent:
        floor = min_poll_interval(
            get_check(self.check).action, hook.rate_limit_scale
        )  # no I/O: conn is loaded
        pacer = Pacer(clamp_interval(self.poll_interval, floor, self.log), floor)
        last = "no poll finished"
        await asyncio.sleep(max(0.0, min(self.initial_wait, self.end_time - time.time())))
        while True:
            try:
                outcome, requests = await asyncio.to_thread(run_check, hook, self.check, self.criteria)
            except PrefineryRateLimitError as err:
                wait = pacer.after_rate_limit(err)
                last = f"rate limited (HTTP 429); next poll in {wait:.3g} s"
                self.log.warning("Prefinery %s check: %s", self.check, last)
            else:
                if outcome.done:
                    return sensor_event(EventStatus.SUCCESS, outcome.detail, value=outcome.value)
                wait, last = pacer.after_poll(requests), outcome.detail
                self.log.info("Prefinery %s check not met yet: %s", self.check, last)
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return sensor_event(
                    EventStatus.TIMEOUT, f"Prefinery {self.check} check not met by the deadline: {last}"
                )
            await asyncio.sleep(min(wait, remaining))


# --------------------------------------------------------------------------------------------------
# Event-driven scheduling
# --------------------------------------------------------------------------------------------------
Resource = Literal["users", "rewards"]
RESOURCES: tuple[str, ...] = ("users", "rewards")


def compact_ids(ids: Iterable[Any]) -> dict[str, list[Any]]:
    """Store a set of ids compactly: integer runs as ``[first, last]`` pairs, other ids as strings."""
    numbers = sorted({int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())})
    others = sorted({str(i) for i in ids} - {str(n) for n in numbers})
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return {"runs": runs, "other": others}


def expand_ids(stored: Mapping[str, Any]) -> set[str]:
    """Inverse of :func:`compact_ids` (ids as strings, as :class:`PrefineryEventTrigger` keys them)."""
    ids = {str(i) for i in stored.get("other", [])}
    for first, last in stored.get("runs", []):
        ids.update(str(n) for n in range(int(first), int(last) + 1))
    return ids


class PrefineryEventTrigger(BaseEventTrigger):
    """Fire one asset event per NEW Prefinery user or reward, for ``AssetWatcher`` scheduling.

    Each poll lists the filtered resource (every page: the API has no "created since" filter) and yields
    one event per item whose id was not seen before, with payload
    ``{"resource", "id", "beta_id", "item"}``. Ids are remembered across polls, so an item fires once.
    This is what Prefinery's ``tester_created`` / ``reward_earned`` webhooks would deliver, without a
    public endpoint to receive them.

    The first poll records what already exists and fires nothing (``emit_existing=True`` fires it all).
    After a triggerer restart: on Airflow >= 3.3 the seen ids are kept in the watched asset's state store
    (key ``prefinery_seen:<hash of the filter>``, ids stored as runs), saved after every poll that
    fired and when the trigger stops; so items that appeared while the triggerer was down fire on the
    first poll after the restart, and nothing fires twice, except after a hard kill between yielding a
    poll's events and saving them (at-least-once: keep the DAG idempotent). Without a state store (older
    Airflow, or one trigger watching several assets) a restart starts afresh: items created while it was
    down count as existing and do not fire.

    Failures: a 429 lengthens the wait and is not counted; any other failed poll is counted, a healthy
    poll resets the count, and the trigger fails once ``max_failures`` polls in a row have failed (bad
    input fails at once). Waits follow the sensors' rule (:func:`min_poll_interval`), per request.

    :param resource: ``rewards`` or ``users``.
    :param status: rewards: the status to watch (default ``earned``; the API filters it); users: one
        status or a list (filtered here), or None for every new user. A user whose status changes into
        the filter fires then, since it was not listed before.
    :param email: only this user's rewards, or only this user (exact match).
    :param poll_interval: seconds between polls.
    :param max_failures: consecutive failed polls after which the trigger fails.
    :param emit_existing: also fire for the items that exist at the first poll.
    :param prefinery_conn_id: the Prefinery connection.
    :param beta_id: the project id (default: the connection's).
    """

    def __init__(
        self,
        resource: Resource = "rewards",
        *,
        status: str | list[str] | None = None,
        email: str | None = None,
        poll_interval: float = 60.0,
        max_failures: int = 3,
        emit_existing: bool = False,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        beta_id: int | str | None = None,
    ) -> None:
        super().__init__()
        v.one_of("resource", resource, RESOURCES)
        if resource == "rewards":
            status = v.one_of("status", status or "earned", v.REWARD_STATUSES)
        elif status is not None:
            v.statuses("status", status, v.USER_STATUSES)
        if email is not None:
            v.email("email", email)
        if max_failures < 0:
            raise PrefineryInputError("max_failures", f"must be 0 or more, got {max_failures}")
        self.resource = resource
        self.status = status
        self.email = email
        self.poll_interval = float(poll_interval)
        self.max_failures = int(max_failures)
        self.emit_existing = bool(emit_existing)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{MODULE}.{type(self).__name__}",
            {
                "resource": self.resource,
                "status": self.status,
                "email": self.email,
                "poll_interval": self.poll_interval,
                "max_failures": self.max_failures,
                "emit_existing": self.emit_existing,
                "prefinery_conn_id": self.prefinery_conn_id,
                "beta_id": self.beta_id,
            },
        )

    # ---- what one poll sees ----
    def _items(self, hook: PrefineryHook) -> Iterator[dict[str, Any]]:
        if self.resource == "rewards":
            assert isinstance(self.status, str)
            return matching_rewards(hook, status=self.status, email=self.email, descriptor=None)
        return hook.list_users(email=self.email, status=self.status)

    def _poll(self, hook: PrefineryHook, seen: set[str]) -> tuple[list[dict[str, Any]], set[str], int]:
        """List once (blocking): the unseen items in list order, every id listed, and the requests sent."""
        before = hook.stats["requests"]
        fresh: list[dict[str, Any]] = []
        listed: set[str] = set()
        for item in self._items(hook):
            key = str(item.get("id"))
            if key not in seen and key not in listed:
                fresh.append(item)
            listed.add(key)
        return fresh, listed, hook.stats["requests"] - before

    # ---- remembering ids across restarts ----
    @property
    def state_key(self) -> str:
        scope = json.dumps(
            [self.prefinery_conn_id, self.beta_id, self.resource, self.status, self.email], default=str
        )
        return "prefinery_seen:" + hashlib.sha256(scope.encode()).hexdigest()[:16]

    async def _load_seen(self) -> set[str] | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            stored = await store.aget(self.state_key)
        except Exception as err:  # several assets, or no state store support: remember in memory only
            self.log.warning("Not persisting seen Prefinery ids (%s); a restart starts afresh", err)
            self.asset_state_store = None
            return None
        return expand_ids(stored) if isinstance(stored, Mapping) else None

    async def _save_seen(self, seen: set[str]) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await store.aset(self.state_key, compact_ids(seen))
        except Exception as err:
            self.log.warning("Could not save seen Prefinery ids (%s); a restart may re-fire them", err)

    # ---- the loop ----
    def _event(self, item: Mapping[str, Any], beta_id: int) -> TriggerEvent:
        return TriggerEvent(
            {"resource": self.resource, "id": item.get("id"), "beta_id": beta_id, "item": item}
        )

    def _after_failure(self, hook: PrefineryHook, error: Exception, failures: int, pacer: Pacer) -> float:
        """Count a failed poll: the wait before the next one, or raise once too many failed in a row."""
        message = describe_error(hook, error)["message"]
        if failures > self.max_failures:
            raise PrefineryError(
                f"{failures} polls of Prefinery {self.resource} failed in a row; last: {message}"
            ) from None
        self.log.warning(
            "Poll %d in a row failed (%s); retrying in %.3g s", failures, message, pacer.interval
        )
        return pacer.interval

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = await load_hook(self.prefinery_conn_id, self.beta_id)
        stored = await self._load_seen()
        seen, unsaved = (stored or set()), False
        baseline = stored is None and not self.emit_existing
        try:
            beta_id = hook.resolve_beta_id()  # no I/O: the connection is already loaded
            floor = min_poll_interval(f"list_{self.resource}", hook.rate_limit_scale)
            pacer = Pacer(clamp_interval(self.poll_interval, floor, self.log), floor)
            failures = 0
            while True:
                try:
                    fresh, listed, requests = await asyncio.to_thread(self._poll, hook, seen)
                except PrefineryRateLimitError as err:
                    wait = pacer.after_rate_limit(err)
                    self.log.warning("Prefinery rate limit (HTTP 429): next poll in %.3g s", wait)
                except PrefineryInputError:
                    raise
                except Exception as err:
                    failures += 1
                    wait = self._after_failure(hook, err, failures, pacer)
                else:
                    failures = 0
                    if baseline:  # what exists at the first poll is history, not news
                        seen, fresh, baseline, unsaved = seen | listed, [], False, True
                    for item in fresh:
                        seen.add(str(item.get("id")))  # handed over once yielded
                        unsaved = True
                        yield self._event(item, beta_id)
                    if unsaved:
                        await self._save_seen(seen)
                        unsaved = False
                    wait = pacer.after_poll(requests)
                await asyncio.sleep(wait)
        finally:
            if unsaved:  # stopped mid-batch: keep what was already handed over
                await self._save_seen(seen)
            _close(hook)
