"""Piggy's handlers: one fake answer per endpoint, in Piggy's ``{"data": ..., "meta": ...}`` envelope
(the OAuth token answer is bare, as OAuth's is)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from airflow_provider_prefinery.sandbox.piggy.state import PiggyState
from airflow_provider_prefinery.sandbox.wire import Call, json_response, read_body

G = Call[PiggyState]


def _data(data: Any) -> Response:
    return json_response({"data": data, "meta": []})


async def oauth_token(call: G) -> Response:
    body = await read_body(call.request)
    grant = call.state.oauth_token(body.get("grant_type"), body.get("client_id"), body.get("client_secret"))
    return json_response(grant)


async def list_automations(call: G) -> Response:
    return _data(call.state.automations(call.account))


async def create_automation_run(call: G) -> Response:
    call.state.create_run(call.account, await read_body(call.request))
    return _data([])


async def find_contact(call: G) -> Response:
    return _data(call.state.find_contact(call.account, call.query.get("email")))


async def find_or_create_contact(call: G) -> Response:
    return _data(call.state.find_contact(call.account, call.query.get("email"), create=True))
