"""``prefinery-sandbox``: serve the sandbox on loopback and print ONE ready line (URL and keys).

The ready line is what ``testing.run_sandbox`` waits for, so it is printed (and flushed) only once the
socket accepts connections. SIGINT/SIGTERM shut uvicorn down gracefully; ``--exit-with-parent`` also
stops the server when the process that started it goes away (no orphan after a killed test run).
``--tls-cert``/``--tls-key`` serve HTTPS (a throw-away certificate, e.g. to test a private CA). Bound to an
address other than loopback it warns: it accepts the published demo keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from airflow_provider_prefinery.sandbox import READY_PREFIX, seeds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="prefinery-sandbox", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument("--db", default=None, help="SQLite file to keep state in (default: in memory)")
    p.add_argument("--seed", choices=seeds.SEEDS, default="demo", help="data to start with (default demo)")
    p.add_argument("--keep", action="store_true", help="with --db: keep the file's data instead of seeding")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key (repeatable; default {seeds.DEFAULT_API_KEY})",
    )
    p.add_argument(
        "--rate-limit-scale",
        type=float,
        default=1.0,
        help="multiply every rate limit (e.g. 100 for benchmarks; default 1 = documented limits)",
    )
    p.add_argument("--fault-seed", type=int, default=None, help="random seed for fault injection")
    p.add_argument(
        "--allow-host",
        action="append",
        dest="allow_hosts",
        default=[],
        metavar="NAME",
        help="accept this Host header besides loopback names and --host (repeatable)",
    )
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process exits")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    return p.parse_args(argv)


def ready_line(url: str, keys: Sequence[str]) -> str:
    info = {"url": url, "api_keys": list(keys), "beta_id": seeds.DEMO_BETA_ID, "list_id": seeds.DEMO_LIST_ID}
    return f"{READY_PREFIX} {url} keys={','.join(keys)} {json.dumps(info)}"


def non_loopback_warning(host: str) -> str | None:
    """The warning to print when ``host`` is reachable from other machines, else None."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (
        f"prefinery-sandbox: WARNING: listening on {host}, reachable from other machines, and it accepts "
        "the published demo API keys (the /_sandbox control API still answers loopback callers only). "
        "Clients must send an allowed Host (--allow-host NAME); bind 127.0.0.1 unless you need this."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("prefinery-sandbox: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    warning = non_loopback_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        _runner()(serve(args))
    return 0


def _runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's event loop when installed (noticeably faster under load), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from airflow_provider_prefinery.sandbox.app import create_app
    from airflow_provider_prefinery.sandbox.faults import Behaviour
    from airflow_provider_prefinery.sandbox.state import Store

    keys = args.api_keys or [seeds.DEFAULT_API_KEY]
    store = Store(args.db, keys, args.seed, keep_existing=args.keep)
    behaviour = Behaviour(scale=args.rate_limit_scale, fault_seed=args.fault_seed)
    app = create_app(store, behaviour, allowed_hosts=[args.host, *args.allow_hosts])
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=False,
        http=_http(),
        loop="none",
        lifespan="off",
        timeout_graceful_shutdown=2,
        backlog=2048,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    server = _server_class()(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_exit)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        host = f"[{args.host}]" if ":" in args.host else args.host
        scheme = "https" if args.tls_cert else "http"
        print(ready_line(f"{scheme}://{host}:{port}", keys), flush=True)
    watcher = asyncio.create_task(_watch_parent(server)) if args.exit_with_parent else None
    await task
    if watcher:
        watcher.cancel()
    sock.close()


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but the CLI owns SIGINT/SIGTERM: a graceful stop, then exit status 0
        (uvicorn would re-raise the signal after shutting down)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def request_exit(self) -> None:
            self.should_exit = True

    return Server


def _http() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


async def _watch_parent(server: object) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.should_exit = True  # type: ignore[attr-defined]
