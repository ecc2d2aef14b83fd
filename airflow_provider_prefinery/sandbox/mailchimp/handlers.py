"""Mailchimp's handlers: one fake answer per endpoint, paged by ``count``/``offset``, with Mailchimp's
``fields``/``exclude_fields`` selection and ``_links``."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.mailchimp.state import MAX_COUNT, MailchimpState, parse_time
from airflow_provider_prefinery.sandbox.wire import Call, json_response

M = Call[MailchimpState]


def _int(call: M, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) or not low <= int(raw) <= high:
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


def _answer(call: M, body: dict[str, Any]) -> Response:
    """The body with ``_links`` (self, without the selection) and the caller's field selection applied."""
    href = str(call.request.url.remove_query_params(["fields", "exclude_fields"]))
    body["_links"] = [{"rel": "self", "href": href, "method": "GET", "targetSchema": "", "schema": ""}]
    return json_response(select_fields(body, call.query.get("fields"), call.query.get("exclude_fields")))


async def ping(call: M) -> Response:
    return json_response({"health_status": "Everything's Chimpy!"})


async def list_lists(call: M) -> Response:
    lists = call.state.lists(call.account)
    return _answer(call, {"lists": lists, "total_items": len(lists)})


async def list_members(call: M) -> Response:
    q = call.query
    since, before = q.get("since_last_changed"), q.get("before_last_changed")
    members, total = call.state.members(
        call.account,
        call.path["list_id"],
        count=_int(call, "count", 10, 1, MAX_COUNT),
        offset=_int(call, "offset", 0, 0, 10**9),
        status=q.get("status") or None,
        since=parse_time(since) if since else None,
        before=parse_time(before) if before else None,
    )
    return _answer(call, {"members": members, "list_id": call.path["list_id"], "total_items": total})
