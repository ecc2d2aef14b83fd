"""Airflow 3.3's public REST API (``/api/v2``) as a user calls it: a bearer token from ``POST /auth/token``.

The deployment runs SimpleAuthManager with one admin whose password sits in the deployment's passwords
file (not the all-admins mode, which would authenticate every request, the plugin routes' included). The
token is fetched once and again after a 401 (it expires after ``[api_auth] jwt_expiration_time``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

TIMEOUT = 30.0  # seconds per request: a busy 2-core machine can take a few seconds for a DB-heavy answer
PAGE = 100  # [api] maximum_page_limit


class ApiError(AssertionError):
    """The API answered an error: the method, path, status and body, for a test failure that says why."""


class AirflowApi:
    """A small client for the REST calls tests make; every method returns the API's JSON."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token: str | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # loopback: never through a proxy from the environment

    def __repr__(self) -> str:
        return f"AirflowApi({self.base_url!r}, user={self.username!r})"

    # --- transport -------------------------------------------------------------------------------------
    def token(self) -> str:
        """A JWT for the admin, as ``curl -X POST /auth/token -d '{"username":..,"password":..}'`` gets it."""
        answer = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self._password},
            timeout=TIMEOUT,
        )
        if answer.status_code != 201:
            raise ApiError(f"POST /auth/token -> {answer.status_code}: {answer.text[:500]}")
        self._token = str(answer.json()["access_token"])
        return self._token

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), **kwargs: Any) -> Any:
        """One request to ``/api/v2/<path>`` (or an absolute path); JSON back, ``ApiError`` on other codes."""
        url = self.base_url + (path if path.startswith("/") else f"/api/v2/{path}")
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token or self.token()}", **kwargs.pop("headers", {})}
            answer = self._session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
            if answer.status_code == 401 and attempt == 1:
                self._token = None  # expired: fetch a new token once
                continue
            break
        if answer.status_code not in ok:
            raise ApiError(f"{method} {url} -> {answer.status_code}: {answer.text[:2000]}")
        return answer.json() if answer.content else None

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no login needed): each component's status and last heartbeat."""
        answer = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    def _pages(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.call("GET", path, params={**params, "limit": PAGE, "offset": offset})
            yield from page[key]
            offset += len(page[key])
            if not page[key] or offset >= page["total_entries"]:
                return

    # --- DAGs --------------------------------------------------------------------------------------------
    def dags(self) -> list[dict[str, Any]]:
        return list(self._pages("dags", "dags"))

    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"dags/{_q(dag_id)}"))

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self._pages("importErrors", "import_errors"))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return dict(self.call("PATCH", f"dags/{_q(dag_id)}", json={"is_paused": paused}))

    def reparse(self, dag_id: str) -> None:
        """Ask the DAG processor to parse the DAG's file now (the UI's "Reparse DAG" button)."""
        self.call("PUT", f"parseDagFile/{self.dag(dag_id)['file_token']}")

    # --- runs --------------------------------------------------------------------------------------------
    def trigger(
        self,
        dag_id: str,
        *,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /dags/{id}/dagRuns``: no logical date by default, as the UI's Trigger button sends it."""
        if isinstance(logical_date, datetime):
            logical_date = logical_date.isoformat()
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return dict(self.call("POST", f"dags/{_q(dag_id)}/dagRuns", json=body))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first; ``filters`` are the API's query parameters (e.g. ``state``)."""
        return list(self._pages(f"dags/{_q(dag_id)}/dagRuns", "dag_runs", order_by="run_after", **filters))

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """Mark a run ``success``, ``failed`` or ``queued`` (the UI's "Mark as")."""
        return dict(self.call("PATCH", f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", json={"state": state}))

    def clear_run(self, dag_id: str, run_id: str, *, only_failed: bool = False) -> Any:
        """Re-run a whole run (the UI's "Clear"): every task (or only the failed ones) runs again."""
        body = {"dry_run": False, "only_failed": only_failed}
        return self.call("POST", f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/clear", json=body)

    def clear_tasks(
        self,
        dag_id: str,
        run_id: str,
        task_ids: list[str],
        *,
        downstream: bool = False,
        only_failed: bool = False,
    ) -> list[dict[str, Any]]:
        """Clear some tasks of a run so they run again (a retry by hand); returns what was cleared."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": downstream,
            "only_failed": only_failed,
            "reset_dag_runs": True,
        }
        answer = self.call("POST", f"dags/{_q(dag_id)}/clearTaskInstances", json=body)
        return list(answer["task_instances"])

    # --- task instances ------------------------------------------------------------------------------
    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances"))

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        return dict(self.call("GET", path if map_index < 0 else f"{path}/{map_index}"))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance so far (the earlier ones come from the TI history)."""
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        answer = self.call("GET", f"{path}/tries" if map_index < 0 else f"{path}/{map_index}/tries")
        return list(answer["task_instances"])

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """An XCom's value as JSON (what the task pushed, deserialised)."""
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/{_q(key)}"
        entry = self.call(
            "GET", path, params={"map_index": map_index, "deserialize": True, "stringify": False}
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def task_state(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """What the task instance keeps in its ``task_state_store`` (Airflow 3.3; survives retries)."""
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/state-store"
        return list(self._pages(path, "task_state_store", map_index=map_index))

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> list[str]:
        """A try's log, one line per structured entry (timestamp, level, event, error detail)."""
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}"
        answer = self.call("GET", path, params={"full_content": True, "map_index": map_index})
        return [_log_line(entry) for entry in answer.get("content", [])]

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered a run (what ``triggering_asset_events`` holds in its tasks)."""
        answer = self.call("GET", f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/upstreamAssetEvents")
        return list(answer["asset_events"])

    # --- variables -------------------------------------------------------------------------------------
    def variable(self, key: str) -> str | None:
        """A Variable's value, or None when it does not exist."""
        found = self.call("GET", f"variables/{_q(key)}", ok=(200, 404))
        return found.get("value") if found and "key" in found else None

    def delete_variable(self, key: str) -> None:
        self.call("DELETE", f"variables/{_q(key)}", ok=(204, 404))

    # --- assets --------------------------------------------------------------------------------------------
    def asset(self, name: str) -> dict[str, Any]:
        """The asset with exactly this name (it exists once a DAG that uses it was parsed)."""
        found = [a for a in self._pages("assets", "assets", name_pattern=name) if a["name"] == name]
        if len(found) != 1:
            raise ApiError(f"expected one asset named {name!r}, found {len(found)}")
        return found[0]

    def asset_events(self, name: str, **filters: Any) -> list[dict[str, Any]]:
        """The asset's events, oldest first (their ``extra``, source and the runs they created)."""
        asset_id = self.asset(name)["id"]
        return list(
            self._pages("assets/events", "asset_events", asset_id=asset_id, order_by="timestamp", **filters)
        )


def _q(part: str) -> str:
    """Quote a path segment: run ids hold ``:`` and ``+`` (``manual__2026-01-01T00:00:00+00:00``)."""
    return quote(part, safe="")


def _log_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    line = " ".join(str(entry[k]) for k in ("timestamp", "level", "event") if entry.get(k) is not None)
    details = entry.get("error_detail")
    if details:
        for detail in details if isinstance(details, list) else [details]:
            if isinstance(detail, dict):
                line += f"\n  {detail.get('exc_type')}: {detail.get('exc_value')}"
                frames = detail.get("frames") or []
                line += "".join(
                    f"\n    {f.get('filename')}:{f.get('lineno')} {f.get('name')}" for f in frames[-5:]
                )
    return line
