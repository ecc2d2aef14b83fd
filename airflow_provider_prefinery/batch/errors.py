"""The errors a batch ends with, and the one-line form of a failure entry they (and the log) show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_prefinery.exceptions import PrefineryInputError

if TYPE_CHECKING:
    from airflow_provider_prefinery.batch.report import BatchResult

# An exception message names at most this many records; the XCom and the log hold every one.
MAX_ERRORS_IN_MESSAGE = 20


def entry_line(entry: Mapping[str, Any]) -> str:
    """One failure entry as ``#index: Error (code N): message``, flagged when its outcome is unknown."""
    code = f" (code {entry['code']})" if entry.get("code") is not None else ""
    unknown = " [outcome unknown: check before re-sending]" if entry.get("outcome_unknown") else ""
    return f"#{entry['index']}: {entry.get('error')}{code}: {entry.get('message')}{unknown}"


def entries_text(entries: Sequence[Mapping[str, Any]]) -> str:
    """The first :data:`MAX_ERRORS_IN_MESSAGE` entries joined, with a count of the rest."""
    lines = [entry_line(e) for e in entries[:MAX_ERRORS_IN_MESSAGE]]
    if len(entries) > MAX_ERRORS_IN_MESSAGE:
        lines.append(f"... and {len(entries) - MAX_ERRORS_IN_MESSAGE} more (all in the log and the XCom)")
    return "; ".join(lines)


class BatchValidationError(PrefineryInputError):
    """Some records are invalid; nothing was sent. ``errors`` lists each with its index and field."""

    def __init__(self, errors: list[dict[str, Any]], *, total: int, label: str = "batch") -> None:
        self.errors = errors
        fields = sorted({str(e.get("field")) for e in errors if e.get("field")})
        problem = (
            f"{len(errors)} of {total} {label} record(s) are invalid (fields: {', '.join(fields) or '-'}), "
            f"nothing was sent: {entries_text(errors)}"
        )
        super().__init__("records", problem)


class BatchFailedError(AirflowException):
    """Some records failed after the rest were processed; ``result`` holds the counts and failures."""

    def __init__(self, result: BatchResult) -> None:
        self.result = result
        counts = result.counts
        super().__init__(
            f"{counts['failed']} of {result.total} {result.label} record(s) failed "
            f"({counts['outcome_unknown']} with unknown outcome): {entries_text(result.failed)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result,))


class BatchFailedNoRetryError(BatchFailedError, AirflowFailException):
    """A non-idempotent batch failed after applying writes: Airflow must not retry (it would repeat them)."""


class NoRetryError(AirflowFailException):
    """A single non-idempotent write failed with an unknown outcome: fail without an Airflow retry."""
