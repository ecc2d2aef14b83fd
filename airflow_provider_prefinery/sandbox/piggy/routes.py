"""Piggy (Leat) API v3: the route table, and who may call it.

Bearer auth with a sandbox key or an access token from ``POST /oauth/token`` (which itself needs none).
"""

from __future__ import annotations

from starlette.requests import Request

from airflow_provider_prefinery.sandbox.piggy import handlers
from airflow_provider_prefinery.sandbox.spec import Endpoint, Kind
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.wire import credential

PREFIX = "/api/v3/oauth/clients"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    if spec.kind == "auth":
        return ""
    return store.piggy.account(credential("piggy", request.scope["headers"], request.scope["query_string"]))


def _e(name: str, method: str, path: str, kind: Kind) -> Endpoint:
    return Endpoint("piggy", name, method, path, kind, getattr(handlers, name))


ENDPOINTS: list[Endpoint] = [
    _e("oauth_token", "POST", "/oauth/token", "auth"),
    _e("list_automations", "GET", f"{PREFIX}/automations", "list"),
    _e("create_automation_run", "POST", f"{PREFIX}/automations/runs", "write"),
    _e("find_contact", "GET", f"{PREFIX}/contacts/find-one-by", "read"),
    _e("find_or_create_contact", "GET", f"{PREFIX}/contacts/find-or-create", "write"),
]
