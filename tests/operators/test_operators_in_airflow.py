"""Operators inside real Airflow (``dag.test()`` on SQLite) against the sandbox: what only a task run shows.

A failing batch's report reaches downstream tasks through XCom; a template that renders to the wrong type
fails the task naming the field; mapped operators render their fields per map index; a DAG's
``default_args["email"]`` (the alert address) never becomes a record's e-mail, and a record's e-mail never
becomes the alert address, directly or mapped.
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


ALERT_DAG_FILE = """
import datetime, json, pathlib
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCheckinUserOperator, PrefineryCreateUserOperator,
)

OUT = pathlib.Path({out!r})


def _keep_emails(context):
    task, ti = context["task"], context["ti"]
    seen = {{"alert": task.email, "record": task.record.get("email")}}
    (OUT / f"{{ti.task_id}}.{{ti.map_index}}.json").write_text(json.dumps(seen))


ALERTS = {{"email": "oncall@example.org", "email_on_failure": False}}

with DAG("alert_email", schedule=None, default_args=ALERTS,
         start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) as dag:
    created = PrefineryCreateUserOperator(
        task_id="direct", email="direct@example.org", on_execute_callback=_keep_emails
    )
    PrefineryCheckinUserOperator(  # a record without e-mail: given the alert address it would be invalid
        task_id="checkin", user_id="{{{{ ti.xcom_pull('direct')['id'] }}}}", on_execute_callback=_keep_emails
    ).set_upstream(created)
    PrefineryCreateUserOperator.partial(
        task_id="mapped", status="applied", on_execute_callback=_keep_emails
    ).expand(email=["m0@example.org", "m1@example.org"])

    @task
    def emails():
        return ["x0@example.org", "x1@example.org"]

    PrefineryCreateUserOperator.partial(task_id="mapped_xcom", on_execute_callback=_keep_emails).expand(
        email=emails()
    )
    @task
    def signups():
        return [{{"email": "k0@example.org", "status": "applied"}}]

    PrefineryCreateUserOperator.partial(
        task_id="mapped_kwargs", on_execute_callback=_keep_emails
    ).expand_kwargs(signups())
    PrefineryCreateUserOperator.partial(
        task_id="mapped_profile", email="p@example.org", if_exists="update", on_execute_callback=_keep_emails
    ).expand(profile=[{{"first_name": "A"}}, {{"first_name": "B"}}])
"""


def _run_dag_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dag_id: str, text: str) -> Any:
    """Write a DAG file into a bundle of this test's own, load it with a real DagBag and ``dag.test()`` it."""
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{dag_id}.py").write_text(textwrap.dedent(text.format(out=str(tmp_path))))
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "operator-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(dags)}},
    ]  # dag.test() runs only DAGs of a configured bundle: add this test's folder as one
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    dag.test()
    return dag


def test_failed_batch_report_xcom_template_errors_and_mapping(
    sandbox: Any, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _BUCKETS.clear()
    _run_dag_file(tmp_path, monkeypatch, "operators_in_airflow", DAG_FILE)

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["failed"] == 1 and report["failed"][0]["code"] == 2803
    error = (tmp_path / "bad_template.error").read_text()
    assert "quantity: must be a positive integer, got 'many'" in error
    assert sandbox.control.count(api="prefinery", endpoint="create_points") == 1  # only the batch's record
    for index in (0, 1):
        (user,) = sandbox.control.users(email=f"m{index}@example.org")
        profile = user["profile"] if isinstance(user["profile"], dict) else json.loads(user["profile"])
        assert profile["first_name"] == str(index)  # each mapped instance rendered its own template


def test_default_args_email_stays_the_alert_address_and_record_emails_stay_records(
    sandbox: Any, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    _BUCKETS.clear()
    dag = _run_dag_file(tmp_path, monkeypatch, "alert_email", ALERT_DAG_FILE)

    seen = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert seen == {
        "direct.-1": {"alert": "oncall@example.org", "record": "direct@example.org"},
        "checkin.-1": {"alert": "oncall@example.org", "record": None},
        "mapped.0": {"alert": "oncall@example.org", "record": "m0@example.org"},
        "mapped.1": {"alert": "oncall@example.org", "record": "m1@example.org"},
        "mapped_xcom.0": {"alert": "oncall@example.org", "record": "x0@example.org"},
        "mapped_xcom.1": {"alert": "oncall@example.org", "record": "x1@example.org"},
        "mapped_kwargs.0": {"alert": "oncall@example.org", "record": "k0@example.org"},
        "mapped_profile.0": {"alert": "oncall@example.org", "record": "p@example.org"},
        "mapped_profile.1": {"alert": "oncall@example.org", "record": "p@example.org"},
    }  # every task ran (its callback wrote the file): none failed on an e-mail it should not have had
    for address in ("direct", "m0", "m1", "x0", "x1", "k0", "p"):
        assert len(sandbox.control.users(email=f"{address}@example.org")) == 1
    assert sandbox.control.users(email="oncall@example.org") == []
    assert sandbox.control.count(api="prefinery", endpoint="checkin_by_id") == 1
    assert sandbox.control.count(api="prefinery", endpoint="checkin_by_email") == 0
    # What the scheduler and the dag processor send alerts to: the parsed and the serialized mapped tasks.
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for task_id in ("mapped", "mapped_xcom", "mapped_kwargs", "mapped_profile"):
        assert dag.get_task(task_id).email == serialized.get_task(task_id).email == "oncall@example.org"
