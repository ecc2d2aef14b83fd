"""Sensor tests run against the sandbox with every rate limit scaled, so polls take tenths of a second."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_prefinery.hooks.rest import _BUCKETS

SCALE = 100  # server limits and the hook's limits alike: the poll floor becomes 0.1 s


@pytest.fixture
def sbx(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox, limits scaled by SCALE, and ``prefinery_default`` with one quick retry."""
    sandbox.control.configure(scale=SCALE)
    conn = json.loads(os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"])
    conn["extra"] = {
        **conn.get("extra", {}),
        "rate_limit_scale": SCALE,
        "max_retries": 1,
        "backoff_initial": 0.05,
    }
    monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_DEFAULT", json.dumps(conn))
    _BUCKETS.clear()
    yield sandbox
    _BUCKETS.clear()


@pytest.fixture
def conn_extra(sbx: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change extras of ``prefinery_default`` for one test (e.g. ``max_retries=0``)."""

    def apply(**extra: Any) -> None:
        conn = json.loads(os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"])
        conn["extra"] = {**conn.get("extra", {}), **extra}
        monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_DEFAULT", json.dumps(conn))

    return apply
