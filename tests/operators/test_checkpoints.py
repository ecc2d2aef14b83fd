"""Operators with a task state store (in memory, shaped like Airflow's) against the sandbox: a retry sends
only what no try sent, names what it cannot know, refuses a different batch; without a store, today's rule.

The SIGKILL-and-retry proof under the real task runner is ``tests/engine/test_batch_crash.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from airflow_provider_prefinery.batch import (
    BatchFailedError,
    BatchFailedNoRetryError,
    CheckpointMismatchError,
    NoRetryError,
)
from airflow_provider_prefinery.batch.checkpoint import decode_marks
from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.operators.base import CHECKPOINT_KEY
from airflow_provider_prefinery.operators.piggy import PiggyCreateAutomationRunOperator
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCreatePointsOperator,
    PrefineryUpdateUserOperator,
)
from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID
from tests.batch.stores import MemoryStore

pytestmark = pytest.mark.integration


class _TI:
    def __init__(self, try_number: int) -> None:
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def sbx(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox, limits lifted, and ``prefinery_once``/``piggy_once``: connections that never retry."""
    _BUCKETS.clear()
    sandbox.control.configure(scale=1000)
    for name, var in (
        ("prefinery", "AIRFLOW_CONN_PREFINERY_DEFAULT"),
        ("piggy", "AIRFLOW_CONN_PIGGY_DEFAULT"),
    ):
        conn = json.loads(sandbox.connections()[var])
        conn["extra"] = {**conn.get("extra", {}), "max_retries": 0}
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_ONCE", json.dumps(conn))
    return sandbox


def _context(store: MemoryStore | None, try_number: int) -> Any:
    context: dict[str, Any] = {"ti": _TI(try_number)}
    if store is not None:
        context["task_state_store"] = store
    return context


def _points_records(sbx: Any, count: int) -> list[dict[str, Any]]:
    users = sbx.control.users(status="active")[:count]
    assert len(users) == count
    return [{"email": u["email"], "quantity": 1, "reason": f"record-{i}"} for i, u in enumerate(users)]


def _applied(sbx: Any) -> Counter[str]:
    """How many points entries each record's reason has in the sandbox: the truth about what was applied."""
    return Counter(
        p["reason"] for p in sbx.control.points() if str(p.get("reason", "")).startswith("record-")
    )


def test_a_retry_sends_only_what_no_try_sent_and_names_the_unknown_ones(sbx: Any) -> None:
    records = _points_records(sbx, 40)
    store = MemoryStore()
    sbx.control.configure(fault_seed=3)
    sbx.control.set_faults("prefinery", {"503": 0.25, "500_after_write": 0.1}, target="create_points")
    first = _context(store, 1)
    op = PrefineryCreatePointsOperator(task_id="p", records=records, prefinery_conn_id="prefinery_once")

    with pytest.raises(BatchFailedError) as info:
        op.execute(first)
    assert not isinstance(info.value, BatchFailedNoRetryError)  # a checkpoint makes the retry safe
    report1 = first["ti"].pushed["return_value"]
    unknown1 = {e["index"] for e in report1["failed"] if e["outcome_unknown"]}
    assert unknown1 and report1["counts"]["failed"] > len(unknown1)  # both kinds of failure happened

    sbx.control.reset_behaviour()
    sbx.control.clear_requests()
    second = _context(store, 2)
    with pytest.raises(BatchFailedNoRetryError, match="a retry would send nothing"):
        PrefineryCreatePointsOperator(
            task_id="p", records=records, prefinery_conn_id="prefinery_once"
        ).execute(second)

    report2 = second["ti"].pushed["return_value"]
    resent = report1["counts"]["failed"] - len(unknown1)
    assert sbx.control.count(api="prefinery", endpoint="create_points") == resent
    assert {e["index"] for e in report2["failed"]} == unknown1
    assert report2["counts"]["succeeded"] == 40 - len(unknown1)
    assert report2["resumed"] == {
        "from_try": 1,
        "done": 40 - report1["counts"]["failed"],
        "outcome_unknown": len(unknown1),
    }
    applied = _applied(sbx)
    assert max(applied.values()) == 1, "a record was applied twice"
    assert set(applied) == {r["reason"] for r in records}  # 500-after-write ones were applied once, too
    assert set(decode_marks(store.values[CHECKPOINT_KEY]["marks"])) == {"s", "?"}


def test_different_records_on_the_retry_send_nothing_and_say_why(sbx: Any) -> None:
    records = _points_records(sbx, 3)
    store = MemoryStore()
    PrefineryCreatePointsOperator(task_id="p", records=records).execute(_context(store, 1))
    sbx.control.clear_requests()

    changed = [{**records[0], "quantity": 2}, *records[1:]]
    with pytest.raises(CheckpointMismatchError, match="the records differ from those of try 1"):
        PrefineryCreatePointsOperator(task_id="p", records=changed).execute(_context(store, 2))

    assert sbx.control.count(api="prefinery") == 0


def test_an_idempotent_batch_skips_on_the_retry_what_it_did(sbx: Any) -> None:
    users = sbx.control.users()[:6]
    records = [{"user_id": u["id"], "profile": {"first_name": "Ada"}} for u in users]
    records.insert(3, {"user_id": 999999, "profile": {"first_name": "Ada"}})
    store = MemoryStore()
    with pytest.raises(BatchFailedError):
        PrefineryUpdateUserOperator(task_id="u", records=records).execute(_context(store, 1))
    sbx.control.clear_requests()

    with pytest.raises(BatchFailedError):
        PrefineryUpdateUserOperator(task_id="u", records=records).execute(_context(store, 2))

    assert sbx.control.count(api="prefinery", endpoint="update_user") == 1  # only the failed one, again


def test_without_a_state_store_a_log_line_says_so_and_todays_rule_holds(
    sbx: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _points_records(sbx, 4)
    sbx.control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_points")

    with pytest.raises(BatchFailedNoRetryError, match="no checkpoint"):
        PrefineryCreatePointsOperator(task_id="p", records=records).execute(_context(None, 1))

    out = capsys.readouterr().out
    assert (
        "create_points: no task_state_store (Airflow < 3.3, or a context without one): no checkpoint" in out
    )


def test_a_single_record_that_may_have_been_sent_is_never_sent_again(sbx: Any) -> None:
    (record,) = _points_records(sbx, 1)
    store = MemoryStore()
    sbx.control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_points")
    with pytest.raises(NoRetryError):
        PrefineryCreatePointsOperator(task_id="p", prefinery_conn_id="prefinery_once", **record).execute(
            _context(store, 1)
        )
    assert store.writes[0]["marks"] == "1c"  # claimed before the request went out
    sbx.control.reset_behaviour()
    sbx.control.clear_requests()

    with pytest.raises(NoRetryError, match=r"try 1: .*HTTP 500.*\(not sent again\)"):
        PrefineryCreatePointsOperator(task_id="p", **record).execute(_context(store, 2))

    assert sbx.control.count(api="prefinery") == 0
    assert _applied(sbx) == {"record-0": 1}


def test_a_single_record_applied_by_an_earlier_try_returns_its_answer_without_a_request(sbx: Any) -> None:
    (record,) = _points_records(sbx, 1)
    store = MemoryStore()
    answer = PrefineryCreatePointsOperator(task_id="p", **record).execute(_context(store, 1))
    sbx.control.clear_requests()

    again = PrefineryCreatePointsOperator(task_id="p", **record).execute(_context(store, 2))

    assert again == answer and sbx.control.count(api="prefinery") == 0
    assert _applied(sbx) == {"record-0": 1}


def test_a_piggy_batch_resumes_from_its_checkpoint(sbx: Any) -> None:
    contacts = sbx.control.piggy_contacts()[:12]
    records = [{"contact_uuid": c["uuid"], "data": {"n": str(i)}} for i, c in enumerate(contacts)]
    store = MemoryStore()
    sbx.control.configure(fault_seed=5)
    sbx.control.set_faults("piggy", {"503": 0.4}, target="create_automation_run")
    op = PiggyCreateAutomationRunOperator(
        task_id="r", records=records, automation_uuid=DEMO_AUTOMATION_UUID, piggy_conn_id="piggy_once"
    )
    with pytest.raises(BatchFailedError) as info:
        op.execute(_context(store, 1))
    assert not isinstance(info.value, BatchFailedNoRetryError)
    sbx.control.reset_behaviour()

    PiggyCreateAutomationRunOperator(
        task_id="r", records=records, automation_uuid=DEMO_AUTOMATION_UUID, piggy_conn_id="piggy_once"
    ).execute(_context(store, 2))

    runs = Counter(json.dumps(run.get("data"), sort_keys=True) for run in sbx.control.piggy_runs())
    assert sorted(runs.values()) == [1] * 12  # every record's run exactly once over the two tries
