"""Fixtures for the sync's integration tests: the session sandbox, with limits scaled so the documented
LIST limit (60/min) does not make every index rebuild take seconds, and an in-memory index store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.sandbox.testing import SandboxServer
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex
from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import MailchimpToPrefineryOperator

SCALE = 100  # every limit, on both sides, times this


@pytest.fixture
def sbx(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """The sandbox (reset to the demo seed) with its limits, and the client's, scaled by ``SCALE``."""
    sandbox.control.configure(scale=SCALE)
    conns = sandbox.connections()
    prefinery = json.loads(conns["AIRFLOW_CONN_PREFINERY_DEFAULT"])
    prefinery["extra"].update(rate_limit_scale=SCALE, max_retries=1, backoff_initial=0.05)
    monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_DEFAULT", json.dumps(prefinery))
    _BUCKETS.clear()
    yield sandbox
    _BUCKETS.clear()


class MemoryStore:
    """Keeps the encoded index between runs like the Variable does (the DAG tests use the real one)."""

    name = "memory"

    def __init__(self) -> None:
        self.text: str | None = None
        self.saves = 0

    def load(self) -> IdIndex | None:
        return IdIndex.decode(self.text) if self.text else None

    def save(self, index: IdIndex) -> None:
        self.text = index.for_saving(self.load()).encode()
        self.saves += 1


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sync(store: MemoryStore):
    """Build and run the operator with ``store`` as its index; return its report."""

    def _run(context: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        class Operator(MailchimpToPrefineryOperator):
            def index_store(self, beta_id: int) -> Any:
                return store

        kwargs.setdefault("progress_interval", 0)
        op = Operator(task_id="sync", **kwargs)
        return op.execute(context or {})

    return _run


EPOCH = "1970-01-01T00:00:00Z"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
