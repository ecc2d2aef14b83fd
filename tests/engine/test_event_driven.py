"""The AssetWatcher example DAG on a real deployment: its ``PrefineryEventTrigger`` runs in the triggerer,
each earned reward becomes an asset event, the scheduler starts a run on it, and the run delivers it.

A module of its own, so its own deployment: the watcher polls the sandbox all the time once its DAG is
unpaused, and it remembers the reward ids it has seen (the asset's state store), so it would take other
tests' rewards (and ids the sandbox hands out again after a reset) for its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.deployment import Engine

DAG_ID = "prefinery_event_driven"
ASSET = "prefinery_reward_earned"
PROMPTLY = 60.0  # seconds from a reward's creation to its delivery (polls every second, scaled limits)
BURST = 3


@pytest.fixture
def watching(examples_engine: Engine, sbx: Any) -> Engine:
    """The DAG unpaused, its watcher's trigger running in the triggerer and past its first poll (which
    takes what exists as history) on the freshly reset sandbox."""
    examples_engine.unpause(DAG_ID)
    examples_engine.wait_until(
        lambda: examples_engine.api.asset(ASSET)["watchers"], what="the asset's watcher", timeout=120
    )
    # The seed's earned rewards fill two pages: a third LIST request means the first poll is complete.
    examples_engine.wait_until(
        lambda: sbx.control.count(endpoint="list_rewards") >= 3, what="the watcher's first poll", timeout=120
    )
    return examples_engine


def new_rewards(sbx: Any, known: set[int]) -> list[dict[str, Any]]:
    return [r for r in sbx.control.rewards() if r["id"] not in known]


def delivered_once(sbx: Any, reward_ids: set[int]) -> dict[int, int]:
    """How many successful ``deliver`` requests each reward got."""
    counts = dict.fromkeys(reward_ids, 0)
    for request in sbx.control.requests(endpoint="update_reward_status"):
        reward_id = int(request["path"].rstrip("/").split("/")[-1].split(".")[0])
        if request["status"] == 200 and reward_id in counts:
            counts[reward_id] += 1
    return counts


def what_happened(engine: Engine, sbx: Any, reward_ids: set[int]) -> str:
    """For a failure message: the rewards' states, the asset events, and each run with the events it got."""
    lines = [f"rewards: {[(r['id'], r['status']) for r in sbx.control.rewards() if r['id'] in reward_ids]}"]
    events = [(e["extra"]["payload"]["id"], e["timestamp"]) for e in engine.api.asset_events(ASSET)]
    lines.append(f"asset events (reward id, time): {events}")
    for run in engine.api.runs(DAG_ID):
        got = [
            e["extra"]["payload"]["id"] for e in engine.api.upstream_asset_events(DAG_ID, run["dag_run_id"])
        ]
        lines.append(f"run {run['dag_run_id']} {run['state']}: triggered by the events of rewards {got}")
    return "\n".join(lines)


def test_an_earned_reward_starts_a_run_that_delivers_it(watching: Engine, sbx: Any) -> None:
    known = {r["id"] for r in sbx.control.rewards()}
    runs_before = {r["dag_run_id"] for r in watching.api.runs(DAG_ID)}
    user = sorted(sbx.control.users(status="active"), key=lambda u: u["id"])[3]
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=0)  # at the next poll

    watching.wait_until(lambda: new_rewards(sbx, known), what="the reward earned", timeout=60)
    (reward,) = new_rewards(sbx, known)
    watching.wait_until(
        lambda: sbx.control.rewards(id=reward["id"])[0]["status"] == "delivered",
        what=f"reward {reward['id']} delivered",
        timeout=PROMPTLY,
    )

    (run,) = [r for r in watching.api.runs(DAG_ID) if r["dag_run_id"] not in runs_before]
    assert run["run_type"] == "asset_triggered"
    watching.wait_for_run(DAG_ID, run["dag_run_id"])
    events = [e for e in watching.api.asset_events(ASSET) if e["extra"]["payload"]["id"] == reward["id"]]
    assert len(events) == 1 and [r["run_id"] for r in events[0]["created_dagruns"]] == [run["dag_run_id"]]
    assert delivered_once(sbx, {reward["id"]}) == {reward["id"]: 1}


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 15: rewards earned in one poll give asset events milliseconds apart; the first starts a "
    "run, the others get none until a later event arrives",
)
def test_a_burst_of_rewards_earned_in_one_poll_delivers_each_one_promptly(watching: Engine, sbx: Any) -> None:
    control = sbx.control
    known = {r["id"] for r in control.rewards()}
    users = sorted(control.users(status="active"), key=lambda u: u["id"])[4 : 4 + BURST]
    # Ids the sandbox hands out again after its reset were seen by the watcher in an earlier test: use one
    # up (delivered at once, never listed as earned), then earn the burst in the same read (one poll).
    control.schedule("new_reward", "delivered", email=users[0]["email"], after_reads=0)
    for user in users:
        control.schedule("new_reward", "earned", email=user["email"], after_reads=0)

    watching.wait_until(
        lambda: len([r for r in new_rewards(sbx, known) if r["status"] != "delivered"]) >= BURST,
        what="the burst earned",
        timeout=60,
    )
    burst = {r["id"] for r in new_rewards(sbx, known) if r["user_id"] in {u["id"] for u in users}}
    burst -= {min(burst)}  # the used-up id
    assert len(burst) == BURST

    try:
        watching.wait_until(
            lambda: all(r["status"] == "delivered" for r in control.rewards() if r["id"] in burst),
            what="every reward of the burst delivered",
            timeout=PROMPTLY,
        )
    except AssertionError:
        raise AssertionError(what_happened(watching, sbx, burst)) from None
    assert delivered_once(sbx, burst) == dict.fromkeys(burst, 1)
