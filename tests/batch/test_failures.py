"""Failures at scale without HTTP: the first 100 listed (XCom, log, message) and counted beyond; an error that
fails every record stops the batch."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from airflow_provider_prefinery.batch import (
    MAX_LISTED_FAILURES,
    BatchFailedError,
    BatchValidationError,
    FailureList,
    run_batch,
)
from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryInputError,
    PrefineryValidationError,
)

RECORDS = [{"email": f"user{i}@example.com", "quantity": 1, "reason": "x" * 200} for i in range(5000)]


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_failure_list_keeps_the_first_entries_and_counts_the_rest() -> None:
    failures = FailureList(limit=2)

    assert [failures.add({"index": i}) for i in range(5)] == [True, True, False, False, False]
    assert len(failures) == 5 and failures.not_listed == 3
    assert (
        failures.summary()
        == "3 more failed record(s) not listed: the report and the log hold the first 2 of 5"
    )
    assert FailureList().summary() is None


def test_five_thousand_failed_records_list_a_hundred_in_the_xcom_the_log_and_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.failures")
    caplog.set_level(logging.INFO, logger="test.failures")

    def refuse(record: dict[str, Any]) -> None:
        raise PrefineryValidationError(f"points email not found: {record['email']}", status=422, code=2803)

    result = run_batch(RECORDS, refuse, max_concurrency=8, progress_interval=0, logger=logger)

    xcom = result.to_xcom()
    assert result.counts["failed"] == 5000 and len(xcom["failed"]) == MAX_LISTED_FAILURES == 100
    assert xcom["failed_not_listed"] == 4900
    assert [e["index"] for e in xcom["failed"]] == sorted(e["index"] for e in xcom["failed"])
    assert len(json.dumps(xcom)) < 60_000  # not the 1.5 MB of 5,000 entries
    lines = _error_lines(caplog)
    assert len(lines) == 101, len(lines)  # 100 failures and one line counting the rest
    assert (
        lines[-1]
        == "batch: 4,900 more failed record(s) not listed: the report and the log hold the first 100 of 5,000"
    )
    with pytest.raises(BatchFailedError) as info:
        result.raise_for_failures()
    assert "5,000 of 5,000 batch record(s) failed" in str(info.value)
    assert "... and 4,980 more (the log and the XCom list the first 100)" in str(info.value)
    assert len(str(info.value)) < 10_000


def test_five_thousand_invalid_records_are_counted_and_a_hundred_listed() -> None:
    def invalid(record: dict[str, Any]) -> None:
        raise PrefineryInputError("email", "is not a valid e-mail address")

    result = run_batch(RECORDS, lambda r: r, validate=invalid, progress_interval=0)

    assert result.invalid_only and len(result.failed) == 100 and result.failed_not_listed == 4900
    with pytest.raises(BatchValidationError, match=r"5,000 of 5,000 batch record\(s\) are invalid") as info:
        result.raise_for_failures()
    assert len(info.value.errors) == 100


def test_an_error_that_fails_every_record_stops_the_batch_and_the_rest_are_not_sent() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def rejected(record: dict[str, Any]) -> None:
        with lock:
            calls.append(1)
        raise PrefineryAuthError(
            "the API key is wrong", status=401, method="POST", path="betas/1/points.json"
        )

    result = run_batch(
        RECORDS, rejected, max_concurrency=4, fail_on_error=False, progress_interval=0,
        stops_batch=lambda err: isinstance(err, PrefineryAuthError),
    )  # fmt: skip

    assert len(calls) <= 8  # what was already with the 4 workers when the first answer came back
    assert result.counts["failed"] == len(calls) and result.counts["not_sent"] == 5000 - len(calls)
    assert result.stopped is not None and result.stopped["status"] == 401
    assert result.to_xcom()["stopped"]["error"] == "PrefineryAuthError"
    with pytest.raises(
        BatchFailedError, match=r"stopped at record #\d+, an error that fails every record: 4,99\d not sent"
    ):
        result.raise_for_failures()  # even with fail_on_error=False: those records never got a chance


def test_without_a_stop_rule_a_per_record_error_does_not_stop_the_batch() -> None:
    calls: list[int] = []

    def missing(record: dict[str, Any]) -> None:
        calls.append(1)
        raise PrefineryValidationError("not found", status=404)

    result = run_batch(RECORDS[:50], missing, progress_interval=0, stops_batch=lambda err: False)

    assert len(calls) == 50 and result.counts["not_sent"] == 0 and result.stopped is None
