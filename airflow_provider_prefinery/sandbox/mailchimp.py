"""Mailchimp Marketing API 3.0 (``/3.0``): audiences and their members, paged by ``count``/``offset``.

Basic auth with the key as password (any username) or Bearer; errors are problem+json. The 10-in-flight
limit per key lives in ``faults.py`` (it is about connections, not about any one endpoint).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.state import MAILCHIMP_MAX_COUNT, Store, parse_mailchimp_time
from airflow_provider_prefinery.sandbox.wire import Call, credential, json_response

PREFIX = "/3.0"


def authorize(request: Request, store: Store, spec: Endpoint) -> str:
    key = credential("mailchimp", request.scope["headers"], request.scope["query_string"])
    try:
        return store.key_info(key).account
    except e.Unauthorized as exc:
        raise e.Unauthorized("Your request did not include an API key, or the key is invalid.") from exc


def _int(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise e.BadRequest(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def select_fields(body: dict[str, Any], fields: str | None, exclude: str | None) -> dict[str, Any]:
    """Apply Mailchimp's ``fields``/``exclude_fields`` (comma-separated dot paths) to a response body."""
    if fields:
        body = _keep(body, [p.strip().split(".") for p in fields.split(",") if p.strip()])
    if exclude:
        for path in (p.strip().split(".") for p in exclude.split(",") if p.strip()):
            _drop(body, path)
    return body


def _keep(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [_keep(item, paths) for item in value]
    if not isinstance(value, dict) or any(not p for p in paths):
        return value
    out = {}
    for name in dict.fromkeys(p[0] for p in paths):
        if name in value:
            out[name] = _keep(value[name], [p[1:] for p in paths if p[0] == name])
    return out


def _drop(value: Any, path: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _drop(item, path)
    elif isinstance(value, dict) and path[0] in value:
        if len(path) == 1:
            del value[path[0]]
        else:
            _drop(value[path[0]], path[1:])


def _links(call: Call) -> list[dict[str, str]]:
    return [
        {
            "rel": "self",
            "href": str(call.request.url.remove_query_params(["fields", "exclude_fields"])),
            "method": "GET",
            "targetSchema": "",
            "schema": "",
        }
    ]


# --- handlers: one fake answer per endpoint --------------------------------------------------------------
async def ping(call: Call) -> Response:
    return json_response({"health_status": "Everything's Chimpy!"})


async def list_lists(call: Call) -> Response:
    lists = call.store.mc_lists(call.account)
    body = {"lists": lists, "total_items": len(lists), "_links": _links(call)}
    return json_response(select_fields(body, call.query.get("fields"), call.query.get("exclude_fields")))


async def list_members(call: Call) -> Response:
    q = call.query
    since, before = q.get("since_last_changed"), q.get("before_last_changed")
    members, total = call.store.mc_members(
        call.account,
        call.path["list_id"],
        count=_int(call, "count", 10, 1, MAILCHIMP_MAX_COUNT),
        offset=_int(call, "offset", 0, 0, 10**9),
        status=q.get("status") or None,
        since=parse_mailchimp_time(since) if since else None,
        before=parse_mailchimp_time(before) if before else None,
    )
    body = {"members": members, "list_id": call.path["list_id"], "total_items": total, "_links": _links(call)}
    return json_response(select_fields(body, q.get("fields"), q.get("exclude_fields")))


def _e(name: str, path: str, kind: str) -> Endpoint:
    return Endpoint("mailchimp", name, "GET", PREFIX + path, kind, globals()[name])


ENDPOINTS: list[Endpoint] = [
    _e("ping", "/ping", "read"),
    _e("list_lists", "/lists", "list"),
    _e("list_members", "/lists/{list_id}/members", "list"),
]
