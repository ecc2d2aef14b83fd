"""run_batch and RecordsOperator without HTTP: accounting, validation, progress, concurrency, dispatch."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefinery.batch import (
    COUNT_KEYS,
    BatchFailedError,
    BatchFailedNoRetryError,
    BatchValidationError,
    Outcome,
    Progress,
    run_batch,
)
from airflow_provider_prefinery.exceptions import (
    PrefineryConnectionError,
    PrefineryInputError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.operators.base import RecordsOperator
from airflow_provider_prefinery.validation import one_of


def _positive(record: int) -> None:
    if record < 0:
        raise PrefineryInputError("n", "must not be negative")


# ---------------------------------------------------------------------------------------- run_batch
def test_run_batch_counts_every_outcome_and_keeps_results_in_input_order() -> None:
    def fn(n: int) -> Any:
        time.sleep(0.002 * (10 - n))  # later records finish first
        if n == 3:
            raise PrefineryValidationError("duplicate user", status=422, code=2310)
        if n == 4:
            return Outcome("already_done", {"n": n}, "already there")
        if n == 5:
            return Outcome("skipped", {"n": n})
        return {"n": n}

    result = run_batch(range(10), fn, max_concurrency=4, return_records=True, progress_interval=0)

    assert result.counts == {
        "total": 10, "succeeded": 7, "updated": 0, "skipped": 1, "already_done": 1,
        "failed": 1, "outcome_unknown": 0, "not_sent": 0,
    }  # fmt: skip
    assert result.results == [{"n": n} if n != 3 else None for n in range(10)]
    assert result.failed == [
        {
            "index": 3, "error": "PrefineryValidationError", "status": 422, "code": 2310,
            "message": "duplicate user", "outcome_unknown": False, "record": 3,
        }
    ]  # fmt: skip


def test_run_batch_without_return_records_holds_no_results() -> None:
    result = run_batch(range(50), lambda n: {"n": n}, progress_interval=0)

    assert result.results is None
    assert result.to_xcom() == {
        "counts": {**dict.fromkeys(COUNT_KEYS, 0), "total": 50, "succeeded": 50},
        "failed": [],
    }


def test_run_batch_reports_every_invalid_record_before_any_call() -> None:
    calls: list[int] = []

    result = run_batch([1, -2, 3, -4], calls.append, validate=_positive, progress_interval=0)

    assert calls == []
    assert result.invalid_only
    assert [(e["index"], e["field"]) for e in result.failed] == [(1, "n"), (3, "n")]
    with pytest.raises(BatchValidationError) as info:
        result.raise_for_failures()
    assert "2 of 4" in str(info.value) and "#1" in str(info.value) and "#3" in str(info.value)
    assert info.value.field == "records"
    assert [e["index"] for e in info.value.errors] == [1, 3]


def test_run_batch_without_fail_on_error_runs_the_valid_records_and_reports_the_invalid() -> None:
    calls: list[int] = []

    def fn(n: int) -> int:
        calls.append(n)
        return n

    result = run_batch([1, -2, 3], fn, validate=_positive, fail_on_error=False, progress_interval=0)

    assert sorted(calls) == [1, 3]
    assert result.counts["succeeded"] == 2 and result.counts["failed"] == 1
    assert result.failed[0]["index"] == 1 and result.failed[0]["field"] == "n"
    result.raise_for_failures()  # fail_on_error=False: no exception


def test_run_batch_never_runs_more_than_max_concurrency_at_once() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def fn(_: int) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.005)
        with lock:
            state["now"] -= 1

    run_batch(range(40), fn, max_concurrency=3, progress_interval=0)

    assert state["peak"] == 3


def test_run_batch_counts_outcome_unknown_and_a_non_idempotent_batch_fails_without_retry() -> None:
    def fn(n: int) -> int:
        if n == 1:
            raise PrefineryConnectionError("no answer", method="POST", path="p", outcome_unknown=True)
        return n

    result = run_batch(range(3), fn, progress_interval=0)

    assert result.counts["outcome_unknown"] == 1 and result.failed[0]["outcome_unknown"] is True
    with pytest.raises(BatchFailedNoRetryError) as info:
        result.raise_for_failures(retry_safe=False)
    assert isinstance(info.value, AirflowFailException)
    assert "1 with unknown outcome" in str(info.value)
    with pytest.raises(BatchFailedError) as plain:
        result.raise_for_failures(retry_safe=True)
    assert not isinstance(plain.value, AirflowFailException)


def test_run_batch_reports_unexpected_exceptions_as_failed_records() -> None:
    result = run_batch(["a", "b"], lambda r: {"x": 1}[r], progress_interval=0)

    assert result.counts["failed"] == 2
    assert {e["error"] for e in result.failed} == {"KeyError"}


def test_progress_logs_while_every_worker_is_blocked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.progress")
    caplog.set_level(logging.INFO, logger="test.progress")

    run_batch([1], lambda _: time.sleep(0.35), logger=logger, progress_interval=0.1, label="slow")

    lines = [
        r.getMessage()
        for r in caplog.records
        if "done" in r.getMessage() and "finished" not in r.getMessage()
    ]
    assert len(lines) >= 2
    assert lines[0].startswith("slow: 0/1 done, 0 failed")


def test_progress_line_has_rate_requests_per_second_and_eta() -> None:
    ticks = iter([0.0, 10.0])
    requests = iter([100, 140])
    progress = Progress(
        100, label="create_user", logger=logging.getLogger("x"), request_count=lambda: next(requests),
        clock=lambda: next(ticks),
    )  # fmt: skip
    for _ in range(20):
        progress.record(failed=False)
    progress.record(failed=True)

    assert progress.line() == (
        "create_user: 21/100 done, 1 failed, 2.1 records/s, 4.0 requests/s, ETA 38 s, elapsed 10 s"
    )


# ---------------------------------------------------------------------------------------- operators
class _Echo(RecordsOperator):
    """A records operator that echoes its records (for dispatch tests)."""

    action = "echo"
    record_fields = ("email", "size", "profile", "flag")
    json_fields = ("profile",)
    bool_fields = ("flag",)

    def __init__(
        self,
        *,
        email: str | None = None,
        size: int | None = None,
        profile: Any = None,
        flag: Any = None,
        mode: str = "a",
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"email": email, "size": size, "profile": profile, "flag": flag}, **kwargs)
        self.mode = one_of("mode", mode, ("a", "b"))

    def check_record(self, fields: dict[str, Any]) -> None:
        if "email" not in fields:
            raise PrefineryInputError("email", "is required")

    def run_record(self, fields: dict[str, Any]) -> Any:
        return fields


def test_closed_options_are_checked_in_init_naming_argument_and_values() -> None:
    with pytest.raises(PrefineryInputError, match=r"mode: unknown value 'c' \(allowed: a, b\)"):
        _Echo(task_id="t", mode="c")


def test_single_record_returns_the_value_and_batch_returns_counts() -> None:
    single = _Echo(task_id="s", email="a@example.com", size=3)
    batch = _Echo(task_id="b", records=[{"email": "a@example.com"}, {"email": "b@example.com", "size": 9}],
                  size=1, return_records=True)  # fmt: skip

    assert single.execute({}) == {"email": "a@example.com", "size": 3}
    value = batch.execute({})
    assert value["counts"]["succeeded"] == 2
    assert value["records"] == [{"email": "a@example.com", "size": 1}, {"email": "b@example.com", "size": 9}]


def test_rendered_text_is_parsed_back_for_json_and_bool_fields() -> None:
    op = _Echo(task_id="s", records="[{'email': 'a@example.com', 'profile': '{\"x\": 1}', 'flag': 'False'}]",
               return_records=True)  # fmt: skip

    assert op.execute({})["records"] == [{"email": "a@example.com", "profile": {"x": 1}, "flag": False}]


def test_wrong_types_after_rendering_name_the_field() -> None:
    bad_records = _Echo(task_id="s", records="not a list")
    not_mappings = _Echo(task_id="t", records=["a@example.com"])
    bad_json = _Echo(task_id="u", email="a@example.com", profile="{{ oops")
    unknown = _Echo(task_id="v", records=[{"email": "a@example.com", "emial": "x"}])

    with pytest.raises(PrefineryInputError, match="records: rendered to text"):
        bad_records.execute({})
    with pytest.raises(BatchValidationError, match="record: must be a mapping of fields, got str"):
        not_mappings.execute({})
    with pytest.raises(PrefineryInputError, match="profile: rendered to text"):
        bad_json.execute({})
    with pytest.raises(BatchValidationError, match=r"emial: is not a field of echo \(allowed: email, size"):
        unknown.execute({})


def test_records_rendered_to_native_none_fail_instead_of_running_the_defaults_as_one_record() -> None:
    """Under render_template_as_native_obj, an xcom_pull of a missing task renders None, not 'None'."""
    calls: list[dict[str, Any]] = []

    class _Counting(_Echo):
        def run_record(self, fields: dict[str, Any]) -> Any:
            calls.append(fields)
            return fields

    op = _Counting(task_id="n", records="{{ ti.xcom_pull('typo') }}", email="default@example.com")
    op.records = None  # what native rendering leaves behind

    with pytest.raises(PrefineryInputError, match="records: rendered to None"):
        op.execute({})
    assert calls == []


def test_a_failed_batch_pushes_its_report_before_failing() -> None:
    class _Failing(_Echo):
        def run_record(self, fields: dict[str, Any]) -> Any:
            raise PrefineryValidationError("nope", status=422, code=1)

    pushed: dict[str, Any] = {}

    class _TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    op = _Failing(task_id="f", records=[{"email": "a@example.com"}])
    with pytest.raises(BatchFailedError):
        op.execute({"ti": _TI()})  # type: ignore[typeddict-item]

    assert pushed["return_value"]["counts"]["failed"] == 1
    assert pushed["return_value"]["failed"][0]["code"] == 1


def test_an_operator_in_a_task_group_keeps_airflows_display_label() -> None:
    import datetime

    from airflow.sdk import DAG, TaskGroup

    with DAG("labels", schedule=None, start_date=datetime.datetime(2024, 1, 1)), TaskGroup("rewards"):
        op = _Echo(task_id="award", email="a@example.com")

    assert op.task_id == "rewards.award" and op.label == "award"  # what the graph view shows
    assert op.batch_label == "echo"
