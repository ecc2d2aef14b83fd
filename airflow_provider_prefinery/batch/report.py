"""What a batch reports: a record's :class:`Outcome`, a failure entry, and the :class:`BatchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from airflow_provider_prefinery.batch.errors import (
    BatchFailedError,
    BatchFailedNoRetryError,
    BatchValidationError,
)
from airflow_provider_prefinery.exceptions import PrefineryError
from airflow_provider_prefinery.masking import masked

OutcomeStatus = Literal["succeeded", "updated", "skipped", "already_done"]
# Every key of BatchResult.counts, always present (zeros included) so downstream code can index freely.
COUNT_KEYS: tuple[str, ...] = ("total", *get_args(OutcomeStatus), "failed", "outcome_unknown", "not_sent")


@dataclass(frozen=True)
class Outcome:
    """What a record function returns when the plain "it was applied" is not the whole story.

    :param status: ``succeeded`` (applied now), ``updated`` (existed, changed), ``skipped`` (existed, left
        alone on purpose) or ``already_done`` (the target state was already there: a re-run).
    :param value: the API object to report for the record (or None).
    :param note: one line for the task log, e.g. why the record counts as already done.
    """

    status: OutcomeStatus = "succeeded"
    value: Any = None
    note: str | None = None

    @classmethod
    def of(cls, value: Any) -> Outcome:
        """A record function's return value as an outcome: a plain answer means ``succeeded``."""
        return value if isinstance(value, Outcome) else cls("succeeded", value)


def describe_error(index: int, record: Any, error: BaseException) -> dict[str, Any]:
    """A JSON-serialisable failure entry: where (index, record), what (class, status, code, message).

    ``outcome_unknown`` is True when a non-idempotent write may have been applied although it failed: such
    a record must be checked by hand, never blindly sent again.
    """
    if isinstance(error, PrefineryError):
        entry: dict[str, Any] = {"index": index, **error.to_dict()}
    else:
        entry = {
            "index": index,
            "error": type(error).__name__,
            "status": None,
            "code": None,
            "message": str(error),
            "outcome_unknown": False,
        }
    entry["record"] = record
    return masked(entry)  # a secret templated into the record must not reach the XCom


@dataclass
class BatchResult:
    """The outcome of :func:`~airflow_provider_prefinery.batch.run.run_batch`: counts, every failure, and
    (when asked) every result in order.

    :param total: how many records came in.
    :param counts: ``total``, ``succeeded``, ``updated``, ``skipped``, ``already_done``, ``failed``,
        ``outcome_unknown`` (failed records whose write may have been applied) and ``not_sent`` (records
        left unsent after an error that fails every record; a retry sends them).
    :param failed: a :func:`describe_error` entry for each of the first 100 failed (or invalid) records, in
        input order (``batch.failures``); ``failed_not_listed`` counts the rest.
    :param failed_not_listed: failed records beyond ``failed``.
    :param results: every record's value in input order (None for failures and for records done by an
        earlier try), only with ``return_records``.
    :param invalid_only: True when validation failed and no request was sent.
    :param fail_on_error: the decision :meth:`raise_for_failures` applies.
    :param stopped: the error that stopped the batch (``{"index", "error", "status", "message"}``), if any.
    :param resumed: what an earlier try's checkpoint settled (``{"from_try", "done", "outcome_unknown"}``).
    :param elapsed: wall seconds spent.
    :param label: names the batch in errors.
    """

    total: int
    counts: dict[str, int]
    failed: list[dict[str, Any]] = field(default_factory=list)
    failed_not_listed: int = 0
    results: list[Any] | None = None
    invalid_only: bool = False
    fail_on_error: bool = True
    stopped: dict[str, Any] | None = None
    resumed: dict[str, Any] | None = None
    elapsed: float = 0.0
    label: str = "batch"

    @property
    def ok(self) -> bool:
        """True when no record failed and none was left unsent."""
        return not self.failed and not self.counts["not_sent"]

    @property
    def fails_task(self) -> bool:
        """True when :meth:`raise_for_failures` raises: failures with ``fail_on_error``, or a stop."""
        return self.stopped is not None or (not self.ok and self.fail_on_error)

    @property
    def applied(self) -> int:
        """Records whose write this run applied (or may have applied): what a task retry would repeat."""
        return self.counts["succeeded"] + self.counts["updated"] + self.counts["outcome_unknown"]

    @property
    def resendable(self) -> int:
        """Failed or unsent records a retry would send again (every failure but the unknown outcomes)."""
        return self.counts["failed"] - self.counts["outcome_unknown"] + self.counts["not_sent"]

    def to_xcom(self) -> dict[str, Any]:
        """Return ``{"counts", "failed"}`` (and ``"records"`` with ``return_records``): the task's XCom.

        ``failed_not_listed``, ``stopped`` and ``resumed`` are added when they say something.
        """
        value: dict[str, Any] = {"counts": dict(self.counts), "failed": self.failed}
        if self.failed_not_listed:
            value["failed_not_listed"] = self.failed_not_listed
        if self.stopped is not None:
            value["stopped"] = self.stopped
        if self.resumed is not None:
            value["resumed"] = self.resumed
        if self.results is not None:
            value["records"] = self.results
        return value

    def raise_for_failures(self, *, retry_safe: bool = True, checkpointed: bool = False) -> None:
        """Fail the task if records failed and ``fail_on_error`` is set, or if the batch stopped early.

        A stopped batch fails even with ``fail_on_error=False``: its unsent records never got a chance.

        :param retry_safe: True for idempotent actions: a retry may send anything again.
        :param checkpointed: a checkpoint makes a retry of a non-idempotent batch safe (it sends only the
            records no try may have sent): the error is retried unless nothing is left to send. Without one
            (``retry_safe`` and ``checkpointed`` False), a batch that applied writes is not retried.
        :raises BatchValidationError: records were invalid and nothing was sent.
        :raises BatchFailedError: some records failed (``BatchFailedNoRetryError`` when Airflow must not
            retry).
        """
        if not self.fails_task:
            return
        if self.invalid_only:
            raise BatchValidationError(
                self.failed, total=self.total, label=self.label, not_listed=self.failed_not_listed
            )
        if retry_safe:
            raise BatchFailedError(self)
        if checkpointed:
            if self.resendable:
                raise BatchFailedError(self)
            raise BatchFailedNoRetryError(
                self, "every failed record's outcome is unknown: a retry would send nothing (check them)"
            )
        if self.applied == 0:
            raise BatchFailedError(self)
        raise BatchFailedNoRetryError(
            self, "no checkpoint (no task_state_store), so a retry would send the applied records again"
        )
