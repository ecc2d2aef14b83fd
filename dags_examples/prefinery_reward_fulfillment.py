"""Deliver earned Prefinery rewards through a Piggy automation, at most once per reward.

Runs as is against the local sandbox (``prefinery-sandbox``, seed ``demo``) through the connections
``prefinery_default`` (its "API Beta ID" names the project) and ``piggy_default``; point them at the real
APIs and set ``automation_name`` to a Piggy automation whose event is ``contact_updated`` (the only kind
Piggy starts through its API).

1. ``wait_for_earned_rewards``: the reward sensor (reschedule mode) waits until a reward is ``earned``
   (its check stops listing at the first one). No reward within the hour: the run is skipped, not failed.
2. ``plan_runs``: lists the earned rewards right before any run, so a re-run never starts a run for a
   reward already delivered; rewards held by an earlier run (below) stay out. Looks up each reward's
   user for the e-mail; the reward's id, name and descriptor go to Piggy as the run's ``data``.
3. ``start_runs``: ONE batch task, ``PiggyCreateAutomationRunOperator(records=...)``, starting one run
   per reward (the contact is created in Piggy when missing). A failed run fails this task with the
   failure report of every failed reward; those rewards stay ``earned`` and are tried again next run.
4. ``runs_succeeded`` -> ``mark_delivered``: exactly the rewards whose run started are marked
   ``delivered`` (``PrefineryUpdateRewardStatusOperator``, retried: marking twice is harmless).
5. ``report``: sums up and fails the DAG run when anything needs attention; ``watcher`` fails the run
   when any task failed (Airflow judges a run by its last tasks, and ``report`` runs whatever happened).

Why one batch task and not one mapped task per reward: the automation is resolved by name once (one
listing), an OAuth token is exchanged once, and requests run with bounded concurrency in one worker
slot, where hundreds of mapped task instances would each pay scheduling, a listing and a token exchange.
The batch keeps per-reward accounting all the same: its XCom lists every reward's outcome, and its
failure report names each failed reward with Piggy's code and message.

Exactly once: a Piggy run is not idempotent (each one sends another e-mail or gift card) and Piggy has
no idempotency key. ``start_runs`` is never retried by Airflow, ``max_active_runs=1`` keeps two runs
from planning the same reward, and two cases are HELD (never started again automatically) until a
person decides, because the reward stays ``earned`` although its run may have happened:

* a run whose outcome is unknown (timeout or a 500 after sending): check Piggy for the run;
* a run that started but whose reward could not be marked ``delivered``.

Resolve a held reward by marking it ``delivered`` (or ``revoked``) in Prefinery, or, if its run did not
happen, list its id in ``release_reward_ids`` to try again. Holds live in the ``report`` task's XCom
(key ``held``) in Airflow's metadata database, so every worker sees them.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowFailException,
    AirflowSkipException,
    Param,
    TriggerRule,
    task,
)

from airflow_provider_prefinery.operators.piggy import PiggyCreateAutomationRunOperator
from airflow_provider_prefinery.operators.prefinery import PrefineryUpdateRewardStatusOperator
from airflow_provider_prefinery.sensors.prefinery import PrefineryRewardSensor

USER_LOOKUP_CONCURRENCY = 4
log = logging.getLogger(__name__)


def _prefinery() -> Any:
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    return PrefineryHook()


def user_emails(hook: Any, user_ids: set[int]) -> tuple[dict[int, str], list[int]]:
    """Each user's e-mail (a few lookups at once); the ids of users that no longer exist."""
    from airflow_provider_prefinery.exceptions import PrefineryNotFoundError
    from airflow_provider_prefinery.hooks.rest import bounded_map

    emails: dict[int, str] = {}
    gone: list[int] = []
    for _, user_id, user, error in bounded_map(
        hook.get_user, sorted(user_ids), max_workers=USER_LOOKUP_CONCURRENCY
    ):
        if isinstance(error, PrefineryNotFoundError):
            gone.append(user_id)
        elif error is not None:
            raise error
        else:
            emails[user_id] = user["email"]
    return emails, sorted(gone)


def run_data(reward: dict[str, Any]) -> dict[str, Any]:
    """What the Piggy automation receives about the reward (usable in its e-mail template)."""
    return {
        "reward_id": reward["id"],
        "reward_name": reward.get("name"),
        "descriptor": reward.get("descriptor"),
        "user_role": reward.get("user_role"),
    }


def reward_of(record: Any) -> int:
    """The reward id a run record carries in its ``data``."""
    return int(record["data"]["reward_id"])


def summarise(
    planned: list[dict[str, Any]],
    held_before: list[int],
    runs: dict[str, Any] | None,
    marks: dict[str, Any] | None,
) -> dict[str, Any]:
    """Account for every planned reward; return the counts, the new holds and the problems to report.

    :param planned: the run records ``plan_runs`` made.
    :param held_before: rewards held by earlier runs and still earned.
    :param runs: ``start_runs``' XCom (None when it pushed nothing: it failed before any run).
    :param marks: ``mark_delivered``'s XCom (None when it did not run).
    """
    problems: list[str] = []
    started: list[int] = []
    failed: list[str] = []
    unknown: list[int] = []
    if runs is None:
        if planned:
            problems.append(f"start_runs started no run for {len(planned)} reward(s): see its log")
    else:
        started = [reward_of(r) for r in runs.get("records") or [] if r]
        for entry in runs.get("failed", []):
            rid = reward_of(entry["record"])
            if entry.get("outcome_unknown"):
                unknown.append(rid)
            else:
                failed.append(
                    f"reward {rid}: {entry.get('error')} (code {entry.get('code')}) {entry.get('message')}"
                )
    if marks is None:
        unmarked = list(started)
    else:
        unmarked = [int(e["record"]["reward_id"]) for e in marks.get("failed", [])]
    if failed:
        problems.append(f"{len(failed)} run(s) failed, their rewards stay earned: " + "; ".join(failed))
    if unknown:
        problems.append(
            f"HELD {unknown}: the run's outcome is unknown. Check Piggy for the run, then mark the reward "
            "delivered in Prefinery, or list it in release_reward_ids if no run happened"
        )
    if unmarked:
        problems.append(
            f"HELD {unmarked}: the run started but the reward is not marked delivered. Mark it delivered in "
            "Prefinery (or clear mark_delivered); never release it"
        )
    if held_before:
        problems.append(f"still HELD from earlier runs: {held_before} (see above for how to resolve)")
    held = sorted(set(held_before) | set(unknown) | set(unmarked))
    counts = {
        "planned": len(planned),
        "started": len(started),
        "delivered": len(started) - len(unmarked),
        "failed": len(failed),
        "outcome_unknown": len(unknown),
        "held": len(held),
    }
    return {"counts": counts, "held": held, "problems": problems}


with DAG(
    dag_id="prefinery_reward_fulfillment",
    description="Deliver earned Prefinery rewards through a Piggy automation, at most once per reward",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,  # two runs at once could both plan the same earned reward
    tags=["prefinery", "piggy", "example"],
    params={
        "automation_name": Param(
            "Send reward email", type="string", description="The Piggy automation (event contact_updated)"
        ),
        "max_rewards": Param(500, type="integer", minimum=1, description="Rewards per run; the rest wait"),
        "release_reward_ids": Param(
            [],
            type="array",
            items={"type": "integer"},
            description="Held rewards to try again (no run happened)",
        ),
    },
) as dag:
    earned = PrefineryRewardSensor(
        task_id="wait_for_earned_rewards",
        status="earned",
        mode="reschedule",
        poke_interval=300,
        timeout=55 * 60,
        soft_fail=True,
    )

    @task(multiple_outputs=True)
    def plan_runs(params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """The rewards to run now: earned (listed here, right before any run), not held, oldest first."""
        hook = _prefinery()
        earned_now = {reward["id"]: reward for reward in hook.list_rewards(status="earned")}
        # The latest holds any earlier run left (map_indexes=-1: one value, the most recent).
        previous = ti.xcom_pull(task_ids="report", key="held", include_prior_dates=True, map_indexes=-1) or []
        released = {int(rid) for rid in params["release_reward_ids"]}
        held = sorted({rid for rid in previous if rid in earned_now and rid not in released})
        todo = [reward for rid, reward in earned_now.items() if rid not in held]
        todo = sorted(todo, key=lambda r: (r.get("earned_at") or "", r["id"]))[: params["max_rewards"]]
        emails, gone = user_emails(hook, {r["user_id"] for r in todo})
        if gone:
            log.warning(
                "Users %s no longer exist: their rewards stay earned (revoke them in Prefinery)", gone
            )
        records = [
            {"email": emails[r["user_id"]], "data": run_data(r)} for r in todo if r["user_id"] in emails
        ]
        log.info("%d reward(s) to run; held: %s", len(records), held or "none")
        return {"records": records, "held": held}

    plan = plan_runs()
    earned >> plan

    # One batch: the automation is resolved once, the token exchanged once, runs go 4 at a time.
    # Not idempotent: never retried by Airflow (the operator also refuses a retry once runs started).
    start_runs = PiggyCreateAutomationRunOperator(
        task_id="start_runs",
        records=plan["records"],
        automation_name="{{ params.automation_name }}",
        create_contact_if_missing=True,
        return_records=True,
        max_concurrency=4,
        retries=0,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def runs_succeeded(ti: Any = None) -> list[dict[str, Any]]:
        """The rewards whose run started, from start_runs' report (pushed even when it failed)."""
        runs = ti.xcom_pull(task_ids="start_runs")
        if not runs:
            raise AirflowSkipException("start_runs reported nothing: no run was started")
        return [{"reward_id": reward_of(record)} for record in runs.get("records") or [] if record]

    succeeded = runs_succeeded()
    start_runs >> succeeded

    # Safe to retry: a reward already delivered counts as done.
    mark_delivered = PrefineryUpdateRewardStatusOperator(
        task_id="mark_delivered",
        records=succeeded,
        status="delivered",
        retries=3,
        retry_delay=datetime.timedelta(seconds=20),
    )

    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)  # its "held" XCom is pushed below
    def report(ti: Any = None) -> dict[str, Any]:
        """Sum up; keep the holds for the next runs; fail the DAG run when anything needs a person."""
        planned = ti.xcom_pull(task_ids="plan_runs", key="records")
        if planned is None:
            raise AirflowSkipException("nothing was planned (no earned reward)")
        outcome = summarise(
            planned,
            ti.xcom_pull(task_ids="plan_runs", key="held") or [],
            ti.xcom_pull(task_ids="start_runs"),
            ti.xcom_pull(task_ids="mark_delivered"),
        )
        ti.xcom_push(key="held", value=outcome["held"])
        log.info("Reward fulfilment: %s", outcome["counts"])
        if outcome["problems"]:
            raise AirflowFailException("\n".join(outcome["problems"]))
        return outcome["counts"]

    mark_delivered >> report()

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def watcher() -> None:
        """Fail the DAG run when any task failed: ``report`` runs on ALL_DONE, so as the last task it
        would otherwise let a failed sensor or plan end the run as a success."""
        raise AirflowFailException("a task of this run failed: see the failed task's log")

    list(dag.tasks) >> watcher()
