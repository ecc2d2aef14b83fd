"""A day in a referral program, with every Prefinery write operator.

Runs as is against the local sandbox (``prefinery-sandbox``, seed ``demo``) through the connection
``prefinery_default`` (its "API Beta ID" names the project); point the connection at
``https://api.prefinery.com`` and edit the params to run it for real. Every step is safe to re-run
except the ones marked "not idempotent" (points, invitations, reward triggers, issued rewards).

1. create today's signups (existing e-mails are skipped) and record their first check-in;
2. invite the top of the waitlist, and let each newly invited user invite a friend (one mapped task each);
3. fire the ``purchase`` reward event for referred users who bought today, and issue a milestone reward
   to the top ambassador; then mark every reward this produced as delivered;
4. give the signups welcome points;
5. suppress addresses that bounced, and lift Manual suppressions older than the retention period;
6. erase the users who asked to be deleted;
7. optionally retire a project (only with ``retire_project_id`` and its exact name in the run's conf).
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCheckinUserOperator,
    PrefineryCreateFriendInvitationOperator,
    PrefineryCreatePointsOperator,
    PrefineryCreateRewardOperator,
    PrefineryCreateSuppressionOperator,
    PrefineryCreateUserOperator,
    PrefineryDeleteProjectOperator,
    PrefineryDeleteSuppressionOperator,
    PrefineryDeleteUserOperator,
    PrefineryTriggerRewardsOperator,
    PrefineryUpdateRewardStatusOperator,
    PrefineryUpdateUserOperator,
)

SIGNUPS = [
    {"email": "lena.mertens@example.org", "profile": {"first_name": "Lena", "last_name": "Mertens"}},
    {"email": "omar.haddad@example.org", "profile": {"first_name": "Omar", "last_name": "Haddad"}},
    {"email": "sofia.rossi@example.org", "profile": {"first_name": "Sofia", "country": "FR"}},
    {"email": "typo.address@example.org", "profile": {"first_name": "Typo", "country": "NL"}},
    {"email": "remove.me@example.org", "profile": {"first_name": "Remove", "last_name": "Me"}},
]


def _hook() -> Any:
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    return PrefineryHook()


with DAG(
    dag_id="prefinery_referral_program",
    description="Daily referral-program upkeep with every Prefinery write operator",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["prefinery", "example"],
    params={
        "signups": Param(SIGNUPS, type="array", description="Today's signups: email and profile"),
        "invite_top_n": Param(3, type="integer", minimum=0, description="How many of the waitlist to invite"),
        "purchase_count": Param(3, type="integer", minimum=0, description="Referred users who bought today"),
        "welcome_points": Param(50, type="integer", minimum=1),
        "bounced": Param(["typo.address@example.org"], type="array", description="Addresses that bounced"),
        "manual_suppression_days": Param(30, type="integer", minimum=1, description="Retention, in days"),
        "erase": Param(["remove.me@example.org"], type="array", description="Users who asked to be deleted"),
        "retire_project_id": Param(None, type=["null", "integer"], description="A project to delete"),
        "retire_project_name": Param("", type="string", description="Its exact name, as a confirmation"),
    },
) as dag:
    # 1. Signups --------------------------------------------------------------------------------------
    @task
    def todays_signups(params: dict[str, Any]) -> list[dict[str, Any]]:
        """In production: read from the landing page's store. Here: the DAG's params."""
        return [{"status": "applied", **signup} for signup in params["signups"]]

    signups = todays_signups()
    create_users = PrefineryCreateUserOperator(task_id="create_users", records=signups, if_exists="skip")
    first_checkin = PrefineryCheckinUserOperator.partial(task_id="first_checkin").expand(
        email=signups.map(lambda signup: signup["email"])
    )
    create_users >> first_checkin

    # 2. Waitlist and friend invitations -------------------------------------------------------------
    @task
    def waitlist_top(params: dict[str, Any]) -> list[dict[str, Any]]:
        """The first ``invite_top_n`` applied users by waitlist position, to invite."""
        applied = _hook().list_users(status="applied")
        ranked = sorted(applied, key=lambda user: (user.get("waitlist_position") or 10**9, user["id"]))
        return [{"user_id": user["id"]} for user in ranked[: params["invite_top_n"]]]

    top = waitlist_top()
    create_users >> top
    invite_top = PrefineryUpdateUserOperator(
        task_id="invite_top", records=top, status="invited", return_records=True
    )

    @task
    def friend_invitations(invited: dict[str, Any]) -> list[dict[str, Any]]:
        """One invitation per newly invited user (in production: the friends they named in the app)."""
        users = [user for user in invited.get("records", []) if user]
        return [
            {"sender_email": user["email"], "recipient_email": f"friend.of.{user['id']}@example.net"}
            for user in users
        ]

    # Not idempotent: one e-mail per call. Mapped: one task instance per invitation.
    PrefineryCreateFriendInvitationOperator.partial(
        task_id="send_friend_invitations", message="I got in - join me on the beta!"
    ).expand_kwargs(friend_invitations(invite_top.output))

    # 3. Rewards ---------------------------------------------------------------------------------------
    @task
    def purchases(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Referred users who bought today (in production: from the shop's orders)."""
        buyers = [user for user in _hook().list_users(status="active") if user.get("referred_by")]
        return [{"email": user["email"]} for user in buyers[: params["purchase_count"]]]

    # Not idempotent: a repeated trigger may issue rewards again.
    trigger_rewards = PrefineryTriggerRewardsOperator(
        task_id="trigger_purchase_rewards", records=purchases(), event="purchase", return_records=True
    )

    @task
    def top_ambassador() -> str:
        """The active user whose shares brought the most signups."""
        active = _hook().list_users(status="active")
        return max(active, key=lambda user: (user.get("share_signups_count") or 0, -user["id"]))["email"]

    # Not idempotent: each call issues another reward (skip_quantity_check lets a user earn it again).
    issue_reward = PrefineryCreateRewardOperator(
        task_id="issue_milestone_reward",
        email=top_ambassador(),
        descriptor="milestone-5",
        skip_quantity_check=True,
    )

    @task
    def rewards_to_deliver(triggered: dict[str, Any], issued: dict[str, Any]) -> list[dict[str, Any]]:
        """Every reward this run produced that is still earned."""
        answers = [answer for answer in triggered.get("records", []) if answer]
        ids = [reward["id"] for answer in answers for reward in answer.get("rewards", [])]
        ids.append(issued["id"])
        return [{"reward_id": reward_id} for reward_id in ids]

    PrefineryUpdateRewardStatusOperator(
        task_id="deliver_rewards",
        records=rewards_to_deliver(trigger_rewards.output, issue_reward.output),
        status="delivered",
    )

    # 4. Points (not idempotent: every call adds points) ----------------------------------------------
    welcome_points = PrefineryCreatePointsOperator(
        task_id="welcome_points",
        records=signups.map(lambda signup: {"email": signup["email"]}),
        quantity="{{ params.welcome_points }}",
        reason="Welcome to the beta",
    )
    create_users >> welcome_points

    # 5. Suppressions ------------------------------------------------------------------------------------
    @task
    def bounced(params: dict[str, Any]) -> list[dict[str, Any]]:
        """In production: the e-mail provider's bounce report."""
        return [{"email": email} for email in params["bounced"]]

    suppress_bounces = PrefineryCreateSuppressionOperator(
        task_id="suppress_bounces", records=bounced(), reason="Manual"
    )

    @task
    def expired_manual_suppressions(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Manual suppressions older than the retention period."""
        now = datetime.datetime.now(datetime.timezone.utc)
        cutoff = now - datetime.timedelta(days=params["manual_suppression_days"])
        expired = [
            item
            for item in _hook().list_suppressions()
            if item["reason"] == "Manual"
            and datetime.datetime.fromisoformat(item["suppressed_at"].replace("Z", "+00:00")) < cutoff
        ]
        return [{"suppression_id": item["id"]} for item in expired]

    lift_expired = PrefineryDeleteSuppressionOperator(
        task_id="lift_expired_suppressions", records=expired_manual_suppressions()
    )
    lift_expired >> suppress_bounces  # a fresh suppression is never taken for an expired one

    # 6. Erasure requests --------------------------------------------------------------------------------
    @task
    def users_to_erase(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Resolve the e-mails to ids; an address with no user is already erased."""
        hook = _hook()
        found = (hook.find_user(email) for email in params["erase"])
        return [{"user_id": user["id"]} for user in found if user]

    erase = users_to_erase()
    [create_users, first_checkin, welcome_points] >> erase
    PrefineryDeleteUserOperator(task_id="erase_users", records=erase)

    # 7. Retire a project (only when the run's conf names it and its exact name) -------------------------
    @task.short_circuit
    def retiring_a_project(params: dict[str, Any]) -> bool:
        return bool(params.get("retire_project_id")) and bool(params.get("retire_project_name"))

    retiring_a_project() >> PrefineryDeleteProjectOperator(
        task_id="retire_project",
        beta_id="{{ params.retire_project_id }}",
        confirm_project_name="{{ params.retire_project_name }}",
    )
