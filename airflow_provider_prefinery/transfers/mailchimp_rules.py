"""How a Mailchimp member maps to Prefinery state: the rules, and the fingerprints that compare states.

Pure: no I/O, no Airflow. Default mapping (``reference/mailchimp-api.md``), configurable through
:class:`SyncRules`:

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
name such as ``ADDRESS.city`` reads inside an address). E-mails are compared case-insensitively, by a
64-bit fingerprint; what Prefinery holds for the fields the sync owns, by a 32-bit digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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
