"""The errors a batch ends with, and the one-line form of a failure entry they (and the log) show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_prefinery.exceptions import PrefineryInputError

if TYPE_CHECKING:
    from airflow_provider_prefinery.batch.report import BatchResult

# An exception message names at most this many records; the XCom and the log list the first 100.
MAX_ERRORS_IN_MESSAGE = 20


def entry_line(entry: Mapping[str, Any]) -> str:
    """One failure entry as ``#index: Error (code N): message``, flagged when its outcome is unknown."""
    code = f" (code {entry['code']})" if entry.get("code") is not None else ""
    unknown = " [outcome unknown: check before re-sending]" if entry.get("outcome_unknown") else ""
    return f"#{entry['index']}: {entry.get('error')}{code}: {entry.get('message')}{unknown}"


def entries_text(entries: Sequence[Mapping[str, Any]], not_listed: int = 0) -> str:
    """The first :data:`MAX_ERRORS_IN_MESSAGE` entries joined, with a count of the rest.

    :param not_listed: failures beyond ``entries`` (counted, not listed: see ``batch.failures``).
    """
    lines = [entry_line(e) for e in entries[:MAX_ERRORS_IN_MESSAGE]]
    more = len(entries) - len(lines) + not_listed
    if more > 0:
        where = "the log and the XCom list the first 100" if not_listed else "all in the log and the XCom"
        lines.append(f"... and {more:,} more ({where})")
    return "; ".join(lines)


class BatchValidationError(PrefineryInputError):
    """Some records are invalid; nothing was sent. ``errors`` lists each with its index and field."""

    def __init__(
        self, errors: list[dict[str, Any]], *, total: int, label: str = "batch", not_listed: int = 0
    ) -> None:
        self.errors = errors
        fields = sorted({str(e.get("field")) for e in errors if e.get("field")})
        problem = (
            f"{len(errors) + not_listed:,} of {total:,} {label} record(s) are invalid (fields: "
            f"{', '.join(fields) or '-'}), nothing was sent: {entries_text(errors, not_listed)}"
        )
        super().__init__("records", problem)


class BatchFailedError(AirflowException):
    """Some records failed after the rest were processed, or the batch stopped at an error that fails every
    record; ``result`` holds the counts and failures, ``reason`` why Airflow must not retry (if so)."""

    def __init__(self, result: BatchResult, reason: str | None = None) -> None:
        self.result, self.reason = result, reason
        counts = result.counts
        head = (
            f"{counts['failed']:,} of {result.total:,} {result.label} record(s) failed "
            f"({counts['outcome_unknown']:,} with unknown outcome)"
        )
        if result.stopped is not None:
            head += (
                f"; stopped at record #{result.stopped['index']}, an error that fails every record: "
                f"{counts['not_sent']:,} not sent"
            )
        if reason:
            head += f"; not retried: {reason}"
        super().__init__(f"{head}: {entries_text(result.failed, result.failed_not_listed)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result, self.reason))


class BatchFailedNoRetryError(BatchFailedError, AirflowFailException):
    """A non-idempotent batch failed and a retry would repeat writes (or send nothing): no Airflow retry."""


class NoRetryError(AirflowFailException):
    """A single non-idempotent write failed with an unknown outcome: fail without an Airflow retry."""


class CheckpointMismatchError(AirflowFailException):
    """A non-idempotent batch found a checkpoint it must not resume (other input, or unreadable): it sends
    nothing, since resuming could send a record twice or never. Not retried: the next try finds the same."""

    def __init__(self, label: str, key: str, problem: str, earlier: str = "") -> None:
        self.label, self.key, self.problem, self.earlier = label, key, problem, earlier
        super().__init__(
            f"{label}: refusing to resume the checkpoint of an earlier try, nothing was sent: {problem}"
            f"{f'. The earlier try {earlier}' if earlier else ''}. Make the records render the same on every "
            f"try or, once the earlier writes are checked, delete the task state key {key!r} of this task "
            "instance (REST API or UI) to start afresh"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.label, self.key, self.problem, self.earlier))


class CheckpointError(AirflowException):
    """The checkpoint could not be written before sending more records: the batch stopped there, so no
    record is ever sent without a written claim. A retry resumes from the last checkpoint written."""

    def __init__(self, label: str, key: str, index: int, error: BaseException | str) -> None:
        self.label, self.key, self.index, self.error = label, key, index, str(error)
        super().__init__(
            f"{label}: could not write the checkpoint {key!r} before record #{index} ({error}): stopped "
            "there; a retry resumes from the last checkpoint written"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.label, self.key, self.index, self.error))
