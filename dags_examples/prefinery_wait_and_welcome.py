"""Wait for a signup, welcome it, and deliver the rewards it earns: the three sensors in the three modes.

Runs as is against the local sandbox (``prefinery-sandbox``, seed ``demo``) through the connection
``prefinery_default``; point the connection at ``https://api.prefinery.com`` to run it for real.

1. ``wait_for_signup`` (reschedule mode): :class:`PrefineryUserSensor` until the e-mail has applied (or
   is further along); the worker slot is free between pokes. Its XCom is the user.
2. ``wait_until_mailable`` (poke mode): :class:`PrefinerySuppressionSensor` with ``suppressed=False``,
   usually true at once, so holding a slot for it costs nothing.
3. ``invite``: an applied user becomes ``invited`` (Prefinery sends the invitation e-mail); a user who
   is already invited or active is left alone, so a re-run sends nothing twice.
4. ``wait_for_rewards`` (deferrable): :class:`PrefineryRewardSensor` until the user has earned
   ``min_rewards`` rewards; the triggerer waits, not a worker. Its XCom is the list of rewards.
5. ``deliver`` (mapped over that list): one :class:`PrefineryUpdateRewardStatusOperator` task per reward
   marks it ``delivered`` (safe to re-run: a reward already delivered counts as done).

Poll intervals default to 60 s (``PREFINERY_EXAMPLE_POKE_INTERVAL`` overrides it, e.g. for tests); a
value below what Prefinery's documented limit allows one sensor (10 s) is raised to it with a warning.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_prefinery.operators.prefinery import PrefineryUpdateRewardStatusOperator
from airflow_provider_prefinery.sensors.prefinery import (
    PrefineryRewardSensor,
    PrefinerySuppressionSensor,
    PrefineryUserSensor,
)

POKE_INTERVAL = float(os.environ.get("PREFINERY_EXAMPLE_POKE_INTERVAL", "60"))
SIGNED_UP = ["applied", "invited", "active"]


def reward_id(reward: dict[str, Any]) -> int:
    """Map a reward object (the sensor's XCom) to the id the delivery operator takes."""
    return reward["id"]


with DAG(
    dag_id="prefinery_wait_and_welcome",
    description="Wait for a signup, invite it, wait for its rewards and deliver each one",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["prefinery", "example", "sensors"],
    params={
        "email": Param(
            "newcomer@example.com", type="string", format="idn-email", description="Who to wait for"
        ),
        "min_rewards": Param(1, type="integer", minimum=1, description="Earned rewards to wait for"),
    },
) as dag:
    wait_for_signup = PrefineryUserSensor(
        task_id="wait_for_signup",
        email="{{ params.email }}",
        status=SIGNED_UP,
        mode="reschedule",
        poke_interval=POKE_INTERVAL,
        timeout=datetime.timedelta(days=3),
    )

    wait_until_mailable = PrefinerySuppressionSensor(
        task_id="wait_until_mailable",
        email="{{ params.email }}",
        suppressed=False,
        mode="poke",
        poke_interval=POKE_INTERVAL,
        timeout=datetime.timedelta(hours=1),
    )

    @task
    def invite(user: dict[str, Any]) -> dict[str, Any]:
        """Invite an applied user; leave one who is already invited or active as they are."""
        from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

        if user["status"] != "applied":
            return user
        return PrefineryHook().update_user(user["id"], status="invited")

    wait_for_rewards = PrefineryRewardSensor(
        task_id="wait_for_rewards",
        status="earned",
        email="{{ params.email }}",
        min_count="{{ params.min_rewards }}",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=datetime.timedelta(days=7),
    )

    deliver = PrefineryUpdateRewardStatusOperator.partial(task_id="deliver", status="delivered").expand(
        reward_id=wait_for_rewards.output.map(reward_id)
    )

    invited = invite(wait_for_signup.output)
    wait_until_mailable >> invited
    invited >> wait_for_rewards
