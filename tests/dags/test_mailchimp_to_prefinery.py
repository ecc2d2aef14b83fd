"""The hourly sync DAG, run by real Airflow (``dag.test()`` on SQLite) for two consecutive intervals
against the sandbox: after each run Prefinery holds exactly what the audience says; the id index lives in a
real Airflow Variable; a re-run of an interval sends no Prefinery request."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAG_ID = "mailchimp_to_prefinery"
VARIABLE = f"prefinery_id_index_{DEMO_BETA_ID}"


@pytest.fixture
def sbx(sbx: Any, airflow_db: Any) -> Any:
    """The scaled sandbox of ``tests/dags/conftest.py``, and no index left over."""
    from airflow.models.variable import Variable

    Variable.delete(VARIABLE)
    return sbx


def report_of(run: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=DAG_ID, run_id=run.run_id, task_id="sync_audience", key="return_value")
            .one()
        )
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def stored_index() -> IdIndex | None:
    from airflow.models.variable import Variable

    text = Variable.get(VARIABLE, default_var=None)
    return IdIndex.decode(text) if text else None


def expected_state(sbx: Any, before: datetime, initial: dict[str, set[str]]) -> dict[str, Any]:
    """What Prefinery must hold once every member changed before ``before`` is synced."""
    cut = before.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    members = [m for m in sbx.control.mailchimp_members() if m["last_changed"] < cut]
    names = {
        m["email_address"].lower(): (
            m["merge_fields"].get("FNAME") or "",
            m["merge_fields"].get("LNAME") or "",
        )
        for m in members
        if m["status"] == "subscribed"
    }
    gone = {m["email_address"].lower() for m in members if m["status"] in ("unsubscribed", "cleaned")}
    return {
        "users": initial["users"] | set(names),
        "suppressions": initial["suppressions"] | gone,
        "names": names,
    }


def actual_state(sbx: Any) -> dict[str, Any]:
    users = sbx.control.users()
    by_email = {u["email"].lower(): u["profile"] or {} for u in users}
    return {
        "users": set(by_email),
        "suppressions": {s["email"].lower() for s in sbx.control.suppressions()},
        "profiles": by_email,
    }


def assert_state(sbx: Any, before: datetime, initial: dict[str, set[str]]) -> None:
    want, have = expected_state(sbx, before, initial), actual_state(sbx)
    assert have["users"] == want["users"]
    assert have["suppressions"] == want["suppressions"]
    wrong = {
        email: (have["profiles"][email].get("first_name"), have["profiles"][email].get("last_name"), name)
        for email, name in want["names"].items()
        if (
            (have["profiles"][email].get("first_name") or ""),
            (have["profiles"][email].get("last_name") or ""),
        )
        != name
    }
    assert wrong == {}


def test_two_consecutive_hourly_runs_leave_prefinery_in_sync_with_the_audience(
    sbx: Any, run_dag: Any
) -> None:
    control = sbx.control
    initial = {
        "users": {u["email"].lower() for u in control.users()},
        "suppressions": {s["email"].lower() for s in control.suppressions()},
    }
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)

    # Run 1: the interval ending at `hour`, widened to the whole history (the first run of a new sync).
    first = run_dag(DAG_ID, logical_date=hour, run_conf={"since": "1970-01-01T00:00:00Z"})
    assert first.state == "success"
    assert (first.data_interval_start, first.data_interval_end) == (hour - timedelta(hours=1), hour)
    one = report_of(first)
    assert one["window"] == {"since": "1970-01-01T00:00:00+00:00", "before": hour.isoformat()}
    assert one["index"]["rebuilt"] is True and one["counts"]["failed"] == 0
    assert_state(sbx, hour, initial)
    index = stored_index()
    assert index is not None and len(index) >= len(actual_state(sbx)["users"])

    # Audience activity during the next hour.
    at = (hour + timedelta(minutes=10)).isoformat()
    subscribed = [m for m in control.mailchimp_members(status="subscribed") if "@mail." in m["email_address"]]
    pending = control.mailchimp_members(status="pending")
    control.mailchimp_member(
        "first.new@example.net", merge_fields={"FNAME": "First", "LNAME": "New"}, last_changed=at
    )
    control.mailchimp_member("Second.New@Example.net", merge_fields={"FNAME": "Second"}, last_changed=at)
    control.mailchimp_member(
        subscribed[0]["email_address"], merge_fields={"LNAME": "Edited"}, last_changed=at
    )
    control.mailchimp_member(subscribed[1]["email_address"], status="unsubscribed", last_changed=at)
    control.mailchimp_member(subscribed[2]["email_address"], status="cleaned", last_changed=at)
    control.mailchimp_member(pending[0]["email_address"], status="subscribed", last_changed=at)
    control.clear_requests()
    after_first = {
        key: actual_state(sbx)[key] for key in ("users", "suppressions")
    }  # users stay when suppressed

    # Run 2: the next interval, [hour, hour + 1h).
    second = run_dag(DAG_ID, logical_date=hour + timedelta(hours=1))
    assert second.state == "success"
    two = report_of(second)
    assert two["window"] == {"since": hour.isoformat(), "before": (hour + timedelta(hours=1)).isoformat()}
    assert two["index"]["rebuilt"] is False  # the Variable written by run 1 was reused
    counts = two["counts"]
    assert counts["created"] >= 3 and counts["updated"] >= 1 and counts["suppressed"] >= 2
    writes = counts["created"] + counts["updated"] + counts["suppressed"]
    assert control.count(api="prefinery") == two["requests"]["prefinery"] == writes  # no LIST at all
    assert_state(sbx, hour + timedelta(hours=1), after_first)
    assert actual_state(sbx)["profiles"]["second.new@example.net"]["first_name"] == "Second"

    # Re-running the second interval changes nothing and asks Prefinery nothing.
    control.clear_requests()
    again = run_dag(DAG_ID, logical_date=hour + timedelta(hours=1))
    assert again.state == "success"
    assert (
        report_of(again)["counts"]["unchanged"]
        == counts["created"] + counts["updated"] + counts["suppressed"] + counts["unchanged"]
    )
    assert control.count(api="prefinery") == 0
