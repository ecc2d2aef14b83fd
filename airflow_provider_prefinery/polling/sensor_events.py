"""The closed set of statuses a sensor trigger's event carries: set by the trigger, checked by the sensor."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent


class EventStatus(str, Enum):
    """The only statuses a sensor trigger's event may carry."""

    SUCCESS = "success"
    TIMEOUT = "timeout"
    ERROR = "error"


EVENT_STATUSES = frozenset(status.value for status in EventStatus)


def sensor_event(status: EventStatus, message: str, **fields: Any) -> TriggerEvent:
    """Build a sensor trigger's event: ``{"status", "message", ...}`` with JSON-only values."""
    return TriggerEvent({"status": status.value, "message": message, **fields})


def validate_event(event: Any) -> dict[str, Any]:
    """Check a sensor trigger's event before it is used.

    :return: the event as a dict with a known ``status`` and a ``message``.
    :raises AirflowException: the event is not a mapping, or its status is not in :class:`EventStatus`.
    """
    if not isinstance(event, Mapping):
        raise AirflowException(
            f"Prefinery sensor resumed without a trigger event (got {type(event).__name__})"
        )
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AirflowException(
            f"Prefinery sensor got an event with unknown status {status!r} "
            f"(expected one of {', '.join(sorted(EVENT_STATUSES))})"
        )
    return {"message": "", **event}
