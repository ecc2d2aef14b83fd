"""Load: ten batch operators at once, in threads, on one connection, stay within its write rate limit.

The connection's ``write_rate_limit`` (requests/s) is enforced by one process-wide token bucket per key and
host, shared by every hook on that connection. The sandbox enforces the same limit server-side (a sliding
window answering 429), and its request log's timestamps are measured here: no 1-second window may hold
more requests than the limit, and the server never has to refuse one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCheckinUserOperator,
    PrefineryCreatePointsOperator,
    PrefineryCreateSuppressionOperator,
    PrefineryCreateUserOperator,
    PrefineryTriggerRewardsOperator,
    PrefineryUpdateUserOperator,
)
from tests.reliability.conftest import write_artifact
from tests.reliability.soak import RecordingTI

pytestmark = pytest.mark.integration

LIMIT = 25  # writes per second, the connection's and the sandbox's
OPERATORS = 10
RECORDS = 10
CONN_ID = "prefinery_load"


def max_in_window(stamps: Sequence[float], window: float) -> int:
    """The most timestamps in any half-open interval ``[t, t + window)``: a sliding-window count."""
    ordered = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_max_in_window_counts_a_sliding_window() -> None:
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 3.0], 1.0) == 4  # 0.5, 0.99, 1.0, 1.2
    assert max_in_window([], 1.0) == 0


@pytest.fixture
def load_sandbox(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    conn = {
        "conn_type": "prefinery",
        "password": sandbox.api_key,
        "host": sandbox.url,
        "extra": {"beta_id": sandbox.beta_id, "write_rate_limit": LIMIT},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    sandbox.control.set_rate_limit("prefinery", "write", LIMIT, 1.0)
    return sandbox


def _operators(control: Any) -> list[Any]:
    """Ten batches of ten writes over six kinds of write: all count against the one write limit."""
    users = control.users(status="active")
    emails = [u["email"] for u in users]
    common = {"prefinery_conn_id": CONN_ID, "progress_interval": 0, "max_concurrency": 4}
    ops: list[Any] = []
    for n in range(OPERATORS):
        kind = n % 6
        if kind == 0:
            records = [{"email": f"load{n}.{i}@example.org"} for i in range(RECORDS)]
            ops.append(PrefineryCreateUserOperator(task_id=f"create{n}", records=records, **common))
        elif kind == 1:
            records = [{"user_id": u["id"], "profile": {"custom_var2": f"load{n}"}} for u in users[:RECORDS]]
            ops.append(PrefineryUpdateUserOperator(task_id=f"update{n}", records=records, **common))
        elif kind == 2:
            records = [{"email": e} for e in emails[:RECORDS]]
            ops.append(PrefineryCheckinUserOperator(task_id=f"checkin{n}", records=records, **common))
        elif kind == 3:
            records = [{"email": f"load{n}.{i}@blocked.example.org"} for i in range(RECORDS)]
            ops.append(PrefineryCreateSuppressionOperator(task_id=f"suppress{n}", records=records, **common))
        elif kind == 4:
            records = [{"email": e, "quantity": 1, "reason": f"load{n}"} for e in emails[:RECORDS]]
            ops.append(PrefineryCreatePointsOperator(task_id=f"points{n}", records=records, **common))
        else:
            records = [{"email": e, "event": f"load{n}"} for e in emails[:RECORDS]]
            ops.append(PrefineryTriggerRewardsOperator(task_id=f"trigger{n}", records=records, **common))
    return ops


def test_ten_batch_operators_sharing_a_connection_stay_within_its_write_limit(load_sandbox: Any) -> None:
    control = load_sandbox.control
    ops = _operators(control)
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(op: Any) -> None:
        try:
            results[op.task_id] = op.execute({"ti": RecordingTI()})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(op,)) for op in ops]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started

    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    assert all(r["counts"]["failed"] == 0 for r in results.values()) and len(results) == OPERATORS
    writes = [e for e in control.requests(api="prefinery") if e["method"] != "GET"]
    assert len(writes) == OPERATORS * RECORDS  # nothing refused, nothing retried
    assert control.stats()["rate_limited"] == 0
    busiest = max_in_window([e["time"] for e in writes], 1.0)
    assert busiest <= LIMIT, f"{busiest} writes in one second; the limit is {LIMIT}"
    # The limit, not the threads, set the pace: 100 writes at 25/s take about 4 s, not a fraction of one.
    assert elapsed >= (len(writes) - LIMIT) / LIMIT
    write_artifact(
        "load.md",
        f"{OPERATORS} batch operators x {RECORDS} writes in threads on one connection, write_rate_limit "
        f"{LIMIT}/s: all finished in {elapsed:.1f} s; busiest 1-s window {busiest} writes; server 429s 0.\n",
    )
