"""Batches against the sandbox that meet an error failing every record (401, 402, 403, a missing project)
stop at once; a 404 for one record does not stop them; 5,000 failures make a compact report and log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_prefinery.batch import BatchFailedError
from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCreatePointsOperator,
    PrefineryDeleteUserOperator,
    PrefineryUpdateUserOperator,
)

pytestmark = pytest.mark.integration
MISSING_BETA_ID = 9999


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def sbx(sandbox: Any) -> Any:
    _BUCKETS.clear()
    sandbox.control.configure(scale=1000)
    return sandbox


@pytest.fixture
def conn_with_key(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """A Prefinery connection to the sandbox with this API key (no retries: each answer is final)."""

    def make(key: str) -> str:
        conn = {"conn_type": "prefinery", "password": key, "host": sandbox.url,
                "extra": {"beta_id": sandbox.beta_id, "max_retries": 0}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_KEYED", json.dumps(conn))
        return "prefinery_keyed"

    return make


def _points(records: int, **kwargs: Any) -> PrefineryCreatePointsOperator:
    rows = [{"email": f"nobody{i}@example.org", "quantity": 1, "reason": "r" * 200} for i in range(records)]
    return PrefineryCreatePointsOperator(task_id="points", records=rows, **kwargs)


def _error_lines(out: str, label: str) -> list[str]:
    """The task log's error lines of this batch (Airflow's task logger writes to stdout, not to caplog)."""
    return [line for line in out.splitlines() if "[error" in line and f"{label}:" in line]


def _stopped_report(op: Any) -> dict[str, Any]:
    ti = _TI()
    with pytest.raises(BatchFailedError, match="an error that fails every record") as info:
        op.execute({"ti": ti})
    assert len(str(info.value)) < 10_000
    return ti.pushed["return_value"]


@pytest.mark.parametrize(
    ("key_setup", "status"),
    [
        (None, 401),  # a key the server does not know
        ({"api_access": False}, 402),  # the account's plan has no API access
        ({"permissions": ["users:read"]}, 403),  # the key may not create points
    ],
)
def test_a_rejected_key_stops_five_thousand_records_after_a_few_requests(
    sbx: Any, conn_with_key: Callable[[str], str], key_setup: dict[str, Any] | None, status: int,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    key = f"sbx-key-{status}"
    if key_setup is not None:
        sbx.control.set_key(key, **key_setup)
    report = _stopped_report(
        _points(5000, prefinery_conn_id=conn_with_key(key), max_concurrency=4, fail_on_error=False)
    )

    requests = sbx.control.count(api="prefinery", endpoint="create_points")
    assert 1 <= requests <= 8, requests  # at most what the four workers held when the first answer came
    assert report["stopped"]["status"] == status
    assert report["counts"]["failed"] == requests and report["counts"]["not_sent"] == 5000 - requests
    assert len(json.dumps(report)) < 10_000
    lines = _error_lines(capsys.readouterr().out, "create_points")
    assert len(lines) <= 9  # the few failures in flight, and one line saying why the batch stopped
    assert sum("stopping at record" in line and "fails every record" in line for line in lines) == 1


def test_a_missing_project_stops_the_batch_at_its_first_404(sbx: Any) -> None:
    report = _stopped_report(_points(500, beta_id=MISSING_BETA_ID, max_concurrency=2))

    assert sbx.control.count(api="prefinery", endpoint="create_points") <= 4
    assert report["stopped"]["status"] == 404 and report["counts"]["not_sent"] >= 496


def test_deleting_users_of_a_missing_project_is_not_already_done_but_stops(sbx: Any) -> None:
    op = PrefineryDeleteUserOperator(
        task_id="d", records=[{"user_id": 5001 + i} for i in range(200)], beta_id=MISSING_BETA_ID
    )

    report = _stopped_report(op)

    assert report["counts"]["already_done"] == 0 and report["stopped"]["status"] == 404
    assert sbx.control.count(api="prefinery", endpoint="delete_user") <= 8
    assert sbx.control.count(api="prefinery", endpoint="get_project") == 1  # asked once: "is it the project?"


def test_a_404_for_one_record_fails_that_record_and_the_batch_goes_on(sbx: Any) -> None:
    users = sbx.control.users()[:3]
    profile = {"first_name": "Ada"}
    records = [{"user_id": u["id"], "profile": profile} for u in users] + [
        {"user_id": 999999, "profile": profile}
    ]
    ti = _TI()

    with pytest.raises(BatchFailedError) as info:
        PrefineryUpdateUserOperator(task_id="u", records=records * 5, max_concurrency=2).execute({"ti": ti})

    report = ti.pushed["return_value"]
    assert "stopped" not in report and "fails every record" not in str(info.value)
    assert report["counts"]["succeeded"] == 15 and report["counts"]["failed"] == 5
    assert report["counts"]["not_sent"] == 0
    assert sbx.control.count(api="prefinery", endpoint="update_user") == 20
    assert sbx.control.count(api="prefinery", endpoint="get_project") == 1


def test_five_thousand_refused_records_make_a_compact_xcom_and_a_hundred_log_lines(
    sbx: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ti = _TI()

    with pytest.raises(BatchFailedError) as info:
        _points(5000, max_concurrency=8).execute({"ti": ti})  # every e-mail unknown: 2803, per record

    report = ti.pushed["return_value"]
    assert sbx.control.count(api="prefinery", endpoint="create_points") == 5000  # a per-record error: no stop
    assert report["counts"]["failed"] == 5000 and len(report["failed"]) == 100
    assert report["failed_not_listed"] == 4900
    assert len(json.dumps(report)) < 60_000  # 5,000 entries would be about 1.5 MB
    errors = _error_lines(capsys.readouterr().out, "create_points")
    assert len(errors) == 101 and "4,900 more failed record(s) not listed" in errors[-1]
    assert len(str(info.value)) < 10_000
