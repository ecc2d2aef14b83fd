"""Operators inside real Airflow (``dag.test()`` on SQLite) against the sandbox: what only a task run shows.

A failing batch's report reaches downstream tasks through XCom; a template that renders to the wrong type
fails the task naming the field; mapped operators render their fields per map index.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.hooks.rest import _BUCKETS

pytestmark = [pytest.mark.integration, pytest.mark.dag]
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"

DAG_FILE = """
import datetime, json, pathlib
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCreatePointsOperator, PrefineryCreateUserOperator,
)

OUT = pathlib.Path({out!r})


def _keep_error(context):
    (OUT / f"{{context['ti'].task_id}}.error").write_text(str(context["exception"]))


with DAG("operators_in_airflow", schedule=None, params={{"quantity": "many"}},
         start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) as dag:
    points = PrefineryCreatePointsOperator(
        task_id="points", records=[{{"email": "nobody@example.org", "quantity": 1}}]
    )

    @task(trigger_rule="all_done")
    def report(ti=None):
        (OUT / "report.json").write_text(json.dumps(ti.xcom_pull(task_ids="points")))

    points >> report()
    PrefineryCreatePointsOperator(
        task_id="bad_template", email="ada@example.org", quantity="{{{{ params.quantity }}}}",
        on_failure_callback=_keep_error,
    )
    PrefineryCreateUserOperator.partial(
        task_id="mapped", profile={{"first_name": "{{{{ ti.map_index }}}}"}}
    ).expand(email=["m0@example.org", "m1@example.org"])
"""


def test_failed_batch_report_xcom_template_errors_and_mapping(
    sandbox: Any, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    _BUCKETS.clear()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "operators_in_airflow.py").write_text(textwrap.dedent(DAG_FILE.format(out=str(tmp_path))))
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "operator-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(dags)}},
    ]  # dag.test() runs only DAGs of a configured bundle: add this test's folder as one
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors

    bag.get_dag("operators_in_airflow").test()

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["failed"] == 1 and report["failed"][0]["code"] == 2803
    error = (tmp_path / "bad_template.error").read_text()
    assert "quantity: must be a positive integer, got 'many'" in error
    assert sandbox.control.count(api="prefinery", endpoint="create_points") == 1  # only the batch's record
    for index in (0, 1):
        (user,) = sandbox.control.users(email=f"m{index}@example.org")
        profile = user["profile"] if isinstance(user["profile"], dict) else json.loads(user["profile"])
        assert profile["first_name"] == str(index)  # each mapped instance rendered its own template
