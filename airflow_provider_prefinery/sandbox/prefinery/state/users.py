"""Prefinery users (testers): the documented status transitions, referral codes and the waitlist position."""

from __future__ import annotations

import bisect
import secrets
from collections.abc import Callable
from typing import Any

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.db import Change, Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page, paginate
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import is_email, utcnow

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
STAMPS = {"applied": "applied_at", "invited": "invited_at", "active": "joined_at"}
"""The timestamp a user gets the first time it reaches a status."""
FIELDS = (
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
"""Columns a user object carries as stored; ``Users.render`` adds the derived ones."""

OnRead = Callable[[str, int], None]


def checked_email(value: Any, error: type[e.SandboxError]) -> str:
    """The stripped address, or ``error`` saying it is missing or invalid (each endpoint has its code)."""
    if not is_email(value):
        raise error(f"email is invalid: {value!r}" if value else "email is required")
    return str(value).strip()


def _profile(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


class Users:
    """Users of each project. ``on_read`` is told of every read (schedules count them)."""

    def __init__(self, db: Database, on_read: OnRead) -> None:
        self.db = db
        self.on_read = on_read
        self._waitlists: dict[int, list[int]] = {}
        db.observers.append(self._changed)

    def forget(self) -> None:
        self._waitlists.clear()

    def _changed(self, change: Change) -> None:
        if change.table == "users":
            self._waitlists.clear()

    def _waitlist(self, beta_id: int) -> list[int]:
        """Ids of the project's waitlisted users in order, cached until a user changes (hot on GET)."""
        ids = self._waitlists.get(beta_id)
        if ids is None:
            marks = ",".join("?" * len(WAITLISTED))
            sql = f"SELECT id FROM users WHERE beta_id=? AND status IN ({marks}) ORDER BY id"
            ids = self._waitlists[beta_id] = [r[0] for r in self.db.execute(sql, (beta_id, *WAITLISTED))]
        return ids

    # --- finding and rendering ---------------------------------------------------------------------------
    def row(self, beta_id: int, user_id: int) -> dict[str, Any]:
        return self.db.one("users", {"id": user_id, "beta_id": beta_id}, f"user {user_id} not found")

    def by_email(self, beta_id: int, email: str) -> dict[str, Any] | None:
        return self.db.row("SELECT * FROM users WHERE beta_id=? AND email=? COLLATE NOCASE", (beta_id, email))

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        waitlist = self._waitlist(row["beta_id"])
        length = len(waitlist)
        position = ahead = behind = None
        if row["status"] in WAITLISTED:
            ahead = bisect.bisect_left(waitlist, row["id"])
            position, behind = ahead + 1, length - ahead - 1
        code = row["referral_code"]
        out = {k: row[k] for k in FIELDS}
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

    def shown(self, beta_id: int, user_id: int) -> dict[str, Any]:
        """The user object as an answer shows it (after a write: read back what was stored)."""
        return self.render(self.row(beta_id, user_id))

    # --- endpoints -----------------------------------------------------------------------------------------
    def page(self, beta_id: int, filters: dict[str, str], page: int) -> Page:
        self.on_read("user", beta_id)
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
        return paginate(self.db, select, params, page, self.render)

    def get(self, beta_id: int, user_id: int) -> dict[str, Any]:
        self.on_read("user", beta_id)
        return self.shown(beta_id, user_id)

    def create(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Create a user: valid unique email (2301, 2310), a known status, optional referrer by code."""
        email = checked_email(body.get("email"), pe.InvalidEmail)
        if self.by_email(beta_id, email):
            raise pe.DuplicateUser(f"{email} is already a user of project {beta_id}")
        status = body.get("status") or "applied"
        if status not in TRANSITIONS:
            raise pe.InvalidUserStatus(f"unknown status {status!r}")
        now = iso_z(utcnow())
        referrer = (
            self.db.row(
                "SELECT id, share_signups_count FROM users WHERE beta_id=? AND referral_code=?",
                (beta_id, body.get("referrer_id")),
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
        uid = self.db.insert("users", values)
        if referrer:
            signups = referrer["share_signups_count"] + 1
            self.db.update("users", {"id": referrer["id"]}, {"share_signups_count": signups})
        return self.shown(beta_id, uid)

    def _new_code(self) -> str:
        while True:
            code = secrets.token_hex(4).upper()
            if self.db.value("SELECT 1 FROM users WHERE referral_code=?", (code,)) is None:
                return code

    def update(self, beta_id: int, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Change email, status (documented transitions only), invitation code, profile (merged), answers."""
        row = self.row(beta_id, user_id)
        changes: dict[str, Any] = {}
        if "email" in body:
            email = checked_email(body["email"], pe.InvalidEmail)
            other = self.by_email(beta_id, email)
            if other and other["id"] != user_id:
                raise pe.DuplicateUser(f"{email} is already a user of project {beta_id}")
            changes["email"] = email
        if body.get("status") and body["status"] != row["status"]:
            changes.update(_transition(row, body["status"]))
        if "invitation_code" in body:
            changes["invitation_code"] = body["invitation_code"]
        if isinstance(body.get("profile"), dict):
            changes["profile"] = {**(row["profile"] or {}), **_profile(body["profile"])}
        if "responses" in body:
            changes["responses"] = body["responses"] or []
        if changes:
            changes["updated_at"] = iso_z(utcnow())
            self.db.update("users", {"id": user_id}, changes)
        return self.shown(beta_id, user_id)

    def delete(self, beta_id: int, user_id: int) -> None:
        self.row(beta_id, user_id)
        self.db.delete("users", {"id": user_id})

    def checkin(
        self, beta_id: int, *, user_id: int | None = None, email: str | None = None
    ) -> dict[str, Any]:
        """Check a user in (by id or email): the user becomes ``active``; repeating is harmless."""
        if user_id is not None:
            row = self.row(beta_id, user_id)
        else:
            found = self.by_email(beta_id, checked_email(email, pe.InvalidEmail))
            if found is None:
                raise e.NotFound(f"no user with email {email}")
            row = found
        return self._set_status(row, "active")

    def force_status(self, beta_id: int, user_id: int, status: str) -> dict[str, Any]:
        """Set a status without the transition rules (control API and schedules only)."""
        row = self.row(beta_id, user_id)
        if status not in TRANSITIONS:
            raise ValueError(f"unknown status {status!r}")
        return self._set_status(row, status)

    def _set_status(self, row: dict[str, Any], status: str) -> dict[str, Any]:
        now = iso_z(utcnow())
        extra = {"joined_at": row["joined_at"] or now} if status == "active" else {}
        self.db.update("users", {"id": row["id"]}, {"status": status, "updated_at": now, **extra})
        return self.shown(row["beta_id"], row["id"])


def _transition(row: dict[str, Any], status: str) -> dict[str, Any]:
    """The columns a documented status change sets (2302 for an unknown status or a forbidden step)."""
    if status not in TRANSITIONS:
        raise pe.InvalidUserStatus(f"unknown status {status!r}")
    if status != "suspended" and status not in TRANSITIONS[row["status"]]:
        raise pe.InvalidUserStatus(f"a user cannot go from {row['status']} to {status}")
    changes: dict[str, Any] = {"status": status}
    stamp = STAMPS.get(status)
    if stamp and not row[stamp]:
        changes[stamp] = iso_z(utcnow())
    return changes
