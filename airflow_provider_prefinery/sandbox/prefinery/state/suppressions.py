"""Prefinery suppressions: emails Prefinery must not write to, for a reason; Unsubscribe marks the user."""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.db import Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page, paginate
from airflow_provider_prefinery.sandbox.prefinery.state.users import Users, checked_email
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import utcnow

DELETABLE_REASONS = ("Manual", "HardBounce")


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "email", "user_id", "reason", "suppressed_at")}


class Suppressions:
    def __init__(self, db: Database, users: Users) -> None:
        self.db, self.users = db, users

    def _row(self, beta_id: int, sid: int) -> dict[str, Any]:
        return self.db.one("suppressions", {"id": sid, "beta_id": beta_id}, f"suppression {sid} not found")

    def page(self, beta_id: int, email: str | None, page: int) -> Page:
        select, params = "SELECT * FROM suppressions WHERE beta_id=?", [beta_id]
        if email:
            select += " AND email=? COLLATE NOCASE"
            params.append(email)
        return paginate(self.db, select, params, page, render)

    def get(self, beta_id: int, sid: int) -> dict[str, Any]:
        return render(self._row(beta_id, sid))

    def create(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Suppress an email (2703 without one, 2702 when present); Unsubscribe stamps the user's
        ``unsubscribed_at`` and keeps the status."""
        if not body.get("email"):
            raise pe.SuppressionEmailRequired()
        email = checked_email(body["email"], pe.SuppressionError)
        reason = body.get("reason") or "Manual"
        if reason not in seeds.SUPPRESSION_REASONS:
            raise pe.SuppressionError(f"reason must be one of {', '.join(seeds.SUPPRESSION_REASONS)}")
        if self.db.value(
            "SELECT 1 FROM suppressions WHERE beta_id=? AND email=? COLLATE NOCASE", (beta_id, email)
        ):
            raise pe.SuppressionExists(f"{email} is already suppressed")
        now = iso_z(utcnow())
        user = self.users.by_email(beta_id, email)
        if user and reason == "Unsubscribe":
            self.db.update("users", {"id": user["id"]}, {"unsubscribed_at": now, "updated_at": now})
        sid = self.db.insert(
            "suppressions",
            {
                "beta_id": beta_id,
                "email": email,
                "user_id": user["id"] if user else None,
                "reason": reason,
                "suppressed_at": now,
            },
        )
        return self.get(beta_id, sid)

    def delete(self, beta_id: int, sid: int) -> None:
        row = self._row(beta_id, sid)
        if row["reason"] not in DELETABLE_REASONS:
            raise pe.SuppressionError(f"a {row['reason']} suppression cannot be deleted")
        self.db.delete("suppressions", {"id": sid})
