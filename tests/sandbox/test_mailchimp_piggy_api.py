"""The Mailchimp list-members and Piggy emulations over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

from airflow_provider_prefinery.sandbox.seeds import (
    DEMO_AUTOMATION_UUID,
    DEMO_CREATED_AUTOMATION_UUID,
    DEMO_LIST_ID,
    DEMO_MEMBER_COUNT,
    MEMBER_STATUSES,
    PIGGY_CLIENT_ID,
    PIGGY_CLIENT_SECRET,
    member_id,
)

PIGGY = "/api/v3/oauth/clients"


def members(sb, **params) -> requests.Response:
    return requests.get(
        f"{sb.url}/3.0/lists/{DEMO_LIST_ID}/members", params=params, auth=("anyone", sb.api_key), timeout=10
    )


def piggy(sb, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or sb.api_key}", "Accept": "application/json"}
    return requests.request(method, f"{sb.url}{PIGGY}{path}", headers=headers, timeout=10, **kwargs)


def test_mailchimp_offset_paging_returns_every_member_once_in_stable_order(sandbox):
    seen, offset = [], 0
    while True:
        body = members(sandbox, count=500, offset=offset).json()
        seen += [(m["last_changed"], m["id"]) for m in body["members"]]
        offset += 500
        if offset >= body["total_items"]:
            break
    assert len(seen) == len(set(seen)) == DEMO_MEMBER_COUNT
    assert seen == sorted(seen)


def test_mailchimp_defaults_to_10_and_refuses_count_over_1000(sandbox):
    body = members(sandbox).json()
    assert len(body["members"]) == 10 and body["list_id"] == DEMO_LIST_ID and body["_links"]
    too_many = members(sandbox, count=1001)
    assert too_many.status_code == 400
    assert too_many.headers["content-type"].startswith("application/problem+json")


def test_mailchimp_members_cover_every_status_and_filter_by_it(sandbox):
    totals = {s: members(sandbox, status=s, count=1).json()["total_items"] for s in MEMBER_STATUSES}
    assert all(totals.values()) and sum(totals.values()) == DEMO_MEMBER_COUNT
    page = members(sandbox, status="cleaned", count=1000).json()["members"]
    assert {m["status"] for m in page} == {"cleaned"}


def test_mailchimp_changed_window_accepts_offsets_and_z_and_is_half_open(sandbox):
    now = datetime.now(timezone.utc)
    since = (now - timedelta(days=3)).astimezone(timezone(timedelta(hours=2))).isoformat()
    before = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = members(sandbox, since_last_changed=since, before_last_changed=before, count=1000).json()
    assert 0 < body["total_items"] < DEMO_MEMBER_COUNT
    low, high = (
        (now - timedelta(days=3)).replace(microsecond=0),
        (now - timedelta(days=1)).replace(microsecond=0),
    )
    for m in body["members"]:
        assert low <= datetime.fromisoformat(m["last_changed"]) < high + timedelta(seconds=1)


def test_mailchimp_fields_and_exclude_fields_use_dot_paths(sandbox):
    kept = members(sandbox, count=3, fields="members.email_address,total_items").json()
    assert set(kept) == {"members", "total_items"}
    assert all(set(m) == {"email_address"} for m in kept["members"])
    dropped = members(sandbox, count=3, exclude_fields="members.merge_fields,_links").json()
    assert "_links" not in dropped and all("merge_fields" not in m for m in dropped["members"])


def test_mailchimp_member_id_is_md5_of_lowercased_email_with_merge_fields(sandbox):
    member = members(sandbox, count=1).json()["members"][0]
    assert member["id"] == member_id(member["email_address"].upper())
    assert set(member["merge_fields"]) >= {"FNAME", "LNAME"}


def test_mailchimp_bad_key_is_401_and_unknown_list_404_as_problem_json(sandbox):
    bad = requests.get(f"{sandbox.url}/3.0/lists/{DEMO_LIST_ID}/members", auth=("u", "wrong"), timeout=5)
    assert bad.status_code == 401 and bad.json()["status"] == 401
    missing = requests.get(f"{sandbox.url}/3.0/lists/nope/members", auth=("u", sandbox.api_key), timeout=5)
    problem = missing.json()
    assert missing.status_code == 404 and set(problem) == {"type", "title", "status", "detail", "instance"}
    assert missing.headers["content-type"] == "application/problem+json"


def test_mailchimp_answers_429_beyond_10_requests_in_flight_for_one_key(sandbox):
    sandbox.control.set_latency("mailchimp", 400)
    with ThreadPoolExecutor(15) as pool:
        statuses = list(pool.map(lambda _: members(sandbox, count=1).status_code, range(15)))
    assert statuses.count(200) == 10 and statuses.count(429) == 5
    assert sandbox.control.stats()["in_flight_rejected"] == 5


def test_piggy_lists_automations_in_its_envelope(sandbox):
    body = piggy(sandbox, "GET", "/automations").json()
    events = [a["event"] for a in body["data"]]
    assert body["meta"] == [] and events.count("contact_updated") >= 3 and "contact_created" in events
    assert set(body["data"][0]) == {"uuid", "event", "name", "status", "created_at", "updated_at"}


def test_piggy_run_is_recorded_for_json_and_form_bodies(sandbox):
    contact = sandbox.control.piggy_contacts()[0]["uuid"]
    body = {"contact_uuid": contact, "automation_uuid": DEMO_AUTOMATION_UUID}
    assert piggy(sandbox, "POST", "/automations/runs", json={**body, "data": {"k": "v"}}).json() == {
        "data": [],
        "meta": [],
    }
    assert piggy(sandbox, "POST", "/automations/runs", data=body).status_code == 200
    runs = sandbox.control.piggy_runs(contact_uuid=contact)
    assert len(runs) == 2 and runs[0]["data"] == {"k": "v"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"automation_uuid": DEMO_AUTOMATION_UUID}, 422, 1003),
        ({"contact_uuid": "no-such-contact", "automation_uuid": DEMO_AUTOMATION_UUID}, 404, 55031),
        ({"contact_uuid": "CONTACT", "automation_uuid": "no-such-automation"}, 404, 60013),
        ({"contact_uuid": "CONTACT", "automation_uuid": DEMO_CREATED_AUTOMATION_UUID}, 422, 60014),
    ],
)
def test_piggy_run_errors_come_in_piggy_shape(sandbox, body, status, code):
    contact = sandbox.control.piggy_contacts()[0]["uuid"]
    body = {k: contact if v == "CONTACT" else v for k, v in body.items()}
    response = piggy(sandbox, "POST", "/automations/runs", json=body)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["status_code"] == status
    if code == 1003:
        assert "contact_uuid" in response.json()["errors"]
    if code == 60014:
        assert "contact_updated" in response.json()["message"]
    assert sandbox.control.piggy_runs() == []


def test_piggy_rejects_runs_of_the_contact_a_test_marks(sandbox):
    bad, good = (c["uuid"] for c in sandbox.control.piggy_contacts()[:2])
    sandbox.control.piggy_reject(contact_uuid=bad)
    refused = piggy(
        sandbox,
        "POST",
        "/automations/runs",
        json={"contact_uuid": bad, "automation_uuid": DEMO_AUTOMATION_UUID},
    )
    assert refused.status_code == 422 and refused.json()["code"] == 60015
    assert (
        piggy(
            sandbox,
            "POST",
            "/automations/runs",
            json={"contact_uuid": good, "automation_uuid": DEMO_AUTOMATION_UUID},
        ).status_code
        == 200
    )


def test_piggy_find_one_by_misses_with_55031_and_find_or_create_creates(sandbox):
    missing = piggy(sandbox, "GET", "/contacts/find-one-by", params={"email": "fresh@example.com"})
    assert missing.status_code == 404 and missing.json()["code"] == 55031
    created = piggy(sandbox, "GET", "/contacts/find-or-create", params={"email": "fresh@example.com"})
    uuid = created.json()["data"]["uuid"]
    found = piggy(sandbox, "GET", "/contacts/find-one-by", params={"email": "FRESH@example.com"})
    assert found.json()["data"]["uuid"] == uuid


def test_piggy_token_exchange_issues_a_usable_token_and_is_counted(sandbox):
    creds = {
        "grant_type": "client_credentials",
        "client_id": PIGGY_CLIENT_ID,
        "client_secret": PIGGY_CLIENT_SECRET,
    }
    grant = requests.post(f"{sandbox.url}/oauth/token", data=creds, timeout=5).json()
    assert grant["expires_in"] > 0
    assert piggy(sandbox, "GET", "/automations", token=grant["access_token"]).status_code == 200
    bad = requests.post(f"{sandbox.url}/oauth/token", json={**creds, "client_secret": "x"}, timeout=5)
    assert bad.status_code == 401
    assert [x["granted"] for x in sandbox.control.token_exchanges()] == [True, False]
    assert piggy(sandbox, "GET", "/automations", token="not-a-token").status_code == 401
