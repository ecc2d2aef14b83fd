"""The referral-program example DAG, run by real Airflow (``dag.test()`` on SQLite) against the sandbox."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_SPARE_BETA_ID

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAG_ID = "prefinery_referral_program"
SIGNUPS = [
    "lena.mertens@example.org",
    "omar.haddad@example.org",
    "sofia.rossi@example.org",
    "typo.address@example.org",
    "remove.me@example.org",
]


def _expired_manual(sbx: Any, days: int) -> set[int]:
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    return {
        s["id"]
        for s in sbx.control.suppressions(reason="Manual")
        if datetime.datetime.fromisoformat(s["suppressed_at"].replace("Z", "+00:00")) < cutoff
    }


def test_referral_program_dag_runs_every_write_operator_against_the_sandbox(sbx: Any, run_dag: Any) -> None:
    control = sbx.control
    top3 = [
        u["id"] for u in sorted(control.users(status="applied", beta_id=DEMO_BETA_ID), key=lambda u: u["id"])
    ][:3]
    expired = _expired_manual(sbx, 30)
    manual_before = {s["id"] for s in control.suppressions(reason="Manual")}

    run = run_dag(
        DAG_ID, run_conf={"retire_project_id": DEMO_SPARE_BETA_ID, "retire_project_name": "Sandbox Spare"}
    )

    assert run.state == "success"
    # 1. signups created (but the erased one), each checked in once by a mapped task
    assert all(control.users(email=email) for email in SIGNUPS[:4])
    assert not control.users(email="remove.me@example.org")
    assert control.count(api="prefinery", endpoint="checkin_by_email") == len(SIGNUPS)
    # 2. the waitlist's top 3 invited, each inviting one friend (mapped with expand_kwargs)
    assert [control.users(id=uid)[0]["status"] for uid in top3] == ["invited"] * 3
    invitations = control.friend_invitations()
    assert sorted(i["recipient_email"] for i in invitations) == sorted(
        f"friend.of.{u}@example.net" for u in top3
    )
    # 3. three purchase events, a milestone reward, and every reward this run produced delivered
    assert len(control.reward_triggers(event="purchase")) == 3
    produced = control.rewards(descriptor="milestone-5", status="delivered") + control.rewards(
        descriptor="referral-purchase"
    )
    assert produced and all(r["status"] == "delivered" for r in produced)
    assert not control.rewards(descriptor="referral-purchase", status="earned")
    # 4. welcome points for each signup
    assert len(control.points(reason="Welcome to the beta", quantity=50)) == len(SIGNUPS)
    # 5. the bounce suppressed; expired Manual suppressions lifted, the recent ones kept
    assert control.suppressions(email="typo.address@example.org")[0]["reason"] == "Manual"
    manual_after = {s["id"] for s in control.suppressions(reason="Manual")}
    assert expired and not expired & manual_after
    assert manual_before - expired <= manual_after
    # 7. the spare project retired after its name was confirmed
    assert not control.state("projects", id=DEMO_SPARE_BETA_ID)
    assert control.state("projects", id=DEMO_BETA_ID)
