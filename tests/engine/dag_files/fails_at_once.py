"""A task that fails on its first try with a message the harness's failure report must show."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="engine_fails_at_once",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    default_args={"retries": 0},
) as dag:

    @task
    def break_down() -> None:
        raise ValueError("deliberate failure 4711")

    break_down()
