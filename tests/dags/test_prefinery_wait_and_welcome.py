"""The wait-and-welcome example DAG, run by real Airflow (``dag.test()``) against the sandbox.

One run covers every sensor mode: the signup sensor reschedules once, the suppression sensor pokes, and
the reward sensor defers (``dag.test()`` runs its trigger in-process) until the sandbox earns a reward
mid-wait; its XCom then feeds one mapped delivery task per reward.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAG_ID = "prefinery_wait_and_welcome"


@pytest.fixture
def sbx(sbx: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The scaled sandbox of ``tests/dags/conftest.py``, with the example's sensors polling every 0.2 s."""
    monkeypatch.setenv("PREFINERY_EXAMPLE_POKE_INTERVAL", "0.2")
    return sbx


def task_states(run: Any) -> dict[tuple[str, int], str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run.run_id).all()
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}


def test_wait_and_welcome_waits_in_every_mode_and_delivers_a_reward_earned_mid_wait(
    sbx: Any, run_dag: Any
) -> None:
    control = sbx.control
    user = sorted(control.users(status="imported"), key=lambda u: u["id"])[0]
    assert not control.rewards(user_id=user["id"])
    control.schedule("user", "applied", id=user["id"], after_reads=1)  # the 2nd LIST users sees it
    control.schedule("new_reward", "earned", email=user["email"], after_reads=2)  # the 3rd LIST rewards

    run = run_dag(DAG_ID, run_conf={"email": user["email"], "min_rewards": 1})

    states = task_states(run)
    assert str(run.state) == "success", states
    assert states == {
        ("wait_for_signup", -1): "success",
        ("wait_until_mailable", -1): "success",
        ("invite", -1): "success",
        ("wait_for_rewards", -1): "success",
        ("deliver", 0): "success",
    }
    assert control.count(endpoint="list_users") == 2  # one poke, a reschedule, one poke
    assert control.count(endpoint="list_suppressions") == 1
    # one check on the worker, then the trigger: a poll before the reward is earned, one after
    assert control.count(endpoint="list_rewards") == 3
    assert control.users(id=user["id"])[0]["status"] == "invited"
    (reward,) = control.rewards(user_id=user["id"])
    assert reward["status"] == "delivered"
