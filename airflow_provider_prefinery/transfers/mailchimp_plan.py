"""The pure half of the Mailchimp -> Prefinery sync: members in, actions out; no I/O, no Airflow.

``Planner.plan(members)`` streams: it holds one member at a time plus an 8-byte fingerprint and a
timestamp per member seen (to drop duplicates), so planning 100,000 members costs a few MB more than
planning 10,000. What Prefinery already holds comes from an :class:`IdIndex` (``mailchimp_id_index.py``);
how a member maps to Prefinery state, from :class:`SyncRules` (``mailchimp_rules.py``). A member whose
desired state has the digest Prefinery already holds needs no request at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex
from airflow_provider_prefinery.transfers.mailchimp_rules import (
    SUPPRESSED_DIGEST,
    USER,
    SyncRules,
    email_key,
    parse_time,
    user_digest,
)

Kind = Literal["create", "update", "suppress", "unchanged", "skip", "invalid"]
WRITES: frozenset[str] = frozenset({"create", "update", "suppress"})


@dataclass(frozen=True)
class Action:
    """One member's planned change. ``supersedes`` marks a newer duplicate of an e-mail planned earlier
    in the same run: apply it after the earlier one finished."""

    kind: Kind
    email: str
    key: int
    status: str
    last_changed: str
    profile: dict[str, str] | None = None
    reason: str | None = None  # suppression reason, or why skipped/invalid
    user_id: int | None = None
    digest: int = 0
    supersedes: bool = False

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly line for logs and dry-run reports."""
        out: dict[str, Any] = {"action": self.kind, "email": self.email, "status": self.status}
        if self.profile is not None and self.kind in ("create", "update"):
            out["profile"] = self.profile
        if self.reason:
            out["reason"] = self.reason
        if self.user_id:
            out["user_id"] = self.user_id
        return out


@dataclass
class PlanStats:
    """What the planner saw besides its actions."""

    members: int = 0
    duplicates: int = 0
    outside_window: int = 0


class Planner:
    """Turn Mailchimp members into :class:`Action` s against an :class:`IdIndex`, lazily and purely.

    :param rules: the mapping.
    :param index: what Prefinery holds (an empty index plans every user as a create).
    :param since: keep members with ``last_changed >= since`` (None: no lower bound).
    :param before: keep members with ``last_changed < before`` (None: no upper bound).
    """

    def __init__(
        self,
        rules: SyncRules,
        index: IdIndex,
        *,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> None:
        self.rules = rules
        self.index = index
        self.since = since
        self.before = before
        self.stats = PlanStats()
        self._seen: dict[int, float] = {}

    def plan(self, members: Iterable[Mapping[str, Any]]) -> Iterator[Action]:
        """Yield one action per member (newest ``last_changed`` wins among duplicates)."""
        for member in members:
            action = self.plan_one(member)
            if action is not None:
                yield action

    def plan_one(self, member: Mapping[str, Any]) -> Action | None:
        """Plan one member; None when it is outside the window or an older duplicate."""
        self.stats.members += 1
        email = member.get("email_address")
        status = str(member.get("status") or "")
        changed_at = parse_time(member.get("last_changed"))
        if changed_at is not None and not self._in_window(changed_at):
            self.stats.outside_window += 1
            return None
        if not isinstance(email, str) or not email.strip():
            return Action("invalid", str(email), 0, status, "", reason="member has no email_address")
        key = email_key(email)
        stamp = changed_at.timestamp() if changed_at else float("-inf")
        previous = self._seen.get(key)
        if previous is not None and stamp <= previous:
            self.stats.duplicates += 1
            return None
        self._seen[key] = stamp
        if previous is not None:
            self.stats.duplicates += 1
        action = self._decide(member, email.strip(), key, status)
        if previous is not None:
            action = replace(action, supersedes=True)
        return action

    def _in_window(self, moment: datetime) -> bool:
        if self.since is not None and moment < self.since:
            return False
        return not (self.before is not None and moment >= self.before)

    def _decide(self, member: Mapping[str, Any], email: str, key: int, status: str) -> Action:
        last_changed = str(member.get("last_changed") or "")
        target = self.rules.target(status)
        base: dict[str, Any] = {"email": email, "key": key, "status": status, "last_changed": last_changed}
        if target is None:
            why = "status maps to no change" if status in self.rules.status_actions else "unknown status"
            return Action("skip", reason=f"{why}: {status or '(none)'}", **base)
        try:
            v.email("email_address", email)
        except PrefineryInputError as err:
            return Action("invalid", reason=err.message.removeprefix(f"{err.field}: "), **base)
        known = self.index.get(key)
        known_id = known[0] if known else 0
        if target == USER:
            profile = self.rules.profile(member.get("merge_fields"))
            digest = user_digest(profile)
            if known and known_id and known[1] == digest:
                return Action("unchanged", profile=profile, user_id=known_id, digest=digest, **base)
            kind: Kind = "update" if known_id else "create"
            return Action(kind, profile=profile, user_id=known_id or None, digest=digest, **base)
        reason = target.split(":", 1)[1]
        if known and known[1] == SUPPRESSED_DIGEST:
            return Action(
                "unchanged", reason=reason, user_id=known_id or None, digest=SUPPRESSED_DIGEST, **base
            )
        return Action("suppress", reason=reason, user_id=known_id or None, digest=SUPPRESSED_DIGEST, **base)


def collapse(actions: Iterable[Action]) -> list[Action]:
    """The effective plan: for each e-mail only its last action (what applying in order leaves behind)."""
    final: dict[int, Action] = {}
    for action in actions:
        final.pop(action.key, None)
        final[action.key] = action
    return list(final.values())
