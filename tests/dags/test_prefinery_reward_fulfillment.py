"""The reward-fulfilment example DAG, run by real Airflow (``dag.test()`` on SQLite) against the sandbox.

Prefinery's rewards and Piggy's automation runs live in the sandbox; each test asserts the final reward
states and the recorded Piggy runs, so "at most one run per reward" is checked where it matters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAG_ID = "prefinery_reward_fulfillment"
PAGE_SIZE = 25  # the sandbox's (and Prefinery's) rewards per page


def _earned(control: Any) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in control.rewards(status="earned")}


def _email_of(control: Any, user_id: int) -> str:
    return control.users(id=user_id)[0]["email"]


def _runs_by_reward(control: Any) -> Counter[int]:
    return Counter(run["data"]["reward_id"] for run in control.piggy_runs())


def _reject(control: Any, earned: dict[int, dict[str, Any]]) -> set[int]:
    """Make Piggy refuse runs for the holder of the first earned reward; return that user's earned rewards."""
    holder = earned[min(earned)]["user_id"]
    control.piggy_reject(email=_email_of(control, holder))
    return {rid for rid, r in earned.items() if r["user_id"] == holder}


def _xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    """What a task of ``run`` left in XCom (read from Airflow's metadata database), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run.run_id, dag_ids=DAG_ID, task_ids=task_id, key=key)
    with create_session() as session:
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def test_every_earned_reward_runs_once_and_only_successful_runs_are_delivered(sbx: Any, run_dag: Any) -> None:
    control = sbx.control
    earned = _earned(control)
    rejected = _reject(control, earned)
    delivered_before = {r["id"] for r in control.rewards(status="delivered")}
    # A reward another process delivers between the sensor's check and the plan: must not get a run.
    stale = min(set(earned) - rejected)
    control.schedule("reward", "delivered", id=stale, after_reads=1)  # after the sensor's one page

    run = run_dag(DAG_ID)

    assert run.state == "failed"  # the rejected contact's runs failed: the report says so
    assert len(_xcom(run, "wait_for_earned_rewards")) == 1  # the sensor stopped at the first earned reward
    assert len(earned) > PAGE_SIZE  # ... of two pages: the plan's own listing read both
    expected = set(earned) - rejected - {stale}
    # Final reward states: exactly the rewards whose run started are delivered; the rejected stay earned.
    assert set(_earned(control)) == rejected
    assert {r["id"] for r in control.rewards(status="delivered")} == delivered_before | expected | {stale}
    # Piggy: one run per delivered reward, none for the stale or rejected ones, for the right contact.
    runs = control.piggy_runs()
    assert _runs_by_reward(control) == Counter(expected)
    assert {run_["automation_uuid"] for run_ in runs} == {DEMO_AUTOMATION_UUID}
    contacts = {c["uuid"]: c["email"].lower() for c in control.piggy_contacts()}
    for piggy_run in runs:
        reward = earned[piggy_run["data"]["reward_id"]]
        assert contacts[piggy_run["contact_uuid"]] == _email_of(control, reward["user_id"]).lower()
    # The batch's failure report names each rejected reward with Piggy's code.
    report = _xcom(run, "start_runs")
    assert {f["record"]["data"]["reward_id"] for f in report["failed"]} == rejected
    assert {f["code"] for f in report["failed"]} == {60015}
    assert _xcom(run, "report", "held") == []  # a refused run is retried next time, not held


def test_a_rerun_never_starts_a_second_run_for_a_delivered_reward(sbx: Any, run_dag: Any) -> None:
    control = sbx.control
    earned = _earned(control)
    rejected = _reject(control, earned)
    assert run_dag(DAG_ID).state == "failed"
    runs_after_first = _runs_by_reward(control)
    delivered_after_first = {r["id"]: r["delivered_at"] for r in control.rewards(status="delivered")}
    known = {r["id"] for r in control.rewards()}
    # A new reward is earned (on the sensor's first read) before the second run lists anything.
    newcomer = earned[min(set(earned) - rejected)]["user_id"]
    control.schedule("new_reward", "earned", email=_email_of(control, newcomer), after_reads=0)
    control.clear_requests()

    second = run_dag(DAG_ID)

    [new_reward] = {r["id"] for r in control.rewards()} - known
    assert second.state == "failed"  # the rejected contact is still refused
    assert _runs_by_reward(control) == runs_after_first + Counter([new_reward])
    assert max(_runs_by_reward(control).values()) == 1  # no reward ever got a second run
    # Nothing delivered by the first run was touched again: one status update, for the new reward.
    still = {r["id"]: r["delivered_at"] for r in control.rewards(status="delivered")}
    assert {rid: still[rid] for rid in delivered_after_first} == delivered_after_first
    assert new_reward in still
    assert control.count(api="prefinery", endpoint="update_reward_status") == 1
    # The second run started the new reward and tried the refused ones again (refused again).
    assert control.count(api="piggy", endpoint="create_automation_run") == 1 + len(rejected)
    assert set(_earned(control)) == rejected


def test_a_run_with_an_unknown_outcome_is_held_until_a_person_releases_it(sbx: Any, run_dag: Any) -> None:
    control = sbx.control
    three = {"max_rewards": 3}  # each run takes the three oldest earned rewards
    control.set_faults("piggy", {"500": 1.0}, target="create_automation_run")

    first = run_dag(DAG_ID, run_conf=three)

    assert first.state == "failed"
    held = _xcom(first, "report", "held")
    assert len(held) == 3 and set(held) <= set(_earned(control))
    assert control.piggy_runs() == []  # the 500s came before Piggy acted, but the hook cannot know that
    control.reset_behaviour()

    second = run_dag(DAG_ID, run_conf=three)  # held rewards are not started again

    assert second.state == "failed"  # and the DAG keeps saying so until a person decides
    assert _xcom(second, "report", "held") == held
    started = _runs_by_reward(control)
    assert sum(started.values()) == 3 and not set(started) & set(held)

    # A person checked Piggy: none of the held runs happened, so they release them.
    third = run_dag(DAG_ID, run_conf={**three, "release_reward_ids": held})

    assert third.state == "success"
    assert _xcom(third, "report", "held") == []
    assert _runs_by_reward(control) == started + Counter(held)
    assert not set(held) & set(_earned(control))


def test_an_automation_piggy_cannot_start_fails_the_run_before_any_reward_changes(
    sbx: Any, run_dag: Any
) -> None:
    control = sbx.control
    earned = set(_earned(control))

    run = run_dag(DAG_ID, run_conf={"automation_name": "Welcome new contact"})

    assert run.state == "failed"
    assert control.piggy_runs() == []
    assert set(_earned(control)) == earned
    assert control.count(api="prefinery", endpoint="update_reward_status") == 0
    assert _xcom(run, "start_runs") is None  # it failed on the automation's event, before any record
