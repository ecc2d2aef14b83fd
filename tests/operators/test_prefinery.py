"""The 12 Prefinery operators against the sandbox over real HTTP: results, re-runs, failures, wire."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefinery.batch import (
    BatchFailedError,
    BatchFailedNoRetryError,
    BatchValidationError,
    NoRetryError,
)
from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryValidationError
from airflow_provider_prefinery.hooks.rest import _BUCKETS
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
from airflow_provider_prefinery.sandbox.seeds import DEMO_SPARE_BETA_ID

pytestmark = pytest.mark.integration


class _TI:
    """Collects what the operator pushes itself (the report of a failing batch)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    _BUCKETS.clear()


@pytest.fixture
def sbx(sandbox: Any) -> Any:
    """The sandbox with Prefinery's list limits lifted (the hook's own limiter is tested elsewhere)."""
    sandbox.control.configure(scale=1000)
    return sandbox


def _run(op: Any, ti: _TI | None = None) -> Any:
    return op.execute({"ti": ti or _TI()})


def _user(sbx: Any, status: str) -> dict[str, Any]:
    return sbx.control.users(status=status)[0]


# ------------------------------------------------------------------------------------------ users
def test_create_user_returns_the_created_user(sbx: Any) -> None:
    op = PrefineryCreateUserOperator(
        task_id="t", email="ada@example.org", status="applied", profile={"first_name": "Ada"}
    )

    user = _run(op)

    assert user["email"] == "ada@example.org" and user["profile"]["first_name"] == "Ada"
    assert sbx.control.users(email="ada@example.org")[0]["id"] == user["id"]


def test_create_users_batch_skips_and_updates_existing_users_by_email(sbx: Any) -> None:
    existing = _user(sbx, "applied")
    records = [{"email": "new.one@example.org"}, {"email": existing["email"], "status": "invited"}]

    skipped = _run(PrefineryCreateUserOperator(task_id="s", records=records, if_exists="skip"))
    updated = _run(
        PrefineryCreateUserOperator(task_id="u", records=records, if_exists="update", return_records=True)
    )

    assert skipped["counts"]["succeeded"] == 1 and skipped["counts"]["skipped"] == 1
    assert updated["counts"]["skipped"] == 1 and updated["counts"]["updated"] == 1  # new.one: no changes
    assert updated["records"][1]["id"] == existing["id"] and updated["records"][1]["status"] == "invited"
    assert sbx.control.users(email=existing["email"])[0]["status"] == "invited"


def test_create_users_if_exists_fail_processes_the_rest_then_fails_with_every_failure(sbx: Any) -> None:
    existing = _user(sbx, "applied")
    ti = _TI()
    op = PrefineryCreateUserOperator(
        task_id="f",
        records=[{"email": "a1@example.org"}, {"email": existing["email"]}, {"email": "a2@example.org"}],
    )

    with pytest.raises(BatchFailedError, match=r"1 of 3 create_user record\(s\) failed.*#1.*code 2310"):
        _run(op, ti)

    report = ti.pushed["return_value"]
    assert report["counts"]["succeeded"] == 2 and report["counts"]["failed"] == 1
    assert report["failed"][0]["index"] == 1 and report["failed"][0]["code"] == 2310
    assert sbx.control.users(email="a2@example.org")  # the record after the failure was processed


def test_create_user_if_exists_is_checked_in_init() -> None:
    with pytest.raises(PrefineryInputError, match=r"if_exists: unknown value 'merge' \(allowed: fail, skip"):
        PrefineryCreateUserOperator(task_id="t", email="a@example.org", if_exists="merge")


def test_invalid_records_are_reported_together_and_nothing_is_sent(sbx: Any) -> None:
    op = PrefineryCreateUserOperator(
        task_id="t",
        records=[
            {"email": "ok@example.org"},
            {"email": "not-an-email"},
            {"email": "b@example.org", "status": "vip"},
        ],
    )

    with pytest.raises(BatchValidationError) as info:
        _run(op)

    assert [(e["index"], e["field"]) for e in info.value.errors] == [(1, "email"), (2, "status")]
    assert sbx.control.count(api="prefinery", endpoint="create_user") == 0


def test_update_and_checkin_users(sbx: Any) -> None:
    user = _user(sbx, "invited")

    updated = _run(PrefineryUpdateUserOperator(task_id="u", user_id=user["id"], profile={"country": "NL"}))
    by_email = _run(PrefineryCheckinUserOperator(task_id="c", email=user["email"]))
    by_id = _run(PrefineryCheckinUserOperator(task_id="d", records=[{"user_id": user["id"]}]))

    assert updated["profile"]["country"] == "NL"
    assert by_id["counts"]["succeeded"] == 1 and by_id["failed"] == []
    assert by_email is None or isinstance(by_email, dict)  # 202: Prefinery sends no object
    assert sbx.control.count(api="prefinery", endpoint="checkin_by_email") == 1
    assert sbx.control.count(api="prefinery", endpoint="checkin_by_id") == 1


def test_deleting_a_user_twice_is_already_done_with_a_log_line(
    sbx: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    user = _user(sbx, "rejected")

    _run(PrefineryDeleteUserOperator(task_id="d", user_id=user["id"]))
    again = _run(PrefineryDeleteUserOperator(task_id="d", records=[{"user_id": user["id"]}]))

    assert again["counts"]["already_done"] == 1 and again["counts"]["failed"] == 0
    assert f"user {user['id']} is already gone (404)" in capsys.readouterr().out  # the task log
    assert not sbx.control.users(id=user["id"])


# ------------------------------------------------------------------------------------------ suppressions
def test_suppressing_twice_is_already_done_and_returns_the_existing_suppression(sbx: Any) -> None:
    first = _run(PrefineryCreateSuppressionOperator(task_id="s", email="gone@example.org"))
    second = _run(PrefineryCreateSuppressionOperator(task_id="s", email="gone@example.org"))
    batch = _run(PrefineryCreateSuppressionOperator(task_id="b", records=[{"email": "gone@example.org"}]))

    assert second == first
    assert batch["counts"]["already_done"] == 1
    assert len(sbx.control.suppressions(email="gone@example.org")) == 1


def test_lifting_a_suppression_twice_is_already_done(sbx: Any) -> None:
    manual = sbx.control.suppressions(reason="Manual")[0]
    records = [{"suppression_id": manual["id"]}, {"suppression_id": manual["id"]}]

    report = _run(PrefineryDeleteSuppressionOperator(task_id="d", records=records, max_concurrency=1))

    assert report["counts"]["succeeded"] == 1 and report["counts"]["already_done"] == 1
    assert not sbx.control.suppressions(id=manual["id"])


# ------------------------------------------------------------------------------------------ rewards
def test_delivering_a_reward_again_is_done_and_a_conflicting_status_fails(sbx: Any) -> None:
    reward = sbx.control.rewards(status="earned")[0]

    first = _run(PrefineryUpdateRewardStatusOperator(task_id="r", reward_id=reward["id"], status="delivered"))
    again = _run(PrefineryUpdateRewardStatusOperator(task_id="r", reward_id=reward["id"], status="delivered"))

    assert first["status"] == again["status"] == "delivered"
    with pytest.raises(PrefineryValidationError, match="its current status: 'delivered'"):
        _run(PrefineryUpdateRewardStatusOperator(task_id="r", reward_id=reward["id"], status="revoked"))


def test_issuing_and_triggering_rewards(sbx: Any) -> None:
    holder = _user(sbx, "active")
    referred = next(u for u in sbx.control.users(status="active") if u["referred_by"])

    reward = _run(PrefineryCreateRewardOperator(task_id="c", email=holder["email"], descriptor="vip-pass"))
    triggered = _run(
        PrefineryTriggerRewardsOperator(
            task_id="t", records=[{"email": referred["email"]}], event="purchase", return_records=True
        )
    )

    assert reward["descriptor"] == "vip-pass" and reward["status"] == "earned"
    assert triggered["records"][0]["rewards"][0]["descriptor"] == "referral-purchase"
    assert sbx.control.rewards(user_id=referred["referred_by"], descriptor="referral-purchase")


# ------------------------------------------------------------------------------------------ non-idempotent
def test_points_and_invitations_are_sent_once_per_record(sbx: Any) -> None:
    sender = _user(sbx, "active")

    points = _run(
        PrefineryCreatePointsOperator(
            task_id="p", records=[{"email": sender["email"]}, {"email": sender["email"]}], quantity="7"
        )
    )
    invitation = _run(
        PrefineryCreateFriendInvitationOperator(
            task_id="i", sender_email=sender["email"], recipient_email="pal@example.net", message="hi"
        )
    )

    assert points["counts"]["succeeded"] == 2
    assert len(sbx.control.points(user_id=sender["id"], quantity=7)) == 2  # "7" rendered as text is read
    assert invitation["recipient_email"] == "pal@example.net"
    assert sbx.control.count(api="prefinery", endpoint="create_points") == 2


def test_non_idempotent_batch_with_unknown_outcomes_is_never_replayed_nor_retried(sbx: Any) -> None:
    """The server applies the write and answers 500: each record is sent once and reported unknown."""
    sender = _user(sbx, "active")
    sbx.control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_points")
    ti = _TI()
    op = PrefineryCreatePointsOperator(
        task_id="p", records=[{"email": sender["email"], "quantity": 5}] * 3, max_concurrency=2
    )

    with pytest.raises(BatchFailedNoRetryError) as info:
        _run(op, ti)

    assert isinstance(info.value, AirflowFailException)  # Airflow will not retry the task
    report = ti.pushed["return_value"]
    assert report["counts"]["failed"] == report["counts"]["outcome_unknown"] == 3
    assert all(entry["outcome_unknown"] is True and entry["status"] == 500 for entry in report["failed"])
    assert sbx.control.count(api="prefinery", endpoint="create_points") == 3  # no replay


def test_single_non_idempotent_write_with_unknown_outcome_fails_without_retry(sbx: Any) -> None:
    sbx.control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_reward")
    holder = _user(sbx, "active")

    with pytest.raises(NoRetryError, match="not retried: create_reward is not idempotent"):
        _run(PrefineryCreateRewardOperator(task_id="c", email=holder["email"], descriptor="x"))

    assert sbx.control.count(api="prefinery", endpoint="create_reward") == 1


def test_fail_on_error_false_succeeds_and_reports_the_failures(sbx: Any) -> None:
    report = _run(
        PrefineryCreatePointsOperator(
            task_id="p", records=[{"email": "nobody@example.org", "quantity": 1}], fail_on_error=False
        )
    )

    assert report["counts"]["failed"] == 1
    assert report["failed"][0]["code"] == 2803 and "nobody@example.org" in report["failed"][0]["message"]


# ------------------------------------------------------------------------------------------ projects
def test_delete_project_checks_the_name_before_deleting(sbx: Any) -> None:
    wrong = PrefineryDeleteProjectOperator(
        task_id="p", beta_id=DEMO_SPARE_BETA_ID, confirm_project_name="Spare"
    )
    right = PrefineryDeleteProjectOperator(
        task_id="p", beta_id=DEMO_SPARE_BETA_ID, confirm_project_name="Sandbox Spare"
    )

    with pytest.raises(PrefineryInputError, match="is named 'Sandbox Spare': nothing was deleted"):
        _run(wrong)
    assert sbx.control.state("projects", id=DEMO_SPARE_BETA_ID)
    _run(right)
    assert not sbx.control.state("projects", id=DEMO_SPARE_BETA_ID)
    assert _run(right) is None  # already gone: done


def test_delete_project_needs_beta_id_and_name_spelled_out() -> None:
    with pytest.raises(PrefineryInputError, match="beta_id: deleting a project needs beta_id spelled out"):
        PrefineryDeleteProjectOperator(task_id="p", confirm_project_name="x")
    with pytest.raises(PrefineryInputError, match="confirm_project_name: is required"):
        PrefineryDeleteProjectOperator(task_id="p", beta_id=1)
    with pytest.raises(PrefineryInputError, match="works on one object"):
        PrefineryDeleteProjectOperator(task_id="p", beta_id=1, confirm_project_name="x", records=[{}])


def test_the_api_key_appears_in_no_log_or_report(
    sbx: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ti = _TI()

    with pytest.raises(BatchFailedError):
        _run(
            PrefineryCreatePointsOperator(task_id="p", records=[{"email": "x@example.org", "quantity": 1}]),
            ti,
        )

    out = capsys.readouterr()
    assert "x@example.org" in out.out  # the failure was logged...
    assert sbx.api_key not in out.out + out.err + caplog.text + repr(ti.pushed)  # ...without the key


def test_the_connection_pool_grows_to_max_concurrency(sbx: Any) -> None:
    """Fewer pooled connections than workers would make urllib3 reconnect for most requests."""
    op = PrefineryCheckinUserOperator(
        task_id="c", records=[{"email": u["email"]} for u in sbx.control.users()[:30]], max_concurrency=24
    )

    report = _run(op)

    assert report["counts"]["succeeded"] == 30
    assert op.hook.client.pool_size == 24
