"""Seed data: ``empty``, ``demo`` and ``bulk``, deterministic, and the ids tests and DAGs import.

Plain rows (dicts) only, no SQL and no web framework: ``state.Store`` loads them. Timestamps are spread
over the days before ``now`` so windowed syncs ("members changed in the last N days") find realistic data.
"""

from __future__ import annotations

import hashlib
import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DEFAULT_API_KEY = "sbx-dev-0123456789abcdef"
"""The key the sandbox accepts when started without ``--api-key`` (printed in its ready line)."""

SEEDS: tuple[str, ...] = ("empty", "demo", "bulk")
DEFAULT_ACCOUNT = "default"

DEMO_BETA_ID = 1001
"""The project of both seeds (empty in ``empty``, a few hundred users in ``demo``)."""
DEMO_SPARE_BETA_ID = 1002
"""A second ``demo`` project without active users: DELETE project accepts it (the main one answers 2204)."""
DEMO_LIST_ID = "a1b2c3d4e5"
"""The Mailchimp audience of both seeds (2,000 members in ``demo``, none in ``empty``)."""
DEMO_USER_COUNT = 320
DEMO_MEMBER_COUNT = 2000
DEMO_FIRST_USER_ID = 5001

BULK_USER_COUNT = 100_000
"""Users of the ``bulk`` seed in project ``DEMO_BETA_ID`` (exports and their benchmark)."""
BULK_SMALL_BETA_ID = 1003
"""A second ``bulk`` project with ``BULK_SMALL_USER_COUNT`` users of the same shape (memory baselines)."""
BULK_SMALL_USER_COUNT = 10_000
BULK_FIRST_USER_ID = 1_000_001

DEMO_AUTOMATION_UUID = "6a1f0c3e-5b7d-4e2a-9c11-0a0000000001"
"""Piggy automation with event ``contact_updated`` (startable through the API)."""
DEMO_AUTOMATION_UUIDS_UPDATED: tuple[str, ...] = (
    DEMO_AUTOMATION_UUID,
    "6a1f0c3e-5b7d-4e2a-9c11-0a0000000002",
    "6a1f0c3e-5b7d-4e2a-9c11-0a0000000003",
)
DEMO_CREATED_AUTOMATION_UUID = "6a1f0c3e-5b7d-4e2a-9c11-0a0000000004"
"""Piggy automation with event ``contact_created``: runs are refused (only contact_updated may start)."""
PIGGY_CLIENT_ID = "sandbox-client"
PIGGY_CLIENT_SECRET = "sandbox-secret"
PIGGY_TOKEN_TTL = 3600

USER_STATUSES: tuple[str, ...] = (
    "imported",
    "unconfirmed",
    "applied",
    "rejected",
    "invited",
    "active",
    "idle",
    "suspended",
)
MEMBER_STATUSES: tuple[str, ...] = (
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
    "archived",
)
SUPPRESSION_REASONS: tuple[str, ...] = ("Manual", "Unsubscribe", "HardBounce", "SpamComplaint")
REWARD_DEFINITIONS: dict[str, tuple[str, str, str]] = {
    # descriptor: (name, type, user_role)
    "referral-bonus": ("Referral bonus", "SingleSided", "referrer"),
    "friend-discount": ("20% off for you and a friend", "DoubleSided", "friend"),
    "milestone-5": ("5 referrals: early access", "Milestone", "referrer"),
}

_FIRST = (
    "Ada",
    "Bram",
    "Chloe",
    "Daan",
    "Emma",
    "Finn",
    "Gwen",
    "Hugo",
    "Iris",
    "Jens",
    "Kim",
    "Lotte",
    "Milan",
    "Noor",
    "Otto",
    "Pia",
    "Quinn",
    "Ruben",
    "Sara",
    "Tess",
    "Umar",
    "Vera",
    "Wout",
    "Yara",
)
_LAST = (
    "Jansen",
    "de Vries",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "de Boer",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
    "Kok",
    "Lambert",
    "Garcia",
    "Okafor",
    "Nguyen",
    "Khan",
)
_COUNTRIES = ("NL", "BE", "DE", "FR", "GB", "US", "ES")
_USER_MIX = {
    "imported": 40,
    "unconfirmed": 30,
    "applied": 110,
    "rejected": 20,
    "invited": 40,
    "active": 50,
    "idle": 15,
    "suspended": 15,
}
_MEMBER_MIX = {
    "subscribed": 1400,
    "unsubscribed": 250,
    "cleaned": 100,
    "pending": 120,
    "transactional": 80,
    "archived": 50,
}


@dataclass
class SeedData:
    """Rows per table (each field names one), in the column names of each API's ``state`` ``TABLES``."""

    projects: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[dict[str, Any]] = field(default_factory=list)
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    mc_lists: list[dict[str, Any]] = field(default_factory=list)
    mc_members: list[dict[str, Any]] = field(default_factory=list)
    piggy_automations: list[dict[str, Any]] = field(default_factory=list)
    piggy_contacts: list[dict[str, Any]] = field(default_factory=list)


def iso_z(moment: datetime) -> str:
    """Prefinery's timestamp format: UTC, seconds, ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(moment: datetime) -> str:
    """Mailchimp's timestamp format: UTC with ``+00:00`` (fixed width, so it sorts as text)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def member_id(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased email."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def build(name: str, now: datetime | None = None) -> SeedData:
    """Return the rows of seed ``name`` (one of ``SEEDS``), timestamps relative to ``now``."""
    if name not in SEEDS:
        raise ValueError(f"unknown seed {name!r}; choose one of {', '.join(SEEDS)}")
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    data = SeedData()
    _base(data, now)
    if name == "demo":
        rng = random.Random(20240601)
        _demo_prefinery(data, rng, now)
        _demo_mailchimp(data, rng, now)
        _demo_piggy_contacts(data, rng, now)
    elif name == "bulk":
        _bulk_prefinery(data, now)
    return data


def _base(data: SeedData, now: datetime) -> None:
    """What both seeds share: the project, the audience (no members) and the Piggy automations."""
    created = iso_z(now - timedelta(days=120))
    data.projects.append(_project(DEMO_BETA_ID, "Sandbox Launch", "https://launch.example.com", created))
    data.mc_lists.append(
        {
            "id": DEMO_LIST_ID,
            "account": DEFAULT_ACCOUNT,
            "name": "Sandbox Newsletter",
            "date_created": iso_offset(now - timedelta(days=400)),
        }
    )
    names = ("Send reward email", "Grant 100 credits", "Update loyalty tier")
    for index, (auuid, label) in enumerate(zip(DEMO_AUTOMATION_UUIDS_UPDATED, names, strict=True)):
        data.piggy_automations.append(
            _automation(auuid, "contact_updated", label, "inactive" if index == 2 else "active", created)
        )
    data.piggy_automations.append(
        _automation(DEMO_CREATED_AUTOMATION_UUID, "contact_created", "Welcome new contact", "active", created)
    )


def _project(pid: int, name: str, homepage: str, created: str) -> dict[str, Any]:
    return {
        "id": pid,
        "account": DEFAULT_ACCOUNT,
        "name": name,
        "homepage_url": homepage,
        "impressions_count": 0,
        "share_clicks_count": 0,
        "share_signups_count": 0,
        "created_at": created,
        "updated_at": created,
    }


def _automation(auuid: str, event: str, name: str, status: str, created: str) -> dict[str, Any]:
    return {
        "uuid": auuid,
        "account": DEFAULT_ACCOUNT,
        "event": event,
        "name": name,
        "status": status,
        "created_at": created,
        "updated_at": created,
    }


def _person(rng: random.Random, index: int, domain: str) -> tuple[str, str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = f"{first}.{last}".lower().replace(" ", "")
    return first, last, f"{local}{index}@{domain}"


def _code(rng: random.Random, taken: set[str]) -> str:
    while True:
        code = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        if code not in taken:
            taken.add(code)
            return code


def _demo_prefinery(data: SeedData, rng: random.Random, now: datetime) -> None:
    """Users in every status with referrals, rewards in every status, suppressions of all reasons, points."""
    project = data.projects[0]
    project.update(impressions_count=48211, share_clicks_count=3120, share_signups_count=610)
    data.projects.append(
        _project(
            DEMO_SPARE_BETA_ID, "Sandbox Spare", "https://spare.example.com", iso_z(now - timedelta(days=30))
        )
    )
    statuses = [status for status, count in _USER_MIX.items() for _ in range(count)]
    rng.shuffle(statuses)
    codes: set[str] = set()
    referrers: list[int] = []
    for offset, status in enumerate(statuses):
        uid = DEMO_FIRST_USER_ID + offset
        first, last, email = _person(rng, offset, "example.com")
        created = now - timedelta(days=90) + timedelta(minutes=390 * offset + rng.randint(0, 300))
        referred_by = rng.choice(referrers) if referrers and rng.random() < 0.3 else None
        data.users.append(
            _user(rng, uid, status, first, last, email, _code(rng, codes), created, referred_by)
        )
        if status in ("invited", "active", "idle"):
            referrers.append(uid)
    _demo_rewards(data, rng, now)
    _demo_suppressions(data, rng, now)
    _demo_points(data, rng, now)


def _user(
    rng: random.Random,
    uid: int,
    status: str,
    first: str,
    last: str,
    email: str,
    code: str,
    created: datetime,
    referred_by: int | None,
) -> dict[str, Any]:
    stamp = iso_z(created)
    later = iso_z(created + timedelta(hours=rng.randint(1, 72)))
    invited = status in ("invited", "active", "idle")
    profile = {
        "first_name": first,
        "last_name": last,
        "country": rng.choice(_COUNTRIES),
        "custom_var1": rng.choice(("plan:free", "plan:pro", "plan:team")),
        "utm_source": rng.choice(("twitter", "newsletter", "google", "")),
    }
    return {
        "id": uid,
        "beta_id": DEMO_BETA_ID,
        "email": email,
        "status": status,
        "invitation_code": None,
        "imported_at": stamp if status == "imported" else None,
        "applied_at": stamp if status not in ("imported", "unconfirmed") else None,
        "invited_at": later if invited else None,
        "joined_at": later if status in ("active", "idle") else None,
        "unsubscribed_at": None,
        "share_clicks_count": rng.randint(0, 40),
        "share_signups_count": rng.randint(0, 6),
        "friend_invitations_allowed": 10,
        "friend_invitations_count": 0,
        "referral_code": code,
        "referred_by": referred_by,
        "groups": rng.choice(("", "", "beta", "beta,vip")),
        "profile": profile,
        "responses": [],
        "created_at": stamp,
        "updated_at": later,
    }


def _demo_rewards(data: SeedData, rng: random.Random, now: datetime) -> None:
    holders = [u for u in data.users if u["status"] in ("invited", "active", "idle")]
    plan = ["earned"] * 40 + ["delivered"] * 35 + ["revoked"] * 15
    for index, status in enumerate(plan):
        user = holders[index % len(holders)]
        descriptor = rng.choice(list(REWARD_DEFINITIONS))
        name, kind, role = REWARD_DEFINITIONS[descriptor]
        earned = now - timedelta(days=rng.randint(2, 60), minutes=rng.randint(0, 1400))
        done = iso_z(earned + timedelta(days=1))
        data.rewards.append(
            {
                "beta_id": DEMO_BETA_ID,
                "user_id": user["id"],
                "descriptor": descriptor,
                "name": name,
                "type": kind,
                "user_role": role,
                "status": status,
                "earned_at": iso_z(earned),
                "delivered_at": done if status == "delivered" else None,
                "revoked_at": done if status == "revoked" else None,
            }
        )


def _demo_suppressions(data: SeedData, rng: random.Random, now: datetime) -> None:
    suspended = [u for u in data.users if u["status"] == "suspended"]
    others = [u for u in data.users if u["status"] in ("applied", "rejected")]
    plan = [("HardBounce", u) for u in suspended[:6]]
    plan += [
        (reason, u)
        for reason, u in zip(
            ["Manual"] * 8 + ["Unsubscribe"] * 6 + ["SpamComplaint"] * 4, others, strict=False
        )
    ]
    plan += [("Manual", None), ("Manual", None)]  # emails that are not users
    for index, (reason, user) in enumerate(plan):
        when = iso_z(now - timedelta(days=rng.randint(1, 40)))
        email = user["email"] if user else f"stranger{index}@blocked.example.net"
        if user is not None and reason == "Unsubscribe":
            user["unsubscribed_at"] = when
        data.suppressions.append(
            {
                "beta_id": DEMO_BETA_ID,
                "email": email,
                "user_id": user["id"] if user else None,
                "reason": reason,
                "suppressed_at": when,
            }
        )


def _demo_points(data: SeedData, rng: random.Random, now: datetime) -> None:
    holders = [u for u in data.users if u["status"] in ("invited", "active", "idle")]
    activities = ("bonus", "signup", "share", "referral", "reward", "friend_reward")
    for _ in range(200):
        user = rng.choice(holders)
        data.points.append(
            {
                "beta_id": DEMO_BETA_ID,
                "user_id": user["id"],
                "quantity": rng.choice((5, 10, 25, 50, 100)),
                "activity": rng.choice(activities),
                "reason": rng.choice(("Shared on social", "Referred a friend", None)),
                "created_at": iso_z(now - timedelta(days=rng.randint(0, 60))),
            }
        )


def _demo_mailchimp(data: SeedData, rng: random.Random, now: datetime) -> None:
    """2,000 members in every status; a tenth share an email with a Prefinery user (updates, not creates)."""
    statuses = [status for status, count in _MEMBER_MIX.items() for _ in range(count)]
    rng.shuffle(statuses)
    users = data.users
    for index, status in enumerate(statuses):
        if index % 10 == 0 and index // 10 < len(users):
            user = users[index // 10]
            first, last, email = user["profile"]["first_name"], user["profile"]["last_name"], user["email"]
        else:
            first, last, email = _person(rng, index, "mail.example.org")
        changed = now - timedelta(seconds=rng.randint(60, 14 * 86400))
        signup = changed - timedelta(days=rng.randint(0, 300))
        data.mc_members.append(
            {
                "list_id": DEMO_LIST_ID,
                "id": member_id(email),
                "email_address": email,
                "unique_email_id": hashlib.sha1(email.encode()).hexdigest()[:10],
                "status": status,
                "merge_fields": {"FNAME": first, "LNAME": last},
                "last_changed": iso_offset(changed),
                "timestamp_signup": iso_offset(signup),
                "timestamp_opt": iso_offset(signup + timedelta(minutes=5)),
                "vip": rng.random() < 0.02,
                "tags": [{"id": 101, "name": "sandbox"}] if rng.random() < 0.2 else [],
            }
        )


def _demo_piggy_contacts(data: SeedData, rng: random.Random, now: datetime) -> None:
    """Contacts for the active and idle users: the ones a reward-delivery DAG starts automations for."""
    for user in data.users:
        if user["status"] in ("active", "idle"):
            data.piggy_contacts.append(
                {
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "account": DEFAULT_ACCOUNT,
                    "email": user["email"],
                    "created_at": iso_z(now - timedelta(days=rng.randint(1, 60))),
                }
            )


def _bulk_prefinery(data: SeedData, now: datetime) -> None:
    """100,000 users in the main project and 10,000 in a second one, every field filled.

    Fields are arithmetic on the index rather than random draws, so the rows build in about a second;
    every status, a sixth of users referred (by the first tenth), distinct e-mails and referral codes.
    """
    created = iso_z(now - timedelta(days=365))
    data.projects.append(
        _project(BULK_SMALL_BETA_ID, "Sandbox Bulk Small", "https://small.example.com", created)
    )
    start = now - timedelta(days=365)
    first_id = BULK_FIRST_USER_ID
    for beta_id, count in ((DEMO_BETA_ID, BULK_USER_COUNT), (BULK_SMALL_BETA_ID, BULK_SMALL_USER_COUNT)):
        stamps = [iso_z(start + timedelta(seconds=300 * i)) for i in range(0, count, 12)]
        for i in range(count):
            status = USER_STATUSES[i % len(USER_STATUSES)]
            first, last = _FIRST[i % len(_FIRST)], _LAST[i // len(_FIRST) % len(_LAST)]
            stamp = stamps[i // 12]
            invited = status in ("invited", "active", "idle")
            data.users.append(
                {
                    "id": first_id + i,
                    "beta_id": beta_id,
                    "email": f"{first}.{last}.{beta_id}.{i}@bulk.example.com".lower().replace(" ", ""),
                    "status": status,
                    "invitation_code": None,
                    "imported_at": stamp if status == "imported" else None,
                    "applied_at": stamp if status not in ("imported", "unconfirmed") else None,
                    "invited_at": stamp if invited else None,
                    "joined_at": stamp if status in ("active", "idle") else None,
                    "unsubscribed_at": None,
                    "share_clicks_count": i % 41,
                    "share_signups_count": i % 7,
                    "friend_invitations_allowed": 10,
                    "friend_invitations_count": i % 3,
                    "referral_code": f"BK{beta_id % 100:02d}{i:06d}",
                    "referred_by": first_id + i // 10 if i % 6 == 5 else None,
                    "groups": ("", "beta", "beta,vip")[i % 3],
                    "profile": {
                        "first_name": first,
                        "last_name": last,
                        "country": _COUNTRIES[i % len(_COUNTRIES)],
                        "custom_var1": ("plan:free", "plan:pro", "plan:team")[i % 3],
                    },
                    "responses": [],
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        first_id += count
