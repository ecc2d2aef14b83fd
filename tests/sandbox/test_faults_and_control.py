"""Latency, rate limits, injected faults, the request log and the control API, over real HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID
from tests.sandbox.helpers import Api

SAMPLES = 300


@pytest.fixture
def api(sandbox):
    return Api(sandbox)


def test_list_users_is_limited_to_60_per_minute_then_429_with_retry_after(api):
    statuses = [api.p("GET", "/testers.json").status_code for _ in range(60)]
    assert set(statuses) == {200}
    over = api.p("GET", "/testers.json")
    assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 60
    assert api.p("GET", "/testers/5001.json").status_code == 200  # SHOW users is not limited


def test_scale_multiplies_every_limit(api):
    api.sb.control.configure(scale=0.05)  # 60/min -> 3/min
    statuses = [api.p("GET", "/rewards.json").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_write_limit_can_be_set_per_class(api):
    api.sb.control.set_rate_limit("prefinery", "write", 3, per_seconds=60)
    statuses = [
        api.p("POST", "/points.json", json={"email": "x@example.com", "quantity": 1}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [422] * 3 and statuses[3] == 429


def test_latency_is_added_to_the_chosen_endpoint_only(api):
    api.sb.control.set_latency("prefinery", 200, target="get_user")
    started = time.perf_counter()
    api.p("GET", "/testers/5001.json")
    slow = time.perf_counter() - started
    started = time.perf_counter()
    api.p("GET", "/rewards/1.json")
    fast = time.perf_counter() - started
    assert slow >= 0.2 > fast


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("502", 502), ("503", 503), ("429", 429)])
def test_status_faults_fire_at_roughly_the_set_rate(api, kind, status):
    api.sb.control.configure(fault_seed=7)
    api.sb.control.set_faults("prefinery", {kind: 0.3}, target="read", retry_after=2)
    hits = [api.p("GET", "/testers/5001.json") for _ in range(SAMPLES)]
    faulted = [r for r in hits if r.status_code == status]
    assert 0.2 * SAMPLES <= len(faulted) <= 0.4 * SAMPLES
    assert {r.status_code for r in hits} == {200, status}
    assert faulted[0].json()["errors"][0]["code"] == status
    if kind == "429":
        assert faulted[0].headers["Retry-After"] == "2"
    assert api.sb.control.stats()["faults"][kind] == len(faulted)


def test_dropped_connections_fire_at_roughly_the_set_rate(api):
    api.sb.control.configure(fault_seed=3)
    api.sb.control.set_faults("prefinery", {"drop": 0.3}, target="get_user")
    dropped = 0
    for _ in range(100):
        try:
            api.p("GET", "/testers/5001.json")
        except requests.ConnectionError:
            dropped += 1
    assert 18 <= dropped <= 42
    assert api.sb.control.stats()["faults"]["drop"] == dropped


def test_500_after_write_applies_the_write_and_answers_500(api):
    api.sb.control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_user")
    response = api.p("POST", "/testers.json", json={"tester": {"email": "half@example.com"}})
    assert response.status_code == 500
    assert api.sb.control.users(email="half@example.com")


def test_slow_answer_outlives_the_client_and_does_not_apply_the_write(api):
    api.sb.control.set_faults("prefinery", {"slow": 1.0}, target="write", slow_seconds=0.6)
    with pytest.raises(requests.Timeout):
        api.p("POST", "/testers.json", json={"tester": {"email": "slow@example.com"}}, timeout=0.2)
    time.sleep(0.6)
    assert api.sb.control.users(email="slow@example.com") == []
    assert api.sb.control.stats()["faults"]["slow"] == 1


def test_fault_dice_are_reproducible_with_a_seed(api):
    def run() -> list[int]:
        api.sb.control.configure(fault_seed=11)
        return [api.p("GET", "/testers/5001.json").status_code for _ in range(40)]

    api.sb.control.set_faults("prefinery", {"503": 0.5}, target="get_user")
    assert run() == run()


def test_request_log_counts_calls_without_query_strings_or_keys(api):
    api.call(
        "GET",
        f"/api/v2/betas/{DEMO_BETA_ID}/testers.json",
        params={"api_key": api.key, "page": 2},
        headers={"Authorization": ""},
    )
    api.p("POST", "/points.json", json={"email": "nobody@example.com", "quantity": 1})
    log = api.sb.control.requests(api="prefinery")
    assert [(x["endpoint"], x["status"]) for x in log] == [("list_users", 200), ("create_points", 422)]
    assert api.key not in repr(api.sb.control.requests()) and "?" not in log[0]["path"]
    assert api.sb.control.count(endpoint="create_points") == 1


def test_reward_scheduled_after_n_reads_becomes_earned_on_the_next_read(api):
    reward = api.sb.control.rewards(status="delivered")[0]
    api.sb.control.schedule("reward", "earned", id=reward["id"], after_reads=2)
    statuses = [api.p("GET", f"/rewards/{reward['id']}.json").json()["status"] for _ in range(3)]
    assert statuses == ["delivered", "delivered", "earned"]


def test_user_scheduled_after_seconds_becomes_active(api):
    user = api.sb.control.users(status="applied")[0]
    api.sb.control.schedule("user", "active", id=user["id"], after_seconds=0.3)
    assert api.p("GET", f"/testers/{user['id']}.json").json()["status"] == "applied"
    time.sleep(0.35)
    assert api.p("GET", f"/testers/{user['id']}.json").json()["status"] == "active"


def test_new_reward_can_be_scheduled_for_a_user_that_has_none(api):
    email = api.sb.control.users(status="applied")[0]["email"]
    api.sb.control.schedule("new_reward", "earned", email=email, after_reads=1)
    counts = [len(api.p("GET", "/rewards.json", params={"email": email}).json()) for _ in range(2)]
    assert counts == [0, 1]


def test_control_sets_reward_and_user_status_outside_the_rules(api):
    reward = api.sb.control.rewards(status="revoked")[0]
    assert api.sb.control.set_reward_status(reward["id"], "earned")["status"] == "earned"
    user = api.sb.control.users(status="suspended")[0]
    assert api.sb.control.set_user_status(user["id"], "active")["status"] == "active"


def test_mailchimp_activity_moves_last_changed_into_the_sync_window(sandbox):
    sandbox.control.mailchimp_member("newbie@example.com", merge_fields={"FNAME": "New"})
    old = sandbox.control.mailchimp_members(status="subscribed")[0]
    sandbox.control.mailchimp_member(old["email_address"], status="unsubscribed")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    body = requests.get(
        f"{sandbox.url}/3.0/lists/{DEMO_LIST_ID}/members",
        auth=("u", sandbox.api_key),
        params={"since_last_changed": since},
        timeout=5,
    ).json()
    changed = {m["email_address"]: m["status"] for m in body["members"]}
    assert changed == {"newbie@example.com": "subscribed", old["email_address"]: "unsubscribed"}


def test_reset_restores_seed_data_and_default_behaviour(api):
    api.p("DELETE", "/testers/5001.json")
    api.sb.control.set_faults("prefinery", {"500": 1.0})
    api.sb.control.reset("demo")
    assert api.p("GET", "/testers/5001.json").status_code == 200
    assert api.sb.control.requests(api="prefinery")[-1]["fault"] is None


def test_unknown_control_input_is_refused(sandbox):
    with pytest.raises(Exception, match="unknown fault kinds"):
        sandbox.control.set_faults("prefinery", {"teapot": 0.5})
    with pytest.raises(Exception, match="unknown permissions"):
        sandbox.control.set_key("k", permissions=["everything"])
    with pytest.raises(Exception, match="unknown seed 'nope'; choose one of empty, demo"):
        sandbox.control.reset("nope")


def test_fifty_concurrent_clients_get_only_successes(sandbox):
    session_key = {"Authorization": f"Bearer {sandbox.api_key}"}
    url = f"{sandbox.url}/api/v2/betas/{DEMO_BETA_ID}/testers/5001.json"

    def client(_: int) -> set[int]:
        with requests.Session() as s:
            return {s.get(url, headers=session_key, timeout=10).status_code for _ in range(10)}

    with ThreadPoolExecutor(50) as pool:
        assert set().union(*pool.map(client, range(50))) == {200}
