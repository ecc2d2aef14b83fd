"""Mailchimp Marketing API 3.0 (``/3.0``): the route table, and who may call it.

Basic auth with the key as password (any username) or Bearer. The 10-in-flight limit per key lives in
``faults.py`` (it is about connections, not about any one endpoint).
"""

from __future__ import annotations

from starlette.requests import Request

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.mailchimp import handlers
from airflow_provider_prefinery.sandbox.spec import Endpoint, Kind
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.wire import credential

PREFIX = "/3.0"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    key = credential("mailchimp", request.scope["headers"], request.scope["query_string"])
    try:
        return store.keys.info(key).account
    except e.Unauthorized as exc:
        raise e.Unauthorized("Your request did not include an API key, or the key is invalid.") from exc


def _e(name: str, path: str, kind: Kind) -> Endpoint:
    return Endpoint("mailchimp", name, "GET", PREFIX + path, kind, getattr(handlers, name))


ENDPOINTS: list[Endpoint] = [
    _e("ping", "/ping", "read"),
    _e("list_lists", "/lists", "list"),
    _e("list_members", "/lists/{list_id}/members", "list"),
]
