"""The Prefinery v2 emulation over real HTTP: auth, pagination, filters, status rules and error codes."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_SPARE_BETA_ID, DEMO_USER_COUNT
from tests.sandbox.helpers import Api, error_code

USER = "/testers/5001.json"


@pytest.fixture
def api(sandbox):
    return Api(sandbox)


def user_with(api: Api, status: str) -> dict:
    return next(u for u in api.sb.control.users(status=status))


def test_bearer_basic_and_query_key_all_authenticate(sandbox, api):
    url = f"{sandbox.url}/api/v2/betas/{DEMO_BETA_ID}{USER}"
    assert requests.get(url, headers={"Authorization": f"Bearer {sandbox.api_key}"}).status_code == 200
    assert requests.get(url, auth=(sandbox.api_key, "")).status_code == 200
    assert requests.get(url, params={"api_key": sandbox.api_key}).status_code == 200


def test_missing_or_wrong_key_is_401_in_prefinery_error_shape(sandbox):
    url = f"{sandbox.url}/api/v2/betas.json"
    assert requests.get(url).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert error_code(wrong) == 401 and wrong.json()["errors"][0]["message"]


def test_key_without_permission_is_403_and_plan_without_api_is_402(sandbox):
    sandbox.control.set_key("reader", permissions=["users:read"])
    reader = Api(sandbox, "reader")
    assert reader.p("GET", USER).status_code == 200
    assert reader.p("POST", "/testers.json", json={"tester": {"email": "x@example.com"}}).status_code == 403
    sandbox.control.set_key("unpaid", api_access=False)
    assert Api(sandbox, "unpaid").p("GET", USER).status_code == 402


def test_users_list_pages_by_25_with_x_pagination_until_next_page_is_null(api):
    seen, page, headers = [], 1, []
    while page:
        response = api.p("GET", "/testers.json", params={"page": page})
        header = json.loads(response.headers["X-Pagination"])
        headers.append(header)
        seen += [u["id"] for u in response.json()]
        page = header["next_page"]
    assert len(headers) == 13 >= 3
    assert headers[0] == {
        "previous_page": None,
        "next_page": 2,
        "current_page": 1,
        "per_page": 25,
        "count": 25,
        "pages": 13,
        "total_count": DEMO_USER_COUNT,
    }
    assert headers[-1]["next_page"] is None and headers[-1]["count"] == DEMO_USER_COUNT - 12 * 25
    assert len(seen) == len(set(seen)) == DEMO_USER_COUNT


def test_users_filters_match_email_name_code_and_custom_vars(api):
    target = api.p("GET", USER).json()

    def ids(**params):
        return {u["id"] for u in api.p("GET", "/testers.json", params=params).json()}

    assert ids(email_is=target["email"].upper()) == {5001}
    assert 5001 in ids(email_contains=target["email"].split("@")[0][:6])
    assert all(
        target["profile"]["last_name"].lower()
        in api.p("GET", f"/testers/{i}.json").json()["profile"]["last_name"].lower()
        for i in ids(name=target["profile"]["last_name"])
    )
    assert ids(referral_code=target["referral_code"]) == {5001}
    plan = target["profile"]["custom_var1"]
    total = json.loads(api.p("GET", "/testers.json", params={"custom_vars": plan}).headers["X-Pagination"])
    assert 0 < total["total_count"] < DEMO_USER_COUNT


def test_user_objects_are_complete_with_utc_z_timestamps(api):
    user = api.p("GET", USER).json()
    for name in (
        "id",
        "email",
        "status",
        "profile",
        "referral_code",
        "share_link",
        "waitlist_position",
        "friend_invitations_remaining",
        "referred_by",
        "groups",
        "created_at",
        "updated_at",
    ):
        assert name in user
    assert user["created_at"].endswith("Z")


def test_unknown_user_reward_suppression_and_project_are_404(api):
    assert api.p("GET", "/testers/999999.json").status_code == 404
    assert api.p("GET", "/rewards/999999.json").status_code == 404
    assert api.p("GET", "/suppressions/999999.json").status_code == 404
    assert api.call("GET", "/api/v2/betas/4040.json").status_code == 404


def test_create_user_answers_201_then_2310_for_the_same_email_and_2301_for_a_bad_one(api):
    created = api.p(
        "POST",
        "/testers.json",
        json={"tester": {"email": "new@example.com", "status": "invited", "profile": {"first_name": "New"}}},
    )
    assert created.status_code == 201
    assert created.json()["status"] == "invited" and created.json()["profile"]["first_name"] == "New"
    again = api.p("POST", "/testers.json", json={"tester": {"email": "NEW@example.com"}})
    assert (again.status_code, error_code(again)) == (422, 2310)
    bad = api.p("POST", "/testers.json", json={"tester": {"email": "not-an-email"}})
    assert (bad.status_code, error_code(bad)) == (422, 2301)


def test_create_user_with_referrer_code_links_the_referrer(api):
    referrer = api.p("GET", USER).json()
    body = {"tester": {"email": "friend@example.com", "referrer_id": referrer["referral_code"]}}
    assert api.p("POST", "/testers.json", json=body).json()["referred_by"] == 5001


def test_update_user_follows_documented_transitions_only(api):
    applied = user_with(api, "applied")
    moved = api.p("PUT", f"/testers/{applied['id']}.json", json={"tester": {"status": "invited"}})
    assert moved.status_code == 200 and moved.json()["status"] == "invited"
    unconfirmed = user_with(api, "unconfirmed")
    refused = api.p("PUT", f"/testers/{unconfirmed['id']}.json", json={"tester": {"status": "active"}})
    assert refused.status_code == 422


def test_delete_user_then_it_is_gone(api):
    assert api.p("DELETE", USER).status_code == 200
    assert api.p("GET", USER).status_code == 404


def test_checkin_by_id_and_by_email_makes_the_user_active_with_202(api):
    first, second = api.sb.control.users(status="applied")[:2]
    assert api.p("POST", f"/testers/{first['id']}/checkin.json").status_code == 202
    by_email = api.p("POST", "/checkins.json", json={"checkin": {"email": second["email"]}})
    assert by_email.status_code == 202
    assert api.p("GET", f"/testers/{first['id']}.json").json()["status"] == "active"
    assert api.p("GET", f"/testers/{second['id']}.json").json()["status"] == "active"


def test_only_earned_rewards_change_status(api):
    email = api.p("GET", USER).json()["email"]
    created = api.p("POST", "/rewards.json", json={"email": email, "descriptor": "sandbox-test"})
    assert created.status_code == 201 and created.json()["status"] == "earned"
    rid = created.json()["id"]
    delivered = api.p("PATCH", f"/rewards/{rid}.json", json={"status": "delivered"})
    assert delivered.json()["status"] == "delivered" and delivered.json()["delivered_at"]
    again = api.p("PATCH", f"/rewards/{rid}.json", json={"status": "revoked"})
    assert again.status_code == 422


def test_rewards_filter_by_email_and_status(api):
    earned = api.p("GET", "/rewards.json", params={"status": "earned"})
    assert earned.json() and {r["status"] for r in earned.json()} == {"earned"}
    reward = earned.json()[0]
    email = api.p("GET", f"/testers/{reward['user_id']}.json").json()["email"]
    mine = api.p("GET", "/rewards.json", params={"email": email}).json()
    assert mine and {r["user_id"] for r in mine} == {reward["user_id"]}


def test_trigger_rewards_earns_the_referrer_one_reward_per_event(api):
    referred = next(u for u in api.sb.control.users() if u["referred_by"])
    body = {"email": referred["email"], "event": "purchase"}
    first = api.p("POST", "/rewards/trigger.json", json=body)
    assert first.status_code == 202 and first.json()["rewards"][0]["user_id"] == referred["referred_by"]
    assert api.p("POST", "/rewards/trigger.json", json=body).json()["rewards"] == []
    assert len(api.sb.control.reward_triggers(event="purchase")) == 2


def test_suppression_rules_duplicates_required_email_and_unsubscribe(api):
    suppressed = {s["email"] for s in api.sb.control.suppressions()}
    applied = next(u for u in api.sb.control.users(status="applied") if u["email"] not in suppressed)
    created = api.p("POST", "/suppressions.json", json={"email": applied["email"], "reason": "Unsubscribe"})
    assert created.status_code == 201 and created.json()["user_id"] == applied["id"]
    user = api.p("GET", f"/testers/{applied['id']}.json").json()
    assert user["unsubscribed_at"] and user["status"] == "applied"
    dup = api.p("POST", "/suppressions.json", json={"email": applied["email"]})
    assert (dup.status_code, error_code(dup)) == (422, 2702)
    missing = api.p("POST", "/suppressions.json", json={"reason": "Manual"})
    assert error_code(missing) == 2703
    listed = api.p("GET", "/suppressions.json", params={"email": applied["email"]}).json()
    assert [s["id"] for s in listed] == [created.json()["id"]]


def test_only_manual_and_hardbounce_suppressions_can_be_deleted(api):
    by_reason = {s["reason"]: s["id"] for s in api.sb.control.suppressions()}
    assert set(by_reason) == {"Manual", "Unsubscribe", "HardBounce", "SpamComplaint"}
    assert api.p("DELETE", f"/suppressions/{by_reason['Manual']}.json").status_code == 200
    assert api.p("DELETE", f"/suppressions/{by_reason['HardBounce']}.json").status_code == 200
    assert api.p("DELETE", f"/suppressions/{by_reason['Unsubscribe']}.json").status_code == 422
    assert api.p("DELETE", f"/suppressions/{by_reason['SpamComplaint']}.json").status_code == 422


def test_friend_invitation_needs_an_invited_active_or_idle_sender(api):
    active = user_with(api, "active")
    body = {
        "friend_invitation": {
            "sender_email": active["email"],
            "recipient_email": "pal@example.com",
            "message": "join",
        }
    }
    sent = api.p("POST", "/friend_invitations.json", json=body)
    assert sent.status_code == 201
    assert (
        sent.json()["inviter"]["id"] == active["id"] and sent.json()["recipient_email"] == "pal@example.com"
    )
    applied = user_with(api, "applied")
    body["friend_invitation"]["sender_email"] = applied["email"]
    assert api.p("POST", "/friend_invitations.json", json=body).status_code == 422


def test_points_validate_and_add_on_every_call(api):
    email = user_with(api, "active")["email"]
    assert error_code(api.p("POST", "/points.json", json={"quantity": 5})) == 2802
    assert error_code(api.p("POST", "/points.json", json={"email": "no@x.com", "quantity": 5})) == 2803
    assert error_code(api.p("POST", "/points.json", json={"email": email, "quantity": "lots"})) == 2804
    before = len(api.p("GET", "/points.json", params={"email": email}).json())
    for _ in range(2):
        assert api.p("POST", "/points.json", json={"email": email, "quantity": 10}).status_code == 201
    assert len(api.p("GET", "/points.json", params={"email": email}).json()) == before + 2


def test_delete_project_refuses_a_live_project_with_2204_and_deletes_the_spare(api):
    live = api.call("DELETE", f"/api/v2/betas/{DEMO_BETA_ID}.json")
    assert (live.status_code, error_code(live)) == (422, 2204)
    assert api.call("DELETE", f"/api/v2/betas/{DEMO_SPARE_BETA_ID}.json").status_code == 200
    assert api.call("GET", f"/api/v2/betas/{DEMO_SPARE_BETA_ID}.json").status_code == 404


def test_projects_list_and_show_carry_tester_counts(api):
    projects = api.call("GET", "/api/v2/betas.json").json()
    main = next(p for p in projects if p["id"] == DEMO_BETA_ID)
    assert main["testers_count"] == DEMO_USER_COUNT and main["active_testers_count"] > 0


@pytest.mark.sandbox_seed("empty")
def test_empty_seed_has_the_project_and_no_users(api):
    response = api.p("GET", "/testers.json")
    assert response.json() == []
    assert json.loads(response.headers["X-Pagination"])["total_count"] == 0
