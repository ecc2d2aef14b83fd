"""The batch engine every write operator and the sync share: run records under bounded concurrency,
validate them all first, log progress, report each failure, decide whether the task fails.

* :mod:`.run`: :func:`run_batch`, which validates every record before the first call.
* :mod:`.progress`: :class:`Progress`, the progress lines.
* :mod:`.report`: :class:`Outcome` (what a record function returns), :func:`describe_error` (a failure
  entry) and :class:`BatchResult` (counts, failures, the ``fail_on_error`` decision).
* :mod:`.errors`: the errors a batch ends with.
* :mod:`.checkpoint`: :class:`Checkpoint`, a batch's progress in the task's ``task_state_store``, so a
  retry after a crash neither sends a record twice nor loses one.
* :mod:`.failures`: :class:`FailureList`, the one rule for how many failures a report and a log list.

It sits between the operators (and transfers) above and the REST core's ``bounded_map`` below, and knows
nothing of operators or of any API.
"""

from airflow_provider_prefinery.batch.checkpoint import Checkpoint, StateStore, batch_digest
from airflow_provider_prefinery.batch.errors import (
    BatchFailedError,
    BatchFailedNoRetryError,
    BatchValidationError,
    CheckpointError,
    CheckpointMismatchError,
    NoRetryError,
)
from airflow_provider_prefinery.batch.failures import MAX_LISTED_FAILURES, FailureList
from airflow_provider_prefinery.batch.progress import Progress
from airflow_provider_prefinery.batch.report import COUNT_KEYS, BatchResult, Outcome, describe_error
from airflow_provider_prefinery.batch.run import run_batch

__all__ = [
    "COUNT_KEYS",
    "MAX_LISTED_FAILURES",
    "BatchFailedError",
    "BatchFailedNoRetryError",
    "BatchResult",
    "BatchValidationError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "FailureList",
    "NoRetryError",
    "Outcome",
    "Progress",
    "StateStore",
    "batch_digest",
    "describe_error",
    "run_batch",
]
