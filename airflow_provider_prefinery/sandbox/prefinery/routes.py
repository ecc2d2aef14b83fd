"""Prefinery REST API v2 (``/api/v2``): THE route table, and who may call each route.

Each row: handler name (in ``handlers``), method, path, class, permission, rate-limit group. Paths and
classes are exactly those of ``reference/prefinery-api.md``.
"""

from __future__ import annotations

from starlette.requests import Request

from airflow_provider_prefinery.sandbox.keys import PERMISSIONS
from airflow_provider_prefinery.sandbox.prefinery import handlers
from airflow_provider_prefinery.sandbox.spec import Endpoint, Kind
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.wire import credential

PREFIX = "/api/v2"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    """401/402/403 by key, then 404 when the path's project is not the key's account's."""
    key = credential("prefinery", request.scope["headers"], request.scope["query_string"])
    info = store.keys.authorize(key, spec.permission)
    if "beta_id" in request.path_params:
        store.prefinery.projects.check(info.account, int(request.path_params["beta_id"]))
    return info.account


def _e(name: str, method: str, path: str, kind: Kind, permission: str, group: str | None = None) -> Endpoint:
    if permission not in PERMISSIONS:
        raise ValueError(f"{name}: unknown permission {permission!r}")
    handler = getattr(handlers, name)
    return Endpoint("prefinery", name, method, PREFIX + path, kind, handler, permission, group)


B = "/betas/{beta_id:int}"
ENDPOINTS: list[Endpoint] = [
    _e("list_projects", "GET", "/betas.json", "list", "projects:read", "projects"),
    _e("get_project", "GET", f"{B}.json", "read", "projects:read", "projects"),
    _e("delete_project", "DELETE", f"{B}.json", "write", "projects:delete"),
    _e("list_users", "GET", f"{B}/testers.json", "list", "users:read"),
    _e("get_user", "GET", f"{B}/testers/{{id:int}}.json", "read", "users:read"),
    _e("create_user", "POST", f"{B}/testers.json", "write", "users:create"),
    _e("update_user", "PUT", f"{B}/testers/{{id:int}}.json", "write", "users:update"),
    _e("delete_user", "DELETE", f"{B}/testers/{{id:int}}.json", "write", "users:delete"),
    _e("checkin_by_id", "POST", f"{B}/testers/{{id:int}}/checkin.json", "write", "users:update"),
    _e("checkin_by_email", "POST", f"{B}/checkins.json", "write", "users:update"),
    _e("list_rewards", "GET", f"{B}/rewards.json", "list", "rewards:read"),
    _e("trigger_rewards", "POST", f"{B}/rewards/trigger.json", "write", "rewards:create"),
    _e("get_reward", "GET", f"{B}/rewards/{{id:int}}.json", "read", "rewards:read"),
    _e("create_reward", "POST", f"{B}/rewards.json", "write", "rewards:create"),
    _e("update_reward_status", "PATCH", f"{B}/rewards/{{id:int}}.json", "write", "rewards:update"),
    _e("list_suppressions", "GET", f"{B}/suppressions.json", "list", "suppressions:read"),
    _e("get_suppression", "GET", f"{B}/suppressions/{{id:int}}.json", "read", "suppressions:read"),
    _e("create_suppression", "POST", f"{B}/suppressions.json", "write", "suppressions:create"),
    _e("delete_suppression", "DELETE", f"{B}/suppressions/{{id:int}}.json", "write", "suppressions:delete"),
    _e(
        "create_friend_invitation",
        "POST",
        f"{B}/friend_invitations.json",
        "write",
        "friend_invitations:create",
    ),
    _e("list_points", "GET", f"{B}/points.json", "list", "points:read"),
    _e("create_points", "POST", f"{B}/points.json", "write", "points:create"),
]
