"""Deliver each reward as soon as it is earned: a DAG scheduled by Prefinery events (Airflow 3).

An :class:`~airflow.sdk.AssetWatcher` runs :class:`PrefineryEventTrigger` on the triggerer: it polls
Prefinery's earned rewards and emits one asset event per reward it has not seen before, which is what
Prefinery's ``reward_earned`` webhook would deliver, without a public endpoint to receive webhooks. Each
event schedules a run of this DAG; the run delivers the rewards its events name (one mapped task each).

Runs as is against the local sandbox (``prefinery-sandbox``, seed ``demo``) through ``prefinery_default``.
Needs a triggerer (``airflow triggerer``). The watcher's first poll takes the rewards that are already
earned as history (no run); on Airflow >= 3.3 the ids it has seen survive a triggerer restart (see the
trigger's docstring). A run triggered by hand with conf ``{"events": [{"resource": "rewards", "id": 42}]}``
replays those events; delivery is safe to repeat (a reward already delivered counts as done).

``PREFINERY_EXAMPLE_POLL_INTERVAL`` sets the poll interval (default 60 s; 10 s at least, the share of
Prefinery's documented 60/min LIST rewards limit one poller may use).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_prefinery.operators.prefinery import PrefineryUpdateRewardStatusOperator
from airflow_provider_prefinery.triggers.prefinery import PrefineryEventTrigger

POLL_INTERVAL = float(os.environ.get("PREFINERY_EXAMPLE_POLL_INTERVAL", "60"))

REWARD_EARNED = Asset(
    name="prefinery_reward_earned",
    uri="x-prefinery://rewards/earned",
    watchers=[
        AssetWatcher(
            name="prefinery_reward_earned_watcher",
            trigger=PrefineryEventTrigger("rewards", status="earned", poll_interval=POLL_INTERVAL),
        )
    ],
)


def reward_ids(events: list[dict[str, Any]]) -> list[int]:
    """The distinct reward ids named by event payloads, in order (an event may be delivered twice)."""
    ids = [payload["id"] for payload in events if payload.get("resource") == "rewards"]
    return list(dict.fromkeys(ids))


with DAG(
    dag_id="prefinery_event_driven",
    description="Deliver each Prefinery reward as soon as it is earned (AssetWatcher scheduling)",
    schedule=[REWARD_EARNED],
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["prefinery", "example", "event-driven"],
) as dag:

    @task
    def earned_rewards(triggering_asset_events: Any = None, dag_run: Any = None) -> list[int]:
        """The rewards this run's asset events (or, run by hand, its conf's ``events``) name."""
        events = [
            event.extra.get("payload", {}) for event in (triggering_asset_events or {}).get(REWARD_EARNED, [])
        ]
        events += list((dag_run.conf or {}).get("events", [])) if dag_run is not None else []
        return reward_ids(events)

    PrefineryUpdateRewardStatusOperator.partial(task_id="deliver", status="delivered").expand(
        reward_id=earned_rewards()
    )
