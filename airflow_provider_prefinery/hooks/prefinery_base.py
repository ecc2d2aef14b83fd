"""What every Prefinery call needs, under :class:`~airflow_provider_prefinery.hooks.prefinery.PrefineryHook`.

The connection's client and project, the rate budget a call counts against, and sending one row of the
endpoint table: ``call`` and ``paginate`` take an action's name, ``_create_once`` makes a create safe to
replay through the row's duplicate code. ``PrefineryHook`` adds one method per action on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryValidationError
from airflow_provider_prefinery.hooks.base import ApiHook
from airflow_provider_prefinery.hooks.endpoint import Endpoint
from airflow_provider_prefinery.hooks.prefinery_endpoints import (
    API_PREFIX,
    DEFAULT_HOST,
    ENDPOINTS,
    next_prefinery_page,
    parse_prefinery_error,
)
from airflow_provider_prefinery.hooks.prefinery_limits import prefinery_limiter
from airflow_provider_prefinery.hooks.rate_limit import RateLimiter, key_fingerprint
from airflow_provider_prefinery.hooks.rest import BearerAuth, RestClient, quote_id


class PrefineryBaseHook(ApiHook):
    """One Prefinery connection (and, by default, one project): see ``PrefineryHook`` for the parameters."""

    conn_name_attr = "prefinery_conn_id"
    default_conn_name = "prefinery_default"
    conn_type = "prefinery"
    hook_name = "Prefinery"
    service = "Prefinery"
    default_host = DEFAULT_HOST
    api_prefix = API_PREFIX

    def __init__(
        self,
        prefinery_conn_id: str = default_conn_name,
        beta_id: int | str | None = None,
        *,
        write_rate_limit: float | None = None,
        rate_limit_scale: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prefinery_conn_id, **kwargs)
        self.prefinery_conn_id = self.conn_id
        self._beta_id = beta_id
        self._write_rate_limit = write_rate_limit
        self._rate_limit_scale = rate_limit_scale

    @cached_property
    def client(self) -> RestClient:
        return self.build_client(auth=BearerAuth(self.secret), error_parser=parse_prefinery_error)

    def resolve_beta_id(self, beta_id: int | str | None = None) -> int:
        """The project id from the argument, else the hook's, else the connection's ``beta_id`` extra."""
        for candidate in (beta_id, self._beta_id):
            if candidate not in (None, ""):
                return v.positive_int("beta_id", candidate)
        from_conn = self.extra.get("beta_id")
        if from_conn in (None, ""):
            raise PrefineryInputError(
                "beta_id",
                f"no project id: pass beta_id= or set 'API Beta ID' on connection {self.conn_id!r}",
            )
        return v.positive_int("beta_id", from_conn)

    @property
    def rate_limit_scale(self) -> float:
        """The factor on every client-side limit: the argument, else the connection's extra, else 1."""
        return float(self._rate_limit_scale or self.extra.get("rate_limit_scale") or 1.0)

    @cached_property
    def _limit_scope(self) -> tuple[str, str, str]:
        """Who shares a limiter: every hook of this key on this origin, in this process (hashed once)."""
        return (self.service, key_fingerprint(self.secret), self.client.base_url)

    def _limiter(self, endpoint: Endpoint, beta_id: int | None) -> RateLimiter | None:
        write_rate_limit = self._write_rate_limit or self.extra.get("write_rate_limit")
        return prefinery_limiter(
            endpoint,
            self._limit_scope,
            beta_id,
            write_rate_limit=write_rate_limit,
            scale=self.rate_limit_scale,
        )

    def _path(self, action: str, beta_id: int | None, record: Any = None) -> str:
        """The row's path with its ids quoted in (an id the path needs but was not given is an error)."""
        path = ENDPOINTS[action].path
        fill: dict[str, str] = {}
        for name, value in (("beta_id", beta_id), ("id", record)):
            if "{" + name + "}" in path:
                if value is None:
                    raise PrefineryInputError(name, f"is required by {action}")
                fill[name] = quote_id(value, name)
        return path.format(**fill)

    def call(
        self,
        action: str,
        *,
        beta_id: int | None = None,
        record: Any = None,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one row of the endpoint table and return the parsed answer."""
        endpoint = ENDPOINTS[action]
        payload = None
        if body is not None:
            payload = {endpoint.wrapper: dict(body)} if endpoint.wrapper else dict(body)
        response = self.client.request(
            endpoint.method,
            self._path(action, beta_id, record),
            params=params,
            json=payload,
            limiter=self._limiter(endpoint, beta_id),
            replay_safe=endpoint.replay_safe,
        )
        return response.data

    def paginate(
        self, action: str, *, beta_id: int | None = None, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Lazily list every page of a list endpoint (one page in memory at a time)."""
        endpoint = ENDPOINTS[action]
        query = {key: value for key, value in (params or {}).items() if value is not None}
        return self.client.paginate(
            self._path(action, beta_id),
            params=query,
            next_params=next_prefinery_page,
            limiter=self._limiter(endpoint, beta_id),
        )

    def _create_once(
        self,
        action: str,
        beta_id: int,
        body: Mapping[str, Any],
        find: Callable[[], dict[str, Any] | None],
        stamp: str,
    ) -> dict[str, Any]:
        """Create through a replay-safe row: when a retry of our own unanswered attempt meets the
        endpoint's duplicate code, the object our first attempt made is found and returned.

        Only an object made since the first attempt is ours: one whose ``stamp`` (``created_at``) is older
        existed before, and the duplicate error is raised as it would be without a retry.
        """
        started = time.time()
        try:
            return self.call(action, beta_id=beta_id, body=body)
        except PrefineryValidationError as err:
            if err.code == ENDPOINTS[action].duplicate_code and err.replayed:
                existing = find()
                if existing is not None and made_since(existing.get(stamp), started, err.clock_offset):
                    return existing
            raise


STAMP_SLACK = 1.0  # seconds: Prefinery's timestamps and the Date header both have 1 s resolution


def made_since(stamp: Any, started: float, clock_offset: float | None) -> bool:
    """True when an API timestamp (ISO 8601) is not older than ``started`` (our clock, epoch seconds).

    ``clock_offset`` (the server's clock minus ours, read from an answer's ``Date``) moves ``started``
    onto the server's clock, so a skewed client clock does not decide. An unreadable stamp is False:
    an object we cannot date is not claimed as ours.
    """
    if not isinstance(stamp, str):
        return False
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        return False
    return moment.timestamp() >= started + (clock_offset or 0.0) - STAMP_SLACK
