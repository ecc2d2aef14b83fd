"""The three sensors against the sandbox: poke verdicts, each mode, deferral, the trigger's verdict, pace."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow.sdk.exceptions import AirflowRescheduleException

from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryServerError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.sensors.prefinery import (
    PrefineryBaseSensor,
    PrefineryRewardSensor,
    PrefinerySuppressionSensor,
    PrefineryUserSensor,
)
from airflow_provider_prefinery.triggers.prefinery import PrefinerySensorTrigger

pytestmark = pytest.mark.integration


def make(cls: type[PrefineryBaseSensor], **kwargs: Any) -> Any:
    options = {"task_id": "wait", "poke_interval": 0.1, "timeout": 10, **kwargs}
    return cls(**options)


def first_user(sbx: Any, status: str, offset: int = 0) -> dict[str, Any]:
    return sorted(sbx.control.users(status=status), key=lambda u: u["id"])[offset]


def earned(sbx: Any, user: dict[str, Any]) -> list[dict[str, Any]]:
    return sbx.control.rewards(user_id=user["id"], status="earned")


# ------------------------------------------------------------------------------ poke: not yet / done
def test_user_sensor_pokes_false_until_the_user_exists_then_returns_the_user(sbx: Any) -> None:
    sensor = make(PrefineryUserSensor, email="late.signup@example.com")
    assert not sensor.poke({})
    created = PrefineryHook().create_user("late.signup@example.com", status="applied")
    done = sensor.poke({})
    assert done and done.xcom_value["id"] == created["id"]


def test_user_sensor_waits_until_the_user_is_in_one_of_the_statuses(sbx: Any) -> None:
    user = first_user(sbx, "imported")
    sensor = make(PrefineryUserSensor, email=user["email"], status=["applied", "invited"])
    assert not sensor.poke({})
    sbx.control.set_user_status(user["id"], "applied")
    assert sensor.poke({}).xcom_value["status"] == "applied"


def test_reward_sensor_pokes_false_below_min_count_then_returns_every_matching_reward(sbx: Any) -> None:
    user = first_user(sbx, "active")
    before = earned(sbx, user)
    sensor = make(PrefineryRewardSensor, email=user["email"], min_count=len(before) + 1)
    assert not sensor.poke({})
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=0)
    rewards = sensor.poke({}).xcom_value
    assert len(rewards) == len(before) + 1
    assert {r["id"] for r in before} < {r["id"] for r in rewards}


def test_reward_sensor_keeps_only_the_descriptor_asked_for(sbx: Any) -> None:
    rewards = sbx.control.rewards(status="delivered")
    descriptor = rewards[0]["descriptor"]
    wanted = {r["id"] for r in rewards if r["descriptor"] == descriptor}
    sensor = make(PrefineryRewardSensor, status="delivered", descriptor=descriptor, min_count=len(wanted))
    assert {r["id"] for r in sensor.poke({}).xcom_value} == wanted
    (first,) = make(PrefineryRewardSensor, status="delivered", descriptor=descriptor).poke({}).xcom_value
    assert first["id"] in wanted  # min_count=1: the first match, and the listing stopped there
    assert not make(PrefineryRewardSensor, status="delivered", descriptor=descriptor, min_count=99).poke({})


def test_suppression_sensor_waits_for_a_suppression_and_for_its_end(sbx: Any) -> None:
    email = first_user(sbx, "active")["email"]
    suppressed = make(PrefinerySuppressionSensor, email=email)
    lifted = make(PrefinerySuppressionSensor, email=email, suppressed=False)
    assert not suppressed.poke({})
    assert lifted.poke({})
    created = PrefineryHook().create_suppression(email)
    assert suppressed.poke({}).xcom_value["id"] == created["id"]
    assert not lifted.poke({})


def test_rendered_strings_are_accepted_for_counts_and_flags(sbx: Any) -> None:
    user = first_user(sbx, "active")
    count = str(len(earned(sbx, user)))
    assert make(PrefineryRewardSensor, email=user["email"], min_count=count).poke({})
    assert make(PrefinerySuppressionSensor, email=user["email"], suppressed="False").poke({})


def test_every_argument_is_templated() -> None:
    common = {"prefinery_conn_id", "beta_id"}  # email= is kept as user_email: BaseOperator.email alerts
    assert set(PrefineryUserSensor.template_fields) == common | {"user_email", "status"}
    assert set(PrefineryRewardSensor.template_fields) == common | {
        "status",
        "user_email",
        "descriptor",
        "min_count",
    }
    assert set(PrefinerySuppressionSensor.template_fields) == common | {"user_email", "suppressed"}


def test_a_bad_literal_argument_fails_when_the_dag_is_parsed() -> None:
    with pytest.raises(PrefineryInputError, match="status"):
        make(PrefineryRewardSensor, status="pending")
    with pytest.raises(PrefineryInputError, match="min_count"):
        make(PrefineryRewardSensor, min_count=0)
    with pytest.raises(PrefineryInputError, match="email"):
        make(PrefineryUserSensor, email="not-an-address")
    make(PrefineryUserSensor, email="{{ params.email }}", status="{{ params.status }}")  # checked at run time


def test_a_bad_rendered_argument_fails_the_poke_before_any_request(sbx: Any) -> None:
    sensor = make(PrefinerySuppressionSensor, email="{{ params.email }}")
    sensor.user_email = "rendered but wrong"  # what a template could produce
    with pytest.raises(PrefineryInputError, match="email"):
        sensor.poke({})
    assert sbx.control.count(api="prefinery") == 0


# ------------------------------------------------------------------------------ modes
def test_poke_mode_returns_the_rewards_earned_during_the_wait(sbx: Any) -> None:
    user = first_user(sbx, "active", 1)
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=2)
    sensor = make(PrefineryRewardSensor, email=user["email"], min_count=len(earned(sbx, user)) + 1)
    rewards = sensor.execute({})
    assert len(rewards) == len(earned(sbx, user))
    assert sbx.control.count(endpoint="list_rewards") == 3


class FirstTry:
    """The one thing reschedule mode asks of the task instance: when the first try started."""

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def test_reschedule_mode_frees_the_slot_until_the_paced_interval_has_passed(sbx: Any) -> None:
    sensor = make(PrefineryUserSensor, email="not.yet@example.com", mode="reschedule", poke_interval=30)
    with pytest.raises(AirflowRescheduleException) as raised:
        sensor.execute({"ti": FirstTry()})
    wait = (raised.value.reschedule_date - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 28 < wait <= 30
    assert sbx.control.count(endpoint="list_users") == 1


def test_deferrable_sensor_checks_once_then_defers_to_a_serialisable_trigger(sbx: Any) -> None:
    sensor = make(PrefineryRewardSensor, email="nobody@example.com", deferrable=True, timeout=600)
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute({})
    deferred = raised.value
    trigger = deferred.trigger
    assert isinstance(trigger, PrefinerySensorTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout.total_seconds() > 600  # the trigger's own deadline comes first
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert PrefinerySensorTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["check"] == "rewards"
    assert kwargs["criteria"] == {
        "status": "earned",
        "email": "nobody@example.com",
        "descriptor": None,
        "min_count": 1,
    }
    assert abs(kwargs["end_time"] - (time.time() + 600)) < 5
    assert kwargs["poll_interval"] == kwargs["initial_wait"] == pytest.approx(0.1)  # no poll right away
    assert sbx.control.count(endpoint="list_rewards") == 1


def test_deferrable_sensor_already_satisfied_returns_without_deferring(sbx: Any) -> None:
    user = first_user(sbx, "applied")
    assert make(PrefineryUserSensor, email=user["email"], deferrable=True).execute({})["id"] == user["id"]


# ------------------------------------------------------------------------------ the trigger's verdict
def test_execute_complete_returns_the_value_of_a_success_event() -> None:
    sensor = make(PrefineryRewardSensor)
    value = [{"id": 1}, {"id": 2}]
    assert sensor.execute_complete({}, {"status": "success", "message": "2 rewards", "value": value}) == value


def test_execute_complete_raises_a_sensor_timeout_on_a_timeout_event() -> None:
    with pytest.raises(AirflowSensorTimeout, match="not met by the deadline"):
        make(PrefineryUserSensor, email="a@example.com").execute_complete(
            {}, {"status": "timeout", "message": "user check not met by the deadline"}
        )


def test_execute_complete_fails_clearly_on_an_error_event() -> None:
    event = {"status": "error", "message": "HTTP 401: bad key", "error": {"error": "PrefineryAuthError"}}
    with pytest.raises(AirflowException, match="suppression check failed: HTTP 401: bad key"):
        make(PrefinerySuppressionSensor, email="a@example.com").execute_complete({}, event)


@pytest.mark.parametrize("event", [None, "success", {"status": "done"}, {"message": "no status"}])
def test_execute_complete_refuses_a_malformed_event(event: Any) -> None:
    with pytest.raises(AirflowException, match="event"):
        make(PrefineryRewardSensor).execute_complete({}, event)


# ------------------------------------------------------------------------------ pacing
def test_a_poke_interval_below_the_floor_is_raised_before_the_first_poke(sbx: Any) -> None:
    sensor = make(PrefineryUserSensor, email="x@example.com", poke_interval=0.01)
    assert sensor.pacer.interval == pytest.approx(0.1)  # 10 s at the documented limit, / scale 100
    assert sensor.poke_interval == pytest.approx(0.1)


def test_the_floor_is_ten_seconds_at_the_documented_limit(conn_extra: Any) -> None:
    conn_extra(rate_limit_scale=1)
    sensor = make(PrefinerySuppressionSensor, email="x@example.com", poke_interval=2)
    assert sensor.pacer.interval == 10.0


def test_a_429_after_the_cores_retries_means_not_yet_and_a_longer_wait(sbx: Any, conn_extra: Any) -> None:
    conn_extra(max_retries=0)  # the core gives up at once; its retries are the hook tests' business
    sbx.control.set_faults("prefinery", {"429": 1.0}, "list_rewards")  # Retry-After: 1
    sensor = make(PrefineryRewardSensor, poke_interval=2)
    assert not sensor.poke({})  # a 429 is "not yet", not a failure
    assert sensor.poke_interval == 4
    assert not sensor.poke({})
    assert sensor.poke_interval == 8
    sbx.control.set_faults("prefinery", {}, "list_rewards")
    assert sensor.poke({})
    assert sensor.poke_interval == 2  # a healthy poke resets the back-off
    assert sbx.control.count(endpoint="list_rewards", status=429) == 2


# ------------------------------------------------------------------------------ e-mail, listing, first poke
def test_default_args_email_is_the_alert_address_never_the_e_mail_a_sensor_waits_on(sbx: Any) -> None:
    from airflow.sdk import DAG

    user = first_user(sbx, "applied")
    alerts = {"email": "oncall@example.org"}
    with DAG("alerts", schedule=None, start_date=datetime.datetime(2024, 1, 1), default_args=alerts):
        waits_on_user = make(PrefineryUserSensor, email=user["email"])
        any_reward = make(PrefineryRewardSensor, task_id="any")  # no email: every earned reward, not oncall's
        mapped = PrefineryUserSensor.partial(task_id="mapped", poke_interval=0.1).expand(
            email=[user["email"]]
        )

    assert waits_on_user.email == any_reward.email == mapped.email == "oncall@example.org"
    assert waits_on_user.criteria()["email"] == user["email"]
    assert any_reward.criteria()["email"] is None
    assert waits_on_user.poke({}).xcom_value["id"] == user["id"]
    assert len(any_reward.poke({}).xcom_value) == 1  # earned rewards exist; none is oncall@'s


def test_the_reward_sensor_stops_listing_at_the_min_count_th_match(sbx: Any) -> None:
    earned_now = len(sbx.control.rewards(status="earned"))  # 40: two pages of 25
    assert earned_now > 25

    first = make(PrefineryRewardSensor, min_count=1).poke({})
    assert len(first.xcom_value) == 1
    assert sbx.control.count(endpoint="list_rewards") == 1  # not every page

    sbx.control.clear_requests()
    assert len(make(PrefineryRewardSensor, min_count=26).poke({}).xcom_value) == 26
    assert sbx.control.count(endpoint="list_rewards") == 2


def test_the_reward_sensor_hands_at_most_a_hundred_rewards_downstream(sbx: Any) -> None:
    user = first_user(sbx, "active", 2)
    hook = PrefineryHook()
    for index in range(130):
        hook.create_reward(user["email"], f"bulk-{index}")
    count = len(earned(sbx, user))

    sensor = make(PrefineryRewardSensor, email=user["email"], min_count=count)
    done = sensor.poke({})

    assert done and len(done.xcom_value) == 100  # polling.checks.MAX_VALUE_ITEMS
    assert {r["id"] for r in done.xcom_value} < {r["id"] for r in earned(sbx, user)}


@pytest.mark.parametrize("mode", ["silent_fail", "never_fail"])
def test_the_first_deferrable_poke_follows_silent_fail_and_never_fail(
    sbx: Any, conn_extra: Any, mode: str
) -> None:
    conn_extra(max_retries=0)
    sbx.control.set_faults("prefinery", {"500": 1.0}, target="list_rewards")
    sensor = make(PrefineryRewardSensor, deferrable=True, timeout=600, **{mode: True})

    if mode == "silent_fail":
        with pytest.raises(TaskDeferred):  # logged, then waits like any failed poke
            sensor.execute({})
    else:
        with pytest.raises(AirflowSkipException, match="never_fail"):
            sensor.execute({})
    assert sbx.control.count(endpoint="list_rewards") == 1


def test_the_first_deferrable_poke_without_those_options_still_fails(sbx: Any, conn_extra: Any) -> None:
    conn_extra(max_retries=0)
    sbx.control.set_faults("prefinery", {"500": 1.0}, target="list_rewards")

    with pytest.raises(PrefineryServerError):
        make(PrefineryRewardSensor, deferrable=True).execute({})
