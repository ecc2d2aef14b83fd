"""Run a function over records under bounded concurrency, validating them all first, accounting for each.

With a :class:`~airflow_provider_prefinery.batch.checkpoint.Checkpoint` the run resumes what an earlier try
of the task left: records done are not sent again (they keep their status in the report), records that
try may have sent are reported ``outcome_unknown`` (non-idempotent actions) and the rest are sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from airflow_provider_prefinery.batch.checkpoint import DONE_MARKS, FAILED, UNKNOWN, Checkpoint, Earlier
from airflow_provider_prefinery.batch.errors import entry_line
from airflow_provider_prefinery.batch.failures import FailureList
from airflow_provider_prefinery.batch.progress import LineLogger, Progress
from airflow_provider_prefinery.batch.report import COUNT_KEYS, BatchResult, Outcome, describe_error
from airflow_provider_prefinery.hooks.concurrency import bounded_map  # light: no REST client

log = logging.getLogger(__name__)
Stops = Callable[[BaseException], bool]


class _NotSent(Exception):
    """A record handed to a worker after the batch stopped: it is not sent."""


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
    stops_batch: Callable[[BaseException], bool] | None = None,
    checkpoint: Checkpoint | None = None,
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
    :param logger: where progress, failures and notes go (the first 100 failures, then a count).
    :param progress_interval: seconds between progress lines (0 disables the ticker).
    :param request_count: returns the number of HTTP requests made so far (None: unknown), for
        requests/s in progress lines.
    :param stops_batch: True for an error that fails every record (a rejected key, a missing project):
        the first one stops the batch, and the records not yet sent are counted ``not_sent``.
    :param checkpoint: where progress is kept across tries (None: no checkpoint, every record is sent).
    :return: the :class:`BatchResult`; this function raises only for bugs, from ``before_first_call``, or
        for a checkpoint it must not resume or cannot write, never for failed records.
    """
    items: Sequence[Any] = records if isinstance(records, Sequence) else list(records)
    run = _Run(
        items, fn, label=label, logger=logger or log, fail_on_error=fail_on_error, checkpoint=checkpoint
    )
    if run.validate(validate):
        return run.result
    run.resume()
    if run.todo and not run.invalid and before_first_call is not None:
        before_first_call()
    return run.send(
        max_concurrency,
        return_records=return_records,
        progress_interval=progress_interval,
        request_count=request_count,
        stops_batch=stops_batch,
    )


class _Run:
    """One call of :func:`run_batch`: the counts, the failures and the checkpoint as records finish."""

    def __init__(
        self,
        items: Sequence[Any],
        fn: Callable[[Any], Any],
        *,
        label: str,
        logger: LineLogger,
        fail_on_error: bool,
        checkpoint: Checkpoint | None,
    ) -> None:
        self.items, self.fn, self.label, self.logger, self.checkpoint = items, fn, label, logger, checkpoint
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.counts["total"] = len(items)
        self.failures = FailureList()
        self.result = BatchResult(len(items), self.counts, fail_on_error=fail_on_error, label=label)
        self.invalid: set[int] = set()
        self.todo: list[int] = list(range(len(items)))
        self.stop = threading.Event()

    def fail(self, entry: dict[str, Any], what: str = "record") -> None:
        """Count a failed record; list and log it if it is among the first 100."""
        self.counts["failed"] += 1
        self.counts["outcome_unknown"] += int(bool(entry.get("outcome_unknown")))
        if self.failures.add(entry):
            self.logger.error("%s: %s %s", self.label, what, entry_line(entry))

    def validate(self, validate: Callable[[Any], Any] | None) -> bool:
        """Validate every record; True when the batch ends here (invalid records with fail_on_error)."""
        for entry in collect_invalid(self.items, validate) if validate is not None else []:
            self.invalid.add(entry["index"])
            self.fail(entry, "invalid record")
        if self.invalid and self.result.fail_on_error:
            self.result.invalid_only = True
            self._finish_report()
            return True
        return False

    def resume(self) -> None:
        """Start the checkpoint: take over what an earlier try settled, and leave the rest to send."""
        if self.checkpoint is None:
            self.todo = [i for i in self.todo if i not in self.invalid]
            return
        earlier = self.checkpoint.start(len(self.items))
        for index in self.invalid:
            self.checkpoint.finished(index, FAILED)  # never sent; the next try validates it again
        if earlier is not None:
            self._report_earlier(earlier)
        self.todo = list(self.checkpoint.todo())

    def _report_earlier(self, earlier: Earlier) -> None:
        for status, count in earlier.done.items():
            self.counts[status] += count
        for index in earlier.unknown:
            note = earlier.notes.get(index) or (earlier.try_number, "OutcomeUnknown", None, None, "")
            when, error, status, code, message = note
            entry = {
                "index": index,
                "error": error,
                "status": status,
                "code": code,
                "message": f"{message or 'outcome unknown'} (try {when}; not sent again)",
                "outcome_unknown": True,
                "record": self.items[index],
            }
            self.fail(entry, "record of an earlier try:")
        done = sum(earlier.done.values())
        self.result.resumed = {
            "from_try": earlier.try_number,
            "done": done,
            "outcome_unknown": len(earlier.unknown),
        }
        self.logger.info(
            "%s: resuming the checkpoint of try %s: %s done and %s with unknown outcome are not sent again; "
            "%s to send",
            self.label, earlier.try_number, f"{done:,}", f"{len(earlier.unknown):,}",
            f"{len(self.items) - earlier.skipped - len(self.invalid):,}",
        )  # fmt: skip

    # ---- sending ----
    def _call(self, pair: tuple[int, Any]) -> Any:
        """A worker's part: mark the record started, send it unless the batch stopped, mark how it ended."""
        index, record = pair
        cp = self.checkpoint
        if cp is not None:
            cp.started(index)
        if self.stop.is_set():  # checked after the mark: a final write sees it started, or it is not sent
            if cp is not None:
                cp.unstarted(index)
            raise _NotSent
        try:
            value = self.fn(record)
        except BaseException as err:
            if cp is not None:
                cp.finished(index, UNKNOWN if getattr(err, "outcome_unknown", False) else FAILED)
            raise
        if cp is not None:
            cp.finished(index, DONE_MARKS[Outcome.of(value).status])
        return value

    def _feed(self) -> Iterator[tuple[int, Any]]:
        for index in self.todo:
            if self.stop.is_set():
                return
            if self.checkpoint is not None:
                self.checkpoint.claim(index)  # written before the record can reach a worker
            yield index, self.items[index]

    def send(
        self,
        max_concurrency: int,
        *,
        return_records: bool,
        progress_interval: float,
        request_count: Callable[[], int | None] | None,
        stops_batch: Stops | None,
    ) -> BatchResult:
        results: list[Any] | None = [None] * len(self.items) if return_records else None
        sent = 0
        stream = bounded_map(self._call, self._feed(), max_workers=max_concurrency)
        complete = False
        try:
            with Progress(
                len(self.todo), label=self.label, logger=self.logger, interval=progress_interval,
                request_count=request_count,
            ) as progress:  # fmt: skip
                for _, (index, record), value, error in stream:
                    if isinstance(error, _NotSent):
                        continue
                    sent += 1
                    if error is not None:
                        self._failed(index, record, error, stops_batch)
                    else:
                        self._succeeded(index, value, results)
                    progress.record(failed=error is not None)
                    if self.checkpoint is not None:
                        self.checkpoint.tick()
                self.result.elapsed = progress.elapsed
            complete = True
        finally:
            self.stop.set()
            _close(stream)  # waits for requests in flight; records still queued are not sent
            self.counts["not_sent"] = len(self.todo) - sent
            if self.checkpoint is not None:
                self._close_checkpoint(complete)
        self.result.results = results
        self._finish_report()
        self.logger.info(
            "%s: finished %s in %.1f s",
            self.label, ", ".join(f"{k} {v:,}" for k, v in self.counts.items()), self.result.elapsed,
        )  # fmt: skip
        return self.result

    def _close_checkpoint(self, complete: bool) -> None:
        assert self.checkpoint is not None
        try:
            ok = not self.counts["failed"] and not self.counts["not_sent"]
            self.checkpoint.close(complete=complete, ok=ok)
        except Exception as err:  # a final write failing must not hide the batch's own outcome
            self.logger.error("%s: could not write the final checkpoint: %s", self.label, err)

    def _failed(self, index: int, record: Any, error: BaseException, stops_batch: Stops | None) -> None:
        entry = describe_error(index, record, error)
        self.fail(entry)
        if entry.get("outcome_unknown") and self.checkpoint is not None:
            self.checkpoint.note(index, entry)
        if self.result.stopped is None and stops_batch is not None and stops_batch(error):
            self.stop.set()
            self.result.stopped = {k: entry.get(k) for k in ("index", "error", "status", "message")}
            self.logger.error(
                "%s: stopping at record #%d: %s fails every record; the records not yet sent are not sent",
                self.label, index, entry.get("error"),
            )  # fmt: skip

    def _succeeded(self, index: int, value: Any, results: list[Any] | None) -> None:
        outcome = Outcome.of(value)
        self.counts[outcome.status] += 1
        if outcome.note:
            self.logger.info("%s: record #%d: %s", self.label, index, outcome.note)
        if results is not None:
            results[index] = outcome.value

    def _finish_report(self) -> None:
        self.result.failed = self.failures.sorted(key=lambda entry: entry["index"])
        self.result.failed_not_listed = self.failures.not_listed
        summary = self.failures.summary()
        if summary:
            self.logger.error("%s: %s", self.label, summary)


def _close(stream: Iterator[Any]) -> None:
    close = getattr(stream, "close", None)  # a generator: closing it shuts its worker pool down
    if close is not None:
        close()
