"""MailchimpHook: wire details with `responses` (auth, data center, paging, errors, the in-flight cap),
then the same methods against the sandbox over real HTTP."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import responses
from responses import matchers

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryInputError,
    PrefineryNotFoundError,
)
from airflow_provider_prefinery.hooks import mailchimp as mc
from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook, data_center
from airflow_provider_prefinery.provider_info import MAILCHIMP_CONNECTION, legacy_field_specs

KEY = "0123456789abcdef0123456789abcdef-us6"
API = "https://us6.api.mailchimp.com/3.0"
LIST = "a1b2c3d4e5"


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MAILCHIMP_TEST",
        json.dumps({"conn_type": "mailchimp", "password": KEY, "extra": {"list_id": LIST}}),
    )
    return "mailchimp_test"


@pytest.fixture
def hook(conn: str) -> Iterator[MailchimpHook]:
    h = MailchimpHook(conn)
    h.client.sleep = lambda _: None
    yield h
    h.close()


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def page(n: int, start: int, total: int) -> dict[str, Any]:
    members = [{"email_address": f"m{start + i}@example.com", "status": "subscribed"} for i in range(n)]
    return {"members": members, "total_items": total, "list_id": LIST}


def paged(api: responses.RequestsMock, total: int, size: int = 500) -> None:
    for offset in range(0, total, size):
        api.get(
            f"{API}/lists/{LIST}/members",
            json=page(min(size, total - offset), offset, total),
            match=[matchers.query_param_matcher({"offset": str(offset)}, strict_match=False)],
        )


# ---- connection ----------------------------------------------------------------------------------------
def test_data_center_is_read_from_the_key() -> None:
    assert data_center("abc-us6") == "us6"
    assert data_center("abc-us21") == "us21"
    assert data_center("abc") is None


def test_requests_go_to_the_keys_data_center_with_basic_auth_and_no_key_in_the_url(hook, api) -> None:
    paged(api, 3)
    assert len(list(hook.list_members())) == 3
    sent = api.calls[0].request
    assert sent.url.startswith(f"{API}/lists/{LIST}/members?")
    assert KEY not in sent.url
    user, _, password = base64.b64decode(sent.headers["Authorization"].split()[1]).decode().partition(":")
    assert password == KEY and user


def test_host_overrides_the_data_center(monkeypatch, api) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_PROXY",
        json.dumps({"conn_type": "mailchimp", "password": "nodc", "host": "http://127.0.0.1:9"}),
    )
    api.get("http://127.0.0.1:9/3.0/lists/L1/members", json=page(1, 0, 1))
    assert len(list(MailchimpHook("mc_proxy").list_members("L1"))) == 1


def test_key_without_data_center_and_no_host_is_refused_without_showing_the_key(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MC_BAD", json.dumps({"conn_type": "mailchimp", "password": "secretkey"}))
    with pytest.raises(PrefineryInputError, match="no data center suffix") as caught:
        MailchimpHook("mc_bad").client  # noqa: B018
    assert "secretkey" not in str(caught.value)


def test_missing_list_id_names_the_connection(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MC_NOLIST", json.dumps({"conn_type": "mailchimp", "password": KEY}))
    with pytest.raises(PrefineryInputError, match="mc_nolist"):
        list(MailchimpHook("mc_nolist").list_members())


def test_legacy_form_behaviour_is_the_declared_one() -> None:
    assert MailchimpHook.get_ui_field_behaviour() == MAILCHIMP_CONNECTION["ui-field-behaviour"]
    assert legacy_field_specs("mailchimp")["list_id"]["kind"] == "string"
    try:
        widgets = MailchimpHook.get_connection_form_widgets()
    except ImportError:  # Airflow 3 ships no wtforms/FAB: the method exists for Airflow 2 only
        return
    assert set(widgets) == set(MAILCHIMP_CONNECTION["conn-fields"])


# ---- paging ------------------------------------------------------------------------------------------
def test_pages_of_500_by_offset_until_offset_reaches_total_items(hook, api) -> None:
    paged(api, 1200)
    emails = [m["email_address"] for m in hook.list_members()]
    assert len(emails) == 1200 == len(set(emails))
    offsets = [call.request.params["offset"] for call in api.calls]
    assert offsets == ["0", "500", "1000"]
    assert {call.request.params["count"] for call in api.calls} == {"500"}


def test_listing_is_lazy_one_page_at_a_time(hook, api) -> None:
    paged(api, 1200)
    members = hook.list_members()
    next(members)
    assert len(api.calls) == 1


def test_window_status_and_fields_are_sent_as_mailchimp_expects(hook, api) -> None:
    paged(api, 1)
    since = datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
    list(hook.list_members(since_last_changed=since, before_last_changed="2025-03-01T11:00:00+00:00",
                           status="subscribed", fields=["email_address", "status"]))  # fmt: skip
    params = api.calls[0].request.params
    assert params["since_last_changed"] == "2025-03-01T10:00:00+00:00"
    assert params["before_last_changed"] == "2025-03-01T11:00:00+00:00"
    assert params["status"] == "subscribed"
    assert params["fields"] == "total_items,members.email_address,members.status"


def test_unknown_status_and_naive_datetimes_are_refused_before_any_request(hook, api) -> None:
    with pytest.raises(PrefineryInputError, match="allowed: subscribed"):
        list(hook.list_members(status="active"))
    with pytest.raises(PrefineryInputError, match="timezone-aware"):
        list(hook.list_members(since_last_changed=datetime(2025, 1, 1)))
    assert len(api.calls) == 0


def test_when_the_total_shrinks_mid_listing_the_offset_steps_back_so_nobody_is_skipped(hook, api) -> None:
    # Two members left the window after page one: what was at 500..501 is now at 498..499.
    url = f"{API}/lists/{LIST}/members"
    api.get(
        url,
        json=page(500, 0, 1000),
        match=[matchers.query_param_matcher({"offset": "0"}, strict_match=False)],
    )
    api.get(
        url,
        json=page(498, 500, 998),
        match=[matchers.query_param_matcher({"offset": "500"}, strict_match=False)],
    )
    api.get(
        url,
        json=page(2, 996, 998),
        match=[matchers.query_param_matcher({"offset": "996"}, strict_match=False)],
    )
    list(hook.list_members())
    assert [c.request.params["offset"] for c in api.calls] == ["0", "500", "996"]


def test_list_audiences_pages_through_lists(hook, api) -> None:
    api.get(f"{API}/lists", json={"lists": [{"id": "L1", "name": "News"}], "total_items": 1})
    assert [a["id"] for a in hook.list_audiences()] == ["L1"]


# ---- errors and limits -------------------------------------------------------------------------------
def test_problem_json_becomes_a_typed_error_with_title_as_code(hook, api) -> None:
    body = {"type": "https://mailchimp.com/developer/", "title": "Resource Not Found", "status": 404,
            "detail": "The requested resource could not be found.", "instance": "abc"}  # fmt: skip
    api.get(f"{API}/lists/nope/members", json=body, status=404, content_type="application/problem+json")
    with pytest.raises(PrefineryNotFoundError) as caught:
        list(hook.list_members("nope"))
    err = caught.value
    assert (err.service, err.status, err.code) == ("Mailchimp", 404, "Resource Not Found")
    assert err.message == "The requested resource could not be found."


def test_invalid_key_is_an_auth_error_that_never_shows_the_key(hook, api) -> None:
    body = {"title": "API Key Invalid", "status": 401, "detail": f"Your API key may be invalid: {KEY}"}
    api.get(f"{API}/lists/{LIST}/members", json=body, status=401)
    with pytest.raises(PrefineryAuthError) as caught:
        list(hook.list_members())
    assert KEY not in str(caught.value) and "***" in str(caught.value)


def test_field_errors_are_listed_in_the_message(hook, api) -> None:
    body = {"title": "Invalid Resource", "status": 400, "detail": "Bad request",
            "errors": [{"field": "count", "message": "too big"}]}  # fmt: skip
    api.get(f"{API}/lists/{LIST}/members", json=body, status=400)
    with pytest.raises(Exception, match=r"Bad request \(count: too big\)"):
        list(hook.list_members())


def test_no_more_than_10_requests_in_flight_per_key_across_hooks_and_threads(conn, api) -> None:
    mc._SLOTS.clear()
    live, peak, lock = [0], [0], threading.Lock()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return 200, {}, json.dumps(page(1, 0, 1))

    api.add_callback(responses.GET, f"{API}/lists/{LIST}/members", callback=slow)
    hooks = [MailchimpHook(conn) for _ in range(3)]  # three hooks, one key: one shared cap
    threads = [threading.Thread(target=lambda h=h: list(h.list_members())) for h in hooks for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(api.calls) == 30
    assert peak[0] == 10


# ---- against the sandbox -----------------------------------------------------------------------------
@pytest.mark.integration
def test_sandbox_window_returns_exactly_the_members_changed_in_it(sandbox) -> None:
    members = sandbox.control.mailchimp_members()
    stamps = sorted(m["last_changed"] for m in members)
    since, before = stamps[100], stamps[1300]
    expected = {m["email_address"] for m in members if since <= m["last_changed"] < before}
    got = list(MailchimpHook().list_members(since_last_changed=since, before_last_changed=before))
    assert {m["email_address"] for m in got} == expected
    assert len(got) == len(expected)  # 1,200 members over three pages, none twice
    assert sandbox.control.count(api="mailchimp", endpoint="list_members") == 3


@pytest.mark.integration
def test_sandbox_audiences_and_connection_test(sandbox, monkeypatch) -> None:
    assert [a["id"] for a in MailchimpHook().list_audiences()] == [sandbox.list_id]
    ok, message = MailchimpHook().test_connection()
    assert ok and "2,000 members" in message
    bad = json.loads(sandbox.connections()["AIRFLOW_CONN_MAILCHIMP_DEFAULT"])
    bad["password"] = "wrong-us1"
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_WRONG", json.dumps(bad))
    ok, message = MailchimpHook("mailchimp_wrong").test_connection()
    assert not ok and "401" in message and "wrong-us1" not in message


# ------------------------------------------------------------------ ids in paths, filters (issue 13)
@pytest.mark.parametrize("list_id", [".", "..", "a/b", "a1b2%2e", "", " a1b2c3d4e5", 42])
def test_an_audience_id_that_is_not_a_mailchimp_id_is_refused_before_any_request(hook, api, list_id) -> None:
    with pytest.raises(PrefineryInputError) as info:
        next(hook.list_members(list_id))

    assert info.value.field == "list_id"
    assert len(api.calls) == 0


def test_a_dot_segment_never_reaches_a_path_even_past_the_hooks_check(hook, api) -> None:
    """The core's id quoting is the one place ids enter paths: it refuses ``.`` and ``..`` for any API."""
    from airflow_provider_prefinery.hooks.rest import quote_id

    for segment in (".", "..", "", "  "):
        with pytest.raises(PrefineryInputError):
            quote_id(segment, "list_id")
    assert quote_id("a/b") == "a%2Fb"


def test_the_test_button_refuses_an_audience_extra_that_walks_the_path(monkeypatch, api) -> None:
    conn = {"conn_type": "mailchimp", "password": KEY, "extra": {"list_id": ".."}}
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DOTS", json.dumps(conn))

    ok, message = MailchimpHook("mailchimp_dots").test_connection()

    assert not ok and "list_id" in message
    assert len(api.calls) == 0


def test_the_test_button_answers_when_the_keys_data_center_makes_no_host(monkeypatch) -> None:
    """A data center suffix that cannot be a host name: the Test button says so, it does not raise."""
    conn = {"conn_type": "mailchimp", "password": f"0123456789abcdef-{'x' * 64}"}
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_BADDC", json.dumps(conn))

    ok, message = MailchimpHook("mailchimp_baddc").test_connection()

    assert not ok
    assert "0123456789abcdef" not in message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fields": "email_address"}, "fields"),
        ({"fields": ["email_address", "merge_fields,id"]}, "fields"),
        ({"since_last_changed": "yesterday"}, "since/before"),
        ({"before_last_changed": "2024-01-01T00:00:00"}, "since/before"),
        ({"since_last_changed": 1704067200}, "since/before"),
    ],
    ids=["fields-as-text", "field-with-comma", "since-words", "before-no-offset", "since-number"],
)
def test_member_filters_that_would_reach_the_wire_malformed_are_refused(hook, api, kwargs, field) -> None:
    with pytest.raises(PrefineryInputError) as info:
        next(hook.list_members(**kwargs))

    assert info.value.field == field
    assert len(api.calls) == 0
