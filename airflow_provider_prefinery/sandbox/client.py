"""``SandboxControl``: a small Python client for the ``/_sandbox/`` control API (tests, DAG authors).

Uses ``requests`` (a provider dependency) and nothing of the server, so importing it is cheap.
"""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID


class SandboxControlError(RuntimeError):
    """The control API refused a call (bad input, unknown id)."""


class SandboxControl:
    """Drive a running sandbox: reset, inspect, simulate activity, and set latency, limits and faults."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, verify: bool | str = True) -> None:
        """:param verify: for an HTTPS sandbox, the PEM file of the CA that signed its certificate."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: no proxy, and no REQUESTS_CA_BUNDLE over ``verify``
        self.session.verify = verify

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/_sandbox/{path}", timeout=timeout or self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise SandboxControlError(f"{method} /_sandbox/{path}: {response.status_code} {response.text}")
        return response.json()

    # --- data ----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def reset(self, seed: str = "demo") -> None:
        """Data to ``seed``; behaviour (latency, limits, faults, scale) to defaults; request log emptied."""
        self._call("POST", "reset", json={"seed": seed}, timeout=self._load_timeout(seed))

    def seed(self, seed: str = "demo") -> None:
        """Reload data only (behaviour and the request log stay)."""
        self._call("POST", "seed", json={"seed": seed}, timeout=self._load_timeout(seed))

    def _load_timeout(self, seed: str) -> float:
        """Loading the 100,000-user seed takes seconds, and many more on a loaded machine."""
        return max(self.timeout, 120.0) if seed == "bulk" else self.timeout

    def state(self, resource: str, **filters: Any) -> list[dict[str, Any]]:
        """Rows of ``resource`` (users, rewards, suppressions, points, friend_invitations, reward_triggers,
        projects, mailchimp_members, piggy_automations, piggy_contacts, piggy_runs, token_exchanges),
        filtered by equal column values, e.g. ``state("users", email="a@b.c")``."""
        return self._call("GET", f"state/{resource}", params=filters)

    def users(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("users", **filters)

    def rewards(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("rewards", **filters)

    def suppressions(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("suppressions", **filters)

    def points(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("points", **filters)

    def friend_invitations(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("friend_invitations", **filters)

    def reward_triggers(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("reward_triggers", **filters)

    def mailchimp_members(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("mailchimp_members", **filters)

    def piggy_runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("piggy_runs", **filters)

    def piggy_contacts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.state("piggy_contacts", **filters)

    def token_exchanges(self) -> list[dict[str, Any]]:
        return self.state("token_exchanges")

    def mailchimp_member(
        self,
        email: str,
        *,
        status: str | None = None,
        merge_fields: dict[str, Any] | None = None,
        last_changed: str | None = None,
        list_id: str = DEMO_LIST_ID,
    ) -> dict[str, Any]:
        """Subscribe a new member, or change one (status, merge fields); ``last_changed`` moves to the given
        ISO time or now."""
        body = {
            "email": email,
            "status": status,
            "merge_fields": merge_fields,
            "last_changed": last_changed,
            "list_id": list_id,
        }
        return self._call("POST", "mailchimp/members", json=body)

    def set_key(
        self,
        key: str,
        *,
        permissions: list[str] | None = None,
        api_access: bool = True,
        account: str = "default",
    ) -> dict[str, Any]:
        """Add or change an API key: ``permissions`` like ``["users:read"]`` (None = all, [] = none);
        ``api_access=False`` makes every Prefinery call answer 402."""
        body = {"key": key, "permissions": permissions, "api_access": api_access, "account": account}
        return self._call("PUT", "keys", json=body)

    def set_reward_status(
        self, reward_id: int, status: str, *, beta_id: int = DEMO_BETA_ID
    ) -> dict[str, Any]:
        return self._call(
            "POST", f"prefinery/rewards/{reward_id}/status", json={"status": status, "beta_id": beta_id}
        )

    def set_user_status(self, user_id: int, status: str, *, beta_id: int = DEMO_BETA_ID) -> dict[str, Any]:
        return self._call(
            "POST", f"prefinery/users/{user_id}/status", json={"status": status, "beta_id": beta_id}
        )

    def schedule(
        self,
        target: str,
        status: str,
        *,
        id: int | None = None,
        email: str | None = None,
        after_reads: int | None = None,
        after_seconds: float | None = None,
        descriptor: str = "referral-bonus",
        beta_id: int = DEMO_BETA_ID,
    ) -> None:
        """Change a ``user`` or ``reward`` (by ``id``), or create a ``new_reward`` for ``email``, once
        ``after_reads`` reads of that resource (list or show) were answered, or after ``after_seconds``."""
        body = {
            "target": target,
            "status": status,
            "id": id,
            "email": email,
            "after_reads": after_reads,
            "after_seconds": after_seconds,
            "descriptor": descriptor,
            "beta_id": beta_id,
        }
        self._call("POST", "schedules", json=body)

    def piggy_reject(
        self,
        *,
        contact_uuid: str | None = None,
        email: str | None = None,
        status: int = 422,
        code: int = 60015,
        message: str = "Automation run rejected for this contact.",
    ) -> str:
        """Make Piggy refuse every automation run for this contact; returns its uuid (created if needed)."""
        body = {
            "contact_uuid": contact_uuid,
            "email": email,
            "status": status,
            "code": code,
            "message": message,
        }
        return self._call("POST", "piggy/reject", json=body)["contact_uuid"]

    # --- behaviour -----------------------------------------------------------------------------------
    def set_behaviour(self, api: str, target: str = "*", **fields: Any) -> dict[str, Any]:
        """Set ``latency_ms``, ``faults`` ({"500": p, "502", "503", "429", "drop", "slow",
        "500_after_write"}), ``retry_after`` (s), ``slow_seconds`` or ``rate_limit`` ({"limit", "per_seconds",
        "per_project"} or None for unlimited) for ``api`` and ``target`` (a route name such as
        ``create_user``, a group such as ``projects``, a class ``list``/``read``/``write``, or ``*``)."""
        return self._call("POST", "behaviour", json={"api": api, "target": target, **fields})

    def set_latency(self, api: str, ms: float, target: str = "*") -> dict[str, Any]:
        return self.set_behaviour(api, target, latency_ms=ms)

    def set_faults(
        self, api: str, faults: dict[str, float], target: str = "*", **fields: Any
    ) -> dict[str, Any]:
        return self.set_behaviour(api, target, faults=faults, **fields)

    def set_rate_limit(
        self,
        api: str,
        target: str,
        limit: float | None,
        per_seconds: float = 1.0,
        *,
        per_project: bool = False,
    ) -> dict[str, Any]:
        value = (
            None
            if limit is None
            else {"limit": limit, "per_seconds": per_seconds, "per_project": per_project}
        )
        return self.set_behaviour(api, target, rate_limit=value)

    def configure(
        self,
        *,
        scale: float | None = None,
        fault_seed: int | None = None,
        mailchimp_max_in_flight: int | None = None,
    ) -> dict[str, Any]:
        """``scale`` multiplies every rate limit; ``fault_seed`` restarts the fault dice deterministically."""
        body = {"scale": scale, "fault_seed": fault_seed, "mailchimp_max_in_flight": mailchimp_max_in_flight}
        return self._call("POST", "config", json=body)

    def behaviour(self) -> dict[str, Any]:
        return self._call("GET", "behaviour")

    def reset_behaviour(self) -> None:
        self._call("DELETE", "behaviour")

    # --- what happened -------------------------------------------------------------------------------
    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The request log (api, endpoint, method, path without query, status, fault, time, duration_ms),
        filtered by equal values, e.g. ``requests(api="prefinery", endpoint="create_user")``."""
        return self._call("GET", "requests", params=filters)

    def count(self, **filters: Any) -> int:
        return len(self.requests(**filters))

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def stats(self) -> dict[str, Any]:
        """Requests logged, faults injected by kind, rate-limited and in-flight-rejected counts."""
        return self._call("GET", "stats")
