"""Prefinery projects (betas): one account's, with tester counts by status; deleting one empties it."""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.sandbox.db import Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page, paginate

PROJECT_TABLES = ("users", "rewards", "suppressions", "points", "friend_invitations", "reward_triggers")
"""The tables whose rows belong to a project (``beta_id``): deleting the project deletes them."""
COUNTED_STATUSES = ("imported", "applied", "invited", "active", "rejected")


class Projects:
    def __init__(self, db: Database) -> None:
        self.db = db

    def check(self, account: str, beta_id: int) -> None:
        """404 unless the project exists and is the account's (every project path checks this first)."""
        self._row(account, beta_id)

    def _row(self, account: str, beta_id: int) -> dict[str, Any]:
        return self.db.one("projects", {"id": beta_id, "account": account}, f"project {beta_id} not found")

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
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
        for status in COUNTED_STATUSES:
            out[f"{status}_testers_count"] = counts.get(status, 0)
        out.update(created_at=row["created_at"], updated_at=row["updated_at"])
        return out

    def page(self, account: str, page: int) -> Page:
        return paginate(self.db, "SELECT * FROM projects WHERE account=?", (account,), page, self.render)

    def get(self, account: str, beta_id: int) -> dict[str, Any]:
        return self.render(self._row(account, beta_id))

    def delete(self, account: str, beta_id: int) -> None:
        """Delete a project and everything in it; refused (2204) while it has active users."""
        self._row(account, beta_id)
        if self.db.value("SELECT 1 FROM users WHERE beta_id=? AND status='active' LIMIT 1", (beta_id,)):
            raise pe.ProjectNotDeletable()
        for table in PROJECT_TABLES:
            self.db.delete(table, {"beta_id": beta_id})
        self.db.delete("projects", {"id": beta_id})
