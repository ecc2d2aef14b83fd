"""The service fixtures start real servers that answer real clients (Debian's redis-cli and psql)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import PostgresServer, RedisServer, run_postgres, run_redis

REPO = Path(__file__).resolve().parents[2]


def redis_cli(server: RedisServer, *args: str, password: str | None = None) -> str:
    env = {"PATH": os.environ["PATH"], "REDISCLI_AUTH": server.password if password is None else password}
    command = ["redis-cli", "-h", server.host, "-p", str(server.port), "-n", str(server.db), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=10)
    return done.stdout + done.stderr


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_redis_round_trip_through_redis_cli(redis_server: RedisServer) -> None:
    redis_cli(redis_server, "SET", "prefinery:probe", "42")
    assert redis_cli(redis_server, "INCRBY", "prefinery:probe", "8").strip() == "50"
    assert redis_cli(redis_server, "GET", "prefinery:probe").strip() == "50"


def test_redis_wants_its_password_and_binds_loopback(redis_server: RedisServer) -> None:
    assert "NOAUTH" in redis_cli(redis_server, "GET", "prefinery:probe", password="")
    assert redis_cli(redis_server, "CONFIG", "GET", "bind").split() == ["bind", "127.0.0.1"]
    assert redis_server.url == f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0"
    assert redis_server.password not in repr(redis_server)


def test_postgres_round_trip_through_psql(postgres_server: PostgresServer) -> None:
    postgres_server.psql("CREATE TABLE probe (id serial PRIMARY KEY, email text NOT NULL)")
    postgres_server.psql("INSERT INTO probe (email) VALUES ('a@example.com'), ('b@example.com')")
    try:
        assert postgres_server.psql("SELECT string_agg(email, ',' ORDER BY id) FROM probe") == (
            "a@example.com,b@example.com"
        )
        assert (
            postgres_server.psql("SELECT current_database() || ' ' || current_user") == "prefinery prefinery"
        )
    finally:
        postgres_server.psql("DROP TABLE probe")


def test_postgres_wants_its_password_and_binds_loopback(postgres_server: PostgresServer) -> None:
    wrong = PostgresServer(**{**postgres_server.__dict__, "password": "wrong"})
    with pytest.raises(RuntimeError, match="password authentication failed"):
        wrong.psql("SELECT 1")
    assert postgres_server.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres_server.url.startswith(f"postgresql://prefinery:{postgres_server.password}@127.0.0.1:")
    assert postgres_server.password not in repr(postgres_server)


def test_postgres_runs_as_an_unprivileged_account(postgres_server: PostgresServer) -> None:
    """PostgreSQL refuses root: under root the server runs as ``postgres`` (or ``nobody``), else as us."""
    data = Path(postgres_server.psql("SHOW data_directory"))
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    owner = os.stat(f"/proc/{postmaster}").st_uid
    assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()


def test_stopping_closes_the_ports_and_deletes_the_data() -> None:
    with run_redis() as redis, run_postgres() as postgres:
        redis_dir = Path(redis_cli(redis, "CONFIG", "GET", "dir").split()[1])
        postgres_dir = Path(postgres.psql("SHOW data_directory")).parent
        assert redis_dir.is_dir() and postgres_dir.is_dir()
        assert listening(redis.host, redis.port) and listening(postgres.host, postgres.port)
    assert not listening(redis.host, redis.port)
    assert not listening(postgres.host, postgres.port)
    assert not redis_dir.exists()
    assert not postgres_dir.exists()


@pytest.mark.parametrize(("ci", "outcome"), [("true", "2 errors"), ("", "2 skipped")])
def test_a_missing_binary_skips_locally_and_fails_under_ci(ci: str, outcome: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CI": ci,
        "PREFINERY_REDIS_SERVER": str(tmp_path / "no-redis-server"),
        "PREFINERY_PG_BINDIR": str(tmp_path / "no-postgres"),
    }
    tests = ["test_redis_round_trip_through_redis_cli", "test_postgres_round_trip_through_psql"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsE", __file__]
    command += ["-k", " or ".join(tests)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert outcome in done.stdout, done.stdout[-3000:]
    assert "scripts/install_services.sh" in done.stdout
    assert "redis-server is not installed" in done.stdout and "PostgreSQL" in done.stdout
