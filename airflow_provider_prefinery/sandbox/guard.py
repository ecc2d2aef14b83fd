"""The sandbox as a server on a developer's machine: what it refuses before any route runs.

One pure-ASGI middleware, outermost:

* ``Host`` must name a loopback host (``localhost``, ``*.localhost``, ``127.0.0.1``, ``::1``) or one the
  server was told to accept: a web page the developer visits cannot reach the sandbox through a DNS name
  rebound to 127.0.0.1 (its requests carry the attacker's host name). 400, as Django and Starlette answer.
* A body larger than :data:`MAX_BODY_BYTES` is refused with 413, from ``Content-Length`` or while reading.
* A path segment of more digits than an id can have is a 404 (no row has that id), never an overflow.

Refusals answer in the shape of the API the path belongs to (``/_sandbox`` in FastAPI's ``{"detail"}``).
A 500 would tell a client "the write may have been applied"; none of these reaches a handler.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.faults import api_of
from airflow_provider_prefinery.sandbox.wire import render

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 4 * 1024 * 1024  # a few MB: far above any real API body, far below a memory problem
MAX_ID_DIGITS = 18  # an id fits a signed 64-bit integer (SQLite's INTEGER)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_LONG_NUMBER = re.compile(rf"/[0-9]{{{MAX_ID_DIGITS + 1},}}(?=[/.]|$)")  # a path segment of too many digits


class PayloadTooLarge(e.SandboxError):
    status, code, title, default_message = 413, 413, "Payload Too Large", "the request body is too large"


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port: ``[::1]:8765`` -> ``::1``, ``a:80`` -> ``a``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(name: str) -> bool:
    """True for ``localhost``, its subdomains and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class GuardMiddleware:
    """Refuse foreign ``Host`` headers, oversized bodies and impossible ids before the app sees them."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Iterable[str] = (), max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed_hosts if h)
        self.max_body = max_body

    def host_allowed(self, name: str) -> bool:
        return is_loopback(name) or name in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if not self.host_allowed(host):
            await _refuse(
                send,
                scope,
                e.BadRequest(
                    f"invalid host header {host!r}: the sandbox answers only "
                    "loopback names (start it with --allow-host to add one)"
                ),
            )
            return  # fmt: skip
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length and (not length.isascii() or not length.isdigit()):
            await _refuse(send, scope, e.BadRequest("invalid Content-Length"))
            return
        if length and int(length) > self.max_body:
            await _refuse(send, scope, PayloadTooLarge(f"the body exceeds {self.max_body:,} bytes"))
            return
        if _LONG_NUMBER.search(scope["path"]):
            await _refuse(send, scope, e.NotFound(f"no object has an id of more than {MAX_ID_DIGITS} digits"))
            return
        if length or b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        body = await self._read_capped(receive)
        if body is None:
            await _refuse(send, scope, PayloadTooLarge(f"the body exceeds {self.max_body:,} bytes"))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_capped(self, receive: Receive) -> bytes | None:
        """Read a chunked body (no ``Content-Length`` to check first) up to the cap; None beyond it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then waits on the real one (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, scope: Scope, err: e.SandboxError) -> None:
    path = scope.get("path", "")
    if path.startswith("/_sandbox"):
        status, body, content_type = (
            err.status,
            json.dumps({"detail": err.message}).encode(),
            "application/json",
        )
    else:
        status, body, content_type, _ = render(api_of(path), err)
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})
