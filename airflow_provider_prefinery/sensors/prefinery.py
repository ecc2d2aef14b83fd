"""Sensors over Prefinery's list endpoints: wait for a user, for rewards, for a suppression (or its end).

Each sensor runs in any of Airflow's three ways: ``poke`` (holds a worker slot and sleeps), ``reschedule``
(frees the slot between pokes) and ``deferrable=True`` (one synchronous check, then hands off to
:class:`~airflow_provider_prefinery.triggers.prefinery.PrefinerySensorTrigger` on the triggerer). What
"done" means is decided by one function per sensor in :mod:`airflow_provider_prefinery.polling.checks`,
shared by ``poke()`` and the trigger.

Poll interval rule (:mod:`airflow_provider_prefinery.polling.pacing`): a ``poke_interval`` below what
Prefinery's documented LIST limit allows one sensor (a 1/10 share, so ten sensors on a project stay within
the limit: 10 s for users, rewards and suppressions at the documented 60/min) is raised to that minimum
with a warning; a poke that read several pages waits the minimum per request. A 429 that outlives the REST
core's retries does not fail the sensor: the next poke waits twice as long per 429 in a row (at least the
server's Retry-After).

Cost: a check stops listing as soon as its answer is known (the user, the suppression, the ``min_count``-th
reward), but until then it lists what its filters match: a reward sensor without ``email`` reads every
matching reward page of the project on each poll, O(rewards) requests. Big projects wait on webhooks.

``email`` is the user's e-mail the sensor waits on, never Airflow's alert address
(:mod:`airflow_provider_prefinery.shadowed_args`): it is kept as ``user_email``, and ``default_args["email"]``
stays ``BaseOperator.email``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_prefinery.exceptions import PrefineryRateLimitError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.polling.checks import CHECKS, run_check
from airflow_provider_prefinery.polling.pacing import Pacer
from airflow_provider_prefinery.polling.sensor_events import EventStatus, validate_event
from airflow_provider_prefinery.shadowed_args import ShadowedArgs
from airflow_provider_prefinery.triggers.prefinery import PrefinerySensorTrigger

# Extra seconds Airflow's own deferral timeout gives the trigger past its deadline, so the trigger's
# clearer timeout event normally arrives first.
DEFERRAL_GRACE = 60.0


class PrefineryBaseSensor(ShadowedArgs, BaseSensorOperator):
    """What the three sensors share: the connection, pacing, deferral and the trigger's verdict.

    :param prefinery_conn_id: the Prefinery connection (templated).
    :param beta_id: the project id, overriding the connection's ``beta_id`` (templated).
    :param deferrable: wait on the triggerer instead of a worker (default: ``[operators]
        default_deferrable``).
    """

    check: ClassVar[str] = ""
    criteria_fields: ClassVar[tuple[str, ...]] = ()
    """The check's arguments: the sensor's attributes of the same names (see ``attribute_of``), templated."""
    attribute_of: ClassVar[Mapping[str, str]] = {"email": "user_email"}
    """Arguments kept under another attribute: ``email`` is ``BaseOperator``'s alert address."""
    shadowed_args = frozenset({"email"})
    template_fields: Sequence[str] = ("prefinery_conn_id", "beta_id")
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        beta_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id
        self.deferrable = deferrable
        self._pacer: Pacer | None = None

    def criteria(self) -> dict[str, Any]:
        """The check's keyword arguments, from the rendered fields."""
        return {name: getattr(self, self.attribute_of.get(name, name)) for name in self.criteria_fields}

    def check_arguments(self) -> None:
        """Check the arguments known at DAG parse time, so a typo fails the import, not a run hours later.

        :raises PrefineryInputError: naming the argument.
        """
        CHECKS[self.check].validate(self.criteria(), literal_only=True)

    @cached_property
    def hook(self) -> PrefineryHook:
        return PrefineryHook(self.prefinery_conn_id, beta_id=self.beta_id)

    @property
    def pacer(self) -> Pacer:
        """The poll pacing, built at run time: the floor depends on the connection's rate_limit_scale."""
        if self._pacer is None:
            self._pacer = Pacer.for_endpoint(
                CHECKS[self.check].action,
                self.poke_interval,
                scale=self.hook.rate_limit_scale,
                logger=self.log,
            )
            self.poke_interval = self._pacer.interval
        return self._pacer

    def execute(self, context: Context) -> Any:
        """Poke or reschedule as usual; when deferrable, check once here, then defer to the trigger."""
        started = time.time()
        self.pacer  # noqa: B018 - raise a too-short interval before the first poke, with its warning
        if not self.deferrable:
            return super().execute(context)
        first = self._first_poke(context)
        if first:
            return first.xcom_value
        self.defer(
            trigger=PrefinerySensorTrigger(
                check=self.check,
                criteria=self.criteria(),
                end_time=started + self.timeout,
                poll_interval=self.pacer.interval,
                prefinery_conn_id=self.prefinery_conn_id,
                beta_id=self.beta_id,
                initial_wait=self.poke_interval,  # it has just checked: wait what that check asked
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + self.pacer.interval + DEFERRAL_GRACE),
        )

    def _first_poke(self, context: Context) -> PokeReturnValue:
        """The deferrable path's check on the worker, under the rules ``BaseSensorOperator.execute`` applies
        to every poke: ``soft_fail``/``never_fail`` skip, ``silent_fail`` logs and waits (3.3.2's loop)."""
        try:
            return self.poke(context)
        except (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException) as err:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(
                    f"Skipping: {'soft' if self.soft_fail else 'never'}_fail is set"
                ) from err
            raise
        except AirflowSkipException:
            raise
        except Exception as err:
            if self.silent_fail:
                self.log.error("Sensor poke failed: \n %s", traceback.format_exc())
                return PokeReturnValue(False)
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from err
            raise

    def poke(self, context: Context) -> PokeReturnValue:
        """Run the check once; a 429 after the core's retries means "not yet", with a longer wait."""
        try:
            verdict, requests = run_check(self.hook, self.check, self.criteria())
        except PrefineryRateLimitError as err:
            self.poke_interval = self.pacer.after_rate_limit(err)
            self.log.warning(
                "Prefinery rate limit (HTTP 429) after retries; next poke in %.3g s", self.poke_interval
            )
            return PokeReturnValue(False)
        self.poke_interval = self.pacer.after_poll(requests)
        self.log.info("Prefinery %s check: %s", self.check, verdict.detail)
        return PokeReturnValue(verdict.done, verdict.value)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume from the trigger: return the value on success, fail clearly on timeout or error.

        :raises AirflowSensorTimeout: the deadline passed before the condition held.
        :raises AirflowException: the trigger reported an error, or sent a malformed event.
        """
        checked = validate_event(event)
        status = checked["status"]
        if status == EventStatus.SUCCESS.value:
            self.log.info("Prefinery %s check: %s", self.check, checked["message"])
            return checked.get("value")
        if status == EventStatus.TIMEOUT.value:
            raise AirflowSensorTimeout(f"{self.task_id}: {checked['message']}")
        raise AirflowException(f"{self.task_id}: Prefinery {self.check} check failed: {checked['message']}")


class PrefineryUserSensor(PrefineryBaseSensor):
    """Wait until a user exists, optionally in one of some statuses.

    Each poke is one LIST users call filtered by exact e-mail. The user object goes to XCom.

    :param email: the user's e-mail address (templated).
    :param status: None (any status), one status or a list of them (templated): ``imported,
        unconfirmed, applied, rejected, invited, active, idle, suspended``.
    """

    check = "user"
    criteria_fields = ("email", "status")
    template_fields: Sequence[str] = (*PrefineryBaseSensor.template_fields, "user_email", "status")

    def __init__(self, *, email: str, status: str | list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_email = email
        self.status = status
        self.check_arguments()


class PrefineryRewardSensor(PrefineryBaseSensor):
    """Wait until at least ``min_count`` rewards match; push the first ``min_count`` (a list, at most
    :data:`~airflow_provider_prefinery.polling.checks.MAX_VALUE_ITEMS` = 100) to XCom for ``.expand()``.

    Each poke lists the rewards with ``status`` (and ``email``) through the API's filters and keeps those
    with ``descriptor`` here, page by page, and stops at the ``min_count``-th match: a poke that is not
    done yet reads every matching page, so filter by ``email`` on big projects (or use webhooks).

    :param status: ``earned`` (default), ``delivered`` or ``revoked`` (templated).
    :param email: only this user's rewards (templated).
    :param descriptor: only rewards with this descriptor (templated).
    :param min_count: how many matching rewards are enough (templated).
    """

    check = "rewards"
    criteria_fields = ("status", "email", "descriptor", "min_count")
    template_fields: Sequence[str] = (
        *PrefineryBaseSensor.template_fields, "status", "user_email", "descriptor", "min_count",
    )  # fmt: skip

    def __init__(
        self,
        *,
        status: str = "earned",
        email: str | None = None,
        descriptor: str | None = None,
        min_count: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.status = status
        self.user_email = email
        self.descriptor = descriptor
        self.min_count = min_count
        self.check_arguments()


class PrefinerySuppressionSensor(PrefineryBaseSensor):
    """Wait until an e-mail is suppressed (``suppressed=True``) or is no longer (``suppressed=False``).

    Each poke is one LIST suppressions call filtered by e-mail. When waiting for a suppression, the
    suppression object goes to XCom.

    :param email: the e-mail address (templated).
    :param suppressed: the state to wait for (templated; ``"true"``/``"false"`` strings are accepted).
    """

    check = "suppression"
    criteria_fields = ("email", "suppressed")
    template_fields: Sequence[str] = (*PrefineryBaseSensor.template_fields, "user_email", "suppressed")

    def __init__(self, *, email: str, suppressed: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_email = email
        self.suppressed = suppressed
        self.check_arguments()
