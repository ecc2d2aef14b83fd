"""PrefineryHook on the wire: paths, bodies, auth, pagination, retries, error mapping, input rules.

Request-level mocks (``responses``) pin exact wire details; the contract tests against the sandbox
(tests/hooks/test_prefinery_sandbox.py) prove the same methods over real HTTP.
"""

from __future__ import annotations

import email.utils
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses
from responses import matchers

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryConnectionError,
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryPermissionError,
    PrefineryRateLimitError,
    PrefineryServerError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.prefinery import ENDPOINTS, PrefineryHook
from tests.hooks.conftest import API, BETA, KEY

USER = {"id": 7, "email": "ada@example.com", "status": "applied"}
LAST_PAGE = {"X-Pagination": json.dumps({"current_page": 1, "next_page": None, "per_page": 25})}


def _pages(api: responses.RequestsMock, path: str, pages: list[list[dict]]) -> None:
    for number, items in enumerate(pages, start=1):
        meta = {
            "current_page": number,
            "next_page": number + 1 if number < len(pages) else None,
            "previous_page": number - 1 or None,
            "per_page": 25,
            "pages": len(pages),
        }
        api.get(
            f"{API}/{path}",
            json=items,
            headers={"X-Pagination": json.dumps(meta)},
            match=[
                matchers.query_param_matcher({"page": str(number)} if number > 1 else {}, strict_match=False)
            ],
        )


def test_every_request_carries_bearer_auth_json_headers_and_no_key_in_the_url(hook, api) -> None:
    api.get(f"{API}/betas/{BETA}.json", json={"id": BETA, "name": "Launch"})
    assert hook.get_project() == {"id": BETA, "name": "Launch"}
    sent = api.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Accept"] == "application/json"
    assert KEY not in sent.url
    assert "api_key" not in sent.url


def test_create_user_wraps_the_body_in_tester_and_sends_json(hook, api) -> None:
    api.post(f"{API}/betas/{BETA}/testers.json", json=USER, status=201)
    hook.create_user("ada@example.com", status="applied", profile={"first_name": "Ada"}, referrer_code="R1")
    sent = api.calls[0].request
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {
        "tester": {
            "email": "ada@example.com",
            "status": "applied",
            "referrer_id": "R1",
            "profile": {"first_name": "Ada"},
        }
    }


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [
        (
            lambda h: h.update_user(7, status="invited"),
            "PUT",
            "testers/7.json",
            {"tester": {"status": "invited"}},
        ),
        (lambda h: h.delete_user(7), "DELETE", "testers/7.json", None),
        (lambda h: h.get_user(7), "GET", "testers/7.json", None),
        (lambda h: h.checkin_user(user_id=7), "POST", "testers/7/checkin.json", None),
        (lambda h: h.checkin_user(email="a@b.co"), "POST", "checkins.json", {"checkin": {"email": "a@b.co"}}),
        (lambda h: h.get_reward(3), "GET", "rewards/3.json", None),
        (
            lambda h: h.create_reward("a@b.co", "free-month"),
            "POST",
            "rewards.json",
            {"email": "a@b.co", "descriptor": "free-month", "skip_quantity_check": False},
        ),
        (
            lambda h: h.trigger_rewards("a@b.co", "purchase"),
            "POST",
            "rewards/trigger.json",
            {"email": "a@b.co", "event": "purchase"},
        ),
        (
            lambda h: h.update_reward_status(3, "delivered"),
            "PATCH",
            "rewards/3.json",
            {"status": "delivered"},
        ),
        (lambda h: h.get_suppression(5), "GET", "suppressions/5.json", None),
        (
            lambda h: h.create_suppression("a@b.co", reason="Unsubscribe"),
            "POST",
            "suppressions.json",
            {"email": "a@b.co", "reason": "Unsubscribe"},
        ),
        (lambda h: h.delete_suppression(5), "DELETE", "suppressions/5.json", None),
        (
            lambda h: h.create_friend_invitation("a@b.co", "c@d.co", message="hi"),
            "POST",
            "friend_invitations.json",
            {"friend_invitation": {"sender_email": "a@b.co", "recipient_email": "c@d.co", "message": "hi"}},
        ),
        (
            lambda h: h.create_points("a@b.co", 10, reason="bonus"),
            "POST",
            "points.json",
            {"email": "a@b.co", "quantity": 10, "reason": "bonus"},
        ),
    ],
)
def test_each_action_sends_its_method_path_and_body(hook, api, call, method, path, body) -> None:
    api.add(method, f"{API}/betas/{BETA}/{path}", json={"ok": True})
    call(hook)
    sent = api.calls[0].request
    assert sent.method == method
    assert sent.url.split("?")[0] == f"{API}/betas/{BETA}/{path}"
    assert (json.loads(sent.body) if sent.body else None) == body


def test_delete_project_needs_its_id_spelled_out(hook, api) -> None:
    with pytest.raises(TypeError):
        hook.delete_project()  # type: ignore[call-arg]
    api.delete(f"{API}/betas/99.json", body="")
    assert hook.delete_project(99) is None
    assert api.calls[0].request.url == f"{API}/betas/99.json"


def test_method_beta_id_overrides_the_hooks_which_overrides_the_connections(prefinery_conn, api) -> None:
    api.get(f"{API}/betas/5/testers/1.json", json=USER)
    api.get(f"{API}/betas/6/testers/1.json", json=USER)
    hook = PrefineryHook(prefinery_conn, beta_id=5)
    hook.get_user(1)
    hook.get_user(1, beta_id=6)
    assert [c.request.url.split("/betas/")[1] for c in api.calls] == ["5/testers/1.json", "6/testers/1.json"]


def test_missing_beta_id_is_a_clear_input_error(monkeypatch, api) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOBETA", json.dumps({"conn_type": "prefinery", "password": KEY}))
    with pytest.raises(PrefineryInputError, match=r"beta_id.*API Beta ID"):
        PrefineryHook("nobeta").get_user(1)
    assert not api.calls


def test_legacy_extra_spelling_of_beta_id_is_read(monkeypatch, api) -> None:
    conn = {
        "conn_type": "prefinery",
        "password": KEY,
        "host": "prefinery.test",
        "extra": {"extra__prefinery__beta_id": "8"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_LEGACY", json.dumps(conn))
    api.get(f"{API}/betas/8.json", json={"id": 8, "name": "x"})
    assert PrefineryHook("legacy").get_project()["id"] == 8  # bare host gets https://


def test_list_users_follows_x_pagination_over_three_pages_lazily(hook, api) -> None:
    pages = [
        [{"id": n, "email": f"u{n}@x.io", "status": "applied"} for n in range(p * 25, p * 25 + 25)]
        for p in range(3)
    ]
    pages[2] = pages[2][:10]
    _pages(api, f"betas/{BETA}/testers.json", pages)
    users = hook.list_users()
    first = next(users)
    assert first["id"] == 0
    assert len(api.calls) == 1  # lazy: one page fetched so far
    rest = list(users)
    assert len(rest) + 1 == 60
    assert len(api.calls) == 3


def test_list_without_pagination_header_stops_at_the_first_empty_page(hook, api) -> None:
    api.get(
        f"{API}/betas/{BETA}/suppressions.json", json=[{"id": 1}], match=[matchers.query_param_matcher({})]
    )
    api.get(
        f"{API}/betas/{BETA}/suppressions.json",
        json=[{"id": 2}],
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    api.get(
        f"{API}/betas/{BETA}/suppressions.json", json=[], match=[matchers.query_param_matcher({"page": "3"})]
    )
    assert [s["id"] for s in hook.list_suppressions()] == [1, 2]


def test_list_users_sends_api_filters_and_filters_status_here(hook, api) -> None:
    api.get(
        f"{API}/betas/{BETA}/testers.json",
        json=[{"id": 1, "status": "active"}, {"id": 2, "status": "applied"}, {"id": 3, "status": "idle"}],
        headers=LAST_PAGE,
        match=[matchers.query_param_matcher({"email_contains": "@x.io", "name": "Ada"})],
    )
    got = list(hook.list_users(email_contains="@x.io", name="Ada", status=["active", "idle"]))
    assert [u["id"] for u in got] == [1, 3]


def test_list_users_by_email_uses_email_is(hook, api) -> None:
    api.get(
        f"{API}/betas/{BETA}/testers.json",
        json=[USER],
        headers=LAST_PAGE,
        match=[matchers.query_param_matcher({"email_is": "ada@example.com"})],
    )
    assert hook.find_user("Ada@Example.com".lower()) == USER


def test_429_with_retry_after_is_waited_out_then_succeeds(hook, api, sleeps) -> None:
    url = f"{API}/betas/{BETA}/testers/7.json"
    api.get(url, status=429, headers={"Retry-After": "3"}, json={"error": "slow down"})
    api.get(url, json=USER)
    assert hook.get_user(7) == USER
    assert 3.0 in sleeps


def test_429_after_every_retry_raises_rate_limit_error_with_the_hint(prefinery_conn, api, sleeps) -> None:
    from airflow_provider_prefinery.hooks.rest import RetryPolicy

    hook = PrefineryHook(prefinery_conn, retry=RetryPolicy(max_retries=2))
    hook.client.sleep = sleeps.append
    api.get(f"{API}/betas/{BETA}/testers/7.json", status=429, headers={"Retry-After": "2"}, json={})
    with pytest.raises(PrefineryRateLimitError) as info:
        hook.get_user(7)
    assert info.value.retry_after == 2.0
    assert len(api.calls) == 3


def test_503_on_a_put_is_retried(hook, api, sleeps) -> None:
    url = f"{API}/betas/{BETA}/testers/7.json"
    api.put(url, status=503, json={"error": "maintenance"})
    api.put(url, json=USER)
    assert hook.update_user(7, status="active") == USER
    assert len(api.calls) == 2
    assert len(sleeps) == 1


def test_read_timeout_on_points_post_is_not_retried_and_marked_outcome_unknown(hook, api, sleeps) -> None:
    api.post(f"{API}/betas/{BETA}/points.json", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(PrefineryConnectionError) as info:
        hook.create_points("a@b.co", 5)
    assert len(api.calls) == 1
    assert not sleeps
    assert info.value.outcome_unknown is True


@pytest.mark.parametrize("status", [500, 502, 504])
def test_ambiguous_5xx_on_friend_invitation_is_not_replayed(hook, api, status) -> None:
    api.post(f"{API}/betas/{BETA}/friend_invitations.json", status=status, json={"error": "boom"})
    with pytest.raises(PrefineryServerError) as info:
        hook.create_friend_invitation("a@b.co", "c@d.co")
    assert len(api.calls) == 1
    assert info.value.outcome_unknown is True


def test_503_on_points_post_is_retried_because_it_was_not_applied(hook, api) -> None:
    url = f"{API}/betas/{BETA}/points.json"
    api.post(url, status=503, json={"error": "busy"})
    api.post(url, status=201, json={"id": 1, "quantity": 5})
    assert hook.create_points("a@b.co", 5)["id"] == 1
    assert len(api.calls) == 2


def _replayed_create(api: responses.RequestsMock, user: dict) -> None:
    """A first POST whose answer is lost, its replay answered 2310, and the LIST that finds ``user``."""
    url = f"{API}/betas/{BETA}/testers.json"
    api.post(url, body=requests.exceptions.ReadTimeout("lost"))
    api.post(url, status=422, json={"errors": [{"code": 2310, "message": "Email has already been taken"}]})
    api.get(
        url,
        json=[user],
        headers=LAST_PAGE,
        match=[matchers.query_param_matcher({"email_is": "ada@example.com"})],
    )


def _stamp(seconds_ago: float) -> str:
    moment = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # Prefinery's format: seconds, Z


def test_create_user_replayed_after_a_lost_answer_returns_the_user_it_created(hook, api) -> None:
    created = {**USER, "created_at": _stamp(0)}
    _replayed_create(api, created)
    assert hook.create_user("ada@example.com") == created
    assert [c.request.method for c in api.calls] == ["POST", "POST", "GET"]


def test_create_user_replayed_meeting_a_user_older_than_the_first_attempt_reports_the_duplicate(
    hook, api
) -> None:
    """The first attempt never created anything: the user existed an hour before, so it is not ours."""
    _replayed_create(api, {**USER, "created_at": _stamp(3600)})
    with pytest.raises(PrefineryValidationError) as info:
        hook.create_user("ada@example.com")
    assert info.value.code == 2310 and info.value.replayed
    assert [c.request.method for c in api.calls] == ["POST", "POST", "GET"]


def test_create_user_replay_dates_the_user_on_the_servers_clock_from_its_date_header(hook, api) -> None:
    """The server's clock is an hour behind ours: by our clock the user is an hour old, by the server's
    Date header it was made during our attempt, so it is ours."""
    server_now = datetime.now(timezone.utc) - timedelta(hours=1)
    url = f"{API}/betas/{BETA}/testers.json"
    api.post(url, body=requests.exceptions.ReadTimeout("lost"))
    api.post(
        url,
        status=422,
        json={"errors": [{"code": 2310, "message": "Email has already been taken"}]},
        headers={"Date": email.utils.format_datetime(server_now, usegmt=True)},
    )
    created = {**USER, "created_at": server_now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    api.get(url, json=[created], headers=LAST_PAGE)
    assert hook.create_user("ada@example.com") == created


def test_create_user_duplicate_without_a_replay_is_reported_as_2310(hook, api) -> None:
    api.post(
        f"{API}/betas/{BETA}/testers.json",
        status=422,
        json={"errors": [{"code": 2310, "message": "Email has already been taken"}]},
    )
    with pytest.raises(PrefineryValidationError) as info:
        hook.create_user("ada@example.com")
    assert info.value.code == 2310
    assert "already been taken" in str(info.value)
    assert "POST betas/42/testers.json" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "text"),
    [
        (
            401,
            {"error": "Invalid API key"},
            PrefineryAuthError,
            None,
            "check the API key of connection 'prefinery_test'",
        ),
        (403, {"error": "forbidden"}, PrefineryPermissionError, None, "lacks the permission for GET"),
        (404, {"error": "not found"}, PrefineryNotFoundError, None, "not found"),
        (
            422,
            {"errors": [{"code": 2301, "message": "Email is invalid"}]},
            PrefineryValidationError,
            2301,
            "Email is invalid",
        ),
        (422, {"error": "Something off"}, PrefineryValidationError, None, "Something off"),
    ],
)
def test_error_statuses_map_to_the_error_tree_with_codes(hook, api, status, body, cls, code, text) -> None:
    api.get(f"{API}/betas/{BETA}/testers/7.json", status=status, json=body)
    with pytest.raises(cls) as info:
        hook.get_user(7)
    assert info.value.status == status
    assert info.value.code == code
    assert text in str(info.value)
    assert "GET betas/42/testers/7.json" in str(info.value)
    assert len(api.calls) == 1


def test_403_is_also_an_auth_error_for_callers_that_catch_broadly(hook, api) -> None:
    api.get(f"{API}/betas/{BETA}.json", status=403, json={})
    with pytest.raises(PrefineryAuthError):
        hook.get_project()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda h: h.create_user("not-an-email"), "email"),
        (lambda h: h.create_user(" ada@example.com"), "email"),
        (lambda h: h.create_user("adä@example.com"), "email"),
        (lambda h: h.create_user("a@b.co", status="waiting"), "status"),
        (lambda h: h.create_user("a@b.co", invitation_code="X"), "invitation_code"),
        (lambda h: h.create_user("a@b.co", profile="Ada"), "profile"),
        (lambda h: h.create_user("a@b.co", profile={"bio": "x" * 2_000_000}), "profile"),
        (lambda h: h.update_user(7), "update_user"),
        (lambda h: h.checkin_user(), "user_id/email"),
        (lambda h: h.checkin_user(user_id=1, email="a@b.co"), "user_id/email"),
        (lambda h: h.update_reward_status(3, "earned"), "status"),
        (lambda h: h.create_suppression("a@b.co", reason="HardBounce"), "reason"),
        (lambda h: h.create_points("a@b.co", -5), "quantity"),
        (lambda h: h.create_points("a@b.co", 2.5), "quantity"),
        (lambda h: h.create_points("a@b.co", True), "quantity"),
        (lambda h: h.list_users(status="sleeping"), "status"),
        (lambda h: h.list_rewards(status="pending"), "status"),
        (lambda h: h.get_user(7, beta_id=-1), "beta_id"),
        (lambda h: h.delete_project("abc"), "beta_id"),
        (lambda h: h.create_friend_invitation("a@b.co", "nope"), "recipient_email"),
    ],
)
def test_bad_input_is_rejected_before_any_request_naming_the_field(hook, api, call, field) -> None:
    with pytest.raises(PrefineryInputError) as info:
        call(hook)
    assert info.value.field == field
    assert field in str(info.value)
    assert not api.calls


def test_bad_status_error_lists_the_allowed_values(hook) -> None:
    with pytest.raises(PrefineryInputError, match="allowed: imported, unconfirmed, applied, rejected"):
        hook.create_user("a@b.co", status="waiting")


def test_host_that_is_not_a_url_is_an_input_error(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BADHOST", json.dumps({"conn_type": "prefinery", "password": KEY, "host": "ftp://x y"})
    )
    with pytest.raises(PrefineryInputError, match="host"):
        PrefineryHook("badhost").get_project(1)


def test_the_key_never_appears_in_logs_errors_or_urls(hook, api, caplog, sleeps) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{API}/betas/{BETA}/testers/7.json"
    api.get(url, status=500, json={"error": f"upstream echoed {KEY}"})
    api.get(url, status=401, json={"error": f"bad key {KEY}"})
    with pytest.raises(PrefineryError) as info:
        hook.get_user(7)
    text = caplog.text + str(info.value) + repr(info.value) + info.value.message
    assert KEY not in text
    assert "***" in str(info.value)
    assert all(KEY not in c.request.url for c in api.calls)
    assert KEY not in repr(hook.client.auth)


def test_test_connection_names_the_project(hook, api) -> None:
    api.get(f"{API}/betas/{BETA}.json", json={"id": BETA, "name": "Launch"})
    assert hook.test_connection() == (True, "Connected to Prefinery project 'Launch' (id 42)")


def test_test_connection_reports_a_bad_key(hook, api) -> None:
    api.get(f"{API}/betas/{BETA}.json", status=401, json={"error": "Invalid API key"})
    ok, message = hook.test_connection()
    assert not ok
    assert "check the API key" in message
    assert KEY not in message


def test_test_connection_without_beta_lists_projects(monkeypatch, api) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOBETA",
        json.dumps({"conn_type": "prefinery", "password": KEY, "host": "https://prefinery.test"}),
    )
    api.get(f"{API}/betas.json", json=[{"id": 1, "name": "A"}], headers=LAST_PAGE)
    ok, message = PrefineryHook("nobeta").test_connection()
    assert ok
    assert "'A' (id 1)" in message


def test_every_hook_method_of_the_design_exists() -> None:
    names = [
        "list_projects", "get_project", "delete_project", "list_users", "get_user", "delete_user",
        "create_user", "update_user", "checkin_user", "list_rewards", "get_reward", "create_reward",
        "trigger_rewards", "update_reward_status", "list_suppressions", "get_suppression",
        "delete_suppression", "create_suppression", "create_friend_invitation", "list_points",
        "create_points", "test_connection",
    ]  # fmt: skip
    assert all(callable(getattr(PrefineryHook, name)) for name in names)


def test_endpoint_table_uses_json_paths_under_betas() -> None:
    for name, endpoint in ENDPOINTS.items():
        assert endpoint.path.endswith(".json"), name
        assert endpoint.path.startswith("betas"), name
        assert endpoint.method in {"GET", "POST", "PUT", "PATCH", "DELETE"}, name


# ------------------------------------------------------------------ ids, filters, pages (issue 13)
BAD_IDS = ["", "   ", " 12", "12\n", "-", "²", "12; DROP", "1" * 5000, 0, -3, 10**30, True, 2.0]


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize(
    "call",
    [
        lambda h, i: h.get_user(i),
        lambda h, i: h.delete_user(i),
        lambda h, i: h.update_user(i, status="active"),
        lambda h, i: h.checkin_user(user_id=i),
        lambda h, i: h.get_reward(i),
        lambda h, i: h.update_reward_status(i, "delivered"),
        lambda h, i: h.get_suppression(i),
        lambda h, i: h.delete_suppression(i),
    ],
    ids=["get_user", "delete_user", "update_user", "checkin_user", "get_reward", "update_reward_status",
         "get_suppression", "delete_suppression"],
)  # fmt: skip
def test_an_id_that_is_not_exactly_a_positive_integer_is_refused_before_any_request(
    hook, api, call, bad
) -> None:
    with pytest.raises(PrefineryInputError) as info:
        call(hook, bad)

    assert info.value.field in {"user_id", "reward_id", "suppression_id"}
    assert len(api.calls) == 0


def test_update_user_and_update_reward_status_put_the_checked_id_into_the_path(hook, api) -> None:
    api.put(f"{API}/betas/{BETA}/testers/12.json", json=USER)
    api.patch(f"{API}/betas/{BETA}/rewards/34.json", json={"id": 34, "status": "delivered"})

    hook.update_user("0012", status="active")
    hook.update_reward_status("034", "delivered")

    assert [c.request.url for c in api.calls] == [
        f"{API}/betas/{BETA}/testers/12.json",
        f"{API}/betas/{BETA}/rewards/34.json",
    ]


def test_a_path_id_left_out_is_refused_rather_than_blank(hook, api) -> None:
    """``DELETE testers/.json`` cannot be built: a path that needs an id refuses None and blanks."""
    with pytest.raises(PrefineryInputError, match="id"):
        hook.call("delete_user", beta_id=BETA, record=None)
    with pytest.raises(PrefineryInputError, match="id"):
        hook.call("delete_user", beta_id=BETA, record="")
    assert len(api.calls) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email_contains": {"$ne": ""}}, "email_contains"),
        ({"name": 5}, "name"),
        ({"referral_code": ["a", "b"]}, "referral_code"),
        ({"custom_vars": {"a": 1}}, "custom_vars"),
        ({"email_contains": "  "}, "email_contains"),
    ],
    ids=["email_contains-dict", "name-int", "referral_code-list", "custom_vars-dict", "email_contains-blank"],
)
def test_list_users_filters_that_are_not_text_are_refused_before_any_request(
    hook, api, kwargs, field
) -> None:
    with pytest.raises(PrefineryInputError) as info:
        hook.list_users(**kwargs)

    assert info.value.field == field
    assert len(api.calls) == 0


@pytest.mark.parametrize("email", [None, 123, "", "not-an-email"], ids=repr)
@pytest.mark.parametrize("find", ["find_user", "find_suppression"])
def test_find_needs_an_email_and_says_so_before_any_request(hook, api, find: str, email: object) -> None:
    """``find_user(None)`` would otherwise list every user and then fail on ``None.lower()``."""
    with pytest.raises(PrefineryInputError) as info:
        getattr(hook, find)(email)

    assert info.value.field == "email"
    assert len(api.calls) == 0


def test_a_points_quantity_beyond_a_32_bit_integer_is_refused_before_any_request(hook, api) -> None:
    with pytest.raises(PrefineryInputError) as info:
        hook.create_points("a@b.co", 10**30)

    assert info.value.field == "quantity" and "at most 2,147,483,647" in str(info.value)
    assert len(api.calls) == 0


def test_a_page_that_is_not_json_fails_the_listing_instead_of_ending_it(hook, api) -> None:
    """A proxy's or login portal's HTML page answered with 200: the listing must not stop there quietly."""
    url = f"{API}/betas/{BETA}/testers.json"
    first = {"X-Pagination": json.dumps({"current_page": 1, "next_page": 2, "per_page": 25})}
    api.get(url, json=[USER] * 25, headers=first, match=[matchers.query_param_matcher({})])
    api.get(url, body="<html><body>Please sign in to the network</body></html>", content_type="text/html")

    users = hook.list_users()
    with pytest.raises(PrefineryError) as info:
        list(users)

    assert "not JSON" in str(info.value) and "Please sign in" in str(info.value)
    assert info.value.status == 200
