"""The pure half of the Mailchimp -> Prefinery sync: members in, actions out; no I/O, no Airflow.

``Planner.plan(members)`` streams: it holds one member at a time plus an 8-byte fingerprint and a
timestamp per member seen (to drop duplicates), so planning 100,000 members costs a few MB more than
planning 10,000. What Prefinery already holds comes from an :class:`IdIndex`: per e-mail, the Prefinery
user id and a 32-bit digest of the state the sync last saw or wrote there. A member whose desired state
has the same digest needs no request at all.

Default mapping (``reference/mailchimp-api.md``), configurable through :class:`SyncRules`:

=============  ==================================================
Mailchimp      Prefinery
=============  ==================================================
subscribed     user: create it, or update its profile
unsubscribed   suppression with reason ``Unsubscribe``
cleaned        suppression with reason ``Manual``
pending        nothing
transactional  nothing
archived       nothing
=============  ==================================================

Merge fields map to profile fields (``FNAME`` -> ``first_name``, ``LNAME`` -> ``last_name``; a dotted
name such as ``ADDRESS.city`` reads inside an address). E-mails are compared case-insensitively.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError

USER = "user"
SUPPRESS_UNSUBSCRIBE = "suppression:Unsubscribe"
SUPPRESS_MANUAL = "suppression:Manual"
TARGETS = (USER, SUPPRESS_UNSUBSCRIBE, SUPPRESS_MANUAL, None)
"""What a Mailchimp status may map to: a user, a suppression with a reason, or nothing (None)."""

DEFAULT_STATUS_ACTIONS: dict[str, str | None] = {
    "subscribed": USER,
    "unsubscribed": SUPPRESS_UNSUBSCRIBE,
    "cleaned": SUPPRESS_MANUAL,
    "pending": None,
    "transactional": None,
    "archived": None,
}
DEFAULT_MERGE_FIELDS: dict[str, str] = {"FNAME": "first_name", "LNAME": "last_name"}

Kind = Literal["create", "update", "suppress", "unchanged", "skip", "invalid"]
WRITES: frozenset[str] = frozenset({"create", "update", "suppress"})


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncRules:
    """How Mailchimp members become Prefinery state; validated on construction.

    :param status_actions: Mailchimp status -> ``"user"``, ``"suppression:Unsubscribe"``,
        ``"suppression:Manual"`` or None (no change). Statuses left out map to None.
    :param merge_fields: Mailchimp merge field -> Prefinery profile field (``ADDRESS.city`` reads a
        sub-field).
    :param create_status: the status new users get (None: Prefinery's default).
    """

    status_actions: Mapping[str, str | None] = field(default_factory=lambda: dict(DEFAULT_STATUS_ACTIONS))
    merge_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGE_FIELDS))
    create_status: str | None = None

    def __post_init__(self) -> None:
        for status, target in self.status_actions.items():
            if not isinstance(status, str) or not status:
                raise PrefineryInputError("status_actions", f"has a key that is not a status: {status!r}")
            v.one_of(f"status_actions[{status!r}]", target, TARGETS)
        targets = list(self.merge_fields.values())
        for source, target in self.merge_fields.items():
            if not isinstance(source, str) or not source:
                raise PrefineryInputError("merge_fields", f"has a key that is not a merge field: {source!r}")
            v.one_of(f"merge_fields[{source!r}]", target, v.PROFILE_FIELDS)
        if len(set(targets)) != len(targets):
            raise PrefineryInputError("merge_fields", "maps two merge fields to the same profile field")
        if self.create_status is not None:
            v.one_of("create_status", self.create_status, v.USER_STATUSES)

    @property
    def profile_fields(self) -> tuple[str, ...]:
        """The Prefinery profile fields the sync owns, in a stable order (the digest covers only these)."""
        return tuple(sorted(self.merge_fields.values()))

    def target(self, status: Any) -> str | None:
        return self.status_actions.get(status) if isinstance(status, str) else None

    def profile(self, merge_fields: Mapping[str, Any] | None) -> dict[str, str]:
        """Map a member's merge fields to profile fields; missing or null values become ``""``."""
        merge_fields = merge_fields or {}
        return {target: _text(_dig(merge_fields, source)) for source, target in self.merge_fields.items()}

    def owned_profile(self, profile: Mapping[str, Any] | None) -> dict[str, str]:
        """The fields of a Prefinery profile the sync owns, normalised like :meth:`profile`."""
        profile = profile or {}
        return {name: _text(profile.get(name)) for name in self.merge_fields.values()}


def _dig(mapping: Mapping[str, Any], path: str) -> Any:
    value: Any = mapping
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value).strip()


# --------------------------------------------------------------------------------------------------
# Fingerprints and digests
# --------------------------------------------------------------------------------------------------
def email_key(email: str) -> int:
    """A 64-bit fingerprint of the lower-cased e-mail (the first half of Mailchimp's member id, MD5).

    Keys the id index without storing addresses in Airflow's database; two of 100,000 addresses collide
    with probability about 3e-10.
    """
    digest = hashlib.md5(email.strip().lower().encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _digest32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def user_digest(profile: Mapping[str, str]) -> int:
    """The digest of "a user with these owned profile fields" (order-independent)."""
    return _digest32("user\x1f" + "\x1f".join(f"{k}={profile[k]}" for k in sorted(profile)))


SUPPRESSED_DIGEST = _digest32("suppressed")
"""Any suppression matches any suppressing status: Prefinery holds one suppression per e-mail."""


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp (``Z`` or an offset) to an aware datetime; None when unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------------
# The id index
# --------------------------------------------------------------------------------------------------
INDEX_FORMAT = 1


class IdIndex:
    """E-mail fingerprint -> (Prefinery user id, state digest), compact and serialisable.

    The stored part is three sorted arrays (8 + 8 + 4 bytes per e-mail; about 1.5 MB zlib-compressed for
    100,000 users) searched by bisection; this run's writes sit in a small dict on top, and only they are
    merged into the stored copy at the end (so two runs writing at once lose nothing but their race).
    ``user_id`` 0 means "no user known" (e.g. only a suppression).
    """

    def __init__(
        self,
        keys: array | None = None,
        ids: array | None = None,
        digests: array | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._keys = keys if keys is not None else array("Q")
        self._ids = ids if ids is not None else array("Q")
        self._digests = digests if digests is not None else array("I")
        self.changes: dict[int, tuple[int, int]] = {}
        self.meta: dict[str, Any] = dict(meta or {})

    # ---- reading and writing entries ----
    def get(self, key: int) -> tuple[int, int] | None:
        """Return ``(user_id, digest)`` for an e-mail fingerprint, or None."""
        if key in self.changes:
            return self.changes[key]
        pos = bisect_left(self._keys, key)
        if pos < len(self._keys) and self._keys[pos] == key:
            return self._ids[pos], self._digests[pos]
        return None

    def set(self, key: int, user_id: int | None, digest: int) -> None:
        """Record what Prefinery now holds for an e-mail; keeps a known user id when given none."""
        if not user_id:
            known = self.get(key)
            user_id = known[0] if known else 0
        self.changes[key] = (int(user_id), digest)

    def __len__(self) -> int:
        extra = sum(1 for key in self.changes if self._base_get(key) is None)
        return len(self._keys) + extra

    def _base_get(self, key: int) -> int | None:
        pos = bisect_left(self._keys, key)
        return pos if pos < len(self._keys) and self._keys[pos] == key else None

    # ---- building ----
    @classmethod
    def from_entries(
        cls, entries: Iterable[tuple[int, int, int]], meta: Mapping[str, Any] | None = None
    ) -> IdIndex:
        """Build an index from ``(key, user_id, digest)`` rows; a later row for a key wins."""
        latest: dict[int, tuple[int, int]] = {}
        for key, user_id, digest in entries:
            latest[key] = (user_id, digest)
        keys = array("Q", sorted(latest))
        ids = array("Q", (latest[k][0] for k in keys))
        digests = array("I", (latest[k][1] for k in keys))
        return cls(keys, ids, digests, meta)

    def merged(self, base: IdIndex | None = None) -> IdIndex:
        """Apply this run's changes on top of ``base`` (default: this index's own stored part)."""
        base = base if base is not None else self
        rows = list(zip(base._keys, base._ids, base._digests, strict=True))
        rows.extend((key, uid, dig) for key, (uid, dig) in self.changes.items())
        meta = {**base.meta, **self.meta}
        return IdIndex.from_entries(rows, meta)

    def for_saving(self, stored: IdIndex | None) -> IdIndex:
        """What to store: this run's changes on top of the ``stored`` copy read back just now.

        A freshly rebuilt index replaces what is stored; a stored copy of another scope (host and project)
        is dropped rather than merged.
        """
        fresh = bool(self.meta.get("rebuilt_now"))
        if stored is None or fresh or stored.meta.get("scope") != self.meta.get("scope"):
            stored = None
        merged = self.merged(stored)
        merged.meta.pop("rebuilt_now", None)
        return merged

    # ---- storage ----
    def encode(self) -> str:
        """Serialise (with this run's changes folded in) to one compact JSON string."""
        full = self.merged() if self.changes else self
        blob = b"".join(_le(a).tobytes() for a in (full._keys, full._ids, full._digests))
        payload = {
            "format": INDEX_FORMAT,
            "count": len(full._keys),
            "meta": full.meta,
            "data": base64.b64encode(zlib.compress(blob, 6)).decode("ascii"),
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> IdIndex | None:
        """Read :meth:`encode`'s output; None when it is unreadable or of another format (then rebuild)."""
        try:
            payload = json.loads(text)
            if payload.get("format") != INDEX_FORMAT:
                return None
            count = int(payload["count"])
            blob = zlib.decompress(base64.b64decode(payload["data"]))
        except (ValueError, KeyError, TypeError, AttributeError, zlib.error):
            return None
        if len(blob) != count * 20:
            return None
        keys, ids, digests = array("Q"), array("Q"), array("I")
        keys.frombytes(blob[: 8 * count])
        ids.frombytes(blob[8 * count : 16 * count])
        digests.frombytes(blob[16 * count :])
        return cls(_le(keys), _le(ids), _le(digests), payload.get("meta") or {})


def _le(values: array) -> array:
    """Arrays are stored little-endian whatever the machine (byteswap is its own inverse)."""
    if sys.byteorder == "little":
        return values
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped


def index_rows_from_prefinery(
    users: Iterable[Mapping[str, Any]], suppressions: Iterable[Mapping[str, Any]], rules: SyncRules
) -> Iterator[tuple[int, int, int]]:
    """Turn a full listing of users, then suppressions, into index rows (suppressions win)."""
    known: dict[int, int] = {}
    for user in users:
        email = user.get("email")
        if isinstance(email, str) and email:
            key = email_key(email)
            known[key] = int(user.get("id") or 0)
            yield key, known[key], user_digest(rules.owned_profile(user.get("profile")))
    for item in suppressions:
        email = item.get("email")
        if isinstance(email, str) and email:
            key = email_key(email)
            yield key, known.get(key) or int(item.get("user_id") or 0), SUPPRESSED_DIGEST


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------
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
        base = {"email": email, "key": key, "status": status, "last_changed": last_changed}
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
