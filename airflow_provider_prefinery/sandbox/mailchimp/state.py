"""Mailchimp's state: audiences (lists) and members, ordered by ``last_changed`` so offset paging is stable.

Members change only through the control API (simulated audience activity): the emulated API is read-only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.db import Database, Tables
from airflow_provider_prefinery.sandbox.seeds import iso_offset, member_id
from airflow_provider_prefinery.sandbox.values import utcnow

MAX_COUNT = 1000
TABLES = Tables(
    schema="""
CREATE TABLE mc_lists (id TEXT PRIMARY KEY, account TEXT, name TEXT, date_created TEXT);
CREATE TABLE mc_members (list_id TEXT, id TEXT, email_address TEXT, unique_email_id TEXT, status TEXT,
  merge_fields TEXT, last_changed TEXT, timestamp_signup TEXT, timestamp_opt TEXT, vip INT, tags TEXT,
  PRIMARY KEY (list_id, id));
CREATE INDEX mc_members_changed ON mc_members (list_id, last_changed, id);
CREATE INDEX mc_members_status ON mc_members (list_id, status, last_changed, id);
""",
    json_columns=frozenset({"merge_fields", "tags"}),
    dumps={"mailchimp_members": "SELECT * FROM mc_members ORDER BY last_changed, id"},
)


def parse_time(value: str) -> str:
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


def render_member(row: dict[str, Any]) -> dict[str, Any]:
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


class MailchimpState:
    """Every account's audiences and members."""

    TABLES = TABLES

    def __init__(self, db: Database) -> None:
        self.db = db

    def reset(self) -> None:
        """Nothing lives in memory: the restored tables are all there is."""

    def lists(self, account: str) -> list[dict[str, Any]]:
        rows = self.db.rows(
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

    def members(
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
        if self.db.value("SELECT 1 FROM mc_lists WHERE id=? AND account=?", (list_id, account)) is None:
            raise e.NotFound(f"The requested resource could not be found: list {list_id}")
        if status and status not in seeds.MEMBER_STATUSES:
            raise e.BadRequest(f"status must be one of {', '.join(seeds.MEMBER_STATUSES)}")
        where, params = ["list_id=?"], [list_id]
        for clause, value in (("status=?", status), ("last_changed>=?", since), ("last_changed<?", before)):
            if value:
                where.append(clause)
                params.append(value)
        cond = " AND ".join(where)
        total = self.db.value(f"SELECT COUNT(*) FROM mc_members WHERE {cond}", params)
        rows = self.db.rows(
            f"SELECT * FROM mc_members WHERE {cond} ORDER BY last_changed, id LIMIT ? OFFSET ?",
            (*params, count, offset),
        )
        return [render_member(r) for r in rows], total

    def upsert_member(
        self,
        list_id: str,
        email: str,
        *,
        status: str | None = None,
        merge_fields: dict[str, Any] | None = None,
        last_changed: str | None = None,
    ) -> dict[str, Any]:
        """Simulate audience activity: add or change a member; ``last_changed`` moves (to now by default)."""
        if self.db.value("SELECT 1 FROM mc_lists WHERE id=?", (list_id,)) is None:
            raise ValueError(f"unknown list {list_id}")
        if status is not None and status not in seeds.MEMBER_STATUSES:
            raise ValueError(f"status must be one of {seeds.MEMBER_STATUSES}")
        mid = member_id(email)
        changed = parse_time(last_changed) if last_changed else iso_offset(utcnow())
        key = {"list_id": list_id, "id": mid}
        row = self.db.row("SELECT * FROM mc_members WHERE list_id=? AND id=?", (list_id, mid))
        if row is None:
            self.db.insert(
                "mc_members",
                {
                    **key,
                    "email_address": email.strip(),
                    "unique_email_id": mid[:10],
                    "status": status or "subscribed",
                    "merge_fields": merge_fields or {},
                    "last_changed": changed,
                    "timestamp_signup": changed,
                    "timestamp_opt": changed,
                    "vip": 0,
                    "tags": [],
                },
            )
        else:
            merged = {**(row["merge_fields"] or {}), **(merge_fields or {})}
            values = {"status": status or row["status"], "merge_fields": merged, "last_changed": changed}
            self.db.update("mc_members", key, values)
        result = self.db.row("SELECT * FROM mc_members WHERE list_id=? AND id=?", (list_id, mid))
        return render_member(result or {})
