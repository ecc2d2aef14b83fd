"""The sandbox's state: a SQLite store with the three APIs' rules, and no web framework.

Rows are keyed by account (each API key belongs to one) and project. Methods take parsed input, apply the
documented rules and raise ``errors`` classes; the API modules only parse and render. The server runs one
event loop and calls the store from it, so one connection serves every request without locks.
``reset(seed)`` restores a snapshot taken right after seeding, so resetting between tests costs milliseconds.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.seeds import iso_offset, iso_z, member_id

PER_PAGE = 25
MAILCHIMP_MAX_COUNT = 1000
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WAITLISTED = ("imported", "unconfirmed", "applied")
# Documented transitions (reference: user status); any status may go to suspended; same status is a no-op.
TRANSITIONS: dict[str, frozenset[str]] = {
    "imported": frozenset({"applied", "invited", "rejected", "active"}),
    "unconfirmed": frozenset({"applied"}),
    "applied": frozenset({"invited", "rejected", "active"}),
    "rejected": frozenset({"invited", "active"}),
    "invited": frozenset({"rejected", "active"}),
    "active": frozenset(),
    "idle": frozenset({"active"}),
    "suspended": frozenset(),
}
PERMISSIONS: frozenset[str] = frozenset(
    {
        "projects:read",
        "projects:delete",
        "users:create",
        "users:read",
        "users:update",
        "users:delete",
        "rewards:create",
        "rewards:read",
        "rewards:update",
        "suppressions:create",
        "suppressions:read",
        "suppressions:delete",
        "friend_invitations:create",
        "points:create",
        "points:read",
    }
)

SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT, homepage_url TEXT,
  impressions_count INT, share_clicks_count INT, share_signups_count INT, created_at TEXT, updated_at TEXT);
CREATE TABLE users (id INTEGER PRIMARY KEY, beta_id INT NOT NULL, email TEXT NOT NULL, status TEXT,
  invitation_code TEXT, imported_at TEXT, applied_at TEXT, invited_at TEXT, joined_at TEXT,
  unsubscribed_at TEXT, share_clicks_count INT, share_signups_count INT, friend_invitations_allowed INT,
  friend_invitations_count INT,
  referral_code TEXT, referred_by INT, groups TEXT, profile TEXT, responses TEXT, created_at TEXT,
  updated_at TEXT);
CREATE UNIQUE INDEX users_email ON users (beta_id, email COLLATE NOCASE);
CREATE INDEX users_status ON users (beta_id, status, id);
CREATE INDEX users_project ON users (beta_id, id);
CREATE INDEX users_code ON users (referral_code);
CREATE TABLE rewards (id INTEGER PRIMARY KEY, beta_id INT, user_id INT, descriptor TEXT, name TEXT,
  type TEXT, user_role TEXT, status TEXT, earned_at TEXT, delivered_at TEXT, revoked_at TEXT);
CREATE INDEX rewards_user ON rewards (beta_id, user_id);
CREATE TABLE suppressions (id INTEGER PRIMARY KEY, beta_id INT, email TEXT, user_id INT, reason TEXT,
  suppressed_at TEXT);
CREATE UNIQUE INDEX suppressions_email ON suppressions (beta_id, email COLLATE NOCASE);
CREATE TABLE points (id INTEGER PRIMARY KEY, beta_id INT, user_id INT, quantity INT, activity TEXT,
  reason TEXT, created_at TEXT);
CREATE INDEX points_user ON points (beta_id, user_id);
CREATE TABLE friend_invitations (id INTEGER PRIMARY KEY, beta_id INT, sender_id INT, recipient_email TEXT,
  message TEXT, created_at TEXT);
CREATE TABLE reward_triggers (id INTEGER PRIMARY KEY, beta_id INT, email TEXT, event TEXT,
  reward_id INT, created_at TEXT);
CREATE TABLE mc_lists (id TEXT PRIMARY KEY, account TEXT, name TEXT, date_created TEXT);
CREATE TABLE mc_members (list_id TEXT, id TEXT, email_address TEXT, unique_email_id TEXT, status TEXT,
  merge_fields TEXT, last_changed TEXT, timestamp_signup TEXT, timestamp_opt TEXT, vip INT, tags TEXT,
  PRIMARY KEY (list_id, id));
CREATE INDEX mc_members_changed ON mc_members (list_id, last_changed, id);
CREATE INDEX mc_members_status ON mc_members (list_id, status, last_changed, id);
CREATE TABLE piggy_automations (uuid TEXT PRIMARY KEY, account TEXT, event TEXT, name TEXT, status TEXT,
  created_at TEXT, updated_at TEXT);
CREATE TABLE piggy_contacts (uuid TEXT PRIMARY KEY, account TEXT, email TEXT, created_at TEXT);
CREATE UNIQUE INDEX piggy_contacts_email ON piggy_contacts (account, email COLLATE NOCASE);
CREATE TABLE piggy_runs (id INTEGER PRIMARY KEY, account TEXT, contact_uuid TEXT, automation_uuid TEXT,
  data TEXT, created_at TEXT);
"""
JSON_COLUMNS = frozenset({"profile", "responses", "merge_fields", "tags", "data"})
DUMPABLE = {
    "projects": "SELECT * FROM projects ORDER BY id",
    "users": "SELECT * FROM users ORDER BY id",
    "rewards": "SELECT * FROM rewards ORDER BY id",
    "suppressions": "SELECT * FROM suppressions ORDER BY id",
    "points": "SELECT * FROM points ORDER BY id",
    "friend_invitations": "SELECT * FROM friend_invitations ORDER BY id",
    "reward_triggers": "SELECT * FROM reward_triggers ORDER BY id",
    "mailchimp_members": "SELECT * FROM mc_members ORDER BY last_changed, id",
    "piggy_automations": "SELECT * FROM piggy_automations ORDER BY uuid",
    "piggy_contacts": "SELECT * FROM piggy_contacts ORDER BY created_at, uuid",
    "piggy_runs": "SELECT * FROM piggy_runs ORDER BY id",
}


@dataclass
class KeyInfo:
    """What a key may do: its account, its permissions (None = all) and whether the plan has API access."""

    account: str = seeds.DEFAULT_ACCOUNT
    permissions: frozenset[str] | None = None
    api_access: bool = True


@dataclass
class Schedule:
    """A status change that happens after N reads of its resource, or N seconds (sensors wait on these)."""

    target: str  # "reward" | "user" | "new_reward"
    status: str
    beta_id: int
    id: int | None = None
    email: str | None = None
    descriptor: str = "referral-bonus"
    after_reads: int | None = None
    due_at: float | None = None
    reads: int = 0
    done: bool = False


@dataclass
class PiggyRejection:
    status: int = 422
    code: int = 60015
    message: str = "Automation run rejected for this contact."


@dataclass
class Page:
    """One page of a Prefinery list and its ``X-Pagination`` header."""

    items: list[dict[str, Any]]
    header: dict[str, Any] = field(default_factory=dict)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for name in JSON_COLUMNS.intersection(out):
        if out[name] is not None:
            out[name] = json.loads(out[name])
    return out


def _require_int(value: Any) -> int | None:
    """An integer from JSON (int, or a string of digits); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def parse_mailchimp_time(value: str) -> str:
    """Normalise an ISO 8601 query value (with or without offset; naive = UTC) to the stored format."""
    text = value.strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise e.BadRequest(f"invalid ISO 8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso_offset(moment)


class Store:
    """All state of one sandbox process."""

    def __init__(
        self,
        db_path: str | None = None,
        api_keys: Sequence[str] = (seeds.DEFAULT_API_KEY,),
        seed: str = "demo",
        *,
        keep_existing: bool = False,
    ) -> None:
        self.db = sqlite3.connect(db_path or ":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL" if db_path else "PRAGMA journal_mode=MEMORY")
        self.db.execute("PRAGMA synchronous=OFF")
        self.default_keys = tuple(api_keys) or (seeds.DEFAULT_API_KEY,)
        self.piggy_client = (seeds.PIGGY_CLIENT_ID, seeds.PIGGY_CLIENT_SECRET)
        self.token_ttl = seeds.PIGGY_TOKEN_TTL
        self._snapshots: dict[str, sqlite3.Connection] = {}
        self.seed_name = seed
        has_schema = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='users'").fetchone()
        if keep_existing and has_schema:
            self._reset_memory()
        else:
            self.reset(seed)

    # --- lifecycle -------------------------------------------------------------------------------------
    def reset(self, seed: str = "demo") -> None:
        """Forget everything and load ``seed``: tables from a snapshot, keys and counters to defaults."""
        snapshot = self._snapshots.get(seed)
        if snapshot is None:
            snapshot = self._snapshots[seed] = self._build_snapshot(seed)
        snapshot.backup(self.db)
        self.seed_name = seed
        self._reset_memory()

    def _reset_memory(self) -> None:
        self._waitlists: dict[int, list[int]] = {}
        self.keys: dict[str, KeyInfo] = {key: KeyInfo() for key in self.default_keys}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.token_exchanges: list[dict[str, Any]] = []
        self.schedules: list[Schedule] = []
        self.piggy_rejections: dict[str, PiggyRejection] = {}

    @staticmethod
    def _build_snapshot(seed: str) -> sqlite3.Connection:
        data = seeds.build(seed)
        snap = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        snap.executescript(SCHEMA)
        snap.execute("BEGIN")
        for table in (
            "projects",
            "users",
            "rewards",
            "suppressions",
            "points",
            "mc_lists",
            "mc_members",
            "piggy_automations",
            "piggy_contacts",
        ):
            rows = getattr(data, table)
            if rows:
                cols = list(rows[0])
                sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
                snap.executemany(sql, ([_cell(r[c], c) for c in cols] for r in rows))
        snap.execute("COMMIT")
        return snap

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        return _row(self.db.execute(sql, params).fetchone())

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [_row(r) for r in self.db.execute(sql, params).fetchall()]  # type: ignore[misc]

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        self._waitlists.clear()
        cols = list(values)
        sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        return int(self.db.execute(sql, [_cell(values[c], c) for c in cols]).lastrowid or 0)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        self._waitlists.clear()
        sets = ",".join(f"{c}=?" for c in values)
        self.db.execute(
            f"UPDATE {table} SET {sets} WHERE id=?", [*(_cell(v, c) for c, v in values.items()), row_id]
        )

    # --- keys and permissions --------------------------------------------------------------------------
    def key_info(self, key: str | None) -> KeyInfo:
        """The key's grants; a missing or unknown key is 401."""
        info = self.keys.get(key or "")
        if info is None:
            raise e.Unauthorized()
        return info

    def authorize(self, key: str | None, permission: str | None) -> KeyInfo:
        """401 unknown key, 402 plan without API access, 403 key without ``permission``."""
        info = self.key_info(key)
        if not info.api_access:
            raise e.PaymentRequired()
        if permission and info.permissions is not None and permission not in info.permissions:
            raise e.Forbidden(f"the API key lacks the '{permission}' permission")
        return info

    def set_key(
        self,
        key: str,
        *,
        permissions: Iterable[str] | None = None,
        api_access: bool = True,
        account: str = seeds.DEFAULT_ACCOUNT,
    ) -> KeyInfo:
        """Add or change a key. ``permissions`` None grants all; unknown names are refused."""
        grants = None if permissions is None else frozenset(permissions)
        unknown = sorted((grants or frozenset()) - PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions {unknown}; known: {sorted(PERMISSIONS)}")
        self.keys[key] = KeyInfo(account=account, permissions=grants, api_access=api_access)
        return self.keys[key]

    # --- projects --------------------------------------------------------------------------------------
    def _project_row(self, account: str, beta_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM projects WHERE id=? AND account=?", (beta_id, account))
        if row is None:
            raise e.NotFound(f"project {beta_id} not found")
        return row

    def _project_json(self, row: dict[str, Any]) -> dict[str, Any]:
        counts = dict(
            self.db.execute(
                "SELECT status, COUNT(*) FROM users WHERE beta_id=? GROUP BY status", (row["id"],)
            ).fetchall()
        )
        out = {
            k: row[k]
            for k in (
                "id",
                "name",
                "homepage_url",
                "impressions_count",
                "share_clicks_count",
                "share_signups_count",
            )
        }
        out["testers_count"] = sum(counts.values())
        for status in ("imported", "applied", "invited", "active", "rejected"):
            out[f"{status}_testers_count"] = counts.get(status, 0)
        out.update(created_at=row["created_at"], updated_at=row["updated_at"])
        return out

    def check_project(self, account: str, beta_id: int) -> None:
        self._project_row(account, beta_id)

    def list_projects(self, account: str, page: int) -> Page:
        return self._page(
            "SELECT * FROM projects WHERE account=?", (account,), "id", page, self._project_json
        )

    def get_project(self, account: str, beta_id: int) -> dict[str, Any]:
        return self._project_json(self._project_row(account, beta_id))

    def delete_project(self, account: str, beta_id: int) -> None:
        """Delete a project and everything in it; refused (2204) while it has active users."""
        self._project_row(account, beta_id)
        if self.db.execute(
            "SELECT 1 FROM users WHERE beta_id=? AND status='active' LIMIT 1", (beta_id,)
        ).fetchone():
            raise e.ProjectNotDeletable()
        for table in ("users", "rewards", "suppressions", "points", "friend_invitations", "reward_triggers"):
            self.db.execute(f"DELETE FROM {table} WHERE beta_id=?", (beta_id,))
        self._waitlists.clear()
        self.db.execute("DELETE FROM projects WHERE id=?", (beta_id,))

    # --- pagination ------------------------------------------------------------------------------------
    def _page(self, select: str, params: Sequence[Any], order: str, page: int, render: Any) -> Page:
        total = self.db.execute(f"SELECT COUNT(*) FROM ({select})", params).fetchone()[0]
        page = max(1, page)
        rows = self._all(f"{select} ORDER BY {order} LIMIT {PER_PAGE} OFFSET {(page - 1) * PER_PAGE}", params)
        pages = math.ceil(total / PER_PAGE)
        items = [render(r) for r in rows]
        header = {
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < pages else None,
            "current_page": page,
            "per_page": PER_PAGE,
            "count": len(items),
            "pages": pages,
            "total_count": total,
        }
        return Page(items, header)

    # --- users -----------------------------------------------------------------------------------------
    def _waitlist(self, beta_id: int) -> list[int]:
        """Ids of the project's waitlisted users in order, cached until a user changes (hot on GET)."""
        ids = self._waitlists.get(beta_id)
        if ids is None:
            marks = ",".join("?" * len(WAITLISTED))
            sql = f"SELECT id FROM users WHERE beta_id=? AND status IN ({marks}) ORDER BY id"
            ids = self._waitlists[beta_id] = [r[0] for r in self.db.execute(sql, (beta_id, *WAITLISTED))]
        return ids

    def _user_row(self, beta_id: int, user_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM users WHERE id=? AND beta_id=?", (user_id, beta_id))
        if row is None:
            raise e.NotFound(f"user {user_id} not found")
        return row

    def _user_by_email(self, beta_id: int, email: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM users WHERE beta_id=? AND email=? COLLATE NOCASE", (beta_id, email))

    def _user_json(self, row: dict[str, Any]) -> dict[str, Any]:
        waitlist = self._waitlist(row["beta_id"])
        length = len(waitlist)
        position = ahead = behind = None
        if row["status"] in WAITLISTED:
            ahead = bisect.bisect_left(waitlist, row["id"])
            position, behind = ahead + 1, length - ahead - 1
        code = row["referral_code"]
        out = {
            k: row[k]
            for k in (
                "id",
                "email",
                "status",
                "invitation_code",
                "imported_at",
                "applied_at",
                "invited_at",
                "joined_at",
                "unsubscribed_at",
                "share_clicks_count",
                "share_signups_count",
                "friend_invitations_allowed",
                "friend_invitations_count",
            )
        }
        out.update(
            friend_invitations_remaining=max(
                0, row["friend_invitations_allowed"] - row["friend_invitations_count"]
            ),
            referral_code=code,
            share_link=f"https://sandbox.prefinery.local/r/{code}",
            share_status_link=f"https://sandbox.prefinery.local/referrals/{code}",
            waitlist_position=position,
            waitlist_ahead=ahead,
            waitlist_behind=behind,
            waitlist_length=length,
            referred_by=row["referred_by"],
            groups=row["groups"] or "",
            profile=row["profile"] or {},
            responses=row["responses"] or [],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        return out

    def list_users(self, beta_id: int, filters: dict[str, str], page: int) -> Page:
        self._tick("user", beta_id)
        where, params = ["beta_id=?"], [beta_id]
        if filters.get("email_is"):
            where.append("email=? COLLATE NOCASE")
            params.append(filters["email_is"])
        if filters.get("email_contains"):
            where.append("LOWER(email) LIKE ?")
            params.append(f"%{filters['email_contains'].lower()}%")
        if filters.get("name"):
            where.append(
                "LOWER(COALESCE(json_extract(profile,'$.first_name'),'') || ' ' || "
                "COALESCE(json_extract(profile,'$.last_name'),'')) LIKE ?"
            )
            params.append(f"%{filters['name'].lower()}%")
        if filters.get("referral_code"):
            where.append("referral_code=?")
            params.append(filters["referral_code"])
        if filters.get("custom_vars"):
            where.append(
                "("
                + " OR ".join(f"LOWER(json_extract(profile,'$.custom_var{i}')) LIKE ?" for i in (1, 2, 3))
                + ")"
            )
            params += [f"%{filters['custom_vars'].lower()}%"] * 3
        select = f"SELECT * FROM users WHERE {' AND '.join(where)}"
        return self._page(select, params, "id", page, self._user_json)

    def get_user(self, beta_id: int, user_id: int) -> dict[str, Any]:
        self._tick("user", beta_id)
        return self._user_json(self._user_row(beta_id, user_id))

    def create_user(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Create a user: valid unique email (2301, 2310), a known status, optional referrer by code."""
        email = _email(body.get("email"), e.InvalidEmail)
        if self._user_by_email(beta_id, email):
            raise e.DuplicateUser(f"{email} is already a user of project {beta_id}")
        status = body.get("status") or "applied"
        if status not in TRANSITIONS:
            raise e.InvalidUserStatus(f"unknown status {status!r}")
        now = iso_z(utcnow())
        referrer = (
            self._one(
                "SELECT id FROM users WHERE beta_id=? AND referral_code=?", (beta_id, body.get("referrer_id"))
            )
            if body.get("referrer_id")
            else None
        )
        values = {
            "beta_id": beta_id,
            "email": email,
            "status": status,
            "invitation_code": body.get("invitation_code") if status == "active" else None,
            "imported_at": now if status == "imported" else None,
            "applied_at": now if status not in ("imported", "unconfirmed") else None,
            "invited_at": now if status in ("invited", "active") else None,
            "joined_at": now if status == "active" else None,
            "unsubscribed_at": None,
            "share_clicks_count": 0,
            "share_signups_count": 0,
            "friend_invitations_allowed": 10,
            "friend_invitations_count": 0,
            "referral_code": self._new_code(),
            "referred_by": referrer["id"] if referrer else None,
            "groups": "",
            "profile": _profile(body.get("profile")),
            "responses": body.get("responses") or [],
            "created_at": now,
            "updated_at": now,
        }
        uid = self._insert("users", values)
        if referrer:
            self.db.execute(
                "UPDATE users SET share_signups_count=share_signups_count+1 WHERE id=?", (referrer["id"],)
            )
        return self._user_json(self._user_row(beta_id, uid))

    def _new_code(self) -> str:
        while True:
            code = secrets.token_hex(4).upper()
            if not self.db.execute("SELECT 1 FROM users WHERE referral_code=?", (code,)).fetchone():
                return code

    def update_user(self, beta_id: int, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Change email, status (documented transitions only), invitation code, profile (merged), answers."""
        row = self._user_row(beta_id, user_id)
        changes: dict[str, Any] = {}
        if "email" in body:
            email = _email(body["email"], e.InvalidEmail)
            other = self._user_by_email(beta_id, email)
            if other and other["id"] != user_id:
                raise e.DuplicateUser(f"{email} is already a user of project {beta_id}")
            changes["email"] = email
        if body.get("status") and body["status"] != row["status"]:
            changes.update(self._transition(row, body["status"]))
        if "invitation_code" in body:
            changes["invitation_code"] = body["invitation_code"]
        if isinstance(body.get("profile"), dict):
            changes["profile"] = {**(row["profile"] or {}), **_profile(body["profile"])}
        if "responses" in body:
            changes["responses"] = body["responses"] or []
        if changes:
            changes["updated_at"] = iso_z(utcnow())
            self._update("users", user_id, changes)
        return self._user_json(self._user_row(beta_id, user_id))

    @staticmethod
    def _transition(row: dict[str, Any], status: str) -> dict[str, Any]:
        if status not in TRANSITIONS:
            raise e.InvalidUserStatus(f"unknown status {status!r}")
        if status != "suspended" and status not in TRANSITIONS[row["status"]]:
            raise e.InvalidUserStatus(f"a user cannot go from {row['status']} to {status}")
        now = iso_z(utcnow())
        stamp = {"applied": "applied_at", "invited": "invited_at", "active": "joined_at"}.get(status)
        changes: dict[str, Any] = {"status": status}
        if stamp and not row[stamp]:
            changes[stamp] = now
        return changes

    def delete_user(self, beta_id: int, user_id: int) -> None:
        self._user_row(beta_id, user_id)
        self.db.execute("DELETE FROM users WHERE id=?", (user_id,))
        self._waitlists.clear()

    def checkin(
        self, beta_id: int, *, user_id: int | None = None, email: str | None = None
    ) -> dict[str, Any]:
        """Check a user in (by id or email): the user becomes ``active``; repeating is harmless."""
        if user_id is not None:
            row = self._user_row(beta_id, user_id)
        else:
            row = self._user_by_email(beta_id, _email(email, e.InvalidEmail))
            if row is None:
                raise e.NotFound(f"no user with email {email}")
        now = iso_z(utcnow())
        self._update(
            "users", row["id"], {"status": "active", "joined_at": row["joined_at"] or now, "updated_at": now}
        )
        return self._user_json(self._user_row(beta_id, row["id"]))

    # --- rewards ---------------------------------------------------------------------------------------
    def _reward_row(self, beta_id: int, reward_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM rewards WHERE id=? AND beta_id=?", (reward_id, beta_id))
        if row is None:
            raise e.NotFound(f"reward {reward_id} not found")
        return row

    @staticmethod
    def _reward_json(row: dict[str, Any]) -> dict[str, Any]:
        return {
            k: row[k]
            for k in (
                "id",
                "descriptor",
                "name",
                "type",
                "user_role",
                "user_id",
                "status",
                "earned_at",
                "delivered_at",
                "revoked_at",
            )
        }

    def list_rewards(self, beta_id: int, email: str | None, status: str | None, page: int) -> Page:
        self._tick("reward", beta_id)
        where, params = ["r.beta_id=?"], [beta_id]
        if email:
            where.append("u.email=? COLLATE NOCASE")
            params.append(email)
        if status:
            where.append("r.status=?")
            params.append(status)
        select = f"SELECT r.* FROM rewards r LEFT JOIN users u ON u.id=r.user_id WHERE {' AND '.join(where)}"
        return self._page(select, params, "id", page, self._reward_json)

    def get_reward(self, beta_id: int, reward_id: int) -> dict[str, Any]:
        self._tick("reward", beta_id)
        return self._reward_json(self._reward_row(beta_id, reward_id))

    def create_reward(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """An ``earned`` reward for the user with ``email``; one per descriptor unless skip_quantity_check."""
        email = _email(body.get("email"), e.InvalidEmail)
        descriptor = body.get("descriptor")
        if not isinstance(descriptor, str) or not descriptor.strip():
            raise e.RewardError("descriptor is required")
        user = self._user_by_email(beta_id, email)
        if user is None:
            raise e.RewardError(f"no user with email {email}")
        if (
            not body.get("skip_quantity_check")
            and self.db.execute(
                "SELECT 1 FROM rewards WHERE beta_id=? AND user_id=? AND descriptor=?",
                (beta_id, user["id"], descriptor),
            ).fetchone()
        ):
            raise e.RewardQuantityExceeded()
        return self._reward_json(self._reward_row(beta_id, self._earn(beta_id, user["id"], descriptor)))

    def _earn(self, beta_id: int, user_id: int, descriptor: str) -> int:
        name, kind, role = seeds.REWARD_DEFINITIONS.get(
            descriptor, (descriptor.replace("-", " ").capitalize(), "SingleSided", "referrer")
        )
        return self._insert(
            "rewards",
            {
                "beta_id": beta_id,
                "user_id": user_id,
                "descriptor": descriptor,
                "name": name,
                "type": kind,
                "user_role": role,
                "status": "earned",
                "earned_at": iso_z(utcnow()),
            },
        )

    def trigger_rewards(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Record ``event`` for the referred user ``email``. Rule: the first time an event fires for a user
        who was referred, the referrer earns a ``referral-<event>`` reward; repeats earn nothing."""
        email = _email(body.get("email"), e.InvalidEmail)
        event = body.get("event")
        if not isinstance(event, str) or not event.strip():
            raise e.RewardError("event is required")
        user = self._user_by_email(beta_id, email)
        if user is None:
            raise e.RewardError(f"no user with email {email}")
        seen = self.db.execute(
            "SELECT 1 FROM reward_triggers WHERE beta_id=? AND email=? COLLATE NOCASE AND event=?",
            (beta_id, email, event),
        ).fetchone()
        reward_id = None
        if user["referred_by"] and not seen:
            reward_id = self._earn(beta_id, user["referred_by"], f"referral-{event}")
        self._insert(
            "reward_triggers",
            {
                "beta_id": beta_id,
                "email": email,
                "event": event,
                "reward_id": reward_id,
                "created_at": iso_z(utcnow()),
            },
        )
        rewards = [self._reward_json(self._reward_row(beta_id, reward_id))] if reward_id else []
        return {"email": email, "event": event, "rewards": rewards}

    def update_reward_status(self, beta_id: int, reward_id: int, status: Any) -> dict[str, Any]:
        """Deliver or revoke an ``earned`` reward; anything else is 422."""
        row = self._reward_row(beta_id, reward_id)
        if status not in ("delivered", "revoked"):
            raise e.RewardError("status must be 'delivered' or 'revoked'")
        if row["status"] != "earned":
            raise e.RewardStatusError(
                f"reward {reward_id} is {row['status']}; only an earned reward may change"
            )
        self.db.execute(
            f"UPDATE rewards SET status=?, {status}_at=? WHERE id=?", (status, iso_z(utcnow()), reward_id)
        )
        return self._reward_json(self._reward_row(beta_id, reward_id))

    # --- suppressions ----------------------------------------------------------------------------------
    @staticmethod
    def _suppression_json(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("id", "email", "user_id", "reason", "suppressed_at")}

    def _suppression_row(self, beta_id: int, sid: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM suppressions WHERE id=? AND beta_id=?", (sid, beta_id))
        if row is None:
            raise e.NotFound(f"suppression {sid} not found")
        return row

    def list_suppressions(self, beta_id: int, email: str | None, page: int) -> Page:
        select, params = "SELECT * FROM suppressions WHERE beta_id=?", [beta_id]
        if email:
            select += " AND email=? COLLATE NOCASE"
            params.append(email)
        return self._page(select, params, "id", page, self._suppression_json)

    def get_suppression(self, beta_id: int, sid: int) -> dict[str, Any]:
        return self._suppression_json(self._suppression_row(beta_id, sid))

    def create_suppression(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Suppress an email (2703 without one, 2702 when present); Unsubscribe stamps the user's
        ``unsubscribed_at`` and keeps the status."""
        if not body.get("email"):
            raise e.SuppressionEmailRequired()
        email = _email(body["email"], e.SuppressionError)
        reason = body.get("reason") or "Manual"
        if reason not in seeds.SUPPRESSION_REASONS:
            raise e.SuppressionError(f"reason must be one of {', '.join(seeds.SUPPRESSION_REASONS)}")
        if self.db.execute(
            "SELECT 1 FROM suppressions WHERE beta_id=? AND email=? COLLATE NOCASE", (beta_id, email)
        ).fetchone():
            raise e.SuppressionExists(f"{email} is already suppressed")
        now = iso_z(utcnow())
        user = self._user_by_email(beta_id, email)
        if user and reason == "Unsubscribe":
            self._update("users", user["id"], {"unsubscribed_at": now, "updated_at": now})
        sid = self._insert(
            "suppressions",
            {
                "beta_id": beta_id,
                "email": email,
                "user_id": user["id"] if user else None,
                "reason": reason,
                "suppressed_at": now,
            },
        )
        return self._suppression_json(self._suppression_row(beta_id, sid))

    def delete_suppression(self, beta_id: int, sid: int) -> None:
        row = self._suppression_row(beta_id, sid)
        if row["reason"] not in ("Manual", "HardBounce"):
            raise e.SuppressionError(f"a {row['reason']} suppression cannot be deleted")
        self.db.execute("DELETE FROM suppressions WHERE id=?", (sid,))

    # --- friend invitations and points -----------------------------------------------------------------
    def create_friend_invitation(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Send an invitation from an invited/active/idle user with invitations remaining."""
        sender_email = _email(body.get("sender_email"), e.FriendInvitationError)
        recipient = _email(body.get("recipient_email"), e.FriendInvitationError)
        sender = self._user_by_email(beta_id, sender_email)
        if sender is None:
            raise e.FriendInvitationError(f"no user with email {sender_email}")
        if sender["status"] not in ("invited", "active", "idle"):
            raise e.FriendInvitationError(
                f"the sender is {sender['status']}; only invited, active or idle users may invite friends"
            )
        if sender["friend_invitations_count"] >= sender["friend_invitations_allowed"]:
            raise e.FriendInvitationError("the sender has no friend invitations remaining")
        now = iso_z(utcnow())
        fid = self._insert(
            "friend_invitations",
            {
                "beta_id": beta_id,
                "sender_id": sender["id"],
                "recipient_email": recipient,
                "message": body.get("message"),
                "created_at": now,
            },
        )
        self.db.execute(
            "UPDATE users SET friend_invitations_count=friend_invitations_count+1 WHERE id=?", (sender["id"],)
        )
        return {
            "id": fid,
            "created_at": now,
            "inviter": self._user_json(self._user_row(beta_id, sender["id"])),
            "recipient_email": recipient,
            "message": body.get("message"),
        }

    @staticmethod
    def _points_json(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("id", "quantity", "activity", "reason", "user_id", "created_at")}

    def list_points(self, beta_id: int, email: str | None, page: int) -> Page:
        select, params = (
            "SELECT p.* FROM points p LEFT JOIN users u ON u.id=p.user_id WHERE p.beta_id=?",
            [beta_id],
        )
        if email:
            select += " AND u.email=? COLLATE NOCASE"
            params.append(email)
        return self._page(select, params, "id", page, self._points_json)

    def create_points(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Add points (every call adds: not idempotent): 2802 no email, 2803 unknown, 2804 not an integer."""
        if not body.get("email"):
            raise e.PointsEmailRequired()
        user = self._user_by_email(beta_id, str(body["email"]).strip())
        if user is None:
            raise e.PointsEmailNotFound(f"no user with email {body['email']}")
        quantity = _require_int(body.get("quantity"))
        if quantity is None:
            raise e.PointsQuantityRequired()
        pid = self._insert(
            "points",
            {
                "beta_id": beta_id,
                "user_id": user["id"],
                "quantity": quantity,
                "activity": "bonus",
                "reason": body.get("reason"),
                "created_at": iso_z(utcnow()),
            },
        )
        return self._points_json(self._one("SELECT * FROM points WHERE id=?", (pid,)) or {})

    # --- schedules (what sensors wait for) -------------------------------------------------------------
    def add_schedule(self, schedule: Schedule) -> Schedule:
        if schedule.target not in ("reward", "user", "new_reward"):
            raise ValueError("target must be reward, user or new_reward")
        if schedule.after_reads is None and schedule.due_at is None:
            raise ValueError("give after_reads or after_seconds")
        self.schedules.append(schedule)
        return schedule

    def _tick(self, resource: str, beta_id: int) -> None:
        """Count a read of ``resource`` and apply schedules that are due (before answering the read)."""
        if not self.schedules:
            return
        now = time.monotonic()
        for sch in self.schedules:
            if sch.done or sch.beta_id != beta_id:
                continue
            if sch.target.endswith(resource) and sch.after_reads is not None:
                sch.reads += 1
                if sch.reads > sch.after_reads:
                    self._apply(sch)
            elif sch.due_at is not None and now >= sch.due_at:
                self._apply(sch)

    def _apply(self, sch: Schedule) -> None:
        sch.done = True
        if sch.target == "user":
            self.force_user_status(sch.beta_id, int(sch.id or 0), sch.status)
        elif sch.target == "reward":
            self.force_reward_status(sch.beta_id, int(sch.id or 0), sch.status)
        else:
            user = self._user_by_email(sch.beta_id, sch.email or "")
            if user:
                rid = self._earn(sch.beta_id, user["id"], sch.descriptor)
                if sch.status != "earned":
                    self.force_reward_status(sch.beta_id, rid, sch.status)

    def force_user_status(self, beta_id: int, user_id: int, status: str) -> dict[str, Any]:
        """Set a status without the transition rules (control API only)."""
        row = self._user_row(beta_id, user_id)
        if status not in TRANSITIONS:
            raise ValueError(f"unknown status {status!r}")
        now = iso_z(utcnow())
        extra = {"joined_at": row["joined_at"] or now} if status == "active" else {}
        self._update("users", user_id, {"status": status, "updated_at": now, **extra})
        return self._user_json(self._user_row(beta_id, user_id))

    def force_reward_status(self, beta_id: int, reward_id: int, status: str) -> dict[str, Any]:
        """Set a reward's status without the earned-only rule (control API only)."""
        self._reward_row(beta_id, reward_id)
        if status not in ("earned", "delivered", "revoked"):
            raise ValueError(f"unknown reward status {status!r}")
        self.db.execute(
            f"UPDATE rewards SET status=?, {status}_at=? WHERE id=?", (status, iso_z(utcnow()), reward_id)
        )
        return self._reward_json(self._reward_row(beta_id, reward_id))

    # --- Mailchimp -------------------------------------------------------------------------------------
    def mc_lists(self, account: str) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT l.*, (SELECT COUNT(*) FROM mc_members m WHERE m.list_id=l.id AND "
            "m.status='subscribed') AS member_count FROM mc_lists l WHERE account=? ORDER BY id",
            (account,),
        )
        return [
            {
                "id": r["id"],
                "name": r["name"],
                "date_created": r["date_created"],
                "stats": {"member_count": r["member_count"]},
            }
            for r in rows
        ]

    def _mc_list(self, account: str, list_id: str) -> None:
        if not self.db.execute(
            "SELECT 1 FROM mc_lists WHERE id=? AND account=?", (list_id, account)
        ).fetchone():
            raise e.NotFound(f"The requested resource could not be found: list {list_id}")

    def mc_members(
        self,
        account: str,
        list_id: str,
        *,
        count: int,
        offset: int,
        status: str | None,
        since: str | None,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Members ordered by (last_changed, id), so offset paging is stable; since inclusive, before not."""
        self._mc_list(account, list_id)
        if status and status not in seeds.MEMBER_STATUSES:
            raise e.BadRequest(f"status must be one of {', '.join(seeds.MEMBER_STATUSES)}")
        where, params = ["list_id=?"], [list_id]
        for clause, value in (("status=?", status), ("last_changed>=?", since), ("last_changed<?", before)):
            if value:
                where.append(clause)
                params.append(value)
        cond = " AND ".join(where)
        total = self.db.execute(f"SELECT COUNT(*) FROM mc_members WHERE {cond}", params).fetchone()[0]
        rows = self._all(
            f"SELECT * FROM mc_members WHERE {cond} ORDER BY last_changed, id LIMIT ? OFFSET ?",
            (*params, count, offset),
        )
        return [self._member_json(r) for r in rows], total

    @staticmethod
    def _member_json(row: dict[str, Any]) -> dict[str, Any]:
        fields = row["merge_fields"] or {}
        return {
            "id": row["id"],
            "email_address": row["email_address"],
            "unique_email_id": row["unique_email_id"],
            "full_name": " ".join(v for v in (fields.get("FNAME"), fields.get("LNAME")) if v),
            "email_type": "html",
            "status": row["status"],
            "merge_fields": fields,
            "vip": bool(row["vip"]),
            "timestamp_signup": row["timestamp_signup"],
            "timestamp_opt": row["timestamp_opt"],
            "last_changed": row["last_changed"],
            "language": "",
            "tags_count": len(row["tags"] or []),
            "tags": row["tags"] or [],
            "list_id": row["list_id"],
        }

    def mc_upsert_member(
        self,
        list_id: str,
        email: str,
        *,
        status: str | None = None,
        merge_fields: dict[str, Any] | None = None,
        last_changed: str | None = None,
    ) -> dict[str, Any]:
        """Simulate audience activity: add or change a member; ``last_changed`` moves (to now by default)."""
        if not self.db.execute("SELECT 1 FROM mc_lists WHERE id=?", (list_id,)).fetchone():
            raise ValueError(f"unknown list {list_id}")
        if status is not None and status not in seeds.MEMBER_STATUSES:
            raise ValueError(f"status must be one of {seeds.MEMBER_STATUSES}")
        mid = member_id(email)
        changed = parse_mailchimp_time(last_changed) if last_changed else iso_offset(utcnow())
        row = self._one("SELECT * FROM mc_members WHERE list_id=? AND id=?", (list_id, mid))
        if row is None:
            values = {
                "list_id": list_id,
                "id": mid,
                "email_address": email.strip(),
                "unique_email_id": mid[:10],
                "status": status or "subscribed",
                "merge_fields": merge_fields or {},
                "last_changed": changed,
                "timestamp_signup": changed,
                "timestamp_opt": changed,
                "vip": 0,
                "tags": [],
            }
            cols = list(values)
            self.db.execute(
                f"INSERT INTO mc_members ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [_cell(values[c], c) for c in cols],
            )
        else:
            merged = {**(row["merge_fields"] or {}), **(merge_fields or {})}
            self.db.execute(
                "UPDATE mc_members SET status=?, merge_fields=?, last_changed=? WHERE list_id=? AND id=?",
                (status or row["status"], json.dumps(merged), changed, list_id, mid),
            )
        result = self._one("SELECT * FROM mc_members WHERE list_id=? AND id=?", (list_id, mid))
        return self._member_json(result or {})

    # --- Piggy -----------------------------------------------------------------------------------------
    def piggy_account(self, token: str | None) -> str:
        """The account behind a Bearer token: a sandbox key, or an unexpired OAuth access token."""
        if token in self.keys:
            return self.keys[token].account
        issued = self.tokens.get(token or "")
        if issued and issued[1] > time.monotonic():
            return issued[0]
        raise e.Unauthorized("Unauthenticated.")

    def oauth_token(self, grant_type: Any, client_id: Any, client_secret: Any) -> dict[str, Any]:
        """Exchange client credentials for an access token; every exchange is counted."""
        ok = grant_type == "client_credentials" and (str(client_id), str(client_secret)) == self.piggy_client
        self.token_exchanges.append({"client_id": str(client_id), "granted": ok, "at": iso_z(utcnow())})
        if not ok:
            raise e.OAuthInvalidClient()
        token = "sbx-piggy-" + secrets.token_urlsafe(24)
        self.tokens[token] = (seeds.DEFAULT_ACCOUNT, time.monotonic() + self.token_ttl)
        return {"token_type": "Bearer", "expires_in": self.token_ttl, "access_token": token}

    def piggy_automations(self, account: str) -> list[dict[str, Any]]:
        return [
            {k: r[k] for k in ("uuid", "event", "name", "status", "created_at", "updated_at")}
            for r in self._all("SELECT * FROM piggy_automations WHERE account=? ORDER BY uuid", (account,))
        ]

    @staticmethod
    def _contact_json(row: dict[str, Any]) -> dict[str, Any]:
        return {"uuid": row["uuid"], "email": row["email"], "created_at": row["created_at"]}

    def piggy_find_contact(self, account: str, email: Any, *, create: bool = False) -> dict[str, Any]:
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
            raise e.PiggyInvalidInput(errors={"email": ["The email must be a valid email address."]})
        row = self._one(
            "SELECT * FROM piggy_contacts WHERE account=? AND email=? COLLATE NOCASE",
            (account, email.strip()),
        )
        if row is None and create:
            self.db.execute(
                "INSERT INTO piggy_contacts VALUES (?,?,?,?)",
                (str(uuid.uuid4()), account, email.strip(), iso_z(utcnow())),
            )
            return self.piggy_find_contact(account, email)
        if row is None:
            raise e.PiggyContactNotFound()
        return self._contact_json(row)

    def piggy_create_run(self, account: str, body: dict[str, Any]) -> None:
        """Start an automation for a contact: 1003 missing fields, 55031, 60013, and contact_updated only."""
        missing = {
            f: [f"The {f.replace('_', ' ')} field is required."]
            for f in ("contact_uuid", "automation_uuid")
            if not body.get(f)
        }
        if missing:
            raise e.PiggyInvalidInput(errors=missing)
        contact = self._one(
            "SELECT * FROM piggy_contacts WHERE uuid=? AND account=?", (body["contact_uuid"], account)
        )
        if contact is None:
            raise e.PiggyContactNotFound()
        automation = self._one(
            "SELECT * FROM piggy_automations WHERE uuid=? AND account=?", (body["automation_uuid"], account)
        )
        if automation is None:
            raise e.PiggyModelNotFound()
        if automation["event"] != "contact_updated":
            raise e.PiggyAutomationNotStartable(
                f"Automation {automation['uuid']} has event '{automation['event']}'; only automations with "
                "event 'contact_updated' can be started through the API."
            )
        rejection = self.piggy_rejections.get(contact["uuid"])
        if rejection:
            raise e.PiggyRunRejected(rejection.message, status=rejection.status, code=rejection.code)
        self.db.execute(
            "INSERT INTO piggy_runs (account, contact_uuid, automation_uuid, data, created_at) "
            "VALUES (?,?,?,?,?)",
            (account, contact["uuid"], automation["uuid"], json.dumps(body.get("data")), iso_z(utcnow())),
        )

    def piggy_reject(
        self,
        *,
        contact_uuid: str | None = None,
        email: str | None = None,
        rejection: PiggyRejection | None = None,
    ) -> str:
        """Make every run for this contact fail (control API); returns the contact's uuid."""
        if contact_uuid is None:
            contact_uuid = self.piggy_find_contact(seeds.DEFAULT_ACCOUNT, email, create=True)["uuid"]
        self.piggy_rejections[contact_uuid] = rejection or PiggyRejection()
        return contact_uuid

    # --- inspection ------------------------------------------------------------------------------------
    def dump(self, resource: str, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of ``resource`` (control API), optionally filtered by equal column values."""
        if resource == "token_exchanges":
            rows = list(self.token_exchanges)
        elif resource in DUMPABLE:
            rows = self._all(DUMPABLE[resource])
        else:
            raise ValueError(
                f"unknown resource {resource!r}; known: {sorted([*DUMPABLE, 'token_exchanges'])}"
            )
        for name, value in (filters or {}).items():
            rows = [r for r in rows if str(r.get(name)).lower() == str(value).lower()]
        return rows


def _cell(value: Any, column: str) -> Any:
    return json.dumps(value) if column in JSON_COLUMNS and value is not None else value


def _email(value: Any, error: type[e.SandboxError]) -> str:
    if not isinstance(value, str) or not EMAIL_RE.match(value.strip()):
        raise error(f"email is invalid: {value!r}" if value else "email is required")
    return value.strip()


def _profile(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def due_in(seconds: float) -> float:
    """A monotonic deadline ``seconds`` from now (for ``Schedule.due_at``)."""
    return time.monotonic() + max(0.0, seconds)

