"""The base of every write operator: one record (its fields as arguments) or many (``records=[...]``).

:class:`RecordsOperator` turns an operator's fields (one record) or ``records=[...]`` (many) into calls of
:meth:`RecordsOperator.run_record` through the batch engine (:mod:`airflow_provider_prefinery.batch`), so
the Piggy operator reuses it; :class:`PrefineryBaseOperator` adds the Prefinery connection, the project id
and the rules of ``validation.WRITE_RULES``.

A concrete operator declares ``action`` and ``record_fields``, writes its ``__init__`` out (its fields and
options: keyword-only, typed, documented) and hands the fields to the base as ``fields={...}``; where the
action needs it, it overrides :meth:`RecordsOperator.run_record`. A field named like a ``BaseOperator``
argument (``email``) is a record's, never Airflow's alert address: see
:mod:`airflow_provider_prefinery.shadowed_args`.

A record function returns the API's answer, or an :class:`~airflow_provider_prefinery.batch.Outcome` to
say "already done", "skipped" or "updated" (idempotent re-runs); it raises to fail the record.

Crash safety: a batch (and a single non-idempotent record) keeps a checkpoint in the task instance's
``task_state_store`` (:mod:`airflow_provider_prefinery.batch.checkpoint`), so a retry after a killed try
sends only what no try may have sent. Without a store (Airflow < 3.3) a log line says so and the old rule
holds: a non-idempotent batch that applied writes fails without an Airflow retry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, cast, get_args

from airflow.providers.common.compat.sdk import BaseOperator, Context

from airflow_provider_prefinery.batch import Checkpoint, NoRetryError, Outcome, batch_digest, run_batch
from airflow_provider_prefinery.batch.checkpoint import DONE_MARKS, FAILED, UNKNOWN
from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
)
from airflow_provider_prefinery.rendered import json_value, records_list
from airflow_provider_prefinery.shadowed_args import BASE_OPERATOR_ARGS, ShadowedArgs
from airflow_provider_prefinery.validation import WRITE_RULES, bool_from_text, one_of

if TYPE_CHECKING:
    from airflow.sdk import XComArg

    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

IfEmpty = Literal["skip", "fail"]
CHECKPOINT_KEY = "prefinery_batch"
"""The ``task_state_store`` key of a batch's checkpoint: renaming it strands the checkpoints in flight."""
# What ``records=`` takes: mappings with the operator's fields, or what renders (or resolves) to them.
Records: TypeAlias = "Iterable[Mapping[str, Any]] | XComArg | str | None"


class RecordsOperator(ShadowedArgs, BaseOperator):
    """A write operator over one record (its fields as arguments) or many (``records=[...]``).

    Subclasses set ``action`` (names the batch; for Prefinery, the hook method and ``validation.WRITE_RULES``
    key) and ``record_fields``, pass the fields from their ``__init__`` as ``fields``, and implement
    :meth:`check_record`, :meth:`run_record` and :meth:`request_count`. The fields are held together,
    templated, in ``self.record``.

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
    # False for actions that must not be repeated (points, invitations): no Airflow retry after writes.
    idempotent: ClassVar[bool] = True
    # False when the action works on one object only (deleting a project).
    supports_records: ClassVar[bool] = True
    # Seconds between checkpoint writes, and the stretch of records a non-idempotent batch claims ahead: a
    # killed try leaves about this many seconds of records outcome_unknown.
    checkpoint_interval: ClassVar[float] = 2.0

    template_fields: Sequence[str] = ("record", "records")
    template_fields_renderers: ClassVar[dict[str, str]] = {"record": "json", "records": "json"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.shadowed_args = frozenset(cls.record_fields) & BASE_OPERATOR_ARGS

    def __init__(
        self,
        *,
        fields: Mapping[str, Any],
        records: Records = None,
        max_concurrency: int = 4,
        fail_on_error: bool = True,
        return_records: bool = False,
        progress_interval: float = 10.0,
        if_empty: IfEmpty = "skip",
        **kwargs: Any,
    ) -> None:
        if set(fields) != set(self.record_fields):
            raise TypeError(f"{type(self).__name__} passes {sorted(fields)}, not its {self.record_fields}")
        super().__init__(**kwargs)
        self.record: dict[str, Any] = dict(fields)
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
        self.if_empty = cast(IfEmpty, one_of("if_empty", if_empty, get_args(IfEmpty)))

    # ---- hooks for subclasses ----
    def check_record(self, fields: dict[str, Any]) -> None:
        """Raise :class:`PrefineryInputError` naming the field when ``fields`` is not a valid record."""

    def run_record(self, fields: dict[str, Any]) -> Any:
        """Apply one record: return the API's answer or an :class:`Outcome`; raise to fail it."""
        raise NotImplementedError

    def request_count(self) -> int | None:
        """HTTP requests made so far (for requests/s in progress lines); None when unknown."""
        return None

    def prepare(self, context: Context) -> None:
        """Run once after templates render and before validation (resolve ids, fail fast on config)."""

    def before_first_record(self) -> None:
        """Run once when every record is valid, before the first is applied (check a shared target)."""

    def stops_batch(self, error: BaseException) -> bool:
        """True for an error that fails every record (401/402/403): the batch stops at the first one."""
        return isinstance(error, PrefineryAuthError)

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
            merged[name] = json_value(name, merged.get(name))
        for name in self.bool_fields:
            merged[name] = bool_from_text(merged.get(name))
        return {key: value for key, value in merged.items() if value is not None}

    def _validate(self, raw: Any) -> None:
        self.check_record(self.normalise(raw))

    def _apply(self, raw: Any) -> Any:
        return self.run_record(self.normalise(raw))

    @property
    def batch_label(self) -> str:
        """Names the batch in log lines and errors."""
        return self.action or type(self).__name__

    def execute(self, context: Context) -> Any:
        if not self.is_batch:
            self.prepare(context)
            return self._execute_one(context)
        records = records_list(self.records)
        checkpoint = None
        if records:
            self.prepare(context)
            checkpoint = self.checkpoint(context, records)
        elif self.if_empty == "fail":
            raise PrefineryInputError("records", "is an empty list and if_empty='fail'")
        else:
            self.log.info("%s: no records: nothing to do", self.batch_label)
        result = run_batch(
            records,
            self._apply,
            validate=self._validate,
            before_first_call=self.before_first_record,
            max_concurrency=self.max_concurrency,
            fail_on_error=self.fail_on_error,
            return_records=self.return_records,
            label=self.batch_label,
            logger=self.log,
            progress_interval=self.progress_interval,
            request_count=self.request_count,
            stops_batch=self.stops_batch,
            checkpoint=checkpoint,
        )
        value = result.to_xcom()
        ti = context.get("ti")
        if result.fails_task and self.do_xcom_push and ti is not None:
            # Failing tasks return nothing: push the report first, so downstream/reporting can read it.
            ti.xcom_push(key="return_value", value=value)
        result.raise_for_failures(retry_safe=self.idempotent, checkpointed=checkpoint is not None)
        return value

    def checkpoint(self, context: Context, records: Sequence[Any]) -> Checkpoint | None:
        """The batch's checkpoint in the task's ``task_state_store``; None (with a log line) without one."""
        store = context.get("task_state_store")
        if store is None:
            if self.idempotent:
                self.log.info(
                    "%s: no task_state_store (Airflow < 3.3, or a context without one): no checkpoint; a "
                    "retry sends every record again (safe: the action is idempotent)",
                    self.batch_label,
                )
            else:
                self.log.warning(
                    "%s: no task_state_store (Airflow < 3.3, or a context without one): no checkpoint, so a "
                    "retry could send applied records again; if this batch fails after applying writes it "
                    "fails without an Airflow retry",
                    self.batch_label,
                )
            return None
        ti = context.get("ti")
        return Checkpoint(
            store,
            key=CHECKPOINT_KEY,
            digest=batch_digest(self.batch_label, type(self).__name__, self.record, records),
            exclusive=not self.idempotent,
            try_number=getattr(ti, "try_number", None),
            label=self.batch_label,
            logger=self.log,
            interval=self.checkpoint_interval,
            min_claim=2 * self.max_concurrency,
        )

    def _execute_one(self, context: Context) -> Any:
        fields = self.normalise({})
        self.check_record(fields)
        guard = None if self.idempotent else self.checkpoint(context, [fields])
        if guard is not None:
            earlier = guard.start(1)
            if earlier is not None and (earlier.done or earlier.unknown):
                return self._resume_one(earlier)
        self.before_first_record()
        if guard is not None:
            guard.claim(0)  # written before the request: a killed try leaves "maybe sent", never "not sent"
        try:
            value = self.run_record(fields)
        except Exception as err:
            if guard is not None:
                guard.finished(0, UNKNOWN if getattr(err, "outcome_unknown", False) else FAILED)
                guard.note(0, {"error": type(err).__name__, "message": str(err)})
                guard.close(complete=True, ok=False)
            return self._one_failed(err)
        outcome = Outcome.of(value)
        if guard is not None:
            guard.finished(0, DONE_MARKS[outcome.status])
            guard.close(complete=True, ok=True, extra={"value": outcome.value})
        if outcome.note:
            self.log.info("%s: %s", self.action, outcome.note)
        return outcome.value

    def _one_failed(self, err: Exception) -> Any:
        if not isinstance(err, PrefineryError):
            raise err
        if not self.fail_on_error:
            self.log.error("%s failed (fail_on_error=False, returning None): %s", self.action, err)
            return None
        if err.outcome_unknown and not self.idempotent:
            raise NoRetryError(f"{err} (not retried: {self.action} is not idempotent)") from err
        raise err

    def _resume_one(self, earlier: Any) -> Any:
        """A single non-idempotent record an earlier try sent (or may have): never send it again."""
        if earlier.unknown:
            note = earlier.notes.get(0)
            why = note[-1] if note else "its outcome is unknown"
            raise NoRetryError(f"{self.action}: try {earlier.try_number}: {why} (not sent again)")
        self.log.info(
            "%s: applied by try %s already: not sent again, returning its answer",
            self.action,
            earlier.try_number,
        )
        return earlier.extra.get("value")


def already_gone(what: str) -> Outcome:
    """The outcome of deleting what a 404 says is not there: done by an earlier run (or by hand)."""
    return Outcome("already_done", None, f"{what} is already gone (404)")


class PrefineryBaseOperator(RecordsOperator):
    """A Prefinery write: the hook method ``action``, checked by ``validation.WRITE_RULES[action]`` first.

    :param prefinery_conn_id: the Prefinery connection (default ``prefinery_default``; templated).
    :param beta_id: the project id (default: the connection's "API Beta ID"; templated).
    """

    template_fields: Sequence[str] = (*RecordsOperator.template_fields, "beta_id", "prefinery_conn_id")
    ui_color = "#fde2c8"
    # Set for a delete: a 404 then means "already gone" (done). Formatted with the record's fields.
    gone_when_missing: ClassVar[str | None] = None

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
        self._project_lock = threading.Lock()
        self._project_gone: bool | None = None

    def stops_batch(self, error: BaseException) -> bool:
        """401/402/403, or a 404 for the project itself (not for one record): every record would fail."""
        if super().stops_batch(error):
            return True
        return isinstance(error, PrefineryNotFoundError) and self.project_missing(error)

    @cached_property
    def _project_paths(self) -> frozenset[str]:
        """The paths of this project that name no record: a 404 there can only mean the project."""
        from airflow_provider_prefinery.hooks.prefinery_endpoints import ENDPOINTS

        rows = [row.path for row in ENDPOINTS.values() if "{id}" not in row.path]
        return frozenset(path.format(beta_id=self.project_id) for path in rows)

    def project_missing(self, error: PrefineryNotFoundError) -> bool:
        """True when a 404 is for the project: on a path naming no record, or, on a record's path, when the
        project itself is not found (one GET of the project per task, on the first such 404)."""
        if error.path in self._project_paths:
            return True
        with self._project_lock:
            if self._project_gone is None:
                try:
                    self.hook.get_project(self.project_id)
                except PrefineryNotFoundError:
                    self._project_gone = True
                except PrefineryError:
                    return False  # unknown: the record's own 404 stands
                else:
                    self._project_gone = False
            return self._project_gone

    def check_record(self, fields: dict[str, Any]) -> None:
        WRITE_RULES[self.action](**fields)

    def call(self, fields: Mapping[str, Any], action: str | None = None) -> Any:
        """Call the hook method for ``action`` (default: this operator's) with the record's fields."""
        return getattr(self.hook, action or self.action)(**fields, beta_id=self.project_id)

    def run_record(self, fields: dict[str, Any]) -> Any:
        try:
            return self.call(fields)
        except PrefineryNotFoundError as err:
            if self.gone_when_missing is None or self.project_missing(err):
                raise  # a missing project is not an "already deleted" record
            return already_gone(self.gone_when_missing.format(**fields))

    def request_count(self) -> int | None:
        return self.hook.stats["requests"]
