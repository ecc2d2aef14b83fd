"""Prefinery friend invitations: sent by an invited, active or idle user while invitations remain."""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.sandbox.db import Database
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state.users import Users, checked_email
from airflow_provider_prefinery.sandbox.seeds import iso_z
from airflow_provider_prefinery.sandbox.values import utcnow

SENDER_STATUSES = ("invited", "active", "idle")


class FriendInvitations:
    def __init__(self, db: Database, users: Users) -> None:
        self.db, self.users = db, users

    def create(self, beta_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Send an invitation (2501 for a bad address, an unknown sender or one who may not invite)."""
        sender_email = checked_email(body.get("sender_email"), pe.FriendInvitationError)
        recipient = checked_email(body.get("recipient_email"), pe.FriendInvitationError)
        sender = self.users.by_email(beta_id, sender_email)
        if sender is None:
            raise pe.FriendInvitationError(f"no user with email {sender_email}")
        if sender["status"] not in SENDER_STATUSES:
            raise pe.FriendInvitationError(
                f"the sender is {sender['status']}; only invited, active or idle users may invite friends"
            )
        if sender["friend_invitations_count"] >= sender["friend_invitations_allowed"]:
            raise pe.FriendInvitationError("the sender has no friend invitations remaining")
        now = iso_z(utcnow())
        fid = self.db.insert(
            "friend_invitations",
            {
                "beta_id": beta_id,
                "sender_id": sender["id"],
                "recipient_email": recipient,
                "message": body.get("message"),
                "created_at": now,
            },
        )
        sent = sender["friend_invitations_count"] + 1
        self.db.update("users", {"id": sender["id"]}, {"friend_invitations_count": sent})
        return {
            "id": fid,
            "created_at": now,
            "inviter": self.users.shown(beta_id, sender["id"]),
            "recipient_email": recipient,
            "message": body.get("message"),
        }
