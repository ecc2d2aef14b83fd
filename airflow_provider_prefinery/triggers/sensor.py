"""The trigger behind the deferrable Prefinery sensors: the sensor's own check, polled on the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_prefinery.exceptions import PrefineryRateLimitError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.polling.checks import get_check, run_check
from airflow_provider_prefinery.polling.pacing import Pacer
from airflow_provider_prefinery.polling.sensor_events import EventStatus, sensor_event
from airflow_provider_prefinery.triggers.base import close_hook, error_summary, load_hook, serialized


class PrefinerySensorTrigger(BaseTrigger):
    """Poll one of the sensors' checks asynchronously until it is done or ``end_time`` passes.

    Yields exactly one event: ``success`` (with ``value``), ``timeout``, or ``error`` (with ``error``);
    it never raises. A 429 lengthens the wait rather than ending the wait.

    :param check: a key of :data:`~airflow_provider_prefinery.polling.checks.CHECKS` (``user``,
        ``rewards``, ``suppression``).
    :param criteria: the check's keyword arguments (already rendered by the sensor).
    :param end_time: the deadline as a Unix timestamp: the sensor's start plus its timeout.
    :param poll_interval: seconds between polls (raised to the pacing floor if lower).
    :param prefinery_conn_id: the Prefinery connection.
    :param beta_id: the project id (default: the connection's).
    :param initial_wait: seconds before the first poll (a sensor that has just checked passes its
        interval, so deferring does not cost an extra request).
    """

    def __init__(
        self,
        check: str,
        criteria: dict[str, Any],
        end_time: float,
        poll_interval: float = 60.0,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        beta_id: int | str | None = None,
        initial_wait: float = 0.0,
    ) -> None:
        super().__init__()
        self.check = check
        self.criteria = dict(criteria)
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id
        self.initial_wait = float(initial_wait)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(
            self,
            "check", "criteria", "end_time", "poll_interval", "prefinery_conn_id", "beta_id", "initial_wait",
        )  # fmt: skip

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook: PrefineryHook | None = None
        try:
            hook = await load_hook(self.prefinery_conn_id, self.beta_id)
            event = await self._wait(hook)
        except Exception as err:  # an event, never an exception: the task decides how to fail
            error = error_summary(hook, err)
            event = sensor_event(EventStatus.ERROR, error["message"], error=error)
        finally:
            close_hook(hook)
        yield event

    async def _wait(self, hook: PrefineryHook) -> TriggerEvent:
        pacer = Pacer.for_endpoint(  # no I/O: the connection is loaded
            get_check(self.check).action, self.poll_interval, scale=hook.rate_limit_scale, logger=self.log
        )
        last = "no poll finished"
        await asyncio.sleep(max(0.0, min(self.initial_wait, self.end_time - time.time())))
        while True:
            try:
                verdict, requests = await asyncio.to_thread(run_check, hook, self.check, self.criteria)
            except PrefineryRateLimitError as err:
                wait = pacer.after_rate_limit(err)
                last = f"rate limited (HTTP 429); next poll in {wait:.3g} s"
                self.log.warning("Prefinery %s check: %s", self.check, last)
            else:
                if verdict.done:
                    return sensor_event(EventStatus.SUCCESS, verdict.detail, value=verdict.value)
                wait, last = pacer.after_poll(requests), verdict.detail
                self.log.info("Prefinery %s check not met yet: %s", self.check, last)
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return sensor_event(
                    EventStatus.TIMEOUT, f"Prefinery {self.check} check not met by the deadline: {last}"
                )
            await asyncio.sleep(min(wait, remaining))
