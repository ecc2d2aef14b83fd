"""PrefineryHook: the Prefinery REST API v2, driven by ONE endpoint table.

The table and its facts (:data:`ENDPOINTS`, :data:`RATE_LIMITS`, the error codes and parser, the pagination
rule) live in ``prefinery_endpoints.py`` and are importable from here too. Methods validate their input
before any request (``validation.py``), send through the shared REST core, and return parsed JSON: a dict,
None, or a lazy iterator of dicts for ``list_*``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryNotFoundError
from airflow_provider_prefinery.hooks.endpoint import Endpoint, Shape
from airflow_provider_prefinery.hooks.prefinery_base import PrefineryBaseHook
from airflow_provider_prefinery.hooks.prefinery_endpoints import (
    API_PREFIX,
    DEFAULT_HOST,
    DUPLICATE_SUPPRESSION,
    DUPLICATE_USER,
    ENDPOINTS,
    ERROR_CODES,
    PER_PROJECT_LIMITS,
    RATE_LIMITS,
    parse_prefinery_error,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_HOST",
    "DUPLICATE_SUPPRESSION",
    "DUPLICATE_USER",
    "ENDPOINTS",
    "ERROR_CODES",
    "PER_PROJECT_LIMITS",
    "RATE_LIMITS",
    "Endpoint",
    "PrefineryHook",
    "Shape",
    "parse_prefinery_error",
]


def _with_email(items: Iterable[dict[str, Any]], email: str) -> dict[str, Any] | None:
    """The first item whose ``email`` matches, case-insensitively (a filtered LIST may match loosely)."""
    target = email.lower()
    return next((item for item in items if str(item.get("email", "")).lower() == target), None)


class PrefineryHook(PrefineryBaseHook):
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
            "email_contains": v.optional_text("email_contains", email_contains),
            "name": v.optional_text("name", name),
            "referral_code": v.optional_text("referral_code", referral_code),
            "custom_vars": v.optional_text("custom_vars", custom_vars, max_len=v.MAX_TEXT),
        }
        users = self.paginate("list_users", beta_id=self.resolve_beta_id(beta_id), params=params)
        if wanted is None:
            return users
        return (user for user in users if user.get("status") in wanted)

    def find_user(self, email: str, *, beta_id: int | str | None = None) -> dict[str, Any] | None:
        """Return the user with this e-mail (case-insensitive), or None: one LIST call."""
        v.email("email", email)  # required here: without it the LIST would be of every user
        return _with_email(self.list_users(email=email, beta_id=beta_id), email)

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
        return self._create_once(
            "create_user", bid, body, lambda: self.find_user(body["email"], beta_id=bid), "created_at"
        )

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
        rid = v.record_id("user_id", user_id)
        return self.call("update_user", beta_id=self.resolve_beta_id(beta_id), record=rid, body=body)

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
        rid = v.record_id("reward_id", reward_id)
        return self.call("update_reward_status", beta_id=self.resolve_beta_id(beta_id), record=rid, body=body)

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
        v.email("email", email)  # required here: without it the LIST would be of every suppression
        return _with_email(self.list_suppressions(email=email, beta_id=beta_id), email)

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
            "create_suppression",
            bid,
            body,
            lambda: self.find_suppression(body["email"], beta_id=bid),
            "suppressed_at",
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
