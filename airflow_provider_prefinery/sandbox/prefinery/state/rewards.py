"""Prefinery rewards: earned once per descriptor, by hand or by a referred user's event; then delivered or
revoked, and only from ``earned``."""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.db import Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page, paginate
from airflow_provider_prefinery.sandbox.prefinery.state.users import OnRead, Users, checked_email
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import utcnow

STATUSES = ("earned", "delivered", "revoked")
FIELDS = (
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


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in FIELDS}


def _required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise pe.RewardError(f"{name} is required")
    return value


class Rewards:
    """Rewards of each project's users. ``on_read`` is told of every read (schedules count them)."""

    def __init__(self, db: Database, users: Users, on_read: OnRead) -> None:
        self.db, self.users, self.on_read = db, users, on_read

    def _row(self, beta_id: int, reward_id: int) -> dict[str, Any]:
        return self.db.one("rewards", {"id": reward_id, "beta_id": beta_id}, f"reward {reward_id} not found")

    def _shown(self, beta_id: int, reward_id: int) -> dict[str, Any]:
        return render(self._row(beta_id, reward_id))

    def _holder(self, beta_id: int, email: str) -> dict[str, Any]:
        user = self.users.by_email(beta_id, email)
        if user is None:
            raise pe.RewardError(f"no user with email {email}")
        return user

    def page(self, beta_id: int, email: str | None, status: str | None, page: int) -> Page:
        self.on_read("reward", beta_id)
        where, params = ["r.beta_id=?"], [beta_id]
        if email:
            where.append("u.email=? COLLATE NOCASE")
            params.append(email)
        if status:
            where.append("r.status=?")
            params.append(status)
        select = f"SELECT r.* FROM rewards r LEFT JOIN users u ON u.id=r.user_id WHERE {' AND '.join(where)}"
        return paginate(self.db, select, params, page, render)

    def get(self, beta_id: int, reward_id: int) -> dict[str, Any]:
        self.on_read("reward", beta_id)
        return self._shown(beta_id, reward_id)

    def create(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """An ``earned`` reward for the user with ``email``; one per descriptor unless skip_quantity_check."""
        email = checked_email(body.get("email"), pe.InvalidEmail)
        descriptor = _required_text(body, "descriptor")
        user = self._holder(beta_id, email)
        if not body.get("skip_quantity_check") and self.db.value(
            "SELECT 1 FROM rewards WHERE beta_id=? AND user_id=? AND descriptor=?",
            (beta_id, user["id"], descriptor),
        ):
            raise pe.RewardQuantityExceeded()
        return self._shown(beta_id, self.earn(beta_id, user["id"], descriptor))

    def earn(self, beta_id: int, user_id: int, descriptor: str) -> int:
        """Give the user an ``earned`` reward (named by the seed's definitions, else by its descriptor)."""
        name, kind, role = seeds.REWARD_DEFINITIONS.get(
            descriptor, (descriptor.replace("-", " ").capitalize(), "SingleSided", "referrer")
        )
        return self.db.insert(
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

    def trigger(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Record ``event`` for the referred user ``email``. Rule: the first time an event fires for a user
        who was referred, the referrer earns a ``referral-<event>`` reward; repeats earn nothing."""
        email = checked_email(body.get("email"), pe.InvalidEmail)
        event = _required_text(body, "event")
        user = self._holder(beta_id, email)
        seen = self.db.value(
            "SELECT 1 FROM reward_triggers WHERE beta_id=? AND email=? COLLATE NOCASE AND event=?",
            (beta_id, email, event),
        )
        reward_id = None
        if user["referred_by"] and not seen:
            reward_id = self.earn(beta_id, user["referred_by"], f"referral-{event}")
        self.db.insert(
            "reward_triggers",
            {
                "beta_id": beta_id,
                "email": email,
                "event": event,
                "reward_id": reward_id,
                "created_at": iso_z(utcnow()),
            },
        )
        rewards = [self._shown(beta_id, reward_id)] if reward_id else []
        return {"email": email, "event": event, "rewards": rewards}

    def update_status(self, beta_id: int, reward_id: int, status: Any) -> dict[str, Any]:
        """Deliver or revoke an ``earned`` reward; anything else is 422."""
        row = self._row(beta_id, reward_id)
        if status not in ("delivered", "revoked"):
            raise pe.RewardError("status must be 'delivered' or 'revoked'")
        if row["status"] != "earned":
            raise pe.RewardStatusError(
                f"reward {reward_id} is {row['status']}; only an earned reward may change"
            )
        return self._set_status(beta_id, reward_id, status)

    def force_status(self, beta_id: int, reward_id: int, status: str) -> dict[str, Any]:
        """Set a reward's status without the earned-only rule (control API and schedules only)."""
        self._row(beta_id, reward_id)
        if status not in STATUSES:
            raise ValueError(f"unknown reward status {status!r}")
        return self._set_status(beta_id, reward_id, status)

    def _set_status(self, beta_id: int, reward_id: int, status: str) -> dict[str, Any]:
        self.db.update("rewards", {"id": reward_id}, {"status": status, f"{status}_at": iso_z(utcnow())})
        return self._shown(beta_id, reward_id)
