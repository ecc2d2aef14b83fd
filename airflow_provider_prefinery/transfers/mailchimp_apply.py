"""The streaming half of the Mailchimp -> Prefinery sync: planned actions in, Prefinery writes out.

Writes start with the first Mailchimp page (the listing is read ahead in a thread by :func:`prefetch`)
and run through the core's ``bounded_map`` with the batch pieces of ``operators/base.py`` (``Outcome``,
``describe_error``, ``Progress``): bounded concurrency, every failure kept and reported, progress lines,
flat memory for any audience size. (``run_batch`` itself is not used: it validates a whole batch before
the first call, so it holds its input, and each batch would drain before the next starts.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_prefinery.batch import FailureList, Outcome, Progress, describe_error
from airflow_provider_prefinery.exceptions import (
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.concurrency import bounded_map
from airflow_provider_prefinery.hooks.prefinery_endpoints import DUPLICATE_SUPPRESSION, DUPLICATE_USER
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex
from airflow_provider_prefinery.transfers.mailchimp_plan import WRITES, Action
from airflow_provider_prefinery.transfers.mailchimp_rules import SUPPRESSED_DIGEST, SyncRules, user_digest

COUNT_KEYS = ("created", "updated", "suppressed", "unchanged", "skipped", "failed")
DRY_RUN_LOG_LINES = 100


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


class Tally:
    """Counts by outcome and keeps failures (as JSON), from the planner and from each batch: the first 100
    listed and logged, the rest counted (``batch.failures``, the rule the batch engine follows too)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self.listed = FailureList()

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The first 100 failures."""
        return self.listed.entries

    def planned(self, action: Action) -> None:
        """Count an action that needs no request (or, in a dry run, the write it would make)."""
        planned = {"create": "created", "update": "updated", "suppress": "suppressed"}
        if action.kind == "invalid":
            self.fail(action, PrefineryInputError("email_address", action.reason or "invalid"))
        elif action.kind == "skip":
            self.counts["skipped"] += 1
        else:
            self.counts[planned.get(action.kind, action.kind)] += 1

    def fail(self, action: Action, error: BaseException) -> dict[str, Any] | None:
        """Count a failed member; keep it as a JSON entry (error class, status, code, message, the member)
        and return it when it is among the first 100 (log it then), else return None."""
        entry = describe_error(0, action.summary(), error)
        entry.pop("index", None)
        self.counts["failed"] += 1
        return entry if self.listed.add(entry) else None


def log_plan(actions: Iterable[Action], tally: Tally, logger: logging.Logger) -> None:
    """A dry run: count every action as if applied and log the first writes, sending nothing."""
    logged = 0
    for action in actions:
        tally.planned(action)
        if action.kind in WRITES or action.kind == "invalid":
            if logged < DRY_RUN_LOG_LINES:
                logger.info("plan: %s", action.summary())
            logged += 1
    if logged > DRY_RUN_LOG_LINES:
        logger.info("plan: ... and %d more writes", logged - DRY_RUN_LOG_LINES)


def apply_writes(
    actions: Iterable[Action],
    applier: Applier,
    tally: Tally,
    *,
    max_concurrency: int,
    progress_interval: float,
    logger: logging.Logger,
) -> None:
    """Send every write, streaming, at most ``max_concurrency`` in flight; count each, log failures and
    progress. A newer duplicate of an e-mail waits until the earlier writes are done."""
    deferred: list[Action] = []

    def writes() -> Iterator[Action]:
        for action in actions:
            if action.kind not in WRITES:
                tally.planned(action)
            elif action.supersedes:
                deferred.append(action)
            else:
                yield action

    def stream(batch: Iterator[Action], label: str) -> None:
        with Progress(
            None,
            label=label,
            logger=logger,
            interval=progress_interval,
            request_count=lambda: applier.hook.stats["requests"],
        ) as progress:
            for _, action, outcome, error in bounded_map(applier, batch, max_workers=max_concurrency):
                if error is not None:
                    entry = tally.fail(action, error)
                    if entry is not None:
                        logger.error("%s: %s: %s", label, action.email, entry["message"])
                elif outcome is not None:  # the applier returns an Outcome for every write
                    tally.counts[outcome.value] += 1
                    if outcome.note:
                        logger.info("%s: %s", label, outcome.note)
                progress.record(failed=error is not None)
            if progress.done:
                logger.info("%s", progress.line())

    stream(writes(), "sync writes")
    if deferred:
        stream(iter(deferred), "sync writes (newer duplicates)")
    if summary := tally.listed.summary("failed member(s)"):
        logger.error("sync writes: %s", summary)
