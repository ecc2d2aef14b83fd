"""Piggy (Leat) API v3: automations, automation runs, contacts, and the OAuth client-credentials token.

Bearer auth with a sandbox key or an access token from ``POST /oauth/token``. Success bodies use Piggy's
``{"data": ..., "meta": ...}`` envelope; errors ``{status_code, code, message, errors}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.wire import Call, credential, json_response, read_body

PREFIX = "/api/v3/oauth/clients"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    if spec.kind == "auth":
        return ""
    return store.piggy_account(credential("piggy", request.scope["headers"], request.scope["query_string"]))


# --- handlers: one fake answer per endpoint --------------------------------------------------------------
async def oauth_token(call: Call) -> Response:
    body = await read_body(call.request)
    grant = call.store.oauth_token(body.get("grant_type"), body.get("client_id"), body.get("client_secret"))
    return json_response(grant)


async def list_automations(call: Call) -> Response:
    return json_response({"data": call.store.piggy_automations(call.account), "meta": []})


async def create_automation_run(call: Call) -> Response:
    call.store.piggy_create_run(call.account, await read_body(call.request))
    return json_response({"data": [], "meta": []})


async def find_contact(call: Call) -> Response:
    contact = call.store.piggy_find_contact(call.account, call.query.get("email"))
    return json_response({"data": contact, "meta": []})


async def find_or_create_contact(call: Call) -> Response:
    contact = call.store.piggy_find_contact(call.account, call.query.get("email"), create=True)
    return json_response({"data": contact, "meta": []})


ENDPOINTS: list[Endpoint] = [
    Endpoint("piggy", "oauth_token", "POST", "/oauth/token", "auth", oauth_token),
    Endpoint("piggy", "list_automations", "GET", f"{PREFIX}/automations", "list", list_automations),
    Endpoint(
        "piggy", "create_automation_run", "POST", f"{PREFIX}/automations/runs", "write", create_automation_run
    ),
    Endpoint("piggy", "find_contact", "GET", f"{PREFIX}/contacts/find-one-by", "read", find_contact),
    Endpoint(
        "piggy",
        "find_or_create_contact",
        "GET",
        f"{PREFIX}/contacts/find-or-create",
        "write",
        find_or_create_contact,
    ),
]
