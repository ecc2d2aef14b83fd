"""pytest fixtures for the real services. Use them from any folder by importing them into its conftest:

    from tests.services.fixtures import postgres_server, redis_server  # noqa: F401

Both are session-scoped (one server per test session, started on first use): a test that needs a clean
state makes it (``FLUSHDB``, its own schema or database), or starts its own with ``run_redis()`` /
``run_postgres()``. Missing binaries skip with the install hint; under ``CI=true`` they fail instead, so a
missing install step can never pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services.postgres_service import PostgresServer, postgres_bindir, run_as_account, run_postgres
from tests.services.process import ServiceMissing
from tests.services.redis_service import RedisServer, redis_binary, run_redis


def required() -> bool:
    """Under CI a missing service is an install failure, not a reason to skip."""
    return os.environ.get("CI", "").lower() == "true"


def missing(error: ServiceMissing) -> None:
    if required():
        pytest.fail(f"{error} (required under CI=true)", pytrace=False)
    pytest.skip(str(error))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` on 127.0.0.1 and a free port, with a random password, no persistence."""
    try:
        redis_binary()
    except ServiceMissing as error:
        missing(error)
    with run_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster on 127.0.0.1 and a free port; database and user ``prefinery``."""
    try:
        postgres_bindir()
        run_as_account()
    except ServiceMissing as error:
        missing(error)
    with run_postgres() as server:
        yield server
