"""The sandbox's state in-process (no HTTP): the shared database's one door for writes, and each API's state.

Issue 14's webhook sender will watch ``Database.observers``; these tests pin that every state change a
webhook reports passes there, that nothing writes around it, and that state imports no web framework.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_prefinery.sandbox.db import Change
from airflow_provider_prefinery.sandbox.keys import PERMISSIONS
from airflow_provider_prefinery.sandbox.prefinery.errors import DuplicateUser
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID
from airflow_provider_prefinery.sandbox.state import Store

B = DEMO_BETA_ID
WEB_FRAMEWORKS = ("starlette", "fastapi", "pydantic", "uvicorn")


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def changes(store: Store) -> list[Change]:
    seen: list[Change] = []
    store.db.observers.append(seen.append)
    return seen


def summary(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.table, c.action) for c in changes]


def test_state_modules_import_no_web_framework():
    code = (
        "import sys, airflow_provider_prefinery.sandbox.state as s; s.Store(seed='empty'); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB_FRAMEWORKS!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_write_around_the_door_is_refused(store):
    with pytest.raises(RuntimeError, match="observers"):
        store.db.execute("  update users SET status='active'")
    assert store.db.value("SELECT COUNT(*) FROM users WHERE status='active'") == 50  # the seed's


def test_user_lifecycle_and_referral_are_each_one_observed_write(store, changes):
    referrer = store.prefinery.users.page(B, {}, 1).items[0]
    user = store.prefinery.users.create(
        B, {"email": "new@example.com", "referrer_id": referrer["referral_code"]}
    )
    assert summary(changes) == [("users", "insert"), ("users", "update")]
    assert changes[0].values["email"] == "new@example.com" and changes[0].where == {"rowid": user["id"]}
    assert changes[0].values["referred_by"] == referrer["id"]
    assert changes[1].where == {"id": referrer["id"]}
    assert changes[1].values == {"share_signups_count": referrer["share_signups_count"] + 1}

    changes.clear()
    store.prefinery.users.update(B, user["id"], {"status": "invited"})
    store.prefinery.users.checkin(B, email="new@example.com")
    store.prefinery.users.delete(B, user["id"])
    assert summary(changes) == [("users", "update"), ("users", "update"), ("users", "delete")]
    assert [c.values.get("status") for c in changes[:2]] == ["invited", "active"]
    assert changes[2].where == {"id": user["id"]}


def test_refused_writes_change_nothing_and_are_not_observed(store, changes):
    email = store.dump("users")[0]["email"]
    with pytest.raises(DuplicateUser):
        store.prefinery.users.create(B, {"email": email.upper()})
    assert changes == []


def test_rewards_and_points_changes_carry_what_a_webhook_needs(store, changes):
    referred = next(u for u in store.dump("users") if u["referred_by"])
    store.prefinery.rewards.trigger(B, {"email": referred["email"], "event": "purchase"})
    assert summary(changes) == [("rewards", "insert"), ("reward_triggers", "insert")]
    earned = changes[0]
    assert earned.values["user_id"] == referred["referred_by"] and earned.values["status"] == "earned"

    changes.clear()
    reward_id = earned.where["rowid"]
    store.prefinery.rewards.update_status(B, reward_id, "delivered")
    store.prefinery.points.create(B, {"email": referred["email"], "quantity": "7"})
    assert summary(changes) == [("rewards", "update"), ("points", "insert")]
    assert changes[0].where == {"id": reward_id} and changes[0].values["status"] == "delivered"
    assert changes[1].values["quantity"] == 7


def test_scheduled_changes_pass_the_same_door_as_api_writes(store, changes):
    from airflow_provider_prefinery.sandbox.prefinery.state.schedules import Schedule

    user = next(u for u in store.dump("users") if u["status"] == "applied")
    store.prefinery.schedules.add(Schedule("user", "active", B, id=user["id"], after_reads=0))
    assert store.prefinery.users.get(B, user["id"])["status"] == "active"
    assert summary(changes) == [("users", "update")] and changes[0].values["status"] == "active"


def test_waitlist_position_follows_every_user_write(store):
    users = store.prefinery.users
    length = users.page(B, {}, 1).items[0]["waitlist_length"]
    new = users.create(B, {"email": "late@example.com"})
    assert new["waitlist_length"] == new["waitlist_position"] == length + 1
    users.update(B, new["id"], {"status": "invited"})
    assert users.get(B, new["id"])["waitlist_position"] is None
    assert users.page(B, {}, 1).items[0]["waitlist_length"] == length


def test_mailchimp_and_piggy_writes_pass_the_same_door(store, changes):
    store.mailchimp.upsert_member(DEMO_LIST_ID, "fresh@example.com", merge_fields={"FNAME": "F"})
    store.mailchimp.upsert_member(DEMO_LIST_ID, "fresh@example.com", status="unsubscribed")
    contact = store.piggy.find_contact("default", "buyer@example.com", create=True)
    assert summary(changes) == [
        ("mc_members", "insert"),
        ("mc_members", "update"),
        ("piggy_contacts", "insert"),
    ]
    assert changes[1].values["merge_fields"] == {"FNAME": "F"}
    assert changes[2].values["uuid"] == contact["uuid"]


def test_reset_restores_the_seed_and_forgets_memory_without_observing(store, changes):
    store.keys.set("extra")
    store.prefinery.users.create(B, {"email": "gone@example.com"})
    changes.clear()
    store.reset("empty")
    assert changes == [] and store.dump("users") == [] and store.keys.get("extra") is None
    store.reset("demo")
    assert len(store.dump("users")) == 320


def test_every_prefinery_route_names_a_known_permission_and_every_permission_is_used():
    from airflow_provider_prefinery.sandbox.prefinery.routes import ENDPOINTS

    assert {spec.permission for spec in ENDPOINTS} == PERMISSIONS
