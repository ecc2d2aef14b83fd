"""Prefinery points: every call adds (not idempotent), so a replayed request counts twice, as in Prefinery."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_prefinery.sandbox.db import Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page, paginate
from airflow_provider_prefinery.sandbox.prefinery.state.users import Users
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import utcnow


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "quantity", "activity", "reason", "user_id", "created_at")}


def json_int(value: Any) -> int | None:
    """An integer from JSON (int, or a string of digits); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


class Points:
    def __init__(self, db: Database, users: Users) -> None:
        self.db, self.users = db, users

    def page(self, beta_id: int, email: str | None, page: int) -> Page:
        select, params = (
            "SELECT p.* FROM points p LEFT JOIN users u ON u.id=p.user_id WHERE p.beta_id=?",
            [beta_id],
        )
        if email:
            select += " AND u.email=? COLLATE NOCASE"
            params.append(email)
        return paginate(self.db, select, params, page, render)

    def create(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Add points: 2802 no email, 2803 unknown email, 2804 a quantity that is not an integer."""
        if not body.get("email"):
            raise pe.PointsEmailRequired()
        user = self.users.by_email(beta_id, str(body["email"]).strip())
        if user is None:
            raise pe.PointsEmailNotFound(f"no user with email {body['email']}")
        quantity = json_int(body.get("quantity"))
        if quantity is None:
            raise pe.PointsQuantityRequired()
        pid = self.db.insert(
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
        return render(self.db.row("SELECT * FROM points WHERE id=?", (pid,)) or {})
