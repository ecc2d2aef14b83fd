"""Prefinery's state: one class per resource over the shared database, and the schedules sensors wait on.

Rows are keyed by project (``beta_id``); a project belongs to the account of a key. Methods take parsed
input, apply the documented rules and raise ``prefinery.errors``; handlers only parse and render. No web
framework here.
"""

from __future__ import annotations

from airflow_provider_prefinery.sandbox.db import Database, Tables
from airflow_provider_prefinery.sandbox.prefinery.state.invitations import FriendInvitations
from airflow_provider_prefinery.sandbox.prefinery.state.points import Points
from airflow_provider_prefinery.sandbox.prefinery.state.projects import Projects
from airflow_provider_prefinery.sandbox.prefinery.state.rewards import Rewards
from airflow_provider_prefinery.sandbox.prefinery.state.schedules import Schedule, Schedules
from airflow_provider_prefinery.sandbox.prefinery.state.suppressions import Suppressions
from airflow_provider_prefinery.sandbox.prefinery.state.users import Users

TABLES = Tables(
    schema="""
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
""",
    json_columns=frozenset({"profile", "responses"}),
    dumps={
        "projects": "SELECT * FROM projects ORDER BY id",
        "users": "SELECT * FROM users ORDER BY id",
        "rewards": "SELECT * FROM rewards ORDER BY id",
        "suppressions": "SELECT * FROM suppressions ORDER BY id",
        "points": "SELECT * FROM points ORDER BY id",
        "friend_invitations": "SELECT * FROM friend_invitations ORDER BY id",
        "reward_triggers": "SELECT * FROM reward_triggers ORDER BY id",
    },
)


class PrefineryState:
    """Every Prefinery resource of one sandbox, and the schedules that change them as reads go by."""

    TABLES = TABLES

    def __init__(self, db: Database) -> None:
        self.db = db
        self.schedules = Schedules(self._apply)
        self.projects = Projects(db)
        self.users = Users(db, self.schedules.tick)
        self.rewards = Rewards(db, self.users, self.schedules.tick)
        self.suppressions = Suppressions(db, self.users)
        self.invitations = FriendInvitations(db, self.users)
        self.points = Points(db, self.users)

    def reset(self) -> None:
        """Forget what is kept in memory (the tables were just restored)."""
        self.users.forget()
        self.schedules.clear()

    def _apply(self, sch: Schedule) -> None:
        if sch.target == "user":
            self.users.force_status(sch.beta_id, int(sch.id or 0), sch.status)
        elif sch.target == "reward":
            self.rewards.force_status(sch.beta_id, int(sch.id or 0), sch.status)
        else:
            user = self.users.by_email(sch.beta_id, sch.email or "")
            if user:
                rid = self.rewards.earn(sch.beta_id, user["id"], sch.descriptor)
                if sch.status != "earned":
                    self.rewards.force_status(sch.beta_id, rid, sch.status)
