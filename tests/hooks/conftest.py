"""Hook tests speak to a fake origin through `responses`: exact wire details, no network, no database."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses

from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.hooks.rest import _BUCKETS

ORIGIN = "https://prefinery.test"
API = f"{ORIGIN}/api/v2"
KEY = "pk_live_SECRET_7f3a9c1d2e"
BETA = 42


@pytest.fixture
def prefinery_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {"conn_type": "prefinery", "password": KEY, "host": ORIGIN, "extra": {"beta_id": BETA}}
    monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_TEST", json.dumps(conn))
    return "prefinery_test"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def hook(prefinery_conn: str, sleeps: list[float]) -> Iterator[PrefineryHook]:
    """A hook whose waits are recorded instead of slept, with fresh shared rate limiters."""
    _BUCKETS.clear()
    h = PrefineryHook(prefinery_conn)
    h.client.sleep = sleeps.append
    yield h
    h.close()
    _BUCKETS.clear()


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
