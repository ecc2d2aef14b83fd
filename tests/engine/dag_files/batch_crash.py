"""Two non-idempotent batches to kill mid-way: points and Piggy automation runs, records from the run's conf.

``conf``: ``records`` (the batch's records). One retry, one second later: a test SIGKILLs the first try in
the middle of the batch, and the retry resumes from the checkpoint the first try left in the task state
store. Everything else is the operators' defaults (4 at a time, a checkpoint every 2 s).
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_provider_prefinery.operators.piggy import PiggyCreateAutomationRunOperator
from airflow_provider_prefinery.operators.prefinery import PrefineryCreatePointsOperator
from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

COMMON = {
    "schedule": None,
    "start_date": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    "catchup": False,
    "render_template_as_native_obj": True,  # the records reach the operator as a list
    "default_args": {"retries": 1, "retry_delay": datetime.timedelta(seconds=1)},
}

with DAG(dag_id="engine_points_crash", **COMMON):
    PrefineryCreatePointsOperator(task_id="points", records="{{ dag_run.conf['records'] }}")

with DAG(dag_id="engine_piggy_crash", **COMMON):
    PiggyCreateAutomationRunOperator(
        task_id="runs", records="{{ dag_run.conf['records'] }}", automation_uuid=DEMO_AUTOMATION_UUID
    )
