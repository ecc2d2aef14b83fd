"""What every API's routes share on the wire: credentials, JSON in and out, error rendering, route wrapping.

Server side only (imports Starlette). Credentials are read from raw ASGI headers too, so the fault
middleware can count limits per key without parsing anything twice. The key itself is never logged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.mailchimp import errors as mailchimp_errors
from airflow_provider_prefinery.sandbox.piggy import errors as piggy_errors
from airflow_provider_prefinery.sandbox.prefinery import errors as prefinery_errors
from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.values import dumps

S = TypeVar("S")

RENDERERS: dict[str, Callable[[e.SandboxError], tuple[bytes, str]]] = {
    "prefinery": prefinery_errors.render,
    "mailchimp": mailchimp_errors.render,
    "piggy": piggy_errors.render,
}


@dataclass
class Call(Generic[S]):
    """One parsed request handed to a handler: its API's state, the caller's account and the path ids."""

    request: Request
    state: S
    account: str
    path: dict[str, Any]

    @property
    def beta_id(self) -> int:
        return int(self.path["beta_id"])

    @property
    def id(self) -> int:
        return int(self.path["id"])

    @property
    def query(self) -> Any:
        return self.request.query_params


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json")


def render(api: str, err: e.SandboxError) -> tuple[int, bytes, str, dict[str, str]]:
    """Return (status, body, content type, extra headers) for ``err`` in ``api``'s shape."""
    body, content_type = RENDERERS.get(api, prefinery_errors.render)(err)
    return err.status, body, content_type, err.headers


def error_response(api: str, err: e.SandboxError) -> Response:
    status, body, content_type, headers = render(api, err)
    return Response(body, status, headers, media_type=content_type)


async def read_body(request: Request) -> dict[str, Any]:
    """The JSON body (or a form body, which Piggy accepts); an unreadable body is a 400, never a 500
    (which a client must read as "maybe applied")."""
    raw = await request.body()
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError as exc:
            raise e.BadRequest("the form body is not valid UTF-8") from exc
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise e.BadRequest("the JSON body is nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise e.BadRequest("the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise e.BadRequest("the body must be a JSON object")
    return body


def credential(api: str, headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The key a request presents, as each API reads it (Prefinery: Bearer, Basic user or ?api_key=;
    Mailchimp: Basic password or Bearer; Piggy: Bearer)."""
    auth = next((v.decode("latin-1") for k, v in headers if k.lower() == b"authorization"), "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and api in ("prefinery", "mailchimp"):
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if api == "prefinery" else password
    if api == "prefinery" and b"api_key=" in query_string:
        return dict(parse_qsl(query_string.decode("latin-1"))).get("api_key")
    return None


Authorize = Callable[[Request, Store, Endpoint], str]


def route(spec: Endpoint, store: Store, authorize: Authorize) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: authorize (giving the account), call it with its API's state, render any
    SandboxError in the API's shape."""
    state = store.services[spec.api]

    async def endpoint(request: Request) -> Response:
        try:
            account = authorize(request, store, spec)
            return await spec.handler(Call(request, state, account, request.path_params))
        except e.SandboxError as err:
            return error_response(spec.api, err)
        except OverflowError:  # a number in the request too large for the store (SQLite's 64-bit INTEGER)
            return error_response(spec.api, e.BadRequest("a number in the request is out of range"))

    endpoint.__name__ = spec.name
    return endpoint
