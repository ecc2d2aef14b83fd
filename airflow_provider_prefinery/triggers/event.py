"""An event trigger for ``AssetWatcher``: one asset event per new Prefinery user or reward, by polling."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError, PrefineryRateLimitError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.polling.checks import matching_rewards
from airflow_provider_prefinery.polling.pacing import Pacer
from airflow_provider_prefinery.polling.seen_ids import compact_ids, expand_ids
from airflow_provider_prefinery.triggers.base import close_hook, error_summary, load_hook, serialized

Resource = Literal["users", "rewards"]
RESOURCES: tuple[str, ...] = ("users", "rewards")


class PrefineryEventTrigger(BaseEventTrigger):
    """Fire one asset event per NEW Prefinery user or reward, for ``AssetWatcher`` scheduling.

    Each poll lists the filtered resource (every page: the API has no "created since" filter) and yields
    one event per item whose id was not seen before, with payload
    ``{"resource", "id", "beta_id", "item"}``. Ids are remembered across polls, so an item fires once.
    This is what Prefinery's ``tester_created`` / ``reward_earned`` webhooks would deliver, without a
    public endpoint to receive them.

    The first poll records what already exists and fires nothing (``emit_existing=True`` fires it all).
    After a triggerer restart: on Airflow >= 3.3 the seen ids are kept in the watched asset's state store
    (key ``prefinery_seen:<hash of the filter>``, ids stored as runs), saved after every poll that
    fired and when the trigger stops; so items that appeared while the triggerer was down fire on the
    first poll after the restart, and nothing fires twice, except after a hard kill between yielding a
    poll's events and saving them (at-least-once: keep the DAG idempotent). Without a state store (older
    Airflow, or one trigger watching several assets) a restart starts afresh: items created while it was
    down count as existing and do not fire.

    Failures: a 429 lengthens the wait and is not counted; any other failed poll is counted, a healthy
    poll resets the count, and the trigger fails once ``max_failures`` polls in a row have failed (bad
    input fails at once). Waits follow the sensors' pacing rule
    (:func:`~airflow_provider_prefinery.polling.pacing.min_poll_interval`), per request.

    :param resource: ``rewards`` or ``users``.
    :param status: rewards: the status to watch (default ``earned``; the API filters it); users: one
        status or a list (filtered here), or None for every new user. A user whose status changes into
        the filter fires then, since it was not listed before.
    :param email: only this user's rewards, or only this user (exact match).
    :param poll_interval: seconds between polls.
    :param max_failures: consecutive failed polls after which the trigger fails.
    :param emit_existing: also fire for the items that exist at the first poll.
    :param prefinery_conn_id: the Prefinery connection.
    :param beta_id: the project id (default: the connection's).
    """

    def __init__(
        self,
        resource: Resource = "rewards",
        *,
        status: str | list[str] | None = None,
        email: str | None = None,
        poll_interval: float = 60.0,
        max_failures: int = 3,
        emit_existing: bool = False,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        beta_id: int | str | None = None,
    ) -> None:
        super().__init__()
        v.one_of("resource", resource, RESOURCES)
        if resource == "rewards":
            status = v.one_of("status", status or "earned", v.REWARD_STATUSES)
        elif status is not None:
            v.statuses("status", status, v.USER_STATUSES)
        if email is not None:
            v.email("email", email)
        if max_failures < 0:
            raise PrefineryInputError("max_failures", f"must be 0 or more, got {max_failures}")
        self.resource = resource
        self.status = status
        self.email = email
        self.poll_interval = float(poll_interval)
        self.max_failures = int(max_failures)
        self.emit_existing = bool(emit_existing)
        self.prefinery_conn_id = prefinery_conn_id
        self.beta_id = beta_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(
            self,
            "resource", "status", "email", "poll_interval", "max_failures", "emit_existing",
            "prefinery_conn_id", "beta_id",
        )  # fmt: skip

    # ---- what one poll sees ----
    def _items(self, hook: PrefineryHook) -> Iterator[dict[str, Any]]:
        if self.resource == "rewards":
            assert isinstance(self.status, str)
            return matching_rewards(hook, status=self.status, email=self.email, descriptor=None)
        return hook.list_users(email=self.email, status=self.status)

    def _poll(self, hook: PrefineryHook, seen: set[str]) -> tuple[list[dict[str, Any]], set[str], int]:
        """List once (blocking): the unseen items in list order, every id listed, and the requests sent."""
        before = hook.stats["requests"]
        fresh: list[dict[str, Any]] = []
        listed: set[str] = set()
        for item in self._items(hook):
            key = str(item.get("id"))
            if key not in seen and key not in listed:
                fresh.append(item)
            listed.add(key)
        return fresh, listed, hook.stats["requests"] - before

    # ---- remembering ids across restarts ----
    @property
    def state_key(self) -> str:
        scope = json.dumps(
            [self.prefinery_conn_id, self.beta_id, self.resource, self.status, self.email], default=str
        )
        return "prefinery_seen:" + hashlib.sha256(scope.encode()).hexdigest()[:16]

    async def _load_seen(self) -> set[str] | None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return None
        try:
            stored = await store.aget(self.state_key)
        except Exception as err:  # several assets, or no state store support: remember in memory only
            self.log.warning("Not persisting seen Prefinery ids (%s); a restart starts afresh", err)
            self.asset_state_store = None
            return None
        return expand_ids(stored) if isinstance(stored, Mapping) else None

    async def _save_seen(self, seen: set[str]) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await store.aset(self.state_key, compact_ids(seen))
        except Exception as err:
            self.log.warning("Could not save seen Prefinery ids (%s); a restart may re-fire them", err)

    # ---- the loop ----
    def _event(self, item: Mapping[str, Any], beta_id: int) -> TriggerEvent:
        return TriggerEvent(
            {"resource": self.resource, "id": item.get("id"), "beta_id": beta_id, "item": item}
        )

    def _after_failure(self, hook: PrefineryHook, error: Exception, failures: int, pacer: Pacer) -> float:
        """Count a failed poll: the wait before the next one, or raise once too many failed in a row."""
        message = error_summary(hook, error)["message"]
        if failures > self.max_failures:
            raise PrefineryError(
                f"{failures} polls of Prefinery {self.resource} failed in a row; last: {message}"
            ) from None
        self.log.warning(
            "Poll %d in a row failed (%s); retrying in %.3g s", failures, message, pacer.interval
        )
        return pacer.interval

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = await load_hook(self.prefinery_conn_id, self.beta_id)
        stored = await self._load_seen()
        seen, unsaved = (stored or set()), False
        baseline = stored is None and not self.emit_existing
        try:
            beta_id = hook.resolve_beta_id()  # no I/O: the connection is already loaded
            pacer = Pacer.for_endpoint(
                f"list_{self.resource}", self.poll_interval, scale=hook.rate_limit_scale, logger=self.log
            )
            failures = 0
            while True:
                try:
                    fresh, listed, requests = await asyncio.to_thread(self._poll, hook, seen)
                except PrefineryRateLimitError as err:
                    wait = pacer.after_rate_limit(err)
                    self.log.warning("Prefinery rate limit (HTTP 429): next poll in %.3g s", wait)
                except PrefineryInputError:
                    raise
                except Exception as err:
                    failures += 1
                    wait = self._after_failure(hook, err, failures, pacer)
                else:
                    failures = 0
                    if baseline:  # what exists at the first poll is history, not news
                        seen, fresh, baseline, unsaved = seen | listed, [], False, True
                    for item in fresh:
                        seen.add(str(item.get("id")))  # handed over once yielded
                        unsaved = True
                        yield self._event(item, beta_id)
                    if unsaved:
                        await self._save_seen(seen)
                        unsaved = False
                    wait = pacer.after_poll(requests)
                await asyncio.sleep(wait)
        finally:
            if unsaved:  # stopped mid-batch: keep what was already handed over
                await self._save_seen(seen)
            close_hook(hook)
