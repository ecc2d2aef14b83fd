"""The ``bulk`` seed: 100,000 users in the main project and 10,000 in a second, distinct and well formed,
loaded by the control API like the other seeds (its build time is printed by benchmarks/export_users.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests

from airflow_provider_prefinery.sandbox import seeds
from tests.sandbox.helpers import Api


def test_bulk_holds_the_documented_users_each_distinct_and_well_formed() -> None:
    data = seeds.build("bulk")

    per_project = Counter(user["beta_id"] for user in data.users)
    assert per_project == {
        seeds.DEMO_BETA_ID: seeds.BULK_USER_COUNT,
        seeds.BULK_SMALL_BETA_ID: seeds.BULK_SMALL_USER_COUNT,
    }
    assert {p["id"] for p in data.projects} == {seeds.DEMO_BETA_ID, seeds.BULK_SMALL_BETA_ID}
    for key in ("id", "email", "referral_code"):
        assert len({user[key] for user in data.users}) == len(data.users), key
    assert {user["status"] for user in data.users} == set(seeds.USER_STATUSES)
    by_id = {user["id"]: user for user in data.users}
    referred = [user for user in data.users if user["referred_by"] is not None]
    assert len(referred) > len(data.users) // 10
    assert all(by_id[u["referred_by"]]["beta_id"] == u["beta_id"] for u in referred)
    assert all(user["profile"]["first_name"] and "@" in user["email"] for user in data.users)


def test_the_control_api_loads_every_registered_seed(sandbox: Any) -> None:
    try:
        sandbox.control.seed("bulk")
        project = Api(sandbox).call("GET", f"/api/v2/betas/{seeds.BULK_SMALL_BETA_ID}.json").json()
        assert project["testers_count"] == seeds.BULK_SMALL_USER_COUNT
        assert sandbox.control.health()["seed"] == "bulk"
        refused = requests.post(f"{sandbox.url}/_sandbox/seed", json={"seed": "huge"}, timeout=10)
        assert refused.status_code == 422 and "bulk" in refused.text
    finally:
        sandbox.control.reset("demo")
