"""Prefinery REST API v2 (``/api/v2``): the route table and thin handlers (parse, call state, render).

Paths and body wrappers are exactly those of ``reference/prefinery-api.md``: users are wrapped in
``{"tester": ...}``, check-in by email in ``{"checkin": ...}``, invitations in ``{"friend_invitation": ...}``;
rewards, suppressions and points take top-level bodies. Lists answer 25 per page with ``X-Pagination``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.state import Page, Store
from airflow_provider_prefinery.sandbox.wire import Call, credential, json_response, page_number, read_body

PREFIX = "/api/v2"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    """401/402/403 by key, then 404 when the path's project is not the key's account's."""
    key = credential("prefinery", request.scope["headers"], request.scope["query_string"])
    info = store.authorize(key, spec.permission)
    if "beta_id" in request.path_params:
        store.check_project(info.account, int(request.path_params["beta_id"]))
    return info.account


def _paged(page: Page) -> Response:
    return json_response(page.items, headers={"X-Pagination": json.dumps(page.header)})


async def _wrapped(call: Call, wrapper: str) -> dict[str, Any]:
    body = await read_body(call.request)
    inner = body.get(wrapper)
    if not isinstance(inner, dict):
        raise e.PrefineryValidation(f'the body must be wrapped in {{"{wrapper}": {{...}}}}')
    return inner


# --- handlers: one fake answer per endpoint --------------------------------------------------------------
async def list_projects(call: Call) -> Response:
    return _paged(call.store.list_projects(call.account, page_number(call)))


async def get_project(call: Call) -> Response:
    return json_response(call.store.get_project(call.account, call.beta_id))


async def delete_project(call: Call) -> Response:
    call.store.delete_project(call.account, call.beta_id)
    return json_response({})


async def list_users(call: Call) -> Response:
    names = ("email_is", "email_contains", "name", "referral_code", "custom_vars")
    filters = {n: call.query[n] for n in names if call.query.get(n)}
    return _paged(call.store.list_users(call.beta_id, filters, page_number(call)))


async def get_user(call: Call) -> Response:
    return json_response(call.store.get_user(call.beta_id, call.id))


async def create_user(call: Call) -> Response:
    return json_response(call.store.create_user(call.beta_id, await _wrapped(call, "tester")), 201)


async def update_user(call: Call) -> Response:
    return json_response(call.store.update_user(call.beta_id, call.id, await _wrapped(call, "tester")))


async def delete_user(call: Call) -> Response:
    call.store.delete_user(call.beta_id, call.id)
    return json_response({})


async def checkin_by_id(call: Call) -> Response:
    return json_response(call.store.checkin(call.beta_id, user_id=call.id), 202)


async def checkin_by_email(call: Call) -> Response:
    body = await _wrapped(call, "checkin")
    return json_response(call.store.checkin(call.beta_id, email=body.get("email")), 202)


async def list_rewards(call: Call) -> Response:
    page = call.store.list_rewards(
        call.beta_id, call.query.get("email"), call.query.get("status"), page_number(call)
    )
    return _paged(page)


async def get_reward(call: Call) -> Response:
    return json_response(call.store.get_reward(call.beta_id, call.id))


async def create_reward(call: Call) -> Response:
    return json_response(call.store.create_reward(call.beta_id, await read_body(call.request)), 201)


async def trigger_rewards(call: Call) -> Response:
    return json_response(call.store.trigger_rewards(call.beta_id, await read_body(call.request)), 202)


async def update_reward_status(call: Call) -> Response:
    body = await read_body(call.request)
    return json_response(call.store.update_reward_status(call.beta_id, call.id, body.get("status")))


async def list_suppressions(call: Call) -> Response:
    return _paged(call.store.list_suppressions(call.beta_id, call.query.get("email"), page_number(call)))


async def get_suppression(call: Call) -> Response:
    return json_response(call.store.get_suppression(call.beta_id, call.id))


async def create_suppression(call: Call) -> Response:
    return json_response(call.store.create_suppression(call.beta_id, await read_body(call.request)), 201)


async def delete_suppression(call: Call) -> Response:
    call.store.delete_suppression(call.beta_id, call.id)
    return json_response({})


async def create_friend_invitation(call: Call) -> Response:
    body = await _wrapped(call, "friend_invitation")
    return json_response(call.store.create_friend_invitation(call.beta_id, body), 201)


async def list_points(call: Call) -> Response:
    return _paged(call.store.list_points(call.beta_id, call.query.get("email"), page_number(call)))


async def create_points(call: Call) -> Response:
    return json_response(call.store.create_points(call.beta_id, await read_body(call.request)), 201)


def _e(name: str, method: str, path: str, kind: str, permission: str, group: str | None = None) -> Endpoint:
    return Endpoint(
        "prefinery", name, method, PREFIX + path, kind, globals()[name.split(":")[0]], permission, group
    )


B = "/betas/{beta_id:int}"
# THE route table: (handler name, method, path, class, permission, rate-limit group).
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
