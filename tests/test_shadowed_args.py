"""A field named like a BaseOperator argument (``email``): in the signature, never the alert address.

Real operator construction, ``partial()``/``expand()`` and ``MappedOperator.render_template_fields`` (the
unmapping a worker does), in a DAG whose ``default_args`` set Airflow's alert ``email``; the same end to
end through ``dag.test()`` is in ``tests/operators/test_operators_in_airflow.py``.
"""

from __future__ import annotations

import datetime
import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk import DAG

from airflow_provider_prefinery.operators.prefinery import PrefineryCreateUserOperator
from airflow_provider_prefinery.shadowed_args import ShadowedArgs

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
ALERTS = "oncall@example.com"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore:Setting email")


def _dag(**kwargs: Any) -> DAG:
    return DAG("t", schedule=None, start_date=START, default_args={"email": ALERTS}, **kwargs)


class _UserSensorLike(ShadowedArgs, BaseOperator):
    """How a sensor reuses the helper: a required ``email`` kept apart from ``self.email``."""

    shadowed_args = frozenset({"email"})

    def __init__(self, *, email: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_email = email


def _unmapped(mapped: Any, map_index: int) -> Any:
    """What a worker runs for one map index: unmap through the real rendering path."""
    context: dict[str, Any] = {
        "ti": SimpleNamespace(map_index=map_index, task=None),
        "dag": mapped.dag,
        "dag_run": SimpleNamespace(conf={}),
    }
    mapped.render_template_fields(context)
    return context["task"]


def test_email_is_in_the_typed_signature_and_default_args_email_stays_the_alert_address() -> None:
    param = inspect.signature(PrefineryCreateUserOperator).parameters["email"]
    with _dag():
        given = PrefineryCreateUserOperator(task_id="given", email="ada@example.org")
        omitted = PrefineryCreateUserOperator(task_id="omitted", status="applied")

    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.annotation == "str | XComArg | None"
    assert given.record["email"] == "ada@example.org" and given.email == ALERTS
    assert omitted.record["email"] is None and omitted.email == ALERTS


def test_a_record_email_never_becomes_the_alert_address_without_default_args() -> None:
    op = PrefineryCreateUserOperator(task_id="t", email="ada@example.org")

    assert op.email is None and op.record["email"] == "ada@example.org"


def test_a_required_shadowed_argument_is_required_not_taken_from_default_args() -> None:
    with _dag():
        sensor = _UserSensorLike(task_id="s", email="ada@example.org")
        with pytest.raises(TypeError, match="missing keyword argument 'email'"):
            _UserSensorLike(task_id="missing")

    assert sensor.user_email == "ada@example.org" and sensor.email == ALERTS


def test_mapping_over_other_fields_keeps_the_alert_address_out_of_every_record() -> None:
    with _dag():
        mapped = PrefineryCreateUserOperator.partial(task_id="m").expand(status=["applied", "invited"])

    task = _unmapped(mapped, 1)

    assert mapped.email == ALERTS  # what the scheduler and the dag processor alert
    assert task.record == {**task.record, "email": None, "status": "invited"} and task.email == ALERTS


def test_a_partial_email_is_each_records_and_never_the_mapped_tasks_alert_address() -> None:
    with _dag():
        mapped = PrefineryCreateUserOperator.partial(task_id="m", email="ada@example.org").expand(
            status=["applied", "invited"]
        )

    task = _unmapped(mapped, 0)

    assert mapped.email == ALERTS
    assert task.record["email"] == "ada@example.org" and task.record["status"] == "applied"
    assert task.email == ALERTS


def test_expand_and_expand_kwargs_over_email_work_beside_default_args_email() -> None:
    emails = ["a@example.org", "b@example.org"]
    with _dag():
        mapped = PrefineryCreateUserOperator.partial(task_id="m", status="applied").expand(email=emails)
        by_kwargs = PrefineryCreateUserOperator.partial(task_id="k").expand_kwargs(
            [{"email": e, "status": "invited"} for e in emails]
        )
        sensors = _UserSensorLike.partial(task_id="s").expand(email=emails)

    assert [_unmapped(mapped, i).record["email"] for i in (0, 1)] == emails
    assert [_unmapped(by_kwargs, i).record["email"] for i in (0, 1)] == emails
    assert _unmapped(by_kwargs, 1).record["status"] == "invited"
    assert [_unmapped(sensors, i).user_email for i in (0, 1)] == emails
    assert {mapped.email, by_kwargs.email, sensors.email, _unmapped(mapped, 0).email} == {ALERTS}


def test_mapping_still_checks_field_names_and_refuses_an_email_given_twice() -> None:
    with _dag():
        with pytest.raises(TypeError, match="unexpected keyword argument 'emial'"):
            PrefineryCreateUserOperator.partial(task_id="x").expand(emial=["a@example.org"])
        with pytest.raises(TypeError, match="unexpected keyword argument 'emial'"):
            PrefineryCreateUserOperator.partial(task_id="y", emial="a@example.org")
        with pytest.raises(TypeError, match="already specified argument: email"):
            PrefineryCreateUserOperator.partial(task_id="z", email="a@example.org").expand(email=["b@x.org"])
        with pytest.raises(ValueError, match="unexpected type 'str' for keyword argument email"):
            PrefineryCreateUserOperator.partial(task_id="w").expand(email="a@example.org")
