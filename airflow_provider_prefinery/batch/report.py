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
COUNT_KEYS: tuple[str, ...] = ("total", *get_args(OutcomeStatus), "failed", "outcome_unknown")


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
    :param counts: ``total``, ``succeeded``, ``updated``, ``skipped``, ``already_done``, ``failed`` and
        ``outcome_unknown`` (failed records whose write may have been applied).
    :param failed: one :func:`describe_error` entry per failed (or invalid) record, in input order.
    :param results: every record's value in input order (None for failures), only with ``return_records``.
    :param invalid_only: True when validation failed and no request was sent.
    :param fail_on_error: the decision :meth:`raise_for_failures` applies.
    :param elapsed: wall seconds spent.
    :param label: names the batch in errors.
    """

    total: int
    counts: dict[str, int]
    failed: list[dict[str, Any]] = field(default_factory=list)
    results: list[Any] | None = None
    invalid_only: bool = False
    fail_on_error: bool = True
    elapsed: float = 0.0
    label: str = "batch"

    @property
    def ok(self) -> bool:
        """True when no record failed."""
        return not self.failed

    @property
    def applied(self) -> int:
        """Records whose write this run applied (or may have applied): what a task retry would repeat."""
        return self.counts["succeeded"] + self.counts["updated"] + self.counts["outcome_unknown"]

    def to_xcom(self) -> dict[str, Any]:
        """Return ``{"counts", "failed"}`` (and ``"records"`` with ``return_records``): the task's XCom."""
        value: dict[str, Any] = {"counts": dict(self.counts), "failed": self.failed}
        if self.results is not None:
            value["records"] = self.results
        return value

    def raise_for_failures(self, *, retry_safe: bool = True) -> None:
        """Fail the task if records failed and ``fail_on_error`` is set; do nothing otherwise.

        :param retry_safe: False for non-idempotent actions: when some writes were applied (or may have
            been), the error is an ``AirflowFailException`` so Airflow does not retry the task and send
            them again.
        :raises BatchValidationError: records were invalid and nothing was sent.
        :raises BatchFailedError: some records failed (``BatchFailedNoRetryError`` when unsafe to retry).
        """
        if self.ok or not self.fail_on_error:
            return
        if self.invalid_only:
            raise BatchValidationError(self.failed, total=self.total, label=self.label)
        cls = BatchFailedError if retry_safe or self.applied == 0 else BatchFailedNoRetryError
        raise cls(self)
