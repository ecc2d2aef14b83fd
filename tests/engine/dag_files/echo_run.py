"""One task that returns what the run was given: its conf, logical date and data interval."""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG, task

with DAG(
    dag_id="engine_echo_run",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
) as dag:

    @task
    def echo(dag_run: Any = None, **context: Any) -> dict[str, Any]:
        logical_date = context.get("logical_date")
        return {
            "conf": dict(dag_run.conf or {}),
            "run_type": getattr(dag_run.run_type, "value", str(dag_run.run_type)),
            "logical_date": logical_date.isoformat() if logical_date else None,
        }

    echo()
