"""The sync's write stream without HTTP: its failures follow the batch engine's one cap rule."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_prefinery.batch import MAX_LISTED_FAILURES
from airflow_provider_prefinery.exceptions import PrefineryValidationError
from airflow_provider_prefinery.transfers.mailchimp_apply import Tally, apply_writes
from airflow_provider_prefinery.transfers.mailchimp_plan import Action


class _Refusing:
    """An applier whose every write is refused, as Prefinery refuses an invalid e-mail."""

    class hook:  # what apply_writes reads for requests/s
        stats = {"requests": 0}

    def __call__(self, action: Action) -> Any:
        raise PrefineryValidationError(f"email is invalid: {action.email}", status=422, code=2301)


def test_the_sync_lists_and_logs_the_first_hundred_failures_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.sync")
    caplog.set_level(logging.INFO, logger="test.sync")
    actions = [
        Action("create", f"m{i}@example.com", i, "subscribed", "2024-01-01T00:00:00Z") for i in range(2500)
    ]
    tally = Tally()

    apply_writes(actions, _Refusing(), tally, max_concurrency=4, progress_interval=0, logger=logger)  # type: ignore[arg-type]

    assert tally.counts["failed"] == 2500
    assert len(tally.failures) == MAX_LISTED_FAILURES == 100
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 101
    assert errors[-1].startswith("sync writes: 2,400 more failed member(s) not listed")
    assert errors[-1].endswith("the report and the log hold the first 100 of 2,500")
