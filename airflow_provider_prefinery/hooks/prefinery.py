"""PrefineryHook: the Prefinery REST API v2, driven by ONE endpoint table.

Every path, method and body wrapper lives in :data:`ENDPOINTS`; where the reference marks a shape as
assumed, the row says so, and correcting it is a one-line change. Methods validate their input before any
request (``validation.py``), send through the shared REST core, and return parsed JSON: a dict, None, or a
lazy iterator of dicts for ``list_*``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import requests

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.base import ApiHook
from airflow_provider_prefinery.hooks.rest import (
    ApiErrorInfo,
    ApiResponse,
    BearerAuth,
    TokenBucket,
    key_fingerprint,
    quote_id,
    shared_bucket,
)

DEFAULT_HOST = "https://api.prefinery.com"
API_PREFIX = "/api/v2/"

Shape = Literal["doc", "client", "assumed"]


@dataclass(frozen=True)
class Endpoint:
    """One API action: how to call it, which rate limit it counts against, and how sure we are of it."""

    method: str
    path: str
    wrapper: str | None = None  # the key the JSON body is wrapped in, None for a top-level body
    limit: str | None = None  # a key of RATE_LIMITS, or "write"
    replay_safe: bool = (
        False  # a replayed POST is reported as a duplicate (duplicate_code), never applied twice
    )
    duplicate_code: int | None = None
    shape: Shape = "doc"


# THE endpoint table. Paths are relative to /api/v2/; {beta_id} and {id} are URL-quoted when filled.
ENDPOINTS: dict[str, Endpoint] = {
    "list_projects": Endpoint("GET", "betas.json", limit="projects"),
    "get_project": Endpoint("GET", "betas/{beta_id}.json", limit="projects"),
    "delete_project": Endpoint("DELETE", "betas/{beta_id}.json", limit="write"),
    "list_users": Endpoint("GET", "betas/{beta_id}/testers.json", limit="list_users"),
    "get_user": Endpoint("GET", "betas/{beta_id}/testers/{id}.json"),
    "create_user": Endpoint(
        "POST", "betas/{beta_id}/testers.json", "tester", "write", True, 2310, shape="client"
    ),
    "update_user": Endpoint("PUT", "betas/{beta_id}/testers/{id}.json", "tester", "write", shape="client"),
    "delete_user": Endpoint("DELETE", "betas/{beta_id}/testers/{id}.json", limit="write", shape="assumed"),
    "checkin_user_by_id": Endpoint(
        "POST", "betas/{beta_id}/testers/{id}/checkin.json", limit="write", replay_safe=True, shape="client"
    ),
    "checkin_user_by_email": Endpoint(
        "POST", "betas/{beta_id}/checkins.json", "checkin", "write", replay_safe=True
    ),
    "list_rewards": Endpoint("GET", "betas/{beta_id}/rewards.json", limit="list_rewards"),
    "get_reward": Endpoint("GET", "betas/{beta_id}/rewards/{id}.json", shape="assumed"),
    "create_reward": Endpoint("POST", "betas/{beta_id}/rewards.json", limit="write", shape="assumed"),
    "trigger_rewards": Endpoint(
        "POST", "betas/{beta_id}/rewards/trigger.json", limit="write", shape="assumed"
    ),
    "update_reward_status": Endpoint(
        "PATCH", "betas/{beta_id}/rewards/{id}.json", limit="write", shape="assumed"
    ),
    "list_suppressions": Endpoint("GET", "betas/{beta_id}/suppressions.json"),
    "get_suppression": Endpoint("GET", "betas/{beta_id}/suppressions/{id}.json", shape="assumed"),
    "create_suppression": Endpoint(
        "POST", "betas/{beta_id}/suppressions.json", limit="write", replay_safe=True, duplicate_code=2702
    ),
    "delete_suppression": Endpoint(
        "DELETE", "betas/{beta_id}/suppressions/{id}.json", limit="write", shape="assumed"
    ),
    "create_friend_invitation": Endpoint(
        "POST", "betas/{beta_id}/friend_invitations.json", "friend_invitation", "write"
    ),
    "list_points": Endpoint("GET", "betas/{beta_id}/points.json", limit="list_points"),
    "create_points": Endpoint("POST", "betas/{beta_id}/points.json", limit="write"),
}

# Documented client limits: (requests, seconds). LIST users counts per project; the rest per key.
RATE_LIMITS: dict[str, tuple[float, float]] = {
    "projects": (90, 15 * 60),
    "list_users": (60, 60),
    "list_rewards": (60, 60),
    "list_points": (60, 60),
}
PER_PROJECT_LIMITS = frozenset({"list_users"})

# Error codes the reference documents, for messages and for callers that branch on them.
ERROR_CODES: dict[int, str] = {
    2201: "project general error",
    2204: "unable to delete project",
    2301: "invalid email",
    2310: "duplicate user",
    2701: "suppression general error",
    2702: "suppression email already exists",
    2703: "suppression email required",
    2801: "points general error",
    2802: "points email required",
    2803: "points email not found",
    2804: "points quantity required",
}
# The duplicate codes, read from the table: import these rather than spelling the numbers again.
DUPLICATE_USER: int = ENDPOINTS["create_user"].duplicate_code  # type: ignore[assignment]
DUPLICATE_SUPPRESSION: int = ENDPOINTS["create_suppression"].duplicate_code  # type: ignore[assignment]


def parse_prefinery_error(response: requests.Response) -> ApiErrorInfo:
    """Read ``{"errors":[{"code","message"}]}`` or ``{"error": "..."}``: the one Prefinery error parser."""
    try:
        body = response.json()
    except ValueError:
        return ApiErrorInfo(message=(response.text or response.reason or "")[:500])
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], Mapping) else {"message": str(errors[0])}
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors
            )
            return ApiErrorInfo(code=first.get("code"), message=messages, details=body)
        if isinstance(body.get("error"), str):
            return ApiErrorInfo(code=body.get("code"), message=body["error"], details=body)
    return ApiErrorInfo(message=str(body)[:500], details=body)


def next_page(response: ApiResponse, params: dict[str, Any]) -> dict[str, Any] | None:
    """Follow ``X-Pagination.next_page``; without the header, ask for the next page until one is empty."""
    raw = response.headers.get("X-Pagination")
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            meta = None
        if isinstance(meta, Mapping):
            nxt = meta.get("next_page")
            return {**params, "page": int(nxt)} if nxt else None
    return {**params, "page": int(params.get("page", 1)) + 1}


class PrefineryHook(ApiHook):
    """Talk to Prefinery's REST API v2 for one connection (and, by default, one project).

    :param prefinery_conn_id: the Airflow connection (type ``prefinery``): password = API key, host = API
        origin (default ``https://api.prefinery.com``), extra ``beta_id`` = default project id. Extra may
        also hold ``write_rate_limit`` (requests/s), ``rate_limit_scale``, ``max_retries``,
        ``connect_timeout`` and ``read_timeout``.
    :param beta_id: the project id, overriding the connection's.
    :param write_rate_limit: client-side limit for writes in requests/s (unlimited by default: Prefinery
        publishes none).
    :param rate_limit_scale: multiply every client-side limit (for sandboxes and benchmarks).
    """

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

    # ------------------------------------------------------------------ connection and plumbing
    @cached_property
    def client(self):  # type: ignore[override]
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

    def _bucket(self, endpoint: Endpoint, beta_id: int | None) -> TokenBucket | None:
        scale = self.rate_limit_scale
        burst = None
        if endpoint.limit == "write":
            per_second = self._write_rate_limit or self.extra.get("write_rate_limit")
            if not per_second:
                return None
            # Writes come in batches: pace them evenly (no burst) for the highest sustained rate.
            limit, period, burst = float(per_second) * scale, 1.0, 1.0
        elif endpoint.limit in RATE_LIMITS:
            limit, period = RATE_LIMITS[endpoint.limit]
            limit *= scale
        else:
            return None
        scope: tuple[Any, ...] = (*self._limit_scope, endpoint.limit)
        if endpoint.limit in PER_PROJECT_LIMITS:
            scope = (*scope, beta_id)
        return shared_bucket(scope, limit, period, burst=burst)

    def _path(self, action: str, beta_id: int | None, record: Any = None) -> str:
        fill = {"beta_id": quote_id(beta_id) if beta_id is not None else "", "id": quote_id(record)}
        return ENDPOINTS[action].path.format(**fill)

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
            bucket=self._bucket(endpoint, beta_id),
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
            next_params=next_page,
            bucket=self._bucket(endpoint, beta_id),
        )

    def _create_once(
        self, action: str, beta_id: int, body: Mapping[str, Any], find: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Create through a replay-safe row: when a retry of our own unanswered attempt meets the
        endpoint's duplicate code, the object our first attempt made is found and returned."""
        try:
            return self.call(action, beta_id=beta_id, body=body)
        except PrefineryValidationError as err:
            if err.code == ENDPOINTS[action].duplicate_code and err.replayed:
                existing = find()
                if existing is not None:
                    return existing
            raise

    # ------------------------------------------------------------------ projects
    def list_projects(self) -> Iterator[dict[str, Any]]:
        """List every project (beta) the key can read.

        :return: a lazy iterator of project objects.
        """
        return self.paginate("list_projects")

    def get_project(self, beta_id: int | str | None = None) -> dict[str, Any]:
        """Fetch one project.

        :param beta_id: the project id (default: the hook's or the connection's).
        :raises PrefineryNotFoundError: unknown project.
        """
        return self.call("get_project", beta_id=self.resolve_beta_id(beta_id))

    def delete_project(self, beta_id: int | str) -> Any:
        """Delete a project and everything in it. The id must be spelled out: no default is used.

        :raises PrefineryValidationError: code 2204 when Prefinery refuses.
        """
        checked = v.check_delete_project(beta_id)["beta_id"]
        return self.call("delete_project", beta_id=checked)

    # ------------------------------------------------------------------ users
    def list_users(
        self,
        *,
        email: str | None = None,
        email_contains: str | None = None,
        name: str | None = None,
        referral_code: str | None = None,
        custom_vars: str | None = None,
        status: str | list[str] | None = None,
        beta_id: int | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """List users lazily, filtered by the API (email exact, email_contains, name, referral_code,
        custom_vars) and here by ``status`` (one or several; the API has no status filter).

        Counts against the documented LIST users limit (60/min per project): the hook waits, it does not 429.
        """
        if email is not None:
            v.email("email", email)
        wanted = v.statuses("status", status, v.USER_STATUSES)
        params = {
            "email_is": email,
            "email_contains": email_contains,
            "name": name,
            "referral_code": referral_code,
            "custom_vars": custom_vars,
        }
        users = self.paginate("list_users", beta_id=self.resolve_beta_id(beta_id), params=params)
        if wanted is None:
            return users
        return (user for user in users if user.get("status") in wanted)

    def find_user(self, email: str, *, beta_id: int | str | None = None) -> dict[str, Any] | None:
        """Return the user with this e-mail (case-insensitive), or None: one LIST call."""
        target = email.lower()
        for user in self.list_users(email=email, beta_id=beta_id):
            if str(user.get("email", "")).lower() == target:
                return user
        return None

    def get_user(self, user_id: int | str, *, beta_id: int | str | None = None) -> dict[str, Any]:
        """Fetch one user by id.

        :raises PrefineryNotFoundError: unknown id.
        """
        rid = v.record_id("user_id", user_id)
        return self.call("get_user", beta_id=self.resolve_beta_id(beta_id), record=rid)

    def create_user(
        self,
        email: str,
        *,
        status: str | None = None,
        profile: Mapping[str, Any] | None = None,
        referrer_code: str | None = None,
        invitation_code: str | None = None,
        responses: list[Mapping[str, Any]] | None = None,
        beta_id: int | str | None = None,
    ) -> dict[str, Any]:
        """Create a user (status ``invited`` sends the invitation e-mail).

        Safe to retry: a replay after an unanswered first attempt comes back as duplicate 2310, and then
        the user our first attempt created is returned.

        :param referrer_code: the referrer's referral code (sent as ``referrer_id``).
        :param invitation_code: only with ``status="active"``.
        :raises PrefineryValidationError: code 2310 when the e-mail already exists, 2301 for a bad e-mail.
        """
        body = v.check_create_user(
            email, status=status, profile=profile, referrer_code=referrer_code,
            invitation_code=invitation_code, responses=responses,
        )  # fmt: skip
        bid = self.resolve_beta_id(beta_id)
        return self._create_once("create_user", bid, body, lambda: self.find_user(body["email"], beta_id=bid))

    def update_user(
        self,
        user_id: int | str,
        *,
        email: str | None = None,
        status: str | None = None,
        profile: Mapping[str, Any] | None = None,
        invitation_code: str | None = None,
        responses: list[Mapping[str, Any]] | None = None,
        beta_id: int | str | None = None,
    ) -> dict[str, Any]:
        """Update a user's fields (status ``rejected`` sends the rejection e-mail). Idempotent."""
        body = v.check_update_user(
            user_id, email=email, status=status, profile=profile,
            invitation_code=invitation_code, responses=responses,
        )  # fmt: skip
        return self.call("update_user", beta_id=self.resolve_beta_id(beta_id), record=user_id, body=body)

    def delete_user(self, user_id: int | str, *, beta_id: int | str | None = None) -> Any:
        """Delete a user.

        :raises PrefineryNotFoundError: the user does not exist (or is already deleted).
        """
        rid = v.check_delete_user(user_id)["user_id"]
        return self.call("delete_user", beta_id=self.resolve_beta_id(beta_id), record=rid)

    def checkin_user(
        self, *, user_id: int | str | None = None, email: str | None = None, beta_id: int | str | None = None
    ) -> Any:
        """Record a check-in (activity) for a user, by id or by e-mail: exactly one. Repeatable."""
        checked = v.check_checkin_user(user_id=user_id, email=email)
        bid = self.resolve_beta_id(beta_id)
        if "user_id" in checked:
            return self.call("checkin_user_by_id", beta_id=bid, record=checked["user_id"])
        return self.call("checkin_user_by_email", beta_id=bid, body={"email": checked["email"]})

    # ------------------------------------------------------------------ rewards
    def list_rewards(
        self, *, email: str | None = None, status: str | None = None, beta_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """List rewards lazily, filtered by the user's e-mail and status (earned, delivered, revoked)."""
        if email is not None:
            v.email("email", email)
        if status is not None:
            v.one_of("status", status, v.REWARD_STATUSES)
        bid = self.resolve_beta_id(beta_id)
        return self.paginate("list_rewards", beta_id=bid, params={"email": email, "status": status})

    def get_reward(self, reward_id: int | str, *, beta_id: int | str | None = None) -> dict[str, Any]:
        """Fetch one reward by id."""
        rid = v.record_id("reward_id", reward_id)
        return self.call("get_reward", beta_id=self.resolve_beta_id(beta_id), record=rid)

    def create_reward(
        self,
        email: str,
        descriptor: str,
        *,
        skip_quantity_check: bool = False,
        beta_id: int | str | None = None,
    ) -> dict[str, Any]:
        """Issue a reward (by its descriptor) to the user with this e-mail.

        Not idempotent: each call issues another reward, so an unanswered attempt is not replayed.
        """
        body = v.check_create_reward(email, descriptor, skip_quantity_check=skip_quantity_check)
        return self.call("create_reward", beta_id=self.resolve_beta_id(beta_id), body=body)

    def trigger_rewards(self, email: str, event: str, *, beta_id: int | str | None = None) -> Any:
        """Fire a custom reward event for a referred user, letting Prefinery's rules issue rewards.

        Not idempotent: an unanswered attempt is reported, never replayed.
        """
        body = v.check_trigger_rewards(email, event)
        return self.call("trigger_rewards", beta_id=self.resolve_beta_id(beta_id), body=body)

    def update_reward_status(
        self, reward_id: int | str, status: str, *, beta_id: int | str | None = None
    ) -> dict[str, Any]:
        """Mark an ``earned`` reward ``delivered`` or ``revoked`` (only earned rewards may change)."""
        body = v.check_update_reward_status(reward_id, status)
        return self.call(
            "update_reward_status", beta_id=self.resolve_beta_id(beta_id), record=reward_id, body=body
        )

    # ------------------------------------------------------------------ suppressions
    def list_suppressions(
        self, *, email: str | None = None, beta_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """List suppressions lazily, optionally for one e-mail."""
        if email is not None:
            v.email("email", email)
        return self.paginate(
            "list_suppressions", beta_id=self.resolve_beta_id(beta_id), params={"email": email}
        )

    def find_suppression(self, email: str, *, beta_id: int | str | None = None) -> dict[str, Any] | None:
        """Return the suppression of this e-mail (case-insensitive), or None."""
        target = email.lower()
        for item in self.list_suppressions(email=email, beta_id=beta_id):
            if str(item.get("email", "")).lower() == target:
                return item
        return None

    def get_suppression(
        self, suppression_id: int | str, *, beta_id: int | str | None = None
    ) -> dict[str, Any]:
        """Fetch one suppression by id."""
        rid = v.record_id("suppression_id", suppression_id)
        return self.call("get_suppression", beta_id=self.resolve_beta_id(beta_id), record=rid)

    def create_suppression(
        self, email: str, *, reason: str = "Manual", beta_id: int | str | None = None
    ) -> dict[str, Any]:
        """Suppress an e-mail (``Unsubscribe`` also unsubscribes the user).

        Safe to retry: a replay comes back as duplicate 2702, and then the existing suppression is returned.

        :raises PrefineryValidationError: code 2702 when the e-mail is already suppressed.
        """
        body = v.check_create_suppression(email, reason=reason)
        bid = self.resolve_beta_id(beta_id)
        return self._create_once(
            "create_suppression", bid, body, lambda: self.find_suppression(body["email"], beta_id=bid)
        )

    def delete_suppression(self, suppression_id: int | str, *, beta_id: int | str | None = None) -> Any:
        """Lift a suppression (only Manual and HardBounce ones may be deleted)."""
        rid = v.check_delete_suppression(suppression_id)["suppression_id"]
        return self.call("delete_suppression", beta_id=self.resolve_beta_id(beta_id), record=rid)

    # ------------------------------------------------------------------ invitations and points
    def create_friend_invitation(
        self,
        sender_email: str,
        recipient_email: str,
        *,
        message: str | None = None,
        beta_id: int | str | None = None,
    ) -> dict[str, Any]:
        """Send a friend invitation from an invited, active or idle user.

        Not idempotent: an e-mail goes out each time, so an unanswered attempt is reported, never replayed.
        """
        body = v.check_create_friend_invitation(sender_email, recipient_email, message=message)
        return self.call("create_friend_invitation", beta_id=self.resolve_beta_id(beta_id), body=body)

    def list_points(
        self, *, email: str | None = None, beta_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """List points entries lazily, optionally for one user's e-mail."""
        if email is not None:
            v.email("email", email)
        return self.paginate("list_points", beta_id=self.resolve_beta_id(beta_id), params={"email": email})

    def create_points(
        self, email: str, quantity: int, *, reason: str | None = None, beta_id: int | str | None = None
    ) -> dict[str, Any]:
        """Award ``quantity`` points to the user with this e-mail.

        Not idempotent: every call adds points, so an unanswered attempt is reported, never replayed.
        """
        body = v.check_create_points(email, quantity, reason=reason)
        return self.call("create_points", beta_id=self.resolve_beta_id(beta_id), body=body)

    # ------------------------------------------------------------------ connection test
    def test_connection(self) -> tuple[bool, str]:
        """Fetch the project (or the project list when no beta id is set): Airflow's Test button.

        Uses :meth:`quick_copy`, so a wrong host answers in seconds.
        """
        try:
            quick = self.quick_copy(beta_id=self._beta_id)
            if self._beta_id not in (None, "") or self.extra.get("beta_id") not in (None, ""):
                project = quick.get_project()
                return (
                    True,
                    f"Connected to Prefinery project '{project.get('name')}' (id {project.get('id')})",
                )
            projects = list(itertools.islice(quick.list_projects(), 5))
            names = ", ".join(f"'{p.get('name')}' (id {p.get('id')})" for p in projects) or "none"
            return True, f"Connected to Prefinery; no API Beta ID set. Projects visible: {names}"
        except PrefineryNotFoundError:
            beta = self._beta_id or self.extra.get("beta_id")
            return False, f"Prefinery project {beta} not found: check the API Beta ID"
        except PrefineryError as err:
            return False, self.test_failure_message(err)
