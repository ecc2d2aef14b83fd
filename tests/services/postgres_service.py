"""Debian's PostgreSQL on 127.0.0.1 and a free port: a throw-away cluster (initdb) in a temp dir.

PostgreSQL refuses to run as root: under root the cluster belongs to, and runs as, the ``postgres`` user
(created by Debian's package; ``nobody`` otherwise). Durability is off (``fsync``, ``full_page_writes``),
as the data is thrown away: start-up is about a second.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.process import INSTALL_HINT, ServiceMissing, free_port, stop_group, wait_until

START_TIMEOUT = 60.0  # seconds; about 1 s (initdb included) on a quiet machine
PORT_ATTEMPTS = 3
USER = "prefinery"
DATABASE = "prefinery"
BINARIES = ("initdb", "postgres", "pg_isready", "psql")


@dataclass(frozen=True)
class PostgresServer:
    """Where a running PostgreSQL listens and how to log in; ``url`` is a libpq/SQLAlchemy URL."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    db: str
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"

    def airflow_conn(self) -> str:
        """The JSON for an ``AIRFLOW_CONN_<ID>`` variable: an Airflow Postgres connection to this server."""
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": self.host,
                "port": self.port,
                "login": self.user,
                "password": self.password,
                "schema": self.db,
            }
        )

    def psql(self, sql: str, *, db: str | None = None, timeout: float = 30.0) -> str:
        """Run ``sql`` with Debian's ``psql`` (stops at the first error) and return its unaligned output."""
        command = [
            str(self.bindir / "psql"),
            "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db or self.db,
            "-c", sql,
        ]  # fmt: skip
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()


def postgres_bindir() -> Path:
    """``PREFINERY_PG_BINDIR`` when set (nothing else is tried), else ``initdb``'s directory on PATH, else
    Debian's newest ``/usr/lib/postgresql/<version>/bin``."""
    override = os.environ.get("PREFINERY_PG_BINDIR")
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override))
    else:
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
        debian = glob.glob("/usr/lib/postgresql/*/bin")
        candidates += [
            Path(p)
            for p in sorted(debian, key=lambda p: int(Path(p).parent.name.split(".")[0]), reverse=True)
        ]
    for bindir in candidates:
        if all((bindir / name).is_file() for name in BINARIES):
            return bindir
    looked = ", ".join(map(str, candidates)) or "PATH and /usr/lib/postgresql/*/bin"
    raise ServiceMissing(
        f"PostgreSQL ({', '.join(BINARIES)}) is not installed (looked in {looked}); {INSTALL_HINT}"
    )


def run_as_account() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root; None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceMissing("running as root and neither a 'postgres' nor a 'nobody' account exists")


@contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """initdb a cluster, start it, create the database, yield it; stop it and delete everything on exit."""
    bindir = postgres_bindir()
    account = run_as_account()
    password = secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="prefinery-postgres-"))  # under /tmp: reachable by the account
    log_path = workdir / "postgres.log"
    try:
        _initdb(bindir, workdir, password, account)
        for attempt in range(PORT_ATTEMPTS):
            server = PostgresServer("127.0.0.1", free_port(), USER, password, DATABASE, bindir)
            process = _start(server, workdir, log_path, account)
            try:
                wait_until(
                    lambda server=server: _ready(server),
                    process,
                    what="postgres",
                    timeout=START_TIMEOUT,
                    log_path=log_path,
                    interval=0.1,
                )
            except RuntimeError:
                stop_group(process, first=signal.SIGINT)
                if attempt + 1 == PORT_ATTEMPTS or "already in use" not in log_path.read_text():
                    raise
                continue
            try:
                server.psql(f'CREATE DATABASE "{DATABASE}"', db="postgres")
                yield server
            finally:
                stop_group(process, first=signal.SIGINT)  # SIGINT: PostgreSQL's "fast" shutdown
            return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _as_account(account: pwd.struct_passwd | None) -> dict[str, object]:
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _initdb(bindir: Path, workdir: Path, password: str, account: pwd.struct_passwd | None) -> None:
    pwfile = workdir / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if account is not None:
        for path in (workdir, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
    command = [
        str(bindir / "initdb"),
        "-D", str(workdir / "data"),
        "-U", USER,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=workdir, **_as_account(account)
    )
    pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _start(
    server: PostgresServer, workdir: Path, log_path: Path, account: pwd.struct_passwd | None
) -> subprocess.Popen[bytes]:
    settings = {
        "listen_addresses": server.host,
        "port": str(server.port),
        "unix_socket_directories": str(workdir),  # not /var/run/postgresql: private to this cluster
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
    }
    command = [str(server.bindir / "postgres"), "-D", str(workdir / "data")]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            **_as_account(account),
        )


def _ready(server: PostgresServer) -> bool:
    command = [str(server.bindir / "pg_isready"), "-q", "-h", server.host, "-p", str(server.port)]
    return subprocess.run(command, timeout=10).returncode == 0
