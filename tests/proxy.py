"""A small forward proxy on loopback for tests: plain HTTP forwarding and ``CONNECT`` tunnels, with
optional Basic ``Proxy-Authorization``, in a thread of its own. It forwards only to loopback targets.

``with ForwardProxy(auth=("user", "pass")) as proxy:`` gives ``proxy.url`` (``http://127.0.0.1:<port>``) and
``proxy.seen`` (one ``(method, target, authorised)`` per request it received). Each forwarded request gets
its own upstream connection, closed after the answer (``Connection: close``), which keeps the relay simple.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from types import TracebackType
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ForwardProxy:
    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.seen: list[tuple[str, str, bool]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        port = future.result(timeout=10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):  # relays of connections the client keeps open (its pool)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return headers.get("proxy-authorization", "") == f"Basic {expected}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        authorised = self._authorised(headers)
        self.seen.append((method, target, authorised))
        if not authorised:
            await _reply(
                writer, b"407 Proxy Authentication Required", b'Proxy-Authenticate: Basic realm="t"\r\n'
            )
            return
        host, port, rest = _target(method, target)
        if host not in LOOPBACK:
            await _reply(writer, b"403 Forbidden")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            await _reply(writer, b"502 Bad Gateway")
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith(("proxy-", "connection:"))]
            up_writer.write(
                "\r\n".join([f"{method} {rest} {version}", *kept, "Connection: close", "", ""]).encode()
            )
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


def _target(method: str, target: str) -> tuple[str, int, str]:
    """(host, port, origin-form path) of a CONNECT authority or an absolute-form URL."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        return host.strip("[]"), int(port), ""
    parts = urlsplit(target)
    path = parts.path or "/"
    return parts.hostname or "", parts.port or 80, path + (f"?{parts.query}" if parts.query else "")


async def _reply(writer: asyncio.StreamWriter, status: bytes, headers: bytes = b"") -> None:
    writer.write(
        b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
