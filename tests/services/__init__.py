"""Real services for tests: Debian's ``redis-server`` and PostgreSQL, each on 127.0.0.1 and a free port.

Use the pytest fixtures ``redis_server`` and ``postgres_server`` (session-scoped, from
``tests.services.fixtures``; import them into a ``conftest.py`` to use them in another folder), or the
context managers ``run_redis()`` / ``run_postgres()`` for a server of a test's own. A missing binary skips
with the install hint locally and fails under ``CI=true``. ``scripts/install_services.sh`` installs both.
"""

from tests.services.postgres_service import PostgresServer, run_postgres
from tests.services.process import ServiceMissing, free_port, stop_group
from tests.services.redis_service import RedisServer, run_redis

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceMissing",
    "free_port",
    "run_postgres",
    "run_redis",
    "stop_group",
]
