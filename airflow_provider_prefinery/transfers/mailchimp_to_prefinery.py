"""MailchimpToPrefineryOperator: sync an audience's changes of one interval into a Prefinery project.

Plan, then apply. Members changed in the window become create / update / suppress / unchanged / skip
actions by a configurable mapping (``mailchimp_rules.py``, planned purely by ``mailchimp_plan.py``);
applying sends only the writes, streamed with bounded concurrency (``mailchimp_apply.py``). A member's
Prefinery user id comes from an id index kept in an Airflow Variable (``mailchimp_id_index.py``, whose
docstring explains the design), so the sync spends no rate-limited LIST per member.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseOperator, Context

from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError
from airflow_provider_prefinery.transfers.mailchimp_apply import (
    Applier,
    Tally,
    apply_writes,
    log_plan,
    prefetch,
)
from airflow_provider_prefinery.transfers.mailchimp_id_index import (
    IdIndex,
    IndexStore,
    MemoryIndexStore,
    VariableIndexStore,
    index_rows_from_prefinery,
    stale_reason,
)
from airflow_provider_prefinery.transfers.mailchimp_plan import Planner
from airflow_provider_prefinery.transfers.mailchimp_rules import (
    DEFAULT_MERGE_FIELDS,
    DEFAULT_STATUS_ACTIONS,
    SyncRules,
    parse_time,
)
from airflow_provider_prefinery.validation import one_of

if TYPE_CHECKING:
    from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

DEFAULT_INDEX_VARIABLE = "prefinery_id_index_{beta_id}"
WINDOW_OVERLAP = timedelta(seconds=1)  # asked of Mailchimp on top of the window, then cut exactly here

IndexRebuild = Literal["listing", "lazy"]


def as_datetime(name: str, value: Any) -> datetime | None:
    """A window bound from an argument or the context: datetime, ISO text (a rendered template) or empty."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    parsed = parse_time(value.strip() if isinstance(value, str) else value)
    if parsed is None:
        raise PrefineryInputError(name, f"is not an ISO 8601 timestamp: {value!r}")
    return parsed.astimezone(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class MailchimpToPrefineryOperator(BaseOperator):
    """Sync the Mailchimp members changed in the run's data interval into a Prefinery project.

    The window defaults to the DAG run's data interval (``since`` = ``data_interval_start``, ``before`` =
    ``data_interval_end``, half-open), so backfills and re-runs are exact and idempotent. Statuses map by
    ``status_actions``; merge fields to profile fields by ``merge_fields``. See ``mailchimp_id_index``'s
    docstring for how user ids are found without a rate-limited LIST per member.

    :param list_id: the Mailchimp audience id (default: the Mailchimp connection's ``list_id`` extra).
    :param beta_id: the Prefinery project id (default: the Prefinery connection's "API Beta ID").
    :param mailchimp_conn_id: the Mailchimp connection (default ``mailchimp_default``).
    :param prefinery_conn_id: the Prefinery connection (default ``prefinery_default``).
    :param since: window start, inclusive (datetime or ISO text; default ``data_interval_start``; empty
        or None with no data interval: from the beginning).
    :param before: window end, exclusive (default ``data_interval_end``).
    :param status_actions: Mailchimp status -> ``"user"`` (create, or update the profile),
        ``"suppression:Unsubscribe"``, ``"suppression:Manual"`` or None (no change). Default: subscribed
        -> user, unsubscribed -> suppression Unsubscribe, cleaned -> suppression Manual, others -> None.
    :param merge_fields: merge field -> profile field (default ``FNAME`` -> first_name, ``LNAME`` ->
        last_name; ``ADDRESS.city`` reads inside an address field).
    :param create_status: status of newly created users (default: Prefinery's own default).
    :param dry_run: plan and log the plan, make no write (and leave the stored index alone); members that
        would fail (invalid addresses) are reported in the result, never raised.
    :param fail_on_error: fail the task when any member failed, after applying all others (default True).
    :param max_concurrency: Prefinery writes in flight at once (default 10); the hook's rate limit holds.
    :param write_rate_limit: client-side Prefinery write limit in requests/s (default: the connection's
        ``write_rate_limit`` extra; none when unset).
    :param index_variable: the Airflow Variable holding the id index (default
        ``prefinery_id_index_{beta_id}``; ``{beta_id}`` is filled in); None keeps it for one run only.
    :param index_rebuild: ``"listing"`` (default): rebuild a missing or stale index with one paged listing
        of users and suppressions; ``"lazy"``: never list, learn ids as members change.
    :param index_max_age: rebuild an index older than this (timedelta or seconds; None: never by age).
    :param progress_interval: seconds between progress log lines.
    :return: ``{"counts": {created, updated, suppressed, unchanged, skipped, failed}, "requests": ...,
        "window": ..., "index": ..., "failed": [...], ...}`` (JSON).
    """

    template_fields: Sequence[str] = (
        "list_id",
        "beta_id",
        "since",
        "before",
        "mailchimp_conn_id",
        "prefinery_conn_id",
        "index_variable",
    )
    ui_color = "#ffe01b"

    def __init__(
        self,
        *,
        list_id: str | None = None,
        beta_id: int | str | None = None,
        mailchimp_conn_id: str = "mailchimp_default",
        prefinery_conn_id: str = "prefinery_default",
        since: datetime | str | None = None,
        before: datetime | str | None = None,
        status_actions: Mapping[str, str | None] | None = None,
        merge_fields: Mapping[str, str] | None = None,
        create_status: str | None = None,
        dry_run: bool = False,
        fail_on_error: bool = True,
        max_concurrency: int = 10,
        write_rate_limit: float | None = None,
        index_variable: str | None = DEFAULT_INDEX_VARIABLE,
        index_rebuild: IndexRebuild = "listing",
        index_max_age: timedelta | float | None = timedelta(days=7),
        progress_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_id = list_id
        self.beta_id = beta_id
        self.mailchimp_conn_id = mailchimp_conn_id
        self.prefinery_conn_id = prefinery_conn_id
        self.since = since
        self.before = before
        self.rules = SyncRules(
            status_actions=dict(DEFAULT_STATUS_ACTIONS if status_actions is None else status_actions),
            merge_fields=dict(DEFAULT_MERGE_FIELDS if merge_fields is None else merge_fields),
            create_status=create_status,
        )
        # Not ``self.dry_run``: that would hide BaseOperator.dry_run(), which renders the templates.
        self.plan_only = bool(dry_run)
        self.fail_on_error = bool(fail_on_error)
        self.max_concurrency = int(max_concurrency)
        if self.max_concurrency < 1:
            raise PrefineryInputError("max_concurrency", f"must be at least 1, got {max_concurrency!r}")
        self.write_rate_limit = write_rate_limit
        self.index_variable = index_variable
        self.index_rebuild = one_of("index_rebuild", index_rebuild, ("listing", "lazy"))
        if isinstance(index_max_age, (int, float)):
            index_max_age = timedelta(seconds=index_max_age)
        self.index_max_age = index_max_age
        self.progress_interval = float(progress_interval)

    # ------------------------------------------------------------------ hooks and resolved settings
    @cached_property
    def prefinery(self) -> PrefineryHook:
        from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

        hook = PrefineryHook(
            self.prefinery_conn_id, beta_id=self.beta_id, write_rate_limit=self.write_rate_limit
        )
        hook.client.ensure_pool(self.max_concurrency)
        return hook

    @cached_property
    def mailchimp(self) -> MailchimpHook:
        from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook

        return MailchimpHook(self.mailchimp_conn_id)

    def window(self, context: Context | Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
        """The half-open window ``[since, before)``: the arguments, else the run's data interval."""
        since = self.since if self.since is not None else context.get("data_interval_start")
        before = self.before if self.before is not None else context.get("data_interval_end")
        start, end = as_datetime("since", since), as_datetime("before", before)
        if start is not None and end is not None and start >= end:
            raise PrefineryInputError(
                "since/before",
                f"empty window [{start.isoformat()}, {end.isoformat()}): a schedule with zero-width data "
                "intervals (Airflow 3's default for cron strings) needs CronDataIntervalTimetable; or pass "
                "since=",
            )
        return start, end

    def index_store(self, beta_id: int) -> IndexStore:
        if not self.index_variable:
            return MemoryIndexStore()
        return VariableIndexStore(self.index_variable.replace("{beta_id}", str(beta_id)))

    def index_scope(self, beta_id: int) -> str:
        """Names the Prefinery project an index describes (host and project), without the key."""
        origin = self.prefinery.client.base_url
        return hashlib.sha256(f"{origin}|{beta_id}".encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ the id index
    def load_index(self, store: IndexStore, beta_id: int) -> tuple[IdIndex, dict[str, Any]]:
        """Load the stored index; rebuild it when missing or stale (unless lazy); report what happened."""
        scope = self.index_scope(beta_id)
        index = store.load()
        reason = stale_reason(index, scope, self.index_max_age)
        report: dict[str, Any] = {"variable": store.name, "rebuilt": False}
        if reason is None and index is not None:
            report["entries"] = len(index)
            return index, report
        if self.index_rebuild == "lazy":
            kept = index if index is not None and index.meta.get("scope") == scope else IdIndex()
            kept.meta.update(scope=scope)
            self.log.info("Id index %s (%s): learning ids lazily (index_rebuild='lazy')", store.name, reason)
            report["entries"] = len(kept)
            return kept, report
        self.log.info("Id index %s: %s; rebuilding it with one paged listing of users and suppressions",
                      store.name or "(in memory)", reason)  # fmt: skip
        start, before = time.monotonic(), self.prefinery.stats["requests"]
        users = self.prefinery.list_users(beta_id=beta_id)
        suppressions = self.prefinery.list_suppressions(beta_id=beta_id)
        rows = index_rows_from_prefinery(users, suppressions, self.rules)
        meta = {"scope": scope, "built_at": time.time(), "rebuilt_now": True}
        index = IdIndex.from_entries(rows, meta)
        cost, seconds = self.prefinery.stats["requests"] - before, round(time.monotonic() - start, 3)
        self.log.info("Id index rebuilt: %d e-mails from %d requests in %.1f s", len(index), cost, seconds)
        report.update(
            rebuilt=True, entries=len(index), rebuild_requests=cost, rebuild_seconds=seconds, reason=reason
        )
        return index, report

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        since, before = self.window(context)
        list_id = self.mailchimp.resolve_list_id(self.list_id or None)
        beta_id = self.prefinery.resolve_beta_id(self.beta_id)
        self.mailchimp.client  # noqa: B018 - a bad Mailchimp connection fails now, before the index listing
        self.log.info("Syncing Mailchimp audience %s -> Prefinery project %s, members changed in [%s, %s)%s",
                      list_id, beta_id, _iso(since) or "the beginning", _iso(before) or "now",
                      " (dry run: no writes)" if self.plan_only else "")  # fmt: skip
        store = self.index_store(beta_id)
        index, index_report = self.load_index(store, beta_id)
        planner = Planner(self.rules, index, since=since, before=before)
        members = self.mailchimp.list_members(
            list_id,
            since_last_changed=(since - WINDOW_OVERLAP) if since else None,
            before_last_changed=(before + WINDOW_OVERLAP) if before else None,
        )
        applier = Applier(self.prefinery, beta_id, self.rules, index)
        tally = Tally()
        try:
            actions = planner.plan(prefetch(members))
            if self.plan_only:
                log_plan(actions, tally, self.log)
            else:
                apply_writes(
                    actions, applier, tally, max_concurrency=self.max_concurrency,
                    progress_interval=self.progress_interval, logger=self.log,
                )  # fmt: skip
        finally:
            if not self.plan_only and (index.changes or index_report["rebuilt"]):
                self._save_index(store, index)
        report = self._report(tally, planner, applier, index, index_report, since, before, started)
        self.log.info("Sync %s: %s", "planned" if self.plan_only else "done",
                      ", ".join(f"{k} {v:,}" for k, v in report["counts"].items()))  # fmt: skip
        if tally.failed and self.fail_on_error and not self.plan_only:
            if self.do_xcom_push and "ti" in context:
                context["ti"].xcom_push(key="return_value", value=report)
            raise SyncFailedError(report)
        return report

    def _save_index(self, store: IndexStore, index: IdIndex) -> None:
        """Save the index; a failure costs the next run a rebuild, never this run's result."""
        try:
            store.save(index)
        except Exception:
            self.log.exception("Could not save the id index %s; the next run will rebuild it", store.name)

    def _report(
        self,
        tally: Tally,
        planner: Planner,
        applier: Applier,
        index: IdIndex,
        index_report: dict[str, Any],
        since: datetime | None,
        before: datetime | None,
        started: float,
    ) -> dict[str, Any]:
        prefinery, mailchimp = self.prefinery.stats, self.mailchimp.stats
        by_kind = dict(sorted(applier.calls.items()))
        if index_report.get("rebuild_requests"):
            by_kind["index_listing"] = index_report["rebuild_requests"]
        by_kind["list_members"] = mailchimp["requests"]
        return {
            "counts": dict(tally.counts),
            "requests": {
                "prefinery": prefinery["requests"],
                "prefinery_retries": prefinery["retries"],
                "mailchimp": mailchimp["requests"],
                "by_kind": by_kind,
            },
            "members": planner.stats.members,
            "duplicates": planner.stats.duplicates,
            "outside_window": planner.stats.outside_window,
            "window": {"since": _iso(since), "before": _iso(before)},
            "index": {**index_report, "entries": len(index)},
            "dry_run": self.plan_only,
            "seconds": round(time.monotonic() - started, 3),
            "failed": tally.failures,
        }


class SyncFailedError(PrefineryError):
    """Some members could not be synced (the others were); ``report`` holds counts and failures."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        failures = report["failed"]
        lines = "; ".join(
            f"{f['record'].get('email')}: {f.get('error')}"
            + (f" (code {f['code']})" if f.get("code") is not None else "")
            + f": {f.get('message')}"
            for f in failures[:20]
        )
        more = f" ... and {report['counts']['failed'] - 20} more" if report["counts"]["failed"] > 20 else ""
        super().__init__(f"{report['counts']['failed']} member(s) failed to sync: {lines}{more}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.report,))


__all__ = ["MailchimpToPrefineryOperator", "SyncFailedError"]
