"""Run a function over records under bounded concurrency, validating them all first, accounting for each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from airflow_provider_prefinery.batch.errors import entry_line
from airflow_provider_prefinery.batch.progress import LineLogger, Progress
from airflow_provider_prefinery.batch.report import COUNT_KEYS, BatchResult, Outcome, describe_error
from airflow_provider_prefinery.hooks.concurrency import bounded_map  # light: no REST client

log = logging.getLogger(__name__)


def collect_invalid(records: Iterable[Any], validate: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Validate every record; return one entry (index, field, message, record) per invalid one.

    ``validate`` raises :class:`~airflow_provider_prefinery.exceptions.PrefineryInputError` (naming the
    field) for a bad record; any other exception is reported too, naming no field.
    """
    invalid: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        try:
            validate(record)
        except Exception as err:
            entry = describe_error(index, record, err)
            entry["field"] = getattr(err, "field", None)
            invalid.append(entry)
    return invalid


def run_batch(
    records: Iterable[Any],
    fn: Callable[[Any], Any],
    *,
    validate: Callable[[Any], Any] | None = None,
    before_first_call: Callable[[], Any] | None = None,
    max_concurrency: int = 4,
    fail_on_error: bool = True,
    return_records: bool = False,
    label: str = "batch",
    logger: LineLogger | None = None,
    progress_interval: float = 10.0,
    request_count: Callable[[], int | None] | None = None,
) -> BatchResult:
    """Run ``fn`` over every record, at most ``max_concurrency`` at once, and account for each.

    :param records: the records (any iterable; one that is not a sequence is read into a list, since
        validation passes over it before the run).
    :param fn: called once per valid record; returns the API's answer or an
        :class:`~airflow_provider_prefinery.batch.report.Outcome`, raises to fail the record. It runs in
        worker threads: share only thread-safe objects (a hook is).
    :param validate: called on every record before the first ``fn`` call; raises to mark it invalid.
        With ``fail_on_error`` any invalid record stops the batch before a request is sent (the result has
        ``invalid_only``); without it, invalid records are reported as failed and the rest run.
    :param before_first_call: called once when every record is valid, before the first ``fn`` call (a
        check of a target all records share); what it raises propagates. Not called for no records.
    :param max_concurrency: worker threads; the hook's rate limiter still caps the request rate.
    :param fail_on_error: what :meth:`BatchResult.raise_for_failures` does with failures.
    :param return_records: keep every result in input order (otherwise only counts and failures are
        held, so memory does not grow with the batch).
    :param label: names the batch in log lines and errors (e.g. the action).
    :param logger: where progress, failures and notes go.
    :param progress_interval: seconds between progress lines (0 disables the ticker).
    :param request_count: returns the number of HTTP requests made so far (None: unknown), for
        requests/s in progress lines.
    :return: the :class:`BatchResult`; this function raises only for bugs (or from
        ``before_first_call``), never for failed records.
    """
    logger = logger or log
    items: Sequence[Any] = records if isinstance(records, Sequence) else list(records)
    total = len(items)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["total"] = total
    invalid = collect_invalid(items, validate) if validate is not None else []
    for entry in invalid:
        logger.error("%s: invalid record %s", label, entry_line(entry))
    result = BatchResult(total, counts, fail_on_error=fail_on_error, label=label)
    if invalid and fail_on_error:
        counts["failed"] = len(invalid)
        result.failed, result.invalid_only = invalid, True
        return result
    if items and not invalid and before_first_call is not None:
        before_first_call()
    skip = {entry["index"] for entry in invalid}
    failures: dict[int, dict[str, Any]] = {entry["index"]: entry for entry in invalid}
    counts["failed"] = len(invalid)
    results: list[Any] | None = [None] * total if return_records else None
    todo = ((i, r) for i, r in enumerate(items) if i not in skip)

    def call(pair: tuple[int, Any]) -> Any:
        return fn(pair[1])

    with Progress(
        total, label=label, logger=logger, interval=progress_interval, request_count=request_count
    ) as progress:
        for _, (index, record), value, error in bounded_map(call, todo, max_workers=max_concurrency):
            if error is not None:
                entry = describe_error(index, record, error)
                failures[index] = entry
                counts["failed"] += 1
                counts["outcome_unknown"] += int(bool(entry.get("outcome_unknown")))
                logger.error("%s: record %s", label, entry_line(entry))
                progress.record(failed=True)
                continue
            outcome = Outcome.of(value)
            counts[outcome.status] += 1
            if outcome.note:
                logger.info("%s: record #%d: %s", label, index, outcome.note)
            if results is not None:
                results[index] = outcome.value
            progress.record(failed=False)
        result.elapsed = progress.elapsed
    result.failed = [failures[i] for i in sorted(failures)]
    result.results = results
    logger.info(
        "%s: finished %s in %.1f s", label, ", ".join(f"{k} {v:,}" for k, v in counts.items()), result.elapsed
    )
    return result
