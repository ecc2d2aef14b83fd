"""What "done" means for each sensor: one function per sensor, shared by ``poke()`` and the sensor trigger.

Both call :func:`run_check` through the same hook, so the REST core's request, retry, rate-limit and error
rules apply unchanged in both. A check is blocking; the trigger runs it in a worker thread.

A check reads pages only until its answer is known (the user, the suppression, the ``min_count``-th
reward): listing is lazy, so the pages after that are never requested. Until then a poll costs every
page its filters match: O(users) or O(rewards) per poll on a project filtered by nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

MAX_VALUE_ITEMS = 100
"""The most items a check hands downstream (the sensor's XCom, the trigger's event): the first listed."""


@dataclass(frozen=True)
class Verdict:
    """One poll's verdict: ``done``, the value to hand downstream (JSON), and a line for the log."""

    done: bool
    value: Any = None
    detail: str = ""


def check_user(hook: PrefineryHook, *, email: str, status: frozenset[str] | None = None) -> Verdict:
    """Done when the user with ``email`` exists and, if ``status`` is given, is in one of those statuses.

    :return: the user object as the value.
    """
    user = hook.find_user(email)
    if user is None:
        return Verdict(False, detail=f"no user {email} yet")
    current = user.get("status")
    if status is not None and current not in status:
        return Verdict(False, detail=f"user {email} is {current!r}, waiting for {sorted(status)}")
    return Verdict(True, user, f"user {email} exists with status {current!r}")


def matching_rewards(
    hook: PrefineryHook, *, status: str | None, email: str | None, descriptor: str | None
) -> Generator[dict[str, Any], None, None]:
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
) -> Verdict:
    """Done when at least ``min_count`` rewards match; the listing stops at the ``min_count``-th match.

    :return: the first ``min_count`` matching rewards in listing order (at most :data:`MAX_VALUE_ITEMS`),
        a list of reward objects ready for ``.expand()``.
    """
    listing = matching_rewards(hook, status=status, email=email, descriptor=descriptor)
    kept: list[dict[str, Any]] = []
    count = 0
    for reward in itertools.islice(listing, min_count):  # no page past the answer is requested
        count += 1
        if len(kept) < MAX_VALUE_ITEMS:
            kept.append(reward)
    listing.close()
    what = (
        f"{status} reward(s)"
        + (f" {descriptor!r}" if descriptor else "")
        + (f" for {email}" if email else "")
    )
    if count < min_count:
        return Verdict(False, detail=f"{count} of {min_count} {what}")
    shown = f"; the first {len(kept)} go downstream" if len(kept) < count else ""
    return Verdict(True, kept, f"{count} {what} (needed {min_count}: listing stopped there{shown})")


def check_suppression(hook: PrefineryHook, *, email: str, suppressed: bool = True) -> Verdict:
    """Done when ``email`` is suppressed (``suppressed=True``) or no longer is (``suppressed=False``).

    :return: the suppression object when waiting for one, else None.
    """
    found = hook.find_suppression(email)
    now = "suppressed" if found is not None else "not suppressed"
    if (found is not None) != suppressed:
        return Verdict(False, detail=f"{email} is {now}, waiting")
    return Verdict(True, found if suppressed else None, f"{email} is {now}")


# ---- the arguments' rules ----
Rule = Callable[[str, Any], Any]


def _optional(rule: Rule) -> Rule:
    return lambda field, value: None if value is None else rule(field, value)


def flag(field: str, value: Any) -> bool:
    """A boolean argument that may arrive rendered from a template (``"True"``, ``"false"``)."""
    return v.boolean(field, v.bool_from_text(value))


def is_literal(value: Any) -> bool:
    """True for a value known when the DAG is parsed: not a template string, not an XComArg."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    return value is None or isinstance(value, (bool, int, float))


@dataclass(frozen=True)
class Check:
    """One sensor's condition: each argument's rule, the endpoint it polls, and what decides the verdict."""

    decide: Callable[..., Verdict]
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


def run_check(hook: PrefineryHook, check: str, criteria: Mapping[str, Any]) -> tuple[Verdict, int]:
    """Validate the arguments, run one check (blocking); return its verdict and the requests it sent."""
    chosen = get_check(check)
    arguments = chosen.validate(criteria)
    before = hook.stats["requests"]
    verdict = chosen.decide(hook, **arguments)
    return verdict, hook.stats["requests"] - before
