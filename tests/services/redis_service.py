"""Debian's ``redis-server`` on 127.0.0.1 and a free port: password-protected, no persistence."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.process import INSTALL_HINT, ServiceMissing, free_port, stop_group, wait_until

START_TIMEOUT = 30.0  # seconds; about 0.05 s on a quiet machine
PORT_ATTEMPTS = 3  # a free port can be taken between the probe and redis binding it


@dataclass(frozen=True)
class RedisServer:
    """Where a running Redis listens and how to log in; ``url`` is what redis-py and ``limits`` take."""

    host: str
    port: int
    password: str = field(repr=False)
    db: int = 0

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/{self.db}"

    def airflow_conn(self) -> str:
        """The JSON for an ``AIRFLOW_CONN_<ID>`` variable: an Airflow Redis connection to this server."""
        return json.dumps(
            {
                "conn_type": "redis",
                "host": self.host,
                "port": self.port,
                "password": self.password,
                "extra": {"db": self.db},
            }
        )

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """Send one command over RESP and return the raw reply (enough for readiness and small checks)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(_resp("AUTH", self.password) + _resp(*args))
            reply = b""
            while reply.count(b"\r\n") < 2:  # AUTH's +OK, then the first line of the command's reply
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        auth, _, rest = reply.partition(b"\r\n")
        if auth != b"+OK":
            raise RuntimeError(f"redis AUTH failed: {auth!r}")
        return rest


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def redis_binary() -> str:
    """``PREFINERY_REDIS_SERVER`` when set (and then only it), else ``redis-server`` on PATH or Debian's."""
    override = os.environ.get("PREFINERY_REDIS_SERVER")
    candidates = [override] if override else [shutil.which("redis-server"), "/usr/bin/redis-server"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceMissing(
        f"redis-server is not installed (looked for {', '.join(filter(None, candidates))}); {INSTALL_HINT}"
    )


@contextmanager
def run_redis(password: str | None = None) -> Iterator[RedisServer]:
    """Start a private Redis, wait for PONG, yield it; stop it and delete its directory on exit."""
    binary = redis_binary()
    password = password or secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="prefinery-redis-"))
    log_path = workdir / "redis.log"
    try:
        for attempt in range(PORT_ATTEMPTS):
            server = RedisServer("127.0.0.1", free_port(), password)
            process = _start(binary, server, workdir, log_path)
            try:
                wait_until(
                    lambda server=server: _pong(server),
                    process,
                    what="redis-server",
                    timeout=START_TIMEOUT,
                    log_path=log_path,
                )
            except RuntimeError:
                stop_group(process)
                if attempt + 1 == PORT_ATTEMPTS or "Address already in use" not in log_path.read_text():
                    raise
                continue
            try:
                yield server
            finally:
                stop_group(process)
            return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _start(binary: str, server: RedisServer, workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start redis-server from a config file (so the password is not on a command line ``ps`` shows)."""
    conf = workdir / f"redis-{server.port}.conf"
    conf.write_text(
        "\n".join(
            [
                f"bind {server.host}",
                f"port {server.port}",
                f"requirepass {server.password}",
                "protected-mode yes",
                'save ""',
                "appendonly no",
                f"dir {workdir}",
                "daemonize no",
                f"logfile {log_path}",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    return subprocess.Popen([binary, str(conf)], stdin=subprocess.DEVNULL, start_new_session=True)


def _pong(server: RedisServer) -> bool:
    try:
        return server.command("PING", timeout=0.5).startswith(b"+PONG")
    except (OSError, RuntimeError):
        return False
