"""Sensors inside real Airflow (``dag.test()``) against the sandbox: ``default_args["email"]`` stays the
alert address (what Airflow's failure e-mails read, ``task.email``) while each sensor waits on its own
``email``, directly and mapped."""

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
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_prefinery.sensors.prefinery import PrefineryRewardSensor, PrefineryUserSensor

OUT = pathlib.Path({out!r})


def _keep(context):
    task, ti = context["task"], context["ti"]
    seen = {{"alert": task.email, "waits_on": task.criteria().get("email")}}
    (OUT / f"{{ti.task_id}}.{{ti.map_index}}.json").write_text(json.dumps(seen))


ALERTS = {{"email": "oncall@example.org", "email_on_failure": False, "poke_interval": 1, "timeout": 30}}

with DAG("sensor_alert_email", schedule=None, default_args=ALERTS,
         start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) as dag:
    PrefineryUserSensor(task_id="user", email={email!r}, on_success_callback=_keep)
    PrefineryRewardSensor(task_id="rewards", on_success_callback=_keep)
    PrefineryUserSensor.partial(task_id="mapped", on_success_callback=_keep).expand(email=[{email!r}])
"""


def test_sensors_wait_on_their_own_email_and_alerts_go_to_default_args_email(
    sandbox: Any, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    _BUCKETS.clear()
    sandbox.control.configure(scale=1000)
    user = sandbox.control.users(status="applied")[0]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sensor_alert_email.py").write_text(
        textwrap.dedent(DAG_FILE.format(out=str(tmp_path), email=user["email"]))
    )
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "sensor-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(dags)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors

    run = bag.get_dag("sensor_alert_email").test()

    assert run.state == "success"
    seen = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert seen == {
        "user.-1": {"alert": "oncall@example.org", "waits_on": user["email"]},
        "rewards.-1": {"alert": "oncall@example.org", "waits_on": None},
        "mapped.0": {"alert": "oncall@example.org", "waits_on": user["email"]},
    }
