"""Prefinery's handlers: one fake answer per endpoint (parse the request, call the state, render).

Bodies are those of ``reference/prefinery-api.md``: users are wrapped in ``{"tester": ...}``, check-in by
email in ``{"checkin": ...}``, invitations in ``{"friend_invitation": ...}``; rewards, suppressions and
points take top-level bodies. Lists answer 25 per page with ``X-Pagination``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.prefinery import errors as pe
from airflow_provider_prefinery.sandbox.prefinery.state import PrefineryState
from airflow_provider_prefinery.sandbox.prefinery.state.pages import Page
from airflow_provider_prefinery.sandbox.wire import Call, json_response, read_body

P = Call[PrefineryState]
USER_FILTERS = ("email_is", "email_contains", "name", "referral_code", "custom_vars")


def _paged(page: Page) -> Response:
    return json_response(page.items, headers={"X-Pagination": json.dumps(page.header)})


MAX_PAGE = 10**9


def _page_number(call: P) -> int:
    """The ``page`` query parameter: text that is no number reads as 1 (as Rails reads it), a page beyond
    :data:`MAX_PAGE` is a 400 (no store can offset that far)."""
    value = call.query.get("page", "1")
    if not (value.isascii() and value.isdigit()):
        return 1
    if len(value) > len(str(MAX_PAGE)) or int(value) > MAX_PAGE:
        raise e.BadRequest(f"page must be at most {MAX_PAGE:,}, got {value[:30]!r}")
    return max(1, int(value))


async def _wrapped(call: P, wrapper: str) -> dict[str, Any]:
    body = await read_body(call.request)
    inner = body.get(wrapper)
    if not isinstance(inner, dict):
        raise pe.PrefineryValidation(f'the body must be wrapped in {{"{wrapper}": {{...}}}}')
    return inner


async def list_projects(call: P) -> Response:
    return _paged(call.state.projects.page(call.account, _page_number(call)))


async def get_project(call: P) -> Response:
    return json_response(call.state.projects.get(call.account, call.beta_id))


async def delete_project(call: P) -> Response:
    call.state.projects.delete(call.account, call.beta_id)
    return json_response({})


async def list_users(call: P) -> Response:
    filters = {n: call.query[n] for n in USER_FILTERS if call.query.get(n)}
    return _paged(call.state.users.page(call.beta_id, filters, _page_number(call)))


async def get_user(call: P) -> Response:
    return json_response(call.state.users.get(call.beta_id, call.id))


async def create_user(call: P) -> Response:
    return json_response(call.state.users.create(call.beta_id, await _wrapped(call, "tester")), 201)


async def update_user(call: P) -> Response:
    return json_response(call.state.users.update(call.beta_id, call.id, await _wrapped(call, "tester")))


async def delete_user(call: P) -> Response:
    call.state.users.delete(call.beta_id, call.id)
    return json_response({})


async def checkin_by_id(call: P) -> Response:
    return json_response(call.state.users.checkin(call.beta_id, user_id=call.id), 202)


async def checkin_by_email(call: P) -> Response:
    body = await _wrapped(call, "checkin")
    return json_response(call.state.users.checkin(call.beta_id, email=body.get("email")), 202)


async def list_rewards(call: P) -> Response:
    q = call.query
    return _paged(call.state.rewards.page(call.beta_id, q.get("email"), q.get("status"), _page_number(call)))


async def get_reward(call: P) -> Response:
    return json_response(call.state.rewards.get(call.beta_id, call.id))


async def create_reward(call: P) -> Response:
    return json_response(call.state.rewards.create(call.beta_id, await read_body(call.request)), 201)


async def trigger_rewards(call: P) -> Response:
    return json_response(call.state.rewards.trigger(call.beta_id, await read_body(call.request)), 202)


async def update_reward_status(call: P) -> Response:
    body = await read_body(call.request)
    return json_response(call.state.rewards.update_status(call.beta_id, call.id, body.get("status")))


async def list_suppressions(call: P) -> Response:
    page = call.state.suppressions.page(call.beta_id, call.query.get("email"), _page_number(call))
    return _paged(page)


async def get_suppression(call: P) -> Response:
    return json_response(call.state.suppressions.get(call.beta_id, call.id))


async def create_suppression(call: P) -> Response:
    body = await read_body(call.request)
    return json_response(call.state.suppressions.create(call.beta_id, body), 201)


async def delete_suppression(call: P) -> Response:
    call.state.suppressions.delete(call.beta_id, call.id)
    return json_response({})


async def create_friend_invitation(call: P) -> Response:
    body = await _wrapped(call, "friend_invitation")
    return json_response(call.state.invitations.create(call.beta_id, body), 201)


async def list_points(call: P) -> Response:
    return _paged(call.state.points.page(call.beta_id, call.query.get("email"), _page_number(call)))


async def create_points(call: P) -> Response:
    return json_response(call.state.points.create(call.beta_id, await read_body(call.request)), 201)
