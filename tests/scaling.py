"""Rate limits scaled for tests: the sandbox's and the Prefinery hook's alike, so polls and paced writes
take tenths of a second instead of the documented seconds. Shared by the fixtures in ``tests/conftest.py``
and ``tests/dags/conftest.py``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

SCALE = 100  # every rate limit x100: a 10 s poll floor becomes 0.1 s
PREFINERY_CONN_VAR = "AIRFLOW_CONN_PREFINERY_DEFAULT"


def set_prefinery_extra(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Merge ``extra`` into the extras of ``prefinery_default`` for one test (undone by ``monkeypatch``)."""
    conn = json.loads(os.environ[PREFINERY_CONN_VAR])
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv(PREFINERY_CONN_VAR, json.dumps(conn))


def scaled_sandbox(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, scale: int = SCALE, **extra: Any
) -> Iterator[Any]:
    """Yield the sandbox with every limit scaled by ``scale``, and ``extra`` set on ``prefinery_default``.

    The shared rate-limit buckets are emptied before and after, so no test inherits another's pacing.
    """
    # Imported here: tests/conftest.py imports this module before it points Airflow at a throw-away home.
    from airflow_provider_prefinery.hooks.rest import _BUCKETS

    sandbox.control.configure(scale=scale)
    set_prefinery_extra(monkeypatch, rate_limit_scale=scale, **extra)
    _BUCKETS.clear()
    yield sandbox
    _BUCKETS.clear()
