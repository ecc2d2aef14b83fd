"""MailchimpToPrefineryOperator against the sandbox over real HTTP: end state, request cost, re-runs,
the window, dry runs, failures and the id index's fallbacks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryNotFoundError
from airflow_provider_prefinery.sandbox.seeds import DEMO_LIST_ID
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex
from airflow_provider_prefinery.transfers.mailchimp_rules import email_key, user_digest
from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import (
    MailchimpToPrefineryOperator,
    SyncFailedError,
)
from tests.transfers.conftest import EPOCH

pytestmark = pytest.mark.integration


def prefinery_requests(sbx: Any) -> list[dict[str, Any]]:
    return [r for r in sbx.control.requests(api="prefinery")]


def writes(sbx: Any) -> list[dict[str, Any]]:
    return [r for r in prefinery_requests(sbx) if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]


def assert_prefinery_matches_audience(sbx: Any, before: str, initial: dict[str, set[str]]) -> None:
    """Prefinery holds exactly: the users it had plus every subscribed member (with the member's names),
    and the suppressions it had plus every unsubscribed or cleaned member."""
    members = [m for m in sbx.control.mailchimp_members() if m["last_changed"] < before]
    users = {u["email"].lower(): u for u in sbx.control.users()}
    suppressed = {s["email"].lower() for s in sbx.control.suppressions()}
    subscribed = {m["email_address"].lower(): m for m in members if m["status"] == "subscribed"}
    gone = {m["email_address"].lower() for m in members if m["status"] in ("unsubscribed", "cleaned")}
    assert set(users) == initial["users"] | set(subscribed)
    assert suppressed == initial["suppressions"] | gone
    for email, m in subscribed.items():
        profile = users[email]["profile"] or {}
        assert (profile.get("first_name") or "", profile.get("last_name") or "") == (
            m["merge_fields"].get("FNAME") or "",
            m["merge_fields"].get("LNAME") or "",
        ), email


def snapshot(sbx: Any) -> dict[str, set[str]]:
    return {
        "users": {u["email"].lower() for u in sbx.control.users()},
        "suppressions": {s["email"].lower() for s in sbx.control.suppressions()},
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.fixture
def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def recent(now: datetime) -> str:
    """Two days back: a window of a few hundred of the demo seed's 2,000 members (fast tests)."""
    return iso(now - timedelta(days=2))


def in_window(sbx: Any, since: str, before: str, **filters: Any) -> list[dict[str, Any]]:
    return [m for m in sbx.control.mailchimp_members(**filters) if since <= m["last_changed"] < before]


# ---- end state and cost ------------------------------------------------------------------------------
def test_full_sync_makes_prefinery_match_the_audience(sbx, sync, now) -> None:
    initial = snapshot(sbx)
    report = sync(since=EPOCH, before=iso(now))
    assert_prefinery_matches_audience(sbx, iso(now), initial)
    counts, calls = report["counts"], report["requests"]["by_kind"]
    assert counts["failed"] == 0 and counts["created"] > 1000 and counts["suppressed"] > 300
    assert counts["updated"] > 0 and counts["unchanged"] > 0  # shared e-mails: some names differ, most match
    assert sum(counts.values()) == report["members"] == 2000
    assert calls["create_user"] == counts["created"] and calls["create_suppression"] == counts["suppressed"]
    assert len(writes(sbx)) == counts["created"] + counts["updated"] + counts["suppressed"]
    json.dumps(report)  # the XCom is JSON


def test_rerunning_a_window_sends_no_prefinery_request(sbx, sync, now, recent) -> None:
    first = sync(since=recent, before=iso(now))
    sbx.control.clear_requests()
    again = sync(since=recent, before=iso(now))
    assert prefinery_requests(sbx) == []
    assert again["counts"]["unchanged"] == first["members"] - first["counts"]["skipped"]
    assert again["requests"]["prefinery"] == 0


def test_next_window_costs_one_write_per_changed_member_and_nothing_for_the_rest(
    sbx, sync, now, recent
) -> None:
    cut = now + timedelta(minutes=1)
    sync(since=EPOCH, before=iso(cut))
    initial = snapshot(sbx)
    # Members of the seed that are not Prefinery users (those live at example.com), one per status.
    members = {m["status"]: m for m in in_window(sbx, recent, iso(cut)) if "@mail." in m["email_address"]}
    at = iso(cut + timedelta(minutes=5))
    mc = sbx.control
    mc.mailchimp_member(
        "new.subscriber@example.org", merge_fields={"FNAME": "Nina", "LNAME": "New"}, last_changed=at
    )
    mc.mailchimp_member(
        members["subscribed"]["email_address"], merge_fields={"FNAME": "Renamed"}, last_changed=at
    )
    mc.mailchimp_member(members["pending"]["email_address"], status="subscribed", last_changed=at)
    mc.mailchimp_member(members["transactional"]["email_address"], status="unsubscribed", last_changed=at)
    mc.mailchimp_member(members["archived"]["email_address"], status="cleaned", last_changed=at)
    mc.mailchimp_member(members["unsubscribed"]["email_address"], last_changed=at)  # touched, nothing new
    mc.mailchimp_member("not.yet@example.org", status="pending", last_changed=at)
    sbx.control.clear_requests()

    end = iso(cut + timedelta(hours=1))
    report = sync(since=iso(cut), before=end)

    assert report["counts"] == {
        "created": 2,
        "updated": 1,
        "suppressed": 2,
        "unchanged": 1,
        "skipped": 1,
        "failed": 0,
    }
    assert len(prefinery_requests(sbx)) == 5  # one write per changed member, no LIST at all
    assert report["requests"]["by_kind"] == {
        "create_suppression": 2, "create_user": 2, "update_user": 1, "list_members": 1,
    }  # fmt: skip
    assert_prefinery_matches_audience(sbx, end, initial)


def test_window_defaults_to_the_runs_data_interval(sbx, sync, now) -> None:
    start, end = now - timedelta(days=2), now - timedelta(days=1)
    in_window = [m for m in sbx.control.mailchimp_members() if iso(start) <= m["last_changed"] < iso(end)]
    report = sync({"data_interval_start": start, "data_interval_end": end})
    assert report["window"] == {"since": start.isoformat(), "before": end.isoformat()}
    assert report["members"] == len(in_window) > 0
    assert report["outside_window"] == 0  # the one-second overlap asked of Mailchimp found none


def test_empty_window_is_refused_with_the_timetable_hint(sbx, sync, now) -> None:
    with pytest.raises(PrefineryInputError, match="CronDataIntervalTimetable"):
        sync({"data_interval_start": now, "data_interval_end": now})


# ---- dry run -----------------------------------------------------------------------------------------
def test_dry_run_plans_what_the_real_run_then_does_and_writes_nothing(sbx, sync, store, now, recent) -> None:
    planned = sync(since=recent, before=iso(now), dry_run=True)
    assert writes(sbx) == []
    assert store.saves == 0
    assert planned["dry_run"] is True
    done = sync(since=recent, before=iso(now))
    assert planned["counts"] == done["counts"]
    assert done["counts"]["created"] > 0


def test_dry_run_logs_the_planned_writes(sbx, sync, now, capsys) -> None:
    sync(since=EPOCH, before=iso(now), dry_run=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if "plan: " in line]
    assert len(lines) == 101  # the first 100 writes, then how many more
    assert "'action': 'create'" in lines[0] or "'action': 'suppress'" in lines[0]
    assert "more writes" in lines[-1]


# ---- failures ----------------------------------------------------------------------------------------
def test_failing_members_are_reported_after_the_rest_are_applied(sbx, sync, now, recent) -> None:
    at = iso(now - timedelta(seconds=30))
    sbx.control.mailchimp_member("zoë@example.com", merge_fields={"FNAME": "Zoë"}, last_changed=at)
    planned = sync(since=recent, before=iso(now), dry_run=True)["counts"]
    sbx.control.set_faults("prefinery", {"500": 1.0}, target="create_suppression")
    with pytest.raises(SyncFailedError) as caught:
        sync(since=recent, before=iso(now))
    report = caught.value.report
    counts = report["counts"]
    assert planned["suppressed"] > 10
    assert counts["failed"] == planned["suppressed"] + 1  # every suppression (HTTP 500), the non-ASCII one
    assert counts["suppressed"] == 0 and counts["created"] == planned["created"]  # the rest went through
    assert sum(counts.values()) == report["members"]
    reasons = {f["error"] for f in report["failed"]}
    assert reasons == {"PrefineryServerError", "PrefineryInputError"}
    assert any(f["record"]["email"] == "zoë@example.com" for f in report["failed"])
    assert "member(s) failed to sync" in str(caught.value)


def test_without_fail_on_error_failures_are_returned_not_raised(sbx, sync, now) -> None:
    sbx.control.mailchimp_member("zoë@example.com", last_changed=iso(now - timedelta(seconds=30)))
    report = sync(since=iso(now - timedelta(minutes=1)), before=iso(now), fail_on_error=False)
    assert report["counts"]["failed"] == 1
    [failure] = report["failed"]
    assert failure["message"] == "email_address: must be an ASCII e-mail address: 'zoë@example.com'"
    assert failure["record"] == {"action": "invalid", "email": "zoë@example.com", "status": "subscribed",
                                 "reason": "must be an ASCII e-mail address: 'zoë@example.com'"}  # fmt: skip


def test_failed_run_pushes_its_report_before_failing(sbx, sync, now) -> None:
    class TI:
        pushed: dict[str, Any] = {}

        def xcom_push(self, key: str, value: Any) -> None:
            self.pushed[key] = value

    ti = TI()
    sbx.control.mailchimp_member("zoë@example.com", last_changed=iso(now - timedelta(seconds=30)))
    with pytest.raises(SyncFailedError):
        sync({"ti": ti}, since=iso(now - timedelta(minutes=1)), before=iso(now))
    assert ti.pushed["return_value"]["counts"]["failed"] == 1


# ---- the id index ------------------------------------------------------------------------------------
def test_index_is_rebuilt_once_then_reused(sbx, sync, store, now, recent) -> None:
    first = sync(since=iso(now - timedelta(days=4)), before=recent)
    second = sync(since=recent, before=iso(now))
    assert first["index"]["rebuilt"] is True and first["index"]["rebuild_requests"] >= 13  # 322 users / 25
    assert second["index"]["rebuilt"] is False
    assert "index_listing" not in second["requests"]["by_kind"]
    assert second["index"]["entries"] > first["index"]["entries"]


def test_stale_entry_for_a_deleted_user_falls_back_to_creating_it(sbx, sync, store, now) -> None:
    sbx.control.mailchimp_member("ghost@example.org", merge_fields={"FNAME": "G"}, last_changed=iso(now))
    op = MailchimpToPrefineryOperator(task_id="scope")
    stale = user_digest({"first_name": "Old", "last_name": ""})
    meta = {"scope": op.index_scope(op.prefinery.resolve_beta_id()), "built_at": 4e9}  # fresh, right project
    store.text = IdIndex.from_entries([(email_key("ghost@example.org"), 987654, stale)], meta).encode()

    report = sync(since=iso(now), before=iso(now + timedelta(seconds=1)))

    assert report["counts"]["created"] == 1
    assert report["requests"]["by_kind"] == {"update_user": 1, "create_user": 1, "list_members": 1}
    [user] = sbx.control.users(email="ghost@example.org")
    assert IdIndex.decode(store.text).get(email_key("ghost@example.org"))[0] == user["id"]


def test_lazy_index_finds_existing_users_by_one_lookup_each(sbx, sync, now) -> None:
    audience = {m["email_address"].lower() for m in sbx.control.mailchimp_members()}
    suppressed = {s["email"].lower() for s in sbx.control.suppressions()}
    users = [u for u in sbx.control.users() if u["email"] not in audience | suppressed][:3]
    for user in users:  # Prefinery users the sync never saw join the audience under new names
        sbx.control.mailchimp_member(
            user["email"].upper(), merge_fields={"FNAME": "Lazy"}, last_changed=iso(now)
        )

    report = sync(since=iso(now), before=iso(now + timedelta(seconds=1)), index_rebuild="lazy")

    assert report["counts"]["updated"] == 3
    assert report["requests"]["by_kind"] == {
        "create_user": 3,
        "find_user": 3,
        "update_user": 3,
        "list_members": 1,
    }
    ids = {u["id"] for u in users}
    assert {u["profile"]["first_name"] for u in sbx.control.users() if u["id"] in ids} == {"Lazy"}


def test_list_id_comes_from_the_argument_or_the_connection(sbx, sync, now, recent) -> None:
    expected = len(in_window(sbx, recent, iso(now)))
    assert sync(since=recent, before=iso(now), dry_run=True, list_id=DEMO_LIST_ID)["members"] == expected
    assert sync(since=recent, before=iso(now), dry_run=True)["members"] == expected
    with pytest.raises(PrefineryNotFoundError, match="nope"):
        sync(since=recent, before=iso(now), dry_run=True, list_id="nope")


def test_the_api_key_appears_in_no_report_or_log(sbx, sync, now, recent, capsys, caplog) -> None:
    sbx.control.set_faults("prefinery", {"500": 1.0}, target="create_suppression")
    report = sync(since=recent, before=iso(now), fail_on_error=False)
    out = capsys.readouterr()
    assert report["counts"]["failed"] > 0 and "injected fault" in out.out  # the failures were logged
    assert sbx.api_key not in json.dumps(report)
    assert sbx.api_key not in out.out + out.err + caplog.text


def test_bad_options_are_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(PrefineryInputError, match="index_rebuild"):
        MailchimpToPrefineryOperator(task_id="x", index_rebuild="sometimes")
    with pytest.raises(PrefineryInputError, match="status_actions"):
        MailchimpToPrefineryOperator(task_id="x", status_actions={"subscribed": "invite"})


def test_dry_run_argument_leaves_airflows_dry_run_method_working(caplog) -> None:
    op = MailchimpToPrefineryOperator(task_id="x", dry_run=True, list_id="{{ 'abc' }}")
    with caplog.at_level("INFO"):
        op.dry_run()  # BaseOperator's: renders nothing, logs the template fields; no request is made
    assert callable(op.dry_run)


def test_connection_ids_are_templated_and_the_operator_has_its_colour() -> None:
    op = MailchimpToPrefineryOperator(
        task_id="x",
        mailchimp_conn_id="{{ params.env }}_mailchimp",
        prefinery_conn_id="{{ params.env }}_prefinery",
    )
    op.render_template_fields({"params": {"env": "staging"}})
    assert (op.mailchimp_conn_id, op.prefinery_conn_id) == ("staging_mailchimp", "staging_prefinery")
    assert op.ui_color.startswith("#") and op.ui_color.lower() != "#fff"
