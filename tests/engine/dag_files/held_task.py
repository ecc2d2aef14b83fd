"""A task that writes its pid, then holds until released: a target for killing a task mid-way.

``conf``: ``workdir`` (a directory). Each try adds its number to ``tries`` in the task state store
(which survives retries: where a batch keeps its checkpoint), writes ``<workdir>/pid.<try>`` and waits
for ``<workdir>/release``; one retry, one second apart, so a killed first try is retried at once.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

with DAG(
    dag_id="engine_held_task",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=1)},
) as dag:

    @task
    def hold(dag_run: Any = None, ti: Any = None, task_state_store: Any = None) -> dict[str, Any]:
        workdir = Path(dag_run.conf["workdir"])
        earlier = list(task_state_store.get("tries", []))
        task_state_store.set("tries", [*earlier, ti.try_number])
        (workdir / f"pid.{ti.try_number}").write_text(str(os.getpid()))
        while not (workdir / "release").exists():
            time.sleep(0.05)
        return {"pid": os.getpid(), "try_number": ti.try_number, "earlier_tries": earlier}

    hold()
