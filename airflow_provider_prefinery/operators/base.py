"""What every write operator shares: a batch runner, and a base operator for one record or many.

Two layers, so the Piggy operator and the Mailchimp transfer can reuse the first without the second:

* :func:`run_batch` runs a function over records under bounded concurrency (``rest.bounded_map``),
  validates every record before the first call and reports all bad ones at once, logs progress at least
  every ``progress_interval`` seconds, counts outcomes, keeps every failure (never more: results are held
  only when asked for) and returns a :class:`BatchResult`, whose :meth:`BatchResult.raise_for_failures`
  makes the ``fail_on_error`` decision.
* :class:`RecordsOperator` turns an operator's action fields (one record) or ``records=[...]`` (many)
  into a call of ``run_batch``; :class:`PrefineryBaseOperator` adds the Prefinery connection, the
  project id and the validation rules of ``validation.WRITE_RULES``. A concrete operator sets ``action`` and
  ``record_fields`` and, where the action needs it, overrides :meth:`RecordsOperator.run_record`.

A record function returns the API's answer, or an :class:`Outcome` to say "already done", "skipped" or
"updated" (idempotent re-runs); it raises to fail the record.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from inspect import Parameter, Signature
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    Context,
)

from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError
from airflow_provider_prefinery.hooks.concurrency import bounded_map
from airflow_provider_prefinery.validation import bool_from_text, one_of

if TYPE_CHECKING:
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

log = logging.getLogger(__name__)

OutcomeStatus = Literal["succeeded", "updated", "skipped", "already_done"]
OUTCOMES: tuple[str, ...] = ("succeeded", "updated", "skipped", "already_done")
# Every key of BatchResult.counts, always present (zeros included) so downstream code can index freely.
COUNT_KEYS: tuple[str, ...] = ("total", *OUTCOMES, "failed", "outcome_unknown")
MAX_ERRORS_IN_MESSAGE = 20


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------
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
    return entry


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`: counts, every failure, and (when asked) every result in order.

    :param total: how many records came in.
    :param counts: ``total``, ``succeeded``, ``updated``, ``skipped``, ``already_done``, ``failed`` and
        ``outcome_unknown`` (failed records whose write may have been applied).
    :param failed: one :func:`describe_error` entry per failed (or invalid) record, in input order.
    :param results: every record's value in input order (None for failures), only with ``return_records``.
    :param invalid_only: True when validation failed and no request was sent.
    :param fail_on_error: the decision :meth:`raise_for_failures` applies.
    :param elapsed: wall seconds spent.
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


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
def _entry_line(entry: Mapping[str, Any]) -> str:
    code = f" (code {entry['code']})" if entry.get("code") is not None else ""
    unknown = " [outcome unknown: check before re-sending]" if entry.get("outcome_unknown") else ""
    return f"#{entry['index']}: {entry.get('error')}{code}: {entry.get('message')}{unknown}"


def _entries_text(entries: Sequence[Mapping[str, Any]]) -> str:
    lines = [_entry_line(e) for e in entries[:MAX_ERRORS_IN_MESSAGE]]
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
            f"nothing was sent: {_entries_text(errors)}"
        )
        super().__init__("records", problem)


class BatchFailedError(AirflowException):
    """Some records failed after the rest were processed; ``result`` holds the counts and failures."""

    def __init__(self, result: BatchResult) -> None:
        self.result = result
        counts = result.counts
        super().__init__(
            f"{counts['failed']} of {result.total} {result.label} record(s) failed "
            f"({counts['outcome_unknown']} with unknown outcome): {_entries_text(result.failed)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.result,))


class BatchFailedNoRetryError(BatchFailedError, AirflowFailException):
    """A non-idempotent batch failed after applying writes: Airflow must not retry (it would repeat them)."""


class NoRetryError(AirflowFailException):
    """A single non-idempotent write failed with an unknown outcome: fail without an Airflow retry."""


# --------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------
class Progress:
    """Counts as records finish and logs a line every ``interval`` seconds from its own thread.

    The ticker thread makes the "at least every 10 s" promise hold even while every worker waits on the
    rate limiter or a slow answer.
    """

    def __init__(
        self,
        total: int | None,
        *,
        label: str,
        logger: logging.Logger,
        interval: float = 10.0,
        request_count: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.logger = logger
        self.interval = interval
        self.request_count = request_count
        self.clock = clock
        self.done = 0
        self.failed = 0
        self._start = clock()
        self._requests_at_start = self._requests()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _requests(self) -> int | None:
        try:
            return self.request_count() if self.request_count else None
        except Exception:  # a stats reader must never break the batch
            return None

    def record(self, failed: bool) -> None:
        """Count one finished record (called from the consuming thread only)."""
        self.done += 1
        self.failed += int(failed)

    def line(self) -> str:
        """The progress line: done/total, failures, records/s and requests/s, ETA."""
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = self.done / elapsed
        total = "?" if self.total is None else f"{self.total:,}"
        parts = [
            f"{self.label}: {self.done:,}/{total} done",
            f"{self.failed:,} failed",
            f"{rate:.1f} records/s",
        ]
        now_requests = self._requests()
        if now_requests is not None and self._requests_at_start is not None:
            parts.append(f"{(now_requests - self._requests_at_start) / elapsed:.1f} requests/s")
        if self.total is not None and rate > 0 and self.done < self.total:
            parts.append(f"ETA {(self.total - self.done) / rate:.0f} s")
        parts.append(f"elapsed {elapsed:.0f} s")
        return ", ".join(parts)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.logger.info("%s", self.line())

    def __enter__(self) -> Progress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._tick, name="prefinery-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def elapsed(self) -> float:
        return self.clock() - self._start


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------
def collect_invalid(records: Iterable[Any], validate: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Validate every record; return one entry (index, field, message, record) per invalid one.

    ``validate`` raises :class:`PrefineryInputError` (naming the field) for a bad record; any other
    exception is reported too, naming no field.
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
    max_concurrency: int = 4,
    fail_on_error: bool = True,
    return_records: bool = False,
    label: str = "batch",
    logger: logging.Logger | None = None,
    progress_interval: float = 10.0,
    request_count: Callable[[], int] | None = None,
) -> BatchResult:
    """Run ``fn`` over every record, at most ``max_concurrency`` at once, and account for each.

    :param records: the records (any iterable; one that is not a sequence is read into a list, since
        validation passes over it before the run).
    :param fn: called once per valid record; returns the API's answer or an :class:`Outcome`, raises to
        fail the record. It runs in worker threads: share only thread-safe objects (a hook is).
    :param validate: called on every record before the first ``fn`` call; raises to mark it invalid.
        With ``fail_on_error`` any invalid record stops the batch before a request is sent (the result has
        ``invalid_only``); without it, invalid records are reported as failed and the rest run.
    :param max_concurrency: worker threads; the hook's rate limiter still caps the request rate.
    :param fail_on_error: what :meth:`BatchResult.raise_for_failures` does with failures.
    :param return_records: keep every result in input order (otherwise only counts and failures are
        held, so memory does not grow with the batch).
    :param label: names the batch in log lines and errors (e.g. the action).
    :param logger: where progress, failures and notes go.
    :param progress_interval: seconds between progress lines (0 disables the ticker).
    :param request_count: returns the number of HTTP requests made so far, for requests/s in progress.
    :return: the :class:`BatchResult`; this function raises only for bugs, never for failed records.
    """
    logger = logger or log
    items: Sequence[Any] = records if isinstance(records, Sequence) else list(records)
    total = len(items)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["total"] = total
    invalid = collect_invalid(items, validate) if validate is not None else []
    for entry in invalid:
        logger.error("%s: invalid record %s", label, _entry_line(entry))
    result = BatchResult(total, counts, fail_on_error=fail_on_error, label=label)
    if invalid and fail_on_error:
        counts["failed"] = len(invalid)
        result.failed, result.invalid_only = invalid, True
        return result
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
                logger.error("%s: record %s", label, _entry_line(entry))
                progress.record(failed=True)
                continue
            outcome = value if isinstance(value, Outcome) else Outcome("succeeded", value)
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


# --------------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------------
def check_option(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Validate a closed-set (``Literal``) operator argument, naming it and its allowed values.

    :raises PrefineryInputError: ``value`` is not one of ``allowed``.
    """
    return one_of(name, value, allowed)


def _parse_rendered(name: str, value: Any, kind: str) -> Any:
    """Undo what a non-native template does to a JSON or boolean argument (it renders text)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind == "bool":
        return bool_from_text(value)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # a Python repr, as Jinja renders a dict or list
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise PrefineryInputError(
            name,
            f"rendered to text that is neither JSON nor a Python literal: {text[:60]!r} (pass a "
            "dict/list, an XComArg, or set render_template_as_native_obj=True on the DAG)",
        ) from None


IfEmpty = Literal["skip", "fail"]
# What a template renders to when it found nothing (``xcom_pull`` of a misspelled task id): never a list.
_RENDERED_NOTHING = ("", "None")


class RecordsOperator(BaseOperator):
    """A write operator over one record (its fields as arguments) or many (``records=[...]``).

    Subclasses set ``action`` (names the batch; for Prefinery, the hook method and ``validation.WRITE_RULES``
    key) and ``record_fields``, and implement :meth:`check_record`, :meth:`run_record` and
    :meth:`request_count`. A concrete subclass gets a generated ``__init__`` whose keyword parameters are
    ``record_fields`` plus ``options`` (so ``.partial().expand(field=[...])`` validates), except ``email``:
    that name is also ``BaseOperator``'s alert address, so it is read from ``**kwargs`` — a DAG's
    ``default_args["email"]`` (alerts) is never taken for a record's e-mail, and the record's e-mail never
    receives Airflow's failure alerts. The fields are held together, templated, in ``self.record``.

    :param records: many records: a list of mappings with the same keys as the fields (or an XComArg or
        template rendering to one). Fields also given as arguments are defaults for every record.
    :param max_concurrency: requests in flight at once (default 4); the hook's rate limiter still applies.
    :param fail_on_error: fail the task when a record fails, after processing every other record (default
        True). False: succeed and report failures in the XCom. Invalid records: with True, the task fails
        before any request; with False, they are reported as failed and the valid ones run.
    :param return_records: also return every record's result, in input order (batch mode only).
    :param progress_interval: seconds between progress log lines (default 10).
    :param if_empty: what an empty ``records`` list means: ``skip`` (default; a day without data is normal
        for a scheduled DAG) logs "no records: nothing to do" and returns the empty report without a
        request; ``fail`` raises :class:`PrefineryInputError` before any request. Either way, ``records``
        rendered to ``""`` or ``"None"`` (typically an ``xcom_pull`` of a misspelled task id) is an input
        error: it is not a list.
    """

    action: ClassVar[str] = ""
    record_fields: ClassVar[tuple[str, ...]] = ()
    # Fields that hold JSON (rendered text is parsed back) and booleans ("True" is turned into True).
    json_fields: ClassVar[tuple[str, ...]] = ()
    bool_fields: ClassVar[tuple[str, ...]] = ()
    # Operator-specific options: name -> default. Added to the generated __init__ and set as attributes.
    options: ClassVar[dict[str, Any]] = {}
    # False for actions that must not be repeated (points, invitations): no Airflow retry after writes.
    idempotent: ClassVar[bool] = True
    # False when the action works on one object only (deleting a project).
    supports_records: ClassVar[bool] = True
    fields_not_in_signature: ClassVar[frozenset[str]] = frozenset({"email"})

    template_fields: Sequence[str] = ("record", "records")
    template_fields_renderers: ClassVar[dict[str, str]] = {"record": "json", "records": "json"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "record_fields" in cls.__dict__ and "__init__" not in cls.__dict__:
            cls.__init__ = _generated_init(cls)  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        records: Any = None,
        max_concurrency: int = 4,
        fail_on_error: bool = True,
        return_records: bool = False,
        progress_interval: float = 10.0,
        if_empty: IfEmpty = "skip",
        **kwargs: Any,
    ) -> None:
        record = {name: kwargs.pop(name, None) for name in self.record_fields}
        option_values = {name: kwargs.pop(name, default) for name, default in self.options.items()}
        super().__init__(**kwargs)
        self.record: dict[str, Any] = record
        self.records = records
        # Decided here, not from the rendered value: a template that renders to native None (an xcom_pull
        # of a misspelled task id under render_template_as_native_obj) must not turn a batch into one record.
        self.is_batch = records is not None
        if records is not None and not self.supports_records:
            raise PrefineryInputError("records", f"{type(self).__name__} works on one object: omit records=")
        self.max_concurrency = int(max_concurrency)
        if self.max_concurrency < 1:
            raise PrefineryInputError("max_concurrency", f"must be at least 1, got {max_concurrency!r}")
        self.fail_on_error = bool(fail_on_error)
        self.return_records = bool(return_records)
        self.progress_interval = float(progress_interval)
        self.if_empty: IfEmpty = check_option("if_empty", if_empty, get_args(IfEmpty))
        for name, value in option_values.items():
            setattr(self, name, value)

    # ---- hooks for subclasses ----
    def validate_options(self) -> None:
        """Check ``options`` at the end of the generated ``__init__`` (use :func:`check_option`)."""

    def check_record(self, fields: dict[str, Any]) -> None:
        """Raise :class:`PrefineryInputError` naming the field when ``fields`` is not a valid record."""

    def run_record(self, fields: dict[str, Any]) -> Any:
        """Apply one record: return the API's answer or an :class:`Outcome`; raise to fail it."""
        raise NotImplementedError

    def request_count(self) -> int | None:
        """HTTP requests made so far (for requests/s in progress lines); None when unknown."""
        return None

    def prepare(self, context: Context) -> None:
        """Run once after templates render and before any record (resolve ids, fail fast on config)."""

    # ---- the engine ----
    def normalise(self, raw: Any) -> dict[str, Any]:
        """Merge one record over the operator's own field values; parse rendered JSON; drop None values.

        :raises PrefineryInputError: not a mapping, or a field this action does not have.
        """
        if not isinstance(raw, Mapping):
            raise PrefineryInputError("record", f"must be a mapping of fields, got {type(raw).__name__}")
        unknown = [key for key in raw if key not in self.record_fields]
        if unknown:
            raise PrefineryInputError(
                str(unknown[0]), f"is not a field of {self.action}", allowed=self.record_fields
            )
        merged = {**self.record, **raw}
        for name in self.json_fields:
            merged[name] = _parse_rendered(name, merged.get(name), "json")
        for name in self.bool_fields:
            merged[name] = _parse_rendered(name, merged.get(name), "bool")
        return {key: value for key, value in merged.items() if value is not None}

    def rendered_records(self) -> Sequence[Any]:
        """The ``records`` argument after rendering, as a sequence (parsed when a template made text).

        :raises PrefineryInputError: it is not a list of records (including text that rendered to nothing).
        """
        if isinstance(self.records, str) and self.records.strip() in _RENDERED_NOTHING:
            raise PrefineryInputError(
                "records",
                f"rendered to {self.records!r}, not a list of records (an xcom_pull of a task id that "
                "does not exist renders 'None'; check the template)",
            )
        records = _parse_rendered("records", self.records, "json")
        if records is None:
            raise PrefineryInputError(
                "records",
                "rendered to None, not a list of records (an xcom_pull of a task id that does not exist?)",
            )
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise PrefineryInputError(
                "records", f"must be a list of mappings (one per record), got {type(records).__name__}"
            )
        return records if isinstance(records, Sequence) else list(records)

    def _validate(self, raw: Any) -> None:
        self.check_record(self.normalise(raw))

    def _apply(self, raw: Any) -> Any:
        return self.run_record(self.normalise(raw))

    def execute(self, context: Context) -> Any:
        if not self.is_batch:
            self.prepare(context)
            return self._execute_one()
        records = self.rendered_records()
        if records:
            self.prepare(context)
        elif self.if_empty == "fail":
            raise PrefineryInputError("records", "is an empty list and if_empty='fail'")
        else:
            self.log.info("%s: no records: nothing to do", self.action or type(self).__name__)
        result = run_batch(
            records,
            self._apply,
            validate=self._validate,
            max_concurrency=self.max_concurrency,
            fail_on_error=self.fail_on_error,
            return_records=self.return_records,
            label=self.action or type(self).__name__,
            logger=self.log,
            progress_interval=self.progress_interval,
            request_count=self.request_count,
        )
        value = result.to_xcom()
        ti = context.get("ti")
        if not result.ok and self.fail_on_error and self.do_xcom_push and ti is not None:
            # Failing tasks return nothing: push the report first, so downstream/reporting can read it.
            ti.xcom_push(key="return_value", value=value)
        result.raise_for_failures(retry_safe=self.idempotent)
        return value

    def _execute_one(self) -> Any:
        fields = self.normalise({})
        self.check_record(fields)
        try:
            value = self.run_record(fields)
        except PrefineryError as err:
            if not self.fail_on_error:
                self.log.error("%s failed (fail_on_error=False, returning None): %s", self.action, err)
                return None
            if err.outcome_unknown and not self.idempotent:
                raise NoRetryError(f"{err} (not retried: {self.action} is not idempotent)") from err
            raise
        outcome = value if isinstance(value, Outcome) else Outcome("succeeded", value)
        if outcome.note:
            self.log.info("%s: %s", self.action, outcome.note)
        return outcome.value


def _generated_init(cls: type[RecordsOperator]) -> Callable[..., None]:
    """Build ``__init__`` for a concrete operator: its fields and options as keyword parameters."""
    parent = cls.__mro__[1]

    def __init__(self: RecordsOperator, **kwargs: Any) -> None:
        parent.__init__(self, **kwargs)
        self.validate_options()  # after every __init__ in the chain has set its attributes

    params = [Parameter("self", Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        Parameter(name, Parameter.KEYWORD_ONLY, default=None)
        for name in cls.record_fields
        if name not in cls.fields_not_in_signature
    ]
    params += [Parameter(name, Parameter.KEYWORD_ONLY, default=d) for name, d in cls.options.items()]
    params.append(Parameter("kwargs", Parameter.VAR_KEYWORD))
    __init__.__signature__ = Signature(params)  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = cls.__doc__
    return __init__


class PrefineryBaseOperator(RecordsOperator):
    """A Prefinery write: the hook method ``action``, checked by ``validation.WRITE_RULES[action]`` first.

    :param prefinery_conn_id: the Prefinery connection (default ``prefinery_default``).
    :param beta_id: the project id (default: the connection's "API Beta ID").
    """

    template_fields: Sequence[str] = (*RecordsOperator.template_fields, "beta_id", "prefinery_conn_id")

    def __init__(
        self, *, prefinery_conn_id: str = "prefinery_default", beta_id: int | str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id

    @cached_property
    def hook(self) -> PrefineryHook:
        """The Prefinery hook, built on first use (after templates render) and shared by the workers."""
        from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

        return PrefineryHook(self.prefinery_conn_id, beta_id=self.beta_id)

    @cached_property
    def project_id(self) -> int:
        """The resolved project id (argument, else connection): resolved once, before any record."""
        return self.hook.resolve_beta_id(self.beta_id)

    def prepare(self, context: Context) -> None:
        self.project_id  # noqa: B018 - fail fast on a missing/invalid project id, before validation
        self.hook.client.ensure_pool(self.max_concurrency)

    def check_record(self, fields: dict[str, Any]) -> None:
        from airflow_provider_prefinery.validation import WRITE_RULES

        WRITE_RULES[self.action](**fields)

    def call(self, fields: Mapping[str, Any], action: str | None = None) -> Any:
        """Call the hook method for ``action`` (default: this operator's) with the record's fields."""
        return getattr(self.hook, action or self.action)(**fields, beta_id=self.project_id)

    def run_record(self, fields: dict[str, Any]) -> Any:
        return self.call(fields)

    def request_count(self) -> int | None:
        return self.hook.stats["requests"]
