"""The Prefinery triggers, under the import path users type and Airflow's DB stores for them.

* :class:`PrefinerySensorTrigger` (:mod:`.sensor`): behind the deferrable sensors.
* :class:`PrefineryEventTrigger` (:mod:`.event`): one asset event per new user or reward, for
  ``AssetWatcher``.

Both serialise under this module's path (:data:`~airflow_provider_prefinery.triggers.base.PUBLIC_MODULE`),
so a stored trigger keeps importing whichever module holds its class. What the sensors and triggers share
(checks, pacing, event statuses, seen ids) lives below both, in :mod:`airflow_provider_prefinery.polling`.
"""

from __future__ import annotations

from airflow_provider_prefinery.triggers.event import PrefineryEventTrigger
from airflow_provider_prefinery.triggers.sensor import PrefinerySensorTrigger

__all__ = ["PrefineryEventTrigger", "PrefinerySensorTrigger"]
