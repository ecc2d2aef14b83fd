"""Piggy's state: automations, contacts and automation runs per account, and OAuth access tokens.

A Bearer credential is a sandbox key or an unexpired token from the client-credentials exchange; every
exchange is counted (tests assert a hook reuses its token). Tokens, exchanges and rejections live in memory.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.db import Database, Tables
from airflow_provider_prefinery.sandbox.keys import Keys
from airflow_provider_prefinery.sandbox.piggy import errors as pg
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import is_email, utcnow

TABLES = Tables(
    schema="""
CREATE TABLE piggy_automations (uuid TEXT PRIMARY KEY, account TEXT, event TEXT, name TEXT, status TEXT,
  created_at TEXT, updated_at TEXT);
CREATE TABLE piggy_contacts (uuid TEXT PRIMARY KEY, account TEXT, email TEXT, created_at TEXT);
CREATE UNIQUE INDEX piggy_contacts_email ON piggy_contacts (account, email COLLATE NOCASE);
CREATE TABLE piggy_runs (id INTEGER PRIMARY KEY, account TEXT, contact_uuid TEXT, automation_uuid TEXT,
  data TEXT, created_at TEXT);
""",
    json_columns=frozenset({"data"}),
    dumps={
        "piggy_automations": "SELECT * FROM piggy_automations ORDER BY uuid",
        "piggy_contacts": "SELECT * FROM piggy_contacts ORDER BY created_at, uuid",
        "piggy_runs": "SELECT * FROM piggy_runs ORDER BY id",
    },
)
STARTABLE_EVENT = "contact_updated"  # the only automation event the API may start [doc]


@dataclass
class PiggyRejection:
    """How Piggy refuses every run for a contact a test marked (control API)."""

    status: int = 422
    code: int = 60015
    message: str = "Automation run rejected for this contact."


class PiggyState:
    """Every account's automations, contacts and runs, and the tokens issued to the sandbox's client."""

    TABLES = TABLES

    def __init__(self, db: Database, keys: Keys) -> None:
        self.db = db
        self.keys = keys
        self.client = (seeds.PIGGY_CLIENT_ID, seeds.PIGGY_CLIENT_SECRET)
        self.token_ttl = seeds.PIGGY_TOKEN_TTL
        self.reset()

    def reset(self) -> None:
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (account, monotonic expiry)
        self.token_exchanges: list[dict[str, Any]] = []
        self.rejections: dict[str, PiggyRejection] = {}  # contact uuid -> how its runs fail

    # --- auth ------------------------------------------------------------------------------------------
    def account(self, token: str | None) -> str:
        """The account behind a Bearer token: a sandbox key, or an unexpired OAuth access token."""
        info = self.keys.get(token)
        if info is not None:
            return info.account
        issued = self.tokens.get(token or "")
        if issued and issued[1] > time.monotonic():
            return issued[0]
        raise e.Unauthorized("Unauthenticated.")

    def oauth_token(self, grant_type: Any, client_id: Any, client_secret: Any) -> dict[str, Any]:
        """Exchange client credentials for an access token; every exchange is counted."""
        ok = grant_type == "client_credentials" and (str(client_id), str(client_secret)) == self.client
        self.token_exchanges.append({"client_id": str(client_id), "granted": ok, "at": iso_z(utcnow())})
        if not ok:
            raise pg.OAuthInvalidClient()
        token = "sbx-piggy-" + secrets.token_urlsafe(24)
        self.tokens[token] = (seeds.DEFAULT_ACCOUNT, time.monotonic() + self.token_ttl)
        return {"token_type": "Bearer", "expires_in": self.token_ttl, "access_token": token}

    # --- endpoints -------------------------------------------------------------------------------------
    def automations(self, account: str) -> list[dict[str, Any]]:
        return [
            {k: r[k] for k in ("uuid", "event", "name", "status", "created_at", "updated_at")}
            for r in self.db.rows("SELECT * FROM piggy_automations WHERE account=? ORDER BY uuid", (account,))
        ]

    def find_contact(self, account: str, email: Any, *, create: bool = False) -> dict[str, Any]:
        """The contact with ``email`` (55031 when there is none), created first when ``create``."""
        if not is_email(email):
            raise pg.PiggyInvalidInput(errors={"email": ["The email must be a valid email address."]})
        address = str(email).strip()
        sql = "SELECT * FROM piggy_contacts WHERE account=? AND email=? COLLATE NOCASE"
        row = self.db.row(sql, (account, address))
        if row is None and create:
            values = {"uuid": str(uuid.uuid4()), "account": account, "email": address}
            self.db.insert("piggy_contacts", {**values, "created_at": iso_z(utcnow())})
            row = self.db.row(sql, (account, address))
        if row is None:
            raise pg.PiggyContactNotFound()
        return {"uuid": row["uuid"], "email": row["email"], "created_at": row["created_at"]}

    def create_run(self, account: str, body: dict[str, Any]) -> None:
        """Start an automation for a contact: 1003 missing fields, 55031, 60013, and contact_updated only."""
        missing = {
            f: [f"The {f.replace('_', ' ')} field is required."]
            for f in ("contact_uuid", "automation_uuid")
            if not body.get(f)
        }
        if missing:
            raise pg.PiggyInvalidInput(errors=missing)
        contact = self.db.row(
            "SELECT * FROM piggy_contacts WHERE uuid=? AND account=?", (body["contact_uuid"], account)
        )
        if contact is None:
            raise pg.PiggyContactNotFound()
        automation = self.db.row(
            "SELECT * FROM piggy_automations WHERE uuid=? AND account=?", (body["automation_uuid"], account)
        )
        if automation is None:
            raise pg.PiggyModelNotFound()
        if automation["event"] != STARTABLE_EVENT:
            raise pg.PiggyAutomationNotStartable(
                f"Automation {automation['uuid']} has event '{automation['event']}'; only automations with "
                f"event '{STARTABLE_EVENT}' can be started through the API."
            )
        rejection = self.rejections.get(contact["uuid"])
        if rejection:
            raise pg.PiggyRunRejected(rejection.message, status=rejection.status, code=rejection.code)
        self.db.insert(
            "piggy_runs",
            {
                "account": account,
                "contact_uuid": contact["uuid"],
                "automation_uuid": automation["uuid"],
                "data": body.get("data"),
                "created_at": iso_z(utcnow()),
            },
        )

    # --- control ---------------------------------------------------------------------------------------
    def reject(
        self,
        *,
        contact_uuid: str | None = None,
        email: str | None = None,
        rejection: PiggyRejection | None = None,
    ) -> str:
        """Make every run for this contact fail; returns the contact's uuid (created by email if needed)."""
        if contact_uuid is None:
            contact_uuid = self.find_contact(seeds.DEFAULT_ACCOUNT, email, create=True)["uuid"]
        self.rejections[contact_uuid] = rejection or PiggyRejection()
        return contact_uuid
