"""MailchimpToPrefineryOperator: sync an audience's changes of one interval into a Prefinery project.

Plan, then apply. The plan is pure (``mailchimp_plan.py``): members changed in the window become
create / update / suppress / unchanged / skip actions by a configurable mapping. Applying sends only the
writes, through ``PrefineryHook``, streamed through the core's ``bounded_map`` with the batch pieces of
``operators/base.py`` (``Outcome``, ``describe_error``, ``Progress``): bounded concurrency, every failure
kept and reported, progress lines. Writes start with the first Mailchimp page and memory stays flat for
any audience size. (``run_batch`` itself is not used: it validates a whole batch before the first call,
so it holds its input, and each batch would drain before the next starts.)

Finding a member's Prefinery user id (the id-index design)
----------------------------------------------------------
Prefinery can only update a user by id, and the one way to find an id by e-mail is LIST users, limited to
60 per minute per project. One LIST per changed member would cap a sync at one member per second. So:

* **Create first.** A member the sync has never seen is created with one POST. If the e-mail already
  exists Prefinery answers 2310; only then does the sync spend one LIST to fetch the id (and updates).
* **An id index.** Per e-mail, the user id and a 32-bit digest of what Prefinery holds for the fields
  the sync owns (the mapped profile fields, or "suppressed"). A changed member costs one write (POST or
  PUT); a member whose desired state has the digest Prefinery already holds costs no request at all.
  Keys are 64-bit fingerprints of the lower-cased e-mail, so no address is stored in Airflow.
* **Where it lives: an Airflow Variable** (``prefinery_id_index_<beta_id>`` by default). Every worker of
  every executor reaches Variables through Airflow itself (the Task SDK's API on Airflow 3), it outlives
  runs (XCom is scoped to one run and is purged by ``airflow db clean``; reading the previous run's XCom
  breaks on the first run after a clear), several DAGs writing one project can share it, and an operator
  can delete it in the UI to force a rebuild. It is stored compactly: three sorted arrays (8 + 8 + 4
  bytes per user), zlib-compressed and base64-encoded, about 2 MB for 100,000 users, well inside the
  Variable column (TEXT on PostgreSQL and SQLite, MEDIUMTEXT = 16 MB on MySQL). Each run merges only
  its own changes into the value read back just before saving, so concurrent runs do not erase each other.
* **Rebuilt by one paged listing** of users and suppressions when missing, unreadable, built for another
  host or project, or older than ``index_max_age`` (default 7 days, to pick up edits made in Prefinery
  by hand). That costs ``users / 25`` LIST calls (about 1,500 users a minute at the documented limit),
  once. For very large projects ``index_rebuild="lazy"`` skips the listing and learns ids as members
  change (create-first, then one LIST per member that turns out to exist).

Every shortcut is checked by the API itself: a stale entry costs a fallback, never a wrong write (an
update of a deleted user answers 404 and the member is created; a create of an existing user answers 2310
and the user is looked up).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, Literal, Protocol

from airflow.providers.common.compat.sdk import BaseOperator, Context

from airflow_provider_prefinery.batch import Outcome, Progress, describe_error
from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.prefinery import DUPLICATE_SUPPRESSION, DUPLICATE_USER, PrefineryHook
from airflow_provider_prefinery.hooks.rest import bounded_map
from airflow_provider_prefinery.transfers.mailchimp_plan import (
    DEFAULT_MERGE_FIELDS,
    DEFAULT_STATUS_ACTIONS,
    SUPPRESSED_DIGEST,
    WRITES,
    Action,
    IdIndex,
    Planner,
    SyncRules,
    index_rows_from_prefinery,
    parse_time,
    user_digest,
)
from airflow_provider_prefinery.validation import one_of as check_option

COUNT_KEYS = ("created", "updated", "suppressed", "unchanged", "skipped", "failed")
DEFAULT_INDEX_VARIABLE = "prefinery_id_index_{beta_id}"
MAX_FAILURES_IN_XCOM = 100
DRY_RUN_LOG_LINES = 100
WINDOW_OVERLAP = timedelta(seconds=1)  # asked of Mailchimp on top of the window, then cut exactly here

IndexRebuild = Literal["listing", "lazy"]


# --------------------------------------------------------------------------------------------------
# Where the id index is kept
# --------------------------------------------------------------------------------------------------
class IndexStore(Protocol):
    """Load and save an :class:`IdIndex` somewhere every worker can reach."""

    name: str | None

    def load(self) -> IdIndex | None: ...

    def save(self, index: IdIndex) -> None: ...


class VariableIndexStore:
    """The id index in one Airflow Variable (see the module docstring for why a Variable)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> IdIndex | None:
        from airflow.providers.common.compat.sdk import Variable

        text = Variable.get(self.name, None)  # positional: "default" on Airflow 3, "default_var" on 2
        return IdIndex.decode(text) if text else None

    def save(self, index: IdIndex) -> None:
        """Merge this run's changes into the value stored now (another run may have saved meanwhile)."""
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self.name,
            index.for_saving(self.load()).encode(),
            description="Prefinery user ids by e-mail fingerprint, kept by MailchimpToPrefineryOperator. "
            "Delete it to force a rebuild.",
        )


class MemoryIndexStore:
    """No persistence: the index lives for one run (``index_variable=None``)."""

    name = None

    def load(self) -> IdIndex | None:
        return None

    def save(self, index: IdIndex) -> None:
        return None


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------
def prefetch(items: Iterable[Any], depth: int = 1000) -> Iterator[Any]:
    """Read ``items`` in a background thread, at most ``depth`` ahead: listing overlaps applying.

    An error in the producer is raised in the consumer; a consumer that stops early stops the producer.
    """
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                box.put((kind, value), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer("item", item):
                    return
            offer("end", None)
        except BaseException as exc:  # handed to the consumer
            offer("error", exc)

    thread = threading.Thread(target=produce, name="mailchimp-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


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


# --------------------------------------------------------------------------------------------------
# Applying one action
# --------------------------------------------------------------------------------------------------
class Applier:
    """Send one planned action to Prefinery, with the fallbacks that keep a stale index harmless.

    Thread-safe: it runs in ``bounded_map``'s workers. Records what Prefinery now holds in the index and
    counts calls by kind.
    """

    def __init__(self, hook: Any, beta_id: int, rules: SyncRules, index: IdIndex) -> None:
        self.hook = hook
        self.beta_id = beta_id
        self.rules = rules
        self.index = index
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    def _remember(self, action: Action, user_id: int | None, digest: int) -> None:
        with self._lock:
            self.index.set(action.key, user_id, digest)

    def __call__(self, action: Action) -> Outcome:
        if action.kind == "create":
            return self.create(action)
        if action.kind == "update":
            return self.update(action)
        if action.kind == "suppress":
            return self.suppress(action)
        raise ValueError(f"not a write: {action.kind}")

    def create(self, action: Action) -> Outcome:
        profile = {k: v for k, v in (action.profile or {}).items() if v != ""}
        self._count("create_user")
        try:
            user = self.hook.create_user(
                action.email, status=self.rules.create_status, profile=profile or None, beta_id=self.beta_id
            )
        except PrefineryValidationError as err:
            if err.code != DUPLICATE_USER:
                raise
            return self._existing_user(action)
        self._remember(action, _user_id(user), action.digest)
        return Outcome("succeeded", "created")

    def _existing_user(self, action: Action) -> Outcome:
        """The e-mail exists although the index did not know it: one LIST for the id, then update."""
        self._count("find_user")
        user = self.hook.find_user(action.email, beta_id=self.beta_id)
        if user is None:
            raise PrefineryNotFoundError(
                f"{action.email}: create answered 'duplicate user' but no user has this e-mail",
                method="GET",
                path="testers.json",
            )
        user_id = _user_id(user)
        if user_digest(self.rules.owned_profile(user.get("profile"))) == action.digest:
            self._remember(action, user_id, action.digest)
            return Outcome("already_done", "unchanged", note=f"{action.email}: already up to date")
        return self.update(action, user_id)

    def update(self, action: Action, user_id: int | None = None) -> Outcome:
        user_id = user_id or action.user_id
        self._count("update_user")
        try:
            self.hook.update_user(user_id, profile=action.profile, beta_id=self.beta_id)
        except PrefineryNotFoundError:
            # The index knew a user that is gone (deleted in Prefinery): create it afresh.
            return self.create(action)
        self._remember(action, user_id, action.digest)
        return Outcome("updated", "updated")

    def suppress(self, action: Action) -> Outcome:
        self._count("create_suppression")
        try:
            self.hook.create_suppression(action.email, reason=action.reason, beta_id=self.beta_id)
        except PrefineryValidationError as err:
            if err.code != DUPLICATE_SUPPRESSION:
                raise
            self._remember(action, action.user_id, SUPPRESSED_DIGEST)
            return Outcome("already_done", "unchanged", note=f"{action.email}: already suppressed")
        self._remember(action, action.user_id, SUPPRESSED_DIGEST)
        return Outcome("succeeded", "suppressed")


def _user_id(user: Any) -> int:
    try:
        return int(user["id"])
    except (TypeError, KeyError, ValueError):
        raise PrefineryValidationError(
            f"expected a user object with an id, got {str(user)[:100]}", method="POST", path="testers.json"
        ) from None


# --------------------------------------------------------------------------------------------------
# The operator
# --------------------------------------------------------------------------------------------------
class MailchimpToPrefineryOperator(BaseOperator):
    """Sync the Mailchimp members changed in the run's data interval into a Prefinery project.

    The window defaults to the DAG run's data interval (``since`` = ``data_interval_start``, ``before`` =
    ``data_interval_end``, half-open), so backfills and re-runs are exact and idempotent. Statuses map by
    ``status_actions``; merge fields to profile fields by ``merge_fields``. See the module docstring for
    how user ids are found without a rate-limited LIST per member.

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
        self.dry_run = bool(dry_run)
        self.fail_on_error = bool(fail_on_error)
        self.max_concurrency = int(max_concurrency)
        if self.max_concurrency < 1:
            raise PrefineryInputError("max_concurrency", f"must be at least 1, got {max_concurrency!r}")
        self.write_rate_limit = write_rate_limit
        self.index_variable = index_variable
        self.index_rebuild = check_option("index_rebuild", index_rebuild, ("listing", "lazy"))
        if isinstance(index_max_age, (int, float)):
            index_max_age = timedelta(seconds=index_max_age)
        self.index_max_age = index_max_age
        self.progress_interval = float(progress_interval)

    # ------------------------------------------------------------------ hooks and resolved settings
    @cached_property
    def prefinery(self) -> Any:
        hook = PrefineryHook(
            self.prefinery_conn_id, beta_id=self.beta_id, write_rate_limit=self.write_rate_limit
        )
        hook.client.ensure_pool(self.max_concurrency)
        return hook

    @cached_property
    def mailchimp(self) -> Any:
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
        reason = self._stale_reason(index, scope)
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

    def _stale_reason(self, index: IdIndex | None, scope: str) -> str | None:
        if index is None:
            return "missing"
        if index.meta.get("scope") != scope:
            return "built for another Prefinery host or project"
        built = index.meta.get("built_at")
        if not built:
            return "never fully listed"
        age = time.time() - float(built)
        if self.index_max_age is not None and age > self.index_max_age.total_seconds():
            return f"older than index_max_age ({age / 86400:.1f} days)"
        return None

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        since, before = self.window(context)
        list_id = self.mailchimp.resolve_list_id(self.list_id or None)
        beta_id = self.prefinery.resolve_beta_id(self.beta_id)
        self.mailchimp.client  # noqa: B018 - a bad Mailchimp connection fails now, before the index listing
        self.log.info("Syncing Mailchimp audience %s -> Prefinery project %s, members changed in [%s, %s)%s",
                      list_id, beta_id, _iso(since) or "the beginning", _iso(before) or "now",
                      " (dry run: no writes)" if self.dry_run else "")  # fmt: skip
        store = self.index_store(beta_id)
        index, index_report = self.load_index(store, beta_id)
        planner = Planner(self.rules, index, since=since, before=before)
        members = self.mailchimp.list_members(
            list_id,
            since_last_changed=(since - WINDOW_OVERLAP) if since else None,
            before_last_changed=(before + WINDOW_OVERLAP) if before else None,
        )
        applier = Applier(self.prefinery, beta_id, self.rules, index)
        tally = _Tally()
        try:
            actions = planner.plan(prefetch(members))
            if self.dry_run:
                self._log_plan(actions, tally)
            else:
                self._apply(actions, applier, tally)
        finally:
            if not self.dry_run and (index.changes or index_report["rebuilt"]):
                self._save_index(store, index)
        report = self._report(tally, planner, applier, index, index_report, since, before, started)
        self.log.info("Sync %s: %s", "planned" if self.dry_run else "done",
                      ", ".join(f"{k} {v:,}" for k, v in report["counts"].items()))  # fmt: skip
        if tally.failed and self.fail_on_error and not self.dry_run:
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

    def _log_plan(self, actions: Iterable[Action], tally: _Tally) -> None:
        logged = 0
        for action in actions:
            tally.planned(action)
            if action.kind in WRITES or action.kind == "invalid":
                if logged < DRY_RUN_LOG_LINES:
                    self.log.info("plan: %s", action.summary())
                logged += 1
        if logged > DRY_RUN_LOG_LINES:
            self.log.info("plan: ... and %d more writes", logged - DRY_RUN_LOG_LINES)

    def _apply(self, actions: Iterable[Action], applier: Applier, tally: _Tally) -> None:
        """Send every write, streaming; a newer duplicate waits until the earlier writes are done."""
        deferred: list[Action] = []

        def writes() -> Iterator[Action]:
            for action in actions:
                if action.kind not in WRITES:
                    tally.planned(action)
                elif action.supersedes:
                    deferred.append(action)
                else:
                    yield action

        self._stream(writes(), applier, tally, "sync writes")
        if deferred:
            self._stream(iter(deferred), applier, tally, "sync writes (newer duplicates)")

    def _stream(self, writes: Iterator[Action], applier: Applier, tally: _Tally, label: str) -> None:
        """Apply writes with at most ``max_concurrency`` in flight; count each, log failures and progress."""
        with Progress(
            None,
            label=label,
            logger=self.log,
            interval=self.progress_interval,
            request_count=lambda: self.prefinery.stats["requests"],
        ) as progress:
            for _, action, outcome, error in bounded_map(applier, writes, max_workers=self.max_concurrency):
                if error is not None:
                    entry = tally.fail(action, error)
                    self.log.error("%s: %s: %s", label, action.email, entry["message"])
                else:
                    tally.counts[outcome.value] += 1
                    if outcome.note:
                        self.log.info("%s: %s", label, outcome.note)
                progress.record(failed=error is not None)
            if progress.done:
                self.log.info("%s", progress.line())

    def _report(
        self,
        tally: _Tally,
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
            "dry_run": self.dry_run,
            "seconds": round(time.monotonic() - started, 3),
            "failed": tally.failures,
        }


class _Tally:
    """Counts by outcome and keeps failures (as JSON), from the planner and from each batch."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self.failures: list[dict[str, Any]] = []

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def planned(self, action: Action) -> None:
        """Count an action that needs no request (or, in a dry run, the write it would make)."""
        planned = {"create": "created", "update": "updated", "suppress": "suppressed"}
        if action.kind == "invalid":
            self.fail(action, PrefineryInputError("email_address", action.reason or "invalid"))
        elif action.kind == "skip":
            self.counts["skipped"] += 1
        else:
            self.counts[planned.get(action.kind, action.kind)] += 1

    def fail(self, action: Action, error: BaseException) -> dict[str, Any]:
        """Keep a failed member as a JSON entry (error class, status, code, message, the member)."""
        entry = describe_error(0, action.summary(), error)
        entry.pop("index", None)
        self.counts["failed"] += 1
        if len(self.failures) < MAX_FAILURES_IN_XCOM:  # every failure is logged; the report keeps the first
            self.failures.append(entry)
        return entry


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
