"""Contract tests: every PrefineryHook method against the sandbox over real HTTP."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryNotFoundError,
    PrefineryPermissionError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.hooks.rest import _BUCKETS, RetryPolicy
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_SPARE_BETA_ID, DEMO_USER_COUNT

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_retries=3, backoff_initial=0.05, backoff_max=0.5)


@pytest.fixture
def hook(sandbox) -> PrefineryHook:
    _BUCKETS.clear()
    sandbox.control.configure(scale=100)  # documented list limits, x100: contract tests list a lot
    return PrefineryHook(rate_limit_scale=100, retry=FAST)


def _a_user(hook: PrefineryHook, status: str) -> dict:
    return next(hook.list_users(status=status))


def test_project_show_and_list(hook) -> None:
    project = hook.get_project()
    assert project["id"] == DEMO_BETA_ID
    assert {"name", "testers_count", "created_at"} <= set(project)
    assert DEMO_BETA_ID in [p["id"] for p in hook.list_projects()]


def test_list_users_pages_through_every_user(hook, sandbox) -> None:
    users = list(hook.list_users())
    assert len(users) == DEMO_USER_COUNT
    assert len({u["id"] for u in users}) == DEMO_USER_COUNT
    assert sandbox.control.count(endpoint="list_users") == -(-DEMO_USER_COUNT // 25)


def test_list_users_filters_by_email_and_status(hook) -> None:
    some = _a_user(hook, "active")
    assert [u["id"] for u in hook.list_users(email=some["email"])] == [some["id"]]
    assert hook.find_user(some["email"].upper().lower())["id"] == some["id"]
    assert {u["status"] for u in hook.list_users(status=["idle", "suspended"])} == {"idle", "suspended"}


def test_create_get_update_delete_user_round_trip(hook, sandbox) -> None:
    created = hook.create_user("new.person@example.com", status="applied", profile={"first_name": "New"})
    assert created["email"] == "new.person@example.com"
    assert hook.get_user(created["id"])["profile"]["first_name"] == "New"
    updated = hook.update_user(created["id"], status="invited", profile={"last_name": "Person"})
    assert updated["status"] == "invited"
    hook.delete_user(created["id"])
    with pytest.raises(PrefineryNotFoundError):
        hook.get_user(created["id"])
    assert not sandbox.control.users(email="new.person@example.com")


def test_duplicate_user_is_2310(hook) -> None:
    existing = _a_user(hook, "applied")
    with pytest.raises(PrefineryValidationError) as info:
        hook.create_user(existing["email"])
    assert info.value.code == 2310


def test_checkin_by_id_and_by_email_activates(hook, sandbox) -> None:
    invited = list(hook.list_users(status="invited"))[:2]
    hook.checkin_user(user_id=invited[0]["id"])
    hook.checkin_user(email=invited[1]["email"])
    assert {hook.get_user(u["id"])["status"] for u in invited} == {"active"}


def test_rewards_create_list_get_and_deliver_once(hook) -> None:
    user = _a_user(hook, "active")
    reward = hook.create_reward(user["email"], "free-month", skip_quantity_check=True)
    assert reward["status"] == "earned"
    assert hook.get_reward(reward["id"])["descriptor"] == "free-month"
    assert reward["id"] in [r["id"] for r in hook.list_rewards(email=user["email"], status="earned")]
    assert hook.update_reward_status(reward["id"], "delivered")["status"] == "delivered"
    with pytest.raises(PrefineryValidationError):
        hook.update_reward_status(reward["id"], "revoked")  # only earned rewards change


def test_trigger_rewards_is_accepted(hook, sandbox) -> None:
    referred = next(u for u in hook.list_users(status="active") if u.get("referred_by"))
    hook.trigger_rewards(referred["email"], "purchase")
    assert [t["event"] for t in sandbox.control.reward_triggers(email=referred["email"])] == ["purchase"]


def test_suppressions_create_duplicate_get_and_delete(hook) -> None:
    created = hook.create_suppression("bounced@example.com")
    assert created["reason"] == "Manual"
    with pytest.raises(PrefineryValidationError) as info:
        hook.create_suppression("bounced@example.com")
    assert info.value.code == 2702
    assert hook.get_suppression(created["id"])["email"] == "bounced@example.com"
    assert hook.find_suppression("bounced@example.com")["id"] == created["id"]
    hook.delete_suppression(created["id"])
    assert hook.find_suppression("bounced@example.com") is None


def test_unsubscribe_suppression_cannot_be_deleted(hook) -> None:
    user = _a_user(hook, "active")
    created = hook.create_suppression(user["email"], reason="Unsubscribe")
    with pytest.raises(PrefineryValidationError):
        hook.delete_suppression(created["id"])


def test_friend_invitation_needs_an_invited_active_or_idle_sender(hook) -> None:
    sender = _a_user(hook, "active")
    invitation = hook.create_friend_invitation(sender["email"], "friend@example.com", message="Join!")
    assert invitation["inviter"]["email"] == sender["email"]
    applied = _a_user(hook, "applied")
    with pytest.raises(PrefineryValidationError):
        hook.create_friend_invitation(applied["email"], "friend2@example.com")


def test_points_add_each_time_and_need_a_known_email(hook) -> None:
    user = _a_user(hook, "active")
    before = sum(p["quantity"] for p in hook.list_points(email=user["email"]))
    hook.create_points(user["email"], 5, reason="bonus")
    hook.create_points(user["email"], 5, reason="bonus")
    assert sum(p["quantity"] for p in hook.list_points(email=user["email"])) == before + 10
    with pytest.raises(PrefineryValidationError) as info:
        hook.create_points("nobody@example.com", 1)
    assert info.value.code == 2803


def test_delete_project(hook) -> None:
    hook.delete_project(DEMO_SPARE_BETA_ID)
    with pytest.raises(PrefineryNotFoundError):
        hook.get_project(DEMO_SPARE_BETA_ID)


def test_test_connection_passes_against_the_sandbox(hook) -> None:
    ok, message = hook.test_connection()
    assert ok
    assert message.startswith("Connected to Prefinery project '")
    assert f"(id {DEMO_BETA_ID})" in message


def test_wrong_key_is_an_auth_error(sandbox, monkeypatch) -> None:
    conn = {
        "conn_type": "prefinery",
        "password": "wrong-key-123",
        "host": sandbox.url,
        "extra": {"beta_id": 1001},
    }
    monkeypatch.setenv("AIRFLOW_CONN_WRONG", json.dumps(conn))
    with pytest.raises(PrefineryAuthError, match="check the API key of connection 'wrong'"):
        PrefineryHook("wrong").get_project()


def test_key_without_permission_is_a_permission_error(hook, sandbox) -> None:
    sandbox.control.set_key(sandbox.api_key, permissions=["users:read", "projects:read"])
    with pytest.raises(PrefineryPermissionError):
        hook.create_points(_a_user(hook, "active")["email"], 1)


def test_a_burst_over_the_list_limit_is_absorbed_without_failing(sandbox) -> None:
    """The server allows 10 LIST users per second here; the hook must survive its 429s and finish."""
    _BUCKETS.clear()
    sandbox.control.set_rate_limit("prefinery", "list_users", 10, per_seconds=1)
    hook = PrefineryHook(rate_limit_scale=1000, retry=RetryPolicy(max_retries=8, backoff_initial=0.1))
    start = time.monotonic()
    for _ in range(3):
        assert len(list(hook.list_users())) == DEMO_USER_COUNT  # 13 pages each: 39 calls at 10/s
    assert sandbox.control.stats()["rate_limited"] >= 1  # the server did push back...
    assert hook.stats["retries"] >= 1
    assert time.monotonic() - start < 20  # ...and Retry-After kept it short


def test_client_side_limit_keeps_a_burst_under_the_server_limit(sandbox) -> None:
    """With the documented limit mirrored client-side, the same burst provokes no 429 at all."""
    _BUCKETS.clear()
    sandbox.control.configure(scale=20)  # server: 60/min * 20 = 20/s
    hook = PrefineryHook(rate_limit_scale=20)
    for _ in range(3):
        assert len(list(hook.list_users())) == DEMO_USER_COUNT
    assert sandbox.control.count(endpoint="list_users", status=429) == 0
    assert hook.stats["retries"] == 0
